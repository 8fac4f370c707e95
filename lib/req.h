/*
 * req.h — one HTTP request as the pipeline sees it, and the calls that answer it.
 *
 * Lifetime: a fa_req_t is embedded in its connection and reused for every request on it. Its views
 * (target, headers, body) point into the connection's read buffer or into req->pool and are valid
 * until the response has been produced (fa_req_respond*). Everything a stage allocates for the
 * request comes from req->pool, which is reset in one call when the request ends.
 *
 * Threading: a request belongs to its worker's loop thread; nothing here is thread-safe.
 */
#ifndef FA_REQ_H
#define FA_REQ_H

#include "fa.h"
#include "pool.h"

#define FA_REQ_MAX_EXTRA_HEADERS 8
#define FA_REQ_MAX_PARAMS 8

typedef struct {
    fa_str_t name, value;
} fa_header_t;

struct fa_req {
    fa_conn_t *conn;
    fa_worker_t *worker;
    fa_pool_t *pool; /* per-request pool: reset when the request ends */

    /* request line and headers */
    unsigned method;     /* llhttp's method number (enum llhttp_method) */
    fa_str_t method_str; /* "GET", static */
    uint8_t http_major, http_minor;
    bool keep_alive;    /* the client allows the connection to stay open */
    bool head;          /* HEAD: the response carries no body */
    bool expect_continue;
    fa_str_t target;    /* raw request-target */
    fa_str_t path;      /* target up to '?' */
    fa_str_t query;     /* after '?', without it; empty if none */
    fa_header_t *headers;
    unsigned nheaders, _headers_cap;
    fa_str_t body;      /* whole body, contiguous (chunked bodies are joined) */
    uint64_t content_length; /* UINT64_MAX when not given */

    /* routing: filled by the application when the header section is complete */
    int route_status;  /* 0 before routing, 200 found, 404, 405 */
    const char *allow; /* on 405 */
    const void *route;
    unsigned nparams;

    /* pipeline state: owned by the pipeline runner */
    void *pipe_state;
    const char *action; /* what the request is doing, for log lines */
    const char *error_msg; /* why a stage refused the request, for on_error answers */
    double start;       /* ev_now when the first byte arrived */

    /* response */
    int status;
    bool responded;
    bool close_after; /* answer with Connection: close and close */
    fa_str_t content_type;
    unsigned nextra;

    /* Last, read only below nparams and nextra: every field above is what a plain request
     * touches (a dozen cache lines of the connection, fa_conn_t's FA_CONN_HOT). */
    fa_str_t param_names[FA_REQ_MAX_PARAMS];
    fa_str_t param_values[FA_REQ_MAX_PARAMS];
    fa_header_t extra[FA_REQ_MAX_EXTRA_HEADERS];
};

/** The value of header name (case-insensitive), or a NULL view. */
fa_str_t fa_req_header(const fa_req_t *req, const char *name, size_t len);

/** The value of path parameter name, or a NULL view. */
fa_str_t fa_req_param(const fa_req_t *req, const char *name, size_t len);

/** Adds a response header; name and value must live until the response is written (static or
 * req->pool). Extra headers beyond FA_REQ_MAX_EXTRA_HEADERS are dropped with a warning. */
void fa_req_add_header(fa_req_t *req, fa_str_t name, fa_str_t value);

/**
 * Produces the response: status line, Server, Date, Content-Length, Content-Type (when ctype.len),
 * the extra headers, Connection when needed, and the body (omitted for HEAD). body is copied.
 * Completes the request: the connection goes on with the next one. Call once per request.
 */
void fa_req_respond(fa_req_t *req, int status, fa_str_t ctype, const char *body, size_t len);

/**
 * A response known whole at load but for the Server and Date lines (a respond stage without
 * substitutions): its status line, its Content-Length, Content-Type and configured header lines
 * and its body, serialised once by fa_resp_fixed_init. Lives in the app's arena, read-only once
 * built, shared by every request of every worker.
 */
typedef struct {
    int status;
    fa_str_t ctype, body;
    const fa_header_t *headers; /* the configured response headers, in order */
    unsigned nheaders;
    fa_str_t _status_line, _fields; /* "HTTP/1.1 200 OK\r\n"; "Content-Length: 0\r\n..." */
} fa_resp_fixed_t;

/** Builds f in arena for fa_req_respond_fixed; status 100..999, at most
 * FA_REQ_MAX_EXTRA_HEADERS headers; ctype, headers and body must live as long as arena. */
void fa_resp_fixed_init(fa_resp_fixed_t *f, fa_pool_t *arena, int status, fa_str_t ctype,
                        const fa_header_t *headers, unsigned nheaders, fa_str_t body);

/**
 * Produces exactly what adding f's headers (fa_req_add_header) and then calling
 * fa_req_respond(req, f->status, f->ctype, f->body...) would, copying the prebuilt lines when no
 * stage has added a header of its own. Completes the request like fa_req_respond.
 */
void fa_req_respond_fixed(fa_req_t *req, const fa_resp_fixed_t *f);

/** Answers status with the JSON body {"error":"<msg>"} (msg escaped). */
void fa_req_respond_error(fa_req_t *req, int status, const char *msg);

/** The reason phrase for status ("Not Found"), or "Unknown". */
const char *fa_http_reason(int status);

#endif
