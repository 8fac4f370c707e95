/*
 * worker.h — one worker process: its loop, its listeners, its connections, its counters.
 *
 * The worker struct is the context passed explicitly on the hot path; there are no hidden globals
 * besides the one pointer the signal watchers need. It lives for the whole life of the worker
 * process (allocated once after fork, never freed before exit).
 */
#ifndef FA_WORKER_H
#define FA_WORKER_H

#include "app.h"
#include "config.h"
#include "fa.h"

#include <ev.h>

typedef struct fa_agg fa_agg_t;
typedef struct fa_sched fa_sched_t;
typedef struct fa_counters fa_counters_t;
typedef struct fa_counters_slot fa_counters_slot_t;
typedef struct fa_accesslog fa_accesslog_t;

typedef struct {
    ev_io io;
    fa_worker_t *worker;
    int fd;
} fa_accept_t;

/* Per-worker counters; plain integers, only the worker writes them. */
typedef struct {
    uint64_t requests;
    uint64_t requests_fast; /* of which parsed by the fast path (fa__http_parse_fast), not llhttp */
    uint64_t connections_total;
    uint64_t responses[6]; /* by status class: [1] 1xx ... [5] 5xx, [0] other */
    uint64_t accept_errors;
} fa_worker_stats_t;

struct fa_worker {
    unsigned id;    /* slot: 0..workers-1, also the CPU index it is pinned to */
    unsigned shard; /* aggregator shard this process writes */
    unsigned generation;
    struct ev_loop *loop;
    const fa_config_t *config;
    const fa_app_t *app;
    fa_agg_t *agg;
    fa_sched_t *sched;
    /* Operational counters (counters.h): the whole shared region, for readers, and the slot
     * only this process writes. Set by the master before fa_worker_run; NULL in harnesses. */
    const fa_counters_t *counters;
    fa_counters_slot_t *counter_slot;
    /* The start times (ev_now) of this loop iteration's answered requests: their latencies go
     * into counter_slot's histogram with one clock read when the iteration ends
     * (fa_worker_flush_latency), not one per response. Their counts go in at once. */
    unsigned nlat;
    double lat[256];
    fa_accesslog_t *access;  /* NULL unless log.access; owned by the worker */
    ev_timer ops_timer;      /* flushes the access log, publishes the connection counters */
    struct fa_upstreams *upstreams; /* per-worker upstream connection pools (upstream.h) */

    fa_accept_t *accept; /* one per listening socket this worker serves */
    unsigned naccept;
    bool accepting;
    ev_timer accept_retry; /* EMFILE back-off */
    double accept_error_logged; /* ev_now of the last "pausing accepts" line */

    /* connections: a doubly linked list of live ones, a free list of recycled ones */
    fa_conn_t *conns;
    fa_conn_t *free_conns;
    fa_conn_t *closing; /* closed this iteration, recycled in on_check */
    unsigned nconns;
    unsigned nfree;
    /* Bytes held for connections, live and recycled: the structs, read and write buffers and
     * request pools (their extra blocks through fa_pool_set_meter). limits.worker_memory caps
     * it; conn.c keeps it exact. */
    size_t mem;
    double mem_limit_logged; /* ev_now of the last "memory limit reached" line */

    bool stopping;
    bool llhttp_only; /* never the fast path (fa__http_parse_fast): harnesses compare the two */
    double stop_at; /* ev_now when the graceful stop began */
    ev_timer stop_timer;
    ev_check check;
    ev_signal sig_term, sig_int, sig_quit, sig_usr1, sig_hup;

    /* "Server: ...\r\nDate: ...\r\n" cache; the date part is refreshed when the second changes */
    char head_lines[192];
    size_t head_lines_len;
    size_t date_off; /* where the date text starts in head_lines */
    char date[32];
    size_t date_len;
    int64_t date_sec;

    int ready_fd; /* pipe to the master: one byte when accepting; -1 afterwards */
    fa_worker_stats_t stats;
};

/**
 * Runs a worker process to the end: pins it, builds its loop and pools, starts accepting on
 * listen_fds (borrowed: inherited from the master), writes 'R' to ready_fd, and serves until a
 * graceful stop completes. Returns the process exit status.
 */
int fa_worker_run(fa_worker_t *worker, const int *listen_fds, unsigned nlisten);

/**
 * Adds the latencies of the responses made since the last call to the shared histogram, each
 * measured from the request's start to now (one clock read). Runs when the loop is about to wait
 * (its responses have been sent), when the records fill up, and before a stage of this process
 * reads the counters. Other processes see an iteration's latencies once it ended.
 */
void fa_worker_flush_latency(fa_worker_t *worker);

/** Starts or stops watching the listening sockets (max_connections, shutdown, EMFILE). */
void fa_worker_accept_enable(fa_worker_t *worker, bool on);

/** Refreshes the Date cache if the second changed; returns the "Date: ...\r\n" line's value. */
void fa_worker_update_date(fa_worker_t *worker);

#endif
