/*
 * bench_router.c — fa_router_match on a realistic 50-route API table.
 *
 * Four lookups, each timed on its own in a tight loop: a static route (POST /event, the 1MRC hot
 * path), a one-parameter route (GET /api/v1/users/:id), a wildcard route (GET below /static/)
 * and a miss (404, which also pays for the 405 check). Each figure is the median of 7 runs of
 * 2M lookups. Results feed a volatile sink so the calls cannot be dropped.
 *
 * Then, when valgrind is installed, each lookup runs again under callgrind with collection on
 * only inside fa_router_match, and the instruction count per call is printed: a figure that,
 * unlike nanoseconds, does not move with the other processes sharing the machine.
 *
 * Usage: bench_router            (timings, then instruction counts)
 *        bench_router --one KIND N   (N lookups of KIND and exit; what callgrind runs)
 */
#include "bench.h"
#include "router.h"
#include "support/api_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>


typedef struct {
    const char *name;
    fa_method_t method;
    const char *path;
    fa_route_result_t want;
} lookup_t;

static const lookup_t lookups[] = {
    {"static", FA_METHOD_POST, "/event", FA_ROUTE_FOUND},
    {"param", FA_METHOD_GET, "/api/v1/users/12345", FA_ROUTE_FOUND},
    {"wildcard", FA_METHOD_GET, "/static/css/app.min.css", FA_ROUTE_FOUND},
    {"miss", FA_METHOD_GET, "/api/v1/nothing/here", FA_ROUTE_NOT_FOUND},
};

#define RUNS  7
#define ITERS 2000000

static volatile uintptr_t sink;

static fa_router_t *build(void)
{
    fa_router_t *r = fa_router_new();
    char err[128];
    for (size_t i = 0; i < FA_ARRAY_SIZE(api); i++) {
        if (fa_router_add(r, api[i].method, api[i].pattern, (void *)&api[i], err, sizeof(err)) <
            0) {
            fprintf(stderr, "bench_router: %s: %s\n", api[i].pattern, err);
            exit(1);
        }
    }
    fa_router_compile(r);
    return r;
}

/* Runs n lookups; the sum of results, payloads and parameter lengths goes to the sink. */
static void run(const fa_router_t *r, const lookup_t *l, long n)
{
    size_t len = strlen(l->path);
    uintptr_t acc = 0;
    fa_route_match_t m;
    for (long i = 0; i < n; i++) {
        fa_route_result_t res = fa_router_match(r, l->method, l->path, len, &m);
        acc += (uintptr_t)res + (uintptr_t)m.data + m.nparams +
               (m.nparams ? m.params[0].value.len : 0);
    }
    sink = acc;
}

/* Instructions per fa_router_match call for one lookup, or -1 when callgrind did not run. */
static double instr_per_op(const char *self, const char *kind)
{
    const long n = 100000;
    char count[32];
    snprintf(count, sizeof(count), "%ld", n);
    char *argv[] = {(char *)self, "--one", (char *)kind, count, NULL};
    return bench_callgrind_per_op("fa_router_match", argv, (double)n);
}

int main(int argc, char **argv)
{
    fa_router_t *r = build();

    if (argc == 4 && strcmp(argv[1], "--one") == 0) {
        for (size_t k = 0; k < FA_ARRAY_SIZE(lookups); k++)
            if (strcmp(lookups[k].name, argv[2]) == 0)
                run(r, &lookups[k], atol(argv[3]));
        fa_router_free(r);
        return 0;
    }

    double median[FA_ARRAY_SIZE(lookups)];
    for (size_t k = 0; k < FA_ARRAY_SIZE(lookups); k++) {
        const lookup_t *l = &lookups[k];
        fa_route_match_t m;
        if (fa_router_match(r, l->method, l->path, strlen(l->path), &m) != l->want) {
            fprintf(stderr, "bench_router: %s %s gave an unexpected result\n",
                    fa_method_name(l->method), l->path);
            return 1;
        }
        run(r, l, ITERS / 10); /* warm-up */
        double t[RUNS];
        for (int i = 0; i < RUNS; i++) {
            double t0 = bench_now_ns();
            run(r, l, ITERS);
            t[i] = (bench_now_ns() - t0) / ITERS;
        }
        qsort(t, RUNS, sizeof(t[0]), bench_cmp_double);
        median[k] = t[RUNS / 2];
        printf("bench: router.%s %.1f ns/op\n", l->name, median[k]);
    }

    double instr[FA_ARRAY_SIZE(lookups)];
    /* valgrind must be given this program's real path: /proc/self/exe would be valgrind. */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    bool have_instr = n > 0 && access("/usr/bin/valgrind", X_OK) == 0;
    if (n > 0)
        self[n] = '\0';
    for (size_t k = 0; have_instr && k < FA_ARRAY_SIZE(lookups); k++) {
        instr[k] = instr_per_op(self, lookups[k].name);
        if (instr[k] < 0) {
            have_instr = false;
            break;
        }
        printf("bench: router.%s.instr %.0f instr/op\n", lookups[k].name, instr[k]);
    }

    printf("\n%zu routes; median of %d runs of %d lookups\n", FA_ARRAY_SIZE(api), RUNS, ITERS);
    printf("%-9s %-8s %-26s %10s %12s %12s\n", "lookup", "method", "path", "ns/op", "Mlookups/s",
           "instr/op");
    for (size_t k = 0; k < FA_ARRAY_SIZE(lookups); k++) {
        const lookup_t *l = &lookups[k];
        printf("%-9s %-8s %-26s %10.1f %12.1f", l->name, fa_method_name(l->method), l->path,
               median[k], 1e3 / median[k]);
        if (have_instr)
            printf(" %12.0f", instr[k]);
        printf("\n");
    }
    fa_router_free(r);
    return 0;
}
