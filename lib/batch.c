/*
 * batch.c — splitting a batch body into events as it arrives, and the batch report; see batch.h.
 *
 * The splitter copies each event's bytes into a buffer of at most the per-event size (an event can
 * straddle any number of reads) and hands complete events to the pipeline. For NDJSON an event ends
 * at a newline. For an array the splitter tracks strings, escapes and nesting depth byte by byte to
 * find the commas and the bracket that end elements at depth one; it never recurses, so hostile
 * nesting costs a counter, not stack.
 */
#include "batch.h"
#include "agg.h"
#include "log.h"
#include "stage.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { A_BEFORE, A_FIRST, A_ELEM, A_NEXT, A_AFTER }; /* array framing states */

typedef struct {
    uint32_t index;
    const char *msg;
} rejection_t;

typedef fa_agg_item_t pending_t; /* key in req_pool; tag: the event's index in the batch */

struct fa_batch {
    const fa_batch_conf_t *conf;
    fa_batch_framing_t framing; /* the conf's, or what auto found */
    fa_batch_run_cb run;
    fa_pool_t *req_pool; /* the request's own pool: results live there */
    fa_pool_t ev_pool;   /* reset after every event */

    /* the event being assembled */
    char *buf;
    size_t len, cap;
    bool oversize;   /* longer than the per-event limit: skipped to its end */
    bool has_bytes;  /* NDJSON: the line holds a non-blank byte */

    /* array splitter */
    int astate;
    uint32_t depth;
    bool in_string, escape;

    /* results */
    uint32_t nevents; /* events seen (the next event's index) */
    uint32_t accepted;
    bool in_event, cur_rejected;
    uint32_t npending_before;
    rejection_t *rejected;
    uint32_t nrejected; /* listed (capped) */
    uint32_t rejected_total;
    pending_t *pending;
    uint32_t npending, pending_cap;
};

static void destroy_ev_pool(void *data)
{
    fa_pool_destroy(data);
}

fa_batch_t *fa_batch_new(fa_req_t *req, const fa_batch_conf_t *conf, fa_batch_run_cb run)
{
    fa_batch_t *b = fa_pool_calloc(req->pool, sizeof(*b));
    b->conf = conf;
    b->run = run;
    b->req_pool = req->pool;
    fa_pool_init(&b->ev_pool, 8192);
    fa_pool_cleanup_add(req->pool, destroy_ev_pool, &b->ev_pool);
    b->cap = FA_MIN((size_t)1024, conf->event.max_bytes);
    b->buf = fa_pool_alloc(req->pool, b->cap);
    b->rejected = fa_pool_alloc(req->pool, FA_BATCH_MAX_REPORTED * sizeof(rejection_t));
    b->astate = A_BEFORE;
    b->framing = conf->framing;
    return b;
}

bool fa_batch_in_event(const fa_batch_t *b)
{
    return b && b->in_event;
}

static void record_rejection(fa_batch_t *b, uint32_t index, const char *msg)
{
    b->rejected_total++;
    if (b->nrejected < FA_BATCH_MAX_REPORTED)
        b->rejected[b->nrejected++] =
            (rejection_t){index, fa_pool_strndup(b->req_pool, msg, strlen(msg))};
}

void fa_batch_reject(fa_batch_t *b, const char *msg)
{
    if (b->cur_rejected)
        return; /* the first reason is the one reported */
    b->cur_rejected = true;
    b->npending = b->npending_before; /* what this event deferred is dropped */
    record_rejection(b, b->nevents - 1, msg);
}

void fa_batch_defer_add(fa_batch_t *b, fa_str_t key, __int128 nanos)
{
    if (b->npending == b->pending_cap) {
        uint32_t cap = b->pending_cap ? b->pending_cap * 2 : 64;
        pending_t *p = fa_pool_alloc(b->req_pool, cap * sizeof(*p));
        if (b->npending)
            memcpy(p, b->pending, b->npending * sizeof(*p));
        b->pending = p;
        b->pending_cap = cap;
    }
    b->pending[b->npending++] = (pending_t){.key = fa_pool_strndup(b->req_pool, key.ptr, key.len),
                                            .keylen = key.len,
                                            .value = nanos,
                                            .tag = b->nevents - 1};
}

/* One complete event in b->buf: parse it and take it through the per-event stages with the
 * request pool switched to the per-event pool, so nothing of it outlives the event. */
static void run_event(fa_req_t *req, fa_batch_t *b)
{
    uint32_t index = b->nevents++;
    fa_pipe_ctx_t *ctx = fa_pipe_ctx(req);
    if (b->oversize) {
        char msg[80];
        snprintf(msg, sizeof(msg), "event larger than %zu bytes", b->conf->event.max_bytes);
        record_rejection(b, index, msg);
        return;
    }
    fa_json_error_t err;
    if (fa_json_parse(&ctx->json, &b->ev_pool, b->buf, b->len, &b->conf->event, &err) != 0) {
        record_rejection(b, index, err.msg);
        fa_pool_reset(&b->ev_pool);
        return;
    }
    ctx->has_json = true;
    b->in_event = true;
    b->cur_rejected = false;
    b->npending_before = b->npending;
    fa_pool_t *saved = req->pool;
    req->pool = &b->ev_pool;
    b->run(req);
    req->pool = saved;
    b->in_event = false;
    ctx->has_json = false;
    if (!b->cur_rejected)
        b->accepted++;
    fa_pool_reset(&b->ev_pool);
}

static void append(fa_batch_t *b, const char *p, size_t n)
{
    if (b->oversize)
        return;
    if (b->len + n > b->conf->event.max_bytes) {
        b->oversize = true;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = FA_MIN(FA_MAX(b->cap * 2, b->len + n), b->conf->event.max_bytes);
        char *nb = fa_pool_alloc(b->req_pool, cap);
        memcpy(nb, b->buf, b->len);
        b->buf = nb; /* the old buffer stays in the request pool: at most doubling */
        b->cap = cap;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}

static void reset_event(fa_batch_t *b)
{
    b->len = 0;
    b->oversize = false;
    b->has_bytes = false;
}

static bool blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static int too_many(fa_batch_t *b, const char **msg)
{
    static char text[64];
    snprintf(text, sizeof(text), "more than %u events in one batch", b->conf->max_events);
    *msg = text;
    return 413;
}

static int feed_ndjson(fa_req_t *req, fa_batch_t *b, const char *p, size_t n, const char **msg)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (!b->has_bytes)
            for (size_t i = 0; i < take && !b->has_bytes; i++)
                b->has_bytes = !blank(p[i]);
        append(b, p, take);
        if (!nl)
            return 0;
        if (b->has_bytes) {
            if (b->nevents == b->conf->max_events)
                return too_many(b, msg);
            run_event(req, b);
        }
        reset_event(b);
        p = nl + 1;
        n -= take + 1;
    }
    return 0;
}

/* The array element just ended (at a ',' or the closing ']'). */
static int end_element(fa_req_t *req, fa_batch_t *b, const char **msg)
{
    bool empty = true;
    for (size_t i = 0; i < b->len && empty; i++)
        empty = blank(b->buf[i]);
    if (empty && !b->oversize) {
        *msg = "invalid batch: empty array element";
        return 400;
    }
    if (b->nevents == b->conf->max_events)
        return too_many(b, msg);
    run_event(req, b);
    reset_event(b);
    return 0;
}

static int feed_array(fa_req_t *req, fa_batch_t *b, const char *p, size_t n, const char **msg)
{
    const char *start = p; /* first byte of the element in this chunk not yet appended */
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        switch (b->astate) {
        case A_BEFORE:
            if (blank(ch))
                continue;
            if (ch != '[') {
                *msg = "invalid batch: the body must be a JSON array";
                return 400;
            }
            b->astate = A_FIRST;
            continue;
        case A_FIRST:
        case A_NEXT:
            if (blank(ch))
                continue;
            if (ch == ']') {
                if (b->astate == A_NEXT) {
                    *msg = "invalid batch: trailing comma in the array";
                    return 400;
                }
                b->astate = A_AFTER;
                continue;
            }
            b->astate = A_ELEM;
            start = p + i;
            __attribute__((fallthrough)); /* this byte starts the element */
        case A_ELEM:
            if (b->in_string) {
                if (b->escape)
                    b->escape = false;
                else if (ch == '\\')
                    b->escape = true;
                else if (ch == '"')
                    b->in_string = false;
                continue;
            }
            if (ch == '"') {
                b->in_string = true;
            } else if (ch == '{' || ch == '[') {
                b->depth++;
            } else if (ch == '}' || ch == ']') {
                if (b->depth > 0) {
                    b->depth--;
                } else if (ch == '}') {
                    *msg = "invalid batch: unbalanced '}'";
                    return 400;
                } else {
                    append(b, start, (size_t)(p + i - start));
                    int rc = end_element(req, b, msg);
                    if (rc)
                        return rc;
                    b->astate = A_AFTER;
                }
            } else if (ch == ',' && b->depth == 0) {
                append(b, start, (size_t)(p + i - start));
                int rc = end_element(req, b, msg);
                if (rc)
                    return rc;
                b->astate = A_NEXT;
            }
            continue;
        case A_AFTER:
            if (!blank(ch)) {
                *msg = "invalid batch: data after the array";
                return 400;
            }
            continue;
        }
    }
    if (b->astate == A_ELEM)
        append(b, start, (size_t)(p + n - start));
    return 0;
}

int fa_batch_feed(fa_req_t *req, fa_batch_t *b, const char *p, size_t n, const char **msg)
{
    if (b->framing == FA_BATCH_AUTO) {
        size_t i = 0;
        while (i < n && blank(p[i]))
            i++;
        if (i == n)
            return 0; /* blanks only so far: still undecided */
        b->framing = p[i] == '[' ? FA_BATCH_ARRAY : FA_BATCH_NDJSON;
        p += i, n -= i;
    }
    return b->framing == FA_BATCH_NDJSON ? feed_ndjson(req, b, p, n, msg)
                                         : feed_array(req, b, p, n, msg);
}

static void refuse(fa_req_t *req, int status, const char *msg)
{
    req->close_after = true; /* the client may still be sending the rest */
    fa_req_respond_error(req, status, msg);
}

fa_status_t fa_batch_finish(fa_req_t *req, fa_batch_t *b)
{
    const char *msg = NULL;
    if (b->framing == FA_BATCH_AUTO) {
        refuse(req, 400, "invalid batch: the body is empty");
        return FA_DONE;
    }
    if (b->framing == FA_BATCH_NDJSON) {
        if (b->has_bytes) { /* a last line without its newline */
            if (b->nevents == b->conf->max_events) {
                refuse(req, too_many(b, &msg), msg);
                return FA_DONE;
            }
            run_event(req, b);
            reset_event(b);
        }
    } else if (b->astate != A_AFTER) {
        refuse(req, 400,
               b->astate == A_BEFORE ? "invalid batch: the body must be a JSON array"
                                     : "invalid batch: the array is not closed");
        return FA_DONE;
    }

    /* The framing is good: count every accepted event now (each one whole, as fa_agg_add would,
     * with the aggregator's memory prefetched a few events ahead). */
    fa_worker_t *w = req->worker;
    if (fa_agg_add_many(w->agg, w->shard, b->pending, b->npending) < b->npending) {
        for (uint32_t i = 0; i < b->npending; i++) {
            const pending_t *pe = &b->pending[i];
            if (pe->result == 0)
                continue;
            b->accepted--;
            if (pe->result == -ENOSPC) {
                fa_log_error("aggregator full: refusing a new key (aggregator.capacity is %zu)",
                             w->config->aggregator.capacity);
                record_rejection(b, pe->tag, "too many distinct keys: the aggregator is full");
            } else {
                record_rejection(b, pe->tag, "the key cannot be stored");
            }
        }
    }

    fa_json_writer_t out;
    fa_json_writer_init(&out, req->pool, 64 + b->nrejected * 64);
    fa_json_write_begin_object(&out);
    fa_json_write_key(&out, "accepted", 8);
    fa_json_write_int(&out, b->accepted);
    fa_json_write_key(&out, "rejected_total", 14);
    fa_json_write_int(&out, b->rejected_total);
    fa_json_write_key(&out, "rejected", 8);
    fa_json_write_begin_array(&out);
    /* Commit-time refusals were appended after the parse-time ones: list by index. */
    for (uint32_t i = 1; i < b->nrejected; i++)
        for (uint32_t j = i; j > 0 && b->rejected[j - 1].index > b->rejected[j].index; j--) {
            rejection_t t = b->rejected[j];
            b->rejected[j] = b->rejected[j - 1];
            b->rejected[j - 1] = t;
        }
    for (uint32_t i = 0; i < b->nrejected; i++) {
        fa_json_write_begin_object(&out);
        fa_json_write_key(&out, "index", 5);
        fa_json_write_int(&out, b->rejected[i].index);
        fa_json_write_key(&out, "error", 5);
        fa_json_write_str(&out, b->rejected[i].msg, strlen(b->rejected[i].msg));
        fa_json_write_end_object(&out);
    }
    fa_json_write_end_array(&out);
    fa_json_write_end_object(&out);
    fa_str_t body = fa_json_writer_str(&out);
    fa_req_respond(req, 200, FA_STR_LIT("application/json"), body.ptr, body.len);
    return FA_DONE;
}
