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
#include "conn.h"
#include "log.h"
#include "router.h"
#include "sched.h"
#include "stage.h"
#include "upstream.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const fa_route_conf_t *route;
    fa_stage_t *stages;
    unsigned nstages;
} fa_pipeline_t;

struct fa_app {
    fa_pool_t arena;
    const fa_config_t *config;
    fa_router_t *router;
    fa_pipeline_t *pipes;
    size_t npipes;
};

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
        if (type->terminal)
            info->responded = true;
    }
    if (ok && !info->responded) {
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
    if (fa_future_done(f, on_resume, req) != 0) {
        fa_future_cancel(f);
        ctx->wait = FA_FUTURE_NULL;
        fa_req_respond_error(req, 500, "cannot wait for a stage");
        return;
    }
    ctx->wait = f;
}

void fa_pipe_wait_again(fa_req_t *req, fa_future_t f)
{
    fa_pipe_ctx(req)->next--; /* run_stages advanced past the calling stage */
    fa_pipe_wait(req, f);
}

fa_status_t fa_app_handle(const fa_app_t *app, fa_req_t *req)
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
        fa_req_respond_error(req, 404, "not found");
        return FA_OK;
    }
    if (res == FA_ROUTE_METHOD_NOT_ALLOWED) {
        if (match.allow)
            fa_req_add_header(req, FA_STR_LIT("Allow"),
                              (fa_str_t){match.allow, strlen(match.allow)});
        fa_req_respond_error(req, 405, "method not allowed");
        return FA_OK;
    }
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
    ctx->upstream = NULL;
    req->pipe_state = ctx;
    return run_stages(req, ctx);
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
