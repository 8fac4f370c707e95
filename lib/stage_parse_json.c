/*
 * stage_parse_json.c — parses the request body as strict JSON into the request pool.
 *
 *   - parse_json: { max_bytes: 4k, max_depth: 8 }
 *
 * A body over max_bytes is refused with 413; anything that is not one well-formed JSON value
 * (RFC 8259, valid UTF-8, no duplicate keys) with 400 and a body naming the problem and its byte.
 *
 *   - parse_json: { batch: ndjson, max_events: 10000, max_bytes: 4k }
 *
 * makes the body a batch of events (batch: ndjson, array or auto; see batch.h): max_bytes and max_depth
 * then apply to each event, and the stages after this one run once per event.
 */
#include "config.h"
#include "json.h"
#include "stage.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    fa_json_limits_t lim;
    fa_batch_conf_t batch; /* framing FA_BATCH_NONE: the body is one document */
} parse_json_conf_t;

static const void *parse(fa_stage_parse_t *p)
{
    parse_json_conf_t *c = fa_pool_calloc(p->arena, sizeof(*c));
    c->lim.max_bytes = FA_MIN(p->config->limits.body_bytes, (size_t)FA_JSON_HARD_MAX_BYTES);
    c->lim.max_depth = 32;
    c->lim.max_tokens = 0;
    p->info->has_json = true;
    if (p->arg->kind == FA_YAML_SCALAR && p->arg->scalar.len == 0)
        return c; /* "parse_json:" with no argument */
    if (!fa_stage_expect_map(p, p->arg, "parse_json"))
        return NULL;
    bool ok = true, has_max_events = false, has_max_bytes = false;
    char path[160];
    for (size_t i = 0; i < p->arg->map.len; i++) {
        const fa_yaml_node_t *k = p->arg->map.pairs[i].key, *v = p->arg->map.pairs[i].value;
        snprintf(path, sizeof(path), "%s.parse_json.%s", p->path, k->scalar.str);
        long long n;
        if (strcmp(k->scalar.str, "max_bytes") == 0) {
            size_t sz;
            ok &= fa_config_parse_size(v, path, &sz, p->errs);
            has_max_bytes = true;
            if (ok && (sz == 0 || sz > FA_JSON_HARD_MAX_BYTES)) {
                fa_errbuf_add(p->errs, v, path, "expected a size from 1 to 1g");
                ok = false;
            }
            c->lim.max_bytes = sz;
        } else if (strcmp(k->scalar.str, "max_depth") == 0) {
            ok &= fa_config_parse_int(v, path, 1, 1024, &n, p->errs);
            c->lim.max_depth = (uint32_t)n;
        } else if (strcmp(k->scalar.str, "max_tokens") == 0) {
            ok &= fa_config_parse_int(v, path, 1, 10000000, &n, p->errs);
            c->lim.max_tokens = (uint32_t)n;
        } else if (strcmp(k->scalar.str, "batch") == 0) {
            if (fa_yaml_scalar_is(v, "ndjson")) {
                c->batch.framing = FA_BATCH_NDJSON;
            } else if (fa_yaml_scalar_is(v, "array")) {
                c->batch.framing = FA_BATCH_ARRAY;
            } else if (fa_yaml_scalar_is(v, "auto")) {
                c->batch.framing = FA_BATCH_AUTO;
            } else {
                fa_errbuf_add(p->errs, v, path, "expected ndjson, array or auto");
                ok = false;
            }
        } else if (strcmp(k->scalar.str, "max_events") == 0) {
            ok &= fa_config_parse_int(v, path, 1, 10000000, &n, p->errs);
            c->batch.max_events = (uint32_t)n;
            has_max_events = true;
        } else {
            fa_errbuf_add(p->errs, k, path,
                          "unknown key (parse_json takes max_bytes, max_depth, max_tokens, batch, "
                          "max_events)");
            ok = false;
        }
    }
    if (ok && has_max_events && c->batch.framing == FA_BATCH_NONE) {
        fa_errbuf_add(p->errs, p->arg, p->path, "parse_json: max_events needs batch: ndjson|array|auto");
        ok = false;
    }
    if (c->batch.framing != FA_BATCH_NONE) {
        if (!has_max_events)
            c->batch.max_events = 10000;
        if (!has_max_bytes)
            c->lim.max_bytes = 64 * 1024; /* per event */
        c->batch.event = c->lim;
    }
    return ok ? c : NULL;
}

static fa_status_t run(fa_req_t *req, const fa_stage_t *stage)
{
    const parse_json_conf_t *c = stage->conf;
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    if (ctx->batch)
        return fa_batch_finish(req, ctx->batch); /* the events went by as the body arrived */
    if (req->body.len > c->lim.max_bytes) {
        fa_pipe_reject(req, 413, "request body too large for this route");
        return FA_DONE;
    }
    fa_json_error_t err;
    if (fa_json_parse(&ctx->json, req->pool, req->body.ptr, req->body.len, &c->lim, &err) != 0) {
        fa_pipe_reject(req, err.code == FA_JSON_ETOOBIG ? 413 : 400,
                       fa_pool_strndup(req->pool, err.msg, strlen(err.msg)));
        return FA_DONE;
    }
    ctx->has_json = true;
    return FA_OK;
}

const fa_stage_type_t fa_stage_parse_json = {
    .name = "parse_json",
    .parse = parse,
    .run = run,
};

const fa_batch_conf_t *fa_stage_parse_json_batch(const fa_stage_t *stage)
{
    if (stage->type != &fa_stage_parse_json)
        return NULL;
    const parse_json_conf_t *c = stage->conf;
    return c->batch.framing == FA_BATCH_NONE ? NULL : &c->batch;
}
