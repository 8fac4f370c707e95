/*
 * stage_stats.c — answers with the aggregates, and the reset stage that zeroes them.
 *
 *   - stats: {}     200 {"totalRequests":N,"uniqueUsers":U,"sum":S,"avg":A}
 *   - reset: {}     zeroes every aggregate atomically, 200 {"reset":true}
 */
#include "agg.h"
#include "stage.h"
#include "worker.h"

static const void *parse_empty(fa_stage_parse_t *p)
{
    static const char dummy;
    const fa_yaml_node_t *a = p->arg;
    if ((a->kind == FA_YAML_MAP && a->map.len == 0) ||
        (a->kind == FA_YAML_SCALAR && a->scalar.len == 0 && !a->quoted))
        return &dummy;
    fa_errbuf_add(p->errs, a, p->path, "%s takes no argument (write {})", p->key->scalar.str);
    return NULL;
}

static fa_status_t run_stats(fa_req_t *req, const fa_stage_t *stage)
{
    (void)stage;
    char *buf = fa_pool_alloc(req->pool, 256);
    size_t n = fa_agg_render_stats(req->worker->agg, buf, 256);
    fa_req_respond(req, 200, FA_STR_LIT("application/json"), buf, n);
    return FA_DONE;
}

static fa_status_t run_reset(fa_req_t *req, const fa_stage_t *stage)
{
    (void)stage;
    fa_agg_reset(req->worker->agg);
    static const char body[] = "{\"reset\":true}";
    fa_req_respond(req, 200, FA_STR_LIT("application/json"), body, sizeof(body) - 1);
    return FA_DONE;
}

const fa_stage_type_t fa_stage_stats = {
    .name = "stats",
    .parse = parse_empty,
    .run = run_stats,
    .terminal = true,
};

const fa_stage_type_t fa_stage_reset = {
    .name = "reset",
    .parse = parse_empty,
    .run = run_reset,
    .terminal = true,
};
