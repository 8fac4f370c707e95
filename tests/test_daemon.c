/*
 * test_daemon.c — the process model end to end: graceful stop with a request in flight, reload
 * (broken config kept out, new routes taken in, no request lost under load), a worker killed with
 * SIGKILL and respawned without losing acknowledged events, exact totals under concurrency, and
 * the aggregator snapshot across a restart.
 */
#include <criterion/criterion.h>

#include "support/daemon.h"

#define SLOW_REQ "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(daemon, .timeout = 120);

static bool clean_exit(int st)
{
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot read %s", path);
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* Parses {"totalRequests":N,"uniqueUsers":U,...} */
static void stats(int port, long long *total, long long *unique, char *sum, size_t sumlen)
{
    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert_eq(fa_tc_once(port, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n", r), 200);
    cr_assert_eq(sscanf(r->body, "{\"totalRequests\":%lld,\"uniqueUsers\":%lld", total, unique),
                 2, "%s", r->body);
    const char *s = strstr(r->body, "\"sum\":");
    if (sum && s) {
        size_t n = strcspn(s + 6, ",}");
        snprintf(sum, sumlen, "%.*s", (int)n, s + 6);
    }
    free(r);
}

/* ---- a bounded load: each thread posts `count` events on keep-alive connections ---- */

typedef struct {
    int port;
    int id;
    int count;
    bool slow; /* odd events to POST /event/slow, users of their own */
    int ok, failed, other;
    volatile bool *stop;
} load_t;

static void *load_thread(void *arg)
{
    load_t *l = arg;
    fa_tc_t *c = malloc(sizeof(*c));
    fa_tresp_t *r = malloc(sizeof(*r));
    char req[256], user[32];
    bool connected = false;
    for (int i = 0; i < l->count && !(l->stop && *l->stop); i++) {
        if (!connected && !(connected = fa_tc_connect(c, l->port))) {
            l->failed++;
            usleep(1000);
            continue;
        }
        bool slow = l->slow && i % 2;
        snprintf(user, sizeof(user), "%s%d_%d", slow ? "s" : "u", l->id, i % 50);
        /* the slow ones to the route that waits before aggregating */
        fa_tc_event_to(req, sizeof(req), slow ? "/event/slow" : "/event", user, "1.5");
        if (!fa_tc_send(c, req, strlen(req)) || !fa_tc_read(c, r, false)) {
            l->failed++;
            fa_tc_close(c);
            connected = false;
            continue;
        }
        if (r->status == 200)
            l->ok++;
        else
            l->other++;
        if (strstr(r->head, "Connection: close")) {
            fa_tc_close(c);
            connected = false;
        }
    }
    if (connected)
        fa_tc_close(c);
    free(c);
    free(r);
    return NULL;
}

#define NLOAD 4

static void run_load(load_t *l, pthread_t *t, int port, int count, bool slow,
                     volatile bool *stop)
{
    for (int i = 0; i < NLOAD; i++) {
        l[i] = (load_t){.port = port, .id = i, .count = count, .slow = slow, .stop = stop};
        pthread_create(&t[i], NULL, load_thread, &l[i]);
    }
}

/* Waits for the load threads; expects every request answered 200; returns how many were. */
static int join_load(load_t *l, pthread_t *t)
{
    int ok = 0;
    for (int i = 0; i < NLOAD; i++) {
        pthread_join(t[i], NULL);
        ok += l[i].ok;
        cr_expect_eq(l[i].failed + l[i].other, 0, "thread %d: %d failed, %d not 200", i,
                     l[i].failed, l[i].other);
    }
    return ok;
}

/* Four clients post count events each on the http.yaml daemon (slow: every other one through
 * POST /event/slow), 50 users per client, all 1.5; the totals must be exact. */
static void exact_totals(int count, bool slow, const char *want_sum)
{
    fa_td_t d;
    cr_assert(fa_td_start(&d, "tests/conf/http.yaml", NULL), "see %s", d.log_path);
    load_t l[NLOAD];
    pthread_t t[NLOAD];
    run_load(l, t, d.port, count, slow, NULL);
    int ok = join_load(l, t);
    long long total, unique;
    char sum[64];
    stats(d.port, &total, &unique, sum, sizeof(sum));
    cr_assert_eq(ok, NLOAD * count);
    cr_assert_eq(total, NLOAD * count);
    /* per client 50 users; with slow, 25 plain (even i % 50) and 25 slow ones (odd) */
    cr_assert_eq(unique, NLOAD * 50);
    cr_assert_str_eq(sum, want_sum);
    cr_assert(clean_exit(fa_td_stop(&d, SIGTERM, 15)));
}

Test(daemon, exact_totals_under_concurrency)
{
    exact_totals(1500, false, "9000"); /* 6000 events of 1.5 */
}

/* Requests that wait between their parse and their aggregate stage (so that others run in
 * between, on the same worker) interleaved with plain ones: every event counted under its own
 * key. */
Test(daemon, exact_totals_with_a_wait_before_the_aggregate_stage)
{
    exact_totals(400, true, "2400"); /* 1600 events of 1.5 */
}

Test(daemon, graceful_stop_finishes_the_request_in_flight)
{
    fa_td_t d;
    cr_assert(fa_td_start(&d, "tests/conf/http.yaml", NULL), "see %s", d.log_path);
    fa_tc_t *c = malloc(sizeof(*c));
    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert(fa_tc_connect(c, d.port));
    cr_assert(fa_tc_send(c, SLOW_REQ, strlen(SLOW_REQ)));
    usleep(100000);
    kill(d.pid, SIGTERM);
    cr_assert(fa_tc_read(c, r, false), "the in-flight request is answered");
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->body, "slow done");
    char h[32];
    cr_assert(fa_tresp_header(r, "Connection", h, sizeof(h)));
    cr_assert_str_eq(h, "close");
    cr_assert(fa_tc_closed(c, 3000));
    fa_tc_close(c);
    cr_assert(clean_exit(fa_td_stop(&d, 0, 15)), "see %s", d.log_path);
    cr_assert(fa_td_log_has(&d, "stopped", 0));
    free(c);
    free(r);
}

Test(daemon, reload_keeps_a_broken_config_out_and_takes_a_good_one_in)
{
    char conf[128];
    snprintf(conf, sizeof(conf), "/tmp/fa-reload-%d.yaml", (int)getpid());
    char src[512];
    char *good = strdup(read_file(fa_td_src("tests/conf/http.yaml", src, sizeof(src))));
    write_file(conf, good);
    fa_td_t d;
    cr_assert(fa_td_start(&d, conf, NULL), "see %s", d.log_path);

    /* a typo: the reload is refused with a located error, the old config serves on */
    char *broken = malloc(strlen(good) + 64);
    strcpy(broken, good);
    char *w = strstr(broken, "  workers: 2");
    cr_assert(w);
    memcpy(w, "  wrokers: 2", 12);
    write_file(conf, broken);
    kill(d.pid, SIGHUP);
    cr_assert(fa_td_log_has(&d, "reload failed", 10), "see %s", d.log_path);
    char where[200];
    snprintf(where, sizeof(where), "%s:4:3: server.wrokers: unknown key", conf);
    cr_assert(fa_td_log_has(&d, where, 0), "no located error in %s", d.log_path);
    cr_assert_eq(fa_tc_once(d.port, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", NULL), 200);

    /* a new route: served after the reload */
    cr_assert_eq(fa_tc_once(d.port, "GET /new HTTP/1.1\r\nHost: t\r\n\r\n", NULL), 404);
    char *more = malloc(strlen(good) + 200);
    sprintf(more, "%s  - match: GET /new\n    pipeline:\n      - respond: { body: new }\n", good);
    write_file(conf, more);
    kill(d.pid, SIGHUP);
    cr_assert(fa_td_log_has(&d, "reloaded", 10), "see %s", d.log_path);
    cr_assert_eq(fa_tc_once(d.port, "GET /new HTTP/1.1\r\nHost: t\r\n\r\n", NULL), 200);
    cr_assert(clean_exit(fa_td_stop(&d, SIGTERM, 15)));
    unlink(conf);
    free(good);
    free(broken);
    free(more);
}

Test(daemon, reload_under_load_fails_no_request)
{
    fa_td_t d;
    cr_assert(fa_td_start(&d, "tests/conf/http.yaml", NULL), "see %s", d.log_path);
    load_t l[NLOAD];
    pthread_t t[NLOAD];
    run_load(l, t, d.port, 3000, false, NULL);
    for (int i = 0; i < 3; i++) {
        usleep(150000);
        kill(d.pid, SIGHUP);
    }
    int ok = join_load(l, t);
    cr_assert(fa_td_log_has(&d, "reloaded", 5), "see %s", d.log_path);
    long long total, unique;
    stats(d.port, &total, &unique, NULL, 0);
    cr_assert_eq(ok, NLOAD * 3000);
    cr_assert_eq(total, ok, "every acknowledged event counted once");
    cr_assert(clean_exit(fa_td_stop(&d, SIGTERM, 15)));
}

Test(daemon, killed_worker_is_respawned_and_acknowledged_events_survive)
{
    fa_td_t d;
    cr_assert(fa_td_start(&d, "tests/conf/http.yaml", NULL), "see %s", d.log_path);
    load_t l[NLOAD];
    pthread_t t[NLOAD];
    run_load(l, t, d.port, 3000, false, NULL);
    usleep(200000);
    pid_t w[8];
    int nw = fa_td_workers(&d, w, 8);
    cr_assert_eq(nw, 2);
    kill(w[0], SIGKILL);
    int ok = 0, failed = 0;
    for (int i = 0; i < NLOAD; i++) {
        pthread_join(t[i], NULL);
        ok += l[i].ok;
        failed += l[i].failed;
        cr_expect_eq(l[i].other, 0);
    }
    cr_assert(fa_td_log_has(&d, "killed by signal 9", 5), "see %s", d.log_path);
    cr_assert(fa_td_log_has(&d, "respawning", 0));
    usleep(300000);
    cr_assert_eq(fa_td_workers(&d, w, 8), 2, "the worker came back");
    long long total, unique;
    stats(d.port, &total, &unique, NULL, 0);
    /* Every 200 is counted; a request cut by the kill may have been counted without its answer. */
    cr_assert_geq(total, ok);
    cr_assert_leq(total, ok + failed);
    cr_assert_eq(unique, NLOAD * 50);
    cr_assert(clean_exit(fa_td_stop(&d, SIGTERM, 15)));
}

Test(daemon, snapshot_survives_a_restart_and_a_corrupt_one_is_refused)
{
    char snap[128], opt[200];
    snprintf(snap, sizeof(snap), "/tmp/fa-snap-%d.bin", (int)getpid());
    unlink(snap);
    snprintf(opt, sizeof(opt), "aggregator.snapshot=%s", snap);
    const char *ov[] = {opt, NULL};
    fa_td_t d;
    cr_assert(fa_td_start(&d, "tests/conf/http.yaml", ov), "see %s", d.log_path);
    char req[256];
    cr_assert_eq(fa_tc_once(d.port, fa_tc_event(req, sizeof(req), "a", "0.1"), NULL), 200);
    cr_assert_eq(fa_tc_once(d.port, fa_tc_event(req, sizeof(req), "b", "0.2"), NULL), 200);
    cr_assert(clean_exit(fa_td_stop(&d, SIGTERM, 15)));

    cr_assert(fa_td_start(&d, "tests/conf/http.yaml", ov), "see %s", d.log_path);
    long long total, unique;
    char sum[64];
    stats(d.port, &total, &unique, sum, sizeof(sum));
    cr_assert_eq(total, 2);
    cr_assert_eq(unique, 2);
    cr_assert_str_eq(sum, "0.3");
    cr_assert_eq(fa_tc_once(d.port, fa_tc_event(req, sizeof(req), "a", "1"), NULL), 200);
    stats(d.port, &total, &unique, NULL, 0);
    cr_assert_eq(unique, 2, "a restored key is not new");
    cr_assert(clean_exit(fa_td_stop(&d, SIGTERM, 15)));

    /* flip one byte: the daemon refuses to start and says why */
    FILE *f = fopen(snap, "r+b");
    cr_assert(f);
    fseek(f, 50, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 50, SEEK_SET);
    fputc(ch ^ 0x5a, f);
    fclose(f);
    cr_assert_not(fa_td_start(&d, "tests/conf/http.yaml", ov));
    cr_assert(fa_td_log_has(&d, "refusing to start", 0), "see %s", d.log_path);
    const char *ov2[] = {opt, NULL};
    (void)ov2;
    unlink(snap);
}

Test(daemon, serves_ipv4_and_ipv6_on_one_port)
{
    int port = fa_td_free_port();
    char opt[128];
    snprintf(opt, sizeof(opt), "server.listen=[\"127.0.0.1:%d\", \"[::1]:%d\"]", port, port);
    const char *ov[] = {opt, NULL};
    fa_td_t d;
    cr_assert(fa_td_start(&d, "tests/conf/http.yaml", ov), "see %s", d.log_path);
    d.port = port;
    cr_assert_eq(fa_tc_once(port, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", NULL), 200);
    /* IPv6 loopback, with a plain socket */
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    a.sin6_addr = in6addr_loopback;
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    const char *req = "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    char buf[512] = {0};
    ssize_t n = 0, m;
    while ((m = read(fd, buf + n, sizeof(buf) - 1 - (size_t)n)) > 0)
        n += m;
    close(fd);
    cr_assert(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    cr_assert(strstr(buf, "{\"status\":\"healthy\"}"), "%s", buf);
    char name[64];
    snprintf(name, sizeof(name), "listening on [::1]:%d", port);
    cr_assert(fa_td_log_has(&d, name, 0));
    cr_assert(clean_exit(fa_td_stop(&d, SIGTERM, 15)));
}

Test(daemon, a_port_in_use_is_a_fatal_error_naming_the_address)
{
    int port = fa_td_free_port();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 1), 0);
    char opt[64];
    snprintf(opt, sizeof(opt), "server.listen=127.0.0.1:%d", port);
    const char *ov[] = {opt, NULL};
    fa_td_t d;
    cr_assert_not(fa_td_start(&d, "tests/conf/http.yaml", ov));
    char msg[96];
    snprintf(msg, sizeof(msg), "bind to 127.0.0.1:%d: Address already in use", port);
    cr_assert(fa_td_log_has(&d, msg, 0), "see %s", d.log_path);
    close(fd);
}
