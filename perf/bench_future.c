/*
 * bench_future.c — the cost of futures on the hot path: create+resolve, then on a ready and on a
 * pending future, a chain of 10, when_all over 1000, and allocator calls per link after warm-up.
 *
 * Every figure is the whole operation it names, including the scheduler drain that runs the
 * continuations (resolution never runs them on the spot) and the recycling of every object:
 *   create_resolve   promise + resolve + cancel (nobody waits)
 *   then_ready       a ready future + then (runs inline: see future.h, Scheduling) + taking the
 *                    result (fa_future_get)
 *   then_ready_done  the same with the result consumed by a done callback (always queued)
 *   then_pending     promise + then registered before the resolve + done + resolve + the drain
 *                    running the then callback and the done callback
 *   chain10          the same with 10 then links; the figure is per chain (per link: / 10)
 *   when_all_1000    1,000 promises + when_all + done + 1,000 resolves + the drain
 * Ops run in batches of BATCH and the drain runs once per batch, as a worker drains once per loop
 * iteration. Callbacks are called through pointers the compiler cannot see through. Each figure
 * is the median of RUNS runs; then, when valgrind is installed, each runs again under callgrind
 * (collecting only inside the op_* batch functions) for its instruction count per op, a figure
 * that the noise of a shared machine does not move.
 *
 *   build/perf/bench_future            the figures
 *   build/perf/bench_future NAME N     run only NAME N times, untimed (what callgrind runs)
 */
#include "bench.h"
#include "alloc.h"
#include "future.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNS 7
#define BATCH 64

static fa_sched_t S;
static int64_t sink;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static fa_result_t add_one(fa_sched_t *s, void *data, fa_value_t v)
{
    (void)s;
    (void)data;
    return fa_ok_int(v.i + 1);
}

static void on_done(fa_sched_t *s, void *data, const fa_result_t *r)
{
    (void)s;
    (void)data;
    sink += r->value.i;
}

/* The callbacks are read through volatile pointers so that the compiler cannot see through them
 * and inline add_one into a then on a ready future: every figure pays a real indirect call, as a
 * callback from another file would. */
static fa_then_cb volatile add_one_p = add_one;
static fa_done_cb volatile on_done_p = on_done;

static void must(int rc)
{
    if (rc) {
        fprintf(stderr, "bench_future: unexpected error %d\n", rc);
        exit(1);
    }
}

/* One batch of each benchmark; returns the number of ops it did. */

static size_t op_create_resolve(void)
{
    for (int i = 0; i < BATCH; i++) {
        fa_promise_t p;
        fa_future_t f;
        must(fa_promise_new(&S, &p, &f));
        must(fa_promise_resolve(p, FA_VALUE_INT(i)));
        must(fa_future_cancel(f)); /* recycles it: nobody waits */
    }
    return BATCH;
}

/* A ready future, a then on it (which runs inline: see future.h, Scheduling) and the result
 * taken out of the new future. */
static size_t op_then_ready(void)
{
    fa_then_cb cb = add_one_p;
    for (int i = 0; i < BATCH; i++) {
        fa_future_t f, g;
        fa_result_t r;
        must(fa_future_ready(&S, FA_VALUE_INT(i), &f));
        must(fa_future_then(f, cb, NULL, &g));
        must(fa_future_get(g, &r));
        sink += r.value.i;
    }
    return BATCH;
}

/* The same, but the result consumed by a done callback, which always runs from the drain: the
 * ready-then plus one queue round trip. */
static size_t op_then_ready_done(void)
{
    fa_then_cb cb = add_one_p;
    fa_done_cb done = on_done_p;
    for (int i = 0; i < BATCH; i++) {
        fa_future_t f, g;
        must(fa_future_ready(&S, FA_VALUE_INT(i), &f));
        must(fa_future_then(f, cb, NULL, &g));
        must(fa_future_done(&g, done, NULL));
    }
    fa_sched_drain(&S, SIZE_MAX);
    return BATCH;
}

static size_t op_then_pending(void)
{
    fa_then_cb cb = add_one_p;
    fa_done_cb done = on_done_p;
    fa_promise_t p[BATCH];
    for (int i = 0; i < BATCH; i++) {
        fa_future_t f, g;
        must(fa_promise_new(&S, &p[i], &f));
        must(fa_future_then(f, cb, NULL, &g));
        must(fa_future_done(&g, done, NULL));
    }
    for (int i = 0; i < BATCH; i++)
        must(fa_promise_resolve(p[i], FA_VALUE_INT(i)));
    fa_sched_drain(&S, SIZE_MAX);
    return BATCH;
}

static size_t op_chain10(void)
{
    fa_then_cb cb = add_one_p;
    fa_done_cb done = on_done_p;
    fa_promise_t p[BATCH];
    for (int i = 0; i < BATCH; i++) {
        fa_future_t f;
        must(fa_promise_new(&S, &p[i], &f));
        for (int k = 0; k < 10; k++)
            must(fa_future_then(f, cb, NULL, &f));
        must(fa_future_done(&f, done, NULL));
    }
    for (int i = 0; i < BATCH; i++)
        must(fa_promise_resolve(p[i], FA_VALUE_INT(i)));
    fa_sched_drain(&S, SIZE_MAX);
    return BATCH;
}

static fa_promise_t all_p[1000];
static fa_future_t all_f[1000];
static fa_value_t all_v[1000];

static size_t op_when_all_1000(void)
{
    fa_done_cb done = on_done_p;
    fa_future_t out;
    for (int i = 0; i < 1000; i++)
        must(fa_promise_new(&S, &all_p[i], &all_f[i]));
    must(fa_when_all(&S, all_f, 1000, all_v, &out));
    must(fa_future_done(&out, done, NULL));
    for (int i = 0; i < 1000; i++)
        must(fa_promise_resolve(all_p[i], FA_VALUE_INT(i)));
    fa_sched_drain(&S, SIZE_MAX);
    return 1;
}

typedef struct {
    const char *name;
    size_t (*batch)(void);
    size_t batches; /* per run */
    size_t cg_ops;  /* ops run under callgrind */
    double median;
    double instr; /* per op, -1 if callgrind did not run */
} bench_t;

static bench_t benches[] = {
    {"future.create_resolve", op_create_resolve, 20000, 64000, 0, -1},
    {"future.then_ready", op_then_ready, 20000, 64000, 0, -1},
    {"future.then_ready_done", op_then_ready_done, 20000, 64000, 0, -1},
    {"future.then_pending", op_then_pending, 20000, 64000, 0, -1},
    {"future.chain10", op_chain10, 4000, 6400, 0, -1},
    {"future.when_all_1000", op_when_all_1000, 400, 64, 0, -1},
};

/* Instructions per op of b under callgrind (collection on only inside op_* functions), or -1. */
static double instr_per_op(const char *self, const bench_t *b)
{
    char count[32];
    snprintf(count, sizeof(count), "%zu", b->cg_ops);
    char *argv[] = {(char *)self, (char *)b->name, count, NULL};
    return bench_callgrind_per_op("op_*", argv, (double)b->cg_ops);
}

static double measure(bench_t *b)
{
    double runs[RUNS];
    for (size_t i = 0; i < b->batches / 10; i++) /* warm-up */
        b->batch();
    for (int r = 0; r < RUNS; r++) {
        size_t ops = 0;
        double t0 = now_ns();
        for (size_t i = 0; i < b->batches; i++)
            ops += b->batch();
        runs[r] = (now_ns() - t0) / (double)ops;
    }
    qsort(runs, RUNS, sizeof(runs[0]), bench_cmp_double);
    return runs[RUNS / 2];
}

int main(int argc, char **argv)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    fa_sched_conf_t conf = {.futures_init = 4096, .aux_init = 16};
    fa_sched_init(&S, loop, &conf);

    if (argc == 3) { /* untimed, for callgrind: instructions per op = total / N */
        for (size_t i = 0; i < FA_ARRAY_SIZE(benches); i++) {
            if (strcmp(argv[1], benches[i].name) != 0)
                continue;
            size_t n = strtoul(argv[2], NULL, 10), ops = 0;
            while (ops < n)
                ops += benches[i].batch();
            printf("%s: %zu ops\n", argv[1], ops);
        }
        fa_sched_fini(&S);
        ev_loop_destroy(loop);
        return 0;
    }

    for (size_t i = 0; i < FA_ARRAY_SIZE(benches); i++) {
        benches[i].median = measure(&benches[i]);
        printf("bench: %s %.1f ns/op\n", benches[i].name, benches[i].median);
    }

    /* Allocator calls per pending link, after the warm-up above: 10,000 chains of 10. */
    uint64_t before = fa_alloc_count();
    for (int i = 0; i < 1000; i++)
        op_chain10();
    uint64_t allocs = fa_alloc_count() - before;
    printf("bench: future.allocs_per_link %.3f count\n", (double)allocs / (1000.0 * BATCH * 10));

    /* valgrind must be given this program's real path: /proc/self/exe would be valgrind. */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    bool have_instr = n > 0 && access("/usr/bin/valgrind", X_OK) == 0;
    if (n > 0)
        self[n] = '\0';
    for (size_t i = 0; have_instr && i < FA_ARRAY_SIZE(benches); i++) {
        benches[i].instr = instr_per_op(self, &benches[i]);
        if (benches[i].instr < 0)
            break;
        printf("bench: %s.instr %.0f instr/op\n", benches[i].name, benches[i].instr);
    }

    fa_sched_stats_t st;
    fa_sched_stats(&S, &st);
    printf("\n%-24s %12s %12s %16s\n", "op", "ns/op", "instr/op", "per link/input");
    static const char *per[] = {"-", "1 link", "1 link + done", "1 link", "/ 10", "/ 1000"};
    static const double div[] = {1, 1, 1, 1, 10, 1000};
    for (size_t i = 0; i < FA_ARRAY_SIZE(benches); i++) {
        printf("%-24s %12.1f %12.0f", benches[i].name + 7, benches[i].median, benches[i].instr);
        if (div[i] > 1)
            printf(" %9.1f ns %4.0f i\n", benches[i].median / div[i], benches[i].instr / div[i]);
        else
            printf(" %16s\n", per[i]);
    }
    printf("(median of %d runs, batches of %d, drain included; %lu allocator calls after "
           "warm-up; %u futures in slabs; sink %ld)\n",
           RUNS, BATCH, (unsigned long)allocs, st.futures_total, (long)sink);
    if (fa_sched_fini(&S) != 0)
        fprintf(stderr, "bench_future: futures leaked\n");
    ev_loop_destroy(loop);
    return 0;
}
