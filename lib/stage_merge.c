/*
 * stage_merge.c — answers with the upstream results combined into one JSON object.
 *
 *   - merge:
 *       results: [user, orders]        # which results, in this order; default: all, in the
 *                                      # order they were stored
 *       fields: { user: [id, name] }   # projection: keep only these top-level fields
 *       flatten: false                 # true: the members of each object result at the top level
 *       status: 200
 *       failed_field: _failed          # lists the failed results (partial policy); "" = never
 *
 * Grouped (the default), each result sits under its name: {"user":{...},"orders":[...]}. A body
 * that is not JSON is included as a JSON string. Flattened, the members of every object result
 * are merged into the top level, the first result to give a key keeping it (so the output never
 * has duplicate keys); a result that is not an object stays under its name. Failed results are
 * left out and named in failed_field.
 */
#include "config.h"
#include "upstream_internal.h"

#include <stdio.h>
#include <string.h>

#define MAX_FIELDS 32

typedef struct {
    const char *name;
    fa_str_t fields[MAX_FIELDS];
    unsigned nfields;
} projection_t;

typedef struct {
    const char **results; /* NULL: all */
    unsigned nresults;
    projection_t *proj;
    unsigned nproj;
    bool flatten;
    int status;
    fa_str_t failed_field;
} merge_conf_t;

static bool known_result(fa_stage_parse_t *p, const fa_yaml_node_t *n, const char *path)
{
    for (unsigned i = 0; i < p->info->nresults; i++)
        if (n->kind == FA_YAML_SCALAR && strcmp(p->info->results[i], n->scalar.str) == 0)
            return true;
    fa_errbuf_add(p->errs, n, path, "no earlier fetch or fan_out stores a result named \"%s\"",
                  n->kind == FA_YAML_SCALAR ? n->scalar.str : "?");
    return false;
}

static const void *parse(fa_stage_parse_t *p)
{
    if (fa_yaml_is_null(p->arg)) {
        merge_conf_t *c = fa_pool_calloc(p->arena, sizeof(*c));
        c->status = 200;
        c->failed_field = FA_STR_LIT("_failed");
        return c;
    }
    if (!fa_stage_expect_map(p, p->arg, "merge"))
        return NULL;
    merge_conf_t *c = fa_pool_calloc(p->arena, sizeof(*c));
    c->status = 200;
    c->failed_field = FA_STR_LIT("_failed");
    bool ok = true;
    char path[200];
    long long n;
    for (size_t i = 0; i < p->arg->map.len; i++) {
        const fa_yaml_node_t *k = p->arg->map.pairs[i].key, *v = p->arg->map.pairs[i].value;
        const char *key = k->scalar.str;
        snprintf(path, sizeof(path), "%s.merge.%s", p->path, key);
        if (strcmp(key, "results") == 0) {
            if (v->kind != FA_YAML_SEQ || v->seq.len == 0) {
                fa_errbuf_add(p->errs, v, path, "expected a non-empty sequence of result names");
                ok = false;
                continue;
            }
            c->results = fa_pool_calloc(p->arena, v->seq.len * sizeof(char *));
            for (size_t j = 0; j < v->seq.len; j++)
                if (known_result(p, v->seq.items[j], path))
                    c->results[c->nresults++] = v->seq.items[j]->scalar.str;
                else
                    ok = false;
        } else if (strcmp(key, "fields") == 0) {
            if (v->kind != FA_YAML_MAP) {
                fa_errbuf_add(p->errs, v, path,
                              "expected a mapping of result names to lists of fields");
                ok = false;
                continue;
            }
            c->proj = fa_pool_calloc(p->arena, FA_MAX(v->map.len, (size_t)1) * sizeof(projection_t));
            for (size_t j = 0; j < v->map.len; j++) {
                const fa_yaml_node_t *rk = v->map.pairs[j].key, *rv = v->map.pairs[j].value;
                if (!known_result(p, rk, path)) {
                    ok = false;
                    continue;
                }
                projection_t *pr = &c->proj[c->nproj++];
                pr->name = rk->scalar.str;
                if (rv->kind != FA_YAML_SEQ || rv->seq.len == 0 || rv->seq.len > MAX_FIELDS) {
                    fa_errbuf_add(p->errs, rv, path, "expected a sequence of 1..%d field names",
                                  MAX_FIELDS);
                    ok = false;
                    continue;
                }
                for (size_t m = 0; m < rv->seq.len; m++) {
                    const fa_yaml_node_t *f = rv->seq.items[m];
                    if (f->kind != FA_YAML_SCALAR || f->scalar.len == 0) {
                        fa_errbuf_add(p->errs, f, path, "expected a field name");
                        ok = false;
                        continue;
                    }
                    pr->fields[pr->nfields++] = (fa_str_t){f->scalar.str, f->scalar.len};
                }
            }
        } else if (strcmp(key, "flatten") == 0) {
            ok &= fa_config_parse_bool(v, path, &c->flatten, p->errs);
        } else if (strcmp(key, "status") == 0) {
            if (fa_config_parse_int(v, path, 200, 599, &n, p->errs))
                c->status = (int)n;
            else
                ok = false;
        } else if (strcmp(key, "failed_field") == 0) {
            if (v->kind != FA_YAML_SCALAR) {
                fa_errbuf_add(p->errs, v, path, "expected a field name or \"\"");
                ok = false;
            } else {
                size_t need = fa_json_escape(NULL, 0, v->scalar.str, v->scalar.len);
                char *esc = fa_pool_alloc(p->arena, need + 1);
                fa_json_escape(esc, need, v->scalar.str, v->scalar.len);
                c->failed_field = (fa_str_t){esc, need};
            }
        } else {
            fa_errbuf_add(p->errs, k, path,
                          "unknown key (merge takes results, fields, flatten, status, "
                          "failed_field)");
            ok = false;
        }
    }
    if (ok && p->info->nresults == 0) {
        fa_errbuf_add(p->errs, p->key, p->path,
                      "merge: no earlier fetch or fan_out stage stores a result");
        ok = false;
    }
    return ok ? c : NULL;
}

/* Writes s[0..len) as a JSON string, quoted and escaped. */
static void write_str(fa_json_writer_t *w, fa_pool_t *pool, const char *s, size_t len)
{
    size_t need = fa_json_escape(NULL, 0, s, len);
    char *esc = fa_pool_alloc(pool, need + 1);
    fa_json_escape(esc, need, s, len);
    fa_json_write_raw(w, "\"", 1);
    fa_json_write_raw(w, esc, need);
    fa_json_write_raw(w, "\"", 1);
}

/* Writes token tok of doc as JSON (fa_json_raw leaves strings without their quotes). */
static void write_token(fa_json_writer_t *w, const fa_json_t *doc, int tok)
{
    fa_str_t raw = fa_json_raw(doc, tok);
    bool str = fa_json_type(doc, tok) == FA_JSON_STRING;
    if (str)
        fa_json_write_raw(w, "\"", 1);
    fa_json_write_raw(w, raw.ptr, raw.len);
    if (str)
        fa_json_write_raw(w, "\"", 1);
}

typedef struct {
    fa_json_writer_t w;
    bool first;
    fa_str_t *keys; /* flatten: keys written at the top level (raw) */
    unsigned nkeys, capkeys;
} out_t;

static void comma(out_t *o)
{
    if (!o->first)
        fa_json_write_raw(&o->w, ",", 1);
    o->first = false;
}

static bool key_taken(out_t *o, fa_pool_t *pool, fa_str_t k)
{
    for (unsigned i = 0; i < o->nkeys; i++)
        if (o->keys[i].len == k.len && memcmp(o->keys[i].ptr, k.ptr, k.len) == 0)
            return true;
    if (o->nkeys == o->capkeys) {
        unsigned cap = FA_MAX(16u, o->capkeys * 2);
        fa_str_t *nk = fa_pool_alloc(pool, cap * sizeof(*nk));
        if (o->nkeys)
            memcpy(nk, o->keys, o->nkeys * sizeof(*nk));
        o->keys = nk;
        o->capkeys = cap;
    }
    o->keys[o->nkeys++] = k;
    return false;
}

static bool projected(const projection_t *pr, fa_str_t key)
{
    for (unsigned i = 0; i < pr->nfields; i++)
        if (pr->fields[i].len == key.len && memcmp(pr->fields[i].ptr, key.ptr, key.len) == 0)
            return true;
    return false;
}

/* Writes the members of object tok (those of the projection when there is one); at the top
 * level (flatten) keys already written are skipped. */
static void write_members(out_t *o, fa_pool_t *pool, const fa_json_t *doc, int tok,
                          const projection_t *pr, bool top)
{
    fa_json_iter_t it = fa_json_iter(doc, tok);
    int k, v;
    while (fa_json_iter_next(doc, &it, &k, &v)) {
        fa_str_t key = fa_json_raw(doc, k);
        if (pr && !projected(pr, key))
            continue;
        if (top && key_taken(o, pool, key))
            continue;
        comma(o);
        fa_json_write_raw(&o->w, "\"", 1);
        fa_json_write_raw(&o->w, key.ptr, key.len);
        fa_json_write_raw(&o->w, "\":", 2);
        write_token(&o->w, doc, v);
    }
}

static void write_result(out_t *o, fa_req_t *req, const merge_conf_t *c,
                         fa_upstream_result_t *r)
{
    const projection_t *pr = NULL;
    for (unsigned i = 0; i < c->nproj; i++)
        if (strcmp(c->proj[i].name, r->name) == 0)
            pr = &c->proj[i];
    const fa_json_t *doc = fa__upstream_result_json(req, r);
    bool object = doc && fa_json_type(doc, fa_json_root(doc)) == FA_JSON_OBJECT;
    if (c->flatten && object) {
        write_members(o, req->pool, doc, fa_json_root(doc), pr, true);
        return;
    }
    fa_str_t name = {r->name, strlen(r->name)};
    if (c->flatten && key_taken(o, req->pool, name))
        return;
    comma(o);
    fa_json_writer_t *w = &o->w;
    write_str(w, req->pool, r->name, strlen(r->name));
    fa_json_write_raw(w, ":", 1);
    if (!doc) {
        write_str(w, req->pool, r->resp.body.ptr, r->resp.body.len);
    } else if (object && pr) {
        out_t inner = {.w = *w, .first = true};
        fa_json_write_raw(&inner.w, "{", 1);
        write_members(&inner, req->pool, doc, fa_json_root(doc), pr, false);
        fa_json_write_raw(&inner.w, "}", 1);
        *w = inner.w;
    } else {
        write_token(w, doc, fa_json_root(doc));
    }
}

static fa_status_t run(fa_req_t *req, const fa_stage_t *stage)
{
    const merge_conf_t *c = stage->conf;
    fa_upstream_ctx_t *u = fa__upstream_ctx(req);
    out_t o = {.first = true};
    fa_json_writer_init(&o.w, req->pool, 512);
    fa_json_write_raw(&o.w, "{", 1);
    fa_upstream_result_t *failed[FA_PIPE_MAX_RESULTS * 4];
    unsigned nfailed = 0;
    unsigned n = c->results ? c->nresults : 0;
    fa_upstream_result_t *r = u->first;
    for (unsigned i = 0; c->results ? i < n : r != NULL; i++) {
        fa_upstream_result_t *cur = c->results
                                        ? fa__upstream_result(req, c->results[i],
                                                              strlen(c->results[i]))
                                        : r;
        if (!c->results)
            r = r->next;
        if (!cur)
            continue;
        if (cur->state == FA_UPR_OK)
            write_result(&o, req, c, cur);
        else if (cur->state == FA_UPR_FAILED && nfailed < FA_ARRAY_SIZE(failed))
            failed[nfailed++] = cur;
    }
    if (nfailed && c->failed_field.len) {
        comma(&o);
        fa_json_write_raw(&o.w, "\"", 1);
        fa_json_write_raw(&o.w, c->failed_field.ptr, c->failed_field.len);
        fa_json_write_raw(&o.w, "\":[", 3);
        for (unsigned i = 0; i < nfailed; i++) {
            if (i)
                fa_json_write_raw(&o.w, ",", 1);
            write_str(&o.w, req->pool, failed[i]->name, strlen(failed[i]->name));
        }
        fa_json_write_raw(&o.w, "]", 1);
    }
    fa_json_write_raw(&o.w, "}", 1);
    fa_str_t body = fa_json_writer_str(&o.w);
    fa_req_respond(req, c->status, FA_STR_LIT("application/json"), body.ptr, body.len);
    return FA_DONE;
}

const fa_stage_type_t fa_stage_merge = {
    .name = "merge",
    .parse = parse,
    .run = run,
    .terminal = true,
};
