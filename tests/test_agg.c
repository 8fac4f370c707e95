/*
 * test_agg.c — the shared aggregator: exact sums, multi-process writers, a full key set, a writer
 * killed mid-event and recovered, reset, and snapshots (round trip and every kind of damage).
 */
#include <criterion/criterion.h>

#include "agg_internal.h"
#include "alloc.h"
#include "decimal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(agg, .timeout = 60);

static fa_agg_t *make(size_t capacity, unsigned nshards)
{
    char err[128];
    fa_agg_t *a = fa_agg_create(capacity, nshards, err, sizeof(err));
    cr_assert_not_null(a, "%s", err);
    return a;
}

static __int128 dec(const char *s)
{
    __int128 v;
    cr_assert_eq(fa_dec_parse(s, strlen(s), &v), 0, "%s", s);
    return v;
}

static int add_str(fa_agg_t *a, unsigned shard, const char *key, __int128 v)
{
    return fa_agg_add(a, shard, key, strlen(key), v);
}

static void expect_totals(const fa_agg_t *a, uint64_t total, uint64_t unique, __int128 sum)
{
    fa_agg_totals_t t;
    fa_agg_read(a, &t);
    cr_assert_eq(t.total, total, "total %llu, want %llu", (unsigned long long)t.total,
                 (unsigned long long)total);
    cr_assert_eq(t.unique, unique, "unique %llu, want %llu", (unsigned long long)t.unique,
                 (unsigned long long)unique);
    char got[FA_DEC_FMT_MAX], want[FA_DEC_FMT_MAX];
    fa_dec_format(t.sum, got, sizeof(got));
    fa_dec_format(sum, want, sizeof(want));
    cr_assert_str_eq(got, want, "sum");
}

static void stats_eq(const fa_agg_t *a, const char *want)
{
    char buf[FA_AGG_STATS_MAX];
    size_t n = fa_agg_render_stats(a, buf, sizeof(buf));
    cr_assert_str_eq(buf, want);
    cr_assert_eq(n, strlen(want));
}

Test(agg, create_rejects_bad_arguments)
{
    char err[128];
    cr_assert_null(fa_agg_create(0, 4, err, sizeof(err)));
    cr_assert_null(fa_agg_create(10, 0, err, sizeof(err)));
    cr_assert_null(fa_agg_create(10, FA_AGG_SHARDS_MAX + 1, err, sizeof(err)));
    cr_assert(strstr(err, "shard") != NULL, "%s", err);
}

Test(agg, empty_stats_are_zero)
{
    fa_agg_t *a = make(16, 2);
    stats_eq(a, "{\"totalRequests\":0,\"uniqueUsers\":0,\"sum\":0,\"avg\":0}");
    fa_agg_destroy(a);
}

Test(agg, decimal_values_sum_exactly_and_render)
{
    fa_agg_t *a = make(16, 2);
    cr_assert_eq(add_str(a, 0, "alice", dec("0.1")), 0);
    cr_assert_eq(add_str(a, 1, "bob", dec("42.5")), 0);
    cr_assert_eq(add_str(a, 0, "alice", dec("-3.25")), 0);
    cr_assert_eq(add_str(a, 1, "carol", dec("1e-9")), 0);
    expect_totals(a, 4, 3, dec("39.350000001"));
    stats_eq(a, "{\"totalRequests\":4,\"uniqueUsers\":3,\"sum\":39.350000001,"
                "\"avg\":9.83750000025}");
    /* 0.1 ten times is exactly 1, unlike in binary floating point. */
    for (int i = 0; i < 10; i++)
        cr_assert_eq(add_str(a, 0, "dave", dec("0.1")), 0);
    expect_totals(a, 14, 4, dec("40.350000001"));
    fa_agg_destroy(a);
}

Test(agg, add_and_stats_allocate_nothing)
{
    fa_agg_t *a = make(1024, 2);
    char buf[FA_AGG_STATS_MAX], key[16];
    uint64_t before = fa_alloc_count();
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i % 100);
        cr_assert_eq(add_str(a, (unsigned)i % 2, key, 1), 0);
    }
    cr_assert_gt(fa_agg_render_stats(a, buf, sizeof(buf)), 0);
    cr_assert_eq(fa_alloc_count(), before);
    fa_agg_destroy(a);
}

Test(agg, keys_are_compared_in_full_including_binary_bytes)
{
    fa_agg_t *a = make(64, 1);
    const char k1[] = {'a', 0, 'b'}, k2[] = {'a', 0, 'c'}, k3[] = {'a', 0};
    cr_assert_eq(fa_agg_add(a, 0, k1, 3, 1), 0);
    cr_assert_eq(fa_agg_add(a, 0, k2, 3, 1), 0);
    cr_assert_eq(fa_agg_add(a, 0, k3, 2, 1), 0);
    cr_assert_eq(fa_agg_add(a, 0, "", 0, 1), 0);
    cr_assert_eq(fa_agg_add(a, 0, k1, 3, 1), 0);
    expect_totals(a, 5, 4, 5);
    char big[FA_AGG_KEY_MAX + 1];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(fa_agg_add(a, 0, big, FA_AGG_KEY_MAX, 1), 0);
    cr_assert_eq(fa_agg_add(a, 0, big, FA_AGG_KEY_MAX + 1, 1), -EINVAL);
    cr_assert(fa_agg_contains(a, big, FA_AGG_KEY_MAX));
    cr_assert(!fa_agg_contains(a, big, FA_AGG_KEY_MAX - 1));
    expect_totals(a, 6, 5, 6);
    fa_agg_destroy(a);
}

/*
 * The key cache compares whole keys: every length around its 15-byte limit, each key next to
 * variants differing in one byte (binary bytes, NUL included) and a shorter key with a trailing
 * NUL. Each key is added twice; the second add of a short key must be a cache hit and must not
 * count a user, and a variant must never be taken for the key.
 */
Test(agg, key_cache_is_exact_at_every_length)
{
    /* Capacity 65,536 gives the cache 16,384 four-way buckets for ~400 keys, so no bucket
     * overflows (which would evict a key and turn a second-pass hit into a miss) but once in
     * millions of random seeds; with 4,096 it happened in about one run in ten. */
    fa_agg_t *a = make(65536, 1);
    cr_assert_eq(fa_agg_worker_init(a), 0);
    char key[24];
    uint64_t distinct = 0, events = 0, short_keys = 0;
    for (int pass = 0; pass < 2; pass++) {
        distinct = events = short_keys = 0;
        for (size_t len = 1; len <= 20; len++) {
            for (size_t pos = 0; pos <= len; pos++) { /* pos == len: the base key */
                for (int v = 0; v < (pos < len ? 3 : 1); v++) {
                    memset(key, 'k', sizeof(key));
                    for (size_t i = 0; i < len; i++)
                        key[i] = (char)('a' + (i * 7 + len) % 26);
                    if (pos < len)
                        key[pos] = (char)(v == 0 ? 0 : v == 1 ? 0xff : key[pos] ^ 1);
                    cr_assert_eq(fa_agg_add(a, 0, key, len, 1), 0);
                    distinct++, events++;
                    short_keys += len <= 15;
                }
            }
            if (len >= 2) { /* all NUL: apart from the shorter ones only by length */
                memset(key, 0, sizeof(key));
                cr_assert_eq(fa_agg_add(a, 0, key, len, 1), 0);
                distinct++, events++;
                short_keys += len <= 15;
            }
        }
        expect_totals(a, events * (pass + 1), distinct, (__int128)(events * (pass + 1)));
    }
    fa__agg_cache_stats_t st;
    fa__agg_cache_stats(&st);
    cr_assert_eq(st.misses, short_keys, "first pass: every short key missed once");
    cr_assert_eq(st.hits, short_keys, "second pass: every short key hit");
    cr_assert_eq(st.bypass, 2 * (events - short_keys), "longer keys bypass the cache");
    fa_agg_destroy(a);
}

/*
 * A reset run by another process while this one's cache holds keys: the next events must find
 * the keys new again (the cache is emptied by the generation change), in both the single and the
 * batch path.
 */
Test(agg, reset_by_another_process_empties_the_key_cache)
{
    fa_agg_t *a = make(1024, 2);
    cr_assert_eq(fa_agg_worker_init(a), 0);
    char key[24];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 100; i++) {
            snprintf(key, sizeof(key), "user_%d", i);
            cr_assert_eq(add_str(a, 0, key, 1), 0);
        }
    fa__agg_cache_stats_t st;
    fa__agg_cache_stats(&st);
    cr_assert_eq(st.hits, 100, "the cache holds the keys before the reset");
    for (int round = 0; round < 2; round++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
            _exit(fa_agg_reset(a) == 0 ? 0 : 1);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        expect_totals(a, 0, 0, 0);
        if (round == 0) {
            for (int i = 0; i < 100; i++) {
                snprintf(key, sizeof(key), "user_%d", i);
                cr_assert_eq(add_str(a, 0, key, 1), 0);
            }
        } else {
            static char keys[100][16];
            fa_agg_item_t items[100];
            for (int i = 0; i < 100; i++) {
                int n = snprintf(keys[i], sizeof(keys[i]), "user_%d", i);
                items[i] =
                    (fa_agg_item_t){.key = keys[i], .keylen = (size_t)n, .value = 1, .result = 1};
            }
            cr_assert_eq(fa_agg_add_many(a, 0, items, 100), 100);
        }
        expect_totals(a, 100, 100, 100);
        cr_assert(fa_agg_contains(a, "user_42", 7), "the keys are in the table again");
    }
    fa__agg_cache_stats(&st);
    cr_assert_geq(st.flushes, 3, "one flush at start and one per reset");
    fa_agg_destroy(a);
}

/* A new aggregator (perhaps mapped where the old one was) never inherits the old one's cache. */
Test(agg, destroy_forgets_the_key_cache)
{
    for (int round = 0; round < 3; round++) {
        fa_agg_t *a = make(1024, 1);
        if (round == 0)
            cr_assert_eq(fa_agg_worker_init(a), 0);
        cr_assert_eq(add_str(a, 0, "user_1", 1), 0);
        cr_assert_eq(add_str(a, 0, "user_1", 1), 0);
        expect_totals(a, 2, 1, 2);
        fa_agg_destroy(a);
    }
    fa__agg_cache_stats_t st;
    fa__agg_cache_stats(&st);
    cr_assert_eq(st.hits + st.misses, 0, "no cache after destroy");
}

/*
 * fa_agg_add_many gives every item what fa_agg_add would have: a reference aggregator fed one by
 * one and one fed in batches of every size from 1 to 40 agree on each result and on the totals.
 * The items mix returning and new keys, a key repeated within the look-ahead distance (its
 * prefetch ran before its first event published it), keys longer than the cache holds, a key too
 * long to store, and keys refused once the set is full.
 */
#define MIXED_KEY_CAP 300

/* Event i's key in the mixes below, into buf (MIXED_KEY_CAP bytes): every 97th too long to store, every
 * 11th longer than the key cache holds, the others "u<k>". Returns its length. */
static size_t mixed_key(char *buf, int i, int k)
{
    if (i % 97 == 5) {
        memset(buf, 'z', FA_AGG_KEY_MAX + 1);
        return FA_AGG_KEY_MAX + 1;
    }
    if (i % 11 == 3)
        return (size_t)snprintf(buf, MIXED_KEY_CAP, "a-rather-long-user-id-%d", i % 700);
    return (size_t)snprintf(buf, MIXED_KEY_CAP, "u%d", k);
}

/* a ends with the same totals as the reference ref, with key-cache hits on the way; both freed. */
static void same_totals_then_destroy(fa_agg_t *ref, fa_agg_t *a)
{
    fa_agg_totals_t t1, t2;
    fa_agg_read(ref, &t1);
    fa_agg_read(a, &t2);
    cr_assert_eq(t2.total, t1.total);
    cr_assert_eq(t2.unique, t1.unique);
    cr_assert(t2.sum == t1.sum);
    fa__agg_cache_stats_t st;
    fa__agg_cache_stats(&st);
    cr_assert_gt(st.hits, 0);
    fa_agg_destroy(ref);
    fa_agg_destroy(a);
}

Test(agg, add_many_matches_add_item_by_item)
{
    enum { N = 3000, CAP = 900 };
    static char keys[N][MIXED_KEY_CAP];
    static fa_agg_item_t items[N];
    static int want[N];
    fa_agg_t *ref = make(CAP, 1), *a = make(CAP, 1);
    cr_assert_eq(fa_agg_worker_init(a), 0);
    for (int i = 0; i < N; i++) {
        int k = i % 3 == 0 ? i / 3 : (i * 7919) % 1000; /* new keys and returning ones */
        if (i % 5 == 1)
            k = (i - 3) * 7919 % 1000; /* the key of three events ago, often */
        size_t n = mixed_key(keys[i], i, k);
        __int128 v = (__int128)(i % 13) * 1000000007 - 5;
        items[i] = (fa_agg_item_t){
            .key = keys[i], .keylen = n, .value = v, .result = 12345, .tag = (uint32_t)i};
        want[i] = fa_agg_add(ref, 0, keys[i], n, v);
    }
    size_t counted = 0, want_counted = 0;
    for (int i = 0, b = 1; i < N; i += b, b = b % 40 + 1)
        counted += fa_agg_add_many(a, 0, items + i, (size_t)FA_MIN(b, N - i));
    int nospc = 0, inval = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(items[i].result, want[i], "item %d: %d, want %d", i, items[i].result, want[i]);
        cr_assert_eq(items[i].tag, (uint32_t)i, "the tag is the caller's");
        want_counted += want[i] == 0;
        nospc += want[i] == -ENOSPC;
        inval += want[i] == -EINVAL;
    }
    cr_assert_eq(counted, want_counted);
    cr_assert_gt(nospc, 0, "the set filled up");
    cr_assert_gt(inval, 0);
    same_totals_then_destroy(ref, a);
}

/* fa_agg_add_prepared must answer and count as fa_agg_add does: new and returning keys, keys
 * the cache takes and keys too long for it or for the set, a full set, with other events
 * between a key's prepare and its add; in runs of returning keys (the table slot is left to
 * the add) and of new ones (prepared with the hash and the slot requested ahead). */
Test(agg, add_prepared_matches_add)
{
    enum { N = 3600, CAP = 900 };
    static char keys[N][MIXED_KEY_CAP];
    fa_agg_t *ref = make(CAP, 1), *a = make(CAP, 1);
    cr_assert_eq(fa_agg_worker_init(a), 0);
    fa_agg_key_t pending[3];
    size_t pn[3] = {0};
    int nospc = 0, inval = 0;
    for (int i = 0; i < N + 2; i++) {
        if (i < N) {
            int k = i % 3 == 0 ? i / 3 : (i * 7919) % 1000;
            if (i >= 3000)
                k = i < 3300 ? 10000 + i /* a run of new keys: misses */ : i % 50 /* of hits */;
            size_t n = mixed_key(keys[i], i, k);
            pn[i % 3] = n;
            fa_agg_key_prepare(a, keys[i], n, &pending[i % 3]);
        }
        int j = i - 2; /* added two events after its prepare */
        if (j < 0)
            continue;
        __int128 v = (__int128)(j % 13) * 1000000007 - 5;
        int want = fa_agg_add(ref, 0, keys[j], pn[j % 3], v);
        int got = fa_agg_add_prepared(a, 0, &pending[j % 3], v);
        cr_assert_eq(got, want, "event %d: %d, want %d", j, got, want);
        nospc += want == -ENOSPC;
        inval += want == -EINVAL;
    }
    cr_assert_gt(nospc, 0, "the set filled up");
    cr_assert_gt(inval, 0);
    same_totals_then_destroy(ref, a);
}

Test(agg, full_set_refuses_new_keys_and_counts_nothing)
{
    fa_agg_t *a = make(10, 1);
    char key[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "u%d", i);
        cr_assert_eq(add_str(a, 0, key, 1000000000), 0);
    }
    cr_assert_eq(add_str(a, 0, "one-too-many", 5), -ENOSPC);
    cr_assert_eq(add_str(a, 0, "another", 5), -ENOSPC);
    expect_totals(a, 10, 10, 10 * (__int128)1000000000);
    cr_assert_eq(add_str(a, 0, "u3", 1), 0, "known keys are still counted");
    expect_totals(a, 11, 10, 10 * (__int128)1000000000 + 1);
    cr_assert(!fa_agg_contains(a, "one-too-many", 12));
    fa_agg_destroy(a);
}

Test(agg, shards_are_claimed_once_and_reused_after_release)
{
    fa_agg_t *a = make(16, 3);
    cr_assert_eq(fa_agg_shard_claim(a), 0);
    cr_assert_eq(fa_agg_shard_claim(a), 1);
    cr_assert_eq(fa_agg_shard_claim(a), 2);
    cr_assert_eq(fa_agg_shard_claim(a), -EBUSY);
    fa_agg_shard_release(a, 1);
    cr_assert_eq(fa_agg_shard_claim(a), 1);
    fa_agg_destroy(a);
}

/*
 * Children each claim a shard and add M events; keys overlap across children (key i % K), so the
 * unique count is right only if the set is truly shared. Values 0.1 / 42.5 / -3.25 / 1e-9 rotate.
 * Odd children use a key cache, so cached and uncached writers race on the same keys.
 */
Test(agg, concurrent_processes_sum_and_count_exactly)
{
    enum { NCHILD = 4, M = 20000, K = 7000 };
    fa_agg_t *a = make(100000, 16);
    static const char *vals[] = {"0.1", "42.5", "-3.25", "1e-9"};
    __int128 v[4];
    for (int i = 0; i < 4; i++)
        v[i] = dec(vals[i]);
    pid_t pids[NCHILD];
    for (int c = 0; c < NCHILD; c++) {
        int shard = fa_agg_shard_claim(a);
        cr_assert_geq(shard, 0);
        pids[c] = fork();
        cr_assert_geq(pids[c], 0);
        if (pids[c] == 0) {
            char key[48];
            if (c % 2 && fa_agg_worker_init(a) != 0)
                _exit(2);
            for (int i = 0; i < M; i++) {
                int k = (i * 13 + c * 1000) % K; /* every child covers all K keys */
                snprintf(key, sizeof(key), "user-%d", k);
                if (add_str(a, (unsigned)shard, key, v[(i + c) % 4]) != 0)
                    _exit(1);
            }
            _exit(0);
        }
        fa_agg_shard_set_owner(a, (unsigned)shard, pids[c]);
    }
    __int128 want = 0;
    for (int c = 0; c < NCHILD; c++)
        for (int i = 0; i < M; i++)
            want += v[(i + c) % 4];
    for (int c = 0; c < NCHILD; c++) {
        int st;
        cr_assert_eq(waitpid(pids[c], &st, 0), pids[c]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d failed", c);
    }
    expect_totals(a, NCHILD * M, K, want);
    for (int k = 0; k < K; k += 97) {
        char key[48];
        snprintf(key, sizeof(key), "user-%d", k);
        cr_assert(fa_agg_contains(a, key, strlen(key)));
    }
    fa_agg_destroy(a);
}

/* The child of kill_rounds in batch mode: the same events through fa_agg_add_many, 64 a batch,
   with a key cache (the second event of each key is a cache hit), reporting after each batch. */
static void batch_writer(fa_agg_t *a, unsigned shard, int round, int fd)
{
    enum { B = 64 };
    static char keys[B][48];
    fa_agg_item_t items[B];
    if (fa_agg_worker_init(a) != 0)
        _exit(3);
    for (uint64_t i = 0; i < 40000; i += B) {
        for (uint64_t j = 0; j < B; j++) {
            int n = snprintf(keys[j], sizeof(keys[j]), "r%d-%llu", round,
                             (unsigned long long)((i + j) / 2));
            items[j] = (fa_agg_item_t){
                .key = keys[j], .keylen = (size_t)n, .value = (__int128)(i + j + 1), .result = 1};
        }
        if (fa_agg_add_many(a, shard, items, B) != B)
            _exit(1);
        uint64_t last = i + B - 1;
        if (write(fd, &last, sizeof(last)) != sizeof(last))
            _exit(2);
    }
    for (;;)
        pause();
}

/*
 * A child adds events (event i: key "r<round>-<i/2>", value i + 1 nanos) and reports each one
 * that returned through a pipe; the parent kills it with SIGKILL at a varying moment, recovers the
 * shard, and checks the aggregate against what the child reported: R events returned, so the
 * shard holds R or R + 1 events (the one in flight), and then exactly that prefix: the sum, the
 * unique count, and the key set (a key is in the table iff its event was counted). In batch mode
 * the events go through fa_agg_add_many: still a prefix, still whole events.
 */
static void kill_rounds(bool batch, int rounds)
{
    /* A child stops after 40000 events (20000 keys) and waits to be killed: 24 rounds fit. */
    fa_agg_t *a = make(700000, 4);
    uint64_t base_total = 0, base_unique = 0;
    __int128 base_sum = 0;
    int forward = 0, back = 0;
    for (int round = 0; round < rounds; round++) {
        int shard = fa_agg_shard_claim(a);
        cr_assert_geq(shard, 0);
        int fds[2];
        cr_assert_eq(pipe(fds), 0);
        (void)fcntl(fds[1], F_SETPIPE_SZ, 4096); /* best effort: keeps the child close behind */
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            close(fds[0]);
            if (batch)
                batch_writer(a, (unsigned)shard, round, fds[1]);
            char key[48];
            for (uint64_t i = 0;; i++) {
                if (i == 40000) /* a multiple of 64: the last event was reported */
                    for (;;)
                        pause();
                snprintf(key, sizeof(key), "r%d-%llu", round, (unsigned long long)(i / 2));
                if (add_str(a, (unsigned)shard, key, (__int128)(i + 1)) != 0)
                    _exit(1);
                if (i % 64 == 63 && write(fds[1], &i, sizeof(i)) != sizeof(i))
                    _exit(2);
            }
        }
        fa_agg_shard_set_owner(a, (unsigned)shard, pid);
        close(fds[1]);
        uint64_t last = 0, got;
        unsigned reports = 0, want_reports = 20 + (unsigned)round * 13;
        while (reports < want_reports && read(fds[0], &got, sizeof(got)) == sizeof(got)) {
            last = got;
            reports++;
        }
        kill(pid, SIGKILL);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st), "the writer stopped on its own (exit %d)", WEXITSTATUS(st));
        while (read(fds[0], &got, sizeof(got)) == sizeof(got))
            last = got;
        close(fds[0]);

        int rc = fa_agg_recover_shard(a, (unsigned)shard);
        forward += rc == 1;
        back += rc == -1;
        fa_agg_shard_release(a, (unsigned)shard);

        fa_agg_totals_t t;
        fa_agg_read(a, &t);
        uint64_t n = t.total - base_total; /* events of this round that were counted */
        uint64_t returned = last + 1;      /* the reports only cover every 64th event */
        cr_assert_geq(n, returned, "round %d: %llu counted, %llu returned", round,
                      (unsigned long long)n, (unsigned long long)returned);
        cr_assert_leq(n, returned + 64, "round %d: more counted than ever ran", round);
        cr_assert_eq(t.unique - base_unique, (n + 1) / 2, "round %d: unique", round);
        cr_assert(t.sum - base_sum == (__int128)(n * (n + 1) / 2), "round %d: sum", round);
        char key[48];
        for (uint64_t k = 0; k < (n + 1) / 2; k += 1 + k / 8) {
            snprintf(key, sizeof(key), "r%d-%llu", round, (unsigned long long)k);
            cr_assert(fa_agg_contains(a, key, strlen(key)), "round %d: lost key %s", round, key);
        }
        snprintf(key, sizeof(key), "r%d-%llu", round, (unsigned long long)((n + 1) / 2));
        cr_assert(!fa_agg_contains(a, key, strlen(key)), "round %d: uncounted key %s is in the set",
                  round, key);
        base_total = t.total;
        base_unique = t.unique;
        base_sum = t.sum;
    }
    cr_log_info("recoveries: %d rolled forward, %d rolled back", forward, back);
    fa_agg_destroy(a);
}

Test(agg, writer_killed_mid_event_is_recovered_consistently)
{
    kill_rounds(false, 24);
}

Test(agg, writer_killed_mid_batch_commit_leaves_whole_events)
{
    kill_rounds(true, 16);
}

/* The journal states a kill can leave, written by hand, and what recovery must make of them. */
Test(agg, recovery_follows_the_journal)
{
    fa_agg_t *a = make(64, 1);
    fa__agg_shard_t *sh = &a->shards[0];
    cr_assert_eq(add_str(a, 0, "x", 10), 0);
    cr_assert_eq(fa_agg_recover_shard(a, 0), 0, "a clean shard needs nothing");

    /* Killed after the journal, existing key: forward. */
    atomic_store(&sh->j_state, 1);
    atomic_store(&sh->j_has_cand, 0);
    atomic_store(&sh->j_val_lo, 5);
    atomic_store(&sh->j_val_hi, 0);
    atomic_store(&sh->seq, atomic_load(&sh->seq) + 1);
    expect_totals(a, 1, 1, 10); /* readers see the committed copy meanwhile */
    cr_assert_eq(fa_agg_recover_shard(a, 0), 1);
    expect_totals(a, 2, 1, 15);

    /* Killed before the journal was complete: back. */
    atomic_store(&sh->j_state, 0);
    atomic_store(&sh->seq, atomic_load(&sh->seq) + 1);
    cr_assert_eq(fa_agg_recover_shard(a, 0), -1);
    expect_totals(a, 2, 1, 15);

    /* New key journalled but its CAS never happened: back. */
    atomic_store(&sh->j_state, 1);
    atomic_store(&sh->j_has_cand, 1);
    atomic_store(&sh->j_slot, 3);
    atomic_store(&sh->j_word, 12345);
    atomic_store(&sh->seq, atomic_load(&sh->seq) + 1);
    cr_assert_eq(fa_agg_recover_shard(a, 0), -1);
    expect_totals(a, 2, 1, 15);

    /* New key whose CAS happened: forward, with a new user. */
    uint64_t h = fa__agg_hash(a, "x", 1);
    uint64_t slot = h & a->mask;
    uint64_t word = atomic_load(&a->table[slot]);
    cr_assert_neq(word, 0, "x sits in its home slot");
    atomic_store(&sh->j_state, 1); /* recovery cleared it */
    atomic_store(&sh->j_slot, slot);
    atomic_store(&sh->j_word, word);
    atomic_store(&sh->seq, atomic_load(&sh->seq) + 1);
    cr_assert_eq(fa_agg_recover_shard(a, 0), 1);
    expect_totals(a, 3, 2, 20);
    fa_agg_destroy(a);
}

Test(agg, reset_zeroes_everything_and_keys_count_again)
{
    fa_agg_t *a = make(64, 2);
    cr_assert_eq(add_str(a, 0, "a", 7), 0);
    cr_assert_eq(add_str(a, 1, "b", 8), 0);
    cr_assert_eq(fa_agg_reset(a), 0);
    expect_totals(a, 0, 0, 0);
    cr_assert(!fa_agg_contains(a, "a", 1));
    cr_assert_eq(add_str(a, 1, "a", 3), 0);
    expect_totals(a, 1, 1, 3);
    fa_agg_destroy(a);
}

static char *tmp_path(const char *name)
{
    static char dir[64];
    if (!dir[0]) {
        strcpy(dir, "/tmp/fa_agg_test_XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
    }
    char *p = malloc(128);
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

/* Writers keep adding (a distinct key per event) while the parent resets: whatever survives
   must be self-consistent, and the snapshot writer's key/count cross-check must agree. */
Test(agg, reset_under_concurrent_writers_stays_consistent)
{
    enum { NCHILD = 2, M = 30000 };
    fa_agg_t *a = make(2 * NCHILD * M, 8);
    pid_t pids[NCHILD];
    for (int c = 0; c < NCHILD; c++) {
        int shard = fa_agg_shard_claim(a);
        pids[c] = fork();
        if (pids[c] == 0) {
            char key[48];
            for (int i = 0; i < M; i++) {
                snprintf(key, sizeof(key), "c%d-%d", c, i);
                if (add_str(a, (unsigned)shard, key, 1) != 0)
                    _exit(1);
            }
            _exit(0);
        }
        fa_agg_shard_set_owner(a, (unsigned)shard, pids[c]);
    }
    for (int r = 0; r < 3; r++) {
        usleep(2000);
        fa_agg_reset(a);
    }
    for (int c = 0; c < NCHILD; c++) {
        int st;
        waitpid(pids[c], &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    fa_agg_totals_t t;
    fa_agg_read(a, &t);
    cr_assert_eq(t.unique, t.total);
    cr_assert(t.sum == (__int128)t.total);
    char err[256], *path = tmp_path("reset.snap");
    cr_assert_eq(fa_agg_snapshot_write(a, path, err, sizeof(err)), 0, "%s", err);
    free(path);
    fa_agg_destroy(a);
}

static fa_agg_t *sample(void)
{
    fa_agg_t *a = make(1000, 4);
    char key[48];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "user-%d", i % 300);
        cr_assert_eq(add_str(a, (unsigned)i % 4, key, dec(i % 2 ? "42.5" : "-3.25")), 0);
    }
    return a;
}

Test(agg, snapshot_round_trip)
{
    fa_agg_t *a = sample();
    char err[256], *path = tmp_path("rt.snap");
    cr_assert_eq(fa_agg_snapshot_write(a, path, err, sizeof(err)), 0, "%s", err);
    char before[FA_AGG_STATS_MAX], after[FA_AGG_STATS_MAX];
    fa_agg_render_stats(a, before, sizeof(before));

    fa_agg_t *b = make(1000, 4);
    cr_assert_eq(fa_agg_snapshot_load(b, path, err, sizeof(err)), 1, "%s", err);
    fa_agg_render_stats(b, after, sizeof(after));
    cr_assert_str_eq(after, before);
    cr_assert(fa_agg_contains(b, "user-299", 8));
    cr_assert_eq(add_str(b, 2, "user-17", 0), 0, "a restored key is not new");
    cr_assert_eq(add_str(b, 2, "brand-new", 0), 0);
    fa_agg_totals_t t;
    fa_agg_read(b, &t);
    cr_assert_eq(t.total, 502);
    cr_assert_eq(t.unique, 301);
    cr_assert_eq(fa_agg_snapshot_load(b, path, err, sizeof(err)), -1, "only into a fresh one");

    /* The snapshot of a restored aggregator carries the restored keys too. */
    cr_assert_eq(fa_agg_snapshot_write(b, path, err, sizeof(err)), 0, "%s", err);
    fa_agg_t *c = make(1000, 2);
    cr_assert_eq(fa_agg_snapshot_load(c, path, err, sizeof(err)), 1, "%s", err);
    fa_agg_read(c, &t);
    cr_assert_eq(t.unique, 301);
    struct stat st;
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    cr_assert_neq(stat(tmp, &st), 0, "no temporary file left behind");
    fa_agg_destroy(a);
    fa_agg_destroy(b);
    fa_agg_destroy(c);
    free(path);
}

Test(agg, snapshot_missing_is_fine)
{
    fa_agg_t *a = make(10, 1);
    char err[256], *path = tmp_path("does-not-exist.snap");
    cr_assert_eq(fa_agg_snapshot_load(a, path, err, sizeof(err)), 0);
    cr_assert(strstr(err, "no snapshot") != NULL, "%s", err);
    fa_agg_destroy(a);
    free(path);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    unsigned char *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static void spit(const char *path, const unsigned char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
}

/* Loads a damaged file into a fresh aggregator: must fail with `want` in the message, and leave
   the aggregator empty. */
static void expect_rejected(const char *path, const char *want, const char *what)
{
    fa_agg_t *b = make(1000, 4);
    char err[256] = "";
    cr_assert_eq(fa_agg_snapshot_load(b, path, err, sizeof(err)), -1, "%s: accepted", what);
    if (want)
        cr_assert(strstr(err, want) != NULL, "%s: message \"%s\" lacks \"%s\"", what, err, want);
    expect_totals(b, 0, 0, 0);
    cr_assert(!fa_agg_contains(b, "user-1", 6), "%s: keys left behind", what);
    fa_agg_destroy(b);
}

Test(agg, snapshot_damage_is_detected)
{
    fa_agg_t *a = sample();
    char err[256], *path = tmp_path("good.snap"), *bad = tmp_path("bad.snap");
    cr_assert_eq(fa_agg_snapshot_write(a, path, err, sizeof(err)), 0, "%s", err);
    size_t len;
    unsigned char *good = slurp(path, &len);
    unsigned char *buf = malloc(len);

    memcpy(buf, good, len);
    buf[0] ^= 0x20;
    spit(bad, buf, len);
    expect_rejected(bad, "magic", "wrong magic");

    memcpy(buf, good, len);
    buf[8] = 2;
    spit(bad, buf, len);
    expect_rejected(bad, "version", "other version");

    for (size_t at = 16; at < len; at += 7) { /* a flipped byte anywhere after the magic */
        memcpy(buf, good, len);
        buf[at] ^= 0x01;
        spit(bad, buf, len);
        expect_rejected(bad, NULL, "flipped byte");
    }
    memcpy(buf, good, len);
    buf[len / 2] ^= 0x40;
    spit(bad, buf, len);
    expect_rejected(bad, "checksum", "flipped payload byte");

    for (size_t cut = 0; cut < len; cut += (cut < 64 ? 1 : 97)) /* every header truncation */
    {
        spit(bad, good, cut);
        expect_rejected(bad, "trunc", "truncated");
    }
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, good, len);
    longer[len] = 0;
    spit(bad, longer, len + 1);
    expect_rejected(bad, "padded", "trailing byte");

    free(longer);
    free(buf);
    free(good);
    free(path);
    free(bad);
    fa_agg_destroy(a);
}
