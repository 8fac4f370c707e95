/*
 * batch.h — a request body that carries many events: newline-delimited JSON or one JSON array.
 *
 * A route declares it with `parse_json: { batch: ndjson | array | auto, max_events: N }` as its first
 * stage. The body is split into events while it arrives (any chunking, any split point), each event
 * is parsed and taken through the rest of the pipeline on its own (validate, aggregate, ...), and
 * only the small result of each event is kept: memory is bounded by the config (max_events, the
 * per-event size), never by the size of the batch.
 *
 * Nothing reaches the aggregator before the whole body has arrived and its framing is known to be
 * good: a body that is not a batch (bad framing, more than max_events events, over the body limit)
 * is refused whole and counts nothing. Then every accepted event is counted, each one atomically
 * (a worker killed midway leaves some events counted and the others not, never half an event), and
 * the answer is 200 {"accepted":N,"rejected_total":K,"rejected":[{"index":i,"error":"..."},...]}
 * with at most FA_BATCH_MAX_REPORTED entries listed.
 *
 * Lifetime: the batch state lives in req->pool; its per-event pool is reset after every event and
 * destroyed with the request.
 */
#ifndef FA_BATCH_H
#define FA_BATCH_H

#include "fa.h"
#include "json.h"
#include "req.h"

#define FA_BATCH_MAX_REPORTED 100

typedef enum {
    FA_BATCH_NONE = 0,
    FA_BATCH_NDJSON, /* one JSON value per line; blank lines are skipped */
    FA_BATCH_ARRAY,  /* one top-level JSON array whose elements are the events */
    FA_BATCH_AUTO,   /* an array if the body starts with '[' (after blanks), else NDJSON */
} fa_batch_framing_t;

typedef struct {
    fa_batch_framing_t framing;
    uint32_t max_events;
    fa_json_limits_t event; /* per-event limits: max_bytes is the largest event */
} fa_batch_conf_t;

typedef struct fa_batch fa_batch_t;

/** Runs the per-event stages for the event parsed into the request's pipeline context (set by
 * pipeline.c: the stages that follow the batch parse_json). */
typedef void (*fa_batch_run_cb)(fa_req_t *req);

/** Starts a batch for req (headers complete). Allocated from req->pool. */
fa_batch_t *fa_batch_new(fa_req_t *req, const fa_batch_conf_t *conf, fa_batch_run_cb run);

/**
 * Feeds body bytes as they arrive. Returns 0, or an HTTP status (400 bad framing, 413 too many
 * events) with *msg set: the request is refused whole.
 */
int fa_batch_feed(fa_req_t *req, fa_batch_t *b, const char *p, size_t n, const char **msg);

/** The body is complete: checks the framing, counts the accepted events, answers the report.
 * Returns FA_DONE (answered). */
fa_status_t fa_batch_finish(fa_req_t *req, fa_batch_t *b);

/** Inside a batch event: refuses the current event with msg (copied). */
void fa_batch_reject(fa_batch_t *b, const char *msg);

/** Inside a batch event: the event's (key, value) is to be counted once the batch is known good
 * (key copied into the request pool). */
void fa_batch_defer_add(fa_batch_t *b, fa_str_t key, __int128 nanos);

/** True while an event of b is being processed (stages reject the event, not the request). */
bool fa_batch_in_event(const fa_batch_t *b);

#endif
