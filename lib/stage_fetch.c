/*
 * stage_fetch.c — one upstream call whose result is stored under a name; and the machinery the
 * upstream stages share (upstream_internal.h): templates, call specs, the results table.
 *
 *   - fetch:
 *       upstream: users                 # a name from the upstreams section (required)
 *       name: user                      # the result's name; default: the upstream's name
 *       method: GET                     # default GET
 *       path: "/users/${path.id}"       # request target, a template (required)
 *       headers: { X-Trace: "${header.x-request-id}" }   # templates
 *       pass_headers: [Authorization]   # copied from the client's request when present
 *       body: "id=${body.userId}"       # a text template, or
 *       json: { id: "${results.user.id}" }   # a JSON body, substitutions JSON-escaped
 *       timeout: 500ms                  # the whole call; default: the upstream's own timeouts
 *       status: fail                    # fail | passthrough | accept (see conf/fasterapid.yaml)
 *
 * The stage runs twice: the first run starts the call and waits (fa_pipe_wait_again); the
 * second run, once the call is recorded, answers 502/504 (or relays the upstream's status) when
 * it failed, else lets the pipeline go on with the result in the table.
 *
 * Templates: see template.h.
 */
#include "alloc.h"
#include "config.h"
#include "json.h"
#include "log.h"
#include "req.h"
#include "upstream_internal.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool info_has_result(const fa_pipe_info_t *info, const char *name, size_t len)
{
    for (unsigned i = 0; i < info->nresults; i++)
        if (strlen(info->results[i]) == len && memcmp(info->results[i], name, len) == 0)
            return true;
    return false;
}

/* ---- call specs ---- */

static const char *const call_keys[] = {"name",    "upstream", "method",  "path",   "headers",
                                        "pass_headers", "body", "json", "timeout", "status"};

static bool header_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == ':' || s[i] == 0x7f)
            return false;
    return true;
}

bool fa__call_spec_parse(fa_stage_parse_t *p, const fa_yaml_node_t *node, const char *path,
                         const char *default_name, fa__call_spec_t *c)
{
    char kpath[256];
    bool ok = true;
    if (node->kind != FA_YAML_MAP) {
        fa_errbuf_add(p->errs, node, path, "expected a mapping with upstream and path");
        return false;
    }
    memset(c, 0, sizeof(*c));
    c->method = FA_STR_LIT("GET");
    c->name = default_name;
    const fa_yaml_node_t *up = NULL, *tpath = NULL, *body = NULL, *json = NULL;
    for (size_t i = 0; i < node->map.len; i++) {
        const fa_yaml_node_t *k = node->map.pairs[i].key, *v = node->map.pairs[i].value;
        const char *key = k->scalar.str;
        snprintf(kpath, sizeof(kpath), "%s.%s", path, key);
        if (strcmp(key, "name") == 0 && !default_name) {
            if (v->kind != FA_YAML_SCALAR || v->scalar.len == 0 || strpbrk(v->scalar.str, ".${}")) {
                fa_errbuf_add(p->errs, v, kpath, "expected a name without '.', '$', '{' or '}'");
                ok = false;
            } else {
                c->name = v->scalar.str;
            }
        } else if (strcmp(key, "upstream") == 0) {
            up = v;
        } else if (strcmp(key, "method") == 0) {
            static const char *const methods[] = {"GET",    "HEAD",  "POST",   "PUT",
                                                  "DELETE", "PATCH", "OPTIONS"};
            bool found = false;
            for (size_t j = 0; j < FA_ARRAY_SIZE(methods); j++)
                if (fa_yaml_scalar_is(v, methods[j])) {
                    c->method = (fa_str_t){methods[j], strlen(methods[j])};
                    found = true;
                }
            if (!found) {
                fa_errbuf_add(p->errs, v, kpath,
                              "expected one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
                ok = false;
            }
        } else if (strcmp(key, "path") == 0) {
            tpath = v;
        } else if (strcmp(key, "headers") == 0) {
            if (v->kind != FA_YAML_MAP) {
                fa_errbuf_add(p->errs, v, kpath, "expected a mapping of header names to values");
                ok = false;
                continue;
            }
            for (size_t j = 0; j < v->map.len; j++) {
                const fa_yaml_node_t *hk = v->map.pairs[j].key, *hv = v->map.pairs[j].value;
                if (!header_name_ok(hk->scalar.str, hk->scalar.len) ||
                    hv->kind != FA_YAML_SCALAR || c->nheaders == FA__MAX_CALL_HEADERS) {
                    fa_errbuf_add(p->errs, hk, kpath,
                                  c->nheaders == FA__MAX_CALL_HEADERS
                                      ? "too many headers (at most 8)"
                                      : "invalid header name or value");
                    ok = false;
                    continue;
                }
                c->headers[c->nheaders].name = (fa_str_t){hk->scalar.str, hk->scalar.len};
                ok &= fa_tpl_parse(p, hv, hv->scalar.str, hv->scalar.len, FA_TPL_LINE,
                                    &c->headers[c->nheaders].value);
                c->nheaders++;
            }
        } else if (strcmp(key, "pass_headers") == 0) {
            if (v->kind != FA_YAML_SEQ) {
                fa_errbuf_add(p->errs, v, kpath, "expected a sequence of header names");
                ok = false;
                continue;
            }
            for (size_t j = 0; j < v->seq.len; j++) {
                const fa_yaml_node_t *h = v->seq.items[j];
                if (h->kind != FA_YAML_SCALAR || !header_name_ok(h->scalar.str, h->scalar.len) ||
                    c->npass == FA__MAX_CALL_HEADERS) {
                    fa_errbuf_add(p->errs, h, kpath,
                                  "expected a header name (at most 8 of them)");
                    ok = false;
                    continue;
                }
                c->pass[c->npass++] = (fa_str_t){h->scalar.str, h->scalar.len};
            }
        } else if (strcmp(key, "body") == 0) {
            body = v;
        } else if (strcmp(key, "json") == 0) {
            json = v;
        } else if (strcmp(key, "timeout") == 0) {
            if (!fa_config_parse_duration(v, kpath, &c->timeout, p->errs))
                ok = false;
            else if (c->timeout <= 0) {
                fa_errbuf_add(p->errs, v, kpath, "expected a duration above 0");
                ok = false;
            }
        } else if (strcmp(key, "status") == 0) {
            if (fa_yaml_scalar_is(v, "fail"))
                c->status = FA__STATUS_FAIL;
            else if (fa_yaml_scalar_is(v, "passthrough"))
                c->status = FA__STATUS_PASSTHROUGH;
            else if (fa_yaml_scalar_is(v, "accept"))
                c->status = FA__STATUS_ACCEPT;
            else {
                fa_errbuf_add(p->errs, v, kpath, "expected one of fail, passthrough, accept");
                ok = false;
            }
        } else {
            size_t nk = FA_ARRAY_SIZE(call_keys) - (default_name ? 0 : 0);
            char list[200] = "";
            for (size_t j = 0; j < nk; j++)
                if (!(default_name && strcmp(call_keys[j], "name") == 0))
                    snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                             list[0] ? ", " : "", call_keys[j]);
            fa_errbuf_add(p->errs, k, kpath, "unknown key (a call takes %s)", list);
            ok = false;
        }
    }
    if (!up) {
        fa_errbuf_add(p->errs, node, path, "missing required key \"upstream\"");
        ok = false;
    } else {
        snprintf(kpath, sizeof(kpath), "%s.upstream", path);
        int idx = up->kind == FA_YAML_SCALAR
                      ? fa_upstream_find(p->config, up->scalar.str, up->scalar.len)
                      : -1;
        if (idx < 0) {
            char names[256] = "";
            for (size_t j = 0; j < p->config->nupstreams; j++)
                snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
                         j ? ", " : "", p->config->upstreams[j].name);
            fa_errbuf_add(p->errs, up, kpath, "unknown upstream \"%s\" (upstreams: %s)",
                          up->kind == FA_YAML_SCALAR ? up->scalar.str : "?",
                          names[0] ? names : "none configured");
            ok = false;
        } else {
            c->upstream = (unsigned)idx;
            if (!c->name)
                c->name = p->config->upstreams[idx].name;
        }
    }
    if (!tpath) {
        fa_errbuf_add(p->errs, node, path, "missing required key \"path\"");
        ok = false;
    } else if (tpath->kind != FA_YAML_SCALAR || tpath->scalar.str[0] != '/' ||
               strpbrk(tpath->scalar.str, " \t\r\n")) {
        snprintf(kpath, sizeof(kpath), "%s.path", path);
        fa_errbuf_add(p->errs, tpath, kpath, "expected a path starting with '/', without spaces");
        ok = false;
    } else {
        ok &= fa_tpl_parse(p, tpath, tpath->scalar.str, tpath->scalar.len, FA_TPL_URL, &c->path);
    }
    if (body && json) {
        fa_errbuf_add(p->errs, json, path, "give either body or json, not both");
        ok = false;
    } else if (body) {
        if (body->kind != FA_YAML_SCALAR) {
            snprintf(kpath, sizeof(kpath), "%s.body", path);
            fa_errbuf_add(p->errs, body, kpath, "expected a string (use json: for structures)");
            ok = false;
        } else {
            c->has_body = true;
            c->body_ctype = FA_STR_LIT("text/plain; charset=utf-8");
            ok &= fa_tpl_parse(p, body, body->scalar.str, body->scalar.len, FA_TPL_RAW,
                                &c->body);
        }
    } else if (json) {
        fa_str_t text = fa_tpl_yaml_json(p->arena, json);
        c->has_body = true;
        c->body_ctype = FA_STR_LIT("application/json");
        ok &= fa_tpl_parse(p, json, text.ptr, text.len, FA_TPL_JSON, &c->body);
    }
    /* Registered even when the call has errors, so later stages do not report it again. */
    if (c->name) {
        if (info_has_result(p->info, c->name, strlen(c->name))) {
            fa_errbuf_add(p->errs, node, path,
                          "an earlier stage already stores a result named \"%s\" (set name:)",
                          c->name);
            ok = false;
        } else if (p->info->nresults == FA_PIPE_MAX_RESULTS) {
            fa_errbuf_add(p->errs, node, path, "too many results in one pipeline (at most %d)",
                          FA_PIPE_MAX_RESULTS);
            ok = false;
        } else {
            p->info->results[p->info->nresults++] = c->name;
        }
    }
    return ok;
}

/* ---- the results table ---- */

fa_upstream_ctx_t *fa__upstream_ctx(fa_req_t *req)
{
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    if (!ctx->upstream)
        ctx->upstream = fa_pool_calloc(req->pool, sizeof(fa_upstream_ctx_t));
    return ctx->upstream;
}

fa_upstream_result_t *fa__upstream_result(fa_req_t *req, const char *name, size_t len)
{
    fa_upstream_ctx_t *u = fa_pipe_ctx(req)->upstream;
    fa_upstream_result_t *found = NULL;
    for (fa_upstream_result_t *r = u ? u->first : NULL; r; r = r->next)
        if (strlen(r->name) == len && memcmp(r->name, name, len) == 0)
            found = r;
    return found;
}

const fa_json_t *fa__upstream_result_json(fa_req_t *req, fa_upstream_result_t *r)
{
    if (r->json_state == 0)
        r->json_state = r->resp.body.len &&
                                fa_json_parse(&r->json, req->pool, r->resp.body.ptr,
                                              r->resp.body.len, NULL, NULL) == 0
                            ? 1
                            : -1;
    return r->json_state > 0 ? &r->json : NULL;
}

/* A result with what its callbacks need; the result is the first member, so the table's
 * pointers are the slots'. */
typedef struct {
    fa_upstream_result_t r;
    const fa__call_spec_t *spec;
    fa_req_t *req;
    bool never_reject;
} slot_t;

static fa_result_t on_response(fa_sched_t *sched, void *data, fa_value_t v)
{
    (void)sched;
    slot_t *s = data;
    const fa_upstream_resp_t *resp = v.p;
    s->r.resp = *resp;
    if ((resp->status >= 200 && resp->status < 300) || s->spec->status == FA__STATUS_ACCEPT) {
        s->r.state = FA_UPR_OK;
        return fa_ok(FA_VALUE_NONE);
    }
    char msg[96];
    int n = snprintf(msg, sizeof(msg), "upstream %s answered %d",
                     s->req->worker->config->upstreams[s->spec->upstream].name, resp->status);
    s->r.state = FA_UPR_FAILED;
    s->r.passthrough = s->spec->status == FA__STATUS_PASSTHROUGH;
    s->r.error = fa_pool_strndup(s->req->pool, msg, (size_t)n);
    fa_log_warn("%s: %s", s->r.name, msg);
    return s->never_reject ? fa_ok(FA_VALUE_NONE)
                           : fa_fail((fa_error_t){502, s->r.error});
}

static fa_result_t on_failure(fa_sched_t *sched, void *data, fa_error_t e)
{
    (void)sched;
    slot_t *s = data;
    if (s->r.state == FA_UPR_PENDING) {
        s->r.state = FA_UPR_FAILED;
        s->r.timed_out = e.msg == fa_err_timeout;
        s->r.error = s->r.timed_out ? "timed out" : e.msg ? e.msg : "failed";
        if (s->r.timed_out && s->spec->timeout > 0)
            fa_log_warn("%s: upstream %s: no answer within %gs", s->r.name,
                        s->req->worker->config->upstreams[s->spec->upstream].name,
                        s->spec->timeout);
    }
    return s->never_reject ? fa_ok(FA_VALUE_NONE) : fa_fail(e);
}

fa_result_t fa__swallow(fa_sched_t *sched, void *data, fa_error_t error)
{
    (void)sched, (void)data, (void)error;
    return fa_ok(FA_VALUE_NONE);
}

/* Renders spec into an upstream request in req->pool. */
static void build_request(fa_req_t *req, const fa__call_spec_t *spec, fa_upstream_req_t *rq)
{
    rq->method = spec->method;
    rq->target = fa_tpl_render(&spec->path, req);
    fa_json_writer_t h;
    fa_json_writer_init(&h, req->pool, 64);
    for (unsigned i = 0; i < spec->npass; i++) {
        fa_str_t v = fa_req_header(req, spec->pass[i].ptr, spec->pass[i].len);
        if (!v.ptr)
            continue;
        fa_json_write_raw(&h, spec->pass[i].ptr, spec->pass[i].len);
        fa_json_write_raw(&h, ": ", 2);
        fa_json_write_raw(&h, v.ptr, v.len);
        fa_json_write_raw(&h, "\r\n", 2);
    }
    for (unsigned i = 0; i < spec->nheaders; i++) {
        fa_str_t v = fa_tpl_render(&spec->headers[i].value, req);
        fa_json_write_raw(&h, spec->headers[i].name.ptr, spec->headers[i].name.len);
        fa_json_write_raw(&h, ": ", 2);
        fa_json_write_raw(&h, v.ptr, v.len);
        fa_json_write_raw(&h, "\r\n", 2);
    }
    rq->body = FA_STR_NULL;
    if (spec->has_body) {
        rq->body = fa_tpl_render(&spec->body, req);
        fa_json_write_raw(&h, "Content-Type: ", 14);
        fa_json_write_raw(&h, spec->body_ctype.ptr, spec->body_ctype.len);
        fa_json_write_raw(&h, "\r\n", 2);
    }
    rq->headers = fa_json_writer_str(&h);
}

/* Starts one call and its recording chain: call -> [timeout] -> then(on_response) ->
 * catch(on_failure). On error every future made so far is cancelled. */
static int start_one(fa_req_t *req, slot_t *s, fa_future_t *out)
{
    fa_upstream_req_t *rq = fa_pool_alloc(req->pool, sizeof(*rq));
    build_request(req, s->spec, rq);
    fa_future_t f, g;
    int rc = fa_upstream_call(req->worker, s->spec->upstream, req->pool, rq, &f);
    if (rc != 0)
        return rc;
    if (s->spec->timeout > 0) {
        if ((rc = fa_future_timeout(f, s->spec->timeout, &g)) != 0)
            goto fail;
        f = g;
    }
    if ((rc = fa_future_then(f, on_response, s, &g)) != 0)
        goto fail;
    f = g;
    if ((rc = fa_future_catch(f, on_failure, s, &g)) != 0)
        goto fail;
    *out = g;
    return 0;
fail:
    (void)fa_future_cancel(f); /* ours alone: nothing else consumes it */
    return rc;
}

int fa__calls_start(fa_req_t *req, const fa__call_spec_t *specs, unsigned n, bool never_reject,
                    fa_future_t *futs)
{
    fa_upstream_ctx_t *u = fa__upstream_ctx(req);
    slot_t *slots = fa_pool_calloc(req->pool, n * sizeof(slot_t));
    for (unsigned i = 0; i < n; i++) {
        slot_t *s = &slots[i];
        s->spec = &specs[i];
        s->req = req;
        s->never_reject = never_reject;
        s->r.name = specs[i].name;
        int rc = start_one(req, s, &futs[i]);
        if (rc != 0) {
            for (unsigned j = 0; j < i; j++)
                (void)fa_future_cancel(futs[j]);
            return rc;
        }
    }
    /* Linked only once every call started, so a failed start leaves the table as it was. */
    for (unsigned i = 0; i < n; i++) {
        if (u->last)
            u->last->next = &slots[i].r;
        else
            u->first = &slots[i].r;
        u->last = &slots[i].r;
    }
    u->batch = &slots[0].r;
    u->nbatch = n;
    return 0;
}

fa_status_t fa__answer_failure(fa_req_t *req, fa_upstream_result_t *r, unsigned n)
{
    for (unsigned i = 0; i < n && r; i++, r = r->next) {
        if (r->state != FA_UPR_FAILED)
            continue;
        if (r->passthrough && r->resp.status >= 300 && r->resp.status <= 599) {
            fa_req_respond(req, r->resp.status, r->resp.content_type, r->resp.body.ptr,
                           r->resp.body.len);
            return FA_DONE;
        }
        char msg[320];
        snprintf(msg, sizeof(msg), "%s: %s", r->name, r->error);
        fa_req_respond_error(req, r->timed_out ? 504 : 502, msg);
        return FA_DONE;
    }
    return FA_OK;
}

/* ---- the fetch stage ---- */

static const void *parse(fa_stage_parse_t *p)
{
    fa__call_spec_t *c = fa_pool_calloc(p->arena, sizeof(*c));
    char path[160];
    snprintf(path, sizeof(path), "%s.fetch", p->path);
    return fa__call_spec_parse(p, p->arg, path, NULL, c) ? c : NULL;
}

static fa_status_t run(fa_req_t *req, const fa_stage_t *stage)
{
    fa_upstream_ctx_t *u = fa__upstream_ctx(req);
    if (u->waiting == stage->conf) {
        /* Second run: the call has been recorded. */
        u->waiting = NULL;
        return fa__answer_failure(req, u->batch, 1);
    }
    fa_future_t f;
    if (fa__calls_start(req, stage->conf, 1, true, &f) != 0) {
        fa_req_respond_error(req, 503, "too many requests in flight");
        return FA_DONE;
    }
    u->waiting = stage->conf;
    fa_pipe_wait_again(req, f);
    return FA_AGAIN;
}

const fa_stage_type_t fa_stage_fetch = {
    .name = "fetch",
    .parse = parse,
    .run = run,
    .async = true,
};
