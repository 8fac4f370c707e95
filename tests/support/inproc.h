/*
 * inproc.h — test support: a whole worker in the calling process, with no listener and no fork,
 * fed through socketpairs.
 *
 * It builds a fa_worker_t by hand (its own libev loop, a scheduler, the config and the app from a
 * YAML file, a small private aggregator with one shard) and serves the server end of a socketpair
 * with fa_conn_adopt, exactly as the accept path would serve a TCP connection. The caller writes
 * request bytes into the client end, turns the loop with fa_inproc_run until nothing moves, and
 * reads the response bytes back. Used by the request-path fuzzer (tests/fuzz/fuzz_request.c), the
 * truncation-point test (tests/test_inproc.c) and in-process benchmarks.
 *
 * Lifetime: everything is owned by the fa_inproc_t, from fa_inproc_init to fa_inproc_fini. Client
 * fds returned by fa_inproc_connect belong to the caller (close them, or hand them to
 * fa_inproc_hangup). Single-threaded; the fa_inproc_t must not move after init (watchers point
 * into it). Several may coexist (each has its own loop).
 */
#ifndef FA_TEST_INPROC_H
#define FA_TEST_INPROC_H

#include "agg.h"
#include "app.h"
#include "config.h"
#include "sched.h"
#include "worker.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    fa_worker_t worker; /* loop, config, app, agg and sched point at the fields below */
    fa_sched_t sched;
    fa_config_t *config;
    fa_app_t *app;
    fa_agg_t *agg;
} fa_inproc_t;

/**
 * Builds the in-process worker from the config file at path (absolute, or relative to the source
 * tree: $FA_SRCDIR, else the current directory) with "-o" overrides (may be NULL when noverrides
 * is 0), and an aggregator for agg_capacity keys. Returns false with a message in err (errlen
 * bytes) when the config or app does not build.
 */
bool fa_inproc_init(fa_inproc_t *ip, const char *path, const char *const *overrides,
                    size_t noverrides, size_t agg_capacity, char *err, size_t errlen);

/**
 * Closes every connection still open, releases the recycled ones, and frees the scheduler, app,
 * config, aggregator and loop. Returns the number of futures still live at the end (0 when the
 * request path released everything it took).
 */
unsigned fa_inproc_fini(fa_inproc_t *ip);

/**
 * Creates a non-blocking socketpair, adopts one end as a client connection of the worker, and
 * returns the other (client) end, also non-blocking, owned by the caller. -1 on failure (errno).
 */
int fa_inproc_connect(fa_inproc_t *ip);

/**
 * Turns the loop without blocking (EVRUN_NOWAIT) until a few turns in a row made no progress (no
 * request handled, no scheduler task run, no connection closed or reaped, nothing read from
 * client_fd), reaping closed connections after each turn as the worker's ev_check does. When
 * out is not NULL, the bytes client_fd receives meanwhile are appended to *out (a fa_malloc'd
 * buffer the caller frees with fa_free; *len and *cap track it; *out may start NULL). Pass
 * client_fd -1 to only turn the loop. Returns true when client_fd saw EOF.
 */
bool fa_inproc_run(fa_inproc_t *ip, int client_fd, char **out, size_t *len, size_t *cap);

/**
 * fa_inproc_run, then, while a stage still waits (the scheduler is not quiescent: a timer or a
 * future is pending), blocking loop turns until it settles or max_seconds pass. For configs whose
 * stages wait on short timers (a delay stage). Returns true when client_fd saw EOF.
 */
bool fa_inproc_settle(fa_inproc_t *ip, int client_fd, char **out, size_t *len, size_t *cap,
                      double max_seconds);

/**
 * Writes all of data to client_fd, turning the loop (and collecting output as fa_inproc_run does)
 * whenever the socket buffer is full. False if the server closed its end before all was written.
 */
bool fa_inproc_send(fa_inproc_t *ip, int client_fd, const void *data, size_t n, char **out,
                    size_t *len, size_t *cap);

/** Closes client_fd and turns the loop until the server side is closed and reaped (waiting up to
 * 5 s for stages that wait on timers, see fa_inproc_settle). */
void fa_inproc_hangup(fa_inproc_t *ip, int client_fd);

/**
 * True when the worker holds nothing for a client: no open or closing connection, and a
 * quiescent scheduler (no live future, timer or queued task). Otherwise false with the reason in
 * why (whylen bytes).
 */
bool fa_inproc_idle(const fa_inproc_t *ip, char *why, size_t whylen);

/**
 * Checks that buf (len bytes) is a sequence of well-formed responses as the server writes them:
 * each starts with "HTTP/1.1 " and a 3-digit status and a space, its header section ends with an
 * empty line, every final (non-1xx) response carries one Content-Length, and the body that
 * follows has exactly that length (or none at all, for an answer to HEAD). A trailing partial
 * response is an error unless allow_partial. Returns the number of final responses, or -1 with
 * the reason in why.
 */
int fa_inproc_check_responses(const char *buf, size_t len, bool allow_partial, char *why,
                              size_t whylen);

#endif
