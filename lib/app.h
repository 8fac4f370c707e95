/*
 * app.h — what the connection layer calls once a request is complete: the compiled routes and
 * pipelines of one configuration.
 *
 * Lifetime: built from a fa_config_t at load (and at each reload, from the new config), immutable
 * afterwards, shared read-only by the worker; per-worker state of the stages is set up by
 * fa_app_worker_init. Freed with fa_app_free after the config it came from is no longer served.
 */
#ifndef FA_APP_H
#define FA_APP_H

#include "config.h"
#include "fa.h"

typedef struct fa_app fa_app_t;

/** Compiles the routes and pipelines of config; NULL with located errors in errs. */
fa_app_t *fa_app_build(const fa_config_t *config, fa_errbuf_t *errs);
void fa_app_free(fa_app_t *app);

/** Sets up and tears down the stages' per-worker state (runs in the worker, after fork). */
int fa_app_worker_init(const fa_app_t *app, fa_worker_t *worker);
void fa_app_worker_fini(const fa_app_t *app, fa_worker_t *worker);

/**
 * Routes a request whose header section is complete (before its body is read), so that a route
 * can consume its body as it arrives (batches). Never answers; fa_app_handle does.
 */
void fa_app_begin(const fa_app_t *app, fa_req_t *req);

/** True when the routed request takes its body as it arrives (fa_app_body consumes it). */
bool fa_app_streams_body(const fa_req_t *req);

/**
 * Body bytes of a routed request. Returns 0 if the route wants the body buffered as usual, 1 if
 * it consumed the bytes itself, or an HTTP status (with *msg) that refuses the request whole.
 */
int fa_app_body(fa_req_t *req, const char *at, size_t len, const char **msg);

/**
 * Handles a complete request: routes it and runs its pipeline. Returns FA_OK once the response has
 * been produced (fa_req_respond), or FA_AGAIN if a stage is waiting: the response is produced later
 * from the worker's loop, and the connection waits for it.
 */
fa_status_t fa_app_handle(const fa_app_t *app, fa_req_t *req);

/**
 * The compiled stages of the route "METHOD path" (a pattern, as written in the config), or NULL;
 * *n gets their number. For benchmarks and tests that run stages without a connection.
 */
const struct fa_stage *fa_app_stages(const fa_app_t *app, const char *method, const char *path,
                                     unsigned *n);

/** The connection of a request that returned FA_AGAIN is going away: cancel what it waits for. */
void fa_app_abort(fa_req_t *req);

#endif
