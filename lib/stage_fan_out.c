/*
 * stage_fan_out.c — several upstream calls started together, joined by a policy.
 *
 *   - fan_out:
 *       policy: all            # all | partial | first
 *       timeout: 1s            # default per-call timeout (a call's own timeout: wins)
 *       calls:                 # result name -> call (the keys of fetch, without name)
 *         user:   { upstream: users,  path: "/users/${path.id}" }
 *         orders: { upstream: orders, path: "/orders?user=${path.id}", timeout: 300ms }
 *
 * all      fa_when_all over the calls: the first failure cancels the others and answers 502
 *          (504 for a timeout, or the upstream's own answer for `status: passthrough`).
 * partial  every call runs to its end (success, failure or timeout); the request goes on with
 *          what arrived, marked by an X-Upstream-Failed header listing the failed names (merge
 *          also lists them in a field). Only when every call failed is the answer an error.
 * first    fa_when_any: the first success wins and the others are cancelled (hedged calls to
 *          replicas); the others' results stay unset. Every call failing answers an error.
 *
 * Like fetch, the stage runs twice (fa_pipe_wait_again): once to start the calls, once to look
 * at their results.
 */
#include "config.h"
#include "log.h"
#include "upstream_internal.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef enum { POLICY_ALL, POLICY_PARTIAL, POLICY_FIRST } policy_t;

typedef struct {
    policy_t policy;
    fa__call_spec_t *calls;
    unsigned ncalls;
} fan_out_conf_t;

#define MAX_CALLS 16

static const void *parse(fa_stage_parse_t *p)
{
    if (!fa_stage_expect_map(p, p->arg, "fan_out"))
        return NULL;
    fan_out_conf_t *c = fa_pool_calloc(p->arena, sizeof(*c));
    const fa_yaml_node_t *calls = NULL;
    double timeout = 0;
    bool ok = true;
    char path[200];
    for (size_t i = 0; i < p->arg->map.len; i++) {
        const fa_yaml_node_t *k = p->arg->map.pairs[i].key, *v = p->arg->map.pairs[i].value;
        snprintf(path, sizeof(path), "%s.fan_out.%s", p->path, k->scalar.str);
        if (strcmp(k->scalar.str, "policy") == 0) {
            if (fa_yaml_scalar_is(v, "all"))
                c->policy = POLICY_ALL;
            else if (fa_yaml_scalar_is(v, "partial"))
                c->policy = POLICY_PARTIAL;
            else if (fa_yaml_scalar_is(v, "first"))
                c->policy = POLICY_FIRST;
            else {
                fa_errbuf_add(p->errs, v, path, "expected one of all, partial, first");
                ok = false;
            }
        } else if (strcmp(k->scalar.str, "timeout") == 0) {
            if (!fa_config_parse_duration(v, path, &timeout, p->errs) || timeout <= 0) {
                if (timeout <= 0)
                    fa_errbuf_add(p->errs, v, path, "expected a duration above 0");
                ok = false;
            }
        } else if (strcmp(k->scalar.str, "calls") == 0) {
            calls = v;
        } else {
            fa_errbuf_add(p->errs, k, path, "unknown key (fan_out takes policy, timeout, calls)");
            ok = false;
        }
    }
    snprintf(path, sizeof(path), "%s.fan_out.calls", p->path);
    if (!calls) {
        fa_errbuf_add(p->errs, p->arg, p->path, "fan_out: missing required key \"calls\"");
        return NULL;
    }
    if (calls->kind != FA_YAML_MAP || calls->map.len == 0 || calls->map.len > MAX_CALLS) {
        fa_errbuf_add(p->errs, calls, path,
                      "expected a mapping of 1..%d result names to calls", MAX_CALLS);
        return NULL;
    }
    c->ncalls = (unsigned)calls->map.len;
    c->calls = fa_pool_calloc(p->arena, c->ncalls * sizeof(fa__call_spec_t));
    for (unsigned i = 0; i < c->ncalls; i++) {
        const fa_yaml_node_t *k = calls->map.pairs[i].key;
        char cpath[240];
        snprintf(cpath, sizeof(cpath), "%s.%s", path, k->scalar.str);
        if (k->scalar.len == 0 || strpbrk(k->scalar.str, ".${}")) {
            fa_errbuf_add(p->errs, k, cpath, "expected a name without '.', '$', '{' or '}'");
            ok = false;
            continue;
        }
        if (!fa__call_spec_parse(p, calls->map.pairs[i].value, cpath, k->scalar.str,
                                 &c->calls[i])) {
            ok = false;
            continue;
        }
        if (c->calls[i].timeout == 0)
            c->calls[i].timeout = timeout;
    }
    return ok ? c : NULL;
}

/* The second run: decides from the recorded results. */
static fa_status_t conclude(fa_req_t *req, const fan_out_conf_t *c, fa_upstream_ctx_t *u)
{
    unsigned ok = 0, failed = 0;
    fa_upstream_result_t *r = u->batch;
    for (unsigned i = 0; i < u->nbatch; i++, r = r->next) {
        ok += r->state == FA_UPR_OK;
        failed += r->state == FA_UPR_FAILED;
    }
    if (c->policy == POLICY_ALL || ok == 0) {
        if (fa__answer_failure(req, u->batch, u->nbatch) == FA_DONE)
            return FA_DONE;
        if (ok == 0) { /* nothing failed and nothing arrived: cannot happen, but never hang */
            fa_req_respond_error(req, 502, "no upstream answered");
            return FA_DONE;
        }
        return FA_OK;
    }
    if (c->policy == POLICY_FIRST) {
        /* The losers' earlier failures do not matter once one call succeeded. */
        r = u->batch;
        for (unsigned i = 0; i < u->nbatch; i++, r = r->next)
            if (r->state == FA_UPR_FAILED)
                r->state = FA_UPR_PENDING;
        return FA_OK;
    }
    if (failed) {
        fa_json_writer_t w;
        fa_json_writer_init(&w, req->pool, 64);
        r = u->batch;
        bool first = true;
        for (unsigned i = 0; i < u->nbatch; i++, r = r->next) {
            if (r->state != FA_UPR_FAILED)
                continue;
            if (!first)
                fa_json_write_raw(&w, ",", 1);
            fa_json_write_raw(&w, r->name, strlen(r->name));
            first = false;
        }
        fa_req_add_header(req, FA_STR_LIT("X-Upstream-Failed"), fa_json_writer_str(&w));
    }
    return FA_OK;
}

static fa_status_t run(fa_req_t *req, const fa_stage_t *stage)
{
    const fan_out_conf_t *c = stage->conf;
    fa_upstream_ctx_t *u = fa__upstream_ctx(req);
    if (u->waiting == c) {
        u->waiting = NULL;
        return conclude(req, c, u);
    }
    fa_future_t *futs = fa_pool_alloc(req->pool, c->ncalls * sizeof(fa_future_t));
    /* when_all and when_some keep writing here until they settle or are cancelled: the request
     * pool outlives both. */
    fa_value_t *values = fa_pool_alloc(req->pool, c->ncalls * sizeof(fa_value_t));
    size_t *winner = fa_pool_alloc(req->pool, sizeof(*winner));
    fa_sched_t *sched = req->worker->sched;
    fa_future_t joined, f;
    if (fa__calls_start(req, c->calls, c->ncalls, c->policy == POLICY_PARTIAL, futs) != 0)
        goto busy;
    int rc = c->policy == POLICY_FIRST ? fa_when_any(sched, futs, c->ncalls, winner, &joined)
                                       : fa_when_all(sched, futs, c->ncalls, values, &joined);
    if (rc != 0) {
        for (unsigned i = 0; i < c->ncalls; i++)
            (void)fa_future_cancel(futs[i]);
        goto busy;
    }
    /* A rejected join only means some call failed; the results say which. */
    if (fa_future_catch(joined, fa__swallow, NULL, &f) != 0) {
        (void)fa_future_cancel(joined);
        goto busy;
    }
    u->waiting = c;
    fa_pipe_wait_again(req, f);
    return FA_AGAIN;
busy:
    fa_req_respond_error(req, 503, "too many requests in flight");
    return FA_DONE;
}

const fa_stage_type_t fa_stage_fan_out = {
    .name = "fan_out",
    .parse = parse,
    .run = run,
    .async = true,
};
