/*
 * bench.h — what every micro-benchmark in perf/ times with: a monotonic clock in nanoseconds, the
 * median of a set of runs, and instruction counts from a re-run of the program under callgrind.
 * Header-only; included by the bench_*.c programs.
 */
#ifndef FA_PERF_BENCH_H
#define FA_PERF_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/**
 * Runs argv (argv[0] is normally the program itself, with arguments telling it to do `ops`
 * operations and nothing else) under valgrind --tool=callgrind, collecting only inside functions
 * matching `toggle` (a --toggle-collect pattern), and returns the instructions counted divided by
 * ops; -1 when valgrind is missing or the run failed. The child's output is discarded.
 */
static inline double bench_callgrind_per_op(const char *toggle, char *const argv[], double ops)
{
    char out[] = "/tmp/fa-bench-callgrind.XXXXXX";
    int fd = mkstemp(out);
    if (fd < 0)
        return -1;
    close(fd);
    fflush(stdout); /* or the child would print what is still buffered a second time */
    pid_t pid = fork();
    if (pid == 0) {
        char file[64], collect[128];
        snprintf(file, sizeof(file), "--callgrind-out-file=%s", out);
        snprintf(collect, sizeof(collect), "--toggle-collect=%s", toggle);
        char *args[32] = {"valgrind", "--tool=callgrind", collect, file};
        size_t n = 4;
        for (size_t i = 0; argv[i] && n + 1 < sizeof(args) / sizeof(args[0]); i++)
            args[n++] = argv[i];
        args[n] = NULL;
        if (!freopen("/dev/null", "w", stderr) || !freopen("/dev/null", "w", stdout))
            _exit(127); /* valgrind's banner and the child's own lines are noise here */
        execvp("valgrind", args);
        _exit(127);
    }
    int status;
    double per = -1;
    if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
        WEXITSTATUS(status) == 0) {
        FILE *f = fopen(out, "r");
        char line[256];
        while (f && fgets(line, sizeof(line), f)) {
            unsigned long long total;
            if (sscanf(line, "totals: %llu", &total) == 1 ||
                sscanf(line, "summary: %llu", &total) == 1) {
                per = (double)total / ops;
                break;
            }
        }
        if (f)
            fclose(f);
    }
    (void)unlink(out); /* a leftover temp file is harmless */
    return per;
}

#endif
