/*
 * test_exhaustion.c — the daemon at its resource limits, over real sockets: out of descriptors
 * (EMFILE: keep serving, pause accepts without spinning, resume), a client that floods requests
 * and never reads the answers (bounded memory, cut off after timeouts.write), and thousands of
 * connections abandoned mid-request (every descriptor comes back, nothing half-read is counted).
 *
 * What the worker holds is read from /proc/<worker>/ (fd count, CPU ticks, RSS): no debug hook
 * in the daemon is needed, and the figures are the kernel's.
 */
#include <criterion/criterion.h>

#include "support/daemon.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static fa_td_t d;

static void stop(void)
{
    if (d.pid > 0) {
        int st = fa_td_stop(&d, SIGTERM, 15);
        cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "daemon did not stop cleanly (status %d); see %s", st, d.log_path);
    }
}

TestSuite(exhaustion, .fini = stop, .timeout = 90);

static void start(const char *const *overrides)
{
    cr_assert(fa_td_start(&d, "tests/conf/http.yaml", overrides), "daemon did not start; see %s",
              d.log_path);
}

static pid_t the_worker(void)
{
    pid_t w[4];
    cr_assert_eq(fa_td_workers(&d, w, 4), 1, "expected one worker");
    return w[0];
}

static unsigned count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(path);
    cr_assert(dir, "%s: %m", path);
    unsigned n = 0;
    for (struct dirent *e; (e = readdir(dir));)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

/* User + system CPU time of pid, in clock ticks. */
static unsigned long long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    cr_assert(p);
    unsigned long long ut = 0, st = 0;
    cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st),
                 2);
    return ut + st;
}

/* Resident memory of pid, in KiB. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    cr_assert(kib > 0);
    return kib;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Waits up to timeout_ms for pid to hold exactly want descriptors; returns what it holds. */
static unsigned wait_fds(pid_t pid, unsigned want, long timeout_ms)
{
    unsigned n = count_fds(pid);
    for (long t = 0; n != want && t < timeout_ms; t += 50) {
        sleep_ms(50);
        n = count_fds(pid);
    }
    return n;
}

static int request(fa_tc_t *c, const char *raw)
{
    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert(r);
    int status = -1;
    if (fa_tc_send(c, raw, strlen(raw)) && fa_tc_read(c, r, false))
        status = r->status;
    free(r);
    return status;
}

#define HEALTH "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"

/*
 * The worker runs with RLIMIT_NOFILE 64 and gets 100 connections: the kernel completes every
 * handshake (the backlog is large), the worker accepts until EMFILE, then pauses accepting for
 * 100 ms at a time instead of spinning on a listener that stays readable. The connections it has
 * keep being served; once some close, the queued ones are accepted and served.
 */
Test(exhaustion, out_of_descriptors_keeps_serving_and_resumes_accepting)
{
    enum { N = 100, CLOSE = 60 };
    struct rlimit old, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 64;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    /* Idle connections must stay open for the whole test: long header/keep-alive timeouts. */
    const char *ov[] = {"server.workers=1", "timeouts.header=60s", "timeouts.keepalive=60s",
                        NULL};
    bool ok = fa_td_start(&d, "tests/conf/http.yaml", ov);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0); /* the daemon keeps 64; we need more */
    cr_assert(ok, "daemon did not start; see %s", d.log_path);
    pid_t w = the_worker();

    fa_tc_t *c = calloc(N, sizeof(*c));
    cr_assert(c);
    for (int i = 0; i < N; i++)
        cr_assert(fa_tc_connect(&c[i], d.port), "connect %d: %m", i);
    cr_assert(fa_td_log_has(&d, "pausing accepts", 10), "no EMFILE pause; see %s", d.log_path);
    cr_assert_leq(count_fds(w), 64);

    /* An accepted connection is still served while the worker is out of descriptors. */
    cr_assert_eq(request(&c[0], HEALTH), 200);

    /* No busy loop: over one second at the limit the worker uses a small fraction of a CPU
     * (a spinning accept would use all of it). */
    long hz = sysconf(_SC_CLK_TCK);
    unsigned long long t0 = cpu_ticks(w);
    sleep_ms(1000);
    unsigned long long used = cpu_ticks(w) - t0;
    cr_log_info("at the descriptor limit for 1 s: worker used %llu of %ld CPU ticks", used, hz);
    cr_assert_lt(used, (unsigned long long)hz / 10, "worker used %llu of %ld ticks at the limit",
                 used, hz);
    cr_assert_leq(count_fds(w), 64);

    /* Free descriptors: the queued connections are accepted and answered, the first one too. */
    for (int i = 1; i <= CLOSE; i++)
        fa_tc_close(&c[i]);
    for (int i = CLOSE + 1; i < N; i++)
        cr_assert_eq(request(&c[i], HEALTH), 200, "queued connection %d not served", i);
    cr_assert_eq(request(&c[0], HEALTH), 200);
    for (int i = 0; i < N; i++)
        if (i == 0 || i > CLOSE)
            fa_tc_close(&c[i]);
    free(c);
}

/*
 * A client floods pipelined requests through a tiny receive window and never reads. The worker
 * stops parsing once 256 KiB of answers are pending (so its memory stays bounded), and closes the
 * connection once nothing could be written for timeouts.write.
 */
Test(exhaustion, a_client_that_never_reads_is_cut_off_with_bounded_memory)
{
    const char *ov[] = {"server.workers=1", "timeouts.write=1s", NULL};
    start(ov);
    pid_t w = the_worker();
    unsigned fds0 = count_fds(w);
    long rss0 = rss_kib(w), rss_peak = rss0;

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    int small = 4096;
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %m");
    cr_assert_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);

    static char flood[65536];
    static const char req[] = "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n";
    size_t reqlen = sizeof(req) - 1, fill = sizeof(flood) / reqlen * reqlen;
    for (size_t off = 0; off < fill; off += reqlen)
        memcpy(flood + off, req, reqlen);

    /* Send until the server has stopped reading: 500 ms in a row with the socket full. */
    size_t sent = 0, pos = 0;
    int blocked_ms = 0;
    while (blocked_ms < 500) {
        ssize_t n = send(fd, flood + pos, fill - pos, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            pos = (pos + (size_t)n) % fill;
            blocked_ms = 0;
            continue;
        }
        cr_assert(n < 0 && errno == EAGAIN, "send: %m after %zu bytes", sent);
        sleep_ms(20);
        blocked_ms += 20;
        long r = rss_kib(w);
        rss_peak = r > rss_peak ? r : rss_peak;
    }
    cr_assert_gt(sent, 256 * 1024 / 8, "the flood was too small to test anything (%zu bytes)",
                 sent);

    /* Cut off after the write timeout (1 s) plus the timer's granularity. */
    unsigned fds = wait_fds(w, fds0, 10000);
    cr_assert_eq(fds, fds0, "the worker still holds the connection (%u fds, %u before)", fds,
                 fds0);
    long r = rss_kib(w);
    rss_peak = r > rss_peak ? r : rss_peak;
    cr_log_info("never-reading client: %zu bytes of requests sent, worker RSS +%ld KiB at most",
                sent, rss_peak - rss0);
    cr_assert_lt(rss_peak - rss0, 32 * 1024, "worker RSS grew by %ld KiB", rss_peak - rss0);

    /* The client sees the end: what was sent, then a reset or EOF. */
    char sink[65536];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    bool ended = false;
    for (int i = 0; i < 1000 && !ended && poll(&p, 1, 5000) > 0; i++) {
        ssize_t n = recv(fd, sink, sizeof(sink), 0);
        ended = n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
    }
    cr_assert(ended, "the client never saw the connection end");
    close(fd);

    /* And the worker still serves others. */
    cr_assert_eq(fa_tc_once(d.port, HEALTH, NULL), 200);
}

/*
 * 2000 connections, each abandoned at a different point of an event request (some with a
 * reset instead of a FIN): every descriptor comes back, and no half-received event is counted.
 */
Test(exhaustion, thousands_of_abandoned_connections_give_back_every_descriptor)
{
    enum { ROUNDS = 10, BATCH = 200 };
    const char *ov[] = {"server.workers=1", NULL};
    start(ov);
    pid_t w = the_worker();
    unsigned fds0 = count_fds(w);

    static const char req[] = "POST /event HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
                              "\r\nContent-Length: 26\r\n\r\n{\"userId\":\"ab\",\"value\":1}";
    const size_t len = sizeof(req) - 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    static int fds[BATCH];
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < BATCH; i++) {
            fds[i] = socket(AF_INET, SOCK_STREAM, 0);
            cr_assert(fds[i] >= 0, "socket: %m");
            cr_assert_eq(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %m");
            size_t cut = (size_t)(i * 13 + round) % len; /* never the whole request */
            cr_assert_eq(send(fds[i], req, cut, MSG_NOSIGNAL), (ssize_t)cut);
        }
        for (int i = 0; i < BATCH; i++) {
            if (i % 4 == 0) { /* a reset instead of a FIN */
                struct linger l = {.l_onoff = 1, .l_linger = 0};
                setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &l, sizeof(l));
            }
            close(fds[i]);
        }
    }
    unsigned left = wait_fds(w, fds0, 10000);
    cr_assert_eq(left, fds0, "the worker holds %u descriptors, %u before", left, fds0);

    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert(r);
    cr_assert_eq(fa_tc_once(d.port, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n", r), 200);
    cr_assert(strstr(r->body, "\"totalRequests\":0,"), "%s", r->body);
    free(r);
}

/* Reads what arrives on fd within timeout_ms (up to len - 1 bytes, NUL-terminated). */
static size_t recv_within(int fd, char *buf, size_t len, int timeout_ms)
{
    size_t n = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (n + 1 < len && poll(&p, 1, timeout_ms) == 1) {
        ssize_t k = recv(fd, buf + n, len - 1 - n, 0);
        if (k <= 0)
            break;
        n += (size_t)k;
        if (memmem(buf, n, "\r\n\r\n", 4))
            break; /* a whole header section: enough to decide */
    }
    buf[n] = '\0';
    return n;
}

/* Sends the head of POST path with a Content-Length and Expect: 100-continue. */
static void send_post_head(fa_tc_t *c, const char *path, size_t content_length)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     "Expect: 100-continue\r\nContent-Length: %zu\r\n\r\n",
                     path, content_length);
    cr_assert(fa_tc_send(c, head, (size_t)n));
}

/* {"msg":"ok"   …   } of exactly len bytes (len >= 12), in a malloc'd buffer. */
static char *json_of_len(size_t len)
{
    char *b = malloc(len + 1);
    cr_assert(b);
    memset(b, ' ', len);
    memcpy(b, "{\"msg\":\"ok\"", 11);
    memcpy(b + len - 1, "}", 2);
    return b;
}

/*
 * limits.connection_memory caps what one connection holds. A body announced larger than what
 * is left is refused whole with 413 before it is read (no 100 Continue invites it); a chunked
 * body is refused once it would pass the limit; a body that fits is served; and the worker
 * goes on serving.
 */
Test(exhaustion, connection_memory_refuses_bodies_that_would_not_fit)
{
    const char *ov[] = {"server.workers=1", "limits.body_bytes=1m",
                        "limits.connection_memory=64k", NULL};
    start(ov);
    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert(r);
    char buf[4096];

    /* Announced too large: 413 at once, not 100 Continue. */
    fa_tc_t *c = calloc(1, sizeof(*c));
    cr_assert(c);
    cr_assert(fa_tc_connect(c, d.port));
    send_post_head(c, "/echo", 100000);
    recv_within(c->fd, buf, sizeof(buf), 5000);
    cr_assert(strncmp(buf, "HTTP/1.1 413 ", 13) == 0, "got: %s", buf);
    fa_tc_close(c);

    /* Chunked, growing past the limit: 413 once it would not fit. */
    cr_assert(fa_tc_connect(c, d.port));
    static const char chead[] = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
                                "\r\nTransfer-Encoding: chunked\r\n\r\n";
    cr_assert(fa_tc_send(c, chead, sizeof(chead) - 1));
    static char chunk[8192 + 16];
    memcpy(chunk, "2000\r\n", 6);
    memset(chunk + 6, ' ', 8192);
    memcpy(chunk + 6 + 8192, "\r\n", 2);
    for (int i = 0; i < 16; i++)
        if (!fa_tc_send(c, chunk, 8192 + 8))
            break; /* the server answered and stopped reading: fine */
    cr_assert(fa_tc_read(c, r, false), "no answer to the chunked body");
    cr_assert_eq(r->status, 413, "%s", r->head);
    cr_assert(strstr(r->body, "memory"), "%s", r->body);
    fa_tc_close(c);

    /* A body that fits (20 KB, past the read buffer, so held in the pool) is served. */
    cr_assert(fa_tc_connect(c, d.port));
    char *body = json_of_len(20000);
    send_post_head(c, "/echo", 20000);
    recv_within(c->fd, buf, sizeof(buf), 5000);
    cr_assert(strncmp(buf, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0, "got: %s", buf);
    cr_assert(fa_tc_send(c, body, 20000));
    cr_assert(fa_tc_read(c, r, false));
    cr_assert_eq(r->status, 200, "%s\n%s", r->head, r->body);
    cr_assert_str_eq(r->body, "{\"got\":\"ok\"}");
    free(body);
    /* The same connection goes on. */
    cr_assert_eq(request(c, HEALTH), 200);
    fa_tc_close(c);
    free(c);
    free(r);
}

/*
 * limits.worker_memory caps what all of a worker's connections hold. Three admitted 300 KB
 * bodies (each proven admitted by its 100 Continue) hold most of 1m; a fourth is refused with
 * 503 and Retry-After while requests without a body are still served; once one of the three
 * is answered and closed its memory comes back and the same request is admitted.
 */
Test(exhaustion, worker_memory_refuses_bodies_with_503_until_memory_comes_back)
{
    enum { BODY = 300000, HELD = 3 };
    const char *ov[] = {"server.workers=1", "limits.body_bytes=1m",
                        "limits.connection_memory=512k", "limits.worker_memory=1m",
                        "timeouts.body=60s", NULL};
    start(ov);
    fa_tresp_t *r = malloc(sizeof(*r));
    fa_tc_t *c = calloc(HELD + 2, sizeof(*c));
    cr_assert(r && c);
    char buf[4096];
    char *body = json_of_len(BODY);

    for (int i = 0; i < HELD; i++) {
        cr_assert(fa_tc_connect(&c[i], d.port));
        send_post_head(&c[i], "/echo", BODY);
        recv_within(c[i].fd, buf, sizeof(buf), 5000);
        cr_assert(strncmp(buf, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0, "body %d: %s", i, buf);
        cr_assert(fa_tc_send(&c[i], body, 1000)); /* a part only: the memory stays taken */
    }

    cr_assert(fa_tc_connect(&c[HELD], d.port));
    send_post_head(&c[HELD], "/echo", BODY);
    cr_assert(fa_tc_read(&c[HELD], r, false));
    cr_assert_eq(r->status, 503, "%s", r->head);
    char ra[16];
    cr_assert(fa_tresp_header(r, "Retry-After", ra, sizeof(ra)), "%s", r->head);
    cr_assert_str_eq(ra, "1");
    cr_assert(strstr(r->body, "memory"), "%s", r->body);
    fa_tc_close(&c[HELD]);
    cr_assert(fa_td_log_has(&d, "limits.worker_memory (1048576 bytes) reached", 5),
              "see %s", d.log_path);

    /* No body, no memory to take: still served. And the meter shows in /stats?server=1. */
    unsigned long long shown = 0;
    for (int t = 0; t < 60 && shown < 3ull * BODY; t++) {
        cr_assert_eq(fa_tc_once(d.port, "GET /stats?server=1 HTTP/1.1\r\nHost: t\r\n\r\n", r),
                     200);
        const char *m = strstr(r->body, "\"connectionMemoryBytes\":");
        cr_assert(m, "%s", r->body);
        shown = strtoull(m + 24, NULL, 10);
        if (shown < 3ull * BODY)
            sleep_ms(50); /* published by the worker's timer */
    }
    cr_assert_geq(shown, 3ull * BODY, "connectionMemoryBytes %llu", shown);
    cr_assert_leq(shown, 1ull << 20, "connectionMemoryBytes %llu", shown);

    /* One of the three completes and goes away: its memory comes back. */
    cr_assert(fa_tc_send(&c[0], body + 1000, BODY - 1000));
    cr_assert(fa_tc_read(&c[0], r, false));
    cr_assert_eq(r->status, 200, "%s\n%s", r->head, r->body);
    fa_tc_close(&c[0]);
    bool admitted = false;
    for (int attempt = 0; attempt < 50 && !admitted; attempt++) {
        cr_assert(fa_tc_connect(&c[HELD + 1], d.port));
        send_post_head(&c[HELD + 1], "/echo", BODY);
        recv_within(c[HELD + 1].fd, buf, sizeof(buf), 5000);
        admitted = strncmp(buf, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0;
        if (!admitted) { /* the close may not have been reaped yet */
            cr_assert(strncmp(buf, "HTTP/1.1 503 ", 13) == 0, "got: %s", buf);
            fa_tc_close(&c[HELD + 1]);
            sleep_ms(20);
        }
    }
    cr_assert(admitted, "memory never came back");
    cr_assert(fa_tc_send(&c[HELD + 1], body, BODY));
    cr_assert(fa_tc_read(&c[HELD + 1], r, false));
    cr_assert_eq(r->status, 200, "%s\n%s", r->head, r->body);
    for (int i = 1; i <= HELD + 1; i++)
        if (i != HELD)
            fa_tc_close(&c[i]);
    free(body);
    free(c);
    free(r);
}

/*
 * At limits.worker_memory the worker stops accepting: connections past what 1m holds wait in
 * the listen queue (the ones it has are still served) and are accepted and served once others
 * close and their memory is freed rather than recycled.
 */
Test(exhaustion, worker_memory_pauses_accepting_until_connections_close)
{
    enum { N = 200, CLOSE = 150 };
    const char *ov[] = {"server.workers=1", "limits.connection_memory=64k",
                        "limits.worker_memory=1m", "timeouts.header=60s",
                        "timeouts.keepalive=60s", NULL};
    start(ov);
    pid_t w = the_worker();
    unsigned fds0 = count_fds(w);
    fa_tc_t *c = calloc(N, sizeof(*c));
    cr_assert(c);
    for (int i = 0; i < N; i++)
        cr_assert(fa_tc_connect(&c[i], d.port), "connect %d: %m", i);
    cr_assert(fa_td_log_has(&d, "pausing accepts until memory comes back", 10), "see %s",
              d.log_path);
    sleep_ms(200);
    unsigned open_now = count_fds(w) - fds0;
    cr_log_info("1m of worker memory holds %u idle connections", open_now);
    cr_assert_lt(open_now, (unsigned)N, "every connection was accepted");
    cr_assert_gt(open_now, 10u);
    /* An accepted one is served. */
    cr_assert_eq(request(&c[0], HEALTH), 200);

    for (int i = 1; i <= CLOSE; i++)
        fa_tc_close(&c[i]);
    for (int i = CLOSE + 1; i < N; i++)
        cr_assert_eq(request(&c[i], HEALTH), 200, "queued connection %d not served", i);
    cr_assert_eq(request(&c[0], HEALTH), 200);
    for (int i = 0; i < N; i++)
        if (i == 0 || i > CLOSE)
            fa_tc_close(&c[i]);
    free(c);
}
