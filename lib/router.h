/*
 * router.h — maps (method, path) to a route's payload, with path parameters as views.
 *
 * Lifetime: a router belongs to the config arena's lifetime. It is built once per config load
 * (fa_router_new, fa_router_add for each route, fa_router_compile once), then is immutable and may
 * be read by any number of threads at once without locking until fa_router_free. All its memory
 * comes from fa_malloc and is owned by the router.
 *
 * Patterns. A pattern starts with '/' and is split on '/' into segments:
 *   - a static segment matches the same bytes exactly ("users");
 *   - ":name" matches one whole non-empty segment (never an empty one, so "//" never fills a
 *     parameter) and hands it out as the parameter "name";
 *   - "*name" must be the last segment and matches the rest of the path, slashes included,
 *     possibly empty: "/files/" followed by "*rest" matches "/files/" (rest = "") and
 *     "/files/a/b" (rest = "a/b"), but not "/files" (the '/' before the wildcard is literal).
 * ':' or '*' anywhere but at the start of a segment is an ordinary byte ("/v1/jobs:run").
 * Names are letters, digits and '_'. Parameter names need not be unique across routes, but two
 * routes that have a parameter (or a wildcard) at the same position must give it the same name:
 * "/users/:id" and "/users/:uid/posts" is rejected, so a position has one meaning everywhere.
 * An empty segment is only allowed last: "/" and "/events/" are fine, "/a//b" is rejected.
 *
 * Matching is on raw bytes: no percent-decoding, no dot-segment removal, no case folding.
 * A trailing slash is significant: "/event/" and "/event" are different paths.
 * At each segment a static child is tried first, then the parameter, then the wildcard, and a
 * miss further down backtracks to the next choice: so the more specific route wins, yet
 * "/users/new/posts" still reaches "/users/:id/posts" when "/users/new" is a dead end for it.
 * Dispatch is per method along that search: a route that matches the path but not the method
 * does not stop the search, so GET "/users/new" reaches "GET /users/:id" even when only
 * "POST /users/new" exists. A HEAD request uses the GET route of a pattern that has no HEAD
 * route. When no route matches the method but some match the path, the result is
 * FA_ROUTE_METHOD_NOT_ALLOWED with the union of their methods in the Allow list.
 */
#ifndef FA_ROUTER_H
#define FA_ROUTER_H

#include "fa.h"

/** The methods a route can name, in the order the Allow list uses. */
typedef enum {
    FA_METHOD_GET,
    FA_METHOD_HEAD,
    FA_METHOD_POST,
    FA_METHOD_PUT,
    FA_METHOD_DELETE,
    FA_METHOD_PATCH,
    FA_METHOD_OPTIONS,
    FA_METHOD__COUNT
} fa_method_t;

/**
 * Parses an upper-case method token (methods are case-sensitive). Returns an fa_method_t, or -1
 * for anything else (CONNECT, TRACE, extensions, "get"): the HTTP layer answers those with 501.
 */
int fa_method_parse(const char *s, size_t len);

/** "GET", "HEAD", ...: a static string; NULL for a value outside the enum. */
const char *fa_method_name(fa_method_t m);

typedef struct fa_router fa_router_t;

/** An empty, uncompiled router, owned by the caller until fa_router_free. Never NULL. */
fa_router_t *fa_router_new(void);

/**
 * Adds the route "m pattern" with an opaque payload (borrowed: the router never looks at it or
 * frees it; it must outlive the router). pattern is copied. Returns 0, or -1 with a one-line
 * message in err (errlen bytes, NUL-terminated, never containing the location: the caller adds
 * it). Errors: "pattern must start with '/'", "invalid character in pattern" (controls, space,
 * '?', '#', DEL), "empty segment in pattern", "empty parameter name", "empty wildcard name",
 * "invalid parameter name ':x-y'", "wildcard '*rest' must be the last segment",
 * "duplicate parameter name ':id'", "too many parameters (at most 8)",
 * "conflicting parameter names ':uid' and ':id' at the same position" (new one first),
 * "conflicting wildcard names '*b' and '*a' at the same position", "duplicate route GET /x",
 * "invalid method", "router is already compiled". On error the router is unchanged.
 */
int fa_router_add(fa_router_t *r, fa_method_t m, const char *pattern, void *data, char *err,
                  size_t errlen);

/**
 * Freezes the router into its lookup layout (one allocation) and frees the build-time tree. Must
 * be called once after the last fa_router_add and before the first fa_router_match; adds are
 * refused afterwards. A second call does nothing. Returns 0.
 */
int fa_router_compile(fa_router_t *r);

/** Frees the router and everything it allocated (not the payloads). NULL is fine. */
void fa_router_free(fa_router_t *r);

#define FA_ROUTER_MAX_PARAMS 8

/** One path parameter; name points into the router, value into the caller's path buffer. */
typedef struct {
    fa_str_t name;
    fa_str_t value;
} fa_param_t;

/**
 * The outcome of a lookup. params are views, valid while both the router and the caller's path
 * buffer live; the wildcard, if any, is the last parameter. allow is set only for
 * FA_ROUTE_METHOD_NOT_ALLOWED: a NUL-terminated "GET, HEAD, POST" list in enum order, owned by
 * the router.
 */
typedef struct {
    void *data;
    unsigned nparams;
    fa_param_t params[FA_ROUTER_MAX_PARAMS];
    const char *allow;
} fa_route_match_t;

typedef enum {
    FA_ROUTE_FOUND,
    FA_ROUTE_NOT_FOUND,
    FA_ROUTE_METHOD_NOT_ALLOWED,
} fa_route_result_t;

/**
 * Finds the route for (m, path[0..len)). path is the request-target's path with the query string
 * already cut off; it need not be NUL-terminated. Allocates nothing, writes only *out, and is
 * safe to call from any thread on a compiled router. On FA_ROUTE_FOUND out->data and the
 * parameters are set; on FA_ROUTE_NOT_FOUND out->nparams is 0 and data and allow are NULL.
 */
fa_route_result_t fa_router_match(const fa_router_t *r, fa_method_t m, const char *path, size_t len,
                                  fa_route_match_t *out);

/** Number of routes added (each method+pattern counts once). */
size_t fa_router_count(const fa_router_t *r);

#endif
