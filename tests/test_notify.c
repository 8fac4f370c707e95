/*
 * test_notify.c — the systemd readiness protocol, with the test playing systemd: it binds an
 * AF_UNIX datagram socket, starts the daemon with NOTIFY_SOCKET pointing at it, and checks the
 * messages and their order: READY=1 (with MAINPID and STATUS) once every worker accepts,
 * RELOADING=1 with MONOTONIC_USEC then READY=1 around SIGHUP (a failed reload too), a periodic
 * STATUS= with the request count, STOPPING=1 at SIGTERM.
 */
#include <criterion/criterion.h>

#include "support/daemon.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

TestSuite(notify, .timeout = 90);

typedef struct {
    int fd;
    char path[108];
} nsock_t;

static void nsock_open(nsock_t *s)
{
    snprintf(s->path, sizeof(s->path), "/tmp/fa-notify-%d.sock", (int)getpid());
    unlink(s->path);
    s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s->fd, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", s->path);
    cr_assert_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setenv("NOTIFY_SOCKET", s->path, 1);
}

static void nsock_close(nsock_t *s)
{
    unsetenv("NOTIFY_SOCKET");
    close(s->fd);
    unlink(s->path);
}

/* The next message (NUL-terminated in buf), or false after timeout_ms. */
static bool nsock_recv(nsock_t *s, char *buf, size_t len, int timeout_ms)
{
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return false;
    ssize_t n = recv(s->fd, buf, len - 1, 0);
    if (n < 0)
        return false;
    buf[n] = 0;
    return true;
}

/* Reads messages until one holds field (a whole "KEY=VALUE" line, or "KEY=" as a prefix);
 * fails on a message holding any of the forbidden fields first. */
static bool has_line(const char *msg, const char *field)
{
    size_t n = strlen(field);
    bool prefix = field[n - 1] == '=';
    for (const char *l = msg; l && *l;) {
        const char *e = strchr(l, '\n');
        size_t ln = e ? (size_t)(e - l) : strlen(l);
        if (prefix ? (ln >= n && strncmp(l, field, n) == 0)
                   : (ln == n && strncmp(l, field, n) == 0))
            return true;
        l = e ? e + 1 : NULL;
    }
    return false;
}

static void expect(nsock_t *s, const char *field, const char *forbidden, char *msg, size_t len)
{
    for (;;) {
        cr_assert(nsock_recv(s, msg, len, 20000), "no %s message", field);
        cr_assert(!forbidden || !has_line(msg, forbidden), "%s before %s: %s", forbidden, field,
                  msg);
        if (has_line(msg, field))
            return;
    }
}

static double mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void copy_conf(const char *to)
{
    char src[512];
    fa_td_src("tests/conf/ops.yaml", src, sizeof(src));
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", src, to);
    cr_assert_eq(system(cmd), 0);
}

Test(notify, ready_reloading_ready_stopping_in_order)
{
    nsock_t s;
    nsock_open(&s);
    char conf[128];
    snprintf(conf, sizeof(conf), "/tmp/fa-notify-%d.yaml", (int)getpid());
    copy_conf(conf);
    fa_td_t d;
    cr_assert(fa_td_start(&d, conf, NULL));
    char msg[1024];

    /* Start: READY=1 only once the workers accept (fa_td_start waited for that in the log),
     * and nothing about reloading or stopping before it. */
    expect(&s, "READY=1", "STOPPING=1", msg, sizeof(msg));
    cr_assert(!has_line(msg, "RELOADING=1"), "%s", msg);
    char mainpid[32];
    snprintf(mainpid, sizeof(mainpid), "MAINPID=%d", (int)d.pid);
    cr_assert(has_line(msg, mainpid), "%s", msg);
    cr_assert(has_line(msg, "STATUS=serving with 2 workers; 0 requests"), "%s", msg);
    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert_eq(fa_tc_once(d.port, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n", r), 200);

    /* Reload: RELOADING=1 with the monotonic time of the request, then READY=1 once the new
     * generation accepts. */
    double t0 = mono_us();
    kill(d.pid, SIGHUP);
    expect(&s, "RELOADING=1", "READY=1", msg, sizeof(msg));
    double t1 = mono_us();
    const char *m = strstr(msg, "MONOTONIC_USEC=");
    cr_assert(m, "RELOADING=1 without MONOTONIC_USEC: %s", msg);
    double usec = strtod(m + 15, NULL);
    cr_assert(usec >= t0 - 1 && usec <= t1 + 1, "MONOTONIC_USEC %.0f not in [%.0f, %.0f]", usec,
              t0, t1);
    expect(&s, "READY=1", "STOPPING=1", msg, sizeof(msg));
    cr_assert(has_line(msg, "STATUS="), "%s", msg);
    cr_assert(fa_td_log_has(&d, "reloaded: generation 2", 5));

    /* A broken config: RELOADING=1, then READY=1 saying the old config still serves. */
    FILE *f = fopen(conf, "a");
    fputs("bogus_section: 1\n", f);
    fclose(f);
    kill(d.pid, SIGHUP);
    expect(&s, "RELOADING=1", "READY=1", msg, sizeof(msg));
    expect(&s, "READY=1", "STOPPING=1", msg, sizeof(msg));
    cr_assert(strstr(msg, "STATUS=reload failed"), "%s", msg);

    /* While serving, STATUS= follows the request count (every few seconds, when it changed). */
    cr_assert_eq(fa_tc_once(d.port, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n", r), 200);
    for (;;) {
        cr_assert(nsock_recv(&s, msg, sizeof(msg), 20000), "no STATUS= update");
        cr_assert(!has_line(msg, "STOPPING=1"));
        if (strstr(msg, "STATUS=serving with 2 workers; 2 requests"))
            break;
    }

    /* Stop: STOPPING=1. */
    kill(d.pid, SIGTERM);
    expect(&s, "STOPPING=1", "READY=1", msg, sizeof(msg));
    cr_assert_eq(fa_td_stop(&d, SIGTERM, 20), 0);
    free(r);
    nsock_close(&s);
    unlink(conf);
}

Test(notify, nothing_is_sent_without_notify_socket)
{
    /* The socket exists but the daemon is not told about it: it must stay silent and work. */
    nsock_t s;
    nsock_open(&s);
    unsetenv("NOTIFY_SOCKET");
    fa_td_t d;
    cr_assert(fa_td_start(&d, "tests/conf/ops.yaml", NULL));
    kill(d.pid, SIGHUP);
    cr_assert(fa_td_log_has(&d, "reloaded: generation 2", 10));
    cr_assert_eq(fa_td_stop(&d, SIGTERM, 20), 0);
    char msg[256];
    cr_assert(!nsock_recv(&s, msg, sizeof(msg), 100), "unexpected message: %s", msg);
    nsock_close(&s);
}
