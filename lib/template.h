/*
 * template.h — text with ${...} substitutions: compiled once at config load, rendered per request.
 *
 * Substitutions: ${path.NAME} (a route parameter: a config error if the route has none by that
 * name), ${body.NAME} (a top-level field of the parsed JSON body: needs an earlier parse_json),
 * ${header.NAME} (a request header), ${query} (the query string, without '?'), ${results.NAME} (a
 * stored upstream result's body) or ${results.NAME.FIELD.FIELD...} (a field of its JSON body; a
 * number picks an array element; needs an earlier fetch or fan_out storing NAME), and ${error}
 * (why a stage refused the request, for on_error answers). String values are unescaped; other JSON
 * values are inserted as their JSON text; a missing value renders as nothing.
 *
 * Lifetime: a template and its segments live in the app's arena; a rendering lives in req->pool.
 */
#ifndef FA_TEMPLATE_H
#define FA_TEMPLATE_H

#include "fa.h"
#include "pool.h"
#include "req.h"
#include "stage.h"
#include "yaml.h"

typedef enum {
    FA_TPL_RAW,  /* values inserted as they are (text bodies) */
    FA_TPL_LINE, /* values inserted with CR and LF dropped (header values) */
    FA_TPL_URL,  /* values percent-encoded but for RFC 3986 unreserved characters (paths) */
    FA_TPL_JSON, /* values JSON-escaped (inside the strings of a json: body) */
} fa_tpl_esc_t;

typedef struct fa_tpl_seg fa_tpl_seg_t;

/** A compiled template. */
typedef struct {
    fa_tpl_seg_t *segs;
    unsigned nsegs;
    fa_tpl_esc_t esc;
} fa_tpl_t;

/**
 * Compiles s[0..n) into out (segments in p->arena), checking every substitution against what the
 * route and the earlier stages provide; false after adding located errors (at node `at`).
 */
bool fa_tpl_parse(fa_stage_parse_t *p, const fa_yaml_node_t *at, const char *s, size_t n,
                  fa_tpl_esc_t esc, fa_tpl_t *out);

/** Renders t for req into req->pool (a static template returns its text without copying). */
fa_str_t fa_tpl_render(const fa_tpl_t *t, fa_req_t *req);

/** True (and its text) if t has no substitution. */
bool fa_tpl_static(const fa_tpl_t *t, fa_str_t *text);

/**
 * A YAML node as JSON text in arena, ready for fa_tpl_parse with FA_TPL_JSON: literal text is
 * escaped now, ${...} kept; plain scalars true/false/null and JSON numbers stay bare.
 */
fa_str_t fa_tpl_yaml_json(fa_pool_t *arena, const fa_yaml_node_t *node);

#endif
