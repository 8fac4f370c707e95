/*
 * json_internal.h — json.c's hooks for its tests: each parsing path on its own and the raw fields
 * of a token, so that the flat-object fast path can be checked against the general path.
 */
#ifndef FA_JSON_INTERNAL_H
#define FA_JSON_INTERNAL_H

#include "json.h"

typedef enum {
    FA__JSON_ANY,     /* what fa_json_parse does: the flat-object path, else the general one */
    FA__JSON_GENERAL, /* jsmn + validation only */
    FA__JSON_FLAT,    /* the flat-object path only: -1 (err untouched) when it declines */
} fa__json_path_t;

/** fa_json_parse through the given path; same contract otherwise. */
int fa__json_parse_path(fa_json_t *doc, fa_pool_t *pool, const char *buf, size_t len,
                        const fa_json_limits_t *lim, fa_json_error_t *err, fa__json_path_t path);

/** Token tok of a parsed doc as {type (jsmn's), start, end, size, next}; doc must be parsed. */
void fa__json_tok_fields(const fa_json_t *doc, int tok, int out[5]);

#endif
