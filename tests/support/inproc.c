/*
 * inproc.c — a worker served in the calling process through socketpairs (see inproc.h).
 */
#include "inproc.h"

#include "alloc.h"
#include "conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* Turns in a row without progress that count as "nothing moves". Two, not one: libev's epoll
 * backend drops an event whose generation tag is stale (an fd number reused after a close, as
 * socketpairs here reuse them all the time) and rebuilds its kernel state at the start of the next
 * turn, which then reports the event: one turn can pass with the event pending and nothing done.
 * (fuzz_request once stopped there after 1.8M inputs: a lingering connection "still open" after
 * the client hung up, its EOF due one turn later; the daemon's own loop simply takes that turn.) */
#define QUIET_TURNS 2
#define MAX_TURNS 100000 /* a bound, so a livelock fails a test instead of hanging it */

static void say(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || !whylen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

bool fa_inproc_init(fa_inproc_t *ip, const char *path, const char *const *overrides,
                    size_t noverrides, size_t agg_capacity, char *err, size_t errlen)
{
    memset(ip, 0, sizeof(*ip));
    char full[1024];
    const char *src = getenv("FA_SRCDIR");
    if (path[0] != '/' && src && *src)
        snprintf(full, sizeof(full), "%s/%s", src, path);
    else
        snprintf(full, sizeof(full), "%s", path);

    fa_errbuf_t errs = {0};
    ip->config = fa_config_load(full, overrides, noverrides, &errs);
    if (ip->config)
        ip->app = fa_app_build(ip->config, &errs);
    if (!ip->app) {
        say(err, errlen, "%s: %s", full, errs.text ? errs.text : "does not load");
        fa_errbuf_free(&errs);
        fa_config_free(ip->config);
        ip->config = NULL;
        return false;
    }
    fa_errbuf_free(&errs);

    ip->agg = fa_agg_create(agg_capacity, 1, err, errlen);
    if (!ip->agg)
        goto fail;
    int shard = fa_agg_shard_claim(ip->agg);
    fa_agg_shard_set_owner(ip->agg, (unsigned)shard, getpid());

    fa_worker_t *w = &ip->worker;
    w->loop = ev_loop_new(EVBACKEND_EPOLL);
    if (!w->loop) {
        say(err, errlen, "cannot create an event loop");
        goto fail;
    }
    fa_sched_init(&ip->sched, w->loop, &(fa_sched_conf_t){.futures_init = 64, .aux_init = 16});
    w->shard = (unsigned)shard;
    w->config = ip->config;
    w->app = ip->app;
    w->agg = ip->agg;
    w->sched = &ip->sched;
    w->ready_fd = -1;
    ev_timer_init(&w->accept_retry, NULL, 0.1, 0.); /* never started: there is no listener */
    if (fa_app_worker_init(ip->app, w) != 0) {
        say(err, errlen, "stage initialisation failed");
        fa_sched_fini(&ip->sched);
        ev_loop_destroy(w->loop);
        w->loop = NULL;
        goto fail;
    }
    fa_worker_update_date(w);
    return true;

fail:
    if (ip->agg)
        fa_agg_destroy(ip->agg);
    fa_app_free(ip->app);
    fa_config_free(ip->config);
    memset(ip, 0, sizeof(*ip));
    return false;
}

unsigned fa_inproc_fini(fa_inproc_t *ip)
{
    fa_worker_t *w = &ip->worker;
    fa_conn_free_all(w);
    fa_app_worker_fini(ip->app, w);
    unsigned live = fa_sched_fini(&ip->sched);
    ev_loop_destroy(w->loop);
    fa_app_free(ip->app);
    fa_config_free(ip->config);
    fa_agg_destroy(ip->agg);
    memset(ip, 0, sizeof(*ip));
    return live;
}

int fa_inproc_connect(fa_inproc_t *ip)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    /* The accept path runs inside a loop iteration, with a fresh ev_now; this runs between
     * iterations, maybe long after the last one: stamp the connection with the time now. */
    ev_now_update(ip->worker.loop);
    fa_conn_adopt(&ip->worker, sv[0]);
    return sv[1];
}

/* Appends what client_fd has to read to *out; 1 when it read something, -1 on EOF or error. */
static int collect(int fd, char **out, size_t *len, size_t *cap)
{
    int got = 0;
    for (;;) {
        char tmp[16384];
        char *dst = tmp;
        size_t room = sizeof(tmp);
        if (out) {
            if (*cap - *len < 4096) {
                *cap = *cap ? *cap * 2 : 16384;
                *out = fa_realloc(*out, *cap);
            }
            dst = *out + *len;
            room = *cap - *len;
        }
        ssize_t n = read(fd, dst, room);
        if (n > 0) {
            if (out)
                *len += (size_t)n;
            got = 1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return got;
        return -1; /* EOF, or ECONNRESET */
    }
}

/* A fingerprint that changes whenever the worker did something observable (mixed, not summed: a
 * close and a reap leave nconns + nfree unchanged). */
static uint64_t progress(const fa_inproc_t *ip)
{
    const fa_worker_t *w = &ip->worker;
    fa_sched_stats_t st;
    fa_sched_stats(&ip->sched, &st);
    uint64_t v[] = {w->stats.requests, w->stats.connections_total, st.tasks_run, w->nconns,
                    w->nfree, w->closing != NULL, w->stats.responses[0], w->stats.responses[1],
                    w->stats.responses[2], w->stats.responses[3], w->stats.responses[4],
                    w->stats.responses[5]};
    uint64_t p = 0;
    for (size_t i = 0; i < FA_ARRAY_SIZE(v); i++)
        p = p * 0x100000001b3ull + v[i];
    /* Bytes read or written that completed nothing yet (a partial header, a lingering read)
     * are progress too: the next turn may complete something. */
    for (const fa_conn_t *c = w->conns; c; c = c->next)
        p = p * 0x100000001b3ull + c->rend + ((uint64_t)c->rstart << 20) + (c->wpos << 40) + c->wlen +
            c->state + c->lingering;
    return p;
}

bool fa_inproc_run(fa_inproc_t *ip, int client_fd, char **out, size_t *len, size_t *cap)
{
    fa_worker_t *w = &ip->worker;
    bool eof = false;
    unsigned quiet = 0;
    for (unsigned turn = 0; turn < MAX_TURNS && quiet < QUIET_TURNS; turn++) {
        uint64_t before = progress(ip);
        ev_run(w->loop, EVRUN_NOWAIT);
        fa_conn_reap(w); /* what the worker's ev_check does after the I/O callbacks */
        bool moved = progress(ip) != before;
        if (client_fd >= 0 && !eof) {
            int r = collect(client_fd, out, len, cap);
            if (r < 0)
                eof = true;
            moved |= r != 0;
        }
        quiet = moved ? 0 : quiet + 1;
    }
    return eof;
}

bool fa_inproc_settle(fa_inproc_t *ip, int client_fd, char **out, size_t *len, size_t *cap,
                      double max_seconds)
{
    fa_worker_t *w = &ip->worker;
    bool eof = fa_inproc_run(ip, client_fd, out, len, cap);
    ev_now_update(w->loop);
    double until = ev_now(w->loop) + max_seconds;
    while (!fa_sched_quiescent(&ip->sched) && ev_now(w->loop) < until) {
        ev_run(w->loop, EVRUN_ONCE); /* sleeps until the next timer or I/O */
        eof |= fa_inproc_run(ip, eof ? -1 : client_fd, out, len, cap);
    }
    return eof;
}

bool fa_inproc_send(fa_inproc_t *ip, int client_fd, const void *data, size_t n, char **out,
                    size_t *len, size_t *cap)
{
    const char *p = data;
    while (n > 0) {
        ssize_t k = send(client_fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k, n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno == EAGAIN) {
            /* The server reads no more for now (high water, a waiting stage): let it move. */
            uint64_t before = progress(ip);
            size_t had = len ? *len : 0;
            bool eof = fa_inproc_run(ip, client_fd, out, len, cap);
            if (eof)
                return false;
            if (progress(ip) == before && (len ? *len : 0) == had) {
                /* Stalled: the server stopped reading (e.g. it is lingering after an error and
                 * our buffer is full). Nothing more can be delivered. */
                return false;
            }
            continue;
        }
        return false; /* EPIPE, ECONNRESET: the server closed */
    }
    return true;
}

void fa_inproc_hangup(fa_inproc_t *ip, int client_fd)
{
    close(client_fd);
    fa_inproc_settle(ip, -1, NULL, NULL, NULL, 5.0);
}

bool fa_inproc_idle(const fa_inproc_t *ip, char *why, size_t whylen)
{
    const fa_worker_t *w = &ip->worker;
    if (w->nconns || w->conns) {
        const fa_conn_t *c = w->conns;
        say(why, whylen, "%u connections still open (state %d, rio %d, wio %d, lingering %d, "
            "want_close %d, eof %d, rstart %u, rend %u, rcap %u, wpending %zu)",
            w->nconns, c ? (int)c->state : -1, c ? ev_is_active(&c->rio) : -1,
            c ? ev_is_active(&c->wio) : -1, c ? c->lingering : -1, c ? c->want_close : -1,
            c ? c->eof : -1, c ? c->rstart : 0u, c ? c->rend : 0u, c ? c->rcap : 0u,
            c ? c->wlen - c->wpos : 0);
        return false;
    }
    if (w->closing) {
        say(why, whylen, "a closed connection was not reaped");
        return false;
    }
    /* The worker's memory meter must come back to what the recycled connections hold. */
    size_t held = 0;
    for (const fa_conn_t *c = w->free_conns; c; c = c->next)
        held += fa__conn_mem(c);
    if (w->mem != held) {
        say(why, whylen, "memory meter says %zu bytes, the recycled connections hold %zu",
            w->mem, held);
        return false;
    }
    if (!fa_sched_quiescent(&ip->sched)) {
        fa_sched_stats_t st;
        fa_sched_stats(&ip->sched, &st);
        say(why, whylen, "scheduler busy: %u futures, %u states, %u timers, %u queued",
            st.futures_live, st.aux_live, st.timers_active, st.queued);
        return false;
    }
    return true;
}

/* Finds "\r\n\r\n" in [p, end); NULL when absent. */
static const char *find_blank(const char *p, const char *end)
{
    for (; end - p >= 4; p++)
        if (p[0] == '\r' && p[1] == '\n' && p[2] == '\r' && p[3] == '\n')
            return p;
    return NULL;
}

static bool starts_response(const char *p, const char *end)
{
    return end - p >= 9 && memcmp(p, "HTTP/1.1 ", 9) == 0;
}

int fa_inproc_check_responses(const char *buf, size_t len, bool allow_partial, char *why,
                              size_t whylen)
{
    const char *p = buf, *end = buf + len;
    int count = 0;
    while (p < end) {
        size_t at = (size_t)(p - buf);
        if (end - p < 13 || !find_blank(p, end)) {
            size_t k = FA_MIN((size_t)(end - p), (size_t)9);
            if (allow_partial && memcmp(p, "HTTP/1.1 ", k) == 0)
                return count;
            say(why, whylen, "offset %zu: truncated response", at);
            return -1;
        }
        if (!starts_response(p, end) || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
            p[11] < '0' || p[11] > '9' || p[12] != ' ') {
            say(why, whylen, "offset %zu: not a status line: %.20s", at, p);
            return -1;
        }
        int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        const char *blank = find_blank(p, end);
        const char *body = blank + 4;

        /* Header lines: exactly one Content-Length on final responses. */
        long long clen = -1;
        unsigned ncl = 0;
        for (const char *line = memchr(p, '\n', (size_t)(blank - p)); line && line < blank;) {
            line++;
            const char *eol = memchr(line, '\r', (size_t)(blank + 2 - line));
            if (!eol)
                break;
            static const char cl[] = "Content-Length:";
            if ((size_t)(eol - line) > sizeof(cl) - 1 && strncasecmp(line, cl, sizeof(cl) - 1) == 0) {
                ncl++;
                char *e;
                clen = strtoll(line + sizeof(cl) - 1, &e, 10);
                if (e != eol || clen < 0) {
                    say(why, whylen, "offset %zu: bad Content-Length", at);
                    return -1;
                }
            }
            line = eol + 1;
        }
        if (status < 200) {
            if (ncl) {
                say(why, whylen, "offset %zu: %d response with a Content-Length", at, status);
                return -1;
            }
            p = body;
            continue;
        }
        if (ncl != 1) {
            say(why, whylen, "offset %zu: %u Content-Length headers in a %d response", at, ncl,
                status);
            return -1;
        }
        count++;
        size_t left = (size_t)(end - body);
        if ((size_t)clen <= left &&
            ((size_t)clen == left || starts_response(body + clen, end))) {
            p = body + clen;
        } else if (body == end || starts_response(body, end)) {
            p = body; /* an answer to HEAD: the length of a body that is not sent */
        } else if (allow_partial && (size_t)clen > left) {
            return count - 1;
        } else {
            say(why, whylen, "offset %zu: body does not match Content-Length %lld (%zu bytes follow)",
                at, clen, left);
            return -1;
        }
    }
    return count;
}
