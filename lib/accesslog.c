/*
 * accesslog.c — see accesslog.h.
 */
#include "accesslog.h"
#include "alloc.h"
#include "buf.h"
#include "conn.h"
#include "log.h"
#include "req.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)
#define FIELD_MAX 1024 /* request text per field, before escaping */
/* The longest line: five request fields escaped at 4 bytes a byte, plus the fixed parts. */
#define LINE_MAX_BYTES (5 * 4 * FIELD_MAX + 512)

typedef enum { FMT_COMBINED, FMT_COMMON, FMT_JSON } format_t;

struct fa_accesslog {
    char *path; /* fa_malloc'd copy; NULL for standard output */
    int fd;
    format_t format;
    unsigned worker;
    char *buf; /* BUF_SIZE bytes, fa_malloc'd */
    size_t len;
    uint64_t dropped;    /* lines lost to failed writes */
    double last_warning; /* when the last failed write was logged */
    double now;          /* the time the cached stamps below stand for (whole seconds) */
    char clf_time[40];   /* "[26/Nov/2026:17:00:00 +0000]" */
    char iso_time[32];   /* "2026-11-26T17:00:00Z" */
};

static int open_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

fa_accesslog_t *fa_accesslog_open(const char *path, const char *format, unsigned worker, char *err,
                                  size_t errlen)
{
    int fd = 1;
    if (path && *path) {
        fd = open_path(path);
        if (fd < 0) {
            snprintf(err, errlen, "cannot open the access log %s: %s", path, strerror(-fd));
            return NULL;
        }
    }
    fa_accesslog_t *log = fa_calloc(1, sizeof(*log));
    log->fd = fd;
    log->path = path && *path ? fa_strndup(path, strlen(path)) : NULL;
    log->format = strcmp(format, "json") == 0     ? FMT_JSON
                  : strcmp(format, "common") == 0 ? FMT_COMMON
                                                  : FMT_COMBINED;
    log->worker = worker;
    log->buf = fa_malloc(BUF_SIZE);
    log->now = -1;
    return log;
}

/*
 * Writes the whole buffer. Standard output may be a pipe that is full (journald stuck): the lines
 * are dropped then rather than blocking the worker, and the loss is reported in the error log.
 */
void fa_accesslog_flush(fa_accesslog_t *log)
{
    size_t off = 0;
    while (off < log->len) {
        ssize_t n = write(log->fd, log->buf + off, log->len - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        for (size_t i = off; i < log->len; i++)
            log->dropped += log->buf[i] == '\n';
        double t = (double)time(NULL);
        if (t - log->last_warning >= 60) {
            log->last_warning = t;
            fa_log_error("access log: %s; %llu lines dropped so far",
                         n < 0 ? strerror(errno) : "short write",
                         (unsigned long long)log->dropped);
        }
        break;
    }
    log->len = 0;
}

int fa_accesslog_reopen(fa_accesslog_t *log)
{
    fa_accesslog_flush(log);
    if (!log->path)
        return 0;
    int fd = open_path(log->path);
    if (fd < 0) {
        fa_log_error("cannot reopen the access log %s: %s", log->path, strerror(-fd));
        return fd;
    }
    close(log->fd);
    log->fd = fd;
    return 0;
}

void fa_accesslog_close(fa_accesslog_t *log)
{
    if (!log)
        return;
    fa_accesslog_flush(log);
    if (log->path)
        close(log->fd);
    fa_free(log->path);
    fa_free(log->buf);
    fa_free(log);
}

/* ---- line building ---- */

static char *put_str(char *p, const char *s)
{
    return fa_put(p, s, strlen(s));
}

static const char hex[] = "0123456789abcdef";

/* Apache-style: printable ASCII except '"' and '\\' as is, the rest as \xHH; "-" when empty. */
static char *put_clf(char *p, fa_str_t s)
{
    if (!s.ptr || !s.len)
        return fa_put(p, "-", 1);
    size_t n = FA_MIN(s.len, FIELD_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
            *p++ = (char)ch;
        } else {
            *p++ = '\\', *p++ = 'x', *p++ = hex[ch >> 4], *p++ = hex[ch & 15];
        }
    }
    return p;
}

/* JSON string contents: bytes >= 0x80 are escaped too, so the line is valid whatever came in. */
static char *put_json(char *p, fa_str_t s)
{
    size_t n = s.ptr ? FA_MIN(s.len, FIELD_MAX) : 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (ch == '"' || ch == '\\') {
            *p++ = '\\', *p++ = (char)ch;
        } else if (ch >= 0x20 && ch < 0x7f) {
            *p++ = (char)ch;
        } else {
            p = fa_put(p, "\\u00", 4);
            *p++ = hex[ch >> 4], *p++ = hex[ch & 15];
        }
    }
    return p;
}

static void update_time(fa_accesslog_t *log, double now)
{
    double sec = (double)(int64_t)now;
    if (sec == log->now)
        return;
    log->now = sec;
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(log->clf_time, sizeof(log->clf_time), "[%d/%b/%Y:%H:%M:%S +0000]", &tm);
    strftime(log->iso_time, sizeof(log->iso_time), "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The client's address, looked up once per connection (one getpeername per connection). */
static fa_str_t peer(fa_conn_t *c)
{
    if (!c->_access_peer[0]) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        const char *s = NULL;
        char text[INET6_ADDRSTRLEN];
        if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET)
                s = inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text, sizeof(text));
            else if (ss.ss_family == AF_INET6)
                s = inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text,
                              sizeof(text));
        }
        snprintf(c->_access_peer, sizeof(c->_access_peer), "%s", s ? s : "-");
    }
    return (fa_str_t){c->_access_peer, strlen(c->_access_peer)};
}

/*
 * Runs from fa_req_respond, before the connection goes on with its next request, so every view
 * of req is still valid. The line is built straight into the buffer.
 */
void fa_accesslog_append(fa_accesslog_t *log, const fa_req_t *req, int status, size_t body_len,
                         double now)
{
    if (BUF_SIZE - log->len < LINE_MAX_BYTES)
        fa_accesslog_flush(log);
    update_time(log, now);
    fa_str_t remote = peer(req->conn);
    fa_str_t referer = fa_req_header(req, "referer", 7);
    fa_str_t agent = fa_req_header(req, "user-agent", 10);
    char proto[] = "HTTP/1.1";
    proto[5] = (char)('0' + req->http_major % 10);
    proto[7] = (char)('0' + req->http_minor % 10);
    char *p = log->buf + log->len;

    if (log->format == FMT_JSON) {
        p = put_str(p, "{\"time\":\"");
        p = put_str(p, log->iso_time);
        p = put_str(p, "\",\"remote\":\"");
        p = put_json(p, remote);
        p = put_str(p, "\",\"method\":\"");
        p = put_json(p, req->method_str);
        p = put_str(p, "\",\"target\":\"");
        p = put_json(p, req->target);
        p = put_str(p, "\",\"proto\":\"");
        p = put_str(p, proto);
        p = put_str(p, "\",\"status\":");
        p = fa_put_uint(p, (uint64_t)status);
        p = put_str(p, ",\"bytes\":");
        p = fa_put_uint(p, body_len);
        p = put_str(p, ",\"duration_us\":");
        double d = now - req->start;
        p = fa_put_uint(p, d > 0 ? (uint64_t)(d * 1e6) : 0);
        p = put_str(p, ",\"referer\":\"");
        p = put_json(p, referer);
        p = put_str(p, "\",\"user_agent\":\"");
        p = put_json(p, agent);
        p = put_str(p, "\",\"worker\":");
        p = fa_put_uint(p, log->worker);
        p = put_str(p, "}\n");
    } else {
        p = put_clf(p, remote);
        p = put_str(p, " - - ");
        p = put_str(p, log->clf_time);
        p = put_str(p, " \"");
        p = put_clf(p, req->method_str);
        *p++ = ' ';
        p = put_clf(p, req->target);
        *p++ = ' ';
        p = put_str(p, proto);
        p = put_str(p, "\" ");
        p = fa_put_uint(p, (uint64_t)status);
        *p++ = ' ';
        p = fa_put_uint(p, body_len);
        if (log->format == FMT_COMBINED) {
            p = put_str(p, " \"");
            p = put_clf(p, referer);
            p = put_str(p, "\" \"");
            p = put_clf(p, agent);
            *p++ = '"';
        }
        *p++ = '\n';
    }
    log->len = (size_t)(p - log->buf);
}
