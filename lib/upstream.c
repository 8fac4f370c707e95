/*
 * upstream.c — the HTTP/1.1 client behind the upstream stages; see upstream.h.
 *
 * Objects and lifetimes
 *   fa_upstreams_t (fa_malloc, one per worker) holds one upool_t per configured upstream. A
 *   connection (upconn_t, fa_malloc) belongs to its pool from connect to close and sits on one
 *   of two lists: idle (kept for reuse, watched for the peer closing it) or busy (carrying one
 *   exchange). A call (call_t) lives in the caller's request pool; while it runs it points to
 *   its connection and the connection points back. Whatever ends the exchange (the response, an
 *   error, a timer, cancellation) breaks both links first, then settles the promise or closes the
 *   connection, so neither side is touched after the other has gone.
 *
 * Connections are freed on the spot when closed: libev's ev_io_stop and ev_timer_stop clear
 * pending events, and nothing up the stack holds a connection once its callback returns (the
 * cancel hook runs from fa_future_cancel, never from inside this file's I/O callbacks).
 */
#include "upstream.h"
#include "alloc.h"
#include "log.h"
#include "worker.h"

#include <errno.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 16384

/* Seconds an address that failed a connect is passed over by new connections (while another
 * address has not failed). */
#define FA_UPSTREAM_ADDR_DOWN 10.0

typedef struct upconn upconn_t;
typedef struct call call_t;

typedef struct {
    upconn_t *head;
    unsigned n;
} conn_list_t;

typedef struct {
    const fa_upstream_conf_t *conf;
    fa_worker_t *worker;
    conn_list_t idle, busy;
    size_t rr;               /* next address to connect to */
    ev_tstamp *down_until;   /* per address: passed over until then after a failed connect */
    fa_upstream_stats_t st;
} upool_t;

struct fa_upstreams {
    size_t n;
    upool_t pools[];
};

typedef enum { UC_CONNECTING, UC_WRITING, UC_READING, UC_IDLE } uc_state_t;

struct upconn {
    ev_io io;
    ev_timer timer;
    upool_t *pool;
    const fa_upstream_addr_t *addr;
    upconn_t *prev, *next;
    call_t *call;
    int fd;
    uc_state_t state;
    bool reused; /* this exchange runs on a connection that served one before */
    llhttp_t parser;
};

struct call {
    fa_promise_t promise;
    upool_t *pool;
    fa_pool_t *mem;
    upconn_t *conn;
    const fa_upstream_req_t *rq;
    fa_upstream_req_t rq_copy;
    char *out; /* the serialised request (mem) */
    size_t outlen, outpos;
    fa_upstream_resp_t *resp;
    char *body;
    size_t body_len, body_cap;
    size_t got; /* response bytes read */
    char hname[16];
    size_t hname_len;
    int hphase; /* 0 none, 1 in a field name, 2 in a value */
    bool in_ctype;
    bool complete;
    bool too_big; /* Content-Length above max_response_bytes */
    bool head;
    bool retried;
    const fa_upstream_addr_t *addr; /* the address of the last connect, for messages */
    /* Connecting: the addresses tried so far in this call, the next one, when the call's
     * connect_timeout budget runs out, and the last error (for the message once all failed). */
    unsigned attempts;
    size_t next_addr;
    ev_tstamp connect_deadline;
    int connect_errno;
};

static void on_io(struct ev_loop *loop, ev_io *io, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *t, int revents);
static const llhttp_settings_t settings;

/* ---- lists ---- */

static void list_push(conn_list_t *l, upconn_t *c)
{
    c->prev = NULL;
    c->next = l->head;
    if (l->head)
        l->head->prev = c;
    l->head = c;
    l->n++;
}

static void list_remove(conn_list_t *l, upconn_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    l->n--;
}

/* ---- connections ---- */

static void conn_close(upconn_t *c)
{
    upool_t *p = c->pool;
    struct ev_loop *loop = p->worker->loop;
    ev_io_stop(loop, &c->io);
    ev_timer_stop(loop, &c->timer);
    list_remove(c->state == UC_IDLE ? &p->idle : &p->busy, c);
    close(c->fd);
    p->st.open--;
    fa_free(c);
}

static void conn_watch(upconn_t *c, int events)
{
    struct ev_loop *loop = c->pool->worker->loop;
    if (ev_is_active(&c->io) && (c->io.events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(loop, &c->io);
}

/* (Re)arms the connection's one timer (connect, response or idle) to fire in seconds. With the
 * timer active ev_timer_again moves it within libev's heap instead of a removal and an insertion;
 * the timer repeats, but every expiry closes the connection, which stops it. */
static void conn_timer(upconn_t *c, double seconds)
{
    c->timer.repeat = seconds;
    ev_timer_again(c->pool->worker->loop, &c->timer);
}

/* A new non-blocking connection to address a, on the busy list, its connect timer set to
 * timeout; NULL with errno set when the socket could not even be created or the connect failed
 * at once (a refused connect to a loopback address fails here). */
static upconn_t *conn_open(upool_t *p, const fa_upstream_addr_t *a, double timeout)
{
    int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* best effort */
    if (connect(fd, (const struct sockaddr *)&a->addr, a->addrlen) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    upconn_t *c = fa_calloc(1, sizeof(*c));
    c->pool = p;
    c->addr = a;
    c->fd = fd;
    c->state = UC_CONNECTING;
    ev_io_init(&c->io, on_io, fd, EV_WRITE);
    ev_timer_init(&c->timer, on_timer, timeout, 0.);
    ev_io_start(p->worker->loop, &c->io);
    ev_timer_start(p->worker->loop, &c->timer);
    list_push(&p->busy, c);
    p->st.open++;
    p->st.connects++;
    return c;
}

/* ---- settling a call ---- */

/* Detaches call and connection from each other and closes the connection. */
static void call_drop_conn(call_t *k)
{
    upconn_t *c = k->conn;
    if (!c)
        return;
    k->conn = NULL;
    c->call = NULL;
    conn_close(c);
}

/* Fails the call: its connection is closed (never reused after an error), the failure logged,
 * the future rejected with 502 or fa_err_timeout. */
static void call_fail(call_t *k, bool timeout, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void call_fail(call_t *k, bool timeout, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *where = k->conn ? k->conn->addr->text : k->addr ? k->addr->text : "-";
    fa_log_warn("upstream %s (%s): %.*s %.*s: %s", k->pool->conf->name, where,
                (int)k->rq->method.len, k->rq->method.ptr, (int)FA_MIN(k->rq->target.len, 200),
                k->rq->target.ptr, msg);
    k->pool->st.failures++;
    call_drop_conn(k);
    if (timeout) {
        (void)fa_promise_reject(k->promise, FA_ERROR_STATIC(-ETIMEDOUT, fa_err_timeout));
        return;
    }
    char full[320];
    int n = snprintf(full, sizeof(full), "upstream %s: %s", k->pool->conf->name, msg);
    (void)fa_promise_reject(k->promise,
                            (fa_error_t){502, fa_pool_strndup(k->mem, full, (size_t)n)});
}

/* The response is complete: the connection goes back to the idle pool if the exchange allows
 * it (keep-alive, nothing read past the response, room in the pool), and the future resolves. */
static void call_finish(call_t *k, bool reusable)
{
    upconn_t *c = k->conn;
    upool_t *p = k->pool;
    k->resp->body = (fa_str_t){k->body ? k->body : "", k->body_len};
    k->conn = NULL;
    c->call = NULL;
    if (reusable && llhttp_should_keep_alive(&c->parser) && p->idle.n < p->conf->pool_size) {
        list_remove(&p->busy, c);
        c->state = UC_IDLE;
        list_push(&p->idle, c);
        conn_timer(c, p->conf->idle_timeout); /* on_timer closes it unless a call takes it */
        conn_watch(c, EV_READ);               /* to notice the peer closing it */
    } else {
        conn_close(c);
    }
    (void)fa_promise_resolve(k->promise, FA_VALUE_POOLED(k->resp, sizeof(*k->resp)));
}

/* Address i of k's upstream failed a connect: logged (info: the call goes on to the next address
 * or fails with its own warn line) and passed over by new connections for a while. */
static void addr_failed(call_t *k, size_t i, int err)
{
    upool_t *p = k->pool;
    k->connect_errno = err;
    p->down_until[i] = ev_now(p->worker->loop) + FA_UPSTREAM_ADDR_DOWN;
    fa_log_info("upstream %s: connect to %s: %s", p->conf->name, p->conf->addrs[i].text,
                strerror(err));
}

static void on_cancel(fa_sched_t *sched, void *data)
{
    (void)sched;
    call_drop_conn(data);
}

/* ---- the exchange ---- */

static bool method_is(const fa_upstream_req_t *rq, const char *m)
{
    return rq->method.len == strlen(m) && memcmp(rq->method.ptr, m, rq->method.len) == 0;
}

static char *put(char *o, const char *s, size_t n)
{
    if (n) /* s may be NULL when n is 0 */
        memcpy(o, s, n);
    return o + n;
}

/* Serialises the request for connection c (its Host header depends on the address) into one
 * buffer from the call's pool, written with a single send. */
static void call_build(call_t *k, const upconn_t *c)
{
    const fa_upstream_req_t *rq = k->rq;
    bool with_body = rq->body.len || method_is(rq, "POST") || method_is(rq, "PUT") ||
                     method_is(rq, "PATCH");
    size_t hostlen = strlen(c->addr->host);
    size_t cap = rq->method.len + rq->target.len + hostlen + rq->headers.len + rq->body.len + 96;
    char *start = fa_pool_alloc(k->mem, cap), *o = start;
    o = put(o, rq->method.ptr, rq->method.len);
    *o++ = ' ';
    o = put(o, rq->target.ptr, rq->target.len);
    o = put(o, " HTTP/1.1\r\nHost: ", 17);
    o = put(o, c->addr->host, hostlen);
    o = put(o, "\r\n", 2);
    o = put(o, rq->headers.ptr, rq->headers.len);
    if (with_body) {
        char digits[24], *d = digits + sizeof(digits);
        size_t v = rq->body.len;
        do
            *--d = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        o = put(o, "Content-Length: ", 16);
        o = put(o, d, (size_t)(digits + sizeof(digits) - d));
        o = put(o, "\r\n", 2);
    }
    o = put(o, "\r\n", 2);
    o = put(o, rq->body.ptr, rq->body.len);
    k->out = start;
    k->outlen = (size_t)(o - start);
    k->outpos = 0;
}

static void call_write(call_t *k);

/* Binds call k to connection c and starts (or, for a connecting one, queues) the request. */
static void call_attach(call_t *k, upconn_t *c)
{
    k->conn = c;
    c->call = k;
    llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
    c->parser.data = c;
    k->got = 0;
    k->complete = k->too_big = false;
    k->hphase = 0;
    k->body = NULL;
    k->body_len = k->body_cap = 0;
    *k->resp = (fa_upstream_resp_t){0};
    call_build(k, c);
    if (c->state == UC_CONNECTING)
        return; /* on_io writes once connected */
    c->state = UC_WRITING;
    conn_timer(c, k->pool->conf->response_timeout);
    call_write(k);
}

/* Opens a connection for call k to the next address it has not tried yet, within what is left
 * of its connect_timeout budget: each attempt may use an equal share of the rest (a single
 * address gets all of it), so an address that swallows SYNs leaves time for the others. An
 * address refusing at once is passed over in the same loop; a local shortage (descriptors,
 * memory, ports) fails the call at once. Once every address failed, or the budget is spent,
 * the call fails: 504 when the last attempt timed out, else 502. Returns false after failing
 * the call. */
static bool call_connect(call_t *k)
{
    upool_t *p = k->pool;
    const fa_upstream_conf_t *conf = p->conf;
    ev_tstamp now = ev_now(p->worker->loop);
    while (k->attempts < conf->naddrs) {
        double left = k->connect_deadline - now;
        if (left <= 0) {
            k->connect_errno = ETIMEDOUT;
            break;
        }
        size_t i = k->next_addr++ % conf->naddrs;
        const fa_upstream_addr_t *a = &conf->addrs[i];
        double share = left / (double)(conf->naddrs - k->attempts);
        k->attempts++;
        k->addr = a;
        upconn_t *c = conn_open(p, a, share);
        if (c) {
            call_attach(k, c);
            return true;
        }
        int e = errno;
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM || e == EADDRNOTAVAIL) {
            /* Out of descriptors, memory or local ports: no address would do better, and this
             * one is not to blame. */
            call_fail(k, false, "connect: %s", strerror(e));
            return false;
        }
        addr_failed(k, i, e);
    }
    if (k->connect_errno == ETIMEDOUT) {
        call_fail(k, true, "timed out connecting (connect_timeout %gs)", conf->connect_timeout);
        return false;
    }
    call_fail(k, false, "connect: %s%s", strerror(k->connect_errno),
              conf->naddrs > 1 ? " (every address failed)" : "");
    return false;
}

/* The connect of k's connection failed (err, or ETIMEDOUT from its timer): the connection is
 * closed and the next address tried. */
static void call_connect_failed(call_t *k, int err)
{
    upconn_t *c = k->conn;
    size_t i = (size_t)(c->addr - k->pool->conf->addrs);
    k->conn = NULL;
    c->call = NULL;
    conn_close(c);
    addr_failed(k, i, err);
    (void)call_connect(k);
}

/* Starts the exchange on a connection: an idle one when there is one, else a new one. New
 * connections start at the next address in turn, passing over those that failed a connect in
 * the last FA_UPSTREAM_ADDR_DOWN seconds (unless every one did). Returns false after failing
 * the call. */
static bool call_start(call_t *k, bool fresh)
{
    upool_t *p = k->pool;
    upconn_t *c = fresh ? NULL : p->idle.head;
    if (c) {
        list_remove(&p->idle, c);
        list_push(&p->busy, c);
        c->state = UC_WRITING;
        c->reused = true;
        p->st.reused++;
        call_attach(k, c);
        return true;
    }
    if (p->st.open >= p->conf->max_connections) {
        call_fail(k, false, "too many connections (max_connections %u)",
                  p->conf->max_connections);
        return false;
    }
    size_t n = p->conf->naddrs;
    ev_tstamp now = ev_now(p->worker->loop);
    size_t start = p->rr++;
    for (size_t i = 0; i < n; i++)
        if (p->down_until[(start + i) % n] <= now) {
            start += i;
            p->rr = start + 1;
            break;
        }
    k->attempts = 0;
    k->next_addr = start;
    k->connect_deadline = now + p->conf->connect_timeout;
    k->connect_errno = 0;
    return call_connect(k);
}

/* A reused keep-alive connection that the peer had closed before our request reached it fails
 * without a byte of response. Such a call is retried once on a new connection when its method
 * is idempotent (the request cannot have been processed twice in any way that matters). */
static bool call_retry(call_t *k)
{
    upconn_t *c = k->conn;
    const fa_upstream_req_t *rq = k->rq;
    if (k->retried || !c || !c->reused || k->got != 0 ||
        !(method_is(rq, "GET") || method_is(rq, "HEAD") || method_is(rq, "PUT") ||
          method_is(rq, "DELETE") || method_is(rq, "OPTIONS")))
        return false;
    k->retried = true;
    k->conn = NULL;
    c->call = NULL;
    conn_close(c);
    (void)call_start(k, true);
    return true;
}

static void call_write(call_t *k)
{
    upconn_t *c = k->conn;
    while (k->outpos < k->outlen) {
        ssize_t n = send(c->fd, k->out + k->outpos, k->outlen - k->outpos, MSG_NOSIGNAL);
        if (n > 0) {
            k->outpos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_watch(c, EV_WRITE);
            return;
        }
        int e = errno;
        if (!call_retry(k))
            call_fail(k, false, "send: %s", strerror(e));
        return;
    }
    c->state = UC_READING;
    conn_watch(c, EV_READ);
}

/* Reads what is there and feeds the parser. Each outcome ends the function: the response is
 * complete, the peer closed or reset, the bytes are not HTTP, or there is too much. */
static void call_read(call_t *k)
{
    upconn_t *c = k->conn;
    const fa_upstream_conf_t *conf = k->pool->conf;
    char buf[READ_CHUNK];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            k->got += (size_t)n;
            if (k->got > conf->max_response_bytes) {
                call_fail(k, false, "response larger than max_response_bytes (%zu)",
                          conf->max_response_bytes);
                return;
            }
            llhttp_errno_t err = llhttp_execute(&c->parser, buf, (size_t)n);
            if (k->complete) {
                const char *end = llhttp_get_error_pos(&c->parser);
                bool tail = err == HPE_PAUSED && end && end != buf + n;
                call_finish(k, !tail);
                return;
            }
            if (err != HPE_OK && k->too_big) {
                call_fail(k, false, "response larger than max_response_bytes (%zu)",
                          conf->max_response_bytes);
                return;
            }
            if (err != HPE_OK) {
                call_fail(k, false, "invalid response: %s",
                          llhttp_get_error_reason(&c->parser) ? llhttp_get_error_reason(&c->parser)
                                                              : llhttp_errno_name(err));
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        int e = n < 0 ? errno : 0;
        if (call_retry(k))
            return;
        if (n == 0) {
            /* A response delimited by the end of the connection ends here. */
            (void)llhttp_finish(&c->parser);
            if (k->complete) {
                call_finish(k, false);
                return;
            }
            call_fail(k, false, k->got ? "connection closed in the middle of the response"
                                       : "connection closed without a response");
        } else {
            call_fail(k, false, "recv: %s", strerror(e));
        }
        return;
    }
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop, (void)revents;
    upconn_t *c = FA_CONTAINER_OF(io, upconn_t, io);
    call_t *k = c->call;
    if (c->state == UC_IDLE || !k) {
        /* An idle connection is readable: the peer closed it (or sent what nobody asked). */
        conn_close(c);
        return;
    }
    switch (c->state) {
    case UC_CONNECTING: {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err == EINPROGRESS || err == EALREADY)
            return;
        if (err) {
            call_connect_failed(k, err);
            return;
        }
        c->state = UC_WRITING;
        conn_timer(c, k->pool->conf->response_timeout);
        call_write(k);
        return;
    }
    case UC_WRITING:
        call_write(k);
        return;
    case UC_READING:
        call_read(k);
        return;
    case UC_IDLE:
        return;
    }
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)revents;
    upconn_t *c = FA_CONTAINER_OF(t, upconn_t, timer);
    call_t *k = c->call;
    if (!k) {
        conn_close(c);
        return;
    }
    if (c->state == UC_CONNECTING)
        call_connect_failed(k, ETIMEDOUT);
    else
        call_fail(k, true, "timed out waiting for the response (response_timeout %gs)",
                  k->pool->conf->response_timeout);
}

/* ---- llhttp callbacks (response side) ---- */

static inline call_t *call_of(llhttp_t *p)
{
    return ((upconn_t *)p->data)->call;
}

static int on_message_begin(llhttp_t *p)
{
    call_t *k = call_of(p);
    /* A 1xx response may come first: only the final one counts. */
    *k->resp = (fa_upstream_resp_t){0};
    k->body_len = 0;
    k->hphase = 0;
    return 0;
}

static void append(fa_pool_t *mem, fa_str_t *v, const char *at, size_t len)
{
    char *p = fa_pool_alloc(mem, v->len + len + 1);
    if (v->len)
        memcpy(p, v->ptr, v->len);
    memcpy(p + v->len, at, len);
    p[v->len + len] = '\0';
    v->ptr = p;
    v->len += len;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    call_t *k = call_of(p);
    if (k->hphase != 1) {
        k->hphase = 1;
        k->hname_len = 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (k->hname_len < sizeof(k->hname))
            k->hname[k->hname_len] = at[i];
        k->hname_len++;
    }
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    call_t *k = call_of(p);
    if (k->hphase != 2) {
        k->hphase = 2;
        k->in_ctype = k->hname_len == 12 && strncasecmp(k->hname, "content-type", 12) == 0;
        if (k->in_ctype)
            k->resp->content_type = FA_STR_NULL;
    }
    if (k->in_ctype)
        append(k->mem, &k->resp->content_type, at, len);
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    call_t *k = call_of(p);
    k->resp->status = p->status_code;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0 && p->status_code >= 200) {
        if (p->content_length > k->pool->conf->max_response_bytes) {
            k->too_big = true; /* reported by call_read, without reading the body */
            return -1;
        }
        k->body_cap = (size_t)p->content_length;
        k->body = fa_pool_alloc(k->mem, k->body_cap);
    }
    return k->head ? 1 : 0; /* a response to HEAD has no body whatever it says */
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    call_t *k = call_of(p);
    if (k->body_len + len > k->body_cap) {
        size_t cap = FA_MAX(k->body_cap * 2, k->body_len + len + 1024);
        char *nb = fa_pool_alloc(k->mem, cap);
        if (k->body_len)
            memcpy(nb, k->body, k->body_len);
        k->body = nb; /* the old buffer stays in the pool until its reset */
        k->body_cap = cap;
    }
    memcpy(k->body + k->body_len, at, len);
    k->body_len += len;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    call_t *k = call_of(p);
    if (p->status_code < 200 && p->status_code != 101)
        return 0; /* interim response: the final one follows */
    k->complete = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- public ---- */

int fa_upstream_worker_init(fa_worker_t *w)
{
    size_t n = w->config->nupstreams;
    fa_upstreams_t *u = fa_calloc(1, sizeof(*u) + n * sizeof(upool_t));
    u->n = n;
    for (size_t i = 0; i < n; i++) {
        u->pools[i].conf = &w->config->upstreams[i];
        u->pools[i].worker = w;
        u->pools[i].down_until = fa_calloc(w->config->upstreams[i].naddrs, sizeof(ev_tstamp));
    }
    w->upstreams = u;
    return 0;
}

void fa_upstream_worker_fini(fa_worker_t *w)
{
    fa_upstreams_t *u = w->upstreams;
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++) {
        upool_t *p = &u->pools[i];
        while (p->idle.head)
            conn_close(p->idle.head);
        /* A busy connection here belongs to a request the worker gave up on at its shutdown
         * timeout; that request's pool (holding the call) may be gone already: not touched. */
        while (p->busy.head)
            conn_close(p->busy.head);
        fa_free(p->down_until);
    }
    fa_free(u);
    w->upstreams = NULL;
}

int fa_upstream_find(const fa_config_t *config, const char *name, size_t len)
{
    for (size_t i = 0; i < config->nupstreams; i++)
        if (strlen(config->upstreams[i].name) == len &&
            memcmp(config->upstreams[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

int fa_upstream_call(fa_worker_t *w, unsigned index, fa_pool_t *pool, const fa_upstream_req_t *rq,
                     fa_future_t *out)
{
    assert(w->upstreams && index < w->upstreams->n);
    call_t *k = fa_pool_calloc(pool, sizeof(*k));
    int rc = fa_promise_new(w->sched, &k->promise, out);
    if (rc != 0)
        return rc;
    k->pool = &w->upstreams->pools[index];
    k->mem = pool;
    k->rq_copy = *rq;
    k->rq = &k->rq_copy;
    k->head = method_is(rq, "HEAD");
    k->resp = fa_pool_calloc(pool, sizeof(*k->resp));
    (void)fa_promise_on_cancel(k->promise, on_cancel, k); /* fresh promise: cannot fail */
    (void)call_start(k, false); /* a failure has rejected the future already */
    return 0;
}

void fa_upstream_stats(const fa_worker_t *w, unsigned index, fa_upstream_stats_t *st)
{
    const upool_t *p = &w->upstreams->pools[index];
    *st = p->st;
    st->idle = p->idle.n;
}
