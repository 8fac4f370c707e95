/*
 * conn.c — client connections: accept, read, parse, hand complete requests to the application,
 * write responses, time out, close.
 *
 * One ev_io watches readability for the whole life of a connection; a second one watches
 * writability only while a response could not be written at once. A single ev_timer per connection
 * checks the deadline that applies to its state (header, body, keep-alive, write, linger); it is
 * never re-armed per request: the callback re-arms itself for at most the shortest timeout, which
 * keeps the hot path free of timer heap operations.
 */
#include "conn.h"
#include "alloc.h"
#include "app.h"
#include "config.h"
#include "log.h"
#include "worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_BUDGET 64
#define WBUF_INITIAL 4096
#define WBUF_HIGH_WATER (256 * 1024) /* stop parsing ahead while this much is unsent */
#define WBUF_KEEP (64 * 1024)        /* a recycled connection keeps at most this much output buffer */
#define LINGER_SECONDS 2.0
#define LINGER_BYTES (64 * 1024)
#define FREE_CONNS_MAX 1024 /* recycled connections kept for reuse */
#define POOL_BLOCK 4096     /* first block of a connection's request pool */
#define POOL_HOT   512      /* of which a plain POST /event uses (headers, JSON, pipeline state) */
#define DRAIN_IDLE 1.0      /* grace for idle keep-alive connections at a graceful stop */

static void on_readable(struct ev_loop *loop, ev_io *w, int revents);
static void on_writable(struct ev_loop *loop, ev_io *w, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void conn_close(fa_conn_t *c);
static void conn_flush(fa_conn_t *c);

static double min_timeout(const fa_config_t *cfg)
{
    double t = cfg->timeouts.header;
    t = FA_MIN(t, cfg->timeouts.body);
    t = FA_MIN(t, cfg->timeouts.keepalive);
    t = FA_MIN(t, cfg->timeouts.write);
    return FA_MIN(t, LINGER_SECONDS);
}

/* Memory a connection holds whatever it does: the struct, its read buffer, its pool's first block. */
static size_t conn_fixed_mem(const fa_conn_t *c)
{
    return sizeof(*c) + c->rcap + POOL_BLOCK;
}

size_t fa__conn_mem(const fa_conn_t *c)
{
    return conn_fixed_mem(c) + c->wcap + c->pool._used_extra;
}

/*
 * Unsent output past which a connection stops parsing its next requests: WBUF_HIGH_WATER, or
 * less when limits.connection_memory is small (half of what the fixed part leaves, since the
 * buffer grows by doubling).
 */
static size_t out_high_water(const fa_conn_t *c)
{
    size_t room = c->worker->config->limits.connection_memory - conn_fixed_mem(c);
    return FA_MIN((size_t)WBUF_HIGH_WATER, room / 2);
}

/* Accepting stopped for lack of connections or memory: start again if both allow it now. */
static void resume_accepting(fa_worker_t *w)
{
    if (!w->stopping && !w->accepting && !ev_is_active(&w->accept_retry))
        fa_worker_accept_enable(w, true);
}

/* The worker is at limits.worker_memory: say so, once per 10 s while it lasts. */
static void mem_limit_reached(fa_worker_t *w, const char *what)
{
    ev_tstamp now = ev_now(w->loop);
    if (now - w->mem_limit_logged >= 10.0) {
        w->mem_limit_logged = now;
        fa_log_warn("limits.worker_memory (%zu bytes) reached: %zu bytes held by %u "
                    "connections; %s", w->config->limits.worker_memory, w->mem, w->nconns, what);
    }
}

int fa__conn_mem_admit(fa_conn_t *c, size_t n, const char **msg)
{
    fa_worker_t *w = c->worker;
    const fa_config_t *cfg = w->config;
    if (fa__conn_mem(c) + n > cfg->limits.connection_memory) {
        *msg = "request body too large for the connection's memory limit";
        return 413;
    }
    if (w->mem + n > cfg->limits.worker_memory) {
        mem_limit_reached(w, "refusing request bodies with 503 until memory comes back");
        *msg = "server memory limit reached, retry later";
        return 503;
    }
    return 0;
}

/* A connection from the recycler, or a new one; its buffers and pool are kept across reuse. */
static fa_conn_t *conn_get(fa_worker_t *w)
{
    fa_conn_t *c = w->free_conns;
    if (c) {
        w->free_conns = c->next;
        w->nfree--;
        char *rbuf = c->rbuf, *wbuf = c->wbuf;
        uint32_t rcap = c->rcap;
        size_t wcap = c->wcap;
        fa_pool_t pool = c->pool;
        memset(c, 0, sizeof(*c));
        c->rbuf = rbuf, c->wbuf = wbuf, c->rcap = rcap, c->wcap = wcap, c->pool = pool;
    } else {
        c = fa_aligned_zalloc(FA_CACHELINE, sizeof(*c));
        c->rcap = (uint32_t)w->config->limits.header_bytes;
        c->rbuf = fa_malloc(c->rcap);
        c->wcap = WBUF_INITIAL;
        c->wbuf = fa_malloc(c->wcap);
        fa_pool_init(&c->pool, POOL_BLOCK);
        fa_pool_set_meter(&c->pool, &w->mem);
        w->mem += conn_fixed_mem(c) + c->wcap;
    }
    c->worker = w;
    c->req.conn = c;
    c->req.worker = w;
    return c;
}

static void conn_destroy(fa_conn_t *c)
{
    c->worker->mem -= conn_fixed_mem(c) + c->wcap;
    fa_pool_destroy(&c->pool);
    fa_free(c->rbuf);
    fa_free(c->wbuf);
    fa_free(c);
}

void fa_conn_adopt(fa_worker_t *w, int fd)
{
    fa_conn_t *c = conn_get(w);
    c->fd = fd;
    c->state = FA_CONN_IDLE;
    llhttp_init(&c->parser, HTTP_REQUEST, &fa__http_settings);
    c->parser.data = c;
    fa__http_reset_request(c);
    c->last_io = ev_now(w->loop);

    ev_io_init(&c->rio, on_readable, fd, EV_READ);
    ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
    ev_timer_init(&c->timer, on_timer, min_timeout(w->config), 0.);
    ev_io_start(w->loop, &c->rio);
    ev_timer_start(w->loop, &c->timer);

    c->next = w->conns;
    c->prev = NULL;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    w->stats.connections_total++;
    if (w->nconns >= w->config->server.max_connections)
        fa_worker_accept_enable(w, false);
    if (FA_UNLIKELY(w->mem >= w->config->limits.worker_memory)) {
        mem_limit_reached(w, "pausing accepts until memory comes back");
        fa_worker_accept_enable(w, false);
    }
}

void fa_conn_accept(fa_worker_t *w, int lfd)
{
    for (int i = 0; i < ACCEPT_BUDGET && w->accepting; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            w->stats.accept_errors++;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: keep serving the open connections, retry a little later
                 * instead of spinning on a listener that stays readable. */
                /* Logged once per 10 s while it lasts, not at every retry. */
                ev_tstamp now = ev_now(w->loop);
                if (now - w->accept_error_logged >= 10.0) {
                    w->accept_error_logged = now;
                    fa_log_error("accept: %s; pausing accepts for 100ms at a time (%llu refused so "
                                 "far)",
                                 strerror(errno), (unsigned long long)w->stats.accept_errors);
                }
                fa_worker_accept_enable(w, false);
                ev_timer_set(&w->accept_retry, 0.1, 0.);
                ev_timer_start(w->loop, &w->accept_retry);
                return;
            }
            /* ECONNABORTED, EPERM (firewall) and friends concern one connection only. */
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* best effort */
        fa_conn_adopt(w, fd);
    }
}

/* ---- writing ---- */

char *fa__conn_wreserve(fa_conn_t *c, size_t n)
{
    if (c->wpos == c->wlen)
        c->wpos = c->wlen = 0;
    if (c->wcap - c->wlen < n) {
        if (c->wpos > 0) {
            memmove(c->wbuf, c->wbuf + c->wpos, c->wlen - c->wpos);
            c->wlen -= c->wpos;
            c->wpos = 0;
        }
        if (c->wcap - c->wlen < n) {
            size_t cap = c->wcap;
            while (cap - c->wlen < n)
                cap *= 2;
            c->wbuf = fa_realloc(c->wbuf, cap);
            c->worker->mem += cap - c->wcap;
            c->wcap = cap;
        }
    }
    return c->wbuf + c->wlen;
}

void fa__conn_write_bytes(fa_conn_t *c, const void *p, size_t n)
{
    memcpy(fa__conn_wreserve(c, n), p, n);
    c->wlen += n;
}

static void on_linger(struct ev_loop *loop, ev_io *w, int revents);

static void start_linger(fa_conn_t *c)
{
    /* Closing with unread input would make the kernel send a reset that can destroy the response
     * before the client reads it: shut down our side and drain theirs for a while first. */
    if (shutdown(c->fd, SHUT_WR) < 0) {
        conn_close(c);
        return;
    }
    c->lingering = true;
    ev_set_cb(&c->rio, on_linger);
    c->state = FA_CONN_CLOSING;
    c->last_io = ev_now(c->worker->loop);
    c->rstart = c->rend = 0;
    if (c->eof) {
        conn_close(c);
        return;
    }
    if (!ev_is_active(&c->rio))
        ev_io_start(c->worker->loop, &c->rio);
}

/* Writes what is pending; on a partial write waits for writability. */
/*
 * A large response or a client slow to read grew the output buffer (up to the high-water mark
 * and one response): once it is empty, give the peak back, so that neither an idle keep-alive
 * connection nor a recycled one pins it. Only called with nothing unsent.
 */
static void wbuf_shrink(fa_conn_t *c)
{
    if (FA_LIKELY(c->wcap <= WBUF_KEEP))
        return;
    fa_free(c->wbuf);
    c->worker->mem -= c->wcap - WBUF_INITIAL;
    c->wcap = WBUF_INITIAL;
    c->wbuf = fa_malloc(c->wcap);
    c->wpos = c->wlen = 0;
}

static void conn_flush(fa_conn_t *c)
{
    while (c->wpos < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->wpos, c->wlen - c->wpos, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                if (!ev_is_active(&c->wio))
                    ev_io_start(c->worker->loop, &c->wio);
                return;
            }
            conn_close(c);
            return;
        }
        c->wpos += (size_t)n;
        c->last_io = ev_now(c->worker->loop);
    }
    c->wpos = c->wlen = 0;
    wbuf_shrink(c);
    if (ev_is_active(&c->wio))
        ev_io_stop(c->worker->loop, &c->wio);
    if (c->want_close && !c->lingering)
        start_linger(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    fa_conn_t *c = FA_CONTAINER_OF(w, fa_conn_t, wio);
    conn_flush(c);
    if (!c->closed && c->wpos == c->wlen && !c->want_close) {
        /* Parsing may have stopped at the high-water mark: go on with what is buffered. */
        if (!ev_is_active(&c->rio))
            ev_io_start(c->worker->loop, &c->rio);
        fa__conn_process(c);
    }
}

/* ---- reading and parsing ---- */

/*
 * Makes room at the end of the read buffer. Between requests the unparsed bytes move to the
 * front; inside a header section the request's bytes move to the front and its views follow
 * (a section that fills the whole buffer is too large); inside a body the request is detached
 * into its pool and the buffer restarts empty.
 */
static bool make_room(fa_conn_t *c)
{
    if (c->rend < c->rcap)
        return true;
    if (c->state == FA_CONN_BODY) {
        fa__http_detach(c);
        c->rstart = c->rend = 0;
        return true;
    }
    if (c->state == FA_CONN_HANDLING)
        return false; /* a waiting request's views point into the buffer: nothing may move */
    uint32_t keep_from = c->rstart;
    if (c->state == FA_CONN_HEADERS && c->req_in_rbuf)
        keep_from = c->req_start;
    if (keep_from == 0)
        return false;
    memmove(c->rbuf, c->rbuf + keep_from, c->rend - keep_from);
    if (c->state == FA_CONN_HEADERS && c->req_in_rbuf)
        fa__http_rebase(c, c->rbuf + keep_from, c->rbuf);
    c->rend -= keep_from;
    c->rstart -= keep_from;
    c->req_start -= FA_MIN(c->req_start, keep_from);
    return true;
}

/* Discards what the client still sends after start_linger, all that is there now, until its
 * EOF; a client that keeps sending past LINGER_BYTES is not worth waiting for. */
static void on_linger(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    fa_conn_t *c = FA_CONTAINER_OF(w, fa_conn_t, rio);
    char sink[16384];
    for (;;) {
        ssize_t n = read(c->fd, sink, sizeof(sink));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        c->rend += n > 0 ? (uint32_t)n : 0; /* rbuf is unused while lingering: a byte count */
        if (n <= 0 || c->rend > LINGER_BYTES) {
            conn_close(c);
            return;
        }
    }
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    fa_conn_t *c = FA_CONTAINER_OF(w, fa_conn_t, rio);
    /* Under load, with hundreds of connections per worker, this one's state has left the
     * cache since its last request, all but the line libev touched to call us. Request the rest
     * of the hot part now and read with what that line holds, so that the misses are over by
     * the end of the system call instead of stalling it, then the parse, the pipeline and the
     * response one after another. (Measured with perf/ab.sh and perf record under
     * perf/load.sh's event scenario: see the commits that added these lines.) */
    for (size_t off = FA_CACHELINE; off < FA_CONN_HOT; off += FA_CACHELINE)
        __builtin_prefetch((const char *)c + off);
    if (FA_UNLIKELY(c->rend >= c->rcap) && !make_room(c)) {
        if (c->state == FA_CONN_HANDLING) {
            /* The waiting request still reads its bytes at the front of the buffer: read no
             * more until it is answered (fa__conn_request_done starts reading again). */
            ev_io_stop(loop, &c->rio);
            return;
        }
        /* A header section as large as the whole buffer. */
        c->err_status = 431;
        c->err_msg = "request header section too large";
        fa__http_error(c, HPE_USER);
        conn_flush(c);
        return;
    }
    ssize_t n = read(c->rio.fd, c->rbuf + c->rend, c->rcap - c->rend);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n < 0 || c->state == FA_CONN_HEADERS || c->state == FA_CONN_BODY ||
            c->state == FA_CONN_HANDLING || (c->state == FA_CONN_IDLE && c->wpos == c->wlen)) {
            /* Reset, or EOF with no complete request pending: nothing left to answer. EOF
             * while a stage waits (an upstream call, a delay) is taken as the client giving up,
             * as nginx does: closing cancels what the request waits on. */
            conn_close(c);
            return;
        }
        /* EOF with answers still being written: finish writing them, then close. */
        c->eof = true;
        ev_io_stop(loop, &c->rio);
        if (c->state == FA_CONN_IDLE)
            c->want_close = true;
        return;
    }
    /* The start of the request pool's free space and of the output buffer, which the request
     * touches next. As integers: they may run past the end of the pool block or of the buffer,
     * which a prefetch may touch but pointer arithmetic may not. */
    uintptr_t pool = (uintptr_t)c->pool._cur, out = (uintptr_t)c->wbuf + c->wlen;
    for (size_t off = 0; off < POOL_HOT; off += FA_CACHELINE)
        __builtin_prefetch((const void *)(pool + off));
    __builtin_prefetch((const void *)out);
    __builtin_prefetch((const void *)(out + FA_CACHELINE));
    c->rend += (uint32_t)n;
    c->last_io = ev_now(loop);
    fa__conn_process(c);
}

/*
 * Parses and handles the buffered requests one after another until the buffer is empty, a request
 * waits on the application, the connection is closing, or too much output is pending. Runs from
 * the read callback and again when a waiting request completes.
 */
void fa__conn_process(fa_conn_t *c)
{
    if (c->in_process)
        return;
    c->in_process = true;
    fa_worker_t *w = c->worker;

    while (!c->closed && !c->want_close && c->state != FA_CONN_HANDLING &&
           c->rstart < c->rend) {
        if (c->wlen - c->wpos > out_high_water(c)) {
            /* The client does not read its responses: stop reading its requests. */
            ev_io_stop(w->loop, &c->rio);
            break;
        }
        const char *data = c->rbuf + c->rstart;
        bool refused = false;
        size_t fast = c->state == FA_CONN_IDLE && !w->llhttp_only
                          ? fa__http_parse_fast(c, data, c->rend - c->rstart, &refused)
                          : 0;
        if (refused)
            break;
        if (fast) {
            c->rstart += fast;
        } else {
            llhttp_errno_t err = llhttp_execute(&c->parser, data, c->rend - c->rstart);
            if (err == HPE_OK) {
                c->rstart = c->rend;
                break;
            }
            if (err != HPE_PAUSED) {
                fa__http_error(c, err);
                break;
            }
            c->rstart += (size_t)(llhttp_get_error_pos(&c->parser) - data);
            llhttp_resume(&c->parser);
        }

        /* A complete request. */
        fa_req_t *r = &c->req;
        if (r->body.ptr == NULL)
            r->body.ptr = "";
        r->action = "running its pipeline";
        w->stats.requests++;
        (void)fa_app_handle(w->app, r);
        if (c->state == FA_CONN_HANDLING)
            break; /* a stage waits; fa__conn_request_done picks up from here */
    }
    if (!c->closed && c->state == FA_CONN_IDLE && c->rstart == c->rend) {
        c->rstart = c->rend = 0;
        if (c->eof)
            c->want_close = true;
    }
    c->in_process = false;
    if (!c->closed)
        conn_flush(c);
}

/*
 * The response of the current request has been written into the output buffer: start the next
 * request. Called from fa_req_respond, synchronously inside fa__conn_process or later from the
 * scheduler when the request waited.
 */
void fa__conn_request_done(fa_conn_t *c)
{
    bool was_waiting = c->state == FA_CONN_HANDLING && !c->in_process;
    bool close = c->req.close_after;
    fa_worker_t *w = c->worker;
    fa__http_reset_request(c);
    if (FA_UNLIKELY(!w->accepting))
        resume_accepting(w); /* the request's pool may have been what held the worker back */
    c->state = FA_CONN_IDLE;
    c->nrequests++;
    c->last_io = ev_now(w->loop);
    if (close) {
        c->want_close = true;
        if (ev_is_active(&c->rio))
            ev_io_stop(w->loop, &c->rio);
    } else if (was_waiting && !c->eof && !ev_is_active(&c->rio)) {
        ev_io_start(w->loop, &c->rio); /* reading paused on a full buffer while it waited */
    }
    if (was_waiting)
        fa__conn_process(c);
}

/* ---- timeouts ---- */

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    fa_conn_t *c = FA_CONTAINER_OF(t, fa_conn_t, timer);
    const fa_config_t *cfg = c->worker->config;
    ev_tstamp now = ev_now(loop), deadline;
    bool writing = c->wpos < c->wlen;

    if (c->lingering)
        deadline = c->last_io + LINGER_SECONDS;
    else if (writing)
        deadline = c->last_io + cfg->timeouts.write;
    else if (c->state == FA_CONN_HEADERS)
        deadline = c->req.start + cfg->timeouts.header;
    else if (c->state == FA_CONN_BODY)
        deadline = c->last_io + cfg->timeouts.body;
    else if (c->state == FA_CONN_IDLE) {
        deadline = c->last_io + (c->nrequests ? cfg->timeouts.keepalive : cfg->timeouts.header);
        if (c->worker->stopping)
            deadline = FA_MIN(deadline, FA_MAX(c->last_io, c->worker->stop_at) + DRAIN_IDLE);
    }
    else
        deadline = now + 3600; /* waiting on the application: its own timeouts apply */

    if (now >= deadline) {
        if (!writing && !c->lingering &&
            (c->state == FA_CONN_HEADERS || c->state == FA_CONN_BODY)) {
            fa_log_debug("fd %d: timed out %s", c->fd, c->req.action);
            c->req.close_after = true;
            fa_req_respond_error(&c->req, 408, "request timeout");
            conn_flush(c);
            if (c->closed)
                return;
            /* keep the timer running for the linger phase */
        } else {
            conn_close(c);
            return;
        }
    }
    ev_timer_set(t, FA_MIN(FA_MAX(deadline - now, 0.001), min_timeout(cfg)), 0.);
    ev_timer_start(loop, t);
}

/* ---- closing ---- */

/* Stops everything and queues the connection for recycling at the end of this loop iteration. */
static void conn_close(fa_conn_t *c)
{
    if (c->closed)
        return;
    fa_worker_t *w = c->worker;
    c->closed = true;
    ev_io_stop(w->loop, &c->rio);
    ev_io_stop(w->loop, &c->wio);
    ev_timer_stop(w->loop, &c->timer);
    if (c->state == FA_CONN_HANDLING && !c->req.responded)
        fa_app_abort(&c->req);
    close(c->fd);
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = w->closing;
    w->closing = c;
    w->nconns--;
    resume_accepting(w);
}

void fa_conn_reap(fa_worker_t *w)
{
    while (w->closing) {
        fa_conn_t *c = w->closing;
        w->closing = c->next;
        fa__http_reset_request(c);
        wbuf_shrink(c);
        if (w->nfree < FREE_CONNS_MAX && c->rcap == w->config->limits.header_bytes &&
            w->mem < w->config->limits.worker_memory) {
            c->next = w->free_conns;
            w->free_conns = c;
            w->nfree++;
        } else {
            conn_destroy(c);
        }
    }
    if (FA_UNLIKELY(!w->accepting))
        resume_accepting(w); /* memory came back */
}

/*
 * Graceful stop. Connections busy with a request finish it and close (fa_req_respond answers the
 * last buffered request with "Connection: close"). Idle keep-alive connections are not closed on
 * the spot: a client may be sending its next request right now, and closing under it would fail a
 * request that nobody refused. They get DRAIN_IDLE seconds; a request arriving meanwhile is
 * answered with "Connection: close".
 */
void fa_conn_shutdown_all(fa_worker_t *w)
{
    for (fa_conn_t *c = w->conns; c; c = c->next) {
        if (c->state == FA_CONN_IDLE && c->rstart == c->rend && c->wpos == c->wlen &&
            !c->lingering) {
            ev_timer_stop(w->loop, &c->timer);
            ev_timer_set(&c->timer, FA_MIN(DRAIN_IDLE, min_timeout(w->config)), 0.);
            ev_timer_start(w->loop, &c->timer);
        }
    }
}

void fa_conn_free_all(fa_worker_t *w)
{
    while (w->conns) {
        w->conns->state = FA_CONN_IDLE; /* no application left to abort */
        conn_close(w->conns);
    }
    fa_conn_reap(w);
    while (w->free_conns) {
        fa_conn_t *c = w->free_conns;
        w->free_conns = c->next;
        conn_destroy(c);
    }
    w->nfree = 0;
}
