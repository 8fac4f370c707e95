/*
 * bench.h — what every micro-benchmark in perf/ times with: a monotonic clock in nanoseconds and
 * the median of a set of runs. Header-only; included by the bench_*.c programs.
 */
#ifndef FA_PERF_BENCH_H
#define FA_PERF_BENCH_H

#include <stdlib.h>
#include <time.h>

/** CLOCK_MONOTONIC in nanoseconds. */
static inline double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/** qsort comparator for doubles. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/** Sorts v[0..n) in place and returns its median (the upper one for even n). */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
    return v[n / 2];
}

#endif
