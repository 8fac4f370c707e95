/*
 * stage_respond.c — answers the request from the route's config.
 *
 *   - respond: { status: 200 }                                      empty body
 *   - respond: { status: 200, json: { status: healthy } }           a JSON body
 *   - respond: { json: { user: "${path.id}", got: "${body.value}" } }  with substitutions
 *   - respond: { status: 202, body: "queued ${path.id}\n", content_type: text/plain,
 *                headers: { Cache-Control: no-store } }
 *
 * The body is rendered once at load. ${path.NAME} takes a path parameter of the route, ${body.NAME}
 * a top-level field of the parsed JSON body (string values unescaped; others as their JSON text;
 * missing fields empty). Inside a json body every substitution sits in a string and is escaped as
 * JSON; in a text body it is inserted as is. ${error} is the reason a request was refused (for
 * the answers of a route's on_error).
 */
#include "config.h"
#include "json.h"
#include "stage.h"

#include <stdio.h>
#include <string.h>

enum { SEG_LIT, SEG_PATH, SEG_BODY, SEG_ERROR };

typedef struct {
    int kind;
    bool json_escape;
    fa_str_t text; /* the literal, or the name to substitute */
} seg_t;

typedef struct {
    int status;
    fa_str_t ctype;
    fa_header_t headers[FA_REQ_MAX_EXTRA_HEADERS];
    unsigned nheaders;
    seg_t *segs;
    unsigned nsegs;
    bool dynamic;
    fa_str_t body; /* the whole body when !dynamic */
} respond_conf_t;

/* Template builder: literal bytes accumulate in a growing buffer; substitutions cut segments. */
typedef struct {
    fa_stage_parse_t *p;
    char *buf;
    size_t len, cap, lit_start;
    seg_t segs[64];
    unsigned nsegs;
    bool ok;
    bool has_subst;
} tpl_t;

static void tpl_put(tpl_t *t, const char *s, size_t n)
{
    if (t->len + n > t->cap) {
        size_t cap = FA_MAX(t->cap * 2, t->len + n + 64);
        char *nb = fa_pool_alloc(t->p->arena, cap);
        if (t->len)
            memcpy(nb, t->buf, t->len);
        t->buf = nb; /* the old buffer stays in the arena until the app is freed */
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
}

static void tpl_cut(tpl_t *t)
{
    if (t->len > t->lit_start && t->nsegs < FA_ARRAY_SIZE(t->segs)) {
        char *copy = fa_pool_strndup(t->p->arena, t->buf + t->lit_start, t->len - t->lit_start);
        t->segs[t->nsegs++] = (seg_t){SEG_LIT, false, {copy, t->len - t->lit_start}};
    }
    t->lit_start = t->len;
}

static bool route_has_param(const char *route, const char *name, size_t len)
{
    for (const char *s = route; (s = strpbrk(s, ":*")) != NULL; s++) {
        if (s != route && s[-1] != '/')
            continue;
        const char *e = s + 1;
        while (*e && *e != '/')
            e++;
        if ((size_t)(e - s - 1) == len && memcmp(s + 1, name, len) == 0)
            return true;
    }
    return false;
}

/* Appends string s with ${...} substitutions; escape says whether literals and values are JSON
 * string content. */
static void tpl_string(tpl_t *t, const fa_yaml_node_t *at, const char *s, size_t n, bool escape)
{
    size_t i = 0;
    while (i < n) {
        const char *d = NULL;
        for (size_t j = i; j + 1 < n; j++)
            if (s[j] == '$' && s[j + 1] == '{') {
                d = s + j;
                break;
            }
        size_t lit = d ? (size_t)(d - (s + i)) : n - i;
        if (escape) {
            char tmp[512];
            size_t need = fa_json_escape(tmp, sizeof(tmp), s + i, lit);
            if (need <= sizeof(tmp)) {
                tpl_put(t, tmp, need);
            } else {
                char *big = fa_pool_alloc(t->p->arena, need);
                fa_json_escape(big, need, s + i, lit);
                tpl_put(t, big, need);
            }
        } else {
            tpl_put(t, s + i, lit);
        }
        i += lit;
        if (!d)
            break;
        const char *end = memchr(d, '}', (size_t)(s + n - d));
        if (!end) {
            fa_errbuf_add(t->p->errs, at, t->p->path, "respond: unterminated ${ in \"%.*s\"",
                          (int)n, s);
            t->ok = false;
            return;
        }
        const char *name = d + 2;
        size_t nlen = (size_t)(end - name);
        int kind = -1;
        if (nlen > 5 && memcmp(name, "path.", 5) == 0) {
            kind = SEG_PATH;
            name += 5, nlen -= 5;
            if (!route_has_param(t->p->route_path, name, nlen)) {
                fa_errbuf_add(t->p->errs, at, t->p->path,
                              "respond: ${path.%.*s}: the route \"%s\" has no such parameter",
                              (int)nlen, name, t->p->route_path);
                t->ok = false;
            }
        } else if (nlen > 5 && memcmp(name, "body.", 5) == 0) {
            kind = SEG_BODY;
            name += 5, nlen -= 5;
            if (!t->p->info->has_json) {
                fa_errbuf_add(t->p->errs, at, t->p->path,
                              "respond: ${body.%.*s} needs an earlier parse_json stage", (int)nlen,
                              name);
                t->ok = false;
            }
        } else if (nlen == 5 && memcmp(name, "error", 5) == 0) {
            kind = SEG_ERROR; /* why the request was refused (on_error answers) */
        } else {
            fa_errbuf_add(t->p->errs, at, t->p->path,
                          "respond: unknown substitution ${%.*s} (use ${path.NAME}, "
                          "${body.NAME} or ${error})",
                          (int)(end - d - 2), d + 2);
            t->ok = false;
        }
        if (kind >= 0 && t->nsegs + 1 < FA_ARRAY_SIZE(t->segs)) {
            tpl_cut(t);
            t->segs[t->nsegs++] =
                (seg_t){kind, escape, {fa_pool_strndup(t->p->arena, name, nlen), nlen}};
            t->has_subst = true;
        }
        i = (size_t)(end + 1 - s);
    }
}

static bool is_json_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i == n)
        return false;
    if (s[i] == '0')
        i++;
    else if (s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return false;
    if (i < n && s[i] == '.') {
        i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    return i == n;
}

/* Renders a YAML node as JSON into the template. */
static void tpl_json(tpl_t *t, const fa_yaml_node_t *n)
{
    switch (n->kind) {
    case FA_YAML_MAP:
        tpl_put(t, "{", 1);
        for (size_t i = 0; i < n->map.len; i++) {
            if (i)
                tpl_put(t, ",", 1);
            tpl_put(t, "\"", 1);
            const fa_yaml_node_t *k = n->map.pairs[i].key;
            tpl_string(t, k, k->scalar.str, k->scalar.len, true);
            tpl_put(t, "\":", 2);
            tpl_json(t, n->map.pairs[i].value);
        }
        tpl_put(t, "}", 1);
        break;
    case FA_YAML_SEQ:
        tpl_put(t, "[", 1);
        for (size_t i = 0; i < n->seq.len; i++) {
            if (i)
                tpl_put(t, ",", 1);
            tpl_json(t, n->seq.items[i]);
        }
        tpl_put(t, "]", 1);
        break;
    case FA_YAML_SCALAR: {
        const char *s = n->scalar.str;
        size_t len = n->scalar.len;
        if (!n->quoted && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0 ||
                           strcmp(s, "null") == 0 || is_json_number(s, len))) {
            tpl_put(t, s, len);
        } else {
            tpl_put(t, "\"", 1);
            tpl_string(t, n, s, len, true);
            tpl_put(t, "\"", 1);
        }
        break;
    }
    }
}

static const void *parse(fa_stage_parse_t *p)
{
    if (!fa_stage_expect_map(p, p->arg, "respond"))
        return NULL;
    respond_conf_t *c = fa_pool_calloc(p->arena, sizeof(*c));
    c->status = 200;
    tpl_t t = {.p = p, .ok = true};
    const fa_yaml_node_t *body = NULL, *json = NULL;
    char path[200];
    for (size_t i = 0; i < p->arg->map.len; i++) {
        const fa_yaml_node_t *k = p->arg->map.pairs[i].key, *v = p->arg->map.pairs[i].value;
        snprintf(path, sizeof(path), "%s.respond.%s", p->path, k->scalar.str);
        long long n;
        if (strcmp(k->scalar.str, "status") == 0) {
            t.ok &= fa_config_parse_int(v, path, 200, 599, &n, p->errs);
            c->status = (int)n;
        } else if (strcmp(k->scalar.str, "body") == 0) {
            body = v;
            if (v->kind != FA_YAML_SCALAR) {
                fa_errbuf_add(p->errs, v, path, "expected a string (use json: for structures)");
                t.ok = false;
            }
        } else if (strcmp(k->scalar.str, "json") == 0) {
            json = v;
        } else if (strcmp(k->scalar.str, "content_type") == 0) {
            if (v->kind != FA_YAML_SCALAR || v->scalar.len == 0) {
                fa_errbuf_add(p->errs, v, path, "expected a media type");
                t.ok = false;
            } else {
                c->ctype = (fa_str_t){v->scalar.str, v->scalar.len};
            }
        } else if (strcmp(k->scalar.str, "headers") == 0) {
            if (v->kind != FA_YAML_MAP) {
                fa_errbuf_add(p->errs, v, path, "expected a mapping of header names to values");
                t.ok = false;
                continue;
            }
            for (size_t j = 0; j < v->map.len; j++) {
                const fa_yaml_node_t *hk = v->map.pairs[j].key, *hv = v->map.pairs[j].value;
                bool bad = hv->kind != FA_YAML_SCALAR || strpbrk(hv->scalar.str, "\r\n") ||
                           hk->scalar.len == 0 || strpbrk(hk->scalar.str, " \t\r\n:");
                if (bad || c->nheaders == FA_REQ_MAX_EXTRA_HEADERS) {
                    fa_errbuf_add(p->errs, hk, path,
                                  bad ? "invalid header name or value" : "too many headers");
                    t.ok = false;
                    continue;
                }
                c->headers[c->nheaders++] =
                    (fa_header_t){{hk->scalar.str, hk->scalar.len}, {hv->scalar.str, hv->scalar.len}};
            }
        } else {
            fa_errbuf_add(p->errs, k, path,
                          "unknown key (respond takes status, body, json, content_type, headers)");
            t.ok = false;
        }
    }
    if (body && json) {
        fa_errbuf_add(p->errs, json, p->path, "respond: give either body or json, not both");
        t.ok = false;
    }
    if (!t.ok)
        return NULL;
    if (json) {
        tpl_json(&t, json);
        if (!c->ctype.len)
            c->ctype = FA_STR_LIT("application/json");
    } else if (body) {
        tpl_string(&t, body, body->scalar.str, body->scalar.len, false);
        if (!c->ctype.len)
            c->ctype = FA_STR_LIT("text/plain; charset=utf-8");
    }
    if (!t.ok)
        return NULL;
    tpl_cut(&t);
    c->dynamic = t.has_subst;
    c->nsegs = t.nsegs;
    c->segs = fa_pool_alloc(p->arena, FA_MAX(t.nsegs, 1u) * sizeof(seg_t));
    memcpy(c->segs, t.segs, t.nsegs * sizeof(seg_t));
    c->body = t.nsegs == 1 && !c->dynamic ? c->segs[0].text : FA_STR_NULL;
    if (!c->body.ptr)
        c->body = (fa_str_t){"", 0};
    return c;
}

static void put_value(fa_json_writer_t *out, fa_pool_t *pool, fa_str_t v, bool escape)
{
    if (!escape) {
        fa_json_write_raw(out, v.ptr, v.len);
        return;
    }
    /* fa_json_write_str adds quotes; the template already has them, so write escaped bytes. */
    char tmp[256];
    size_t need = fa_json_escape(tmp, sizeof(tmp), v.ptr, v.len);
    if (need <= sizeof(tmp)) {
        fa_json_write_raw(out, tmp, need);
    } else {
        char *big = fa_pool_alloc(pool, need);
        fa_json_escape(big, need, v.ptr, v.len);
        fa_json_write_raw(out, big, need);
    }
}

static fa_status_t run(fa_req_t *req, const fa_stage_t *stage)
{
    const respond_conf_t *c = stage->conf;
    for (unsigned i = 0; i < c->nheaders; i++)
        fa_req_add_header(req, c->headers[i].name, c->headers[i].value);
    if (!c->dynamic) {
        fa_req_respond(req, c->status, c->ctype, c->body.ptr, c->body.len);
        return FA_DONE;
    }
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    fa_json_writer_t out;
    fa_json_writer_init(&out, req->pool, 256);
    for (unsigned i = 0; i < c->nsegs; i++) {
        const seg_t *s = &c->segs[i];
        fa_str_t v = FA_STR_NULL;
        if (s->kind == SEG_LIT) {
            fa_json_write_raw(&out, s->text.ptr, s->text.len);
            continue;
        }
        if (s->kind == SEG_PATH) {
            v = fa_req_param(req, s->text.ptr, s->text.len);
        } else if (s->kind == SEG_ERROR) {
            if (req->error_msg)
                v = (fa_str_t){req->error_msg, strlen(req->error_msg)};
        } else if (ctx && ctx->has_json) {
            const fa_json_t *doc = &ctx->json;
            int tok = fa_json_object_get(doc, fa_json_root(doc), s->text.ptr, s->text.len);
            if (tok >= 0 && !(fa_json_type(doc, tok) == FA_JSON_STRING &&
                              fa_json_str(doc, tok, req->pool, &v)))
                v = fa_json_raw(doc, tok);
        }
        if (v.len)
            put_value(&out, req->pool, v, s->json_escape);
    }
    fa_str_t body = fa_json_writer_str(&out);
    fa_req_respond(req, c->status, c->ctype, body.ptr, body.len);
    return FA_DONE;
}

const fa_stage_type_t fa_stage_respond = {
    .name = "respond",
    .parse = parse,
    .run = run,
    .terminal = true,
};
