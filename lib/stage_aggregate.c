/*
 * stage_aggregate.c — counts the event in the worker's aggregator shard.
 *
 *   - aggregate: { key: userId, value: value }
 *
 * key names a string field and value a number field of the body, both checked as required by an
 * earlier validate stage (a config error otherwise). The value is read from its JSON text into
 * fixed point without passing through binary floating point, so sums are exact (see decimal.h).
 * A new key when the distinct-key set is full is refused with 503 and logged: never a miscount.
 */
#include "agg.h"
#include "decimal.h"
#include "log.h"
#include "stage.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    fa_str_t key, value;
} aggregate_conf_t;

static const char *field_type(const fa_pipe_info_t *info, const char *name, bool *required)
{
    const char *type = NULL;
    *required = false;
    for (unsigned i = 0; i < info->nfields; i++)
        if (strcmp(info->fields[i].name, name) == 0) {
            type = info->fields[i].type;
            *required = info->fields[i].required;
        }
    return type;
}

static bool check_ref(fa_stage_parse_t *p, const fa_yaml_node_t *v, const char *what,
                      const char *want1, const char *want2)
{
    char path[200];
    snprintf(path, sizeof(path), "%s.aggregate.%s", p->path, what);
    if (!v || v->kind != FA_YAML_SCALAR || v->scalar.len == 0) {
        fa_errbuf_add(p->errs, v ? v : p->arg, path, "expected the name of a body field");
        return false;
    }
    bool required;
    const char *type = field_type(p->info, v->scalar.str, &required);
    if (!type || !required || (strcmp(type, want1) != 0 && (!want2 || strcmp(type, want2) != 0))) {
        fa_errbuf_add(p->errs, v, path,
                      "field \"%s\" must be checked by an earlier validate stage as a required "
                      "%s%s%s",
                      v->scalar.str, want1, want2 ? " or " : "", want2 ? want2 : "");
        return false;
    }
    return true;
}

static const void *parse(fa_stage_parse_t *p)
{
    if (!fa_stage_expect_map(p, p->arg, "aggregate"))
        return NULL;
    bool ok = true;
    for (size_t i = 0; i < p->arg->map.len; i++) {
        const char *k = p->arg->map.pairs[i].key->scalar.str;
        if (strcmp(k, "key") != 0 && strcmp(k, "value") != 0) {
            char path[200];
            snprintf(path, sizeof(path), "%s.aggregate.%s", p->path, k);
            fa_errbuf_add(p->errs, p->arg->map.pairs[i].key, path,
                          "unknown key (aggregate takes key and value)");
            ok = false;
        }
    }
    const fa_yaml_node_t *k = fa_yaml_map_get(p->arg, "key");
    const fa_yaml_node_t *v = fa_yaml_map_get(p->arg, "value");
    ok &= check_ref(p, k, "key", "string", NULL);
    ok &= check_ref(p, v, "value", "number", "integer");
    if (!ok)
        return NULL;
    aggregate_conf_t *c = fa_pool_calloc(p->arena, sizeof(*c));
    c->key = (fa_str_t){k->scalar.str, k->scalar.len};
    c->value = (fa_str_t){v->scalar.str, v->scalar.len};
    return c;
}

/* The key as found by ahead (or by run itself), prepared for the aggregator. */
typedef struct {
    fa_agg_key_t ak;
    bool have_key;
} ahead_t;

static_assert(sizeof(ahead_t) <= sizeof(((fa_pipe_ctx_t *)0)->ahead), "ahead_t fits ctx->ahead");

static bool find_key(fa_req_t *req, const aggregate_conf_t *c, fa_str_t *key)
{
    const fa_json_t *doc = &fa_pipe_ctx(req)->json;
    int kt = fa_json_object_get(doc, fa_json_root(doc), c->key.ptr, c->key.len);
    return kt >= 0 && fa_json_str(doc, kt, req->pool, key);
}

/*
 * As soon as the body is parsed (before validate runs): find the key and request its memory in
 * the aggregator (its key-cache bucket, for a new key its table slot), so that the misses of a
 * key not seen lately are over by the time run needs them. Under load this bucket was the largest
 * single stall left in a request (the prefetch in run came only a value parse before its use).
 */
static void ahead(fa_req_t *req, const fa_stage_t *stage)
{
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    ahead_t *a = (ahead_t *)(void *)ctx->ahead;
    fa_str_t key;
    a->have_key = find_key(req, stage->conf, &key);
    if (a->have_key)
        fa_agg_key_prepare(req->worker->agg, key.ptr, key.len, &a->ak);
    ctx->ahead_stage = stage;
}

static fa_status_t run(fa_req_t *req, const fa_stage_t *stage)
{
    const aggregate_conf_t *c = stage->conf;
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    const fa_json_t *doc = &ctx->json;
    int root = fa_json_root(doc);
    fa_worker_t *w = req->worker;
    fa_str_t key = FA_STR_NULL;
    bool have_key;
    fa_agg_key_t ak;
    if (ctx->ahead_stage == stage) {
        const ahead_t *a = (const ahead_t *)(const void *)ctx->ahead;
        have_key = a->have_key;
        ak = a->ak;
    } else {
        have_key = find_key(req, c, &key);
        if (have_key && !ctx->batch) /* its memory arrives while the value is found and parsed */
            fa_agg_key_prepare(w->agg, key.ptr, key.len, &ak);
    }
    int vt = fa_json_object_get(doc, root, c->value.ptr, c->value.len);
    if (!have_key || vt < 0) {
        fa_pipe_reject(req, 400, "missing key or value");
        return FA_DONE;
    }
    fa_str_t raw = fa_json_raw(doc, vt);
    __int128 nanos;
    if (fa_dec_parse(raw.ptr, raw.len, &nanos) < 0) {
        fa_pipe_reject(req, 400, "value is out of the range that can be summed exactly");
        return FA_DONE;
    }
    if (ctx->batch) {
        /* Counted once the whole batch is known good (see batch.h). */
        fa_batch_defer_add(ctx->batch, key, nanos);
        return FA_OK;
    }
    int rc = fa_agg_add_prepared(w->agg, w->shard, &ak, nanos);
    if (rc == 0)
        return FA_OK;
    if (rc == -ENOSPC) {
        fa_log_error("aggregator full: refusing a new key (aggregator.capacity is %zu)",
                     w->config->aggregator.capacity);
        fa_req_respond_error(req, 503, "too many distinct keys: the aggregator is full");
    } else {
        fa_req_respond_error(req, 400, "the key cannot be stored");
    }
    return FA_DONE;
}

const fa_stage_type_t fa_stage_aggregate = {
    .name = "aggregate",
    .parse = parse,
    .run = run,
    .ahead = ahead,
};
