/*
 * upstream.h — a non-blocking HTTP/1.1 client for calling other services from a pipeline, and the
 * per-request table of named results the upstream stages (fetch, fan_out, merge) share.
 *
 * Model
 *   Each worker keeps, for every upstream of its config (config.h fa_upstream_conf_t), a pool of
 *   keep-alive connections driven by its own libev loop; llhttp parses the responses. A call
 *   takes a connection (an idle one, or a new non-blocking connect to the next address in turn),
 *   writes one request, reads one response, and hands the connection back to the idle pool when
 *   the response allows it, or closes it. An idle connection is closed after the upstream's
 *   idle_timeout, or as soon as the peer closes it. A connect that fails (refused, unreachable,
 *   timed out) goes on to the upstream's next address within the call's connect_timeout; an
 *   address that failed is passed over by new connections for a while (10 s) unless every
 *   address did. Addresses were resolved when the config was loaded: nothing here does DNS.
 *
 * Results
 *   fa_upstream_call returns a future (future.h) that resolves with
 *   FA_VALUE_POOLED(fa_upstream_resp_t *, sizeof) allocated from the pool given (the request
 *   pool), whatever the HTTP status. It rejects with code 502 (a connect error, a reset, a
 *   response that is not HTTP or is too large, max_connections reached) and a message from the
 *   pool, or with fa_err_timeout (code -ETIMEDOUT) when connect_timeout or response_timeout
 *   expired. Every failure is logged once at warn level.
 *
 * Cancellation
 *   Cancelling the future (the client went away, a stage timeout fired, a combinator settled
 *   early) stops the call at once: its connection, which is in the middle of an exchange, is
 *   closed. A connection whose exchange completed is already back in the pool.
 *
 * Thread: the worker's loop thread only.
 */
#ifndef FA_UPSTREAM_H
#define FA_UPSTREAM_H

#include "config.h"
#include "fa.h"
#include "future.h"
#include "json.h"
#include "pool.h"

/** The per-worker state of every upstream; owned by the worker (w->upstreams). */
typedef struct fa_upstreams fa_upstreams_t;

/** One request to send. Every view is borrowed until the call settles or is cancelled. */
typedef struct {
    fa_str_t method;  /* "GET", "POST", ... */
    fa_str_t target;  /* "/users/42?x=1" */
    fa_str_t headers; /* extra header lines, each ending in "\r\n" (may be empty) */
    fa_str_t body;    /* sent with Content-Length when a body is given or the method is POST/PUT/PATCH */
} fa_upstream_req_t;

/** A response, allocated from the call's pool; valid until that pool is reset. */
typedef struct {
    int status;
    fa_str_t content_type; /* empty when absent */
    fa_str_t body;         /* dechunked */
} fa_upstream_resp_t;

/** Counters of one upstream in one worker (tests, logs). */
typedef struct {
    uint64_t connects; /* connections opened */
    uint64_t reused;   /* calls served by an idle keep-alive connection */
    uint64_t failures; /* calls that rejected (502 or timeout) */
    unsigned open;     /* connections open now, idle included */
    unsigned idle;     /* idle connections in the pool */
} fa_upstream_stats_t;

/**
 * Builds the pools of every upstream of w->config into w->upstreams (fa_malloc; owned by the
 * worker until fa_upstream_worker_fini). Opens no connection. Returns 0. Runs in the worker.
 */
int fa_upstream_worker_init(fa_worker_t *w);

/** Closes every connection (cancelling nothing: call it once no request waits) and frees the
 * pools. No-op when init never ran. */
void fa_upstream_worker_fini(fa_worker_t *w);

/** The index of upstream name in config->upstreams, or -1. */
int fa_upstream_find(const fa_config_t *config, const char *name, size_t len);

/**
 * Starts one call to upstream `index` of w's config; pool (the request pool) holds the response
 * and the messages, and must outlive the call (cancel it before resetting the pool). Returns 0
 * with the future in *out, or -ENOMEM when no future could be had (nothing started). The result
 * is described under "Results" above.
 */
int fa_upstream_call(fa_worker_t *w, unsigned index, fa_pool_t *pool, const fa_upstream_req_t *rq,
                     fa_future_t *out);

/** Fills *st for upstream `index` of worker w. */
void fa_upstream_stats(const fa_worker_t *w, unsigned index, fa_upstream_stats_t *st);

/* ---- named results of the upstream stages ---------------------------------------------------- */

typedef enum {
    FA_UPR_PENDING = 0, /* started, not settled (or cancelled because another call decided) */
    FA_UPR_OK,          /* a response arrived and the stage accepted its status */
    FA_UPR_FAILED,      /* no usable response: error says why */
} fa_upstream_result_state_t;

/** One named result, allocated from req->pool by the stage that started the call. */
typedef struct fa_upstream_result {
    struct fa_upstream_result *next; /* in the order the stages created them */
    const char *name;                /* from the stage config (app arena) */
    fa_upstream_result_state_t state;
    bool timed_out;          /* FAILED because a timeout fired: answered 504 rather than 502 */
    bool passthrough;        /* FAILED on a status the stage relays to the client */
    const char *error;       /* FAILED: a message (static or req->pool) */
    fa_upstream_resp_t resp; /* OK, or FAILED on a status: the upstream's response */
    int json_state;          /* 0 not parsed yet, 1 json holds the body, -1 not JSON */
    fa_json_t json;
} fa_upstream_result_t;

/** The results of one request: fa_pipe_ctx_t.upstream, allocated from req->pool. */
typedef struct fa_upstream_ctx {
    fa_upstream_result_t *first, *last;
    const void *waiting; /* the stage conf that waits for its calls, so its second run knows */
    fa_upstream_result_t *batch; /* that stage's first result */
    unsigned nbatch;
} fa_upstream_ctx_t;

#endif
