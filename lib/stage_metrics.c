/*
 * stage_metrics.c — GET /metrics: the server's counters and the aggregates in the Prometheus text
 * exposition format (version 0.0.4).
 *
 *   - metrics: {}   200 text/plain; version=0.0.4
 *
 * The figures are those of GET /stats?server=1 (stage_stats.c), read from the shared counters
 * (counters.h) and the aggregator at the time of the request:
 *   fasterapid_info{version}                      gauge, always 1
 *   fasterapid_start_time_seconds                 gauge, Unix time the master started
 *   fasterapid_uptime_seconds                     gauge
 *   fasterapid_workers                            gauge, live worker processes
 *   fasterapid_requests_total                     counter, responses produced
 *   fasterapid_responses_total{class}             counter, class 1xx..5xx or other
 *   fasterapid_connections_accepted_total         counter
 *   fasterapid_connections_active                 gauge
 *   fasterapid_accept_errors_total                counter
 *   fasterapid_connection_memory_bytes            gauge
 *   fasterapid_request_duration_seconds           summary, quantiles 0.5 0.9 0.99 0.999
 *   fasterapid_worker_requests_total{worker,generation,pid}              counter
 *   fasterapid_worker_connections_active{worker,generation,pid}          gauge
 *   fasterapid_worker_connections_accepted_total{worker,generation,pid}  counter
 *   fasterapid_worker_connection_memory_bytes{worker,generation,pid}     gauge
 *   fasterapid_events_total                       counter, events the aggregator accepted
 *   fasterapid_unique_users                       gauge
 *   fasterapid_event_value_sum                    gauge, the exact sum of the values
 * Counters survive worker respawns and reloads (the master folds a dead worker's figures into the
 * totals); a per-worker series restarts at 0 with its process. A reset of the aggregator lowers
 * fasterapid_events_total, which Prometheus reads as a counter reset.
 */
#include "agg.h"
#include "counters.h"
#include "decimal.h"
#include "buf.h"
#include "stage.h"
#include "worker.h"

#include <stdarg.h>
#include <stdio.h>

static void family(fa_buf_t *o, const char *name, const char *type, const char *help)
{
    fa_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(fa_buf_t *o, const char *name, const char *type, const char *help, uint64_t v)
{
    family(o, name, type, help);
    fa_buf_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

/* One sample per live worker of a per-worker family. */
static void per_worker(fa_buf_t *o, const fa_counters_view_t *v, const char *name, const char *type,
                       const char *help, size_t field)
{
    family(o, name, type, help);
    for (unsigned i = 0; i < v->nworkers; i++) {
        const fa_counters_worker_t *w = &v->workers[i];
        uint64_t x = *(const uint64_t *)((const char *)w + field);
        fa_buf_printf(o, "%s{worker=\"%u\",generation=\"%u\",pid=\"%d\"} %llu\n", name, w->worker,
             w->generation, w->pid, (unsigned long long)x);
    }
}

static void render(fa_buf_t *o, const fa_counters_view_t *v, const fa_agg_totals_t *t)
{
    family(o, "fasterapid_info", "gauge", "Build information.");
    fa_buf_printf(o, "fasterapid_info{version=\"%s\"} 1\n", FA_VERSION);
    family(o, "fasterapid_start_time_seconds", "gauge", "Start time of the master, Unix seconds.");
    fa_buf_printf(o, "fasterapid_start_time_seconds %.3f\n", v->start_time);
    family(o, "fasterapid_uptime_seconds", "gauge", "Seconds since the master started.");
    fa_buf_printf(o, "fasterapid_uptime_seconds %.3f\n", v->uptime);
    scalar(o, "fasterapid_workers", "gauge", "Live worker processes.", v->nworkers);
    scalar(o, "fasterapid_requests_total", "counter", "Responses produced.", v->requests);
    family(o, "fasterapid_responses_total", "counter", "Responses by status class.");
    for (unsigned i = 1; i <= 5; i++)
        fa_buf_printf(o, "fasterapid_responses_total{class=\"%uxx\"} %llu\n", i,
             (unsigned long long)v->responses[i]);
    fa_buf_printf(o, "fasterapid_responses_total{class=\"other\"} %llu\n",
         (unsigned long long)v->responses[0]);
    scalar(o, "fasterapid_connections_accepted_total", "counter", "Client connections accepted.",
           v->conns_total);
    scalar(o, "fasterapid_connections_active", "gauge", "Client connections open.",
           v->conns_active);
    scalar(o, "fasterapid_accept_errors_total", "counter", "Failed accept calls.",
           v->accept_errors);
    scalar(o, "fasterapid_connection_memory_bytes", "gauge",
           "Bytes held for client connections (capped per worker by limits.worker_memory).",
           v->memory);

    family(o, "fasterapid_request_duration_seconds", "summary",
           "From a request's first byte to its response; quantiles are bucket upper bounds.");
    static const char *const qname[] = {"0.5", "0.9", "0.99", "0.999"};
    static const double q[] = {0.5, 0.9, 0.99, 0.999};
    for (size_t i = 0; i < FA_ARRAY_SIZE(q); i++)
        fa_buf_printf(o, "fasterapid_request_duration_seconds{quantile=\"%s\"} %.6f\n", qname[i],
             (double)fa_counters_quantile(v->latency, v->latency_count, q[i]) / 1e6);
    fa_buf_printf(o, "fasterapid_request_duration_seconds_sum %.6f\n", (double)v->latency_sum_us / 1e6);
    fa_buf_printf(o, "fasterapid_request_duration_seconds_count %llu\n",
         (unsigned long long)v->latency_count);

    per_worker(o, v, "fasterapid_worker_requests_total", "counter",
               "Responses produced by one worker process.",
               offsetof(fa_counters_worker_t, requests));
    per_worker(o, v, "fasterapid_worker_connections_active", "gauge",
               "Client connections open in one worker process.",
               offsetof(fa_counters_worker_t, conns_active));
    per_worker(o, v, "fasterapid_worker_connections_accepted_total", "counter",
               "Client connections accepted by one worker process.",
               offsetof(fa_counters_worker_t, conns_total));
    per_worker(o, v, "fasterapid_worker_connection_memory_bytes", "gauge",
               "Bytes one worker process holds for client connections.",
               offsetof(fa_counters_worker_t, memory));

    scalar(o, "fasterapid_events_total", "counter", "Events the aggregator accepted.", t->total);
    scalar(o, "fasterapid_unique_users", "gauge", "Distinct keys in the aggregator.", t->unique);
    char sum[FA_DEC_FMT_MAX];
    fa_dec_format(t->sum, sum, sizeof(sum));
    family(o, "fasterapid_event_value_sum", "gauge", "Sum of the aggregated values.");
    fa_buf_printf(o, "fasterapid_event_value_sum %s\n", sum);
}

static fa_status_t run_metrics(fa_req_t *req, const fa_stage_t *stage)
{
    (void)stage;
    fa_worker_t *w = req->worker;
    if (!w->counters) {
        fa_req_respond_error(req, 503, "metrics are not available in this process");
        return FA_DONE;
    }
    fa_counters_view_t *v = fa_pool_alloc(req->pool, sizeof(*v));
    fa_worker_flush_latency(w); /* this process's answers so far, the batch being read too */
    fa_counters_read(w->counters, v);
    fa_agg_totals_t t;
    fa_agg_read(w->agg, &t);
    size_t cap = 8192 + (size_t)v->nworkers * 3 * 160;
    fa_buf_t o = {fa_pool_alloc(req->pool, cap), 0, cap};
    render(&o, v, &t);
    fa_req_respond(req, 200, FA_STR_LIT("text/plain; version=0.0.4; charset=utf-8"), o.p, o.len);
    return FA_DONE;
}

const fa_stage_type_t fa_stage_metrics = {
    .name = "metrics",
    .parse = fa_stage_parse_empty,
    .run = run_metrics,
    .terminal = true,
};
