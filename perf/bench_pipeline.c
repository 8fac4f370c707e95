/*
 * bench_pipeline.c — the stages of POST /event on the 1MRC body, without a connection.
 *
 * The shipped config is loaded and compiled; the stages of "POST /event" run directly on a request
 * whose body is {"userId":"user_42","value":42.5}:
 *   pipeline.parse_validate   parse_json + validate (the target: <= 150 ns)
 *   pipeline.parse_validate_aggregate   + aggregate into a private aggregator (75,000 users)
 * USERS=N (default 75000, the 1MRC's) sets how many distinct userIds the bodies cycle through.
 * Each figure is the median of 7 runs; the request pool is reset between requests as a
 * connection does. Also prints allocator calls per request (must be 0 after warm-up).
 */
#include "bench.h"
#include "agg.h"
#include "alloc.h"
#include "app.h"
#include "config.h"
#include "stage.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static fa_worker_t worker;
static fa_req_t req;
static fa_pool_t pool;
static const fa_stage_t *stages;
static char bodies[75000][48];
static unsigned nusers = 75000;
static size_t lens[75000];

/* Runs the first n stages for body i; returns 1 if they all passed. */
static int run_once(unsigned n, unsigned i)
{
    fa_pool_reset(&pool);
    req.body = (fa_str_t){bodies[i], lens[i]};
    fa_pipe_ctx_t *ctx = fa_pool_calloc(&pool, sizeof(*ctx));
    ctx->pipe = NULL;
    req.pipe_state = ctx;
    for (unsigned s = 0; s < n; s++)
        if (stages[s].type->run(&req, &stages[s]) != FA_OK)
            return 0;
    return 1;
}

static double bench(const char *name, unsigned nstages, unsigned iters)
{
    double runs[7];
    volatile int sink = 0;
    for (unsigned i = 0; i < 20000; i++) /* warm-up: pool block, aggregator keys */
        sink += run_once(nstages, i % nusers);
    uint64_t a0 = fa_alloc_count();
    for (int r = 0; r < 7; r++) {
        double t0 = bench_now_ns();
        for (unsigned i = 0; i < iters; i++)
            sink += run_once(nstages, i % nusers);
        runs[r] = (bench_now_ns() - t0) / iters;
    }
    uint64_t allocs = fa_alloc_count() - a0;
    qsort(runs, 7, sizeof(double), bench_cmp_double);
    printf("bench: %s %.1f ns/op\n", name, runs[3]);
    printf("bench: %s.allocs_per_req %.3f count\n", name, (double)allocs / (7.0 * iters));
    if (sink != (int)(7 * iters + 20000))
        printf("  (some requests were refused: %d)\n", sink);
    return runs[3];
}

int main(void)
{
    fa_errbuf_t errs = {0};
    const char *src = getenv("FA_SRCDIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/conf/fasterapid.yaml", src ? src : ".");
    fa_config_t *config = fa_config_load(path, NULL, 0, &errs);
    fa_app_t *app = config ? fa_app_build(config, &errs) : NULL;
    if (!app) {
        fprintf(stderr, "%s", errs.text ? errs.text : "cannot load the config\n");
        return 1;
    }
    unsigned n;
    stages = fa_app_stages(app, "POST", "/event", &n);
    if (!stages || n != 4) {
        fprintf(stderr, "POST /event must have 4 stages\n");
        return 1;
    }
    char err[256];
    worker.config = config;
    worker.agg = fa_agg_create(200000, 4, err, sizeof(err));
    worker.shard = (unsigned)fa_agg_shard_claim(worker.agg);
    fa_agg_worker_init(worker.agg); /* as fa_worker_run does: the worker's key cache */
    fa_pool_init(&pool, 4096);
    req.pool = &pool;
    req.worker = &worker;
    for (unsigned i = 0; i < 75000; i++)
        lens[i] = (size_t)snprintf(bodies[i], sizeof(bodies[i]),
                                   "{\"userId\":\"user_%u\",\"value\":%u.5}", i, i % 1000);

    if (getenv("USERS"))
        nusers = (unsigned)FA_MAX(1, FA_MIN(75000, atoi(getenv("USERS"))));
    printf("%-40s %s (%u distinct users)\n", "figure", "median of 7", nusers);
    bench("pipeline.parse_validate", 2, 1000000);
    bench("pipeline.parse_validate_aggregate", 3, 1000000);
    fa_agg_totals_t t;
    fa_agg_read(worker.agg, &t);
    printf("  (aggregated %llu events, %llu users)\n", (unsigned long long)t.total,
           (unsigned long long)t.unique);
    fa_pool_destroy(&pool);
    fa_agg_destroy(worker.agg);
    fa_app_free(app);
    fa_config_free(config);
    return 0;
}
