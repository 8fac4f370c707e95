/*
 * template.c — text with ${...} substitutions, compiled at load and rendered per request; see
 * template.h. Used by respond (bodies), fetch and fan_out (paths, headers, bodies).
 */
#include "template.h"
#include "json.h"
#include "upstream_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool has_result(const fa_pipe_info_t *info, const char *name, size_t len)
{
    for (unsigned i = 0; i < info->nresults; i++)
        if (strlen(info->results[i]) == len && memcmp(info->results[i], name, len) == 0)
            return true;
    return false;
}


enum { SEG_LIT, SEG_PATH, SEG_BODY, SEG_HEADER, SEG_QUERY, SEG_RESULT, SEG_ERROR };

struct fa_tpl_seg {
    int kind;
    fa_str_t text;       /* the literal, or the name to look up */
    const char *fields;  /* SEG_RESULT: "a.b.c" after the result name, or NULL */
};

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


bool fa_tpl_parse(fa_stage_parse_t *p, const fa_yaml_node_t *at, const char *s, size_t n,
                   fa_tpl_esc_t esc, fa_tpl_t *out)
{
    fa_tpl_seg_t segs[64];
    unsigned ns = 0;
    bool ok = true;
    size_t i = 0;
    while (i < n && ok) {
        const char *d = NULL;
        for (size_t j = i; j + 1 < n; j++)
            if (s[j] == '$' && s[j + 1] == '{') {
                d = s + j;
                break;
            }
        size_t lit = d ? (size_t)(d - (s + i)) : n - i;
        if (lit && ns < FA_ARRAY_SIZE(segs))
            segs[ns++] = (fa_tpl_seg_t){SEG_LIT, {fa_pool_strndup(p->arena, s + i, lit), lit}, 0};
        i += lit;
        if (!d)
            break;
        const char *end = memchr(d, '}', (size_t)(s + n - d));
        if (!end) {
            fa_errbuf_add(p->errs, at, p->path, "unterminated ${ in \"%.*s\"", (int)n, s);
            return false;
        }
        const char *name = d + 2;
        size_t nlen = (size_t)(end - name);
        fa_tpl_seg_t seg = {0};
        if (nlen > 5 && memcmp(name, "path.", 5) == 0) {
            seg.kind = SEG_PATH;
            seg.text = (fa_str_t){name + 5, nlen - 5};
            if (!route_has_param(p->route_path, name + 5, nlen - 5)) {
                fa_errbuf_add(p->errs, at, p->path,
                              "${%.*s}: the route \"%s\" has no such parameter", (int)nlen, name,
                              p->route_path);
                ok = false;
            }
        } else if (nlen > 5 && memcmp(name, "body.", 5) == 0) {
            seg.kind = SEG_BODY;
            seg.text = (fa_str_t){name + 5, nlen - 5};
            if (!p->info->has_json) {
                fa_errbuf_add(p->errs, at, p->path, "${%.*s} needs an earlier parse_json stage",
                              (int)nlen, name);
                ok = false;
            }
        } else if (nlen > 7 && memcmp(name, "header.", 7) == 0) {
            seg.kind = SEG_HEADER;
            seg.text = (fa_str_t){name + 7, nlen - 7};
        } else if (nlen == 5 && memcmp(name, "query", 5) == 0) {
            seg.kind = SEG_QUERY;
        } else if (nlen == 5 && memcmp(name, "error", 5) == 0) {
            seg.kind = SEG_ERROR;
        } else if (nlen > 8 && memcmp(name, "results.", 8) == 0) {
            seg.kind = SEG_RESULT;
            const char *rn = name + 8, *dot = memchr(rn, '.', nlen - 8);
            size_t rlen = dot ? (size_t)(dot - rn) : nlen - 8;
            seg.text = (fa_str_t){rn, rlen};
            if (dot)
                seg.fields = fa_pool_strndup(p->arena, dot + 1, (size_t)(end - dot - 1));
            if (!has_result(p->info, rn, rlen)) {
                fa_errbuf_add(p->errs, at, p->path,
                              "${%.*s}: no earlier fetch or fan_out stores a result named \"%.*s\"",
                              (int)nlen, name, (int)rlen, rn);
                ok = false;
            }
        } else {
            fa_errbuf_add(p->errs, at, p->path,
                          "unknown substitution ${%.*s} (use ${path.NAME}, ${body.NAME}, "
                          "${header.NAME}, ${query}, ${results.NAME.FIELD} or ${error})",
                          (int)nlen, name);
            ok = false;
        }
        if (ns >= FA_ARRAY_SIZE(segs)) {
            fa_errbuf_add(p->errs, at, p->path, "too many substitutions");
            return false;
        }
        seg.text.ptr = fa_pool_strndup(p->arena, seg.text.ptr ? seg.text.ptr : "", seg.text.len);
        segs[ns++] = seg;
        i = (size_t)(end + 1 - s);
    }
    if (!ok)
        return false;
    out->esc = esc;
    out->nsegs = ns;
    out->segs = fa_pool_alloc(p->arena, FA_MAX(ns, 1u) * sizeof(fa_tpl_seg_t));
    memcpy(out->segs, segs, ns * sizeof(fa_tpl_seg_t));
    return true;
}

/* The value of JSON token tok as text: a string unescaped, anything else as written. */
static fa_str_t json_text(const fa_json_t *doc, int tok, fa_pool_t *pool)
{
    fa_str_t v;
    if (fa_json_type(doc, tok) == FA_JSON_STRING && fa_json_str(doc, tok, pool, &v))
        return v;
    return fa_json_raw(doc, tok);
}

/* Follows "a.b.0.c" from the root of doc: object keys, or array indexes for digit segments. */
static int json_path(const fa_json_t *doc, const char *fields)
{
    int tok = fa_json_root(doc);
    const char *s = fields;
    while (tok >= 0 && *s) {
        const char *e = strchr(s, '.');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (fa_json_type(doc, tok) == FA_JSON_ARRAY && len && strspn(s, "0123456789") >= len) {
            long idx = strtol(s, NULL, 10);
            fa_json_iter_t it = fa_json_iter(doc, tok);
            int k, v;
            tok = -1;
            for (long i = 0; fa_json_iter_next(doc, &it, &k, &v); i++)
                if (i == idx) {
                    tok = v;
                    break;
                }
        } else {
            tok = fa_json_object_get(doc, tok, s, len);
        }
        s += len + (e != NULL);
    }
    return tok;
}

static void put_escaped(fa_json_writer_t *w, fa_pool_t *pool, fa_tpl_esc_t esc, fa_str_t v)
{
    static const char hex[] = "0123456789ABCDEF";
    switch (esc) {
    case FA_TPL_RAW:
        fa_json_write_raw(w, v.ptr, v.len);
        return;
    case FA_TPL_LINE:
        for (size_t i = 0, start = 0; i <= v.len; i++)
            if (i == v.len || v.ptr[i] == '\r' || v.ptr[i] == '\n') {
                fa_json_write_raw(w, v.ptr + start, i - start);
                start = i + 1;
            }
        return;
    case FA_TPL_URL:
        for (size_t i = 0; i < v.len; i++) {
            unsigned char ch = (unsigned char)v.ptr[i];
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                ch == '-' || ch == '.' || ch == '_' || ch == '~') {
                fa_json_write_raw(w, (const char *)&v.ptr[i], 1);
            } else {
                char pct[3] = {'%', hex[ch >> 4], hex[ch & 15]};
                fa_json_write_raw(w, pct, 3);
            }
        }
        return;
    case FA_TPL_JSON: {
        size_t need = fa_json_escape(NULL, 0, v.ptr, v.len);
        char *buf = fa_pool_alloc(pool, need + 1);
        fa_json_escape(buf, need, v.ptr, v.len);
        fa_json_write_raw(w, buf, need);
        return;
    }
    }
}

fa_str_t fa_tpl_render(const fa_tpl_t *t, fa_req_t *req)
{
    if (t->nsegs == 1 && t->segs[0].kind == SEG_LIT)
        return t->segs[0].text;
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    fa_json_writer_t w;
    fa_json_writer_init(&w, req->pool, 128);
    for (unsigned i = 0; i < t->nsegs; i++) {
        const fa_tpl_seg_t *s = &t->segs[i];
        fa_str_t v = FA_STR_NULL;
        switch (s->kind) {
        case SEG_LIT:
            fa_json_write_raw(&w, s->text.ptr, s->text.len);
            continue;
        case SEG_PATH:
            v = fa_req_param(req, s->text.ptr, s->text.len);
            break;
        case SEG_BODY:
            if (ctx && ctx->has_json) {
                int tok = fa_json_object_get(&ctx->json, fa_json_root(&ctx->json), s->text.ptr,
                                             s->text.len);
                if (tok >= 0)
                    v = json_text(&ctx->json, tok, req->pool);
            }
            break;
        case SEG_HEADER:
            v = fa_req_header(req, s->text.ptr, s->text.len);
            break;
        case SEG_QUERY:
            v = req->query;
            break;
        case SEG_ERROR:
            if (req->error_msg)
                v = (fa_str_t){req->error_msg, strlen(req->error_msg)};
            break;
        case SEG_RESULT: {
            fa_upstream_result_t *r =
                ctx ? fa__upstream_result(req, s->text.ptr, s->text.len) : NULL;
            if (!r || r->state != FA_UPR_OK)
                break;
            if (!s->fields) {
                v = r->resp.body;
                break;
            }
            const fa_json_t *doc = fa__upstream_result_json(req, r);
            int tok = doc ? json_path(doc, s->fields) : -1;
            if (tok >= 0)
                v = json_text(doc, tok, req->pool);
            break;
        }
        }
        if (v.len)
            put_escaped(&w, req->pool, t->esc, v);
    }
    return fa_json_writer_str(&w);
}

/* ---- YAML to a JSON template (json: bodies) ---- */

static bool is_json_number(const char *s)
{
    char *end;
    if (!*s || strpbrk(s, "xXnN") || *s == '+' || *s == '.')
        return false;
    (void)strtod(s, &end);
    return *end == '\0' && !(s[0] == '0' && s[1] >= '0' && s[1] <= '9');
}

/* Renders node as JSON text into w; string scalars keep their ${...} for the template parser,
 * which JSON-escapes the values substituted there. */
static void yaml_to_json(fa_json_writer_t *w, const fa_yaml_node_t *n)
{
    switch (n->kind) {
    case FA_YAML_MAP:
        fa_json_write_raw(w, "{", 1);
        for (size_t i = 0; i < n->map.len; i++) {
            const fa_yaml_node_t *k = n->map.pairs[i].key;
            if (i)
                fa_json_write_raw(w, ",", 1);
            size_t need = fa_json_escape(NULL, 0, k->scalar.str, k->scalar.len);
            char key[need + 1];
            fa_json_escape(key, need, k->scalar.str, k->scalar.len);
            fa_json_write_raw(w, "\"", 1);
            fa_json_write_raw(w, key, need);
            fa_json_write_raw(w, "\":", 2);
            yaml_to_json(w, n->map.pairs[i].value);
        }
        fa_json_write_raw(w, "}", 1);
        break;
    case FA_YAML_SEQ:
        fa_json_write_raw(w, "[", 1);
        for (size_t i = 0; i < n->seq.len; i++) {
            if (i)
                fa_json_write_raw(w, ",", 1);
            yaml_to_json(w, n->seq.items[i]);
        }
        fa_json_write_raw(w, "]", 1);
        break;
    case FA_YAML_SCALAR: {
        const char *s = n->scalar.str;
        if (!n->quoted && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0 ||
                           strcmp(s, "null") == 0 || is_json_number(s))) {
            fa_json_write_raw(w, s, n->scalar.len);
        } else {
            fa_json_write_raw(w, "\"", 1);
            /* Literal text is escaped now; ${...} is kept for the template parser. */
            size_t i = 0;
            while (i < n->scalar.len) {
                const char *d = strstr(s + i, "${");
                const char *e = d ? strchr(d, '}') : NULL;
                size_t lit = (d && e ? (size_t)(d - s) : n->scalar.len) - i;
                size_t need = fa_json_escape(NULL, 0, s + i, lit);
                char tmp[need + 1];
                fa_json_escape(tmp, need, s + i, lit);
                fa_json_write_raw(w, tmp, need);
                i += lit;
                if (d && e) {
                    fa_json_write_raw(w, d, (size_t)(e - d + 1));
                    i = (size_t)(e + 1 - s);
                }
            }
            fa_json_write_raw(w, "\"", 1);
        }
        break;
    }
    }
}

fa_str_t fa_tpl_yaml_json(fa_pool_t *arena, const fa_yaml_node_t *node)
{
    fa_json_writer_t w;
    fa_json_writer_init(&w, arena, 128);
    yaml_to_json(&w, node);
    return fa_json_writer_str(&w);
}

bool fa_tpl_static(const fa_tpl_t *t, fa_str_t *text)
{
    if (t->nsegs == 0) {
        *text = (fa_str_t){"", 0};
        return true;
    }
    if (t->nsegs == 1 && t->segs[0].kind == SEG_LIT) {
        *text = t->segs[0].text;
        return true;
    }
    return false;
}
