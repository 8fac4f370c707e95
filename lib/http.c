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
static void view_append(fa_conn_t *c, fa_str_t *v, const char *at, size_t len)
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
     * below (Transfer-Encoding, Expect) in a request it takes; -1: headers_complete looks. */
    int hosts;
} head_t;

/*
 * Runs once the header section is complete: checks the version, the framing and the body limit,
 * answers "Expect: 100-continue", and splits the target into path and query.
 */
static int headers_complete(fa_conn_t *c, const head_t *p)
{
    fa_req_t *r = &c->req;
    const fa_config_t *cfg = c->worker->config;

    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    if (p->http_major != 1)
        return reject(c, 505, "HTTP version not supported");
    r->method = p->method;
    r->method_str.ptr = llhttp_method_name((llhttp_method_t)p->method);
    r->method_str.len = strlen(r->method_str.ptr);
    r->head = p->method == HTTP_HEAD;
    r->keep_alive = p->keep_alive;
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
    const char *q = memchr(t.ptr, '?', t.len);
    if (q) {
        r->path = (fa_str_t){t.ptr, (size_t)(q - t.ptr)};
        r->query = (fa_str_t){q + 1, t.len - r->path.len - 1};
    } else {
        r->path = t;
        r->query = (fa_str_t){t.ptr + t.len, 0};
    }

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
    if (has_body && !chunked && p->content_length > c->rcap / 2 && !fa_app_streams_body(r)) {
        /* A body that will not stay in the read buffer: take its memory now, before a
         * 100 Continue invites it, so that the limits refuse it whole or not at all. */
        const char *msg;
        int st = fa__conn_mem_admit(c, (size_t)p->content_length, &msg);
        if (st)
            return reject(c, st, msg);
        r->body.ptr = fa_pool_alloc(&c->pool, (size_t)p->content_length);
        c->body_cap = (size_t)p->content_length;
    }
    if (r->expect_continue && has_body) {
        /* Sent even if the body has started arriving: RFC 9110 allows it, clients ignore it. */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        fa__conn_write_bytes(c, cont, sizeof(cont) - 1);
    }
    c->state = FA_CONN_BODY;
    r->action = "reading request body";
    return 0;
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

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    fa_conn_t *c = conn_of(p);
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

/* Request-target bytes taken here: path and query characters of RFC 3986 (unreserved,
 * sub-delims, ':', '@', '/', '?', '%'). Anything else ('#', quotes, brackets, bytes >= 0x80)
 * is left to llhttp. */
static const bool target_char[256] = {
    ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 1, ['-'] = 1, ['.'] = 1, ['_'] = 1,
    ['~'] = 1, ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1,
    ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1, [':'] = 1, ['@'] = 1, ['/'] = 1, ['?'] = 1,
    ['%'] = 1,
};

/* Header value bytes: visible ASCII, space and tab (obs-text is left to llhttp). */
static const bool value_char[256] = {['\t'] = 1, [' ' ... '~'] = 1};

#define FAST_MAX_HEADERS 32

/* n bytes at s equal lower, ASCII case aside. lower holds only lowercase letters and '-': for
 * those, OR-ing 0x20 into a name or value byte matches exactly the two cases of the letter (and
 * '-' alone, since a carriage return never reaches here). */
static inline bool lower_eq(const char *s, const char *lower, size_t n)
{
    if (n >= 4 && n <= 16) {
        /* Two overlapping words of 4 or 8 bytes: the first and the last. */
        size_t w = n >= 8 ? 8 : 4;
        uint64_t a = 0, b = 0, x = 0, y = 0, mask = 0x2020202020202020u;
        memcpy(&a, s, w);
        memcpy(&b, s + n - w, w);
        memcpy(&x, lower, w);
        memcpy(&y, lower + n - w, w);
        return ((a | mask) == (x | mask)) & ((b | mask) == (y | mask));
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

#ifdef __SSE2__
#include <emmintrin.h>

/* The first byte at or after p that is not a letter, digit or '-' (most of a header name), 16 at
 * a time while 16 remain; the caller's table loop takes it from there. */
static inline const char *skip_name(const char *p, const char *end)
{
    const __m128i a = _mm_set1_epi8('a' - 1), z = _mm_set1_epi8('z' + 1);
    const __m128i d0 = _mm_set1_epi8('0' - 1), d9 = _mm_set1_epi8('9' + 1);
    const __m128i dash = _mm_set1_epi8('-'), low = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i l = _mm_or_si128(v, low);
        __m128i ok = _mm_and_si128(_mm_cmpgt_epi8(l, a), _mm_cmplt_epi8(l, z)); /* signed: >= 0x80 fails */
        ok = _mm_or_si128(ok, _mm_and_si128(_mm_cmpgt_epi8(v, d0), _mm_cmplt_epi8(v, d9)));
        ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, dash));
        unsigned bad = ~(unsigned)_mm_movemask_epi8(ok) & 0xffff;
        if (bad)
            return p + __builtin_ctz(bad);
        p += 16;
    }
    return p;
}

/* The first byte at or after p that is not visible ASCII or space (a tab included: the caller's
 * table loop takes tabs), 16 at a time while 16 remain. */
static inline const char *skip_value(const char *p, const char *end)
{
    const __m128i sp = _mm_set1_epi8(' '), del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* signed: control bytes and every byte >= 0x80 are below ' ' */
        __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, sp), _mm_cmpeq_epi8(v, del));
        unsigned m = (unsigned)_mm_movemask_epi8(bad);
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
    return p;
}
#else
static inline const char *skip_name(const char *p, const char *end)
{
    (void)end;
    return p;
}

static inline const char *skip_value(const char *p, const char *end)
{
    (void)end;
    return p;
}
#endif

/*
 * Takes one whole request from buf[0..len) without llhttp when it is in the plain shape nearly
 * every client sends: a request line "METHOD /target HTTP/1.1" with a common method, token header
 * names, single-line values of visible ASCII, CRLF line ends, a Content-Length (or no body) and
 * no Transfer-Encoding, Upgrade or unusual Connection, with the whole body already buffered. It
 * first checks all of that and only then builds the request as llhttp's callbacks would, with the
 * same views and the same refusals in the same order (the header views are stored in one go when
 * the header count is within limits.max_headers; otherwise the callbacks run one by one and
 * refuse where llhttp would), so the request is what llhttp would have built. Anything else,
 * including a request still arriving, returns 0 having done nothing, and llhttp parses it from
 * its first byte. Only runs between requests (the parser is at a message boundary, where skipping
 * whole messages leaves it consistent). Returns the bytes taken; *refused when a callback refused
 * the request, which has then been answered with an error as llhttp's HPE_USER would have been.
 */
size_t fa__http_parse_fast(fa_conn_t *c, const char *buf, size_t len, bool *refused)
{
    const char *p = buf, *end = buf + len;
    head_t h = {.http_major = 1, .http_minor = 1, .keep_alive = true};
    if (len < 8)
        return 0;
#define METHOD(text, m)                                                                            \
    if (memcmp(p, text, sizeof(text) - 1) == 0) {                                                  \
        h.method = m;                                                                              \
        p += sizeof(text) - 1;                                                                     \
    }
    switch (p[0]) {
    case 'G': METHOD("GET ", HTTP_GET) break;
    case 'P':
        METHOD("POST ", HTTP_POST) else METHOD("PUT ", HTTP_PUT) else METHOD("PATCH ", HTTP_PATCH)
        break;
    case 'H': METHOD("HEAD ", HTTP_HEAD) break;
    case 'D': METHOD("DELETE ", HTTP_DELETE) break;
    case 'O': METHOD("OPTIONS ", HTTP_OPTIONS) break;
    }
#undef METHOD
    if (p == buf)
        return 0;
    const char *target = p;
    if (p == end || *p != '/')
        return 0;
    while (p < end && target_char[(unsigned char)*p])
        p++;
    size_t target_len = (size_t)(p - target);
    if (end - p < 11 || memcmp(p, " HTTP/1.1\r\n", 11) != 0)
        return 0;
    p += 11;

    fa_header_t hs[FAST_MAX_HEADERS];
    unsigned n = 0;
    int hosts = 0;
    for (;;) {
        if (end - p < 2)
            return 0;
        if (p[0] == '\r') {
            if (p[1] != '\n')
                return 0;
            p += 2;
            break;
        }
        const char *name = p;
        p = skip_name(p, end);
        while (p < end && name_char[(unsigned char)*p])
            p++;
        if (p == name || p == end || *p != ':' || n == FAST_MAX_HEADERS)
            return 0;
        fa_str_t nm = {name, (size_t)(p - name)};
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *value = p;
        p = skip_value(p, end);
        while (p < end && value_char[(unsigned char)*p])
            p++;
        /* CRLF right after a non-empty value that does not end in whitespace. */
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n' || p == value || p[-1] == ' ' ||
            p[-1] == '\t')
            return 0;
        fa_str_t v = {value, (size_t)(p - value)};
        p += 2;
        /* Each header is classified here, once, by its length first: headers_complete then has
         * only the Host count left to check. */
        switch (nm.len) {
        case 4:
            if (name_is(nm, "host", 4) && hosts >= 0)
                hosts++;
            break;
        case 6:
            if (name_is(nm, "expect", 6))
                hosts = -1; /* rare: headers_complete checks every header itself */
            break;
        case 7:
            if (name_is(nm, "upgrade", 7))
                return 0;
            break;
        case 10:
            if (name_is(nm, "connection", 10)) {
                if (name_is(v, "close", 5))
                    h.keep_alive = false;
                else if (!name_is(v, "keep-alive", 10))
                    return 0;
            }
            break;
        case 14:
            if (name_is(nm, "content-length", 14)) {
                if (h.has_length || v.len > 15)
                    return 0;
                uint64_t cl = 0;
                for (size_t i = 0; i < v.len; i++) {
                    if (v.ptr[i] < '0' || v.ptr[i] > '9')
                        return 0;
                    cl = cl * 10 + (uint64_t)(v.ptr[i] - '0');
                }
                h.has_length = true;
                h.content_length = cl;
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
        hs[n++] = (fa_header_t){nm, v};
    }
    size_t body_len = h.has_length ? (size_t)h.content_length : 0;
    if (h.has_length && h.content_length > (uint64_t)(end - p))
        return 0; /* the body is still arriving */
    h.hosts = hosts;

    /* A well-formed request llhttp would take as it is: the same callbacks, in its order. */
    llhttp_t *lp = &c->parser;
    fa_req_t *r = &c->req;
    *refused = true;
    (void)on_message_begin(lp);
    if (on_url(lp, target, target_len) != 0)
        goto refuse;
    if (n && n <= c->worker->config->limits.max_headers && r->nheaders == 0) {
        /* What on_header_field and on_header_value would store, header by header (every value
         * here is non-empty), in an array of exactly n: the whole header section is here, so
         * none will be added, and the request touches fewer lines of its pool. */
        r->headers = fa_pool_alloc(&c->pool, n * sizeof(*r->headers));
        r->_headers_cap = n;
        memcpy(r->headers, hs, n * sizeof(*hs));
        r->nheaders = n;
        c->hdr_phase = 2;
    } else {
        for (unsigned i = 0; i < n; i++) {
            if (on_header_field(lp, hs[i].name.ptr, hs[i].name.len) != 0 ||
                on_header_value(lp, hs[i].value.ptr, hs[i].value.len) != 0)
                goto refuse;
        }
    }
    if (headers_complete(c, &h) != 0)
        goto refuse;
    if (body_len && on_body(lp, p, body_len) != 0)
        goto refuse;
    message_complete(c);
    *refused = false;
    c->worker->stats.requests_fast++;
    return (size_t)(p + body_len - buf);
refuse:
    fa__http_error(c, HPE_USER);
    return (size_t)(p + body_len - buf);
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
