/*
 * stage_stats.c — answers with the aggregates, and the reset stage that zeroes them.
 *
 *   - stats: {}     200 {"totalRequests":N,"uniqueUsers":U,"sum":S,"avg":A}
 *                   With the query parameter server=1 (or server=true) the same four fields come
 *                   first, unchanged, followed by "server": the operational counters of every
 *                   worker (counters.h) summed at read time:
 *                     {"uptimeSeconds":12.5,"startTime":1764176400,"workers":2,"requests":N,
 *                      "connections":{"active":A,"total":T},"acceptErrors":E,
 *                      "connectionMemoryBytes":M,
 *                      "responses":{"1xx":0,"2xx":N,"3xx":0,"4xx":0,"5xx":0,"other":0},
 *                      "latencyMicros":{"p50":..,"p90":..,"p99":..,"p999":..,"mean":..},
 *                      "perWorker":[{"id":0,"pid":123,"generation":1,"requests":N,
 *                                    "activeConnections":A,"totalConnections":T,
 *                                    "connectionMemoryBytes":M},...]}
 *                   connectionMemoryBytes is what limits.worker_memory caps (refreshed by each
 *                   worker's timer).
 *                   Latency runs from a request's first byte to its response being produced;
 *                   percentiles are bucket upper bounds (within 3.1%).
 *   - reset: {}     zeroes every aggregate atomically, 200 {"reset":true}
 */
#include "agg.h"
#include "counters.h"
#include "buf.h"
#include "stage.h"
#include "worker.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* True if the query string holds name=1 or name=true as one of its &-separated items. */
static bool query_flag(fa_str_t q, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < q.len;) {
        size_t e = i;
        while (e < q.len && q.ptr[e] != '&')
            e++;
        const char *it = q.ptr + i;
        size_t n = e - i;
        if (n > nl && memcmp(it, name, nl) == 0 && it[nl] == '=') {
            fa_str_t v = {it + nl + 1, n - nl - 1};
            if ((v.len == 1 && v.ptr[0] == '1') || (v.len == 4 && memcmp(v.ptr, "true", 4) == 0))
                return true;
        }
        i = e + 1;
    }
    return false;
}

/* The "server" member: the counters view rendered as JSON, appended to o. */
static void render_server(fa_buf_t *o, const fa_counters_view_t *v)
{
    fa_buf_printf(o, "\"server\":{\"uptimeSeconds\":%.3f,\"startTime\":%.0f,\"workers\":%u,", v->uptime,
         v->start_time, v->nworkers);
    fa_buf_printf(o, "\"requests\":%llu,\"connections\":{\"active\":%llu,\"total\":%llu},",
         (unsigned long long)v->requests, (unsigned long long)v->conns_active,
         (unsigned long long)v->conns_total);
    fa_buf_printf(o, "\"acceptErrors\":%llu,\"connectionMemoryBytes\":%llu,\"responses\":{",
                  (unsigned long long)v->accept_errors, (unsigned long long)v->memory);
    for (unsigned i = 1; i <= 5; i++)
        fa_buf_printf(o, "\"%uxx\":%llu,", i, (unsigned long long)v->responses[i]);
    fa_buf_printf(o, "\"other\":%llu},", (unsigned long long)v->responses[0]);
    static const struct {
        const char *name;
        double q;
    } qs[] = {{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p999", 0.999}};
    fa_buf_printf(o, "\"latencyMicros\":{");
    for (size_t i = 0; i < FA_ARRAY_SIZE(qs); i++)
        fa_buf_printf(o, "\"%s\":%llu,", qs[i].name,
             (unsigned long long)fa_counters_quantile(v->latency, v->latency_count, qs[i].q));
    fa_buf_printf(o, "\"mean\":%.1f},\"perWorker\":[",
         v->latency_count ? (double)v->latency_sum_us / (double)v->latency_count : 0.0);
    for (unsigned i = 0; i < v->nworkers; i++) {
        const fa_counters_worker_t *w = &v->workers[i];
        fa_buf_printf(o,
             "%s{\"id\":%u,\"pid\":%d,\"generation\":%u,\"requests\":%llu,"
             "\"activeConnections\":%llu,\"totalConnections\":%llu,"
             "\"connectionMemoryBytes\":%llu}",
             i ? "," : "", w->worker, w->pid, w->generation, (unsigned long long)w->requests,
             (unsigned long long)w->conns_active, (unsigned long long)w->conns_total,
             (unsigned long long)w->memory);
    }
    fa_buf_printf(o, "]}");
}

static fa_status_t run_stats(fa_req_t *req, const fa_stage_t *stage)
{
    (void)stage;
    fa_worker_t *w = req->worker;
    bool server = w->counters && query_flag(req->query, "server");
    fa_counters_view_t *v = NULL;
    size_t cap = FA_AGG_STATS_MAX;
    if (server) {
        v = fa_pool_alloc(req->pool, sizeof(*v));
        fa_worker_flush_latency(w); /* this process's answers so far */
        fa_counters_read(w->counters, v);
        cap = FA_AGG_STATS_MAX + 2048 + (size_t)v->nworkers * 160;
    }
    fa_buf_t o = {fa_pool_alloc(req->pool, cap), 0, cap};
    o.len = fa_agg_render_stats(w->agg, o.p, FA_AGG_STATS_MAX);
    if (server && o.len > 0) {
        o.p[o.len - 1] = ','; /* the four fields stay as they are; "server" follows them */
        render_server(&o, v);
        fa_buf_printf(&o, "}");
    }
    fa_req_respond(req, 200, FA_STR_LIT("application/json"), o.p, o.len);
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
    .parse = fa_stage_parse_empty,
    .run = run_stats,
    .terminal = true,
};

const fa_stage_type_t fa_stage_reset = {
    .name = "reset",
    .parse = fa_stage_parse_empty,
    .run = run_reset,
    .terminal = true,
};
