/*
 * conn.h — one client connection: watchers, buffers, the llhttp parser, timeouts, deferred close.
 *
 * Lifetime: taken from the worker's recycler when accepted, returned to it at the end of the loop
 * iteration in which it was closed (never inside a callback that a caller up the stack may still
 * be using). Its request pool and buffers are kept across recycling.
 */
#ifndef FA_CONN_H
#define FA_CONN_H

#include "fa.h"
#include "pool.h"
#include "req.h"

#include <ev.h>
#include <llhttp.h>

typedef enum {
    FA_CONN_IDLE,     /* between requests (keep-alive), no byte of the next one yet */
    FA_CONN_HEADERS,  /* reading a request's header section */
    FA_CONN_BODY,     /* reading its body */
    FA_CONN_HANDLING, /* complete; the application has not answered yet */
    FA_CONN_CLOSING,  /* flushing the last response, then lingering close */
} fa_conn_state_t;

struct fa_conn {
    /* Line 0 (the struct is cache-line aligned): all that the read callback needs up to its
     * read(): the watcher libev has just touched to call it, the read buffer and its fill. The
     * callback requests the other hot lines first, and they arrive during the system call
     * instead of one miss stalling it before. Offsets into rbuf are 32 bits to fit: rcap is
     * limits.header_bytes, at most 1 MiB. */
    _Alignas(FA_CACHELINE) ev_io rio;
    char *rbuf;
    uint32_t rend, rcap; /* [rstart, rend) not yet parsed */

    /* Hot: what serving a plain request touches, in its first FA_CONN_HOT bytes. */
    fa_worker_t *worker;
    int fd;
    fa_conn_state_t state;
    bool want_close;  /* close once the write buffer is flushed */
    bool lingering;   /* write side shut down, discarding input until EOF (rio calls on_linger) */
    bool closed;
    bool eof;         /* the client shut down its write side */
    bool in_process;  /* re-entrancy guard for fa__conn_process */
    bool req_in_rbuf; /* views of the current request point into rbuf */
    uint32_t rstart, req_start; /* req_start: offset of the current request's first byte */

    llhttp_t parser;
    int err_status; /* set by a parser callback that rejects the request */
    int hdr_phase;  /* header assembly: 0 none, 1 in field, 2 in value */
    const char *err_msg;

    fa_pool_t pool; /* the request pool */

    char *wbuf;
    size_t wcap, wpos, wlen; /* [wpos, wlen) not yet written */

    size_t body_cap; /* capacity of a pool-held body */
    size_t streamed; /* body bytes the route consumed as they arrived (not buffered) */
    unsigned nrequests; /* answered on this connection */
    ev_tstamp last_io;

    fa_req_t req; /* its arrays, at its end, are cold */

    /* Cold. */
    ev_timer timer; /* restarted only when it fires: requests move last_io */
    ev_io wio;      /* active only while a response could not be written at once */
    char _access_peer[48]; /* client address text; accesslog.c fills it at the first line */
    fa_conn_t *next, *prev;
};

static_assert(offsetof(fa_conn_t, rcap) + sizeof(uint32_t) == FA_CACHELINE,
              "what a read needs fills the watcher's cache line");

/* The hot part of fa_conn_t: up to the request's parameter arrays. */
#define FA_CONN_HOT (offsetof(fa_conn_t, req) + offsetof(fa_req_t, param_names))

/**
 * Serves the connected, non-blocking socket fd as a client connection of w (takes ownership of
 * fd). Used by the accept path, and by in-process harnesses (fuzzing, benchmarks) with one end of
 * a socketpair.
 */
void fa_conn_adopt(fa_worker_t *worker, int fd);

/** Accepts connections from listener fd until EAGAIN or the per-call budget (libev callback). */
void fa_conn_accept(fa_worker_t *worker, int fd);

/** Closes every idle connection and marks the others to close after their current response. */
void fa_conn_shutdown_all(fa_worker_t *worker);

/** Frees the connections closed during this loop iteration (from the worker's ev_check). */
void fa_conn_reap(fa_worker_t *worker);

/** Releases every recycled connection (worker exit, tests). */
void fa_conn_free_all(fa_worker_t *worker);

/* Internal: shared by conn.c, http.c and resp.c. */
extern const llhttp_settings_t fa__http_settings;
void fa__conn_process(fa_conn_t *c);
void fa__conn_write_bytes(fa_conn_t *c, const void *p, size_t n);
char *fa__conn_wreserve(fa_conn_t *c, size_t n);
void fa__conn_request_done(fa_conn_t *c);
/** Bytes the connection holds now: struct, buffers, request pool (limits.connection_memory). */
size_t fa__conn_mem(const fa_conn_t *c);
/**
 * Whether the connection's request may take n more bytes: 0, or the status to refuse it with
 * (413 past limits.connection_memory, 503 past limits.worker_memory, which also pauses
 * accepting) and a static message in *msg.
 */
int fa__conn_mem_admit(fa_conn_t *c, size_t n, const char **msg);
void fa__http_reset_request(fa_conn_t *c);
void fa__http_error(fa_conn_t *c, llhttp_errno_t err);
size_t fa__http_parse_fast(fa_conn_t *c, const char *buf, size_t len, bool *refused);
void fa__http_detach(fa_conn_t *c);
void fa__http_rebase(fa_conn_t *c, const char *old_base, const char *new_base);

#endif
