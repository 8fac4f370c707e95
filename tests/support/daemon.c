/*
 * daemon.c — see daemon.h.
 */
#include "daemon.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int fa_td_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

const char *fa_td_src(const char *rel, char *buf, size_t len)
{
    if (rel[0] == '/') {
        snprintf(buf, len, "%s", rel);
        return buf;
    }
    const char *src = getenv("FA_SRCDIR");
    snprintf(buf, len, "%s/%s", src ? src : ".", rel);
    return buf;
}

bool fa_td_log_has(const fa_td_t *d, const char *needle, double timeout_s)
{
    double end = now_s() + timeout_s;
    do {
        FILE *f = fopen(d->log_path, "r");
        if (f) {
            char line[4096];
            bool found = false;
            while (!found && fgets(line, sizeof(line), f))
                found = strstr(line, needle) != NULL;
            fclose(f);
            if (found)
                return true;
        }
        if (timeout_s > 0)
            usleep(20000);
    } while (now_s() < end);
    return false;
}

bool fa_td_start(fa_td_t *d, const char *conf, const char *const *overrides)
{
    memset(d, 0, sizeof(*d));
    const char *bin = getenv("FASTERAPID_BIN");
    if (!bin)
        bin = "build/fasterapid";
    fa_td_src(conf, d->conf_path, sizeof(d->conf_path));
    d->port = fa_td_free_port();
    /* make check keeps the logs of its last run under build/test-logs (FA_TEST_LOGDIR); a test
     * binary run by hand writes them to /tmp. */
    const char *logdir = getenv("FA_TEST_LOGDIR");
    snprintf(d->log_path, sizeof(d->log_path), "%s/fa-test-%d-%d.log",
             logdir && *logdir ? logdir : "/tmp", (int)getpid(), d->port);
    char listen[64];
    snprintf(listen, sizeof(listen), "server.listen=127.0.0.1:%d", d->port);
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "-c";
    argv[n++] = d->conf_path;
    argv[n++] = "-o";
    argv[n++] = listen;
    for (int i = 0; overrides && overrides[i] && n < 60; i++) {
        argv[n++] = "-o";
        argv[n++] = overrides[i];
    }
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* A failed assertion ends the test process without fa_td_stop: the daemon must not
         * outlive it (holding its port, writing its log). SIGTERM: the master stops its workers. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        int fd = open(d->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        close(fd);
        setpgid(0, 0);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    d->pid = pid;
    double end = now_s() + 20;
    while (now_s() < end) {
        if (fa_td_log_has(d, "ready:", 0))
            return true;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            d->pid = 0;
            return false;
        }
        usleep(20000);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
    d->pid = 0;
    return false;
}

int fa_td_stop(fa_td_t *d, int sig, double timeout_s)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig);
    double end = now_s() + timeout_s;
    int status;
    while (now_s() < end) {
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = 0;
            return status;
        }
        usleep(10000);
    }
    kill(-d->pid, SIGKILL);
    waitpid(d->pid, &status, 0);
    d->pid = 0;
    return -1;
}

int fa_td_workers(const fa_td_t *d, pid_t *pids, int max)
{
    int n = 0;
    DIR *dir = opendir("/proc");
    struct dirent *e;
    while (dir && (e = readdir(dir)) && n < max) {
        int pid = atoi(e->d_name);
        if (pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t got = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[got] = 0;
        char *rp = strrchr(buf, ')');
        int ppid = 0;
        char state;
        if (rp && sscanf(rp + 2, "%c %d", &state, &ppid) == 2 && ppid == d->pid && state != 'Z')
            pids[n++] = pid;
    }
    if (dir)
        closedir(dir);
    return n;
}

/* ---- client ---- */

bool fa_tc_connect(fa_tc_t *c, int port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 10};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(c->fd);
        c->fd = -1;
        return false;
    }
    return true;
}

void fa_tc_close(fa_tc_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

bool fa_tc_send(fa_tc_t *c, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

static bool fill(fa_tc_t *c)
{
    if (c->len == sizeof(c->buf))
        return false;
    ssize_t n;
    do
        n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

bool fa_tc_read(fa_tc_t *c, fa_tresp_t *r, bool head_req)
{
    memset(r, 0, offsetof(fa_tresp_t, body));
    r->body_len = 0;
    r->body[0] = 0;
    char *end;
    for (;;) {
        c->buf[c->len < sizeof(c->buf) ? c->len : sizeof(c->buf) - 1] = 0;
        end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end)
            break;
        if (!fill(c))
            return false;
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    size_t copy = hlen < sizeof(r->head) ? hlen : sizeof(r->head) - 1;
    memcpy(r->head, c->buf, copy);
    r->head[copy] = 0;
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
        return false;
    char cl[32];
    size_t blen = 0;
    if (!head_req && r->status >= 200 && r->status != 204 && r->status != 304 &&
        fa_tresp_header(r, "Content-Length", cl, sizeof(cl)))
        blen = (size_t)strtoull(cl, NULL, 10);
    while (c->len < hlen + blen)
        if (!fill(c))
            return false;
    r->body_len = blen < sizeof(r->body) - 1 ? blen : sizeof(r->body) - 1;
    memcpy(r->body, c->buf + hlen, r->body_len);
    r->body[r->body_len] = 0;
    memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
    c->len -= hlen + blen;
    return true;
}

bool fa_tc_closed(fa_tc_t *c, int timeout_ms)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return false;
    char b[256];
    ssize_t n = recv(c->fd, b, sizeof(b), MSG_PEEK);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

int fa_tc_once(int port, const char *raw, fa_tresp_t *r)
{
    static __thread fa_tc_t c;
    static __thread fa_tresp_t tmp;
    if (!fa_tc_connect(&c, port))
        return -1;
    if (!r)
        r = &tmp;
    int status = -1;
    if (fa_tc_send(&c, raw, strlen(raw)) && fa_tc_read(&c, r, strncmp(raw, "HEAD ", 5) == 0))
        status = r->status;
    fa_tc_close(&c);
    return status;
}

bool fa_tresp_header(const fa_tresp_t *r, const char *name, char *out, size_t len)
{
    size_t n = strlen(name);
    for (const char *l = strstr(r->head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
            const char *v = h + n + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t vl = e ? (size_t)(e - v) : strlen(v);
            if (vl >= len)
                vl = len - 1;
            memcpy(out, v, vl);
            out[vl] = 0;
            return true;
        }
    }
    return false;
}

const char *fa_tc_event_to(char *buf, size_t len, const char *path, const char *user,
                           const char *value)
{
    char body[512];
    int bl = snprintf(body, sizeof(body), "{\"userId\":\"%s\",\"value\":%s}", user, value);
    snprintf(buf, len,
             "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
             "Content-Length: %d\r\n\r\n%s",
             path, bl, body);
    return buf;
}

const char *fa_tc_event(char *buf, size_t len, const char *user, const char *value)
{
    return fa_tc_event_to(buf, len, "/event", user, value);
}
