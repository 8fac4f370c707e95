/*
 * future.c — futures, chaining, cancellation, timeout and retry; see future.h for the contract.
 * The collection combinators (all, any, race, some, map, filter, reduce) are in future_comb.c.
 *
 * An object future is one fa_fut_t from its scheduler's recycler (the layout and the hot paths
 * are in future_inline.h); an immediate is a handle with no object, which gets one here only
 * when something must wait on it (fa__materialize). An object future points up to what it
 * waits on (`upstream`: a stage's input, a followed future, or the head of a combinator's input
 * list linked through `sib`) and down to its single consumer (`consumer`, or the done callback).
 * A settled future with a consumer is queued on the scheduler; the drain hands its result to the
 * consumer (deliver) and recycles it. Cancellation walks the upstream links with an explicit work
 * list threaded through the doomed futures' consumer links, so neither a long chain nor a deep cancel ever
 * recurses.
 */
#include "future_internal.h"

#include <errno.h>
#include <string.h>

const char fa_err_timeout[] = "timed out";
const char fa_err_cancelled[] = "cancelled";
const char fa_err_pool_exhausted[] = "future pool exhausted";
const char fa_err_stale[] = "stale or already consumed future handle";
const char fa_err_empty[] = "no input futures";

const size_t fa__future_size = sizeof(fa_fut_t);
const size_t fa__aux_size = sizeof(fa__aux_t);


static_assert(offsetof(fa_fut_t, link) == 0, "the recycler and the run queue use the first word");
static_assert(sizeof(fa_fut_t) == 64, "a future is one cache line");

/* Allocation and recycling */

/* Recycles a future whose handles are already stale (generation bumped). */
static inline void fut_put(fa_fut_t *s)
{
    s->flags = 0;
    fa_recycler_put(&s->sched->_futures, s);
}

/* Gives an immediate an object: a settled future without a consumer, for a caller that must
 * link or queue it. NULL when the pool is exhausted. */
fa_fut_t *fa__materialize(fa_future_t f)
{
    fa_fut_t *s = fa__fut_new(f._s, FA__K_READY);
    if (FA_UNLIKELY(!s))
        return NULL;
    s->state = (uint8_t)f._imm;
    s->value = fa__imm_value(f);
    return s;
}

fa__aux_t *fa__aux_get(fa_sched_t *sched, fa_fut_t *owner)
{
    fa__aux_t *a = fa_recycler_get(&sched->_aux);
    if (FA_UNLIKELY(!a))
        return NULL;
    a->slot = owner;
    ev_timer_init(&a->timer, NULL, 0., 0.);
    return a;
}

void fa__aux_put(fa_sched_t *sched, fa__aux_t *a)
{
    if (ev_is_active(&a->timer)) {
        ev_timer_stop(sched->loop, &a->timer);
        sched->_timers_active--;
    }
    fa_recycler_put(&sched->_aux, a);
}

static void stop_timer(void *obj, void *arg)
{
    fa__aux_t *a = obj;
    fa_sched_t *sched = arg;
    if (ev_is_active(&a->timer)) {
        ev_timer_stop(sched->loop, &a->timer);
        sched->_timers_active--;
    }
}

void fa__future_stop_timers(fa_sched_t *sched)
{
    fa_recycler_each(&sched->_aux, stop_timer, sched);
}

/* Settling and delivery */

#define post fa__fut_post

static inline fa_result_t result_of(const fa_fut_t *s)
{
    fa_result_t r;
    r.state = s->state;
    r.value = s->value; /* the error shares the storage and the size */
    return r;
}

/* Checks that an object handle returned by a callback (a follow) may be adopted by a future of
 * sched (by: the adopting future, or NULL for an immediate's inline callback). */
static fa_fut_t *adoptable(fa_future_t h, const fa_fut_t *by, const fa_sched_t *sched)
{
    fa_fut_t *u = h._p;
    if (h._imm || !u || u->gen != h._gen || u->consumer || u == by || u->sched != sched)
        return NULL;
    return u;
}

/* Links input u below consumer c at index idx; queues u at once if it has already settled. */
void fa__link(fa_fut_t *c, fa_fut_t *u, uint32_t idx)
{
    u->consumer = c;
    u->idx = idx;
    u->sib = c->upstream;
    c->upstream = u;
    if (u->state != FA_FUT_PENDING)
        post(u);
}

/* Gives c its result and queues it for its consumer. A follow result makes c adopt another
 * future instead: c becomes a pass-through whose single input is that future. */
static void settle_follow(fa_fut_t *c, fa_result_t r);

static inline void settle(fa_fut_t *c, fa_result_t r)
{
    if (FA_UNLIKELY(r.state == FA_FUT_FOLLOW)) {
        settle_follow(c, r);
        return;
    }
    c->state = (uint8_t)r.state;
    c->value = r.value;
    c->upstream = NULL;
    if (c->consumer)
        post(c);
}

void fa__settle(fa_fut_t *c, fa_result_t r)
{
    settle(c, r);
}

static void settle_follow(fa_fut_t *c, fa_result_t r)
{
    if (r.follow._imm) { /* the callback returned a settled result: take it as it is */
        r.state = r.follow._imm;
        r.value = fa__imm_value(r.follow);
    } else {
        fa_fut_t *u = adoptable(r.follow, c, c->sched);
        if (u) {
            c->kind = FA__K_PASS;
            c->upstream = NULL;
            fa__link(c, u, 0);
            return;
        }
        r = fa_fail(FA_ERROR_STATIC(-ESTALE, fa_err_stale));
    }
    c->state = (uint8_t)r.state;
    c->value = r.value;
    c->upstream = NULL;
    if (c->consumer)
        post(c);
}

/* A result a callback returned but nobody will take (its future was cancelled meanwhile). */
void fa__discard(fa_result_t r)
{
    if (r.state == FA_FUT_FOLLOW && !r.follow._imm && fa_future_valid(r.follow) &&
        !r.follow._p->consumer)
        (void)fa_future_cancel(r.follow);
}

/* Runs from the drain for every queued future (the scheduler calls it for entries tagged as
 * futures): a future cancelled while queued is recycled; a done callback runs after its future
 * is recycled (so cancelling it from the callback is a harmless no-op); otherwise the result
 * goes to the consumer. */
void fa__fut_run(void *fut)
{
    fa_fut_t *s = fut;
    uint8_t flags = s->flags;
    if (FA_LIKELY(!(flags & (FA__F_DEAD | FA__F_DONE)))) {
        /* A then stage on a value never gets here: fa__fut_run_inline, its only caller, ran it. */
        fa_fut_t *c = s->consumer;
        /* when_all's input resolved: one store and a count (see fa__comb_deliver). */
        if (c->kind == FA__K_ALL && s->state == FA_FUT_RESOLVED) {
            fa__aux_t *a = c->aux;
            a->comb.values[s->idx] = s->value;
            s->flags = FA__F_DELIVERED;
            if (++a->comb.ok == a->comb.n)
                fa__comb_finish(c, fa_ok(FA_VALUE_PTR(a->comb.values, a->comb.n)));
            return;
        }
        fa__deliver(c, s);
        return;
    }
    if (FA_UNLIKELY(flags & FA__F_DEAD)) {
        fut_put(s);
        return;
    }
    fa_result_t r;
    r.state = s->state;
    r.value = s->value;
    fa_done_cb cb = s->done;
    void *data = s->done_data;
    fa_sched_t *sched = s->sched;
    fa__fut_free(s);
    cb(sched, data, &r);
}

/* The end of a then stage run from fa__fut_run_inline when it is not a plain value: c was
 * cancelled by its own callback, or the callback returned a future to follow. */
void fa__then_settle_slow(fa_fut_t *c, fa_result_t r)
{
    if (FA_UNLIKELY(c->flags & FA__F_CANCELED)) {
        fa__cancelled_while_running(c, r);
        return;
    }
    settle(c, r);
}

/* Calls a stage callback with c marked running: a cancel of c from inside only flags it, and
 * the cancel is completed here once the callback has returned. Returns false if c was cancelled
 * (the result has been discarded). */
static bool run_then(fa_fut_t *c, fa_value_t v, fa_result_t *r)
{
    c->flags |= FA__F_RUNNING;
    *r = ((fa_then_cb)c->cb)(c->sched, c->data, v);
    c->flags &= (uint8_t)~FA__F_RUNNING;
    return !fa__cancelled_while_running(c, *r);
}

static bool run_catch(fa_fut_t *c, fa_error_t e, fa_result_t *r)
{
    c->flags |= FA__F_RUNNING;
    *r = ((fa_catch_cb)c->cb)(c->sched, c->data, e);
    c->flags &= (uint8_t)~FA__F_RUNNING;
    return !fa__cancelled_while_running(c, *r);
}

bool fa__cancelled_while_running(fa_fut_t *c, fa_result_t r)
{
    if (FA_LIKELY(!(c->flags & FA__F_CANCELED)))
        return false;
    c->flags &= (uint8_t)~FA__F_CANCELED;
    fa__discard(r);
    fa__cancel_doomed(c);
    return true;
}

static void retry_next(fa_fut_t *c);

/* Hands the settled input s to its consumer c. s is recycled before any user callback runs, so
 * a callback sees only c. */
void fa__deliver(fa_fut_t *c, fa_fut_t *s)
{
    fa_result_t r = result_of(s);
    switch (c->kind) {
    case FA__K_THEN:
        fa__fut_free(s);
        c->upstream = NULL;
        if (r.state == FA_FUT_RESOLVED && !run_then(c, r.value, &r))
            return;
        settle(c, r);
        return;
    case FA__K_CATCH:
        fa__fut_free(s);
        c->upstream = NULL;
        if (r.state == FA_FUT_REJECTED && !run_catch(c, r.error, &r))
            return;
        settle(c, r);
        return;
    case FA__K_FINALLY:
        fa__fut_free(s);
        c->upstream = NULL;
        c->kind = FA__K_PASS; /* so that a cancel from inside does not call it a second time */
        c->flags |= FA__F_RUNNING;
        ((fa_finally_cb)c->cb)(c->sched, c->data, &r);
        c->flags &= (uint8_t)~FA__F_RUNNING;
        if (fa__cancelled_while_running(c, fa_ok(FA_VALUE_NONE)))
            return;
        settle(c, r);
        return;
    case FA__K_PASS:
        fa__fut_free(s);
        settle(c, r);
        return;
    case FA__K_TIMEOUT:
        fa__fut_free(s);
        fa__aux_put(c->sched, c->aux);
        c->aux = NULL;
        c->kind = FA__K_PASS;
        settle(c, r);
        return;
    case FA__K_RETRY:
        fa__fut_free(s);
        c->upstream = NULL;
        if (r.state == FA_FUT_REJECTED) {
            fa__aux_t *a = c->aux;
            a->retry.last = r.error;
            if (++a->retry.attempt < a->retry.tries) {
                retry_next(c);
                return;
            }
        }
        fa__aux_put(c->sched, c->aux);
        c->aux = NULL;
        c->kind = FA__K_PASS;
        settle(c, r);
        return;
    default:
        fa__comb_deliver(c, s);
        return;
    }
}

/* Cancellation */

/* Detaches u from its consumer and dooms it: its generation moves on at once, so every handle
 * (the producer's promise too) is stale from here. A settled u is recycled now or, if it is in
 * the run queue, when the drain reaches it; a running one is flagged for its runner to finish;
 * a pending one goes on the work list to have its own inputs cancelled.
 * No flag says "queued": a settled future is in the run queue exactly when it has a consumer
 * (had_consumer) that has not taken its result yet (a combinator input keeps
 * FA__F_DELIVERED once taken; any other future is recycled when taken). */
void fa__drop(fa_fut_t *u, fa_fut_t **work, bool had_consumer)
{
    u->consumer = NULL;
    u->gen++;
    if (u->state != FA_FUT_PENDING) {
        if (had_consumer && !(u->flags & FA__F_DELIVERED))
            u->flags |= FA__F_DEAD;
        else
            fut_put(u);
    } else if (u->flags & FA__F_RUNNING) {
        u->flags |= FA__F_CANCELED;
    } else {
        u->consumer = *work; /* pending, so never queued: upstream (the first word) is live */
        *work = u;
    }
}

/* Drops every input of c (the upstream list). */
void fa__drop_inputs(fa_fut_t *c, fa_fut_t **work)
{
    fa_recycler_t *r = &c->sched->_futures;
    for (fa_fut_t *u = c->upstream, *next; u; u = next) {
        next = u->sib;
        if (u->flags == FA__F_DELIVERED) { /* the usual case: seen, idle; straight back */
            u->gen++;
            u->flags = 0;
            fa_recycler_put(r, u);
            continue;
        }
        fa__drop(u, work, true);
    }
    c->upstream = NULL;
}

/* Processes the work list: each entry is a doomed pending future. Hooks and finally callbacks
 * run after their future is recycled; they may cancel other things (a nested work list). */
void fa__cancel_run(fa_fut_t *work)
{
    static const fa_result_t cancelled = {
        .state = FA_FUT_REJECTED, .error = {.code = -ECANCELED, .msg = fa_err_cancelled}};
    while (work) {
        fa_fut_t *x = work;
        work = x->consumer;
        fa_sched_t *sched = x->sched;
        void (*cb)(void) = x->cb;
        void *data = x->data;
        uint8_t kind = x->kind;
        if (kind == FA__K_TIMEOUT || kind == FA__K_RETRY || kind >= FA__K_ALL) {
            if (x->aux)
                fa__aux_put(sched, x->aux);
            x->aux = NULL;
        }
        fa__drop_inputs(x, &work);
        fut_put(x);
        if (kind == FA__K_PROMISE && cb)
            ((fa_cancel_cb)cb)(sched, data);
        else if (kind == FA__K_FINALLY)
            ((fa_finally_cb)cb)(sched, data, &cancelled);
    }
}

/* Cancels c, whose generation has already been bumped. */
void fa__cancel_doomed(fa_fut_t *c)
{
    c->consumer = NULL;
    fa__cancel_run(c);
}

int fa__cancel_obj(fa_fut_t *s, uint32_t gen)
{
    if (!s || s->gen != gen)
        return -ESTALE;
    if (s->consumer && !(s->flags & FA__F_DONE))
        return -EBUSY;
    fa_fut_t *work = NULL;
    bool had_done = s->flags & FA__F_DONE;
    s->flags &= (uint8_t)~FA__F_DONE;
    fa__drop(s, &work, had_done);
    fa__cancel_run(work);
    return 0;
}

/* Promises and immediates */

int fa_promise_on_cancel(fa_promise_t promise, fa_cancel_cb cb, void *data)
{
    fa_fut_t *s = promise._p;
    if (!s || s->gen != promise._gen || s->kind != FA__K_PROMISE)
        return -ESTALE;
    if (s->state != FA_FUT_PENDING)
        return 0; /* settled: a cancel will never need the hook (and the result owns its storage) */
    s->cb = (void (*)(void))cb;
    s->data = data;
    return 0;
}

/* A callback run inline on an immediate returned a future to follow (or garbage): an immediate
 * is taken as it is; an object future is handed over as the result; anything else becomes a
 * rejection by fa_err_stale. */
int fa__imm_result_slow(fa_sched_t *sched, fa_result_t r, fa_future_t *out)
{
    if (r.state == FA_FUT_FOLLOW) {
        if (r.follow._imm && r.follow._s == sched) {
            *out = r.follow;
            return 0;
        }
        if (adoptable(r.follow, NULL, sched)) {
            *out = r.follow;
            return 0;
        }
    }
    fa_error_t e = FA_ERROR_STATIC(-ESTALE, fa_err_stale);
    fa_value_t v;
    memcpy(&v, &e, sizeof(v));
    *out = fa__imm(sched, FA_FUT_REJECTED, v);
    return 0;
}

/* Past the inline depth: the immediate gets an object and the stage is chained on it as on any
 * settled object future, so its callback runs from the drain. */
static int chain_on(fa_fut_t *u, uint8_t kind, void (*cb)(void), void *data, fa_future_t *out);

int fa__then_deep(fa_future_t f, uint8_t kind, void (*cb)(void), void *data, fa_future_t *out)
{
    fa_fut_t *u = fa__materialize(f);
    if (FA_UNLIKELY(!u))
        return -ENOMEM;
    int rc = chain_on(u, kind, cb, data, out);
    if (FA_UNLIKELY(rc))
        fa__fut_free(u);
    return rc;
}

int fa__imm_done(fa_future_t *f, fa_done_cb cb, void *data)
{
    fa_fut_t *s = fa__materialize(*f);
    if (FA_UNLIKELY(!s))
        return -ENOMEM;
    *f = (fa_future_t){._p = s, ._gen = s->gen};
    return fa_future_done(f, cb, data);
}

/* Chaining */

int fa__check_input(fa_future_t f)
{
    if (f._imm)
        return 0;
    if (FA_UNLIKELY(!f._p || f._p->gen != f._gen))
        return -ESTALE;
    if (FA_UNLIKELY(f._p->consumer != NULL))
        return -EBUSY;
    return 0;
}

/* Makes the stage future that consumes u (already checked: live, no consumer). */
static int chain_on(fa_fut_t *u, uint8_t kind, void (*cb)(void), void *data, fa_future_t *out)
{
    fa_fut_t *c = fa__fut_new(u->sched, kind);
    if (FA_UNLIKELY(!c))
        return -ENOMEM;
    c->cb = cb;
    c->data = data;
    fa__link(c, u, 0);
    *out = (fa_future_t){._p = c, ._gen = c->gen};
    return 0;
}

/* A stage on an object future (the inline wrappers in future_inline.h pass the handle as
 * scalars). */
int fa__chain_obj(fa_fut_t *u, uint32_t gen, uint8_t kind, void (*cb)(void), void *data,
                  fa_future_t *out)
{
    if (FA_UNLIKELY(!u || u->gen != gen))
        return -ESTALE;
    if (FA_UNLIKELY(u->consumer != NULL))
        return -EBUSY;
    return chain_on(u, kind, cb, data, out);
}

/* catch and finally on an immediate run inline, like then (see fa_future_then). */
int fa__catch_imm(fa_future_t f, fa_catch_cb cb, void *data, fa_future_t *out)
{
    if (f._imm != FA_FUT_REJECTED) {
        *out = f; /* a value passes a catch stage by */
        return 0;
    }
    fa_sched_t *sched = f._s;
    if (sched->_inline >= FA_FUTURE_INLINE_DEPTH)
        return fa__then_deep(f, FA__K_CATCH, (void (*)(void))cb, data, out);
    fa_error_t e;
    fa_value_t v = fa__imm_value(f);
    memcpy(&e, &v, sizeof(e));
    sched->_inline++;
    fa_result_t r = cb(sched, data, e);
    sched->_inline--;
    return fa__imm_result(sched, &r, out);
}

int fa__finally_imm(fa_future_t f, fa_finally_cb cb, void *data, fa_future_t *out)
{
    fa_sched_t *sched = f._s;
    if (sched->_inline >= FA_FUTURE_INLINE_DEPTH)
        return fa__then_deep(f, FA__K_FINALLY, (void (*)(void))cb, data, out);
    fa_result_t r = {.state = f._imm, .value = fa__imm_value(f)};
    sched->_inline++;
    cb(sched, data, &r);
    sched->_inline--;
    *out = f;
    return 0;
}

/* Timeout */

/* The timer fired first: the waited-on future is cancelled and the timeout rejects. Runs from
 * libev; settling only queues, so no continuation runs here. */
static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    fa__aux_t *a = FA_CONTAINER_OF(w, fa__aux_t, timer);
    fa_fut_t *c = a->slot;
    fa_sched_t *sched = c->sched;
    sched->_timers_active--; /* a one-shot timer is already stopped */
    fa__aux_put(sched, a);
    c->aux = NULL;
    c->kind = FA__K_PASS;
    fa_fut_t *work = NULL;
    fa__drop_inputs(c, &work);
    fa__cancel_run(work);
    settle(c, fa_fail(FA_ERROR_STATIC(-ETIMEDOUT, fa_err_timeout)));
}

int fa_future_timeout(fa_future_t f, double seconds, fa_future_t *out)
{
    if (f._imm) {
        *out = f; /* settled already: it cannot time out */
        return 0;
    }
    int rc = fa__check_input(f);
    if (rc)
        return rc;
    fa_sched_t *sched = f._p->sched;
    fa_fut_t *c = fa__fut_new(sched, FA__K_TIMEOUT);
    if (!c)
        return -ENOMEM;
    fa__aux_t *a = fa__aux_get(sched, c);
    if (!a) {
        fa__fut_free(c);
        return -ENOMEM;
    }
    c->aux = a;
    ev_timer_init(&a->timer, on_timeout, seconds, 0.);
    ev_timer_start(sched->loop, &a->timer);
    sched->_timers_active++;
    fa__link(c, f._p, 0);
    *out = (fa_future_t){._p = c, ._gen = c->gen};
    return 0;
}

/* Retry */

/* The object a retry waits on for the future an attempt returned: the future itself, or an
 * object for an immediate. NULL with *rc = -ESTALE for a handle that cannot be adopted, -ENOMEM
 * when no object is left. */
static fa_fut_t *attempt_input(fa_future_t f, fa_sched_t *sched, const fa_fut_t *c, int *rc)
{
    if (f._imm) {
        fa_fut_t *u = f._s == sched ? fa__materialize(f) : NULL;
        *rc = f._s != sched ? -ESTALE : u ? 0 : -ENOMEM;
        return u;
    }
    if (fa__check_input(f) != 0 || f._p->sched != sched || f._p == c) {
        *rc = -ESTALE;
        return NULL;
    }
    return f._p;
}

/* Starts attempt number a->retry.attempt and waits on it. Runs from the drain or the backoff
 * timer; the factory is user code, so c is marked running around it. */
static void retry_start(fa_fut_t *c)
{
    fa__aux_t *a = c->aux;
    fa_future_t f = FA_FUTURE_NULL;
    c->flags |= FA__F_RUNNING;
    int rc = a->retry.fn(c->sched, a->retry.data, a->retry.attempt, &f);
    c->flags &= (uint8_t)~FA__F_RUNNING;
    fa_result_t r = rc == 0 ? fa_follow(f) : fa_ok(FA_VALUE_NONE);
    if (fa__cancelled_while_running(c, r))
        return;
    if (rc != 0) {
        fa__aux_put(c->sched, a);
        c->aux = NULL;
        c->kind = FA__K_PASS;
        settle(c, fa_fail(FA_ERROR_STATIC(
                          rc, rc == -ENOMEM ? fa_err_pool_exhausted : "retry attempt failed to start")));
        return;
    }
    fa_fut_t *u = attempt_input(f, c->sched, c, &rc);
    if (!u) {
        fa__aux_put(c->sched, a);
        c->aux = NULL;
        c->kind = FA__K_PASS;
        settle(c, fa_fail(rc == -ENOMEM ? FA_ERROR_STATIC(-ENOMEM, fa_err_pool_exhausted)
                                        : FA_ERROR_STATIC(-ESTALE, fa_err_stale)));
        return;
    }
    fa__link(c, u, 0);
}

static void on_backoff(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    fa__aux_t *a = FA_CONTAINER_OF(w, fa__aux_t, timer);
    a->slot->sched->_timers_active--;
    retry_start(a->slot);
}

/* An attempt failed and tries remain: wait for the backoff, or start the next one at once. */
static void retry_next(fa_fut_t *c)
{
    fa__aux_t *a = c->aux;
    fa_sched_t *sched = c->sched;
    if (a->retry.delay > 0) {
        ev_timer_init(&a->timer, on_backoff, a->retry.delay, 0.);
        ev_timer_start(sched->loop, &a->timer);
        sched->_timers_active++;
        a->retry.delay *= 2;
        return;
    }
    retry_start(c);
}

int fa_future_retry(fa_sched_t *sched, fa_attempt_fn fn, void *data, unsigned tries,
                    double backoff, fa_future_t *out)
{
    if (tries < 1)
        return -EINVAL;
    fa_fut_t *c = fa__fut_new(sched, FA__K_RETRY);
    if (!c)
        return -ENOMEM;
    fa__aux_t *a = fa__aux_get(sched, c);
    if (!a) {
        fa__fut_free(c);
        return -ENOMEM;
    }
    c->aux = a;
    a->retry.fn = fn;
    a->retry.data = data;
    a->retry.attempt = 0;
    a->retry.tries = tries;
    a->retry.delay = backoff;
    fa_future_t f = FA_FUTURE_NULL;
    int rc = fn(sched, data, 0, &f);
    fa_fut_t *u = rc == 0 ? attempt_input(f, sched, c, &rc) : NULL;
    if (!u) {
        fa__aux_put(sched, a);
        fa__fut_free(c);
        return rc;
    }
    fa__link(c, u, 0);
    *out = (fa_future_t){._p = c, ._gen = c->gen};
    return 0;
}

/* Compose */

int fa_future_compose(fa_sched_t *sched, const fa_compose_stage_t *stages, size_t n,
                      fa_value_t input, fa_future_t *out)
{
    fa_future_t f;
    int rc = fa_future_ready(sched, input, &f);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        fa_future_t g;
        rc = fa_future_then(f, stages[i].fn, stages[i].data, &g);
        if (rc) {
            (void)fa_future_cancel(f); /* returns the partial chain (stages that ran inline are
                                          done; the rest never runs) */
            return rc;
        }
        f = g;
    }
    *out = f;
    return 0;
}
