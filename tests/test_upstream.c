/*
 * test_upstream.c — the upstream client and the fetch / fan_out / merge stages end to end: the
 * real daemon (tests/conf/upstream.yaml) in front of a small threaded HTTP server started by each
 * test on 127.0.0.1, which logs what it sees ("+tag" when a request arrives, "-tag" when it is
 * answered, "!tag" when the daemon closed the connection of a request it was holding).
 *
 * Parallelism is shown without clocks: the fan_out route calls a barrier that answers only once
 * all three calls are in (sequential calls would never get there), and the sequential route's
 * log must read +a -a +b -b +c -c. Also: templates, chaining, timeouts (504), the partial and
 * first policies, status passthrough, bad upstreams (garbage, reset, too large, refused -> 502
 * with the worker still serving), cancellation on client disconnect and connection reuse.
 * Config errors are in test_upstream_config.c.
 */
#include <criterion/criterion.h>

#include "support/daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the test upstream server ---- */

typedef struct {
    int lfd, port;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char log[16384];
    size_t loglen;
    int accepts;
    int arrived; /* at the barrier */
    volatile int stop;
} srv_t;

static srv_t srv;
static fa_td_t daemon_;

static void srv_log(srv_t *s, char mark, const char *tag)
{
    pthread_mutex_lock(&s->mu);
    s->loglen += (size_t)snprintf(s->log + s->loglen, sizeof(s->log) - s->loglen, "%c%s ", mark,
                                  tag);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static bool srv_log_has(srv_t *s, const char *needle, int timeout_ms)
{
    bool found = false;
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += timeout_ms / 1000;
    end.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (end.tv_nsec >= 1000000000) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->mu);
    while (!(found = strstr(s->log, needle) != NULL))
        if (pthread_cond_timedwait(&s->cv, &s->mu, &end) == ETIMEDOUT) {
            found = strstr(s->log, needle) != NULL;
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return found;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void reply(int fd, int status, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     status, strlen(body));
    send_all(fd, head, (size_t)n);
    send_all(fd, body, strlen(body));
}

/* Waits up to ms for the peer to close fd; true if it did. */
static bool peer_closed(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return false;
    char c;
    return recv(fd, &c, 1, MSG_PEEK) <= 0;
}

/* Copies header name's value from the request head (or ""). */
static void header_of(const char *head, const char *name, char *out, size_t len)
{
    out[0] = 0;
    char pat[64];
    snprintf(pat, sizeof(pat), "\r\n%s: ", name);
    const char *h = strcasestr(head, pat);
    if (h) {
        h += strlen(pat);
        size_t n = strcspn(h, "\r\n");
        snprintf(out, len, "%.*s", (int)(n < len - 1 ? n : len - 1), h);
    }
}

/* Escapes " and \ for the echo body. */
static void esc(const char *in, char *out, size_t len)
{
    size_t n = 0;
    for (; *in && n + 3 < len; in++) {
        if (*in == '"' || *in == '\\')
            out[n++] = '\\';
        out[n++] = *in;
    }
    out[n] = 0;
}

static void *conn_thread(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[65536];
    size_t len = 0;
    for (;;) {
        char *end;
        while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
            ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
            if (r == 0 && len == 0)
                srv_log(&srv, '~', "eof"); /* the daemon closed a connection between requests */
            if (r <= 0)
                goto out;
            len += (size_t)r;
        }
        *end = 0;
        size_t headlen = (size_t)(end - buf) + 4;
        char cl[32];
        header_of(buf, "Content-Length", cl, sizeof(cl));
        size_t blen = (size_t)atol(cl);
        while (len < headlen + blen) {
            ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
            if (r <= 0)
                goto out;
            len += (size_t)r;
        }
        char method[16], target[1024], body[4096];
        snprintf(body, sizeof(body), "%.*s", (int)blen, buf + headlen);
        if (sscanf(buf, "%15s %1023s", method, target) != 2)
            goto out;
        char tag[256], out[16384];
        int ms, n;
        if (sscanf(target, "/d/%d/%255s", &ms, tag) == 2) {
            srv_log(&srv, '+', tag);
            if (ms)
                usleep((useconds_t)ms * 1000);
            srv_log(&srv, '-', tag);
            pthread_mutex_lock(&srv.mu);
            int acc = srv.accepts;
            pthread_mutex_unlock(&srv.mu);
            snprintf(out, sizeof(out), "{\"tag\":\"%s\",\"conn\":%d}", tag, acc);
            reply(fd, 200, out);
        } else if (sscanf(target, "/b/%d/%255s", &n, tag) == 2) {
            srv_log(&srv, '+', tag);
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 10;
            bool ok = true;
            pthread_mutex_lock(&srv.mu);
            srv.arrived++;
            pthread_cond_broadcast(&srv.cv);
            while (srv.arrived < n && ok)
                ok = pthread_cond_timedwait(&srv.cv, &srv.mu, &until) != ETIMEDOUT;
            pthread_mutex_unlock(&srv.mu);
            srv_log(&srv, '-', tag);
            snprintf(out, sizeof(out), "{\"tag\":\"%s\",\"together\":%s}", tag,
                     ok ? "true" : "false");
            reply(fd, ok ? 200 : 500, out);
        } else if (sscanf(target, "/hold/%255s", tag) == 1) {
            srv_log(&srv, '+', tag);
            if (peer_closed(fd, 10000)) {
                srv_log(&srv, '!', tag);
                goto out;
            }
            reply(fd, 200, "{\"held\":true}");
        } else if (sscanf(target, "/status/%d", &n) == 1) {
            snprintf(out, sizeof(out), "{\"code\":%d}", n);
            reply(fd, n, out);
        } else if (strncmp(target, "/echo", 5) == 0) {
            char hdr[256], auth[256], e1[512], e2[512], e3[8192];
            header_of(buf, "X-Test", hdr, sizeof(hdr));
            header_of(buf, "Authorization", auth, sizeof(auth));
            esc(hdr, e1, sizeof(e1));
            esc(auth, e2, sizeof(e2));
            esc(body, e3, sizeof(e3));
            snprintf(out, sizeof(out),
                     "{\"method\":\"%s\",\"target\":\"%s\",\"hdr\":\"%s\",\"auth\":\"%s\","
                     "\"body\":\"%s\"}",
                     method, target, e1, e2, e3);
            reply(fd, 200, out);
        } else if (strcmp(target, "/garbage") == 0) {
            send_all(fd, "NOT HTTP AT ALL\r\n\r\n", 19);
            goto out;
        } else if (strcmp(target, "/reset") == 0) {
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            goto out;
        } else if (strcmp(target, "/big") == 0) {
            static char big[200001];
            memset(big, 'x', sizeof(big) - 1);
            reply(fd, 200, big);
        } else {
            reply(fd, 404, "{}");
        }
        memmove(buf, buf + headlen + blen, len - headlen - blen);
        len -= headlen + blen;
    }
out:
    close(fd);
    return NULL;
}

static void *accept_thread(void *arg)
{
    srv_t *s = arg;
    while (!s->stop) {
        struct pollfd p = {.fd = s->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&s->mu);
        s->accepts++;
        pthread_mutex_unlock(&s->mu);
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_create(&t, &a, conn_thread, (void *)(intptr_t)fd);
        pthread_attr_destroy(&a);
    }
    return NULL;
}

static void srv_start(srv_t *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(s->lfd, 128), 0);
    getsockname(s->lfd, (struct sockaddr *)&a, &alen);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->th, NULL, accept_thread, s);
}

static void srv_stop(srv_t *s)
{
    s->stop = 1;
    pthread_join(s->th, NULL);
    close(s->lfd);
}

/* ---- fixture: server + daemon ---- */

/* A listening socket whose accept queue is full (backlog 0, one connection never accepted):
 * the kernel drops further SYNs, so a connect to it hangs until the connecter gives up. */
static int bh_lfd = -1, bh_cfd = -1, bh_port, dead_port;

static void blackhole_start(void)
{
    bh_lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    cr_assert_eq(bind(bh_lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(bh_lfd, 0), 0);
    getsockname(bh_lfd, (struct sockaddr *)&a, &alen);
    bh_port = ntohs(a.sin_port);
    bh_cfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(bh_cfd, (struct sockaddr *)&a, sizeof(a)), 0);
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    srv_start(&srv);
    blackhole_start();
    dead_port = fa_td_free_port(); /* nothing listens there */
    int dead2 = fa_td_free_port();
    char ups[1024];
    snprintf(ups, sizeof(ups),
             "upstreams=[{name: svc, addresses: \"127.0.0.1:%d\"},"
             " {name: small, addresses: [\"127.0.0.1:%d\"], max_response_bytes: 64k},"
             " {name: dead, addresses: \"127.0.0.1:%d\", connect_timeout: 500ms},"
             " {name: fo, addresses: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"], pool_size: 0},"
             " {name: alldead, addresses: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]},"
             " {name: bh, addresses: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"], pool_size: 0,"
             " connect_timeout: 2s},"
             " {name: brief, addresses: \"127.0.0.1:%d\", idle_timeout: 100ms}]",
             srv.port, srv.port, dead_port, dead_port, srv.port, dead_port, dead2, bh_port,
             srv.port, srv.port);
    const char *ov[] = {ups, NULL};
    cr_assert(fa_td_start(&daemon_, "tests/conf/upstream.yaml", ov), "daemon did not start");
}

static void teardown(void)
{
    int st = fa_td_stop(&daemon_, SIGTERM, 10);
    srv_stop(&srv);
    close(bh_cfd);
    close(bh_lfd);
    cr_expect_neq(st, -1, "the daemon had to be killed");
    cr_expect(!fa_td_log_has(&daemon_, "futures still live", 0), "futures leaked at exit");
}

TestSuite(upstream, .init = setup, .fini = teardown, .timeout = 60);

static int get(const char *path, fa_tresp_t *r)
{
    char req[512];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    return fa_tc_once(daemon_.port, req, r);
}

static fa_tresp_t *resp(void)
{
    static fa_tresp_t r;
    memset(&r, 0, sizeof(r));
    return &r;
}

/* ---- tests ---- */

Test(upstream, fan_out_calls_run_together)
{
    fa_tresp_t *r = resp();
    /* The server answers the barrier only once all three calls are in: sequential calls would
     * each wait for the others and get a 500 after 10 s. */
    cr_assert_eq(get("/par", r), 200, "%s", r->body);
    cr_assert_str_eq(r->body,
                     "{\"a\":{\"tag\":\"a\"},\"b\":{\"tag\":\"b\",\"together\":true},"
                     "\"c\":{\"tag\":\"c\",\"together\":true}}");
}

Test(upstream, fetch_stages_run_one_after_the_other)
{
    fa_tresp_t *r = resp();
    cr_assert_eq(get("/seq/20", r), 200, "%s", r->body);
    cr_assert(strstr(r->body, "\"a\":{\"tag\":\"a\""), "%s", r->body);
    cr_assert(strstr(r->body, "\"c\":{\"tag\":\"c\""), "%s", r->body);
    pthread_mutex_lock(&srv.mu);
    cr_assert_str_eq(srv.log, "+a -a +b -b +c -c ");
    pthread_mutex_unlock(&srv.mu);
}

Test(upstream, later_stage_uses_an_earlier_result)
{
    fa_tresp_t *r = resp();
    cr_assert_eq(get("/chain", r), 200, "%s", r->body);
    cr_assert(strstr(r->body, "\"second\":{\"method\":\"GET\",\"target\":\"/echo/first\""), "%s",
              r->body);
    cr_assert(!strstr(r->body, "\"first\":"), "merge lists only the results asked: %s", r->body);
}

Test(upstream, templates_headers_and_json_body)
{
    fa_tresp_t *r = resp();
    const char *body = "{\"msg\":\"hi \\\"you\\\"\"}";
    char req[512];
    snprintf(req, sizeof(req),
             "POST /tpl/x:y HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer abc\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    cr_assert_eq(fa_tc_once(daemon_.port, req, r), 200, "%s", r->body);
    cr_assert(strstr(r->body, "\"method\":\"POST\""), "%s", r->body);
    cr_assert(strstr(r->body, "\"target\":\"/echo/x%3Ay\""), "path values are encoded: %s",
              r->body);
    cr_assert(strstr(r->body, "\"hdr\":\"hi \\\"you\\\"\""), "%s", r->body);
    cr_assert(strstr(r->body, "\"auth\":\"Bearer abc\""), "%s", r->body);
    /* The JSON body as sent upstream, escaped once more by the echo. */
    cr_assert(strstr(r->body, "\"body\":\"{\\\"msg\\\":\\\"hi \\\\\\\"you\\\\\\\"\\\",\\\"n\\\":5}\""),
              "%s", r->body);
}

Test(upstream, flatten_merges_members_first_wins)
{
    fa_tresp_t *r = resp();
    cr_assert_eq(get("/flat", r), 200, "%s", r->body);
    cr_assert(strncmp(r->body, "{\"tag\":\"x\",\"conn\":", 18) == 0, "%s", r->body);
    cr_assert(!strstr(r->body, "\"y\""), "y's tag and conn were taken by x: %s", r->body);
}

Test(upstream, call_timeout_answers_504_and_closes_the_call)
{
    fa_tresp_t *r = resp();
    cr_assert_eq(get("/timeout", r), 504, "%s", r->body);
    cr_assert(strstr(r->body, "slow: timed out"), "%s", r->body);
    /* The held call was cancelled: its connection closed, not left to the server. */
    cr_assert(srv_log_has(&srv, "!slowT", 5000), "log: %s", srv.log);
    cr_assert(fa_td_log_has(&daemon_, "slow: upstream svc: no answer within 0.2s", 2));
}

Test(upstream, partial_policy_answers_with_what_arrived)
{
    fa_tresp_t *r = resp();
    cr_assert_eq(get("/partial", r), 200, "%s", r->body);
    cr_assert_str_eq(r->body, "{\"ok\":{\"tag\":\"p1\"},\"_failed\":[\"bad\",\"slow\"]}");
    char v[64];
    cr_assert(fa_tresp_header(r, "X-Upstream-Failed", v, sizeof(v)));
    cr_assert_str_eq(v, "bad,slow");
}

Test(upstream, first_policy_takes_the_first_success_and_cancels_the_rest)
{
    fa_tresp_t *r = resp();
    cr_assert_eq(get("/first", r), 200, "%s", r->body);
    cr_assert(strstr(r->body, "\"fast\":{\"tag\":\"fast\""), "%s", r->body);
    cr_assert(!strstr(r->body, "hedge"), "%s", r->body);
    cr_assert(srv_log_has(&srv, "!h1", 5000), "the loser was not cancelled: %s", srv.log);
}

Test(upstream, status_passthrough_fail_and_accept)
{
    fa_tresp_t *r = resp();
    cr_assert_eq(get("/pass", r), 404, "%s", r->body);
    cr_assert_str_eq(r->body, "{\"code\":404}");
    cr_assert_eq(get("/fail", r), 502, "%s", r->body);
    cr_assert_str_eq(r->body, "{\"error\":\"svc: upstream svc answered 404\"}");
    cr_assert_eq(get("/accept", r), 200, "%s", r->body);
    cr_assert_str_eq(r->body, "{\"r\":{\"code\":404}}");
}

Test(upstream, bad_upstreams_answer_502_and_the_worker_goes_on)
{
    static const struct {
        const char *path, *msg, *log;
    } cases[] = {
        {"/bad/garbage", "small: upstream small: invalid response", "GET /garbage: invalid response"},
        {"/bad/reset", "small: upstream small: ", "GET /reset: "},
        {"/bad/big", "small: upstream small: response larger than max_response_bytes (65536)",
         "GET /big: response larger than max_response_bytes (65536)"},
        {"/refused", "dead: upstream dead: connect: Connection refused",
         "GET /x: connect: Connection refused"},
        {"/alldead", "alldead: upstream alldead: connect: Connection refused (every address "
                     "failed)",
         "GET /x: connect: Connection refused (every address failed)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fa_tresp_t *r = resp();
        cr_assert_eq(get(cases[i].path, r), 502, "%s: %s", cases[i].path, r->body);
        cr_assert(strstr(r->body, cases[i].msg), "%s: %s", cases[i].path, r->body);
        cr_assert(fa_td_log_has(&daemon_, cases[i].log, 2), "%s: no log line", cases[i].path);
    }
    fa_tresp_t *r = resp();
    cr_assert_eq(get("/health", r), 200);
    cr_assert_eq(get("/reuse", r), 200, "%s", r->body);
}

Test(upstream, client_disconnect_cancels_the_call)
{
    fa_tc_t *c = malloc(sizeof(*c));
    cr_assert(fa_tc_connect(c, daemon_.port));
    const char *req = "GET /hold/cx HTTP/1.1\r\nHost: t\r\n\r\n";
    cr_assert(fa_tc_send(c, req, strlen(req)));
    cr_assert(srv_log_has(&srv, "+cx", 5000), "the call never started: %s", srv.log);
    /* An abortive close: the daemon reads a reset. */
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    fa_tc_close(c);
    free(c);
    cr_assert(srv_log_has(&srv, "!cx", 5000), "the upstream connection stayed open: %s", srv.log);
    fa_tresp_t *r = resp();
    cr_assert_eq(get("/reuse", r), 200, "%s", r->body);
}

Test(upstream, client_close_cancels_the_call_too)
{
    fa_tc_t *c = malloc(sizeof(*c));
    cr_assert(fa_tc_connect(c, daemon_.port));
    const char *req = "GET /hold/cf HTTP/1.1\r\nHost: t\r\n\r\n";
    cr_assert(fa_tc_send(c, req, strlen(req)));
    cr_assert(srv_log_has(&srv, "+cf", 5000), "the call never started: %s", srv.log);
    /* A plain close (FIN) while the request waits: the client gave up, as nginx reads it. */
    fa_tc_close(c);
    free(c);
    cr_assert(srv_log_has(&srv, "!cf", 5000), "the upstream connection stayed open: %s", srv.log);
    fa_tresp_t *r = resp();
    cr_assert_eq(get("/reuse", r), 200, "%s", r->body);
}

Test(upstream, keepalive_connections_are_reused)
{
    fa_tresp_t *r = resp();
    for (int i = 0; i < 10; i++)
        cr_assert_eq(get("/reuse", r), 200, "%s", r->body);
    /* One worker, one call at a time: the first connection served every call. */
    cr_assert_str_eq(r->body, "{\"svc\":{\"tag\":\"r\",\"conn\":1}}");
    pthread_mutex_lock(&srv.mu);
    cr_assert_eq(srv.accepts, 1);
    pthread_mutex_unlock(&srv.mu);
}

/* How many lines of the daemon's log hold needle. */
static int log_count(const char *needle)
{
    FILE *f = fopen(daemon_.log_path, "r");
    cr_assert_not_null(f);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

Test(upstream, a_refused_address_falls_over_to_the_next)
{
    /* fo is [dead, alive] with no idle pool: every call connects. The first starts at the dead
     * address, is refused and goes on to the live one; later calls pass the dead one over. */
    fa_tresp_t *r = resp();
    for (int i = 0; i < 4; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/fo/%d", i);
        cr_assert_eq(get(path, r), 200, "call %d: %s", i, r->body);
        snprintf(path, sizeof(path), "\"tag\":\"fo%d\"", i);
        cr_assert(strstr(r->body, path), "%s", r->body);
    }
    char needle[96];
    snprintf(needle, sizeof(needle), "upstream fo: connect to 127.0.0.1:%d: Connection refused",
             dead_port);
    cr_assert(fa_td_log_has(&daemon_, needle, 2), "the first call did not try the dead address");
    cr_assert_eq(log_count(needle), 1, "the dead address was tried again");
    pthread_mutex_lock(&srv.mu);
    cr_assert_eq(srv.accepts, 4);
    pthread_mutex_unlock(&srv.mu);
}

Test(upstream, a_connect_that_hangs_falls_over_within_the_budget)
{
    /* bh is [blackhole, alive], connect_timeout 2s: the blackhole gets half of it, then the
     * live address answers the same call. */
    fa_tresp_t *r = resp();
    cr_assert_eq(get("/bh", r), 200, "%s", r->body);
    cr_assert(strstr(r->body, "\"tag\":\"bh\""), "%s", r->body);
    char needle[96];
    snprintf(needle, sizeof(needle), "upstream bh: connect to 127.0.0.1:%d: Connection timed out",
             bh_port);
    cr_assert(fa_td_log_has(&daemon_, needle, 2), "the blackhole was not tried first");
    /* The next call passes the blackhole over. */
    cr_assert_eq(get("/bh", r), 200, "%s", r->body);
    cr_assert_eq(log_count(needle), 1);
}

Test(upstream, idle_connections_close_after_idle_timeout)
{
    /* brief keeps idle connections 100 ms: the server sees the daemon close the connection
     * between requests, and the next call connects anew. */
    fa_tresp_t *r = resp();
    cr_assert_eq(get("/idle", r), 200, "%s", r->body);
    cr_assert_str_eq(r->body, "{\"brief\":{\"tag\":\"idle\",\"conn\":1}}");
    cr_assert(srv_log_has(&srv, "~eof", 5000), "the idle connection stayed open: %s", srv.log);
    cr_assert_eq(get("/idle", r), 200, "%s", r->body);
    cr_assert_str_eq(r->body, "{\"brief\":{\"tag\":\"idle\",\"conn\":2}}");
}
