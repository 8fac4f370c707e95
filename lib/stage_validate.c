/*
 * stage_validate.c — checks the parsed JSON body against a schema of fields.
 *
 *   - validate:
 *       userId: { type: string, required: true, min_length: 1, max_length: 128 }
 *       value:  { type: number, required: true, min: -1e9, max: 1e9 }
 *
 * or, to refuse fields the schema does not name:
 *
 *   - validate: { fields: { ... as above ... }, additional: false }
 *
 * Rules: type (string, number, integer, boolean, object, array, null), required, min/max (numbers;
 * elements for arrays), min_length/max_length (strings, in code points), enum (a list of allowed
 * values), pattern (POSIX extended regex, compiled at load, matched against the whole string).
 * Numbers must be finite. A failing body gets 400 with every failing field and why.
 */
#include "config.h"
#include "json.h"
#include "stage.h"

#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    T_ANY,
    T_STRING,
    T_NUMBER,
    T_INTEGER,
    T_BOOLEAN,
    T_OBJECT,
    T_ARRAY,
    T_NULL,
} vtype_t;

static const char *const type_names[] = {"any",    "string", "number", "integer",
                                         "boolean", "object", "array",  "null"};

typedef struct {
    fa_str_t name;
    vtype_t type;
    bool required;
    bool has_min, has_max;
    double min, max;
    bool has_min_len, has_max_len;
    size_t min_len, max_len;
    size_t nenum;
    fa_str_t *enum_vals; /* strings unescaped; other values as JSON text */
    bool has_pattern;
    regex_t pattern;
    /* The rules plainly_valid settles inline for this field; FAST_NONE: check_field only. */
    enum { FAST_NONE, FAST_STRING, FAST_NUMBER, FAST_INTEGER } fast;
    size_t fast_min, fast_max; /* FAST_STRING: the length bounds, in code points */
} field_t;

typedef struct {
    field_t *fields;
    size_t nfields;
    bool additional;
} validate_conf_t;

static void free_regex(void *data)
{
    regfree(data);
}

static bool parse_double(fa_stage_parse_t *p, const fa_yaml_node_t *v, const char *path,
                         double *out)
{
    char *end;
    if (v->kind == FA_YAML_SCALAR && !v->quoted && v->scalar.len) {
        *out = strtod(v->scalar.str, &end);
        if (*end == '\0' && isfinite(*out))
            return true;
    }
    fa_errbuf_add(p->errs, v, path, "expected a finite number, got %s%s%s",
                  v->kind == FA_YAML_SCALAR ? "\"" : "",
                  v->kind == FA_YAML_SCALAR ? v->scalar.str : fa_yaml_kind_name(v->kind),
                  v->kind == FA_YAML_SCALAR ? "\"" : "");
    return false;
}

static bool parse_field(fa_stage_parse_t *p, const fa_yaml_node_t *k, const fa_yaml_node_t *rules,
                        field_t *f, const char *base)
{
    char path[256];
    bool ok = true;
    f->name = (fa_str_t){k->scalar.str, k->scalar.len};
    f->type = T_ANY;
    snprintf(path, sizeof(path), "%s.%s", base, k->scalar.str);
    if (rules->kind != FA_YAML_MAP) {
        fa_errbuf_add(p->errs, rules, path, "expected a mapping of rules, got %s",
                      fa_yaml_kind_name(rules->kind));
        return false;
    }
    const fa_yaml_node_t *enum_node = NULL, *pattern_node = NULL;
    for (size_t i = 0; i < rules->map.len; i++) {
        const fa_yaml_node_t *rk = rules->map.pairs[i].key, *v = rules->map.pairs[i].value;
        const char *r = rk->scalar.str;
        char rpath[300];
        snprintf(rpath, sizeof(rpath), "%s.%s", path, r);
        long long n;
        if (strcmp(r, "type") == 0) {
            size_t t;
            for (t = 1; t < FA_ARRAY_SIZE(type_names); t++)
                if (fa_yaml_scalar_is(v, type_names[t]))
                    break;
            if (t == FA_ARRAY_SIZE(type_names)) {
                fa_errbuf_add(p->errs, v, rpath,
                              "expected one of string, number, integer, boolean, object, array, "
                              "null, got \"%s\"",
                              v->kind == FA_YAML_SCALAR ? v->scalar.str : "?");
                ok = false;
            }
            f->type = (vtype_t)t;
        } else if (strcmp(r, "required") == 0) {
            ok &= fa_config_parse_bool(v, rpath, &f->required, p->errs);
        } else if (strcmp(r, "min") == 0) {
            ok &= f->has_min = parse_double(p, v, rpath, &f->min);
        } else if (strcmp(r, "max") == 0) {
            ok &= f->has_max = parse_double(p, v, rpath, &f->max);
        } else if (strcmp(r, "min_length") == 0) {
            ok &= f->has_min_len = fa_config_parse_int(v, rpath, 0, 1 << 30, &n, p->errs);
            f->min_len = (size_t)n;
        } else if (strcmp(r, "max_length") == 0) {
            ok &= f->has_max_len = fa_config_parse_int(v, rpath, 0, 1 << 30, &n, p->errs);
            f->max_len = (size_t)n;
        } else if (strcmp(r, "enum") == 0) {
            enum_node = v;
        } else if (strcmp(r, "pattern") == 0) {
            pattern_node = v;
        } else {
            fa_errbuf_add(p->errs, rk, rpath,
                          "unknown rule (rules: type, required, min, max, min_length, "
                          "max_length, enum, pattern)");
            ok = false;
        }
    }
    if (!ok)
        return false;
    /* Coherence of the rules with each other and with the type. */
    bool numeric = f->type == T_NUMBER || f->type == T_INTEGER || f->type == T_ARRAY;
    if ((f->has_min || f->has_max) && !numeric) {
        fa_errbuf_add(p->errs, rules, path, "min/max apply to number, integer or array fields");
        ok = false;
    }
    if ((f->has_min_len || f->has_max_len || pattern_node) && f->type != T_STRING) {
        fa_errbuf_add(p->errs, rules, path,
                      "min_length, max_length and pattern apply to string fields (add type: "
                      "string)");
        ok = false;
    }
    if (f->has_min && f->has_max && f->min > f->max) {
        fa_errbuf_add(p->errs, rules, path, "min (%g) is greater than max (%g)", f->min, f->max);
        ok = false;
    }
    if (f->has_min_len && f->has_max_len && f->min_len > f->max_len) {
        fa_errbuf_add(p->errs, rules, path, "min_length (%zu) is greater than max_length (%zu)",
                      f->min_len, f->max_len);
        ok = false;
    }
    if (enum_node) {
        if (enum_node->kind != FA_YAML_SEQ || enum_node->seq.len == 0) {
            fa_errbuf_add(p->errs, enum_node, path, "enum: expected a non-empty list of values");
            ok = false;
        } else {
            f->nenum = enum_node->seq.len;
            f->enum_vals = fa_pool_alloc(p->arena, f->nenum * sizeof(fa_str_t));
            for (size_t i = 0; i < f->nenum; i++) {
                const fa_yaml_node_t *e = enum_node->seq.items[i];
                if (e->kind != FA_YAML_SCALAR) {
                    fa_errbuf_add(p->errs, e, path, "enum: values must be scalars");
                    ok = false;
                    continue;
                }
                f->enum_vals[i] = (fa_str_t){e->scalar.str, e->scalar.len};
            }
        }
    }
    if (pattern_node && ok) {
        if (pattern_node->kind != FA_YAML_SCALAR) {
            fa_errbuf_add(p->errs, pattern_node, path, "pattern: expected a regular expression");
            return false;
        }
        /* Anchored: the pattern must match the whole value. */
        size_t len = pattern_node->scalar.len + 8;
        char *re = fa_pool_alloc(p->arena, len);
        snprintf(re, len, "^(%s)$", pattern_node->scalar.str);
        int rc = regcomp(&f->pattern, re, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &f->pattern, msg, sizeof(msg));
            fa_errbuf_add(p->errs, pattern_node, path, "pattern: %s", msg);
            return false;
        }
        f->has_pattern = true;
        fa_pool_cleanup_add(p->arena, free_regex, &f->pattern);
    }
    /* Rules that plainly_valid can settle for a well-formed value: a string with at most length
     * bounds, a number or an integer with no bounds at all. A rule added to field_t must keep a
     * field out of these forms, or be checked by plainly_valid too. */
    if (f->type == T_STRING && !f->has_pattern && !enum_node) {
        f->fast = FAST_STRING;
        f->fast_min = f->has_min_len ? f->min_len : 0;
        f->fast_max = f->has_max_len ? f->max_len : SIZE_MAX;
    } else if ((f->type == T_NUMBER || f->type == T_INTEGER) && !f->has_min && !f->has_max &&
               !enum_node) {
        f->fast = f->type == T_NUMBER ? FAST_NUMBER : FAST_INTEGER;
    }
    return ok;
}

static const void *parse(fa_stage_parse_t *p)
{
    if (!p->info->has_json) {
        fa_errbuf_add(p->errs, p->key, p->path, "validate needs an earlier parse_json stage");
        return NULL;
    }
    if (!fa_stage_expect_map(p, p->arg, "validate"))
        return NULL;
    validate_conf_t *c = fa_pool_calloc(p->arena, sizeof(*c));
    c->additional = true;
    const fa_yaml_node_t *fields = p->arg;
    const fa_yaml_node_t *fnode = fa_yaml_map_get(p->arg, "fields");
    char base[200];
    snprintf(base, sizeof(base), "%s.validate", p->path);
    bool ok = true;
    if (fnode && fnode->kind == FA_YAML_MAP) {
        /* The long form: { fields: {...}, additional: bool } */
        fields = fnode;
        for (size_t i = 0; i < p->arg->map.len; i++) {
            const fa_yaml_node_t *k = p->arg->map.pairs[i].key;
            if (strcmp(k->scalar.str, "additional") == 0) {
                ok &= fa_config_parse_bool(p->arg->map.pairs[i].value, base, &c->additional,
                                           p->errs);
            } else if (strcmp(k->scalar.str, "fields") != 0) {
                fa_errbuf_add(p->errs, k, base,
                              "unknown key \"%s\" (the long form takes fields and additional)",
                              k->scalar.str);
                ok = false;
            }
        }
        snprintf(base, sizeof(base), "%s.validate.fields", p->path);
    }
    c->nfields = fields->map.len;
    c->fields = fa_pool_calloc(p->arena, FA_MAX(c->nfields, (size_t)1) * sizeof(field_t));
    for (size_t i = 0; i < fields->map.len; i++)
        ok &= parse_field(p, fields->map.pairs[i].key, fields->map.pairs[i].value, &c->fields[i],
                          base);
    if (!ok)
        return NULL;
    for (size_t i = 0; i < c->nfields && p->info->nfields < FA_PIPE_MAX_FIELDS; i++) {
        unsigned k = p->info->nfields++;
        p->info->fields[k].name = c->fields[i].name.ptr;
        p->info->fields[k].type = type_names[c->fields[i].type];
        p->info->fields[k].required = c->fields[i].required;
    }
    return c;
}

/* ---- run ---- */

/* What validation found. Only nerr is set before the first failure, which fills in the rest:
 * a valid request pays for none of it. */
typedef struct {
    fa_json_writer_t out;
    unsigned nerr;
    bool batch;      /* one event of a batch: only the first reason is kept, as text */
    char first[192]; /* "field: reason" of the first failure */
} report_t;

static void fail(fa_req_t *req, report_t *rep, fa_str_t field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(fa_req_t *req, report_t *rep, fa_str_t field, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (rep->nerr == 0) {
        /* With an on_error answer for 400 only the first reason is needed, as text. */
        rep->batch = fa_batch_in_event(fa_pipe_ctx(req)->batch) || fa_pipe_has_on_error(req, 400);
    }
    if (rep->batch) {
        if (rep->nerr++ == 0)
            snprintf(rep->first, sizeof(rep->first), "%.*s %s", (int)FA_MIN(field.len, 64u),
                     field.ptr, msg);
        return;
    }
    if (rep->nerr++ == 0) {
        fa_json_writer_init(&rep->out, req->pool, 256);
        fa_json_write_begin_object(&rep->out);
        fa_json_write_key(&rep->out, "error", 5);
        fa_json_write_str(&rep->out, "validation failed", 17);
        fa_json_write_key(&rep->out, "fields", 6);
        fa_json_write_begin_array(&rep->out);
    }
    fa_json_write_begin_object(&rep->out);
    fa_json_write_key(&rep->out, "field", 5);
    fa_json_write_str(&rep->out, field.ptr, field.len);
    fa_json_write_key(&rep->out, "error", 5);
    fa_json_write_str(&rep->out, msg, strlen(msg));
    fa_json_write_end_object(&rep->out);
}

/* Whether a value of JSON type t is what the schema wants. JSON integers have no fraction and no
 * exponent: 1.0 and 1e2 are numbers, not integers (the tokenizer recorded the form). */
static bool type_ok(const fa_json_t *doc, int tok, fa_json_type_t t, vtype_t want)
{
    switch (want) {
    case T_ANY:
        break;
    case T_STRING:
        return t == FA_JSON_STRING;
    case T_NUMBER:
        return t == FA_JSON_NUMBER;
    case T_INTEGER:
        return t == FA_JSON_NUMBER && fa_json_number_form(doc, tok) == 0;
    case T_BOOLEAN:
        return t == FA_JSON_TRUE || t == FA_JSON_FALSE;
    case T_OBJECT:
        return t == FA_JSON_OBJECT;
    case T_ARRAY:
        return t == FA_JSON_ARRAY;
    case T_NULL:
        return t == FA_JSON_NULL;
    }
    /* T_ANY. Out-of-range values land here too: with fa_json_type inline, GCC otherwise sees a
     * path where type_ok fails for one and check_field reads type_names past its end. */
    return true;
}

/* A JSON number that no conversion can take to infinity: no exponent, and so few digits that
 * it is far below DBL_MAX (1.8e308). */
static bool plainly_finite(const fa_json_t *doc, int tok)
{
    return !(fa_json_number_form(doc, tok) & FA_JSON_NUM_EXPONENT) &&
           fa_json_raw(doc, tok).len < 300;
}

/*
 * Runs for every field found in a request before check_field, which it spares the usual case: a
 * value that passes the field's rules plainly, as the tokenizer already recorded it. A string of
 * plain ASCII has a code point per byte; a number without an exponent and under 300 characters
 * is finite; an integer is written without fraction or exponent. False means "not plainly":
 * check_field then decides, and writes any failure, exactly as it always has.
 */
static inline bool plainly_valid(const fa_json_t *doc, int tok, const field_t *f)
{
    switch (f->fast) {
    case FAST_STRING: {
        if (!fa_json_str_ascii(doc, tok))
            return false;
        size_t n = fa_json_raw(doc, tok).len;
        return n >= f->fast_min && n <= f->fast_max;
    }
    case FAST_NUMBER:
        return fa_json_type(doc, tok) == FA_JSON_NUMBER && plainly_finite(doc, tok);
    case FAST_INTEGER:
        return fa_json_type(doc, tok) == FA_JSON_NUMBER && fa_json_number_form(doc, tok) == 0 &&
               plainly_finite(doc, tok);
    default:
        return false;
    }
}

/* The full check of one field, for what plainly_valid leaves: out of line, so that run stays a
 * small function for the usual request. */
static __attribute__((noinline)) void check_field(fa_req_t *req, const fa_json_t *doc, int tok,
                                                  const field_t *f, report_t *rep)
{
    fa_json_type_t t = fa_json_type(doc, tok);
    if (!type_ok(doc, tok, t, f->type)) {
        fail(req, rep, f->name, "must be %s%s", f->type == T_INTEGER ? "an " : "a ",
             type_names[f->type]);
        return;
    }
    if (t == FA_JSON_NUMBER && !f->has_min && !f->has_max && plainly_finite(doc, tok)) {
        /* only finiteness to check, and it is plain: no conversion needed */
    } else if (t == FA_JSON_NUMBER) {
        double d;
        if (!fa_json_number(doc, tok, &d)) {
            fail(req, rep, f->name, "must be a finite number");
            return;
        }
        if (f->has_min && d < f->min)
            fail(req, rep, f->name, "must be at least %g", f->min);
        else if (f->has_max && d > f->max)
            fail(req, rep, f->name, "must be at most %g", f->max);
    } else if (t == FA_JSON_ARRAY) {
        double n = fa_json_size(doc, tok);
        if (f->has_min && n < f->min)
            fail(req, rep, f->name, "must have at least %g elements", f->min);
        else if (f->has_max && n > f->max)
            fail(req, rep, f->name, "must have at most %g elements", f->max);
    }
    fa_str_t s = FA_STR_NULL;
    if (t == FA_JSON_STRING && (f->has_min_len || f->has_max_len || f->has_pattern ||
                                f->nenum)) {
        if (!fa_json_str(doc, tok, req->pool, &s)) {
            fail(req, rep, f->name, "is not a valid string");
            return;
        }
        /* Plain ASCII as written (the tokenizer knows) has a code point per byte. */
        size_t cps = fa_json_str_ascii(doc, tok) ? s.len : fa_utf8_len(s.ptr, s.len);
        if (f->has_min_len && cps < f->min_len) {
            if (f->min_len == 1)
                fail(req, rep, f->name, "must not be empty");
            else
                fail(req, rep, f->name, "must be at least %zu characters long", f->min_len);
        } else if (f->has_max_len && cps > f->max_len) {
            fail(req, rep, f->name, "must be at most %zu characters long", f->max_len);
        }
        if (f->has_pattern) {
            /* regexec needs a NUL-terminated string; a NUL inside the value never matches. */
            char *z = fa_pool_strndup(req->pool, s.ptr, s.len);
            if (memchr(s.ptr, '\0', s.len) || regexec(&f->pattern, z, 0, NULL, 0) != 0)
                fail(req, rep, f->name, "does not match the pattern");
        }
    }
    if (f->nenum) {
        fa_str_t v = t == FA_JSON_STRING ? s : fa_json_raw(doc, tok);
        bool found = false;
        for (size_t i = 0; i < f->nenum && !found; i++)
            found = f->enum_vals[i].len == v.len && memcmp(f->enum_vals[i].ptr, v.ptr, v.len) == 0;
        if (!found)
            fail(req, rep, f->name, "is not one of the allowed values");
    }
}

static fa_status_t run(fa_req_t *req, const fa_stage_t *stage)
{
    const validate_conf_t *c = stage->conf;
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    const fa_json_t *doc = &ctx->json;
    int root = fa_json_root(doc);
    if (fa_json_type(doc, root) != FA_JSON_OBJECT) {
        fa_pipe_reject(req, 400, ctx->batch ? "the event must be a JSON object"
                                            : "the body must be a JSON object");
        return FA_DONE;
    }
    report_t rep;
    rep.nerr = 0;
    for (size_t i = 0; i < c->nfields; i++) {
        const field_t *f = &c->fields[i];
        int tok = fa_json_object_get(doc, root, f->name.ptr, f->name.len);
        if (tok < 0) {
            if (f->required)
                fail(req, &rep, f->name, "is required");
            continue;
        }
        if (!plainly_valid(doc, tok, f))
            check_field(req, doc, tok, f, &rep);
    }
    if (!c->additional) {
        fa_json_iter_t it = fa_json_iter(doc, root);
        int k, v;
        while (fa_json_iter_next(doc, &it, &k, &v)) {
            fa_str_t key;
            if (!fa_json_str(doc, k, req->pool, &key))
                continue;
            bool known = false;
            for (size_t i = 0; i < c->nfields && !known; i++)
                known = c->fields[i].name.len == key.len &&
                        memcmp(c->fields[i].name.ptr, key.ptr, key.len) == 0;
            if (!known)
                fail(req, &rep, key, "is not allowed");
        }
    }
    if (rep.nerr == 0)
        return FA_OK;
    if (rep.batch) {
        fa_pipe_reject(req, 400, fa_pool_strndup(req->pool, rep.first, strlen(rep.first)));
        return FA_DONE;
    }
    fa_json_write_end_array(&rep.out);
    fa_json_write_end_object(&rep.out);
    fa_str_t body = fa_json_writer_str(&rep.out);
    fa_req_respond(req, 400, FA_STR_LIT("application/json"), body.ptr, body.len);
    return FA_DONE;
}

const fa_stage_type_t fa_stage_validate = {
    .name = "validate",
    .parse = parse,
    .run = run,
};
