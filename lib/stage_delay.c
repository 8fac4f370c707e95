/*
 * stage_delay.c — waits before going on with the pipeline.
 *
 *   - delay: 50ms
 *
 * Exists to exercise the asynchronous path of pipelines end to end (a stage that returns a
 * pending future resolved from an ev_timer) and to stand in for a slow upstream in tests: graceful
 * drain of in-flight requests, cancellation when the client disconnects. The timer lives in the
 * request pool and is stopped by the promise's cancel hook.
 */
#include "config.h"
#include "future.h"
#include "log.h"
#include "stage.h"
#include "worker.h"

#include <ev.h>

typedef struct {
    double seconds;
} delay_conf_t;

typedef struct {
    ev_timer timer;
    fa_promise_t promise;
    struct ev_loop *loop;
} delay_state_t;

static const void *parse(fa_stage_parse_t *p)
{
    delay_conf_t *c = fa_pool_calloc(p->arena, sizeof(*c));
    if (!fa_config_parse_duration(p->arg, p->path, &c->seconds, p->errs))
        return NULL;
    return c;
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)revents;
    delay_state_t *d = FA_CONTAINER_OF(t, delay_state_t, timer);
    /* A cancelled promise is stale here and the resolve is a no-op. */
    (void)fa_promise_resolve(d->promise, FA_VALUE_NONE);
}

static void on_cancel(fa_sched_t *sched, void *data)
{
    (void)sched;
    delay_state_t *d = data;
    ev_timer_stop(d->loop, &d->timer);
}

static fa_status_t run(fa_req_t *req, const fa_stage_t *stage)
{
    const delay_conf_t *c = stage->conf;
    fa_worker_t *w = req->worker;
    delay_state_t *d = fa_pool_alloc(req->pool, sizeof(*d));
    fa_future_t f;
    if (fa_promise_new(w->sched, &d->promise, &f) != 0) {
        fa_req_respond_error(req, 503, "too many requests in flight");
        return FA_DONE;
    }
    d->loop = w->loop;
    (void)fa_promise_on_cancel(d->promise, on_cancel, d); /* fresh promise: cannot fail */
    ev_timer_init(&d->timer, on_timer, c->seconds, 0.);
    ev_timer_start(w->loop, &d->timer);
    fa_pipe_wait(req, f);
    return FA_AGAIN;
}

const fa_stage_type_t fa_stage_delay = {
    .name = "delay",
    .parse = parse,
    .run = run,
    .async = true,
};
