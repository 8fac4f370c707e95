/*
 * stage.h — pipeline stages: the type every built-in stage implements, and the registry.
 *
 * A route's pipeline is an ordered list of stages compiled once from the config. Each stage kind
 * is a const fa_stage_type_t in its own file (lib/stage_<name>.c) and listed in one table in
 * stage.c. parse turns the stage's YAML argument into an immutable conf allocated from the app's
 * arena, reporting located errors; run executes it for one request.
 *
 * run returns FA_OK (go on with the next stage), FA_DONE (the stage answered the request),
 * FA_AGAIN (the stage waits: it stored a pending future with fa_pipe_wait and the pipeline resumes
 * when that future settles) or FA_ERROR (the pipeline answers 500).
 */
#ifndef FA_STAGE_H
#define FA_STAGE_H

#include "batch.h"
#include "config.h"
#include "fa.h"
#include "future.h"
#include "json.h"
#include "req.h"
#include "yaml.h"

typedef struct fa_stage_type fa_stage_type_t;

/* What the stages before this one produce, so that a stage can check its references at load. */
#define FA_PIPE_MAX_FIELDS 64
#define FA_PIPE_MAX_RESULTS 32
typedef struct {
    bool has_json;  /* a parse_json stage runs earlier */
    bool batch;     /* parse_json splits the body into events: later stages run per event */
    bool responded; /* an earlier stage always answers: nothing may follow it */
    unsigned nfields;
    struct {
        const char *name;
        const char *type; /* "string", "number", ... */
        bool required;
    } fields[FA_PIPE_MAX_FIELDS]; /* body fields checked by an earlier validate */
    unsigned nresults;
    const char *results[FA_PIPE_MAX_RESULTS]; /* names stored by earlier fetch/fan_out stages */
} fa_pipe_info_t;

typedef struct {
    fa_pool_t *arena;          /* the app's arena: stage confs live as long as the app */
    const fa_config_t *config;
    fa_errbuf_t *errs;
    const char *path;          /* "routes[0].pipeline[1]", for messages */
    const fa_yaml_node_t *arg; /* the stage's argument */
    const fa_yaml_node_t *key; /* the stage's name, for locations */
    fa_pipe_info_t *info;      /* updated by the stage for the ones after it */
    const char *route_path;    /* the route's path pattern, for ${path.x} checks */
} fa_stage_parse_t;

typedef struct fa_stage {
    const fa_stage_type_t *type;
    const void *conf;
} fa_stage_t;

struct fa_stage_type {
    const char *name;
    /** Checks arg and returns the stage's conf (may be a non-NULL dummy), or NULL after adding
     * located errors. */
    const void *(*parse)(fa_stage_parse_t *p);
    /** Runs the stage for one request. */
    fa_status_t (*run)(fa_req_t *req, const fa_stage_t *stage);
    /** True if run always answers the request (respond, stats): the pipeline's last stage. */
    bool terminal;
    /** True if run may return FA_AGAIN (wait on a future): not allowed per event in a batch. */
    bool async;
    /** Optional, for a stage after parse_json: called as soon as the body is parsed, before the
     * stages in between run, so that the memory run will need is requested early (its misses
     * overlap their work). It may fill ctx->ahead for run to reuse; it must change nothing a
     * stage or the answer could observe. Not called per event of a batch. */
    void (*ahead)(fa_req_t *req, const fa_stage_t *stage);
};

/** The stage kind called name, or NULL. */
const fa_stage_type_t *fa_stage_find(const char *name, size_t len);

/** Names of all stage kinds, comma separated, for "unknown stage" messages. */
const char *fa_stage_names(void);

/* Per-request pipeline state, allocated from req->pool once the request is routed. */
typedef struct {
    const void *pipe; /* the compiled pipeline */
    unsigned next;    /* index of the next stage to run */
    fa_json_t json;   /* the parsed body (or, in a batch, the current event) */
    bool has_json;
    fa_future_t wait;  /* what a waiting stage waits on */
    fa_batch_t *batch; /* set for a route whose body is a batch of events */
    struct fa_upstream_ctx *upstream; /* upstream results (upstream.h); NULL until one is stored */
    /* Filled by the ahead hook of ahead_stage, for that stage's run (NULL: nothing). */
    const fa_stage_t *ahead_stage;
    _Alignas(16) unsigned char ahead[64];
} fa_pipe_ctx_t;

static inline fa_pipe_ctx_t *fa_pipe_ctx(fa_req_t *req)
{
    return req->pipe_state;
}

/** Called by a stage's run before returning FA_AGAIN: the pipeline resumes when f settles. A
 * rejected f answers 500, or 504 for a timeout, unless the stage answered already. */
void fa_pipe_wait(fa_req_t *req, fa_future_t f);

/**
 * Refuses the request (or, inside a batch, the current event) with status and msg (static or
 * from req->pool). A stage calls it and returns FA_DONE.
 */
void fa_pipe_reject(fa_req_t *req, int status, const char *msg);

/** Answers with the route's on_error answer for status, if it has one (true); msg is ${error}. */
bool fa_pipe_on_error(fa_req_t *req, int status, const char *msg);

/** True if the request's route has an on_error answer for status. */
bool fa_pipe_has_on_error(const fa_req_t *req, int status);

/** Like fa_pipe_wait, but when f resolves the pipeline runs the same stage again instead of the
 * next one (a stage that starts work, then inspects its outcome and answers or goes on). */
void fa_pipe_wait_again(fa_req_t *req, fa_future_t f);

/* Helpers shared by stage parsers. */
bool fa_stage_expect_map(fa_stage_parse_t *p, const fa_yaml_node_t *n, const char *what);

/** The batch settings of a parse_json stage, or NULL (another kind, or not a batch). */
const fa_batch_conf_t *fa_stage_parse_json_batch(const fa_stage_t *stage);

/** parse for stages that take no argument ({} or nothing): a non-NULL dummy conf, or NULL after a
 * located error. */
const void *fa_stage_parse_empty(fa_stage_parse_t *p);

/* The stage kinds (one file each). */
extern const fa_stage_type_t fa_stage_parse_json;
extern const fa_stage_type_t fa_stage_validate;
extern const fa_stage_type_t fa_stage_aggregate;
extern const fa_stage_type_t fa_stage_respond;
extern const fa_stage_type_t fa_stage_stats;
extern const fa_stage_type_t fa_stage_reset;
extern const fa_stage_type_t fa_stage_delay;
extern const fa_stage_type_t fa_stage_metrics;

extern const fa_stage_type_t fa_stage_fetch;
extern const fa_stage_type_t fa_stage_fan_out;
extern const fa_stage_type_t fa_stage_merge;

#endif
