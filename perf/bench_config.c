/*
 * bench_config.c — how long loading and checking the shipped configuration takes: the cost of a
 * start-up, a `fasterapid -t` and a reload. Not a hot path; the figure is here so a regression in
 * the YAML tree or the checks (say, something quadratic) shows up.
 *
 * Reads conf/fasterapid.yaml once (FA_SRCDIR or the current directory), then times
 * fa_config_load_buf on it: median of 7 runs of 2000 loads each.
 */
#include "bench.h"
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { RUNS = 7, LOADS = 2000 };

int main(void)
{
    char path[4096];
    const char *dir = getenv("FA_SRCDIR");
    snprintf(path, sizeof(path), "%s%sconf/fasterapid.yaml", dir ? dir : "", dir ? "/" : "");
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    static char buf[1 << 16];
    size_t len = fread(buf, 1, sizeof(buf), f);
    fclose(f);

    double per_load[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now_ns();
        for (int i = 0; i < LOADS; i++) {
            fa_errbuf_t errs = {0};
            fa_config_t *c = fa_config_load_buf(path, buf, len, NULL, 0, &errs);
            if (!c) {
                fputs(errs.text, stderr);
                return 1;
            }
            fa_config_free(c);
        }
        per_load[r] = (bench_now_ns() - t0) / LOADS;
    }
    qsort(per_load, RUNS, sizeof(per_load[0]), bench_cmp_double);
    double med = per_load[RUNS / 2];
    printf("bench: config_load_shipped %.0f ns/op\n", med);
    printf("bench: config_load_shipped_rate %.0f ops/s\n", 1e9 / med);
    printf("\n  %-28s %10s %10s %10s\n",
           "config load (shipped, "
           "bytes)",
           "min ns", "median", "max");
    printf("  %-28zu %10.0f %10.0f %10.0f\n", len, per_load[0], med, per_load[RUNS - 1]);
    return 0;
}
