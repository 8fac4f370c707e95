/*
 * stage_respond.c — answers the request from the route's config.
 *
 *   - respond: { status: 200 }                                      empty body
 *   - respond: { status: 200, json: { status: healthy } }           a JSON body
 *   - respond: { json: { user: "${path.id}", got: "${body.value}" } }  with substitutions
 *   - respond: { status: 202, body: "queued ${path.id}\n", content_type: text/plain,
 *                headers: { Cache-Control: no-store } }
 *
 * The body is a template compiled at load (template.h: ${path.NAME}, ${body.NAME},
 * ${header.NAME}, ${query}, ${results.NAME...}, ${error}). Inside a json body every substitution
 * sits in a string and is escaped as JSON; in a text body it is inserted as is. A body without
 * substitutions is rendered once, at load.
 */
#include "config.h"
#include "stage.h"
#include "template.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    int status;
    fa_str_t ctype;
    fa_header_t headers[FA_REQ_MAX_EXTRA_HEADERS];
    unsigned nheaders;
    fa_tpl_t body;
    bool is_static;
    fa_resp_fixed_t fixed; /* when is_static: the whole response but its Server and Date lines */
} respond_conf_t;

static bool parse_headers(fa_stage_parse_t *p, const fa_yaml_node_t *v, const char *path,
                          respond_conf_t *c)
{
    if (v->kind != FA_YAML_MAP) {
        fa_errbuf_add(p->errs, v, path, "expected a mapping of header names to values");
        return false;
    }
    bool ok = true;
    for (size_t j = 0; j < v->map.len; j++) {
        const fa_yaml_node_t *hk = v->map.pairs[j].key, *hv = v->map.pairs[j].value;
        bool bad = hv->kind != FA_YAML_SCALAR || strpbrk(hv->scalar.str, "\r\n") ||
                   hk->scalar.len == 0 || strpbrk(hk->scalar.str, " \t\r\n:");
        if (bad || c->nheaders == FA_REQ_MAX_EXTRA_HEADERS) {
            fa_errbuf_add(p->errs, hk, path, bad ? "invalid header name or value" : "too many headers");
            ok = false;
            continue;
        }
        c->headers[c->nheaders++] =
            (fa_header_t){{hk->scalar.str, hk->scalar.len}, {hv->scalar.str, hv->scalar.len}};
    }
    return ok;
}

static const void *parse(fa_stage_parse_t *p)
{
    if (!fa_stage_expect_map(p, p->arg, "respond"))
        return NULL;
    respond_conf_t *c = fa_pool_calloc(p->arena, sizeof(*c));
    c->status = 200;
    const fa_yaml_node_t *body = NULL, *json = NULL;
    bool ok = true;
    char path[200];
    for (size_t i = 0; i < p->arg->map.len; i++) {
        const fa_yaml_node_t *k = p->arg->map.pairs[i].key, *v = p->arg->map.pairs[i].value;
        snprintf(path, sizeof(path), "%s.respond.%s", p->path, k->scalar.str);
        long long n;
        if (strcmp(k->scalar.str, "status") == 0) {
            ok &= fa_config_parse_int(v, path, 200, 599, &n, p->errs);
            c->status = (int)n;
        } else if (strcmp(k->scalar.str, "body") == 0) {
            body = v;
            if (v->kind != FA_YAML_SCALAR) {
                fa_errbuf_add(p->errs, v, path, "expected a string (use json: for structures)");
                ok = false;
            }
        } else if (strcmp(k->scalar.str, "json") == 0) {
            json = v;
        } else if (strcmp(k->scalar.str, "content_type") == 0) {
            if (v->kind != FA_YAML_SCALAR || v->scalar.len == 0 || strpbrk(v->scalar.str, "\r\n")) {
                fa_errbuf_add(p->errs, v, path, "expected a media type");
                ok = false;
            } else {
                c->ctype = (fa_str_t){v->scalar.str, v->scalar.len};
            }
        } else if (strcmp(k->scalar.str, "headers") == 0) {
            ok &= parse_headers(p, v, path, c);
        } else {
            fa_errbuf_add(p->errs, k, path,
                          "unknown key (respond takes status, body, json, content_type, headers)");
            ok = false;
        }
    }
    if (body && json) {
        fa_errbuf_add(p->errs, json, p->path, "respond: give either body or json, not both");
        ok = false;
    }
    if (!ok)
        return NULL;
    if (json) {
        fa_str_t text = fa_tpl_yaml_json(p->arena, json);
        ok = fa_tpl_parse(p, json, text.ptr, text.len, FA_TPL_JSON, &c->body);
        if (!c->ctype.len)
            c->ctype = FA_STR_LIT("application/json");
    } else if (body) {
        ok = fa_tpl_parse(p, body, body->scalar.str, body->scalar.len, FA_TPL_RAW, &c->body);
        if (!c->ctype.len)
            c->ctype = FA_STR_LIT("text/plain; charset=utf-8");
    }
    if (!ok)
        return NULL;
    fa_str_t static_body;
    c->is_static = fa_tpl_static(&c->body, &static_body);
    if (c->is_static)
        fa_resp_fixed_init(&c->fixed, p->arena, c->status, c->ctype, c->headers, c->nheaders,
                           static_body);
    return c;
}

static fa_status_t run(fa_req_t *req, const fa_stage_t *stage)
{
    const respond_conf_t *c = stage->conf;
    if (c->is_static) {
        fa_req_respond_fixed(req, &c->fixed);
        return FA_DONE;
    }
    for (unsigned i = 0; i < c->nheaders; i++)
        fa_req_add_header(req, c->headers[i].name, c->headers[i].value);
    fa_str_t body = fa_tpl_render(&c->body, req);
    fa_req_respond(req, c->status, c->ctype, body.ptr, body.len);
    return FA_DONE;
}

const fa_stage_type_t fa_stage_respond = {
    .name = "respond",
    .parse = parse,
    .run = run,
    .terminal = true,
};
