/*
 * bench_counters.c — the cost the operational counters add to every response, and of reading them.
 *
 *   counters.record      fa_counters_record with realistic latencies (20 us .. 5 ms), one writer
 *   counters.read_8w     fa_counters_read (GET /stats?server=1, /metrics) with 8 live slots
 *   counters.requests    fa_counters_requests (the master's STATUS= line) with 8 live slots
 *
 * Each figure is the median of 5 runs. Prints "bench: <name> <value> <unit>" lines.
 */
#include "bench.h"
#include "counters.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define RUNS 5

int main(void)
{
    char err[128];
    fa_counters_t *c = fa_counters_create(err, sizeof(err));
    if (!c) {
        fprintf(stderr, "bench_counters: %s\n", err);
        return 1;
    }
    fa_counters_slot_t *slots[8];
    for (unsigned i = 0; i < 8; i++)
        slots[i] = fa_counters_slot_open(c, i, i, 1);

    /* Latencies as a worker sees them: mostly tens of microseconds, a tail to milliseconds. */
    enum { NLAT = 1024, N = 20000000, READS = 2000 };
    static double lat[NLAT];
    srand(42);
    for (int i = 0; i < NLAT; i++)
        lat[i] = (i % 100 == 0 ? 5e-3 : 20e-6) * (1 + (double)(rand() % 100) / 100);

    double rec[RUNS], rd[RUNS], rq[RUNS];
    fa_counters_view_t *v = malloc(sizeof(*v));
    uint64_t sink = 0;
    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now_ns();
        for (int i = 0; i < N; i++)
            fa_counters_record(slots[0], i % 50 ? 200 : 404, lat[i & (NLAT - 1)]);
        rec[r] = (bench_now_ns() - t0) / N;

        t0 = bench_now_ns();
        for (int i = 0; i < READS; i++) {
            fa_counters_read(c, v);
            sink += v->requests;
        }
        rd[r] = (bench_now_ns() - t0) / READS;

        t0 = bench_now_ns();
        for (int i = 0; i < READS * 10; i++)
            sink += fa_counters_requests(c);
        rq[r] = (bench_now_ns() - t0) / (READS * 10);
    }
    printf("bench: counters.record %.2f ns/op\n", bench_median(rec, RUNS));
    printf("bench: counters.read_8w %.1f us/op\n", bench_median(rd, RUNS) / 1e3);
    printf("bench: counters.requests %.2f us/op\n", bench_median(rq, RUNS) / 1e3);
    fprintf(stderr, "(sink %llu)\n", (unsigned long long)sink);
    free(v);
    fa_counters_destroy(c);
    return 0;
}
