/*
 * test_router.c — the router: static, parameter and wildcard segments, priorities and
 * backtracking, 404 versus 405 with the exact Allow list, HEAD falling back to GET, trailing
 * slashes, rejected patterns with their exact messages, a 50-route table, and no allocation in
 * fa_router_match.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "alloc.h"
#include "router.h"
#include "support/api_routes.h"

#include <stdio.h>
#include <string.h>

TestSuite(router, .timeout = 10);

/* Criterion hands each parameterized test a copy of its parameter in a fresh process image, where
 * the string pointers of a case table would dangle, so the tests take an index into the table. */

/* Each route's payload is its own "METHOD pattern" text, so a test can say which one matched. */
typedef struct {
    fa_method_t method;
    const char *pattern;
} route_t;

static const route_t table[] = {
    {FA_METHOD_GET, "/"},
    {FA_METHOD_POST, "/event"},
    {FA_METHOD_GET, "/event/"},
    {FA_METHOD_GET, "/stats"},
    {FA_METHOD_GET, "/users"},
    {FA_METHOD_POST, "/users"},
    {FA_METHOD_OPTIONS, "/users"},
    {FA_METHOD_GET, "/users/new"},
    {FA_METHOD_POST, "/users/new"},
    {FA_METHOD_GET, "/users/new/profile"},
    {FA_METHOD_GET, "/users/:id"},
    {FA_METHOD_PUT, "/users/:id"},
    {FA_METHOD_DELETE, "/users/:id"},
    {FA_METHOD_GET, "/users/:id/posts"},
    {FA_METHOD_GET, "/users/:id/posts/:post"},
    {FA_METHOD_GET, "/files/*path"},
    {FA_METHOD_GET, "/files/special"},
    {FA_METHOD_GET, "/files/:name/meta"},
    {FA_METHOD_HEAD, "/head-only"},
    {FA_METHOD_GET, "/both"},
    {FA_METHOD_HEAD, "/both"},
    {FA_METHOD_POST, "/v1/jobs:run"},
};

static char payloads[FA_ARRAY_SIZE(table)][64];

static fa_router_t *table_router(void)
{
    fa_router_t *r = fa_router_new();
    char err[128];
    for (size_t i = 0; i < FA_ARRAY_SIZE(table); i++) {
        snprintf(payloads[i], sizeof(payloads[i]), "%s %s", fa_method_name(table[i].method),
                 table[i].pattern);
        int rc = fa_router_add(r, table[i].method, table[i].pattern, payloads[i], err, sizeof(err));
        cr_assert_eq(rc, 0, "adding %s: %s", payloads[i], err);
    }
    cr_assert_eq(fa_router_compile(r), 0);
    cr_assert_eq(fa_router_count(r), FA_ARRAY_SIZE(table));
    return r;
}

/* "name=value;name=value" for the parameters of a match, to compare in one assertion. */
static void params_text(const fa_route_match_t *m, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < m->nparams && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%.*s=%.*s", i ? ";" : "",
                              (int)m->params[i].name.len, m->params[i].name.ptr,
                              (int)m->params[i].value.len, m->params[i].value.ptr);
}

typedef struct {
    const char *desc;
    fa_method_t method;
    const char *path;
    fa_route_result_t result;
    const char *route;  /* expected payload text, for FA_ROUTE_FOUND */
    const char *params; /* expected params_text, "" for none */
    const char *allow;  /* expected Allow list, for FA_ROUTE_METHOD_NOT_ALLOWED */
} match_case_t;

#define FOUND(d, m, p, route, params)                                                              \
    {                                                                                              \
        d, FA_METHOD_##m, p, FA_ROUTE_FOUND, route, params, NULL                                   \
    }
#define MISSING(d, m, p)                                                                           \
    {                                                                                              \
        d, FA_METHOD_##m, p, FA_ROUTE_NOT_FOUND, NULL, "", NULL                                    \
    }
#define NOT_ALLOWED(d, m, p, allow)                                                                \
    {                                                                                              \
        d, FA_METHOD_##m, p, FA_ROUTE_METHOD_NOT_ALLOWED, NULL, "", allow                          \
    }

static const match_case_t match_cases[] = {
    /* static */
    FOUND("root", GET, "/", "GET /", ""),
    FOUND("static POST /event", POST, "/event", "POST /event", ""),
    FOUND("static GET /stats", GET, "/stats", "GET /stats", ""),
    FOUND("two-segment static", GET, "/users/new/profile", "GET /users/new/profile", ""),
    FOUND("':' inside a segment is a literal byte", POST, "/v1/jobs:run", "POST /v1/jobs:run", ""),
    MISSING("':' inside a segment does not start a parameter", POST, "/v1/jobs:walk"),
    MISSING("prefix of a static route", GET, "/stat"),
    MISSING("static route plus extra bytes", GET, "/statsx"),
    MISSING("unknown first segment", GET, "/nope/x"),
    MISSING("empty path", GET, ""),
    MISSING("path without leading slash", GET, "stats"),
    MISSING("double slash at the root", GET, "//"),
    /* trailing slash */
    FOUND("trailing slash is its own route", GET, "/event/", "GET /event/", ""),
    MISSING("trailing slash not registered", GET, "/stats/"),
    MISSING("trailing slash after a parameter", GET, "/users/42/"),
    /* parameters */
    FOUND("one parameter", GET, "/users/42", "GET /users/:id", "id=42"),
    FOUND("parameter, other method", PUT, "/users/42", "PUT /users/:id", "id=42"),
    FOUND("parameter then static", GET, "/users/42/posts", "GET /users/:id/posts", "id=42"),
    FOUND("two parameters", GET, "/users/42/posts/7", "GET /users/:id/posts/:post", "id=42;post=7"),
    FOUND("raw bytes: no percent-decoding", GET, "/users/a%2Fb", "GET /users/:id", "id=a%2Fb"),
    MISSING("empty segment never fills a parameter", GET, "/users//posts"),
    MISSING("empty last segment never fills a parameter", GET, "/users/"),
    MISSING("too many segments after a parameter", GET, "/users/42/posts/7/x"),
    /* priorities and backtracking */
    FOUND("static beats parameter", GET, "/users/new", "GET /users/new", ""),
    FOUND("static without the method falls to the parameter", DELETE, "/users/new",
          "DELETE /users/:id", "id=new"),
    FOUND("static dead end backtracks to the parameter", GET, "/users/new/posts",
          "GET /users/:id/posts", "id=new"),
    FOUND("static beats wildcard", GET, "/files/special", "GET /files/special", ""),
    FOUND("parameter beats wildcard", GET, "/files/a/meta", "GET /files/:name/meta", "name=a"),
    FOUND("static dead end, parameter dead end, then wildcard", GET, "/files/special/x",
          "GET /files/*path", "path=special/x"),
    FOUND("parameter node without a route backtracks to wildcard", GET, "/files/a",
          "GET /files/*path", "path=a"),
    /* wildcard */
    FOUND("empty wildcard", GET, "/files/", "GET /files/*path", "path="),
    FOUND("deep wildcard", GET, "/files/a/b/c.txt", "GET /files/*path", "path=a/b/c.txt"),
    FOUND("wildcard keeps empty segments raw", GET, "/files//x/", "GET /files/*path", "path=/x/"),
    MISSING("wildcard needs the slash before it", GET, "/files"),
    /* 405 and the Allow list */
    NOT_ALLOWED("405 on a static route", DELETE, "/event", "POST"),
    NOT_ALLOWED("405 lists HEAD with GET", POST, "/stats", "GET, HEAD"),
    NOT_ALLOWED("405 in enum order", PATCH, "/users", "GET, HEAD, POST, OPTIONS"),
    NOT_ALLOWED("405 on a parameter route", POST, "/users/42", "GET, HEAD, PUT, DELETE"),
    NOT_ALLOWED("405 is the union of every matching pattern", PATCH, "/users/new",
                "GET, HEAD, POST, PUT, DELETE"),
    NOT_ALLOWED("405 on a wildcard route", POST, "/files/x", "GET, HEAD"),
    NOT_ALLOWED("405 with a HEAD-only route", GET, "/head-only", "HEAD"),
    NOT_ALLOWED("HEAD does not fall back to POST", HEAD, "/event", "POST"),
    /* HEAD */
    FOUND("HEAD uses the GET route", HEAD, "/stats", "GET /stats", ""),
    FOUND("HEAD uses the GET route of a parameter", HEAD, "/users/42", "GET /users/:id", "id=42"),
    FOUND("HEAD uses the GET route of a wildcard", HEAD, "/files/a/b", "GET /files/*path",
          "path=a/b"),
    FOUND("explicit HEAD route wins", HEAD, "/both", "HEAD /both", ""),
    FOUND("GET next to an explicit HEAD", GET, "/both", "GET /both", ""),
    FOUND("HEAD-only route", HEAD, "/head-only", "HEAD /head-only", ""),
};

ParameterizedTestParameters(router, match)
{
    static size_t idx[FA_ARRAY_SIZE(match_cases)];
    for (size_t i = 0; i < FA_ARRAY_SIZE(idx); i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, FA_ARRAY_SIZE(idx));
}

ParameterizedTest(size_t *ci, router, match)
{
    const match_case_t *c = &match_cases[*ci];
    fa_router_t *r = table_router();
    fa_route_match_t m;
    memset(&m, 0x5a, sizeof(m)); /* stale garbage must be overwritten */
    fa_route_result_t res = fa_router_match(r, c->method, c->path, strlen(c->path), &m);
    cr_assert_eq(res, c->result, "%s: %s %s gave result %d, expected %d", c->desc,
                 fa_method_name(c->method), c->path, res, c->result);
    if (c->result == FA_ROUTE_FOUND)
        cr_assert_str_eq(m.data, c->route, "%s: matched route", c->desc);
    else
        cr_assert_null(m.data, "%s: no payload without a match", c->desc);
    char got[256];
    params_text(&m, got, sizeof(got));
    cr_assert_str_eq(got, c->params, "%s: parameters", c->desc);
    if (c->allow)
        cr_assert_str_eq(m.allow, c->allow, "%s: Allow list", c->desc);
    else
        cr_assert_null(m.allow, "%s: no Allow list", c->desc);
    fa_router_free(r);
}

Test(router, params_are_views_into_the_callers_buffer)
{
    fa_router_t *r = table_router();
    char path[] = "/users/42/posts/7?ignored";
    fa_route_match_t m;
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, path, strlen("/users/42/posts/7"), &m),
                 FA_ROUTE_FOUND);
    cr_assert_eq(m.nparams, 2);
    cr_assert_eq(m.params[0].value.ptr, path + 7);
    cr_assert_eq(m.params[1].value.ptr, path + 16);
    cr_assert_eq(m.params[1].value.len, 1, "the length given bounds the match, not the NUL");
    fa_router_free(r);
}

/* ---- adding routes: every rejected pattern with its message ---------------------------- */

typedef struct {
    const char *desc;
    fa_method_t method;
    const char *pattern;
    const char *err; /* NULL: accepted */
} add_case_t;

/* Each case is added to a router that already holds these. */
static const route_t add_base[] = {
    {FA_METHOD_GET, "/users/:id"},
    {FA_METHOD_GET, "/files/*path"},
    {FA_METHOD_GET, "/dup"},
};

static const add_case_t add_cases[] = {
    {"empty pattern", FA_METHOD_GET, "", "pattern must start with '/'"},
    {"no leading slash", FA_METHOD_GET, "users", "pattern must start with '/'"},
    {"space", FA_METHOD_GET, "/a b", "invalid character in pattern"},
    {"question mark", FA_METHOD_GET, "/a?b=1", "invalid character in pattern"},
    {"fragment", FA_METHOD_GET, "/a#top", "invalid character in pattern"},
    {"control byte", FA_METHOD_GET, "/a\tb", "invalid character in pattern"},
    {"empty segment in the middle", FA_METHOD_GET, "/a//b", "empty segment in pattern"},
    {"double slash", FA_METHOD_GET, "//", "empty segment in pattern"},
    {"empty parameter name, last", FA_METHOD_GET, "/users/:", "empty parameter name"},
    {"empty parameter name, middle", FA_METHOD_GET, "/users/:/x", "empty parameter name"},
    {"empty wildcard name", FA_METHOD_GET, "/files/*", "empty wildcard name"},
    {"bad parameter name", FA_METHOD_GET, "/u/:x-y", "invalid parameter name ':x-y'"},
    {"bad wildcard name", FA_METHOD_GET, "/u/*a.b", "invalid parameter name '*a.b'"},
    {"wildcard not last", FA_METHOD_GET, "/f/*rest/x", "wildcard '*rest' must be the last segment"},
    {"wildcard before trailing slash", FA_METHOD_GET, "/f/*rest/",
     "wildcard '*rest' must be the last segment"},
    {"same name twice in a pattern", FA_METHOD_GET, "/a/:id/b/:id",
     "duplicate parameter name ':id'"},
    {"parameter and wildcard with one name", FA_METHOD_GET, "/a/:id/*id",
     "duplicate parameter name '*id'"},
    {"nine parameters", FA_METHOD_GET, "/:a/:b/:c/:d/:e/:f/:g/:h/:i",
     "too many parameters (at most 8)"},
    {"eight parameters", FA_METHOD_GET, "/:a/:b/:c/:d/:e/:f/:g/*h", NULL},
    {"different parameter name at a used position", FA_METHOD_GET, "/users/:uid/posts",
     "conflicting parameter names ':uid' and ':id' at the same position"},
    {"different wildcard name at a used position", FA_METHOD_GET, "/files/*rest",
     "conflicting wildcard names '*rest' and '*path' at the same position"},
    {"same parameter name at a used position", FA_METHOD_GET, "/users/:id/posts", NULL},
    {"duplicate parameter route", FA_METHOD_GET, "/users/:id", "duplicate route GET /users/:id"},
    {"duplicate static route", FA_METHOD_GET, "/dup", "duplicate route GET /dup"},
    {"same pattern, other method", FA_METHOD_POST, "/users/:id", NULL},
    {"explicit HEAD next to GET", FA_METHOD_HEAD, "/dup", NULL},
    {"invalid method", FA_METHOD__COUNT, "/x", "invalid method"},
    {"':' inside a segment is literal", FA_METHOD_GET, "/v1/jobs:run", NULL},
    {"root", FA_METHOD_GET, "/", NULL},
    {"trailing slash", FA_METHOD_GET, "/dup/", NULL},
};

ParameterizedTestParameters(router, add)
{
    static size_t idx[FA_ARRAY_SIZE(add_cases)];
    for (size_t i = 0; i < FA_ARRAY_SIZE(idx); i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, FA_ARRAY_SIZE(idx));
}

ParameterizedTest(size_t *ci, router, add)
{
    const add_case_t *c = &add_cases[*ci];
    fa_router_t *r = fa_router_new();
    char err[128];
    for (size_t i = 0; i < FA_ARRAY_SIZE(add_base); i++)
        cr_assert_eq(
            fa_router_add(r, add_base[i].method, add_base[i].pattern, NULL, err, sizeof(err)), 0);
    strcpy(err, "untouched");
    int rc = fa_router_add(r, c->method, c->pattern, (void *)c, err, sizeof(err));
    if (c->err) {
        cr_assert_eq(rc, -1, "%s: \"%s\" must be refused", c->desc, c->pattern);
        cr_assert_str_eq(err, c->err, "%s: message", c->desc);
        cr_assert_eq(fa_router_count(r), FA_ARRAY_SIZE(add_base), "%s: router unchanged", c->desc);
    } else {
        cr_assert_eq(rc, 0, "%s: \"%s\" refused: %s", c->desc, c->pattern, err);
        cr_assert_str_eq(err, "untouched", "%s: no message on success", c->desc);
        cr_assert_eq(fa_router_count(r), FA_ARRAY_SIZE(add_base) + 1);
    }
    fa_router_free(r);
}

Test(router, error_message_is_truncated_to_errlen)
{
    fa_router_t *r = fa_router_new();
    char err[8];
    cr_assert_eq(fa_router_add(r, FA_METHOD_GET, "nope", NULL, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "pattern");
    fa_router_free(r);
}

Test(router, failed_add_changes_nothing)
{
    fa_router_t *r = fa_router_new();
    char err[128];
    cr_assert_eq(fa_router_add(r, FA_METHOD_GET, "/a/:id", "a", err, sizeof(err)), 0);
    cr_assert_eq(fa_router_add(r, FA_METHOD_GET, "/a/:x/b", "b", err, sizeof(err)), -1);
    cr_assert_eq(fa_router_add(r, FA_METHOD_GET, "/c/d/*e/f", "c", err, sizeof(err)), -1);
    cr_assert_eq(fa_router_compile(r), 0);
    fa_route_match_t m;
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, "/a/1/b", 6, &m), FA_ROUTE_NOT_FOUND);
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, "/c/d/x/f", 8, &m), FA_ROUTE_NOT_FOUND);
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, "/a/1", 4, &m), FA_ROUTE_FOUND);
    fa_router_free(r);
}

Test(router, add_after_compile_is_refused_and_compile_twice_is_harmless)
{
    fa_router_t *r = fa_router_new();
    char err[128];
    cr_assert_eq(fa_router_add(r, FA_METHOD_GET, "/a", "a", err, sizeof(err)), 0);
    cr_assert_eq(fa_router_compile(r), 0);
    cr_assert_eq(fa_router_add(r, FA_METHOD_GET, "/b", "b", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "router is already compiled");
    cr_assert_eq(fa_router_compile(r), 0);
    fa_route_match_t m;
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, "/a", 2, &m), FA_ROUTE_FOUND);
    cr_assert_str_eq(m.data, "a");
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, "/b", 2, &m), FA_ROUTE_NOT_FOUND);
    fa_router_free(r);
}

Test(router, empty_router_finds_nothing)
{
    fa_router_t *r = fa_router_new();
    cr_assert_eq(fa_router_compile(r), 0);
    fa_route_match_t m;
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, "/", 1, &m), FA_ROUTE_NOT_FOUND);
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, "/x/y", 4, &m), FA_ROUTE_NOT_FOUND);
    fa_router_free(r);
    fa_router_free(NULL);
}

Test(router, eight_parameters_all_handed_out)
{
    fa_router_t *r = fa_router_new();
    char err[128];
    cr_assert_eq(fa_router_add(r, FA_METHOD_GET, "/:a/:b/:c/:d/:e/:f/:g/*h", "x", err, sizeof(err)),
                 0, "%s", err);
    fa_router_compile(r);
    fa_route_match_t m;
    const char *path = "/1/2/3/4/5/6/7/8/9";
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, path, strlen(path), &m), FA_ROUTE_FOUND);
    char got[256];
    params_text(&m, got, sizeof(got));
    cr_assert_str_eq(got, "a=1;b=2;c=3;d=4;e=5;f=6;g=7;h=8/9");
    fa_router_free(r);
}

/* ---- methods ----------------------------------------------------------------------------- */

typedef struct {
    const char *desc;
    const char *text;
    size_t len;
    int method;
} method_case_t;

static const method_case_t method_cases[] = {
    {"GET", "GET", 3, FA_METHOD_GET},
    {"HEAD", "HEAD", 4, FA_METHOD_HEAD},
    {"POST", "POST", 4, FA_METHOD_POST},
    {"PUT", "PUT", 3, FA_METHOD_PUT},
    {"DELETE", "DELETE", 6, FA_METHOD_DELETE},
    {"PATCH", "PATCH", 5, FA_METHOD_PATCH},
    {"OPTIONS", "OPTIONS", 7, FA_METHOD_OPTIONS},
    {"methods are case-sensitive", "get", 3, -1},
    {"prefix of a method", "GE", 2, -1},
    {"method plus a byte", "GETS", 4, -1},
    {"length bounds the token", "POSTX", 4, FA_METHOD_POST},
    {"CONNECT is not routed", "CONNECT", 7, -1},
    {"TRACE is not routed", "TRACE", 5, -1},
    {"empty", "", 0, -1},
};

ParameterizedTestParameters(router, method_parse)
{
    static size_t idx[FA_ARRAY_SIZE(method_cases)];
    for (size_t i = 0; i < FA_ARRAY_SIZE(idx); i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, FA_ARRAY_SIZE(idx));
}

ParameterizedTest(size_t *ci, router, method_parse)
{
    const method_case_t *c = &method_cases[*ci];
    int m = fa_method_parse(c->text, c->len);
    cr_assert_eq(m, c->method, "%s: got %d", c->desc, m);
    if (m >= 0)
        cr_assert_eq(strncmp(fa_method_name((fa_method_t)m), c->text, c->len), 0, "%s", c->desc);
}

Test(router, method_name_out_of_range_is_null)
{
    cr_assert_null(fa_method_name(FA_METHOD__COUNT));
    cr_assert_str_eq(fa_method_name(FA_METHOD_OPTIONS), "OPTIONS");
}

/* ---- a realistic 50-route table -------------------------------------------------------- */

static_assert(FA_ARRAY_SIZE(api) == 50, "the realistic table has 50 routes");

/* A concrete path for a pattern: parameters become "v<position>", wildcards "w/x.y". The
 * values never collide with a static segment, so each path must reach its own route. */
static void concrete(const char *pattern, char *buf, size_t cap, char *params, size_t pcap)
{
    size_t n = 0, pn = 0;
    unsigned seg = 0;
    params[0] = '\0';
    for (const char *p = pattern; *p;) {
        if (*p == '/') {
            buf[n++] = *p++;
            seg++;
            continue;
        }
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (*p == ':' || *p == '*') {
            char val[32];
            snprintf(val, sizeof(val), *p == ':' ? "v%u" : "w/x.y", seg);
            n += (size_t)snprintf(buf + n, cap - n, "%s", val);
            pn += (size_t)snprintf(params + pn, pcap - pn, "%s%.*s=%s", pn ? ";" : "", (int)len - 1,
                                   p + 1, val);
        } else {
            memcpy(buf + n, p, len);
            n += len;
        }
        p += len;
    }
    buf[n] = '\0';
}

Test(router, fifty_route_table_reaches_every_route)
{
    fa_router_t *r = fa_router_new();
    char err[128];
    for (size_t i = 0; i < FA_ARRAY_SIZE(api); i++)
        cr_assert_eq(
            fa_router_add(r, api[i].method, api[i].pattern, (void *)&api[i], err, sizeof(err)), 0,
            "%s: %s", api[i].pattern, err);
    fa_router_compile(r);
    for (size_t i = 0; i < FA_ARRAY_SIZE(api); i++) {
        char path[128], want[128], got[256];
        concrete(api[i].pattern, path, sizeof(path), want, sizeof(want));
        fa_route_match_t m;
        fa_route_result_t res = fa_router_match(r, api[i].method, path, strlen(path), &m);
        cr_assert_eq(res, FA_ROUTE_FOUND, "%s %s", fa_method_name(api[i].method), path);
        cr_assert_eq(m.data, &api[i], "%s %s reached %s", fa_method_name(api[i].method), path,
                     ((const route_t *)m.data)->pattern);
        params_text(&m, got, sizeof(got));
        cr_assert_str_eq(got, want, "%s", path);
    }
    fa_route_match_t m;
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, "/api/v1/nope", 12, &m), FA_ROUTE_NOT_FOUND);
    cr_assert_eq(fa_router_match(r, FA_METHOD_POST, "/api/v1/users/7", 15, &m),
                 FA_ROUTE_METHOD_NOT_ALLOWED);
    cr_assert_str_eq(m.allow, "GET, HEAD, PUT, DELETE, PATCH");
    fa_router_free(r);
}

/* ---- no allocation on lookup ----------------------------------------------------------- */

Test(router, match_allocates_nothing)
{
    fa_router_t *r = table_router();
    uint64_t before = fa_alloc_count();
    unsigned found = 0;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < FA_ARRAY_SIZE(match_cases); i++) {
            const match_case_t *c = &match_cases[i];
            fa_route_match_t m;
            found += fa_router_match(r, c->method, c->path, strlen(c->path), &m) == FA_ROUTE_FOUND;
        }
    }
    cr_assert_eq(fa_alloc_count(), before, "fa_router_match called the allocator");
    cr_assert_gt(found, 0u, "the loop did look routes up");
    fa_router_free(r);
}

/* ---- segment scanning: lengths around the word size, collisions, wide tables ------------ */

/* Matches a copy of s in a buffer of exactly len bytes, so that ASan catches any read past the
 * end of the caller's path. The copy is freed before returning; only data and nparams are kept. */
static fa_route_result_t match_exact(const fa_router_t *r, fa_method_t m, const char *s, size_t len,
                                     void **data, unsigned *nparams)
{
    char *buf = fa_malloc(len);
    memcpy(buf, s, len);
    fa_route_match_t out;
    fa_route_result_t res = fa_router_match(r, m, buf, len, &out);
    *data = out.data;
    *nparams = out.nparams;
    fa_free(buf);
    return res;
}

Test(router, segment_lengths_around_the_word_size)
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz";
    enum { MAXL = 24 };
    static int last[MAXL + 1], inner[MAXL + 1];
    fa_router_t *r = fa_router_new();
    char err[128], pat[64];
    for (int l = 1; l <= MAXL; l++) {
        snprintf(pat, sizeof(pat), "/k/%.*s", l, alpha);
        cr_assert_eq(fa_router_add(r, FA_METHOD_GET, pat, &last[l], err, sizeof(err)), 0);
        snprintf(pat, sizeof(pat), "/k/%.*s/t", l, alpha);
        cr_assert_eq(fa_router_add(r, FA_METHOD_GET, pat, &inner[l], err, sizeof(err)), 0);
    }
    fa_router_compile(r);
    for (int l = 1; l <= MAXL; l++) {
        char path[64];
        void *data;
        unsigned np;
        int n = snprintf(path, sizeof(path), "/k/%.*s", l, alpha);
        cr_assert_eq(match_exact(r, FA_METHOD_GET, path, (size_t)n, &data, &np), FA_ROUTE_FOUND,
                     "%s", path);
        cr_assert_eq(data, &last[l], "%s", path);
        n = snprintf(path, sizeof(path), "/k/%.*s/t", l, alpha);
        cr_assert_eq(match_exact(r, FA_METHOD_GET, path, (size_t)n, &data, &np), FA_ROUTE_FOUND,
                     "%s", path);
        cr_assert_eq(data, &inner[l], "%s", path);
        /* The same length with the last byte changed, and one byte more: both misses. */
        n = snprintf(path, sizeof(path), "/k/%.*sZ", l - 1, alpha);
        cr_assert_eq(match_exact(r, FA_METHOD_GET, path, (size_t)n, &data, &np), FA_ROUTE_NOT_FOUND,
                     "%s", path);
        n = snprintf(path, sizeof(path), "/k/%.*sZ/t", l, alpha);
        cr_assert_eq(match_exact(r, FA_METHOD_GET, path, (size_t)n, &data, &np), FA_ROUTE_NOT_FOUND,
                     "%s", path);
        /* First byte changed: differs inside the first word only. */
        n = snprintf(path, sizeof(path), "/k/Z%.*s", l - 1, alpha + 1);
        cr_assert_eq(match_exact(r, FA_METHOD_GET, path, (size_t)n, &data, &np), FA_ROUTE_NOT_FOUND,
                     "%s", path);
    }
    fa_router_free(r);
}

Test(router, long_segments_sharing_their_first_word_are_told_apart)
{
    fa_router_t *r = fa_router_new();
    char err[128];
    cr_assert_eq(fa_router_add(r, FA_METHOD_GET, "/c/aaaaaaaa-1-zzzzzzzz", "1", err, sizeof(err)),
                 0);
    cr_assert_eq(fa_router_add(r, FA_METHOD_GET, "/c/aaaaaaaa-2-zzzzzzzz", "2", err, sizeof(err)),
                 0);
    cr_assert_eq(fa_router_add(r, FA_METHOD_GET, "/c/aaaaaaaa", "short", err, sizeof(err)), 0);
    fa_router_compile(r);
    static const struct {
        const char *path, *want;
    } cases[] = {
        {"/c/aaaaaaaa-1-zzzzzzzz", "1"},
        {"/c/aaaaaaaa-2-zzzzzzzz", "2"},
        {"/c/aaaaaaaa", "short"},
        {"/c/aaaaaaaa-3-zzzzzzzz", NULL},
        {"/c/aaaaaaaa-1-zzzzzzzZ", NULL},
        {"/c/aaaaaaaa-1-zzzzzzz", NULL},
        {"/c/aaaaaaa", NULL},
    };
    for (size_t i = 0; i < FA_ARRAY_SIZE(cases); i++) {
        void *data;
        unsigned np;
        fa_route_result_t res =
            match_exact(r, FA_METHOD_GET, cases[i].path, strlen(cases[i].path), &data, &np);
        if (cases[i].want) {
            cr_assert_eq(res, FA_ROUTE_FOUND, "%s", cases[i].path);
            cr_assert_str_eq(data, cases[i].want, "%s", cases[i].path);
        } else {
            cr_assert_eq(res, FA_ROUTE_NOT_FOUND, "%s", cases[i].path);
        }
    }
    fa_router_free(r);
}

Test(router, wide_node_with_two_hundred_static_children_and_a_parameter)
{
    enum { N = 200 };
    static int payload[N];
    fa_router_t *r = fa_router_new();
    char err[128], pat[32];
    for (int i = 0; i < N; i++) {
        snprintf(pat, sizeof(pat), "/r%d", i);
        cr_assert_eq(fa_router_add(r, FA_METHOD_GET, pat, &payload[i], err, sizeof(err)), 0);
    }
    cr_assert_eq(fa_router_add(r, FA_METHOD_GET, "/:x", "param", err, sizeof(err)), 0);
    fa_router_compile(r);
    for (int i = 0; i < N; i++) {
        char path[32];
        void *data;
        unsigned np;
        int n = snprintf(path, sizeof(path), "/r%d", i);
        cr_assert_eq(match_exact(r, FA_METHOD_GET, path, (size_t)n, &data, &np), FA_ROUTE_FOUND);
        cr_assert_eq(data, &payload[i], "%s", path);
        cr_assert_eq(np, 0);
    }
    fa_route_match_t m;
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, "/r200", 5, &m), FA_ROUTE_FOUND);
    cr_assert_str_eq(m.data, "param");
    cr_assert_eq(m.nparams, 1);
    fa_router_free(r);
}

Test(router, raw_bytes_high_and_nul)
{
    fa_router_t *r = fa_router_new();
    char err[128];
    cr_assert_eq(fa_router_add(r, FA_METHOD_GET, "/caf\xc3\xa9", "cafe", err, sizeof(err)), 0);
    cr_assert_eq(fa_router_add(r, FA_METHOD_GET, "/ab", "ab", err, sizeof(err)), 0);
    cr_assert_eq(fa_router_add(r, FA_METHOD_GET, "/p/:v", "param", err, sizeof(err)), 0);
    fa_router_compile(r);
    fa_route_match_t m;
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, "/caf\xc3\xa9", 6, &m), FA_ROUTE_FOUND);
    cr_assert_str_eq(m.data, "cafe");
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, "/caf%C3%A9", 10, &m), FA_ROUTE_NOT_FOUND,
                 "no percent-decoding");
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, "/ab\0", 4, &m), FA_ROUTE_NOT_FOUND,
                 "a NUL byte is part of the segment, not its end");
    cr_assert_eq(fa_router_match(r, FA_METHOD_GET, "/p/\0", 4, &m), FA_ROUTE_FOUND);
    cr_assert_eq(m.params[0].value.len, 1);
    fa_router_free(r);
}
