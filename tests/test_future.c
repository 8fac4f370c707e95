/*
 * test_future.c — futures: ordering, error propagation, every combinator with ready, pending and
 * failing inputs, timeouts, retries, cancellation (also mid-chain and from inside a callback), a
 * 1,000,000-link chain on a flat stack, stale handles, pool exhaustion, and no allocator call
 * after warm-up; then/catch/finally on an immediate (ready) future running inline, the bound on
 * inline nesting, and their order against queued consumers. Every test ends by running the loop dry and checking that no watcher is active
 * and no pooled object is still out.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "alloc.h"
#include "future.h"

#include <errno.h>
#include <ev.h>
#include <string.h>

static struct ev_loop *loop;
static fa_sched_t S;

static void setup_conf(const fa_sched_conf_t *conf)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    fa_sched_init(&S, loop, conf);
}

static void setup(void)
{
    setup_conf(NULL);
}

/* libuv's MAKE_VALGRIND_HAPPY: run the loop dry, then nothing may be left. */
static void teardown(void)
{
    ev_run(loop, 0);
    fa_sched_stats_t st;
    fa_sched_stats(&S, &st);
    cr_assert_eq(st.futures_live, 0, "futures still out: %u", st.futures_live);
    cr_assert_eq(st.aux_live, 0, "combinator states still out: %u", st.aux_live);
    cr_assert_eq(st.timers_active, 0);
    cr_assert(fa_sched_quiescent(&S));
    cr_assert_eq(ev_run(loop, EVRUN_NOWAIT), 0, "no referenced watcher is left active");
    cr_assert_eq(fa_sched_fini(&S), 0);
    ev_loop_destroy(loop);
}

TestSuite(future, .init = setup, .fini = teardown, .timeout = 60);

/* Helpers */

#define OK(call) cr_assert_eq((call), 0, "%s", #call)

static fa_future_t pending(fa_promise_t *p)
{
    fa_future_t f;
    OK(fa_promise_new(&S, p, &f));
    return f;
}

static fa_future_t ready(int64_t n)
{
    fa_future_t f;
    OK(fa_future_ready(&S, FA_VALUE_INT(n), &f));
    return f;
}

static const char err_app[] = "application error";
static fa_error_t app_err(int code)
{
    return FA_ERROR_STATIC(code, err_app);
}

static fa_future_t failed(int code)
{
    fa_future_t f;
    OK(fa_future_failed(&S, app_err(code), &f));
    return f;
}

/* A done callback that records the result into a struct. */
typedef struct {
    int calls;
    fa_result_t r;
    int order; /* global sequence number when it ran */
} seen_t;

static int seq;

static void on_done(fa_sched_t *s, void *data, const fa_result_t *r)
{
    cr_assert_eq(s, &S);
    seen_t *seen = data;
    seen->calls++;
    seen->r = *r;
    seen->order = ++seq;
}

static void expect_value(const seen_t *seen, int64_t n)
{
    cr_assert_eq(seen->calls, 1, "done ran %d times", seen->calls);
    cr_assert_eq(seen->r.state, FA_FUT_RESOLVED, "state %u", seen->r.state);
    cr_assert_eq(seen->r.value.kind, FA_VAL_INT);
    cr_assert_eq(seen->r.value.i, n, "value %ld, want %ld", (long)seen->r.value.i, (long)n);
}

static void expect_error(const seen_t *seen, const char *msg, int code)
{
    cr_assert_eq(seen->calls, 1, "done ran %d times", seen->calls);
    cr_assert_eq(seen->r.state, FA_FUT_REJECTED, "state %u", seen->r.state);
    cr_assert_eq(seen->r.error.msg, msg, "error \"%s\"", seen->r.error.msg);
    cr_assert_eq(seen->r.error.code, code, "code %d", seen->r.error.code);
}

static int then_calls;
static fa_result_t add_one(fa_sched_t *s, void *data, fa_value_t v)
{
    (void)s;
    (void)data;
    then_calls++;
    return fa_ok_int(v.i + 1);
}

static fa_result_t fail_with_7(fa_sched_t *s, void *data, fa_value_t v)
{
    (void)s;
    (void)data;
    (void)v;
    then_calls++;
    return fa_fail(app_err(7));
}

static int catch_calls;
static fa_result_t recover_100(fa_sched_t *s, void *data, fa_error_t e)
{
    (void)s;
    (void)data;
    catch_calls++;
    return fa_ok_int(100 + e.code);
}

static int cancel_hooks;
static void on_cancel_count(fa_sched_t *s, void *data)
{
    (void)s;
    (void)data;
    cancel_hooks++;
}

static int finally_calls;
static fa_result_t finally_seen;
static void on_finally(fa_sched_t *s, void *data, const fa_result_t *r)
{
    (void)s;
    (void)data;
    finally_calls++;
    finally_seen = *r;
}

static void reset_counters(void)
{
    then_calls = catch_calls = cancel_hooks = finally_calls = 0;
    seq = 0;
}

/* Ordering, the "never on the spot" rule, and then on an immediate (the one inline case) */

static int then_depth, then_depth_max;
static fa_result_t add_one_tracking_depth(fa_sched_t *s, void *data, fa_value_t v)
{
    (void)s;
    (void)data;
    then_calls++;
    then_depth_max = then_depth > then_depth_max ? then_depth : then_depth_max;
    return fa_ok_int(v.i + 1);
}

Test(future, then_on_an_immediate_runs_inline_and_takes_no_object)
{
    reset_counters();
    fa_future_t f = ready(1), g, h;
    OK(fa_future_then(f, add_one, NULL, &g));
    cr_assert_eq(then_calls, 1, "a then on a ready value runs inside the call");
    cr_assert_eq(fa_future_state(g), FA_FUT_RESOLVED);
    OK(fa_future_then(g, fail_with_7, NULL, &g));
    OK(fa_future_then(g, add_one, NULL, &g)); /* skipped: g rejected */
    OK(fa_future_catch(g, recover_100, NULL, &g));
    OK(fa_future_finally(g, on_finally, NULL, &h));
    cr_assert_eq(then_calls, 2);
    cr_assert_eq(catch_calls, 1);
    cr_assert_eq(finally_calls, 1);
    fa_sched_stats_t st;
    fa_sched_stats(&S, &st);
    cr_assert_eq(st.futures_live, 0, "no object for a chain over immediates");
    cr_assert_eq(st.queued, 0, "and nothing queued");
    fa_result_t r;
    OK(fa_future_get(h, &r));
    cr_assert_eq(r.state, FA_FUT_RESOLVED);
    cr_assert_eq(r.value.i, 107);
    OK(fa_future_cancel(h)); /* an immediate holds nothing: a no-op */
    cr_assert(fa_future_valid(h));
}

Test(future, then_on_a_settled_object_future_is_queued_not_run_on_the_spot)
{
    reset_counters();
    fa_promise_t p;
    fa_future_t f = pending(&p), g;
    OK(fa_promise_resolve(p, FA_VALUE_INT(1)));
    OK(fa_future_then(f, add_one, NULL, &g));
    cr_assert_eq(then_calls, 0, "then on a settled promise's future ran on the spot");
    cr_assert_eq(fa_future_then(f, add_one, NULL, &g), -EBUSY);
    seen_t seen = {0};
    OK(fa_future_done(&g, on_done, &seen));
    ev_run(loop, 0);
    expect_value(&seen, 2);
}

Test(future, done_on_an_immediate_is_queued_and_cancellable)
{
    reset_counters();
    fa_future_t f = ready(5), g = f;
    seen_t seen = {0};
    OK(fa_future_done(&g, on_done, &seen));
    cr_assert_eq(seen.calls, 0, "done never runs inline");
    cr_assert_neq(memcmp(&f, &g, sizeof(f)), 0, "the handle now names the queued object");
    fa_sched_stats_t st;
    fa_sched_stats(&S, &st);
    cr_assert_eq(st.futures_live, 1);
    cr_assert_eq(st.queued, 1);
    cr_assert_eq(fa_future_then(g, add_one, NULL, &f), -EBUSY);
    OK(fa_future_cancel(g)); /* e.g. the connection closed before the drain */
    cr_assert_not(fa_future_valid(g));
    ev_run(loop, 0);
    cr_assert_eq(seen.calls, 0, "a cancelled done never runs");
    g = ready(6);
    OK(fa_future_done(&g, on_done, &seen));
    ev_run(loop, 0);
    expect_value(&seen, 6);
}

/* FIFO holds for settlements and queued consumers; an inline then is not a settlement and runs
 * before anything queued. */
Test(future, inline_then_and_queued_consumers_keep_their_order)
{
    reset_counters();
    fa_promise_t p;
    fa_future_t a = pending(&p), b, c;
    seen_t first = {0}, second = {0}, third = {0};
    OK(fa_future_done(&a, on_done, &first));
    OK(fa_promise_resolve(p, FA_VALUE_INT(1))); /* queued first */
    OK(fa_future_then(ready(10), add_one, NULL, &b)); /* ran now */
    cr_assert_eq(then_calls, 1);
    OK(fa_future_done(&b, on_done, &second)); /* queued second */
    c = ready(20);
    OK(fa_future_done(&c, on_done, &third)); /* queued third */
    ev_run(loop, 0);
    expect_value(&first, 1);
    expect_value(&second, 11);
    expect_value(&third, 20);
    cr_assert_lt(first.order, second.order);
    cr_assert_lt(second.order, third.order);
}

/* A then callback that chains on an immediate again, `data` levels deep: each level nests one
 * inline call until the depth bound, past which the then is queued. */
static fa_result_t nest(fa_sched_t *s, void *data, fa_value_t v)
{
    (void)s;
    then_depth++;
    then_depth_max = then_depth > then_depth_max ? then_depth : then_depth_max;
    intptr_t left = (intptr_t)data;
    fa_future_t f, g;
    cr_assert_eq(fa_future_ready(s, FA_VALUE_INT(v.i + 1), &f), 0);
    if (left > 1)
        cr_assert_eq(fa_future_then(f, nest, (void *)(left - 1), &g), 0);
    else
        cr_assert_eq(fa_future_then(f, add_one_tracking_depth, NULL, &g), 0);
    then_depth--;
    return fa_follow(g);
}

Test(future, inline_nesting_stops_at_the_depth_bound_and_queues_the_rest)
{
    reset_counters();
    then_depth = then_depth_max = 0;
    enum { LEVELS = 3 * FA_FUTURE_INLINE_DEPTH };
    fa_future_t g;
    OK(fa_future_then(ready(0), nest, (void *)(intptr_t)LEVELS, &g));
    cr_assert_eq(then_depth_max, FA_FUTURE_INLINE_DEPTH, "nested inline calls: %d",
                 then_depth_max);
    cr_assert_eq(fa_future_state(g), FA_FUT_PENDING, "the part past the bound is queued");
    seen_t seen = {0};
    OK(fa_future_done(&g, on_done, &seen));
    ev_run(loop, 0);
    expect_value(&seen, LEVELS + 1);
    /* From the drain, the queued callback's own frame plus at most the bound again. */
    cr_assert_eq(then_depth_max, FA_FUTURE_INLINE_DEPTH + 1, "nesting from the drain: %d",
                 then_depth_max);
}

Test(future, a_long_chain_of_immediates_runs_inline_without_nesting)
{
    reset_counters();
    fa_future_t f = ready(0);
    for (int i = 0; i < 1000; i++)
        OK(fa_future_then(f, add_one, NULL, &f));
    fa_result_t r;
    OK(fa_future_get(f, &r));
    cr_assert_eq(r.value.i, 1000, "sequential thens never hit the depth bound");
    cr_assert_eq(then_calls, 1000);
}

Test(future, get_takes_a_settled_result_and_refuses_a_pending_one)
{
    fa_promise_t p;
    fa_future_t f = pending(&p), g;
    fa_result_t r;
    cr_assert_eq(fa_future_get(f, &r), -EAGAIN);
    OK(fa_promise_reject(p, app_err(3)));
    OK(fa_future_get(f, &r));
    cr_assert_eq(r.state, FA_FUT_REJECTED);
    cr_assert_eq(r.error.code, 3);
    cr_assert_not(fa_future_valid(f), "get consumed the object");
    cr_assert_eq(fa_future_get(f, &r), -ESTALE);
    f = pending(&p);
    OK(fa_future_then(f, add_one, NULL, &g));
    cr_assert_eq(fa_future_get(f, &r), -EBUSY);
    OK(fa_future_cancel(g));
}

/* Cancelling a stage queued on a settled object future, before and during its run. */

static fa_future_t self_tail;
static fa_result_t cancel_own_tail(fa_sched_t *s, void *data, fa_value_t v);
static void setup_small(void);

static fa_future_t settled(int64_t n)
{
    fa_promise_t p;
    fa_future_t f = pending(&p);
    OK(fa_promise_resolve(p, FA_VALUE_INT(n)));
    return f;
}

Test(future, cancel_a_then_on_a_settled_future_before_and_during_its_run)
{
    reset_counters();
    fa_future_t g;
    seen_t seen = {0};
    /* Cancelled while its input is still queued: the stage never runs. */
    OK(fa_future_then(settled(1), add_one, NULL, &g));
    OK(fa_future_done(&g, on_done, &seen));
    OK(fa_future_cancel(g));
    cr_assert_not(fa_future_valid(g));
    /* Cancelled through a consumer further down while queued. */
    fa_future_t h;
    OK(fa_future_then(settled(1), add_one, NULL, &g));
    OK(fa_future_catch(g, recover_100, NULL, &h));
    cr_assert_eq(fa_future_cancel(g), -EBUSY, "g has a consumer: cancel the end instead");
    OK(fa_future_done(&h, on_done, &seen));
    OK(fa_future_cancel(h));
    ev_run(loop, 0);
    cr_assert_eq(then_calls, 0, "a cancelled stage never runs");
    cr_assert_eq(seen.calls, 0);
    /* Cancelled from inside its own running stage (self_tail is the stage itself). */
    OK(fa_future_then(settled(1), cancel_own_tail, NULL, &self_tail));
    ev_run(loop, 0);
    cr_assert_eq(then_calls, 1);
}

Test(future, a_chain_over_immediates_works_with_the_pool_exhausted, .init = setup_small)
{
    reset_counters();
    fa_promise_t p[4];
    fa_future_t f[4];
    for (int i = 0; i < 4; i++)
        f[i] = pending(&p[i]);
    fa_future_t g;
    cr_assert_eq(fa_promise_new(&S, &p[0], &g), -ENOMEM);
    OK(fa_future_then(ready(0), add_one, NULL, &g));
    OK(fa_future_then(g, add_one, NULL, &g));
    cr_assert_eq(then_calls, 2, "no object needed");
    seen_t seen = {0};
    fa_future_t h = g;
    cr_assert_eq(fa_future_done(&h, on_done, &seen), -ENOMEM, "done needs an object");
    cr_assert_eq(memcmp(&h, &g, sizeof(g)), 0, "a refused done leaves the handle as it was");
    OK(fa_future_cancel(f[3]));
    OK(fa_future_done(&g, on_done, &seen));
    for (int i = 0; i < 3; i++)
        OK(fa_future_cancel(f[i]));
    ev_run(loop, 0);
    expect_value(&seen, 2);
}

Test(future, resolve_queues_the_continuation_instead_of_running_it)
{
    reset_counters();
    fa_promise_t p;
    fa_future_t f = pending(&p), g;
    OK(fa_future_then(f, add_one, NULL, &g));
    seen_t seen = {0};
    OK(fa_future_done(&g, on_done, &seen));
    OK(fa_promise_resolve(p, FA_VALUE_INT(41)));
    cr_assert_eq(then_calls, 0, "resolution ran the continuation on the spot");
    cr_assert_eq(fa_future_state(g), FA_FUT_PENDING);
    ev_run(loop, 0);
    expect_value(&seen, 42);
}

Test(future, continuations_run_in_resolution_order)
{
    reset_counters();
    fa_promise_t p[4];
    fa_future_t f[4];
    seen_t seen[4] = {0};
    for (int i = 0; i < 4; i++) {
        f[i] = pending(&p[i]);
        OK(fa_future_done(&f[i], on_done, &seen[i]));
    }
    const int order[4] = {2, 0, 3, 1};
    for (int i = 0; i < 4; i++)
        OK(fa_promise_resolve(p[order[i]], FA_VALUE_INT(order[i])));
    ev_run(loop, 0);
    for (int i = 0; i < 4; i++) {
        expect_value(&seen[order[i]], order[i]);
        cr_assert_eq(seen[order[i]].order, i + 1, "input %d ran at %d", order[i],
                     seen[order[i]].order);
    }
}

Test(future, long_then_chain_on_ready_and_pending_values)
{
    reset_counters();
    fa_promise_t p;
    fa_future_t f = pending(&p);
    for (int i = 0; i < 10; i++)
        OK(fa_future_then(f, add_one, NULL, &f));
    seen_t seen = {0};
    OK(fa_future_done(&f, on_done, &seen));
    ev_run(loop, 0);
    cr_assert_eq(seen.calls, 0, "nothing resolves before the promise");
    OK(fa_promise_resolve(p, FA_VALUE_INT(0)));
    ev_run(loop, 0);
    expect_value(&seen, 10);
}

/* Errors */

Test(future, error_skips_then_stages_reaches_first_catch_and_recovers)
{
    reset_counters();
    fa_promise_t p;
    fa_future_t f = pending(&p), g;
    OK(fa_future_then(f, add_one, NULL, &g));
    OK(fa_future_then(g, add_one, NULL, &g));
    OK(fa_future_catch(g, recover_100, NULL, &g));
    OK(fa_future_catch(g, recover_100, NULL, &g)); /* not reached: the first one recovered */
    OK(fa_future_then(g, add_one, NULL, &g));
    seen_t seen = {0};
    OK(fa_future_done(&g, on_done, &seen));
    OK(fa_promise_reject(p, app_err(5)));
    ev_run(loop, 0);
    cr_assert_eq(catch_calls, 1);
    cr_assert_eq(then_calls, 1, "only the stage after the catch ran");
    expect_value(&seen, 106);
}

Test(future, error_from_a_then_stage_and_catch_skipped_on_success)
{
    reset_counters();
    fa_future_t g;
    OK(fa_future_catch(ready(1), recover_100, NULL, &g));
    OK(fa_future_then(g, fail_with_7, NULL, &g));
    OK(fa_future_then(g, add_one, NULL, &g));
    seen_t seen = {0};
    OK(fa_future_done(&g, on_done, &seen));
    ev_run(loop, 0);
    cr_assert_eq(catch_calls, 0);
    cr_assert_eq(then_calls, 1);
    expect_error(&seen, err_app, 7);
}

Test(future, finally_sees_value_and_error_and_passes_them_through)
{
    reset_counters();
    fa_future_t a, b;
    OK(fa_future_finally(ready(3), on_finally, NULL, &a));
    OK(fa_future_finally(failed(9), on_finally, NULL, &b));
    seen_t sa = {0}, sb = {0};
    OK(fa_future_done(&a, on_done, &sa));
    OK(fa_future_done(&b, on_done, &sb));
    ev_run(loop, 0);
    cr_assert_eq(finally_calls, 2);
    cr_assert_eq(finally_seen.state, FA_FUT_REJECTED, "the second finally saw the error");
    expect_value(&sa, 3);
    expect_error(&sb, err_app, 9);
}

static fa_promise_t follow_p;
static fa_result_t returns_pending(fa_sched_t *s, void *data, fa_value_t v)
{
    (void)data;
    (void)v;
    fa_future_t f;
    cr_assert_eq(fa_promise_new(s, &follow_p, &f), 0);
    return fa_follow(f);
}

Test(future, a_stage_returning_a_future_is_followed)
{
    reset_counters();
    fa_future_t g;
    OK(fa_future_then(ready(1), returns_pending, NULL, &g));
    OK(fa_future_then(g, add_one, NULL, &g));
    seen_t seen = {0};
    OK(fa_future_done(&g, on_done, &seen));
    ev_run(loop, 0);
    cr_assert_eq(seen.calls, 0);
    OK(fa_promise_resolve(follow_p, FA_VALUE_INT(50)));
    ev_run(loop, 0);
    expect_value(&seen, 51);
}

static fa_result_t returns_stale(fa_sched_t *s, void *data, fa_value_t v)
{
    (void)s;
    (void)v;
    return fa_follow(*(fa_future_t *)data);
}

Test(future, a_stage_returning_a_stale_future_rejects_with_fa_err_stale)
{
    fa_promise_t p;
    fa_future_t old = pending(&p), g;
    OK(fa_future_cancel(old)); /* now stale */
    OK(fa_future_then(ready(2), returns_stale, &old, &g));
    seen_t seen = {0};
    OK(fa_future_done(&g, on_done, &seen));
    ev_run(loop, 0);
    expect_error(&seen, fa_err_stale, -ESTALE);
}

/* Stale handles and misuse */

Test(future, stale_handles_are_detected_not_reused)
{
    fa_promise_t p;
    fa_future_t f = pending(&p);
    seen_t seen = {0};
    OK(fa_future_done(&f, on_done, &seen));
    cr_assert_eq(fa_future_done(&f, on_done, &seen), -EBUSY, "a second consumer");
    fa_future_t g;
    cr_assert_eq(fa_future_then(f, add_one, NULL, &g), -EBUSY);
    OK(fa_promise_resolve(p, FA_VALUE_INT(1)));
    cr_assert_eq(fa_promise_resolve(p, FA_VALUE_INT(2)), -EALREADY);
    ev_run(loop, 0);
    expect_value(&seen, 1);
    /* f has been consumed and recycled; the next future reuses its object (LIFO free list). */
    fa_promise_t q;
    fa_future_t h = pending(&q);
    OK(fa_promise_resolve(q, FA_VALUE_INT(5)));
    cr_assert_eq(h._p, f._p, "the recycler handed the same object out again");
    cr_assert_not(fa_future_valid(f));
    cr_assert(fa_future_valid(h));
    cr_assert_eq(fa_future_cancel(f), -ESTALE, "old handle cannot cancel the new future");
    cr_assert_eq(fa_promise_resolve(p, FA_VALUE_INT(3)), -ESTALE);
    cr_assert_eq(fa_future_then(f, add_one, NULL, &g), -ESTALE);
    cr_assert_eq(fa_future_state(h), FA_FUT_RESOLVED, "the new future is untouched");
    OK(fa_future_cancel(h));
    cr_assert_eq(fa_future_cancel(h), -ESTALE, "cancelling twice is a no-op");
    cr_assert_eq(fa_future_cancel(FA_FUTURE_NULL), -ESTALE);
}

Test(future, cancelling_the_middle_of_a_chain_is_refused)
{
    fa_promise_t p;
    fa_future_t f = pending(&p), g;
    OK(fa_future_then(f, add_one, NULL, &g));
    cr_assert_eq(fa_future_cancel(f), -EBUSY, "f belongs to the then stage now");
    OK(fa_future_cancel(g));
}

/* Cancellation */

Test(future, cancel_mid_chain_returns_everything_and_late_resolution_is_a_noop)
{
    reset_counters();
    fa_promise_t p;
    fa_future_t f = pending(&p), g;
    OK(fa_promise_on_cancel(p, on_cancel_count, NULL));
    OK(fa_future_then(f, add_one, NULL, &g));
    OK(fa_future_finally(g, on_finally, NULL, &g));
    OK(fa_future_then(g, add_one, NULL, &g));
    OK(fa_future_catch(g, recover_100, NULL, &g));
    seen_t seen = {0};
    OK(fa_future_done(&g, on_done, &seen));
    fa_sched_stats_t st;
    fa_sched_stats(&S, &st);
    cr_assert_eq(st.futures_live, 5);
    OK(fa_future_cancel(g));
    fa_sched_stats(&S, &st);
    cr_assert_eq(st.futures_live, 0, "cancel returned every future at once");
    cr_assert_eq(cancel_hooks, 1, "the producer was told");
    cr_assert_eq(finally_calls, 1, "finally runs on cancellation");
    cr_assert_eq(finally_seen.error.msg, fa_err_cancelled);
    cr_assert_eq(fa_promise_resolve(p, FA_VALUE_INT(1)), -ESTALE, "late resolution: no-op");
    ev_run(loop, 0);
    cr_assert_eq(then_calls + catch_calls + seen.calls, 0, "no continuation ran");
}

Test(future, cancel_a_settled_future_still_in_the_run_queue)
{
    reset_counters();
    fa_promise_t p;
    fa_future_t f = pending(&p);
    seen_t seen = {0};
    OK(fa_future_done(&f, on_done, &seen));
    OK(fa_promise_resolve(p, FA_VALUE_INT(1)));
    OK(fa_future_cancel(f)); /* queued, not yet delivered */
    ev_run(loop, 0);
    cr_assert_eq(seen.calls, 0, "a cancelled future's done callback never runs");
}

static fa_result_t cancel_own_tail(fa_sched_t *s, void *data, fa_value_t v)
{
    (void)s;
    (void)data;
    then_calls++;
    cr_assert_eq(fa_future_cancel(self_tail), 0);
    return fa_ok(v);
}

Test(future, cancel_from_inside_a_running_stage)
{
    reset_counters();
    fa_future_t g;
    OK(fa_future_then(settled(1), cancel_own_tail, NULL, &g));
    OK(fa_future_then(g, add_one, NULL, &self_tail));
    ev_run(loop, 0);
    cr_assert_eq(then_calls, 1, "the stage after the cancelled one never ran");
}

/* A long chain */

static uintptr_t stack_lo = UINTPTR_MAX, stack_hi;
static fa_result_t count_and_measure_stack(fa_sched_t *s, void *data, fa_value_t v)
{
    (void)s;
    (void)data;
    volatile char here;
    uintptr_t a = (uintptr_t)&here;
    stack_lo = a < stack_lo ? a : stack_lo;
    stack_hi = a > stack_hi ? a : stack_hi;
    return fa_ok_int(v.i + 1);
}

#define CHAIN 1000000

Test(future, million_link_chain_resolves_on_a_flat_stack)
{
    fa_promise_t p;
    fa_future_t f = pending(&p);
    for (int i = 0; i < CHAIN; i++)
        OK(fa_future_then(f, count_and_measure_stack, NULL, &f));
    seen_t seen = {0};
    OK(fa_future_done(&f, on_done, &seen));
    OK(fa_promise_resolve(p, FA_VALUE_INT(0)));
    ev_run(loop, 0);
    expect_value(&seen, CHAIN);
    cr_assert_lt(stack_hi - stack_lo, 256, "the stack moved by %zu bytes over the chain",
                 (size_t)(stack_hi - stack_lo));
}

Test(future, cancel_a_million_link_chain_without_recursion)
{
    reset_counters();
    fa_promise_t p;
    fa_future_t f = pending(&p);
    OK(fa_promise_on_cancel(p, on_cancel_count, NULL));
    for (int i = 0; i < CHAIN; i++)
        OK(fa_future_then(f, add_one, NULL, &f));
    OK(fa_future_cancel(f));
    cr_assert_eq(cancel_hooks, 1);
    cr_assert_eq(fa_promise_resolve(p, FA_VALUE_INT(0)), -ESTALE);
}

/* Combinators: table of mixed input kinds. 'r' ready value, 'p' pending (resolved later in the
 * order given), 'f' ready failure, 'x' pending failing later. */

typedef struct {
    char desc[64];
    char kinds[8]; /* one letter per input */
    int64_t expect; /* expected result: sum of values (when_all), or -code for an error */
} comb_case_t;

typedef struct {
    fa_future_t in[8];
    fa_promise_t p[8];
    size_t n;
} inputs_t;

static void make_inputs(inputs_t *in, const char *kinds)
{
    in->n = strlen(kinds);
    for (size_t i = 0; i < in->n; i++) {
        switch (kinds[i]) {
        case 'r':
            in->in[i] = ready((int64_t)(i + 1) * 10);
            break;
        case 'f':
            in->in[i] = failed((int)i + 1);
            break;
        default:
            in->in[i] = pending(&in->p[i]);
            OK(fa_promise_on_cancel(in->p[i], on_cancel_count, NULL));
        }
    }
}

/* Settles the pending inputs from the last to the first (reverse of input order), running the
 * loop after each, and returns how many late settlements were no-ops (cancelled inputs). */
static int settle_pending(inputs_t *in, const char *kinds)
{
    int noops = 0;
    for (size_t j = in->n; j-- > 0;) {
        int rc;
        if (kinds[j] == 'p')
            rc = fa_promise_resolve(in->p[j], FA_VALUE_INT((int64_t)(j + 1) * 10));
        else if (kinds[j] == 'x')
            rc = fa_promise_reject(in->p[j], app_err((int)j + 1));
        else
            continue;
        if (rc == -ESTALE)
            noops++;
        else
            cr_assert_eq(rc, 0);
        ev_run(loop, 0);
    }
    return noops;
}

ParameterizedTestParameters(future, when_all_mixed)
{
    static comb_case_t cases[] = {
        {"all ready", "rrr", 60},
        {"all pending", "ppp", 60},
        {"mixed ready and pending", "rprp", 100},
        {"ready failure fails fast", "prfp", -3},
        {"pending failure fails it", "pxrp", -2},
        {"single", "p", 10},
    };
    return cr_make_param_array(comb_case_t, cases, FA_ARRAY_SIZE(cases));
}

ParameterizedTest(comb_case_t *tc, future, when_all_mixed)
{
    reset_counters();
    inputs_t in;
    make_inputs(&in, tc->kinds);
    fa_value_t values[8];
    fa_future_t all;
    OK(fa_when_all(&S, in.in, in.n, values, &all));
    seen_t seen = {0};
    OK(fa_future_done(&all, on_done, &seen));
    ev_run(loop, 0);
    int noops = settle_pending(&in, tc->kinds);
    if (tc->expect >= 0) {
        cr_assert_eq(seen.calls, 1, "%s", tc->desc);
        cr_assert_eq(seen.r.state, FA_FUT_RESOLVED, "%s", tc->desc);
        cr_assert_eq(seen.r.value.p, values);
        cr_assert_eq(seen.r.value.len, in.n);
        int64_t sum = 0;
        for (size_t i = 0; i < in.n; i++) {
            cr_assert_eq(values[i].i, (int64_t)(i + 1) * 10, "%s: values in input order", tc->desc);
            sum += values[i].i;
        }
        cr_assert_eq(sum, tc->expect);
        cr_assert_eq(cancel_hooks, 0);
    } else {
        expect_error(&seen, err_app, (int)-tc->expect);
        cr_assert_eq(noops, cancel_hooks, "%s: each cancelled input's late resolution is a no-op",
                     tc->desc);
    }
}

Test(future, when_all_fail_fast_cancels_the_pending_rest_at_once)
{
    reset_counters();
    inputs_t in;
    make_inputs(&in, "ppfp");
    fa_value_t values[4];
    fa_future_t all;
    OK(fa_when_all(&S, in.in, in.n, values, &all));
    seen_t seen = {0};
    OK(fa_future_done(&all, on_done, &seen));
    ev_run(loop, 0);
    expect_error(&seen, err_app, 3);
    cr_assert_eq(cancel_hooks, 3, "the three pending inputs were cancelled");
    cr_assert_eq(settle_pending(&in, "ppfp"), 3);
}

/* comb_new validates and links in one pass: a bad input late in the list must leave every
 * earlier one unlinked, and the fast when_all delivery must fill values in input order whatever
 * kind of future each input is. */
Test(future, when_all_refusal_late_in_the_list_unlinks_every_earlier_input)
{
    reset_counters();
    enum { N = 100 };
    fa_promise_t p[N];
    fa_future_t in[N], all;
    fa_value_t values[N];
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0)
            in[i] = pending(&p[i]);
        else if (i % 3 == 1)
            in[i] = ready(i);
        else
            OK(fa_future_then(ready(i - 1), add_one, NULL, &in[i])); /* a queued stage */
    }
    fa_future_t busy = in[N - 1], g;
    OK(fa_future_then(in[N - 1], add_one, NULL, &g)); /* the last input now has a consumer */
    cr_assert_eq(fa_when_all(&S, in, N, values, &all), -EBUSY);
    in[N - 1] = in[N - 4]; /* a duplicate (of a pending object future) at the very end */
    cr_assert_eq(fa_when_all(&S, in, N, values, &all), -EINVAL);
    OK(fa_future_cancel(g));
    cr_assert_not(fa_future_valid(busy));
    OK(fa_future_ready(&S, FA_VALUE_INT(N - 1), &in[N - 1]));
    /* -EBUSY here would mean a refused call left an input linked. */
    OK(fa_when_all(&S, in, N, values, &all));
    seen_t seen = {0};
    OK(fa_future_done(&all, on_done, &seen));
    for (int i = 0; i < N - 1; i += 3) /* p[N - 1]'s future was cancelled with g */
        OK(fa_promise_resolve(p[i], FA_VALUE_INT(i)));
    ev_run(loop, 0);
    cr_assert_eq(seen.calls, 1);
    cr_assert_eq(seen.r.state, FA_FUT_RESOLVED);
    cr_assert_eq(seen.r.value.p, values);
    cr_assert_eq(seen.r.value.len, N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(values[i].i, i, "values[%d] = %ld", i, (long)values[i].i);
}

Test(future, when_all_of_nothing_and_bad_inputs)
{
    fa_future_t all, in[2];
    fa_value_t values[2];
    OK(fa_when_all(&S, NULL, 0, values, &all));
    seen_t seen = {0};
    OK(fa_future_done(&all, on_done, &seen));
    ev_run(loop, 0);
    cr_assert_eq(seen.r.state, FA_FUT_RESOLVED);
    cr_assert_eq(seen.r.value.len, 0);

    fa_promise_t p[2];
    in[0] = pending(&p[0]);
    in[1] = in[0];
    cr_assert_eq(fa_when_all(&S, in, 2, values, &all), -EINVAL, "the same input twice");
    in[1] = pending(&p[1]);
    OK(fa_future_cancel(in[1]));
    cr_assert_eq(fa_when_all(&S, in, 2, values, &all), -ESTALE);
    cr_assert(fa_future_valid(in[0]), "a failed combinator consumed nothing");
    fa_future_t g;
    OK(fa_future_then(in[0], add_one, NULL, &g));
    OK(fa_future_cancel(g));
    /* The same immediate twice is fine: it is a value. */
    in[0] = in[1] = ready(4);
    OK(fa_when_all(&S, in, 2, values, &all));
    seen_t seen2 = {0};
    OK(fa_future_done(&all, on_done, &seen2));
    ev_run(loop, 0);
    cr_assert_eq(seen2.r.state, FA_FUT_RESOLVED);
    cr_assert_eq(values[0].i + values[1].i, 8);
}

ParameterizedTestParameters(future, any_and_race)
{
    /* expect: index of the winner, or -code for an error (for any: the last error). */
    static comb_case_t cases[] = {
        {"any: first ready value", "prp", 1},
        {"any: skips a ready failure", "frp", 1},
        {"any: pending only, last settles first", "ppp", 2},
        {"any: all fail, last error wins", "fxf", -2},
        {"race: ready failure wins", "pfr", -2},
        {"race: the last pending settles first", "ppp", 2},
    };
    return cr_make_param_array(comb_case_t, cases, FA_ARRAY_SIZE(cases));
}

ParameterizedTest(comb_case_t *tc, future, any_and_race)
{
    reset_counters();
    bool race = strncmp(tc->desc, "race", 4) == 0;
    inputs_t in;
    make_inputs(&in, tc->kinds);
    size_t winner = 99;
    fa_future_t out;
    if (race)
        OK(fa_race(&S, in.in, in.n, &winner, &out));
    else
        OK(fa_when_any(&S, in.in, in.n, &winner, &out));
    seen_t seen = {0};
    OK(fa_future_done(&out, on_done, &seen));
    ev_run(loop, 0);
    settle_pending(&in, tc->kinds);
    if (tc->expect >= 0) {
        expect_value(&seen, (tc->expect + 1) * 10);
        cr_assert_eq(winner, (size_t)tc->expect, "%s: winner %zu", tc->desc, winner);
    } else {
        expect_error(&seen, err_app, (int)-tc->expect);
    }
}

Test(future, race_pending_failure_reported)
{
    reset_counters();
    inputs_t in;
    make_inputs(&in, "pxp");
    fa_future_t out;
    OK(fa_race(&S, in.in, in.n, NULL, &out));
    seen_t seen = {0};
    OK(fa_future_done(&out, on_done, &seen));
    ev_run(loop, 0);
    OK(fa_promise_reject(in.p[1], app_err(77)));
    ev_run(loop, 0);
    expect_error(&seen, err_app, 77);
    cr_assert_eq(cancel_hooks, 2);
    cr_assert_eq(settle_pending(&in, "p.p"), 2);
}

Test(future, any_of_nothing_is_an_error)
{
    fa_future_t out;
    OK(fa_when_any(&S, NULL, 0, NULL, &out));
    seen_t seen = {0};
    OK(fa_future_done(&out, on_done, &seen));
    ev_run(loop, 0);
    expect_error(&seen, fa_err_empty, -EINVAL);
}

Test(future, when_some_k_of_n_with_failures_and_cancels_the_rest)
{
    reset_counters();
    inputs_t in;
    make_inputs(&in, "pfrpp");
    fa_value_t values[5];
    fa_future_t out;
    OK(fa_when_some(&S, in.in, in.n, 2, values, &out));
    seen_t seen = {0};
    OK(fa_future_done(&out, on_done, &seen));
    ev_run(loop, 0);
    cr_assert_eq(seen.calls, 0, "one of two so far");
    OK(fa_promise_resolve(in.p[3], FA_VALUE_INT(40)));
    ev_run(loop, 0);
    cr_assert_eq(seen.calls, 1);
    cr_assert_eq(seen.r.state, FA_FUT_RESOLVED);
    cr_assert_eq(values[2].i, 30);
    cr_assert_eq(values[3].i, 40);
    cr_assert_eq(values[0].kind, FA_VAL_NONE);
    cr_assert_eq(values[1].kind, FA_VAL_NONE);
    cr_assert_eq(values[4].kind, FA_VAL_NONE);
    cr_assert_eq(cancel_hooks, 2, "inputs 0 and 4 cancelled");
    cr_assert_eq(fa_promise_resolve(in.p[0], FA_VALUE_INT(1)), -ESTALE);
}

Test(future, when_some_fails_once_k_is_out_of_reach)
{
    reset_counters();
    inputs_t in;
    make_inputs(&in, "xfpr");
    fa_value_t values[4];
    fa_future_t out;
    OK(fa_when_some(&S, in.in, in.n, 3, values, &out));
    seen_t seen = {0};
    OK(fa_future_done(&out, on_done, &seen));
    ev_run(loop, 0);
    cr_assert_eq(seen.calls, 0, "one failure of four still allows three");
    OK(fa_promise_reject(in.p[0], app_err(11)));
    ev_run(loop, 0);
    expect_error(&seen, err_app, 11);
    cr_assert_eq(cancel_hooks, 1, "input 2 cancelled");
    cr_assert_eq(fa_when_some(&S, in.in, 0, 1, values, &out), -EINVAL, "k > n");
}

static int map_calls;
static fa_result_t map_double(fa_sched_t *s, void *data, size_t idx, fa_value_t v)
{
    (void)s;
    (void)data;
    map_calls++;
    if (v.i == 666)
        return fa_fail(app_err((int)idx));
    return fa_ok_int(v.i * 2);
}

Test(future, map_applies_as_each_input_resolves)
{
    map_calls = 0;
    inputs_t in;
    make_inputs(&in, "rpp");
    fa_value_t values[3];
    fa_future_t out;
    OK(fa_future_map(&S, in.in, in.n, map_double, NULL, values, &out));
    seen_t seen = {0};
    OK(fa_future_done(&out, on_done, &seen));
    ev_run(loop, 0);
    cr_assert_eq(map_calls, 1, "the ready input was mapped before the others resolved");
    OK(fa_promise_resolve(in.p[2], FA_VALUE_INT(7)));
    ev_run(loop, 0);
    cr_assert_eq(map_calls, 2);
    cr_assert_eq(values[2].i, 14);
    cr_assert_eq(seen.calls, 0);
    OK(fa_promise_resolve(in.p[1], FA_VALUE_INT(5)));
    ev_run(loop, 0);
    cr_assert_eq(seen.calls, 1);
    cr_assert_eq(values[0].i, 20);
    cr_assert_eq(values[1].i, 10);
}

Test(future, map_function_error_and_input_error_fail_fast)
{
    reset_counters();
    map_calls = 0;
    inputs_t in;
    make_inputs(&in, "pp");
    fa_value_t values[2];
    fa_future_t out;
    OK(fa_future_map(&S, in.in, in.n, map_double, NULL, values, &out));
    seen_t seen = {0};
    OK(fa_future_done(&out, on_done, &seen));
    OK(fa_promise_resolve(in.p[1], FA_VALUE_INT(666)));
    ev_run(loop, 0);
    expect_error(&seen, err_app, 1);
    cr_assert_eq(cancel_hooks, 1);

    fa_future_t in2[2] = {failed(4), ready(1)}, out2;
    OK(fa_future_map(&S, in2, 2, map_double, NULL, values, &out2));
    seen_t seen2 = {0};
    OK(fa_future_done(&out2, on_done, &seen2));
    ev_run(loop, 0);
    expect_error(&seen2, err_app, 4);
}

static bool keep_multiple_of_20(fa_sched_t *s, void *data, size_t idx, fa_value_t v)
{
    (void)s;
    (void)data;
    (void)idx;
    return v.i % 20 == 0;
}

Test(future, filter_keeps_input_order_with_mixed_inputs)
{
    inputs_t in;
    make_inputs(&in, "rpprp"); /* values 10 20 30 40 50 */
    fa_value_t values[5];
    fa_future_t out;
    OK(fa_future_filter(&S, in.in, in.n, keep_multiple_of_20, NULL, values, &out));
    seen_t seen = {0};
    OK(fa_future_done(&out, on_done, &seen));
    settle_pending(&in, "rpprp");
    cr_assert_eq(seen.calls, 1);
    cr_assert_eq(seen.r.value.len, 2);
    cr_assert_eq(values[0].i, 20);
    cr_assert_eq(values[1].i, 40);

    fa_future_t in2[2] = {ready(20), failed(8)}, out2;
    OK(fa_future_filter(&S, in2, 2, keep_multiple_of_20, NULL, values, &out2));
    seen_t seen2 = {0};
    OK(fa_future_done(&out2, on_done, &seen2));
    ev_run(loop, 0);
    expect_error(&seen2, err_app, 8);
}

static size_t fold_order[8], nfold;
static fa_result_t fold_digits(fa_sched_t *s, void *data, fa_value_t acc, size_t idx,
                               fa_value_t v)
{
    (void)s;
    (void)data;
    (void)v;
    fold_order[nfold++] = idx;
    return fa_ok_int(acc.i * 10 + (int64_t)idx);
}

Test(future, reduce_folds_in_completion_order)
{
    nfold = 0;
    inputs_t in;
    make_inputs(&in, "prpp");
    fa_future_t out;
    OK(fa_future_reduce(&S, in.in, in.n, fold_digits, NULL, FA_VALUE_INT(9), &out));
    seen_t seen = {0};
    OK(fa_future_done(&out, on_done, &seen));
    ev_run(loop, 0);
    settle_pending(&in, "prpp"); /* pending ones resolve 3, 2, 0 */
    expect_value(&seen, 91320);
    cr_assert_eq(nfold, 4);
    cr_assert_eq(fold_order[0], 1);
    cr_assert_eq(fold_order[3], 0);

    fa_future_t out2, in2[2] = {ready(1), failed(2)};
    OK(fa_future_reduce(&S, in2, 2, fold_digits, NULL, FA_VALUE_INT(0), &out2));
    seen_t seen2 = {0};
    OK(fa_future_done(&out2, on_done, &seen2));
    ev_run(loop, 0);
    expect_error(&seen2, err_app, 2);

    fa_future_t out3;
    OK(fa_future_reduce(&S, NULL, 0, fold_digits, NULL, FA_VALUE_INT(5), &out3));
    seen_t seen3 = {0};
    OK(fa_future_done(&out3, on_done, &seen3));
    ev_run(loop, 0);
    expect_value(&seen3, 5);
}

static fa_future_t comb_out;
static fa_result_t map_cancels_combinator(fa_sched_t *s, void *data, size_t idx, fa_value_t v)
{
    (void)s;
    (void)data;
    (void)idx;
    cr_assert_eq(fa_future_cancel(comb_out), 0);
    return fa_ok(v);
}

Test(future, cancelling_a_combinator_from_its_own_map_function)
{
    reset_counters();
    inputs_t in;
    make_inputs(&in, "rp");
    fa_value_t values[2];
    OK(fa_future_map(&S, in.in, in.n, map_cancels_combinator, NULL, values, &comb_out));
    ev_run(loop, 0);
    cr_assert_eq(cancel_hooks, 1, "the pending input was cancelled");
}

Test(future, cancelling_a_combinator_cancels_every_pending_input)
{
    reset_counters();
    inputs_t in;
    make_inputs(&in, "prpp");
    fa_value_t values[4];
    fa_future_t out;
    OK(fa_when_all(&S, in.in, in.n, values, &out));
    ev_run(loop, 0);
    OK(fa_future_cancel(out));
    cr_assert_eq(cancel_hooks, 3);
    cr_assert_eq(settle_pending(&in, "prpp"), 3);
}

/* Timeouts */

Test(future, timeout_fires_cancels_the_input_and_rejects)
{
    reset_counters();
    fa_promise_t p;
    fa_future_t f = pending(&p), t;
    OK(fa_promise_on_cancel(p, on_cancel_count, NULL));
    OK(fa_future_timeout(f, 0.01, &t));
    seen_t seen = {0};
    OK(fa_future_done(&t, on_done, &seen));
    fa_sched_stats_t st;
    fa_sched_stats(&S, &st);
    cr_assert_eq(st.timers_active, 1);
    ev_run(loop, 0);
    expect_error(&seen, fa_err_timeout, -ETIMEDOUT);
    cr_assert_eq(cancel_hooks, 1);
    cr_assert_eq(fa_promise_resolve(p, FA_VALUE_INT(1)), -ESTALE);
}

static void resolve_soon(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)revents;
    cr_assert_eq(fa_promise_resolve(*(fa_promise_t *)w->data, FA_VALUE_INT(8)), 0);
}

Test(future, timeout_that_does_not_fire_stops_its_timer)
{
    fa_promise_t p;
    fa_future_t f = pending(&p), t;
    OK(fa_future_timeout(f, 3600., &t)); /* would hold the loop for an hour if left running */
    seen_t seen = {0};
    OK(fa_future_done(&t, on_done, &seen));
    ev_timer soon;
    ev_timer_init(&soon, resolve_soon, 0.001, 0.);
    soon.data = &p;
    ev_timer_start(loop, &soon);
    ev_run(loop, 0);
    expect_value(&seen, 8);
    fa_future_t t2;
    OK(fa_future_timeout(ready(3), 3600., &t2));
    seen_t seen2 = {0};
    OK(fa_future_done(&t2, on_done, &seen2));
    ev_run(loop, 0);
    expect_value(&seen2, 3);
}

Test(future, cancelling_a_timeout_stops_the_timer)
{
    reset_counters();
    fa_promise_t p;
    fa_future_t f = pending(&p), t;
    OK(fa_promise_on_cancel(p, on_cancel_count, NULL));
    OK(fa_future_timeout(f, 3600., &t));
    OK(fa_future_cancel(t));
    cr_assert_eq(cancel_hooks, 1);
}

/* Retry */

typedef struct {
    int fail_first; /* attempts that fail before one succeeds */
    unsigned calls;
    int start_error; /* nonzero: the factory itself fails with this */
    fa_promise_t pending_p;
    bool make_pending;
} attempts_t;

static int attempt(fa_sched_t *s, void *data, unsigned n, fa_future_t *out)
{
    attempts_t *a = data;
    cr_assert_eq(n, a->calls, "attempts are numbered from 0");
    a->calls++;
    if (a->start_error)
        return a->start_error;
    if (a->make_pending)
        return fa_promise_new(s, &a->pending_p, out);
    if ((int)n < a->fail_first)
        return fa_future_failed(s, app_err(100 + (int)n), out);
    return fa_future_ready(s, FA_VALUE_INT(1000 + n), out);
}

Test(future, retry_succeeds_after_failures_with_backoff)
{
    attempts_t a = {.fail_first = 2};
    fa_future_t r;
    OK(fa_future_retry(&S, attempt, &a, 5, 0.001, &r));
    cr_assert_eq(a.calls, 1, "attempt 0 runs inside the call");
    seen_t seen = {0};
    OK(fa_future_done(&r, on_done, &seen));
    ev_run(loop, 0);
    expect_value(&seen, 1002);
    cr_assert_eq(a.calls, 3);
}

Test(future, retry_gives_up_with_the_last_error)
{
    attempts_t a = {.fail_first = 10};
    fa_future_t r;
    OK(fa_future_retry(&S, attempt, &a, 3, 0, &r));
    seen_t seen = {0};
    OK(fa_future_done(&r, on_done, &seen));
    ev_run(loop, 0);
    expect_error(&seen, err_app, 102);
    cr_assert_eq(a.calls, 3);
    cr_assert_eq(fa_future_retry(&S, attempt, &a, 0, 0, &r), -EINVAL);
    attempts_t bad = {.start_error = -EPERM};
    cr_assert_eq(fa_future_retry(&S, attempt, &bad, 3, 0, &r), -EPERM);
}

Test(future, cancelling_a_retry_during_backoff_and_during_an_attempt)
{
    attempts_t a = {.fail_first = 10};
    fa_future_t r;
    OK(fa_future_retry(&S, attempt, &a, 5, 3600., &r));
    fa_sched_drain(&S, 100); /* attempt 0 fails: the hour-long backoff starts */
    fa_sched_stats_t st;
    fa_sched_stats(&S, &st);
    cr_assert_eq(st.timers_active, 1);
    OK(fa_future_cancel(r));

    reset_counters();
    attempts_t b = {.make_pending = true};
    OK(fa_future_retry(&S, attempt, &b, 5, 0, &r));
    OK(fa_promise_on_cancel(b.pending_p, on_cancel_count, NULL));
    OK(fa_future_cancel(r));
    cr_assert_eq(cancel_hooks, 1);
}

/* Compose */

static fa_result_t times_data(fa_sched_t *s, void *data, fa_value_t v)
{
    (void)s;
    return fa_ok_int(v.i * (intptr_t)data);
}

Test(future, compose_runs_stages_in_order_and_errors_skip_the_rest)
{
    reset_counters();
    const fa_compose_stage_t stages[] = {
        {add_one, NULL}, {times_data, (void *)10}, {add_one, NULL}, {returns_pending, NULL},
        {add_one, NULL}};
    fa_future_t out;
    OK(fa_future_compose(&S, stages, 3, FA_VALUE_INT(1), &out));
    seen_t seen = {0};
    OK(fa_future_done(&out, on_done, &seen));
    ev_run(loop, 0);
    expect_value(&seen, 21);

    const fa_compose_stage_t failing[] = {{add_one, NULL}, {fail_with_7, NULL}, {add_one, NULL}};
    then_calls = 0;
    OK(fa_future_compose(&S, failing, 3, FA_VALUE_INT(1), &out));
    seen_t seen2 = {0};
    OK(fa_future_done(&out, on_done, &seen2));
    ev_run(loop, 0);
    expect_error(&seen2, err_app, 7);
    cr_assert_eq(then_calls, 2);

    OK(fa_future_compose(&S, stages, 5, FA_VALUE_INT(1), &out));
    seen_t seen3 = {0};
    OK(fa_future_done(&out, on_done, &seen3));
    ev_run(loop, 0);
    OK(fa_promise_resolve(follow_p, FA_VALUE_INT(5)));
    ev_run(loop, 0);
    expect_value(&seen3, 6);
}

/* The request pipeline's pattern: done to resume, cancel if the client goes away. */
Test(future, pipeline_pattern_done_then_cancel_on_disconnect)
{
    reset_counters();
    fa_promise_t p;
    fa_future_t f = pending(&p);
    OK(fa_promise_on_cancel(p, on_cancel_count, NULL));
    seen_t seen = {0};
    OK(fa_future_done(&f, on_done, &seen));
    ev_run(loop, 0);
    OK(fa_future_cancel(f)); /* the connection closed */
    cr_assert_eq(cancel_hooks, 1);
    cr_assert_eq(fa_promise_resolve(p, FA_VALUE_INT(1)), -ESTALE);
    ev_run(loop, 0);
    cr_assert_eq(seen.calls, 0);
}

/* Pool exhaustion */

static void setup_small(void)
{
    fa_sched_conf_t conf = {.futures_init = 4, .futures_max = 4, .aux_init = 1, .aux_max = 1};
    setup_conf(&conf);
}

Test(future, pool_exhaustion_is_an_error_not_a_crash, .init = setup_small)
{
    fa_future_t f[4], g;
    fa_promise_t p, fp[4];
    for (int i = 0; i < 4; i++) {
        f[i] = pending(&fp[i]);
        OK(fa_promise_resolve(fp[i], FA_VALUE_INT(i)));
    }
    cr_assert_eq(fa_promise_new(&S, &p, &g), -ENOMEM);
    cr_assert_eq(fa_future_then(f[0], add_one, NULL, &g), -ENOMEM);
    cr_assert_eq(fa_future_catch(f[0], recover_100, NULL, &g), -ENOMEM);
    cr_assert(fa_future_valid(f[0]), "a failed catch consumed nothing");
    cr_assert_eq(fa_future_state(f[0]), FA_FUT_RESOLVED);
    fa_value_t values[2];
    cr_assert_eq(fa_when_all(&S, f, 2, values, &g), -ENOMEM);
    fa_future_t imm[2] = {ready(1), ready(2)};
    cr_assert_eq(fa_when_all(&S, imm, 2, values, &g), -ENOMEM,
                 "an immediate input needs an object");
    fa_sched_stats_t st;
    fa_sched_stats(&S, &st);
    cr_assert_geq(st.exhausted, 4);
    OK(fa_future_cancel(f[3]));
    OK(fa_future_cancel(f[2]));
    /* One future free, one aux: a timeout takes both, the next combinator finds no aux. */
    OK(fa_future_timeout(f[1], 3600., &g));
    OK(fa_future_cancel(g));
    OK(fa_future_cancel(f[0]));
}

static int attempt_exhausting(fa_sched_t *s, void *data, unsigned n, fa_future_t *out)
{
    (void)data;
    if (n == 0)
        return fa_future_failed(s, app_err(1), out);
    fa_future_t hog[4];
    fa_promise_t hp;
    int rc = 0, got = 0;
    while ((rc = fa_promise_new(s, &hp, &hog[got])) == 0)
        got++;
    for (int i = 0; i < got; i++)
        (void)fa_future_cancel(hog[i]);
    return rc; /* -ENOMEM */
}

Test(future, exhaustion_inside_the_scheduler_rejects_with_fa_err_pool_exhausted,
     .init = setup_small)
{
    fa_future_t r;
    OK(fa_future_retry(&S, attempt_exhausting, NULL, 3, 0, &r));
    seen_t seen = {0};
    OK(fa_future_done(&r, on_done, &seen));
    ev_run(loop, 0);
    expect_error(&seen, fa_err_pool_exhausted, -ENOMEM);
}

/* No allocator after warm-up */

static void workload(void)
{
    fa_promise_t p[8];
    fa_future_t in[8], f;
    for (int i = 0; i < 8; i++)
        in[i] = pending(&p[i]);
    OK(fa_future_then(in[0], add_one, NULL, &in[0]));
    OK(fa_future_catch(in[0], recover_100, NULL, &in[0]));
    fa_value_t values[8];
    OK(fa_when_all(&S, in, 8, values, &f));
    OK(fa_future_timeout(f, 3600., &f));
    OK(fa_future_then(f, add_one, NULL, &f));
    seen_t seen = {0};
    OK(fa_future_done(&f, on_done, &seen));
    for (int i = 7; i >= 0; i--)
        OK(fa_promise_resolve(p[i], FA_VALUE_INT(i)));
    ev_run(loop, 0);
    cr_assert_eq(seen.calls, 1);
    fa_future_t c;
    for (int i = 0; i < 100; i++) {
        OK(fa_future_then(ready(i), add_one, NULL, &c));
        OK(fa_future_cancel(c));
    }
}

Test(future, hot_path_calls_no_allocator_after_warm_up)
{
    workload(); /* warm-up: lets the loop's own lazy allocations happen */
    uint64_t before = fa_alloc_count();
    for (int i = 0; i < 100; i++)
        workload();
    cr_assert_eq(fa_alloc_count(), before, "%lu allocator calls after warm-up",
                 (unsigned long)(fa_alloc_count() - before));
}
