/*
 * stage_parse_json.c — parses the request body as strict JSON into the request pool.
 *
 *   - parse_json: { max_bytes: 4k, max_depth: 8 }
 *
 * A body over max_bytes is refused with 413; anything that is not one well-formed JSON value
 * (RFC 8259, valid UTF-8, no duplicate keys) with 400 and a body naming the problem and its byte.
 */
#include "config.h"
#include "json.h"
#include "stage.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    fa_json_limits_t lim;
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
    bool ok = true;
    char path[160];
    for (size_t i = 0; i < p->arg->map.len; i++) {
        const fa_yaml_node_t *k = p->arg->map.pairs[i].key, *v = p->arg->map.pairs[i].value;
        snprintf(path, sizeof(path), "%s.parse_json.%s", p->path, k->scalar.str);
        long long n;
        if (strcmp(k->scalar.str, "max_bytes") == 0) {
            size_t sz;
            ok &= fa_config_parse_size(v, path, &sz, p->errs);
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
        } else {
            fa_errbuf_add(p->errs, k, path,
                          "unknown key (parse_json takes max_bytes, max_depth, max_tokens)");
            ok = false;
        }
    }
    return ok ? c : NULL;
}

static fa_status_t run(fa_req_t *req, const fa_stage_t *stage)
{
    const parse_json_conf_t *c = stage->conf;
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    if (req->body.len > c->lim.max_bytes) {
        fa_req_respond_error(req, 413, "request body too large for this route");
        return FA_DONE;
    }
    fa_json_error_t err;
    if (fa_json_parse(&ctx->json, req->pool, req->body.ptr, req->body.len, &c->lim, &err) != 0) {
        fa_req_respond_error(req, err.code == FA_JSON_ETOOBIG ? 413 : 400, err.msg);
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
