/*
 * bench_agg.c — the aggregator's hot paths on realistic input: 10-byte user ids, decimal values.
 *
 *   agg.add            one writer, existing key (the common case: a returning user)
 *   agg.add_2w         two processes adding at once, each on its own shard (per-writer ns/op)
 *   agg.add_new_key    one writer, every key new (table CAS + arena bump)
 *   agg.stats_1m_users render /stats with 1,000,000 users loaded (8 shards, as 4x 2 workers)
 *   agg.mem_1m_users   resident memory of the mapping after 1,000,000 distinct 10-byte keys
 *   agg.mem_1m_users_cap2m_2w  the same at the shipped capacity (2,000,000), with the key caches
 *                      of two workers (this process's, full, counted by RSS, and one more)
 *   agg.users<N>_*     the 1MRC pattern: N returning "user_<n>" keys (100, 75,000, 1,000,000:
 *                      more than the key cache holds) in random order, at the shipped capacity
 *                      (2,000,000) unless the name says cap200k; "plain" is fa_agg_add without
 *                      the worker's key cache (the path before it existed), "cache" the worker's
 *                      path (fa_agg_worker_init), "many" fa_agg_add_many in batches of 1000;
 *                      "nocache" without the cache; "parse" parses each event's value
 *                      ("42.5", fa_dec_parse) before fa_agg_add, as the aggregate stage does;
 *                      "prepared" the stage's order: fa_agg_key_prepare, parse the value, then
 *                      fa_agg_add_prepared (the key's misses overlap with the parse and each
 *                      other). Thread CPU time per event, not wall time.
 *                      "bench_agg users [substring]" runs only these.
 *
 * Each figure is the median of 5 runs. Prints "bench: <name> <value> <unit>" lines, then a table.
 */
#include "bench.h"
#include "agg_internal.h"
#include "decimal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNS  5
#define USERS 1000000

/* CPU time of this thread: on a shared, loaded machine wall time mostly measures the others. */
static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static fa_agg_t *make(size_t capacity, unsigned nshards)
{
    char err[128];
    fa_agg_t *a = fa_agg_create(capacity, nshards, err, sizeof(err));
    if (!a) {
        fprintf(stderr, "bench_agg: %s\n", err);
        exit(1);
    }
    return a;
}

/* "u000000042": 10 bytes, formatted by hand so the timed loops measure the aggregator. */
static void key_of(char key[16], unsigned i)
{
    key[0] = 'u';
    for (int d = 9; d >= 1; d--, i /= 10)
        key[d] = (char)('0' + i % 10);
    key[10] = '\0';
}

/* Adds n events cycling over nkeys known keys on shard; returns ns/op. */
static double run_existing(fa_agg_t *a, unsigned shard, unsigned nkeys, long n)
{
    char keys[64][16];
    for (unsigned k = 0; k < nkeys; k++)
        key_of(keys[k], k + shard * 1000);
    __int128 v;
    fa_dec_parse("42.5", 4, &v);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        if (fa_agg_add(a, shard, keys[i % nkeys], 10, v) != 0)
            abort();
    return (bench_now_ns() - t0) / (double)n;
}

static double bench_add(void)
{
    double r[RUNS];
    fa_agg_t *a = make(1024, 8);
    for (int i = 0; i < RUNS; i++)
        r[i] = run_existing(a, 0, 64, 2000000);
    fa_agg_destroy(a);
    return bench_median(r, RUNS);
}

/* Two children hammer their own shards; each reports its ns/op through a shared page. */
static double bench_add_2w(void)
{
    double r[RUNS];
    fa_agg_t *a = make(1024, 8);
    double *out = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (int run = 0; run < RUNS; run++) {
        pid_t pid[2];
        for (int w = 0; w < 2; w++) {
            pid[w] = fork();
            if (pid[w] == 0) {
                out[w] = run_existing(a, (unsigned)w, 64, 2000000);
                _exit(0);
            }
        }
        for (int w = 0; w < 2; w++)
            waitpid(pid[w], NULL, 0);
        r[run] = (out[0] + out[1]) / 2;
    }
    munmap(out, 4096);
    fa_agg_destroy(a);
    return bench_median(r, RUNS);
}

/* Fills a fresh aggregator with n distinct keys; returns ns/op. */
static double fill(fa_agg_t *a, unsigned n)
{
    char key[16];
    double t0 = bench_now_ns();
    for (unsigned i = 0; i < n; i++) {
        key_of(key, i);
        if (fa_agg_add(a, 0, key, 10, 1) != 0)
            abort();
    }
    return (bench_now_ns() - t0) / n;
}

static double bench_add_new_key(void)
{
    double r[RUNS];
    for (int run = 0; run < RUNS; run++) {
        fa_agg_t *a = make(500000, 8);
        r[run] = fill(a, 500000);
        fa_agg_destroy(a);
    }
    return bench_median(r, RUNS);
}

/* The 1MRC key pattern: nusers "user_<n>" ids, events in a fixed random order. */
#define SEQ_LEN (1u << 20)
static char (*ukeys)[16];
static unsigned char *ulens;
static uint32_t *useq;

static void users_prepare(unsigned nusers)
{
    ukeys = realloc(ukeys, nusers * sizeof(*ukeys));
    ulens = realloc(ulens, nusers);
    useq = realloc(useq, SEQ_LEN * sizeof(*useq));
    for (unsigned i = 0; i < nusers; i++)
        ulens[i] = (unsigned char)snprintf(ukeys[i], sizeof(ukeys[i]), "user_%u", i);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (unsigned i = 0; i < SEQ_LEN; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        useq[i] = (uint32_t)(x % nusers);
    }
}

/* PLAIN: fa_agg_add without the worker's cache; PARSE: each value parsed in the loop; PREPARED:
 * with PARSE, the key prepared before the parse (fa_agg_add_prepared). */
enum { PLAIN = 0, CACHE = 1, MANY = 2, PARSE = 4, PREPARED = 8 };

/* Runs the events of useq (after one warm-up pass that inserts every key); returns ns/op. */
static double bench_users(unsigned nusers, size_t capacity, int mode)
{
    users_prepare(nusers);
    double r[RUNS];
    fa_agg_t *a = make(capacity, 8);
    if ((mode & CACHE) && fa_agg_worker_init(a) != 0)
        abort();
    __int128 v;
    fa_dec_parse("42.5", 4, &v);
    for (unsigned i = 0; i < nusers; i++)
        if (fa_agg_add(a, 0, ukeys[i], ulens[i], v) != 0)
            abort();
    enum { BATCH = 1000 };
    static fa_agg_item_t items[BATCH];
    for (int run = 0; run < RUNS; run++) {
        double t0 = cpu_ns();
        if (mode & MANY) {
            for (unsigned i = 0; i < SEQ_LEN; i += BATCH) {
                unsigned n = FA_MIN(BATCH, SEQ_LEN - i);
                for (unsigned j = 0; j < n; j++)
                    items[j] = (fa_agg_item_t){
                        .key = ukeys[useq[i + j]], .keylen = ulens[useq[i + j]], .value = v};
                fa_agg_add_many(a, 0, items, n);
                for (unsigned j = 0; j < n; j++)
                    if (items[j].result != 0)
                        abort();
            }
        } else if (mode & (PARSE | PREPARED)) {
            static const char *const vals[4] = {"42.5", "7", "1234.25", "0.5"};
            static const size_t vlens[4] = {4, 1, 7, 3};
            for (unsigned i = 0; i < SEQ_LEN; i++) {
                const char *k = ukeys[useq[i]];
                size_t kl = ulens[useq[i]];
                __int128 x;
                int rc;
                if (mode & PREPARED) {
                    fa_agg_key_t pk;
                    fa_agg_key_prepare(a, k, kl, &pk);
                    if (fa_dec_parse(vals[i & 3], vlens[i & 3], &x) != 0)
                        abort();
                    rc = fa_agg_add_prepared(a, 0, &pk, x);
                } else {
                    if (fa_dec_parse(vals[i & 3], vlens[i & 3], &x) != 0)
                        abort();
                    rc = fa_agg_add(a, 0, k, kl, x);
                }
                if (rc != 0)
                    abort();
            }
        } else {
            for (unsigned i = 0; i < SEQ_LEN; i++)
                if (fa_agg_add(a, 0, ukeys[useq[i]], ulens[useq[i]], v) != 0)
                    abort();
        }
        r[run] = (cpu_ns() - t0) / SEQ_LEN;
    }
    fa_agg_totals_t t;
    fa_agg_read(a, &t);
    if (t.unique != nusers || t.total != nusers + (uint64_t)RUNS * SEQ_LEN)
        abort();
    fa_agg_destroy(a);
    return bench_median(r, RUNS);
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static double stats_us(const fa_agg_t *a)
{
    char buf[FA_AGG_STATS_MAX];
    double r[RUNS];
    for (int run = 0; run < RUNS; run++) {
        double t0 = bench_now_ns();
        for (int i = 0; i < 10000; i++)
            if (!fa_agg_render_stats(a, buf, sizeof(buf)))
                abort();
        r[run] = (bench_now_ns() - t0) / 10000 / 1000;
    }
    return bench_median(r, RUNS);
}

int main(int argc, char **argv)
{
    /* "bench_agg users [substring]" runs only the 1MRC-pattern figures (quick A/B comparisons),
       or those whose name contains the substring. */
    bool only_users = argc > 1 && strcmp(argv[1], "users") == 0;
    struct {
        const char *name;
        unsigned nusers;
        size_t capacity;
        int mode;
    } uf[] = {
        {"agg.users100_plain", 100, 2000000, PLAIN},
        {"agg.users100_cache", 100, 2000000, CACHE},
        {"agg.users75k_plain", 75000, 2000000, PLAIN},
        {"agg.users75k_cache", 75000, 2000000, CACHE},
        {"agg.users75k_many_nocache", 75000, 2000000, MANY},
        {"agg.users75k_many", 75000, 2000000, CACHE | MANY},
        {"agg.users75k_cap200k_plain", 75000, 200000, PLAIN},
        {"agg.users75k_cap200k_cache", 75000, 200000, CACHE},
        {"agg.users1m_plain", 1000000, 2000000, PLAIN},
        {"agg.users1m_cache", 1000000, 2000000, CACHE},
        {"agg.users1m_many", 1000000, 2000000, CACHE | MANY},
        {"agg.users75k_parse", 75000, 2000000, CACHE | PARSE},
        {"agg.users75k_prepared", 75000, 2000000, CACHE | PREPARED},
        {"agg.users1m_parse", 1000000, 2000000, CACHE | PARSE},
        {"agg.users1m_prepared", 1000000, 2000000, CACHE | PREPARED},
    };
    for (size_t i = 0; i < FA_ARRAY_SIZE(uf); i++)
        if (!only_users || argc < 3 || strstr(uf[i].name, argv[2]))
            printf("bench: %s %.1f ns/op\n", uf[i].name,
                   bench_users(uf[i].nusers, uf[i].capacity, uf[i].mode));
    if (only_users)
        return 0;

    double add = bench_add();
    double add2 = bench_add_2w();
    double addnew = bench_add_new_key();

    long rss0 = rss_kib();
    fa_agg_t *a = make(USERS, 8);
    double fill_ns = fill(a, USERS);
    long rss1 = rss_kib();
    double mem_mib = (double)(rss1 - rss0) / 1024;
    double used_mib = (double)fa_agg_memory_used(a) / (1024 * 1024);
    double st = stats_us(a);
    char buf[FA_AGG_STATS_MAX];
    fa_agg_render_stats(a, buf, sizeof(buf));
    fa_agg_destroy(a);

    /* A worker's view at the shipped capacity: the shared mapping with 1,000,000 keys plus this
       process's key cache once full, plus the other worker's cache (same size). */
    rss0 = rss_kib();
    a = make(2000000, 8);
    if (fa_agg_worker_init(a) != 0)
        abort();
    fill(a, USERS);
    char key[16];
    for (unsigned i = 0; i < USERS; i++) {
        key_of(key, i);
        if (fa_agg_add(a, 0, key, 10, 1) != 0)
            abort();
    }
    fa__agg_cache_stats_t cst;
    fa__agg_cache_stats(&cst);
    double mem2w_mib = (double)(rss_kib() - rss0) / 1024 + (double)cst.bytes / (1024 * 1024);
    fa_agg_destroy(a);

    fa_agg_t *wide = make(USERS, 256);
    fill(wide, USERS);
    double st256 = stats_us(wide);
    fa_agg_destroy(wide);

    printf("bench: agg.add %.1f ns/op\n", add);
    printf("bench: agg.add_2w %.1f ns/op\n", add2);
    printf("bench: agg.add_new_key %.1f ns/op\n", addnew);
    printf("bench: agg.stats_1m_users %.2f us\n", st);
    printf("bench: agg.mem_1m_users %.1f MiB\n", mem_mib);
    printf("bench: agg.mem_1m_users_cap2m_2w %.1f MiB\n", mem2w_mib);
    printf("\n%-34s %12s\n", "aggregator", "value");
    printf("%-34s %9.1f ns  (%.1f M ops/s)\n", "add, existing key, 1 writer", add, 1e3 / add);
    printf("%-34s %9.1f ns  (per writer)\n", "add, existing key, 2 processes", add2);
    printf("%-34s %9.1f ns\n", "add, new key (500k fill)", addnew);
    printf("%-34s %9.1f ns\n", "add, new key (1M fill)", fill_ns);
    printf("%-34s %9.2f us\n", "stats, 1M users, 8 shards", st);
    printf("%-34s %9.2f us\n", "stats, 1M users, 256 shards", st256);
    printf("%-34s %9.1f MiB (RSS delta)\n", "memory, 1M 10-byte keys", mem_mib);
    printf("%-34s %9.1f MiB (fa_agg_memory_used)\n", "", used_mib);
    printf("%-34s %9.1f MiB (RSS delta + 2nd cache)\n", "  capacity 2M, 2 workers' caches",
           mem2w_mib);
    printf("stats body: %s\n", buf);
    return 0;
}
