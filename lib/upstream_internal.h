/*
 * upstream_internal.h — what the upstream stages (stage_fetch.c, stage_fan_out.c,
 * stage_merge.c) share: request templates, call specs, the per-request results table and the
 * rules that turn failed calls into 502/504 answers. Implemented in stage_fetch.c.
 *
 * Lifetimes: templates and call specs are parsed at load into the app's arena and are immutable;
 * everything rendered or recorded for a request comes from req->pool. Worker thread only.
 */
#ifndef FA_UPSTREAM_INTERNAL_H
#define FA_UPSTREAM_INTERNAL_H

#include "stage.h"
#include "template.h"
#include "upstream.h"

/* ---- call specs ---- */

typedef enum {
    FA__STATUS_FAIL,        /* a non-2xx answer fails the call (502) */
    FA__STATUS_PASSTHROUGH, /* a non-2xx answer fails the call and is relayed to the client */
    FA__STATUS_ACCEPT,      /* any status is a result */
} fa__status_mode_t;

#define FA__MAX_CALL_HEADERS 8

/** One upstream call as configured: parsed at load, immutable. */
typedef struct {
    const char *name; /* the result's name */
    unsigned upstream;
    fa_str_t method;
    fa_tpl_t path;
    struct {
        fa_str_t name;
        fa_tpl_t value;
    } headers[FA__MAX_CALL_HEADERS];
    unsigned nheaders;
    fa_str_t pass[FA__MAX_CALL_HEADERS]; /* client request headers copied as they are */
    unsigned npass;
    bool has_body;
    fa_tpl_t body;
    fa_str_t body_ctype;
    double timeout; /* 0: none besides the upstream's own connect/response timeouts */
    fa__status_mode_t status;
} fa__call_spec_t;

/**
 * Parses a call mapping (upstream, method, path, headers, pass_headers, body | json, timeout,
 * status; plus name when default_name is NULL) into out, and registers the result name in
 * p->info. False after adding located errors.
 */
bool fa__call_spec_parse(fa_stage_parse_t *p, const fa_yaml_node_t *node, const char *path,
                         const char *default_name, fa__call_spec_t *out);

/** The request's results table, created in req->pool on first use. */
fa_upstream_ctx_t *fa__upstream_ctx(fa_req_t *req);

/** The latest result called name, or NULL. */
fa_upstream_result_t *fa__upstream_result(fa_req_t *req, const char *name, size_t len);

/** The result's body parsed as JSON (once, into req->pool); NULL when it is not JSON. */
const fa_json_t *fa__upstream_result_json(fa_req_t *req, fa_upstream_result_t *r);

/**
 * Appends n PENDING results for specs to the request's table and starts their calls; futs[i]
 * settles when call i has been recorded. With never_reject, a failed call resolves its future
 * (the failure is in its result); without, it rejects. Returns 0, or -ENOMEM after cancelling
 * whatever it started.
 */
int fa__calls_start(fa_req_t *req, const fa__call_spec_t *specs, unsigned n, bool never_reject,
                    fa_future_t *futs);

/** A catch callback that turns any rejection into a resolution (the results say what failed). */
fa_result_t fa__swallow(fa_sched_t *sched, void *data, fa_error_t error);

/**
 * Answers the request for the first FAILED result among r[0..n): the upstream's own response for
 * a passthrough status, else 504 (a timeout) or 502 with {"error": "NAME: why"}. Returns FA_DONE,
 * or FA_OK when none failed.
 */
fa_status_t fa__answer_failure(fa_req_t *req, fa_upstream_result_t *r, unsigned n);

#endif
