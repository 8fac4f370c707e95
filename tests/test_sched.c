/*
 * test_sched.c — the per-worker run queue (FIFO, budget, never sleeping with work queued) and
 * the slab recyclers (growth to a maximum, exhaustion, reuse without the allocator).
 */
#include <criterion/criterion.h>

#include "alloc.h"
#include "sched.h"

#include <ev.h>

static struct ev_loop *loop;
static fa_sched_t sched;

typedef struct {
    fa_task_t task;
    int id;
} item_t;

static int ran[256], nran;
static ev_timer never; /* a one-hour timer: the loop blocks on it unless told not to */

static void on_item(fa_task_t *t)
{
    ran[nran++] = FA_CONTAINER_OF(t, item_t, task)->id;
    /* With the last task done the loop may block again; stop the timer so that it need not. */
    if (nran == 100 && ev_is_active(&never))
        ev_timer_stop(loop, &never);
}

static void setup_budget(uint32_t budget)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    fa_sched_conf_t conf = {.budget = budget, .futures_init = 64, .aux_init = 16};
    fa_sched_init(&sched, loop, &conf);
    nran = 0;
}

static void setup(void)
{
    setup_budget(0);
}

/* The end of every loop test: nothing queued or live, no watcher keeping the loop alive. */
static void teardown(void)
{
    cr_assert(fa_sched_quiescent(&sched));
    cr_assert_eq(ev_run(loop, EVRUN_NOWAIT), 0, "no referenced watcher is left active");
    cr_assert_eq(fa_sched_fini(&sched), 0);
    ev_loop_destroy(loop);
}

TestSuite(sched, .init = setup, .fini = teardown, .timeout = 20);

Test(sched, tasks_run_in_fifo_order_and_never_inside_post)
{
    item_t it[5];
    for (int i = 0; i < 5; i++) {
        it[i].id = i;
        fa_sched_post(&sched, &it[i].task, on_item);
    }
    cr_assert_eq(nran, 0, "posting runs nothing");
    fa_sched_stats_t st;
    fa_sched_stats(&sched, &st);
    cr_assert_eq(st.queued, 5);
    cr_assert(st.idle_active, "work queued: the loop must not block");
    ev_run(loop, 0);
    cr_assert_eq(nran, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ran[i], i);
}

static item_t chain_items[3];
static void on_chain(fa_task_t *t)
{
    item_t *it = FA_CONTAINER_OF(t, item_t, task);
    ran[nran++] = it->id;
    if (it->id < 2)
        fa_sched_post(&sched, &chain_items[it->id + 1].task, on_chain);
}

Test(sched, a_task_may_post_more_work_which_runs_after_it)
{
    for (int i = 0; i < 3; i++)
        chain_items[i].id = i;
    fa_sched_post(&sched, &chain_items[0].task, on_chain);
    cr_assert_eq(fa_sched_drain(&sched, 100), 3);
    cr_assert_eq(nran, 3);
    cr_assert_eq(ran[2], 2);
}

Test(sched, drain_stops_at_max)
{
    item_t it[10];
    for (int i = 0; i < 10; i++) {
        it[i].id = i;
        fa_sched_post(&sched, &it[i].task, on_item);
    }
    cr_assert_eq(fa_sched_drain(&sched, 4), 4);
    cr_assert_eq(ran[3], 3);
    cr_assert_eq(fa_sched_drain(&sched, 100), 6);
    cr_assert_eq(ran[9], 9);
}

static void on_never(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    cr_assert_fail("the long timer fired: the loop slept with work queued");
}

/* With a budget of 8, one loop iteration runs at most 8 tasks and the rest wait for the next
 * iterations; a one-hour timer keeps ev_run(ONCE) from returning unless the poll does not block,
 * so this test would hang (and time out) if the loop slept with work queued. */
static void setup_budget8(void)
{
    setup_budget(8);
}

Test(sched, budget_bounds_each_iteration_and_loop_never_sleeps_with_work, .init = setup_budget8)
{
    ev_timer_init(&never, on_never, 3600., 0.);
    ev_timer_start(loop, &never);
    item_t it[100];
    for (int i = 0; i < 100; i++) {
        it[i].id = i;
        fa_sched_post(&sched, &it[i].task, on_item);
    }
    int iterations = 0, last = 0;
    while (nran < 100) {
        ev_run(loop, EVRUN_ONCE);
        iterations++;
        cr_assert_leq(nran - last, 8, "iteration %d ran %d tasks", iterations, nran - last);
        cr_assert_gt(nran - last, 0, "an iteration with work queued ran nothing");
        last = nran;
    }
    cr_assert_geq(iterations, 13);
}

Test(sched, recycler_grows_to_max_then_refuses_and_reuses_without_allocating)
{
    fa_recycler_t r;
    fa_recycler_init(&r, 40, 4, 70);
    cr_assert_eq(r._obj_size, 48, "object size rounds up to 16");
    void *objs[70];
    for (int i = 0; i < 70; i++) {
        objs[i] = fa_recycler_get(&r);
        cr_assert_not_null(objs[i], "object %d", i);
        cr_assert_eq((uintptr_t)objs[i] % 16, 0);
    }
    cr_assert_null(fa_recycler_get(&r), "at the maximum");
    cr_assert_eq(r._exhausted, 1);
    for (int i = 0; i < 70; i++)
        fa_recycler_put(&r, objs[i]);
    cr_assert_eq(r._live, 0);
    uint64_t before = fa_alloc_count();
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 70; i++)
            objs[i] = fa_recycler_get(&r);
        for (int i = 0; i < 70; i++)
            fa_recycler_put(&r, objs[i]);
    }
    cr_assert_eq(fa_alloc_count(), before, "warm recycler calls no allocator");
    fa_recycler_fini(&r);
}
