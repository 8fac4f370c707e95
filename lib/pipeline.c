/*
 * pipeline.c — the application: routes compiled into a router, each with its stage chain, and the
 * runner that takes a complete request through them.
 *
 * Lifetime: fa_app_t and everything it points to (router, pipelines, stage confs) are built from
 * one config and live in the app's arena until fa_app_free. Per-request state (fa_pipe_ctx_t)
 * lives in the request pool.
 *
 * Synchronous stages run one after the other in a plain loop and never touch a future. A stage
 * that waits stores a pending future (fa_pipe_wait) and returns FA_AGAIN; the runner attaches a
 * continuation to it and the pipeline resumes from the scheduler when it settles. Closing the
 * connection first cancels the future, which returns every pooled object it holds.
 */
#include "alloc.h"
#include "app.h"
#include "batch.h"
#include "conn.h"
#include "log.h"
#include "router.h"
#include "sched.h"
#include "stage.h"
#include "upstream.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const fa_route_conf_t *route;
    fa_stage_t *stages;
    unsigned nstages;
    const fa_batch_conf_t *batch; /* the body is a batch: stages[1..] run per event */
    unsigned ahead_at; /* after stage ahead_at - 1 (parse_json), the ahead hooks; 0: none */
    /* on_error: how this route answers a refusal, by status (400..599; 4 = 4xx, 5 = 5xx,
     * 0 = default), each a respond stage */
    unsigned nerr;
    int *err_status;
    fa_stage_t *err_answer;
} fa_pipeline_t;

struct fa_app {
    fa_pool_t arena;
    const fa_config_t *config;
    fa_router_t *router;
    fa_pipeline_t *pipes;
    size_t npipes;
};

/*
 * on_error: { 400: { status: 422, json: {...} }, 5xx: {...}, default: {...} } — each value is
 * what a respond stage takes; ${error} in it is the refusal's reason.
 */
static bool compile_on_error(fa_app_t *app, size_t ri, fa_pipeline_t *pipe, fa_pipe_info_t *info,
                             fa_errbuf_t *errs)
{
    const fa_yaml_node_t *m = app->config->routes[ri].on_error;
    bool ok = true;
    char path[96];
    pipe->err_status = fa_pool_alloc(&app->arena, FA_MAX(m->map.len, (size_t)1) * sizeof(int));
    pipe->err_answer =
        fa_pool_alloc(&app->arena, FA_MAX(m->map.len, (size_t)1) * sizeof(fa_stage_t));
    for (size_t i = 0; i < m->map.len; i++) {
        const fa_yaml_node_t *k = m->map.pairs[i].key;
        snprintf(path, sizeof(path), "routes[%zu].on_error.%s", ri, k->scalar.str);
        int status = -1;
        const char *ks = k->scalar.str;
        if (strcmp(ks, "default") == 0)
            status = 0;
        else if (strcmp(ks, "4xx") == 0 || strcmp(ks, "5xx") == 0)
            status = ks[0] - '0';
        else if (k->scalar.len == 3 && ks[0] >= '4' && ks[0] <= '5' && ks[1] >= '0' &&
                 ks[1] <= '9' && ks[2] >= '0' && ks[2] <= '9')
            status = atoi(ks);
        if (status < 0) {
            fa_errbuf_add(errs, k, path,
                          "expected a status 400..599, 4xx, 5xx or default as the key");
            ok = false;
            continue;
        }
        bool saved = info->responded;
        fa_stage_parse_t p = {
            .arena = &app->arena,
            .config = app->config,
            .errs = errs,
            .path = fa_pool_strndup(&app->arena, path, strlen(path)),
            .arg = m->map.pairs[i].value,
            .key = k,
            .info = info,
            .route_path = app->config->routes[ri].path,
        };
        const void *conf = fa_stage_respond.parse(&p);
        info->responded = saved;
        if (!conf) {
            ok = false;
            continue;
        }
        pipe->err_status[pipe->nerr] = status;
        pipe->err_answer[pipe->nerr++] = (fa_stage_t){&fa_stage_respond, conf};
    }
    return ok;
}

/* Compiles one route's pipeline; false after adding located errors. */
static bool compile_pipeline(fa_app_t *app, size_t ri, fa_pipeline_t *pipe, fa_errbuf_t *errs)
{
    const fa_route_conf_t *rc = &app->config->routes[ri];
    const fa_yaml_node_t *seq = rc->pipeline;
    fa_pipe_info_t *info = fa_pool_calloc(&app->arena, sizeof(*info));
    bool ok = true;
    char path[96];

    pipe->route = rc;
    pipe->nstages = (unsigned)seq->seq.len;
    pipe->stages = fa_pool_calloc(&app->arena, seq->seq.len * sizeof(fa_stage_t));
    for (size_t j = 0; j < seq->seq.len; j++) {
        const fa_yaml_node_t *item = seq->seq.items[j];
        snprintf(path, sizeof(path), "routes[%zu].pipeline[%zu]", ri, j);
        if (item->kind != FA_YAML_MAP || item->map.len != 1) {
            fa_errbuf_add(errs, item, path, "expected a mapping with one stage name");
            ok = false;
            continue;
        }
        const fa_yaml_node_t *key = item->map.pairs[0].key;
        const fa_stage_type_t *type = fa_stage_find(key->scalar.str, key->scalar.len);
        if (!type) {
            fa_errbuf_add(errs, key, path, "unknown stage \"%s\" (stages: %s)", key->scalar.str,
                          fa_stage_names());
            ok = false;
            continue;
        }
        if (info->responded) {
            fa_errbuf_add(errs, key, path,
                          "stage \"%s\" never runs: an earlier stage always answers the request",
                          type->name);
            ok = false;
            continue;
        }
        if (info->batch && (type->terminal || type->async)) {
            fa_errbuf_add(errs, key, path,
                          "stage \"%s\" cannot run per event of a batch (the batch report is the "
                          "answer; per-event stages must not wait)",
                          type->name);
            ok = false;
            continue;
        }
        fa_stage_parse_t p = {
            .arena = &app->arena,
            .config = app->config,
            .errs = errs,
            .path = fa_pool_strndup(&app->arena, path, strlen(path)),
            .arg = item->map.pairs[0].value,
            .key = key,
            .info = info,
            .route_path = rc->path,
        };
        const void *conf = type->parse(&p);
        if (!conf) {
            ok = false;
            continue;
        }
        pipe->stages[j] = (fa_stage_t){type, conf};
        if (type->ahead && info->has_json && !info->batch && !pipe->ahead_at) {
            /* Right after the last parse_json before it (there is one: has_json). */
            for (size_t i = j; i-- > 0;)
                if (pipe->stages[i].type == &fa_stage_parse_json) {
                    pipe->ahead_at = (unsigned)i + 1;
                    break;
                }
        }
        if (type->terminal)
            info->responded = true;
        const fa_batch_conf_t *bc = fa_stage_parse_json_batch(&pipe->stages[j]);
        if (bc && j != 0) {
            fa_errbuf_add(errs, key, path,
                          "a batch parse_json must be the first stage of its pipeline");
            ok = false;
        } else if (bc) {
            pipe->batch = bc;
            info->batch = true;
        }
    }
    if (rc->on_error && !compile_on_error(app, ri, pipe, info, errs))
        ok = false;
    if (ok && !info->responded && !info->batch) {
        snprintf(path, sizeof(path), "routes[%zu].pipeline", ri);
        fa_errbuf_add(errs, seq, path,
                      "the pipeline never answers: end it with a stage that responds (respond, "
                      "stats, reset)");
        ok = false;
    }
    return ok;
}

fa_app_t *fa_app_build(const fa_config_t *config, fa_errbuf_t *errs)
{
    fa_app_t *app = fa_calloc(1, sizeof(*app));
    fa_pool_init(&app->arena, 16384);
    app->config = config;
    app->router = fa_router_new();
    app->npipes = config->nroutes;
    app->pipes = fa_pool_calloc(&app->arena, FA_MAX(config->nroutes, (size_t)1) *
                                                 sizeof(fa_pipeline_t));
    unsigned before = errs->count;
    for (size_t i = 0; i < config->nroutes; i++) {
        const fa_route_conf_t *rc = &config->routes[i];
        char path[64], err[256];
        snprintf(path, sizeof(path), "routes[%zu]", i);
        int m = fa_method_parse(rc->method, strlen(rc->method));
        if (m < 0) {
            fa_errbuf_add(errs, rc->match_node, path, "unsupported method \"%s\"", rc->method);
            continue;
        }
        if (!compile_pipeline(app, i, &app->pipes[i], errs))
            continue;
        if (fa_router_add(app->router, (fa_method_t)m, rc->path, &app->pipes[i], err,
                          sizeof(err)) != 0)
            fa_errbuf_add(errs, rc->match_node, path, "%s", err);
    }
    if (errs->count == before && fa_router_compile(app->router) != 0)
        fa_errbuf_add(errs, NULL, "routes", "cannot compile the router");
    if (errs->count != before) {
        fa_app_free(app);
        return NULL;
    }
    return app;
}

void fa_app_free(fa_app_t *app)
{
    if (!app)
        return;
    if (app->router)
        fa_router_free(app->router);
    fa_pool_destroy(&app->arena);
    fa_free(app);
}

int fa_app_worker_init(const fa_app_t *app, fa_worker_t *w)
{
    (void)app;
    return fa_upstream_worker_init(w);
}

void fa_app_worker_fini(const fa_app_t *app, fa_worker_t *w)
{
    (void)app;
    fa_upstream_worker_fini(w);
}

/* llhttp's method numbers to the router's. */
static int method_of(unsigned llhttp_method)
{
    switch (llhttp_method) {
    case HTTP_GET:
        return FA_METHOD_GET;
    case HTTP_HEAD:
        return FA_METHOD_HEAD;
    case HTTP_POST:
        return FA_METHOD_POST;
    case HTTP_PUT:
        return FA_METHOD_PUT;
    case HTTP_DELETE:
        return FA_METHOD_DELETE;
    case HTTP_PATCH:
        return FA_METHOD_PATCH;
    case HTTP_OPTIONS:
        return FA_METHOD_OPTIONS;
    default:
        return -1;
    }
}

/* The body has just been parsed (ahead_at is set only after a parse_json, and never for a batch
 * route): the later stages that have an ahead hook request their memory. */
static void run_ahead(fa_req_t *req, const fa_pipeline_t *pipe)
{
    for (unsigned i = pipe->ahead_at;
         i < pipe->nstages && pipe->stages[i].type != &fa_stage_parse_json; i++)
        if (pipe->stages[i].type->ahead)
            pipe->stages[i].type->ahead(req, &pipe->stages[i]);
}

/* Runs stages from ctx->next on. Returns FA_OK once the request is answered, FA_AGAIN if a stage
 * waits. Must not touch ctx after the response: answering resets the request pool. */
static fa_status_t run_stages(fa_req_t *req, fa_pipe_ctx_t *ctx)
{
    const fa_pipeline_t *pipe = ctx->pipe;
    while (ctx->next < pipe->nstages) {
        const fa_stage_t *s = &pipe->stages[ctx->next++];
        req->action = s->type->name;
        switch (s->type->run(req, s)) {
        case FA_OK:
            if (ctx->next == pipe->ahead_at)
                run_ahead(req, pipe);
            continue;
        case FA_AGAIN:
            return FA_AGAIN;
        case FA_DONE:
            return FA_OK;
        default:
            if (!req->responded) {
                fa_log_error("stage %s failed", s->type->name);
                fa_req_respond_error(req, 500, "internal error");
            }
            return FA_OK;
        }
    }
    if (!req->responded)
        fa_req_respond_error(req, 500, "the pipeline ended without an answer");
    return FA_OK;
}

/* The future a stage waited on has settled (from the scheduler's drain). */
static void on_resume(fa_sched_t *sched, void *data, const fa_result_t *result)
{
    (void)sched;
    fa_req_t *req = data;
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    ctx->wait = FA_FUTURE_NULL;
    if (req->responded)
        return;
    if (result->state == FA_FUT_REJECTED) {
        const fa_error_t *e = &result->error;
        if (e->msg == fa_err_timeout)
            fa_req_respond_error(req, 504, "timed out");
        else
            fa_req_respond_error(req, 500, e->msg ? e->msg : "internal error");
        return;
    }
    (void)run_stages(req, ctx);
}

void fa_pipe_wait(fa_req_t *req, fa_future_t f)
{
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    if (fa_future_done(&f, on_resume, req) != 0) {
        fa_future_cancel(f);
        ctx->wait = FA_FUTURE_NULL;
        fa_req_respond_error(req, 500, "cannot wait for a stage");
        return;
    }
    ctx->wait = f;
}

/* Takes one event of a batch through the stages after parse_json (batch.c calls it). */
static void run_event_stages(fa_req_t *req)
{
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    const fa_pipeline_t *pipe = ctx->pipe;
    for (unsigned i = 1; i < pipe->nstages; i++) {
        const fa_stage_t *s = &pipe->stages[i];
        fa_status_t st = s->type->run(req, s);
        if (st == FA_OK)
            continue;
        if (st != FA_DONE)
            fa_batch_reject(ctx->batch, "internal error");
        return;
    }
}

void fa_pipe_reject(fa_req_t *req, int status, const char *msg)
{
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    if (ctx && fa_batch_in_event(ctx->batch)) {
        fa_batch_reject(ctx->batch, msg);
        return;
    }
    if (!fa_pipe_on_error(req, status, msg))
        fa_req_respond_error(req, status, msg);
}

bool fa_pipe_has_on_error(const fa_req_t *req, int status)
{
    const fa_pipe_ctx_t *ctx = req->pipe_state;
    const fa_pipeline_t *pipe = ctx ? ctx->pipe : NULL;
    for (unsigned i = 0; pipe && i < pipe->nerr; i++)
        if (pipe->err_status[i] == status || pipe->err_status[i] == status / 100 ||
            pipe->err_status[i] == 0)
            return true;
    return false;
}

bool fa_pipe_on_error(fa_req_t *req, int status, const char *msg)
{
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    const fa_pipeline_t *pipe = ctx ? ctx->pipe : NULL;
    if (pipe && pipe->nerr) {
        /* The most specific on_error answer: the exact status, then its class, then default. */
        const fa_stage_t *best = NULL;
        int rank = 0;
        for (unsigned i = 0; i < pipe->nerr; i++) {
            int e = pipe->err_status[i];
            int r = e == status ? 3 : e == status / 100 ? 2 : e == 0 ? 1 : 0;
            if (r > rank) {
                rank = r;
                best = &pipe->err_answer[i];
            }
        }
        if (best) {
            req->error_msg = msg;
            (void)best->type->run(req, best);
            return true;
        }
    }
    return false;
}

void fa_pipe_wait_again(fa_req_t *req, fa_future_t f)
{
    fa_pipe_ctx(req)->next--; /* run_stages advanced past the calling stage */
    fa_pipe_wait(req, f);
}

void fa_app_begin(const fa_app_t *app, fa_req_t *req)
{
    int m = method_of(req->method);
    fa_route_match_t match;
    fa_route_result_t res =
        fa_router_match(app->router, m >= 0 ? (fa_method_t)m : FA_METHOD_GET, req->path.ptr,
                        req->path.len, &match);
    if (m < 0 && res == FA_ROUTE_FOUND) {
        /* A method no route can have: the path exists, so 405 with what it allows. */
        fa_route_match_t probe;
        res = FA_ROUTE_METHOD_NOT_ALLOWED;
        match.allow = NULL;
        for (int k = 0; k < FA_METHOD__COUNT && !match.allow; k++)
            if (fa_router_match(app->router, (fa_method_t)k, req->path.ptr, req->path.len,
                                &probe) == FA_ROUTE_METHOD_NOT_ALLOWED)
                match.allow = probe.allow;
    }
    if (res == FA_ROUTE_NOT_FOUND) {
        req->route_status = 404;
        return;
    }
    if (res == FA_ROUTE_METHOD_NOT_ALLOWED) {
        req->route_status = 405;
        req->allow = match.allow;
        return;
    }
    req->route_status = 200;
    const fa_pipeline_t *pipe = match.data;
    req->route = pipe;
    req->nparams = FA_MIN(match.nparams, (unsigned)FA_REQ_MAX_PARAMS);
    for (unsigned i = 0; i < req->nparams; i++) {
        req->param_names[i] = match.params[i].name;
        req->param_values[i] = match.params[i].value;
    }
    fa_pipe_ctx_t *ctx = fa_pool_alloc(req->pool, sizeof(*ctx));
    ctx->pipe = pipe;
    ctx->next = 0;
    ctx->has_json = false;
    ctx->wait = FA_FUTURE_NULL;
    ctx->batch = pipe->batch ? fa_batch_new(req, pipe->batch, run_event_stages) : NULL;
    ctx->upstream = NULL;
    ctx->ahead_stage = NULL;
    req->pipe_state = ctx;
}

bool fa_app_streams_body(const fa_req_t *req)
{
    const fa_pipe_ctx_t *ctx = fa_pipe_ctx((fa_req_t *)req);
    return ctx && ctx->batch;
}

int fa_app_body(fa_req_t *req, const char *at, size_t len, const char **msg)
{
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    if (!ctx || !ctx->batch)
        return 0;
    int st = fa_batch_feed(req, ctx->batch, at, len, msg);
    return st ? st : 1;
}

fa_status_t fa_app_handle(const fa_app_t *app, fa_req_t *req)
{
    if (req->route_status == 0)
        fa_app_begin(app, req);
    if (req->route_status == 404) {
        fa_req_respond_error(req, 404, "not found");
        return FA_OK;
    }
    if (req->route_status == 405) {
        if (req->allow)
            fa_req_add_header(req, FA_STR_LIT("Allow"), (fa_str_t){req->allow, strlen(req->allow)});
        fa_req_respond_error(req, 405, "method not allowed");
        return FA_OK;
    }
    return run_stages(req, fa_pipe_ctx(req));
}

void fa_app_abort(fa_req_t *req)
{
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    if (ctx && fa_future_valid(ctx->wait)) {
        fa_future_t f = ctx->wait;
        ctx->wait = FA_FUTURE_NULL;
        fa_future_cancel(f);
    }
}

const fa_stage_t *fa_app_stages(const fa_app_t *app, const char *method, const char *path,
                                unsigned *n)
{
    for (size_t i = 0; i < app->npipes; i++) {
        const fa_route_conf_t *rc = app->pipes[i].route;
        if (rc && strcmp(rc->method, method) == 0 && strcmp(rc->path, path) == 0) {
            *n = app->pipes[i].nstages;
            return app->pipes[i].stages;
        }
    }
    return NULL;
}
