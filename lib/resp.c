/*
 * resp.c — writing responses into the connection's output buffer, and the request accessors.
 *
 * A response is serialised in one pass into the output buffer (status line, Server and Date from a
 * per-worker cache, Content-Length, Content-Type, extra headers, Connection, body); the connection
 * writes the buffer once the read batch is handled, so pipelined responses leave in one send.
 */
#include "accesslog.h"
#include "buf.h"
#include "conn.h"
#include "config.h"
#include "counters.h"
#include "log.h"
#include "req.h"
#include "worker.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct {
    int status;
    const char *reason;
} status_reason_t;

static const status_reason_t reasons[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *fa_http_reason(int status)
{
    for (size_t i = 0; i < FA_ARRAY_SIZE(reasons); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

static const char wday[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char month[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void fa_worker_update_date(fa_worker_t *w)
{
    int64_t sec = (int64_t)ev_now(w->loop);
    if (sec == w->date_sec && w->head_lines_len)
        return;
    w->date_sec = sec;
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    int n = snprintf(w->head_lines, sizeof(w->head_lines),
                     "Server: %.100s\r\nDate: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
                     w->config->server.name, wday[tm.tm_wday], tm.tm_mday, month[tm.tm_mon],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    w->head_lines_len = (size_t)FA_MIN(n, (int)sizeof(w->head_lines) - 1);
}

#define PUT_LIT(p, s) fa_put((p), (s), sizeof(s) - 1)

/*
 * The start of every response: marks the request answered and settles whether the connection
 * closes after it; the per-worker Server and Date lines are brought up to date.
 */
static bool respond_begin(fa_req_t *r, int status)
{
    fa_conn_t *c = r->conn;
    fa_worker_t *w = r->worker;
    r->responded = true;
    r->status = status;
    bool close = r->close_after || !r->keep_alive || c->want_close;
    if (w->stopping && c->rstart == c->rend)
        close = true; /* draining: this was the last buffered request */
    r->close_after = close;
    fa_worker_update_date(w);
    return close;
}

/* Whether a response with this status carries its body. */
static inline bool sends_body(const fa_req_t *r, int status)
{
    return !r->head && status != 204 && status != 304 && status >= 200;
}

/* The Connection line when needed and the blank line ending the header section. */
static inline char *put_connection(char *p, const fa_req_t *r, bool close)
{
    if (close)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (r->http_minor == 0)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    return PUT_LIT(p, "\r\n");
}

/* "HTTP/1.1 <status> <reason>\r\n" */
static char *put_status_line(char *p, int status)
{
    const char *reason = fa_http_reason(status);
    p = PUT_LIT(p, "HTTP/1.1 ");
    if (status >= 100 && status <= 999) { /* always, in practice: three digits without division loops */
        *p++ = (char)('0' + status / 100);
        *p++ = (char)('0' + status / 10 % 10);
        *p++ = (char)('0' + status % 10);
    } else {
        p = fa_put_uint(p, (uint64_t)status);
    }
    *p++ = ' ';
    p = fa_put(p, reason, strlen(reason));
    return PUT_LIT(p, "\r\n");
}

/* Content-Length, Content-Type when there is one, then the n header lines. */
static char *put_fields(char *p, size_t body_len, fa_str_t ctype, const fa_header_t *h, unsigned n)
{
    p = PUT_LIT(p, "Content-Length: ");
    p = fa_put_uint(p, body_len);
    p = PUT_LIT(p, "\r\n");
    if (ctype.len) {
        p = PUT_LIT(p, "Content-Type: ");
        p = fa_put(p, ctype.ptr, ctype.len);
        p = PUT_LIT(p, "\r\n");
    }
    for (unsigned i = 0; i < n; i++) {
        p = fa_put(p, h[i].name.ptr, h[i].name.len);
        p = PUT_LIT(p, ": ");
        p = fa_put(p, h[i].value.ptr, h[i].value.len);
        p = PUT_LIT(p, "\r\n");
    }
    return p;
}

/* The end of every response once its bytes are in the output buffer: statistics, shared
 * counters, the access log, and the connection goes on. */
static void respond_end(fa_req_t *r, int status, size_t body_bytes)
{
    fa_worker_t *w = r->worker;
    w->stats.responses[status >= 100 && status < 600 ? status / 100 : 0]++;
    if (w->counter_slot) {
        /* Counted now; its latency goes into the histogram at the end of the loop iteration,
         * which sends this response: one clock read for the whole iteration instead of one per
         * request (perf showed the vDSO clock at ~3% of the workers' user time under load). */
        fa_counters_count(w->counter_slot, status);
        if (FA_UNLIKELY(w->nlat == FA_ARRAY_SIZE(w->lat)))
            fa_worker_flush_latency(w);
        w->lat[w->nlat++] = r->start;
    }
    if (w->access)
        fa_accesslog_append(w->access, r, status, body_bytes, ev_now(w->loop));
    fa__conn_request_done(r->conn);
}

void fa_req_respond(fa_req_t *r, int status, fa_str_t ctype, const char *body, size_t len)
{
    fa_conn_t *c = r->conn;
    fa_worker_t *w = r->worker;
    assert(!r->responded);
    if (r->responded)
        return;
    bool close = respond_begin(r, status);
    bool send_body = sends_body(r, status);
    size_t need = 64 + w->head_lines_len + 32 + ctype.len + 40 + (send_body ? len : 0);
    for (unsigned i = 0; i < r->nextra; i++)
        need += r->extra[i].name.len + r->extra[i].value.len + 4;

    char *start = fa__conn_wreserve(c, need), *p = start;
    p = put_status_line(p, status);
    p = fa_put(p, w->head_lines, w->head_lines_len);
    p = put_fields(p, len, ctype, r->extra, r->nextra);
    p = put_connection(p, r, close);
    if (send_body && len)
        p = fa_put(p, body, len);
    c->wlen += (size_t)(p - start);
    respond_end(r, status, send_body ? len : 0);
}

/* The status line and header lines of fa_req_respond that do not change from one request to
 * the next, written once into the arena by the same functions. */
void fa_resp_fixed_init(fa_resp_fixed_t *f, fa_pool_t *arena, int status, fa_str_t ctype,
                        const fa_header_t *headers, unsigned nheaders, fa_str_t body)
{
    assert(status >= 100 && status <= 999 && nheaders <= FA_REQ_MAX_EXTRA_HEADERS);
    *f = (fa_resp_fixed_t){.status = status, .ctype = ctype, .body = body, .headers = headers,
                           .nheaders = nheaders};
    char *line = fa_pool_alloc(arena, 16 + strlen(fa_http_reason(status)));
    f->_status_line = (fa_str_t){line, (size_t)(put_status_line(line, status) - line)};
    size_t need = 40 + ctype.len + 20;
    for (unsigned i = 0; i < nheaders; i++)
        need += headers[i].name.len + headers[i].value.len + 4;
    char *fields = fa_pool_alloc(arena, need);
    f->_fields = (fa_str_t){fields, (size_t)(put_fields(fields, body.len, ctype, headers, nheaders) -
                                             fields)};
}

void fa_req_respond_fixed(fa_req_t *r, const fa_resp_fixed_t *f)
{
    if (r->nextra) {
        /* A stage added headers of its own: they come first, so serialise in full. */
        for (unsigned i = 0; i < f->nheaders; i++)
            fa_req_add_header(r, f->headers[i].name, f->headers[i].value);
        fa_req_respond(r, f->status, f->ctype, f->body.ptr, f->body.len);
        return;
    }
    fa_conn_t *c = r->conn;
    fa_worker_t *w = r->worker;
    assert(!r->responded);
    if (r->responded)
        return;
    bool close = respond_begin(r, f->status);
    bool send_body = sends_body(r, f->status);
    size_t len = send_body ? f->body.len : 0;
    char *start = fa__conn_wreserve(c, f->_status_line.len + w->head_lines_len + f->_fields.len +
                                           32 + len),
         *p = start;
    p = fa_put(p, f->_status_line.ptr, f->_status_line.len);
    p = fa_put(p, w->head_lines, w->head_lines_len);
    p = fa_put(p, f->_fields.ptr, f->_fields.len);
    p = put_connection(p, r, close);
    if (len)
        p = fa_put(p, f->body.ptr, len);
    c->wlen += (size_t)(p - start);
    respond_end(r, f->status, len);
}

void fa_req_respond_error(fa_req_t *r, int status, const char *msg)
{
    char body[512];
    size_t n = 0;
    n += (size_t)snprintf(body, sizeof(body), "{\"error\":\"");
    for (const char *s = msg; *s && n < sizeof(body) - 8; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            body[n++] = '\\';
            body[n++] = (char)ch;
        } else if (ch < 0x20) {
            n += (size_t)snprintf(body + n, sizeof(body) - n, "\\u%04x", ch);
        } else {
            body[n++] = (char)ch;
        }
    }
    n += (size_t)snprintf(body + n, sizeof(body) - n, "\"}");
    fa_req_respond(r, status, FA_STR_LIT("application/json"), body, n);
}

fa_str_t fa_req_header(const fa_req_t *r, const char *name, size_t len)
{
    for (unsigned i = 0; i < r->nheaders; i++)
        if (r->headers[i].name.len == len && strncasecmp(r->headers[i].name.ptr, name, len) == 0)
            return r->headers[i].value;
    return FA_STR_NULL;
}

fa_str_t fa_req_param(const fa_req_t *r, const char *name, size_t len)
{
    for (unsigned i = 0; i < r->nparams; i++)
        if (r->param_names[i].len == len && memcmp(r->param_names[i].ptr, name, len) == 0)
            return r->param_values[i];
    return FA_STR_NULL;
}

void fa_req_add_header(fa_req_t *r, fa_str_t name, fa_str_t value)
{
    if (r->nextra == FA_REQ_MAX_EXTRA_HEADERS) {
        fa_log_warn("dropping response header %.*s: too many", (int)name.len, name.ptr);
        return;
    }
    r->extra[r->nextra++] = (fa_header_t){name, value};
}
