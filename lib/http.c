/*
 * http.c — llhttp glue: assembles a fa_req_t from the parser's callbacks, enforces the request
 * limits, and maps parser errors to HTTP statuses.
 *
 * Views (target, header names and values, body) point into the connection's read buffer while the
 * bytes are contiguous there; a token split by a buffer move, or a chunked body, is joined in the
 * request pool. The parser is paused at the end of every message so that requests are handled one
 * at a time, in order, however many arrive in one read (pipelining).
 */
#include "app.h"
#include "conn.h"
#include "config.h"
#include "log.h"
#include "worker.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

static inline fa_conn_t *conn_of(llhttp_t *p)
{
    return p->data;
}

/* Rejects the request being parsed with status; the callback returns -1 (HPE_USER). */
static int reject(fa_conn_t *c, int status, const char *msg)
{
    c->err_status = status;
    c->err_msg = msg;
    return -1;
}

/* Appends [at, at+len) to a view: extends it in place when contiguous, else joins in the pool. */
static inline void view_append(fa_conn_t *c, fa_str_t *v, const char *at, size_t len)
{
    if (v->len == 0) {
        v->ptr = at;
        v->len = len;
    } else if (v->ptr + v->len == at) {
        v->len += len;
    } else {
        char *p = fa_pool_alloc(&c->pool, v->len + len);
        memcpy(p, v->ptr, v->len);
        memcpy(p + v->len, at, len);
        v->ptr = p;
        v->len += len;
    }
}

/* The reset below skips exactly the arrays at the end of the struct. */
_Static_assert(offsetof(fa_req_t, param_values) ==
                       offsetof(fa_req_t, param_names) + sizeof(((fa_req_t *)0)->param_names) &&
                   offsetof(fa_req_t, extra) ==
                       offsetof(fa_req_t, param_values) + sizeof(((fa_req_t *)0)->param_values) &&
                   sizeof(fa_req_t) == offsetof(fa_req_t, extra) + sizeof(((fa_req_t *)0)->extra),
               "fa_req_t: the parameter and extra-header arrays must end the struct");

void fa__http_reset_request(fa_conn_t *c)
{
    fa_req_t *r = &c->req;
    fa_pool_reset(&c->pool);
    fa_conn_t *conn = r->conn;
    fa_worker_t *w = r->worker;
    /* Zeroes everything but the parameter and extra-header arrays (two thirds of the struct),
     * whose entries are read only below nparams and nextra. */
    memset(r, 0, offsetof(fa_req_t, param_names));
    r->conn = conn;
    r->worker = w;
    r->pool = &c->pool;
    r->content_length = UINT64_MAX;
    r->action = "reading request headers";
    c->hdr_phase = 0;
    c->body_cap = 0;
    c->streamed = 0;
    c->err_status = 0;
    c->err_msg = NULL;
    c->req_in_rbuf = false;
}

static int on_message_begin(llhttp_t *p)
{
    fa_conn_t *c = conn_of(p);
    /* The parser is paused after every message, so a new one starts where this execute began. */
    c->req_start = c->rstart;
    c->req_in_rbuf = true;
    c->state = FA_CONN_HEADERS;
    c->req.start = ev_now(c->worker->loop);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    fa_conn_t *c = conn_of(p);
    view_append(c, &c->req.target, at, len);
    if (c->req.target.len > c->worker->config->limits.uri_bytes)
        return reject(c, 414, "request URI too long");
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    fa_conn_t *c = conn_of(p);
    fa_req_t *r = &c->req;
    if (c->hdr_phase != 1) {
        if (r->nheaders == c->worker->config->limits.max_headers)
            return reject(c, 431, "too many header fields");
        if (r->nheaders == r->_headers_cap) {
            unsigned cap = r->_headers_cap ? r->_headers_cap * 2 : 16;
            fa_header_t *h = fa_pool_alloc(&c->pool, cap * sizeof(*h));
            if (r->nheaders)
                memcpy(h, r->headers, r->nheaders * sizeof(*h));
            r->headers = h;
            r->_headers_cap = cap;
        }
        r->headers[r->nheaders++] = (fa_header_t){FA_STR_NULL, FA_STR_NULL};
        c->hdr_phase = 1;
    }
    view_append(c, &r->headers[r->nheaders - 1].name, at, len);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    fa_conn_t *c = conn_of(p);
    fa_req_t *r = &c->req;
    c->hdr_phase = 2;
    fa_header_t *h = &r->headers[r->nheaders - 1];
    if (h->value.len == 0 && h->value.ptr == NULL) {
        h->value.ptr = at; /* an empty value still gets a non-NULL pointer */
    }
    view_append(c, &h->value, at, len);
    return 0;
}

static bool token_eq(fa_str_t v, const char *s)
{
    size_t n = strlen(s);
    /* trim optional whitespace */
    while (v.len && (v.ptr[0] == ' ' || v.ptr[0] == '\t'))
        v.ptr++, v.len--;
    while (v.len && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t'))
        v.len--;
    return v.len == n && strncasecmp(v.ptr, s, n) == 0;
}

/* What the header section said about framing, from llhttp or from the fast path. */
typedef struct {
    uint8_t http_major, http_minor;
    unsigned method; /* llhttp's method number */
    bool keep_alive, chunked, has_length;
    uint64_t content_length;
    /* The Host headers, counted by the fast path, which leaves none of the other headers checked
     * by headers_finish (Transfer-Encoding, Expect) in a request it takes; -1: headers_finish
     * looks (llhttp, or the fast path having seen an Expect). */
    int hosts;
} head_t;

/* Every method llhttp knows, by number, with its length: llhttp_method_name's strings, without
 * the call and the strlen. */
static const fa_str_t method_names[] = {
#define XX(num, name, string) [num] = {#string, sizeof(#string) - 1},
    HTTP_ALL_METHOD_MAP(XX)
#undef XX
};

static fa_str_t method_name(unsigned m)
{
    if (m < FA_ARRAY_SIZE(method_names) && method_names[m].ptr)
        return method_names[m];
    /* a method of a newer llhttp than the table was built from */
    const char *s = llhttp_method_name((llhttp_method_t)m);
    return (fa_str_t){s, strlen(s)};
}

/*
 * A body of length bytes that will not stay in the read buffer: takes its memory now, before a
 * 100 Continue invites it, so that the limits refuse it whole or not at all. Returns 0, or -1
 * having rejected the request.
 */
static int take_body_memory(fa_conn_t *c, size_t length)
{
    const char *msg;
    int st = fa__conn_mem_admit(c, length, &msg);
    if (st)
        return reject(c, st, msg);
    c->req.body.ptr = fa_pool_alloc(&c->pool, length);
    c->body_cap = length;
    return 0;
}

/*
 * The second half of headers_complete, once the request line is stored: the header checks, the
 * body limit, routing, the memory of a large body and "Expect: 100-continue". The fast path,
 * which stores the request line itself, joins here. Inlined (and body_add too) so that in the
 * fast path what a plain request settles folds away: 3,017 instructions per POST /event from the
 * read callback on against 3,067 with the two called (callgrind, perf/bench_inproc).
 */
static inline __attribute__((always_inline)) int headers_finish(fa_conn_t *c, const head_t *p)
{
    fa_req_t *r = &c->req;
    const fa_config_t *cfg = c->worker->config;
    bool chunked = p->chunked;
    unsigned hosts = p->hosts > 0 ? (unsigned)p->hosts : 0;
    for (unsigned i = 0; p->hosts < 0 && i < r->nheaders; i++) {
        fa_header_t *h = &r->headers[i];
        if (h->name.len == 4 && strncasecmp(h->name.ptr, "host", 4) == 0) {
            hosts++;
        } else if (h->name.len == 17 && strncasecmp(h->name.ptr, "transfer-encoding", 17) == 0) {
            /* Only "chunked" alone is supported; llhttp already refuses a body framed by both
             * Content-Length and Transfer-Encoding. */
            if (!token_eq(h->value, "chunked"))
                return reject(c, 501, "unsupported transfer coding");
        } else if (h->name.len == 6 && strncasecmp(h->name.ptr, "expect", 6) == 0) {
            if (!token_eq(h->value, "100-continue"))
                return reject(c, 417, "unsupported expectation");
            r->expect_continue = p->http_minor >= 1;
        }
    }
    /* RFC 9112 3.2 asks for 400 when an HTTP/1.1 request has no Host or several. Several is
     * refused (it is how requests are smuggled past proxies); a missing one is tolerated, as
     * Node's server does, since nothing here routes by host. */
    if (hosts > 1)
        return reject(c, 400, "more than one Host header");
    if (p->has_length) {
        r->content_length = p->content_length;
        if (p->content_length > cfg->limits.body_bytes)
            return reject(c, 413, "request body too large");
    }
    bool has_body = chunked || (p->has_length && p->content_length > 0);
    /* Routed now, so that a route can take its body as it arrives (batches). */
    fa_app_begin(c->worker->app, r);
    if (has_body && !chunked && p->content_length > c->rcap / 2 && !fa_app_streams_body(r) &&
        take_body_memory(c, (size_t)p->content_length) != 0)
        return -1;
    if (r->expect_continue && has_body) {
        /* Sent even if the body has started arriving: RFC 9110 allows it, clients ignore it. */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        fa__conn_write_bytes(c, cont, sizeof(cont) - 1);
    }
    c->state = FA_CONN_BODY;
    r->action = "reading request body";
    return 0;
}

/* The request line's method and what follows from it, for both parsers. */
static inline void store_method(fa_req_t *r, const head_t *p, fa_str_t name)
{
    r->method = p->method;
    r->method_str = name;
    r->head = p->method == HTTP_HEAD;
    r->keep_alive = p->keep_alive;
}

/* Path and query of an origin-form target t whose first '?' is q (NULL: none). */
static inline void store_path_query(fa_req_t *r, fa_str_t t, const char *q)
{
    if (q) {
        r->path = (fa_str_t){t.ptr, (size_t)(q - t.ptr)};
        r->query = (fa_str_t){q + 1, t.len - r->path.len - 1};
    } else {
        r->path = t;
        r->query = (fa_str_t){t.ptr + t.len, 0};
    }
}

/*
 * Runs once llhttp has parsed the header section: checks the version and the target, splits the
 * target into path and query, then the rest (headers_finish).
 */
static int headers_complete(fa_conn_t *c, const head_t *p)
{
    fa_req_t *r = &c->req;

    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    if (p->http_major != 1)
        return reject(c, 505, "HTTP version not supported");
    store_method(r, p, method_name(p->method));
    fa_str_t t = r->target;
    if (t.len > 7 && (t.ptr[0] | 0x20) == 'h' &&
        (strncasecmp(t.ptr, "http://", 7) == 0 || strncasecmp(t.ptr, "https://", 8) == 0)) {
        /* absolute-form (RFC 9112 3.2.2): a server must accept it; the authority is dropped */
        const char *auth = memchr(t.ptr, '/', t.len) + 2;
        const char *slash = memchr(auth, '/', (size_t)(t.ptr + t.len - auth));
        const char *qm = memchr(auth, '?', (size_t)(t.ptr + t.len - auth));
        if (qm && (!slash || qm < slash))
            slash = qm;
        t = slash ? (fa_str_t){slash, (size_t)(t.ptr + t.len - slash)} : FA_STR_LIT("/");
    } else if (t.len == 0 || t.ptr[0] != '/') {
        /* '*' (OPTIONS) goes on to routing, which answers it; anything else is malformed */
        if (!(t.len == 1 && t.ptr[0] == '*' && p->method == HTTP_OPTIONS))
            return reject(c, 400, "invalid request target");
    }
    store_path_query(r, t, memchr(t.ptr, '?', t.len));
    return headers_finish(c, p);
}

static int on_headers_complete(llhttp_t *p)
{
    head_t h = {
        .http_major = p->http_major,
        .http_minor = p->http_minor,
        .method = p->method,
        .keep_alive = llhttp_should_keep_alive(p),
        .chunked = (p->flags & F_CHUNKED) != 0,
        .has_length = (p->flags & F_CONTENT_LENGTH) != 0,
        .content_length = p->content_length,
        .hosts = -1,
    };
    return headers_complete(conn_of(p), &h);
}

/* Body bytes [at, at+len) of the request: checked against the limit, offered to a route that
 * streams its body, else kept (a view while contiguous in the read buffer, else joined in the
 * pool). */
static inline __attribute__((always_inline)) int body_add(fa_conn_t *c, const char *at, size_t len)
{
    fa_req_t *r = &c->req;
    size_t limit = c->worker->config->limits.body_bytes;
    if (r->body.len + c->streamed + len > limit)
        return reject(c, 413, "request body too large");
    const char *msg = NULL;
    int st = fa_app_body(r, at, len, &msg);
    if (st == 1) {
        c->streamed += len; /* consumed as it came: only counted against the limit */
        return 0;
    }
    if (st != 0)
        return reject(c, st, msg);
    if (r->body.len == 0 && c->body_cap == 0) {
        r->body.ptr = at;
        r->body.len = len;
    } else if (c->body_cap == 0 && r->body.ptr + r->body.len == at) {
        r->body.len += len;
    } else {
        /* Not contiguous (chunked, or moved out of the read buffer): join in the pool. */
        if (r->body.len + len > c->body_cap) {
            size_t cap = FA_MAX(c->body_cap * 2, r->body.len + len);
            if (r->content_length != UINT64_MAX && r->content_length <= limit)
                cap = FA_MAX(cap, (size_t)r->content_length);
            cap = FA_MIN(FA_MAX(cap, (size_t)1024), limit);
            st = fa__conn_mem_admit(c, cap, &msg);
            if (st)
                return reject(c, st, msg);
            char *nb = fa_pool_alloc(&c->pool, cap);
            memcpy(nb, r->body.ptr, r->body.len);
            r->body.ptr = nb;
            c->body_cap = cap;
        }
        memcpy((char *)r->body.ptr + r->body.len, at, len);
        r->body.len += len;
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    return body_add(conn_of(p), at, len);
}

/* The request is whole: handle it before parsing further (llhttp pauses here). */
static void message_complete(fa_conn_t *c)
{
    c->state = FA_CONN_HANDLING;
}

static int on_message_complete(llhttp_t *p)
{
    fa_conn_t *c = conn_of(p);
    /* A "Connection: close" in a chunked body's trailer section: llhttp takes it and will parse
     * nothing more on this connection, so answer with Connection: close and end it here, as if it
     * had been in the header section (the fast path never sees trailers). */
    if (c->req.keep_alive && !llhttp_should_keep_alive(p))
        c->req.keep_alive = false;
    message_complete(c);
    return HPE_PAUSED;
}

const llhttp_settings_t fa__http_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- the fast path ---- */

/* Header name bytes (RFC 9110 tchar). */
static const bool name_char[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

#define FAST_MAX_HEADERS 32

/* n bytes at s equal lower, ASCII case aside. lower holds only lowercase letters and '-', which
 * all have 0x20 set: OR-ing 0x20 into a name or value byte matches exactly the two cases of a
 * letter (and '-' alone, since a carriage return never reaches here). */
static inline bool lower_eq(const char *s, const char *lower, size_t n)
{
    /* Two overlapping words of 8 or 4 bytes: the first and the last. */
    if (n >= 8 && n <= 16) {
        uint64_t a, b, x, y, mask = 0x2020202020202020u;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(&x, lower, 8);
        memcpy(&y, lower + n - 8, 8);
        return ((a | mask) == x) & ((b | mask) == y);
    }
    if (n >= 4 && n < 8) {
        uint32_t a, b, x, y, mask = 0x20202020u;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(&x, lower, 4);
        memcpy(&y, lower + n - 4, 4);
        return ((a | mask) == x) & ((b | mask) == y);
    }
    for (size_t i = 0; i < n; i++)
        if ((s[i] | 0x20) != lower[i])
            return false;
    return true;
}

static inline bool name_is(fa_str_t n, const char *lower, size_t len)
{
    return n.len == len && lower_eq(n.ptr, lower, len);
}

/*
 * The scans of the fast path, over bytes that end at end, which they never read at or past:
 *   skip_target  returns the first byte at or after p (or end) that is not a path or query
 *                character of RFC 3986 (unreserved, sub-delims, ':', '@', '/', '?', '%'): '#',
 *                quotes, brackets, bytes >= 0x80 and the like are left to llhttp. *query gets the
 *                first '?' before it, or NULL.
 *   skip_plain_target  does the same for letters, digits and "-./_" alone, with a quarter of the
 *                work: what most targets are made of (or nothing, without SSE2).
 *   scan64       returns two masks of the 64 bytes from p (bit i for byte p + i), which start no
 *                earlier than start, the request's first byte: out, the bytes that are not
 *                visible ASCII or space, and every byte at or past end, so that the first bit
 *                from a header line's start is where the line ends, unless it is a tab; colon,
 *                the ':', and bit 63, which reads as a ':' past the end of any line in the window
 *                (and keeps the mask from running out as lines are taken off it).
 *   skip_line    for a line with a tab, or of 64 bytes or more: returns where the line ends, the
 *                first byte at or after p (or end) that is not visible ASCII, space or tab
 *                (obs-text is left to llhttp), and in *colon the first ':' before it, or that
 *                byte if there is none.
 *   names_ok     says whether the n bytes from p, all before end, are RFC 9110 tchars.
 * The request is at least 16 bytes long (plain_scan checks): see load16.
 */
typedef struct {
    uint64_t out, colon;
} lines_t;

#ifdef __SSE2__
#include <emmintrin.h>

/*
 * The 16 bytes from p, for a scan that must not read at or past end: when fewer than 16 are left,
 * the 16 that end at end instead, which the request's first byte is at or before, and in *shift
 * how many of them lie before p. The scan then takes its movemasks down by *shift, with the bits
 * from 16 up set in its mask of stopping bytes (stop_at), so that end stops it as a byte outside
 * its set would.
 */
static inline __m128i load16(const char *p, const char *end, unsigned *shift)
{
    const char *at = p;
    *shift = 0;
    if (FA_UNLIKELY(end - p < 16)) {
        at = end - 16;
        *shift = (unsigned)(16 - (end - p));
    }
    return _mm_loadu_si128((const __m128i *)(const void *)at);
}

/* Where a scan stops among the 16 bytes from p, given the bytes outside its set (a movemask):
 * 16 if none is and all 16 were there (shift 0), and the scan goes on 16 bytes further. */
static inline unsigned stop_at(unsigned outside, unsigned shift)
{
    return (unsigned)__builtin_ctz((outside | 0xffff0000u) >> shift);
}

/* The bytes of v in the n values from lo: v + (0x80 - lo) < -128 + n as signed bytes (the range
 * moves to the bottom of the signed bytes, and nothing else lands there). */
#define IN_RANGE(v, lo, n)                                                                         \
    _mm_cmplt_epi8(_mm_add_epi8((v), _mm_set1_epi8((char)(0x80 - (lo)))), _mm_set1_epi8(-128 + (n)))

static inline const char *skip_plain_target(const char *p, const char *end)
{
    for (;;) {
        unsigned shift;
        __m128i v = load16(p, end, &shift);
        __m128i in = IN_RANGE(_mm_or_si128(v, _mm_set1_epi8(0x20)), 'a', 26);
        in = _mm_or_si128(in, IN_RANGE(v, '-', 13));
        in = _mm_or_si128(in, _mm_cmpeq_epi8(v, _mm_set1_epi8('_')));
        unsigned i = stop_at(~(unsigned)_mm_movemask_epi8(in) & 0xffff, shift);
        p += i;
        if (i < 16)
            return p;
    }
}

static inline const char *skip_target(const char *p, const char *end, const char **query)
{
    *query = NULL;
    for (;;) {
        unsigned shift;
        __m128i v = load16(p, end, &shift);
        /* Outside: controls, space, DEL and bytes >= 0x80 (v + 1 < '"' as signed bytes: DEL and
         * 0xff wrap to the bottom), '"' and '#', '<' and '>' (one bit aside), '[' to '^', '`'
         * and '{' to '}'. */
        __m128i out = _mm_cmplt_epi8(_mm_add_epi8(v, _mm_set1_epi8(1)), _mm_set1_epi8('"'));
        out = _mm_or_si128(out,
                           _mm_cmpeq_epi8(_mm_or_si128(v, _mm_set1_epi8(1)), _mm_set1_epi8('#')));
        out = _mm_or_si128(out,
                           _mm_cmpeq_epi8(_mm_or_si128(v, _mm_set1_epi8(2)), _mm_set1_epi8('>')));
        out = _mm_or_si128(out, IN_RANGE(v, '[', 4));
        out = _mm_or_si128(out, _mm_cmpeq_epi8(v, _mm_set1_epi8('`')));
        out = _mm_or_si128(out, IN_RANGE(v, '{', 3));
        unsigned i = stop_at((unsigned)_mm_movemask_epi8(out), shift);
        unsigned q = (unsigned)__builtin_ctz(
            ((unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('?'))) >> shift) |
            0x10000u);
        if (q < i && !*query)
            *query = p + q;
        p += i;
        if (i < 16)
            return p;
    }
}

/* The bytes of v that are visible ASCII or space: v + 1 > ' ' as signed bytes (DEL and 0xff
 * wrap below); as a movemask. */
static inline unsigned visible_in(__m128i v)
{
    return (unsigned)_mm_movemask_epi8(
        _mm_cmpgt_epi8(_mm_add_epi8(v, _mm_set1_epi8(1)), _mm_set1_epi8(' ')));
}

/* The bytes of v in the header value set: those, and tab. */
static inline unsigned value_in(__m128i v)
{
    return visible_in(v) | (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\t')));
}

/* The other bytes: controls but tab, DEL and bytes >= 0x80. */
static inline unsigned value_out(__m128i v)
{
    return ~value_in(v) & 0xffff;
}

static inline const char *skip_value(const char *p, const char *end)
{
    for (;;) {
        unsigned shift;
        __m128i v = load16(p, end, &shift);
        unsigned i = stop_at(value_out(v), shift);
        p += i;
        if (i < 16)
            return p;
    }
}

static inline const char *skip_line(const char *p, const char *end, const char **colon)
{
    /* The first 16 bytes of the line, where the ':' nearly always is and short lines end. */
    unsigned shift;
    __m128i v = load16(p, end, &shift);
    unsigned i = stop_at(value_out(v), shift);
    unsigned k = (unsigned)__builtin_ctz(
        ((unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(':'))) >> shift) | 0x10000u);
    if (FA_LIKELY(k < i)) { /* among the first 16, before the line ends */
        *colon = p + k;
        return i < 16 ? p + i : skip_value(p + 16, end);
    }
    if (i < 16) {
        *colon = p + i;
        return p + i;
    }
    const char *e = skip_value(p + 16, end), *c = memchr(p + 16, ':', (size_t)(e - (p + 16)));
    *colon = c ? c : e;
    return e;
}

static inline unsigned colons(__m128i v)
{
    return (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(':')));
}

/* The visible and ':' masks of the 64 bytes from at. */
static inline __attribute__((always_inline)) void gather64(const char *at, uint64_t *in,
                                                           uint64_t *colon)
{
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)at);
    __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(at + 16));
    __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(at + 32));
    __m128i d = _mm_loadu_si128((const __m128i *)(const void *)(at + 48));
    *in = visible_in(a) | (uint64_t)visible_in(b) << 16 | (uint64_t)visible_in(c) << 32 |
          (uint64_t)visible_in(d) << 48;
    *colon = colons(a) | (uint64_t)colons(b) << 16 | (uint64_t)colons(c) << 32 |
             (uint64_t)colons(d) << 48;
}

static inline __attribute__((always_inline)) lines_t scan64(const char *p, const char *end,
                                                            const char *start)
{
    /* The bytes in the set are gathered and the mask turned over once: the bytes past end,
     * never gathered, then read as outside it. Nearly always the 64 bytes from p are there to
     * load; else, as load16 does, the 64 that end at end, shifted down by those before p. */
    uint64_t in = 0, colon = 0;
    if (FA_LIKELY(end - p >= 64)) {
        gather64(p, &in, &colon);
    } else if (end - start >= 64 && p < end) {
        unsigned shift = (unsigned)(64 - (end - p)); /* 1..63 */
        gather64(end - 64, &in, &colon);
        in >>= shift;
        colon >>= shift;
    } else {
        for (unsigned at = 0; at < 64 && (size_t)(end - p) > at; at += 16) {
            unsigned shift;
            __m128i v = load16(p + at, end, &shift);
            in |= (uint64_t)(visible_in(v) >> shift) << at;
            colon |= (uint64_t)(colons(v) >> shift) << at;
        }
    }
    return (lines_t){~in, colon | 1ull << 63};
}

static inline bool names_ok(const char *p, size_t n, const char *end)
{
    while (n) {
        unsigned shift, k = n < 16 ? (unsigned)n : 16, want = (1u << k) - 1;
        __m128i v = load16(p, end, &shift);
        /* Letters, '-', '.' and digits, most of any name; name_char judges the others. */
        __m128i in = IN_RANGE(_mm_or_si128(v, _mm_set1_epi8(0x20)), 'a', 26);
        in = _mm_or_si128(
            in, _mm_andnot_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('/')), IN_RANGE(v, '-', 13)));
        for (unsigned m = ~((unsigned)_mm_movemask_epi8(in) >> shift) & want; m; m &= m - 1)
            if (!name_char[(unsigned char)p[__builtin_ctz(m)]])
                return false;
        p += k;
        n -= k;
    }
    return true;
}
#undef IN_RANGE
#else
static const bool target_char[256] = {
    ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 1, ['-'] = 1, ['.'] = 1, ['_'] = 1,
    ['~'] = 1, ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1,
    ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1, [':'] = 1, ['@'] = 1, ['/'] = 1, ['?'] = 1,
    ['%'] = 1,
};

static const bool value_char[256] = {['\t'] = 1, [' ' ... '~'] = 1};

static inline const char *skip_plain_target(const char *p, const char *end)
{
    (void)end;
    return p;
}

static inline const char *skip_target(const char *p, const char *end, const char **query)
{
    const char *s = p;
    while (p < end && target_char[(unsigned char)*p])
        p++;
    *query = memchr(s, '?', (size_t)(p - s));
    return p;
}

static inline const char *skip_line(const char *p, const char *end, const char **colon)
{
    const char *s = p;
    while (p < end && value_char[(unsigned char)*p])
        p++;
    const char *c = memchr(s, ':', (size_t)(p - s));
    *colon = c ? c : p;
    return p;
}

static inline lines_t scan64(const char *p, const char *end, const char *start)
{
    (void)start;
    lines_t w = {0, 0};
    for (unsigned i = 0; i < 64; i++) {
        if ((size_t)(end - p) <= i) {
            w.out |= ~0ull << i;
            break;
        }
        w.out |= (uint64_t)(!value_char[(unsigned char)p[i]] || p[i] == '\t') << i;
        w.colon |= (uint64_t)(p[i] == ':') << i;
    }
    w.colon |= 1ull << 63;
    return w;
}

static inline bool names_ok(const char *p, size_t n, const char *end)
{
    (void)end;
    for (size_t i = 0; i < n; i++)
        if (!name_char[(unsigned char)p[i]])
            return false;
    return true;
}
#endif

/* A CR and an LF at p, in one compare. */
static inline bool is_crlf(const char *p)
{
    static const char crlf[2] = "\r\n";
    uint16_t w, want;
    memcpy(&w, p, 2);
    memcpy(&want, crlf, 2);
    return w == want;
}

/* " HTTP/1.1" and the CRLF that end the request line, at p. */
static inline bool is_version(const char *p, const char *end)
{
    return end - p >= 11 && memcmp(p, " HTTP/1.1\r\n", 11) == 0;
}

/* The line from p read with skip_line: where it ends (CRLF), with *eo and *co as plain_scan keeps
 * them; NULL if it does not end in CRLF. */
static const char *whole_line(const char *p, const char *end, size_t *eo, size_t *co)
{
    const char *colon, *e = skip_line(p, end, &colon);
    if (end - e < 2 || !is_crlf(e))
        return NULL;
    *eo = (size_t)(e - p);
    *co = (size_t)(colon - p);
    return e;
}

/* What the fast path read of a request it takes, but the header views, before it builds it. */
typedef struct {
    head_t h;
    const char *target, *query; /* query: the target's first '?', or NULL */
    size_t target_len;
    const char *body; /* h.content_length bytes, or none without h.has_length */
    unsigned n;       /* header views in the caller's array */
} plain_t;

/*
 * Reads buf[0..len) into *pr and hs[0..FAST_MAX_HEADERS) if it starts with a whole request in the
 * plain shape (see fa__http_parse_fast), and returns its length; else returns 0. Builds nothing.
 * It takes exactly what the byte-by-byte scan it replaces took, and reads it the same.
 *
 * A header line is "name:", optional whitespace, a value, CRLF. Every byte of it before the CR is
 * visible ASCII, space or tab, so the first byte outside that set from the line's start is where
 * it ends (and must be a CR followed by an LF), and the first ':' before it ends the name, which
 * must then be a token; the whitespace and the value lie between the ':' and the CR, which stops
 * the loop that skips the whitespace without a bound. The masks of a 64-byte window (scan64)
 * give both positions for every line in it, for about one SIMD instruction a byte.
 */
static inline __attribute__((always_inline)) size_t plain_scan(const char *buf, size_t len,
                                                               plain_t *pr, fa_header_t *hs)
{
    const char *p = buf, *end = buf + len;
    head_t *h = &pr->h;
    unsigned method;
    /* The shortest request taken, "GET / HTTP/1.1\r\n\r\n", has 18 bytes: the method compares
     * below read at most 8, and the scans' 16-byte loads always have 16 to read. */
    if (len < 18)
        return 0;
#define METHOD(text, m)                                                                            \
    if (memcmp(p, text, sizeof(text) - 1) == 0) {                                                  \
        method = m;                                                                                \
        p += sizeof(text) - 1;                                                                     \
    }
    METHOD("POST ", HTTP_POST)
    else METHOD("GET ", HTTP_GET)
    else switch (p[0]) {
    case 'P': METHOD("PUT ", HTTP_PUT) else METHOD("PATCH ", HTTP_PATCH) break;
    case 'H': METHOD("HEAD ", HTTP_HEAD) break;
    case 'D': METHOD("DELETE ", HTTP_DELETE) break;
    case 'O': METHOD("OPTIONS ", HTTP_OPTIONS) break;
    }
#undef METHOD
    if (p == buf || *p != '/')
        return 0;
    /* Most targets run in the plain characters up to " HTTP/1.1"; the others, from where those
     * stop, in the whole set (which, with no '?' among the plain characters, finds the query). */
    const char *target = p;
    p = skip_plain_target(p, end);
    pr->query = NULL;
    if (!is_version(p, end)) {
        p = skip_target(p, end, &pr->query);
        if (!is_version(p, end))
            return 0;
    }
    pr->target = target;
    pr->target_len = (size_t)(p - target);
    p += 11;

    /* The fields below change only on the few headers that say something about framing. */
    *h = (head_t){.http_major = 1, .http_minor = 1, .method = method, .keep_alive = true};
    fa_header_t *to = hs;
    /* The lines are read through the masks of a window of 64 bytes (scan64), shifted as lines
     * are taken so that bit 0 is p: the first bit of w.out is where the line at p ends, the first
     * bit of w.colon its first ':' if that comes before. A line that does not end in what is
     * left of the window gets a window of its own. */
    lines_t w = scan64(p, end, buf);
    for (;;) {
        size_t eo, co; /* from p: where the line ends; its first ':', if before eo */
        const char *e;
        if (FA_LIKELY(w.out)) {
            eo = (unsigned)__builtin_ctzll(w.out);
            e = p + eo;
            if (FA_LIKELY(end - e >= 2 && is_crlf(e))) {
                if (eo == 0) {
                    p += 2; /* the empty line that ends the header section */
                    break;
                }
                co = (unsigned)__builtin_ctzll(w.colon);
            } else if (e < end && *e == '\t') {
                e = whole_line(p, end, &eo, &co); /* a tab, which scan64 stops at */
                if (!e)
                    return 0;
            } else {
                return 0;
            }
        } else {
            w = scan64(p, end, buf);
            if (FA_LIKELY(w.out))
                continue;
            e = whole_line(p, end, &eo, &co); /* a line of 64 bytes or more */
            if (!e)
                return 0;
        }
        /* A non-empty name and a ':' before the CR. */
        if (co - 1 >= eo - 1 || to == hs + FAST_MAX_HEADERS)
            return 0;
        const char *colon = p + co;
        /* Optional whitespace, then a value that is neither empty nor ends in whitespace. Between
         * the ':' and the CR are only visible ASCII, space and tab: at or below ' ', only the
         * last two, and the CR stops the loop. Nearly always one space. */
        const char *value = colon + 1;
        value += *value == ' ';
        if (FA_UNLIKELY((unsigned char)*value <= ' '))
            while (*value == ' ' || *value == '\t')
                value++;
        if (value == e || (unsigned char)e[-1] <= ' ')
            return 0;
        fa_str_t nm = {p, co}, v = {value, (size_t)(e - value)};
        p = e + 2;
        if (eo + 2 < 64) {
            w.out >>= eo + 2;
            w.colon >>= eo + 2;
        } else {
            w.out = 0; /* a new window at p */
        }
        /* Each header is classified here, once, by its length first (the three that nearly every
         * request with a body carries, then the others): headers_complete then has only the Host
         * count left to check. A name matched here is a token (letters and '-'), the others are
         * checked after. */
        bool known = false;
        if (nm.len == 14) {
            if ((known = name_is(nm, "content-length", 14))) {
                if (h->has_length || v.len > 15)
                    return 0;
                uint64_t length = 0;
                const char *d = v.ptr; /* at least one byte */
                do {
                    unsigned digit = (unsigned)(unsigned char)*d - '0';
                    if (digit > 9)
                        return 0;
                    length = length * 10 + digit;
                } while (++d < e);
                h->has_length = true;
                h->content_length = length;
            }
        } else if (nm.len == 4) {
            if ((known = name_is(nm, "host", 4)) && h->hosts >= 0)
                h->hosts++;
        } else if (nm.len == 12) {
            known = name_is(nm, "content-type", 12);
        } else {
            switch (nm.len) {
            case 6:
                if ((known = name_is(nm, "expect", 6)))
                    h->hosts = -1; /* rare: headers_finish checks every header itself */
                break;
            case 7:
                if (name_is(nm, "upgrade", 7))
                    return 0;
                break;
            case 10:
                if ((known = name_is(nm, "connection", 10))) {
                    if (name_is(v, "close", 5))
                        h->keep_alive = false;
                    else if (!name_is(v, "keep-alive", 10))
                        return 0;
                }
                break;
            case 16:
                if (name_is(nm, "proxy-connection", 16))
                    return 0;
                break;
            case 17:
                if (name_is(nm, "transfer-encoding", 17))
                    return 0;
                break;
            }
        }
        if (!known && !names_ok(nm.ptr, nm.len, end))
            return 0;
        *to++ = (fa_header_t){nm, v};
    }
    if (h->content_length > (uint64_t)(end - p))
        return 0; /* the body is still arriving */
    pr->n = (unsigned)(to - hs);
    pr->body = p;
    return (size_t)(p - buf) + (size_t)h->content_length;
}

/*
 * Takes one whole request from buf[0..len) without llhttp when it is in the plain shape nearly
 * every client sends: a request line "METHOD /target HTTP/1.1" with a common method, token header
 * names, single-line values of visible ASCII, CRLF line ends, a Content-Length (or no body) and
 * no Transfer-Encoding, Upgrade or unusual Connection, with the whole body already buffered. It
 * first checks all of that (plain_scan) and only then builds the request as llhttp's callbacks
 * would, with the same views and the same refusals in the same order (the header views are stored
 * in one go when the header count is within limits.max_headers; otherwise the callbacks run one
 * by one and refuse where llhttp would), so the request is what llhttp would have built. Anything
 * else, including a request still arriving, returns 0 having done nothing, and llhttp parses it
 * from its first byte. Only runs between requests (the parser is at a message boundary, where
 * skipping whole messages leaves it consistent). Returns the bytes taken; *refused when a callback
 * refused the request, which has then been answered with an error as llhttp's HPE_USER would have
 * been.
 */
size_t fa__http_parse_fast(fa_conn_t *c, const char *buf, size_t len, bool *refused)
{
    plain_t pr;
    fa_header_t hs[FAST_MAX_HEADERS];
    size_t taken = plain_scan(buf, len, &pr, hs);
    if (!taken)
        return 0;

    /* A well-formed request llhttp would take as it is: what its callbacks would do, in its
     * order. */
    llhttp_t *lp = &c->parser;
    fa_req_t *r = &c->req;
    const fa_config_t *cfg = c->worker->config;
    unsigned n = pr.n;
    (void)on_message_begin(lp);
    /* on_url, with the target view empty: the request was reset when the previous one ended */
    fa_str_t t = {pr.target, pr.target_len};
    r->target = t;
    if (t.len > cfg->limits.uri_bytes) {
        reject(c, 414, "request URI too long");
        goto refuse;
    }
    if (n - 1 < cfg->limits.max_headers) { /* 1 <= n <= max_headers */
        /* What on_header_field and on_header_value would store, header by header (every value
         * here is non-empty), in an array of exactly n (the request has none yet): the whole
         * header section is here, so none will be added, and the request touches fewer lines of
         * its pool. */
        fa_header_t *to = fa_pool_alloc(&c->pool, n * sizeof(*to));
        for (unsigned i = 0; i < n; i++)
            to[i] = hs[i];
        r->headers = to;
        r->_headers_cap = n;
        r->nheaders = n;
        c->hdr_phase = 2;
    } else {
        for (unsigned i = 0; i < n; i++) {
            if (on_header_field(lp, hs[i].name.ptr, hs[i].name.len) != 0 ||
                on_header_value(lp, hs[i].value.ptr, hs[i].value.len) != 0)
                goto refuse;
        }
    }
    /* headers_complete, for a request the scan knows to be HTTP/1.1 with a target in origin form
     * whose '?' it found. */
    r->http_major = 1;
    r->http_minor = 1;
    store_method(r, &pr.h, method_names[pr.h.method]);
    store_path_query(r, t, pr.query);
    /* headers_finish, then on_body with the whole body (both inlined here). */
    if (headers_finish(c, &pr.h) != 0 ||
        (pr.h.content_length && body_add(c, pr.body, (size_t)pr.h.content_length) != 0))
        goto refuse;
    message_complete(c);
    c->worker->stats.requests_fast++;
    return taken;
refuse:
    *refused = true;
    fa__http_error(c, HPE_USER);
    return taken;
}

/*
 * The read buffer is full in the middle of a request's body: copy what the request still points
 * at in the buffer into its pool, so the whole buffer can be reused.
 */
void fa__http_detach(fa_conn_t *c)
{
    fa_req_t *r = &c->req;
    const char *lo = c->rbuf, *hi = c->rbuf + c->rcap;
#define IN_RBUF(v) ((v).len && (v).ptr >= lo && (v).ptr < hi)
#define DETACH(v)                                                                                  \
    do {                                                                                           \
        if (IN_RBUF(v))                                                                            \
            (v).ptr = fa_pool_strndup(&c->pool, (v).ptr, (v).len);                                 \
    } while (0)
    fa_str_t old_target = r->target;
    DETACH(r->target);
    if (old_target.ptr != r->target.ptr) {
        /* path, query and parameters are views into the target (or static strings) */
#define MOVE(v)                                                                                    \
    do {                                                                                           \
        if ((v).ptr >= old_target.ptr && (v).ptr <= old_target.ptr + old_target.len)             \
            (v).ptr = r->target.ptr + ((v).ptr - old_target.ptr);                                  \
    } while (0)
        MOVE(r->path);
        MOVE(r->query);
        for (unsigned i = 0; i < r->nparams; i++)
            MOVE(r->param_values[i]);
#undef MOVE
    }
    for (unsigned i = 0; i < r->nheaders; i++) {
        DETACH(r->headers[i].name);
        DETACH(r->headers[i].value);
    }
    if (IN_RBUF(r->body)) {
        size_t cap = r->body.len;
        if (r->content_length != UINT64_MAX)
            cap = FA_MAX(cap, (size_t)r->content_length);
        cap = FA_MAX(cap, (size_t)1024);
        char *nb = fa_pool_alloc(&c->pool, cap);
        memcpy(nb, r->body.ptr, r->body.len);
        r->body.ptr = nb;
        c->body_cap = cap;
    }
#undef DETACH
#undef IN_RBUF
    c->req_in_rbuf = false;
}

/* The read buffer's bytes moved from old_base to new_base (compaction): move the views too. */
void fa__http_rebase(fa_conn_t *c, const char *old_base, const char *new_base)
{
    fa_req_t *r = &c->req;
    const char *lo = old_base, *hi = old_base + c->rcap;
#define REBASE(v)                                                                                  \
    do {                                                                                           \
        if ((v).ptr >= lo && (v).ptr <= hi)                                                        \
            (v).ptr = new_base + ((v).ptr - old_base);                                             \
    } while (0)
    REBASE(r->target);
    REBASE(r->path);
    REBASE(r->query);
    for (unsigned i = 0; i < r->nparams; i++)
        REBASE(r->param_values[i]);
    for (unsigned i = 0; i < r->nheaders; i++) {
        REBASE(r->headers[i].name);
        REBASE(r->headers[i].value);
    }
    if (c->body_cap == 0)
        REBASE(r->body);
#undef REBASE
}

/* Maps a parser error to the status the client gets. */
void fa__http_error(fa_conn_t *c, llhttp_errno_t err)
{
    int status = 400;
    const char *msg = llhttp_get_error_reason(&c->parser);
    if (c->err_status) {
        /* One of our callbacks refused the request (llhttp reports HPE_USER or HPE_CB_*). */
        status = c->err_status;
        msg = c->err_msg;
    } else switch (err) {
    case HPE_INVALID_VERSION:
        status = 505;
        msg = "HTTP version not supported";
        break;
    case HPE_INVALID_TRANSFER_ENCODING:
        status = 501;
        msg = "unsupported transfer coding";
        break;
    default:
        if (!msg || !*msg)
            msg = llhttp_errno_name(err);
        break;
    }
    fa_log_debug("fd %d: %s: %d %s", c->fd, c->req.action, status, msg);
    c->req.close_after = true;
    c->req.keep_alive = false;
    if (status == 503) /* the worker's memory limit: it passes as requests finish */
        fa_req_add_header(&c->req, FA_STR_LIT("Retry-After"), FA_STR_LIT("1"));
    fa_req_respond_error(&c->req, status, msg);
}
