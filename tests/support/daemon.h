/*
 * daemon.h — test support: run the real fasterapid binary on 127.0.0.1 and talk HTTP to it.
 *
 * The binary is $FASTERAPID_BIN (set by make check), configs are read relative to $FA_SRCDIR.
 * Every daemon gets a free port, its stderr goes to a temporary log file that tests can search.
 */
#ifndef FA_TEST_DAEMON_H
#define FA_TEST_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    int port;
    char log_path[256];
    char conf_path[512];
} fa_td_t;

/** A free TCP port on 127.0.0.1 (bound then released). */
int fa_td_free_port(void);

/** Absolute path of a file in the source tree. */
const char *fa_td_src(const char *rel, char *buf, size_t len);

/**
 * Starts the daemon on conf (absolute or relative to the source tree) with -o overrides (NULL
 * terminated list, may be NULL) plus server.listen on a free port; waits until the log says every
 * worker accepts. Returns false (and kills it) if it did not get ready within 20 s.
 */
bool fa_td_start(fa_td_t *d, const char *conf, const char *const *overrides);

/** Sends sig to the master and waits up to timeout_s for it to exit; returns its wait status,
 * or -1 if it had to be killed. */
int fa_td_stop(fa_td_t *d, int sig, double timeout_s);

/** True if the daemon's log contains needle (waits up to timeout_s for it to appear). */
bool fa_td_log_has(const fa_td_t *d, const char *needle, double timeout_s);

/** Pids of the master's children (the workers); returns how many. */
int fa_td_workers(const fa_td_t *d, pid_t *pids, int max);

/* ---- a tiny HTTP/1.1 client ---- */

typedef struct {
    int fd;
    char buf[1 << 17];
    size_t len;
} fa_tc_t;

typedef struct {
    int status;
    char head[8192]; /* status line and headers, NUL-terminated */
    char body[1 << 16];
    size_t body_len;
} fa_tresp_t;

/** Connects to 127.0.0.1:port (blocking socket, 10 s receive timeout). False on failure. */
bool fa_tc_connect(fa_tc_t *c, int port);
void fa_tc_close(fa_tc_t *c);

/** Sends all of data. */
bool fa_tc_send(fa_tc_t *c, const char *data, size_t len);

/** Reads one response (Content-Length framed; HEAD responses: pass head_req). False on EOF or
 * timeout before a whole response. */
bool fa_tc_read(fa_tc_t *c, fa_tresp_t *r, bool head_req);

/** True if the peer closed the connection (reads EOF within timeout_ms, discarding nothing). */
bool fa_tc_closed(fa_tc_t *c, int timeout_ms);

/** One request on a new connection; returns the status or -1. r may be NULL. */
int fa_tc_once(int port, const char *raw, fa_tresp_t *r);

/** The value of header name in r (case-insensitive), copied into out; false if absent. */
bool fa_tresp_header(const fa_tresp_t *r, const char *name, char *out, size_t len);

/** "POST /event" request text for userId/value into buf. */
const char *fa_tc_event(char *buf, size_t len, const char *user, const char *value);

/** The same event POSTed to path. */
const char *fa_tc_event_to(char *buf, size_t len, const char *path, const char *user,
                           const char *value);

#endif
