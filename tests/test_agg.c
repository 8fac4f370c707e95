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

/*
 * A child adds events (event i: key "r<round>-<i/2>", value i + 1 nanos) and reports each one
 * that returned through a pipe; the parent kills it with SIGKILL at a varying moment, recovers the
 * shard, and checks the aggregate against what the child reported: R events returned, so the
 * shard holds R or R + 1 events (the one in flight), and then exactly that prefix: the sum, the
 * unique count, and the key set (a key is in the table iff its event was counted).
 */
Test(agg, writer_killed_mid_event_is_recovered_consistently)
{
    /* A child stops after 40000 events (20000 keys) and waits to be killed: 24 rounds fit. */
    fa_agg_t *a = make(700000, 4);
    uint64_t base_total = 0, base_unique = 0;
    __int128 base_sum = 0;
    int forward = 0, back = 0;
    for (int round = 0; round < 24; round++) {
        int shard = fa_agg_shard_claim(a);
        cr_assert_geq(shard, 0);
        int fds[2];
        cr_assert_eq(pipe(fds), 0);
        (void)fcntl(fds[1], F_SETPIPE_SZ, 4096); /* best effort: keeps the child close behind */
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            close(fds[0]);
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
