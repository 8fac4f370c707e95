/*
 * sched.c — the per-worker run queue and the slab recyclers; see sched.h.
 */
#include "sched.h"
#include "alloc.h"
#include "future.h" /* fa__fut_run_inline: the drain runs queued futures without a call */

#include <string.h>

/* A slab: a header followed by its objects, each _obj_size bytes. The objects start on a
 * 64-byte boundary, so that a 64-byte object (a future) is exactly one cache line. */
#define FA_SLAB_ALIGN 64

typedef struct fa_slab {
    struct fa_slab *next;
    char *objs; /* the first object, FA_SLAB_ALIGN-aligned, inside this allocation */
    uint32_t count;
} fa_slab_t;

static void add_slab(fa_recycler_t *r, uint32_t count)
{
    fa_slab_t *slab =
        fa_malloc(sizeof(*slab) + FA_SLAB_ALIGN + (size_t)count * r->_obj_size);
    slab->objs = (char *)FA_ALIGN_UP((uintptr_t)(slab + 1), FA_SLAB_ALIGN);
    /* Zeroed so that a fresh object reads as "free, generation 0" to its owner. */
    memset(slab->objs, 0, (size_t)count * r->_obj_size);
    slab->count = count;
    slab->next = r->_slabs;
    r->_slabs = slab;
    r->_total += count;
    /* Thread the new objects onto the free list so that the lowest address comes out first. */
    for (uint32_t i = count; i-- > 0;) {
        void **o = (void **)(slab->objs + (size_t)i * r->_obj_size);
        *o = r->_free;
        r->_free = o;
    }
}

void fa_recycler_init(fa_recycler_t *r, size_t obj_size, uint32_t init, uint32_t max)
{
    memset(r, 0, sizeof(*r));
    r->_obj_size = FA_ALIGN_UP(FA_MAX(obj_size, sizeof(void *)), 16);
    r->_max = FA_MAX(max, init);
    r->_grow = FA_MAX(FA_MIN(init, (uint32_t)4096), (uint32_t)64);
    if (init)
        add_slab(r, init);
}

/* Runs when the free list is empty: during warm-up a slab is added (the only allocator call a
 * recycler makes); at the maximum the request is refused and counted. */
void *fa__recycler_grow(fa_recycler_t *r)
{
    if (r->_total >= r->_max) {
        r->_exhausted++;
        return NULL;
    }
    add_slab(r, FA_MIN(r->_grow, r->_max - r->_total));
    return fa_recycler_get(r);
}

void fa_recycler_each(fa_recycler_t *r, void (*fn)(void *obj, void *arg), void *arg)
{
    for (fa_slab_t *s = r->_slabs; s; s = s->next)
        for (uint32_t i = 0; i < s->count; i++)
            fn(s->objs + (size_t)i * r->_obj_size, arg);
}

void fa_recycler_fini(fa_recycler_t *r)
{
    for (fa_slab_t *s = r->_slabs, *next; s; s = next) {
        next = s->next;
        fa_free(s);
    }
    memset(r, 0, sizeof(*r));
}

/* The run queue. */

/* The queue was empty: work is queued now, so the loop must neither block in poll nor return
 * from ev_run until it has been drained. */
void fa__sched_post_first(fa_sched_t *sched)
{
    if (!ev_is_active(&sched->_idle))
        ev_idle_start(sched->loop, &sched->_idle);
}

/* Pops and runs tasks until max have run or the queue is empty. Tasks queued by a running task go
 * to the tail, so a chain of continuations is a loop here, never a recursion: the C stack stays
 * flat however long the chain is. */
size_t fa_sched_drain(fa_sched_t *sched, size_t max)
{
    size_t ran = 0;
    while (ran < max) {
        uintptr_t h = sched->_head;
        if (!h)
            break;
        uintptr_t *link = (uintptr_t *)(h & ~(uintptr_t)1);
        uintptr_t next = *link;
        sched->_head = next;
        if (!next)
            sched->_tailp = &sched->_head;
        ran++;
        if (h & 1) {
            fa__fut_run_inline((fa_fut_t *)link);
        } else {
            fa_task_t *t = FA_CONTAINER_OF(link, fa_task_t, _next);
            t->_run(t);
        }
    }
    sched->_tasks_run += ran;
    if (!sched->_head && ev_is_active(&sched->_idle))
        ev_idle_stop(sched->loop, &sched->_idle);
    return ran;
}

/* Before the loop polls: a new iteration starts, with a fresh budget. */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    fa_sched_t *sched = FA_CONTAINER_OF(w, fa_sched_t, _prepare);
    sched->_left = sched->_budget;
    if (sched->_head)
        sched->_left -= (uint32_t)fa_sched_drain(sched, sched->_left);
}

/* After the poll: whatever the I/O callbacks of this iteration queued may use the rest of the
 * iteration's budget. */
static void on_check(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)loop;
    (void)revents;
    fa_sched_t *sched = FA_CONTAINER_OF(w, fa_sched_t, _check);
    if (sched->_head && sched->_left)
        sched->_left -= (uint32_t)fa_sched_drain(sched, sched->_left);
}

/* The idle watcher exists only to keep the poll non-blocking while work is queued. */
static void on_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

void fa_sched_init(fa_sched_t *sched, struct ev_loop *loop, const fa_sched_conf_t *conf)
{
    fa_sched_conf_t c = conf ? *conf : (fa_sched_conf_t){0};
    if (!c.futures_init)
        c.futures_init = 1024;
    if (!c.futures_max)
        c.futures_max = 1u << 20;
    if (!c.aux_init)
        c.aux_init = 256;
    if (!c.aux_max)
        c.aux_max = 1u << 16;
    if (!c.budget)
        c.budget = 1024;

    memset(sched, 0, sizeof(*sched));
    sched->loop = loop;
    sched->_tailp = &sched->_head;
    sched->_budget = c.budget;
    fa_recycler_init(&sched->_futures, fa__future_size, c.futures_init, c.futures_max);
    fa_recycler_init(&sched->_aux, fa__aux_size, c.aux_init, c.aux_max);

    ev_prepare_init(&sched->_prepare, on_prepare);
    ev_check_init(&sched->_check, on_check);
    ev_idle_init(&sched->_idle, on_idle);
    ev_prepare_start(loop, &sched->_prepare);
    ev_check_start(loop, &sched->_check);
    /* Unreferenced: an empty scheduler must not keep ev_run from returning. */
    ev_unref(loop);
    ev_unref(loop);
}

uint32_t fa_sched_fini(fa_sched_t *sched)
{
    uint32_t live = sched->_futures._live;
    fa__future_stop_timers(sched);
    /* libev: an unreferenced watcher is referenced again before it is stopped. */
    ev_ref(sched->loop);
    ev_prepare_stop(sched->loop, &sched->_prepare);
    ev_ref(sched->loop);
    ev_check_stop(sched->loop, &sched->_check);
    ev_idle_stop(sched->loop, &sched->_idle);
    sched->_head = 0;
    sched->_tailp = &sched->_head;
    fa_recycler_fini(&sched->_futures);
    fa_recycler_fini(&sched->_aux);
    return live;
}

/* Counts the queued entries by walking the queue: only tests and teardown checks ask, so the hot
 * path keeps no counter. */
static uint32_t queued(const fa_sched_t *sched)
{
    uint32_t n = 0;
    for (uintptr_t h = sched->_head; h; h = *(const uintptr_t *)(h & ~(uintptr_t)1))
        n++;
    return n;
}

void fa_sched_stats(const fa_sched_t *sched, fa_sched_stats_t *st)
{
    st->futures_live = sched->_futures._live;
    st->aux_live = sched->_aux._live;
    st->timers_active = sched->_timers_active;
    st->queued = queued(sched);
    st->idle_active = ev_is_active(&sched->_idle);
    st->tasks_run = sched->_tasks_run;
    st->exhausted = sched->_futures._exhausted + sched->_aux._exhausted;
    st->futures_total = sched->_futures._total;
}

bool fa_sched_quiescent(const fa_sched_t *sched)
{
    return sched->_futures._live == 0 && sched->_aux._live == 0 && sched->_timers_active == 0 &&
           sched->_head == 0 && !ev_is_active(&sched->_idle);
}
