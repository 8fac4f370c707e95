/*
 * sched.h — the per-worker scheduler: a FIFO run queue drained from the worker's libev loop, and
 * the fixed-size recyclers (slab free lists) that futures take their objects from.
 *
 * One fa_sched_t per worker, bound to that worker's struct ev_loop, used only by the thread that
 * runs the loop. Nothing here is global: every call takes the scheduler (or an object that points
 * back to it).
 *
 * Queued tasks run from an ev_prepare watcher (before the loop would block) and an ev_check
 * watcher (right after the poll), at most `budget` tasks per loop iteration in total, so a long
 * chain of continuations cannot starve I/O. While tasks remain queued an ev_idle watcher is
 * active, which makes the poll non-blocking: the loop never sleeps with work queued, and ev_run
 * does not return while work is queued. The prepare and check watchers are unreferenced
 * (ev_unref), so an idle scheduler never keeps ev_run alive on its own.
 *
 * The queue holds generic tasks (fa_sched_post) and futures (future.c) in one FIFO; the drain
 * runs a future's common cases inline (fa__fut_run_inline, future_inline.h) and calls a task's
 * callback. Nothing on the hot path counts: fa_sched_stats walks the queue for its length.
 *
 * Memory: the scheduler owns two recyclers, one for futures and one for auxiliary combinator
 * state (timers, counters). Each hands out fixed-size objects from slabs taken from fa_malloc:
 * `*_init` objects at fa_sched_init, then slabs on demand up to `*_max` (warm-up). After warm-up
 * the free lists serve every request and no allocator is called. At the maximum, a get returns
 * NULL and the caller reports pool exhaustion (see future.h); it never crashes.
 */
#ifndef FA_SCHED_H
#define FA_SCHED_H

#include "fa.h"

#include <ev.h>

typedef struct fa_sched fa_sched_t;
typedef struct fa_task fa_task_t;

/** Runs one queued task. Called from the scheduler's drain, never from inside fa_sched_post. */
typedef void (*fa_task_cb)(fa_task_t *task);

/**
 * A queue entry, embedded in the object that owns it (get back with FA_CONTAINER_OF). The
 * fields are the scheduler's. A task is in at most one queue at a time and must stay valid
 * until its callback has run.
 *
 * The run queue is intrusive and singly linked through the first word of each entry. Futures
 * are queued too, but without a callback field (it would cost each future 8 bytes): the link
 * that points to an entry has its low bit set when the entry is a future, and the drain hands
 * those to fa__fut_run_inline (future_inline.h), which takes the common cases itself and
 * calls fa__fut_run for the rest.
 */
struct fa_task {
    uintptr_t _next; /* the next entry, tagged (bit 0: it is a future); first word */
    fa_task_cb _run;
};

/**
 * A fixed-size object recycler: a free list over slabs. Objects keep their bytes while free,
 * except the first pointer-sized word, which links the free list (futures keep their generation
 * elsewhere so that it survives being recycled). Owned by its scheduler; one thread.
 */
typedef struct {
    void *_free;        /* free objects, linked through their first word */
    void *_slabs;       /* every slab, linked through its header, for fini */
    size_t _obj_size;   /* bytes per object, a multiple of 16 (slabs start 64-byte aligned) */
    uint32_t _live;     /* objects handed out and not yet returned */
    uint32_t _total;    /* objects in all slabs */
    uint32_t _max;      /* _total never exceeds this */
    uint32_t _grow;     /* objects per slab grown after init */
    uint64_t _exhausted; /* gets refused at the maximum */
} fa_recycler_t;

/** Configuration of fa_sched_init. Zero fields take the documented defaults. */
typedef struct {
    uint32_t futures_init; /* futures preallocated at init (default 1024) */
    uint32_t futures_max;  /* hard cap on live futures (default 1 << 20); >= futures_init */
    uint32_t aux_init;     /* combinator/timer states preallocated at init (default 256) */
    uint32_t aux_max;      /* hard cap on live combinator states (default 1 << 16) */
    uint32_t budget;       /* tasks run per loop iteration (default 1024) */
} fa_sched_conf_t;

/** Counters for tests and clean-teardown checks. All zero (bar the totals) when quiescent. */
typedef struct {
    uint32_t futures_live;  /* futures handed out and not yet returned to the recycler */
    uint32_t aux_live;      /* combinator/timer states handed out */
    uint32_t timers_active; /* ev_timers started by futures and not yet stopped */
    uint32_t queued;        /* tasks waiting in the run queue */
    bool idle_active;       /* the ev_idle watcher (keeps the loop from sleeping) is started */
    uint64_t tasks_run;     /* tasks run since init */
    uint64_t exhausted;     /* objects refused because a recycler was at its maximum */
    uint32_t futures_total; /* futures in slabs (capacity grown so far) */
} fa_sched_stats_t;

/**
 * The scheduler. Embed it in the worker struct; its fields are private. Must not move after
 * fa_sched_init (its watchers are registered with the loop).
 */
struct fa_sched {
    struct ev_loop *loop; /* borrowed; outlives the scheduler */
    uintptr_t _head;      /* the first entry (tagged like fa_task_t._next), 0 when empty */
    uintptr_t *_tailp;    /* the link word to write the next entry to (&_head when empty) */
    uint32_t _inline;     /* depth of then callbacks running inline (see future.h) */
    uint32_t _budget;
    uint32_t _left; /* what remains of this iteration's budget */
    uint32_t _timers_active;
    uint64_t _tasks_run;
    ev_prepare _prepare;
    ev_check _check;
    ev_idle _idle;
    fa_recycler_t _futures;
    fa_recycler_t _aux;
};

/** Size in bytes of one future object and one auxiliary state object (defined in future.c). */
extern const size_t fa__future_size, fa__aux_size;

/** Stops every timer a live auxiliary state still has running (future.c; called by fini). */
void fa__future_stop_timers(fa_sched_t *sched);

/**
 * Binds sched to loop, preallocates the recyclers (fa_malloc; aborts only on real OOM) and
 * starts the prepare/check watchers. conf may be NULL for the defaults. Call on the loop's thread.
 */
void fa_sched_init(fa_sched_t *sched, struct ev_loop *loop, const fa_sched_conf_t *conf);

/**
 * Stops every watcher the scheduler and its futures started, and returns every slab. Objects
 * still out are abandoned (a leak the caller should have prevented: check fa_sched_stats first).
 * Queued tasks are dropped without running. Returns the number of futures that were still live.
 */
uint32_t fa_sched_fini(fa_sched_t *sched);

/** Slow path of a post: the queue was empty, so the idle watcher must be started. */
void fa__sched_post_first(fa_sched_t *sched);

/** Runs one queued future (future.c): what the drain calls for an entry tagged as a future. */
void fa__fut_run(void *fut);

/* Appends the entry whose first word is `link`, tagged with `tag`. No branch but the one that
 * notices an empty queue. */
static inline void fa__sched_append(fa_sched_t *sched, uintptr_t *link, uintptr_t tag)
{
    uintptr_t *tailp = sched->_tailp;
    *link = 0;
    *tailp = (uintptr_t)link | tag;
    sched->_tailp = link;
    if (FA_UNLIKELY(tailp == &sched->_head))
        fa__sched_post_first(sched);
}

/**
 * Appends task to the FIFO run queue; run(task) is called later from a drain, never from here.
 * The task must not already be queued. Starts the idle watcher when the queue was empty.
 */
static inline void fa_sched_post(fa_sched_t *sched, fa_task_t *task, fa_task_cb run)
{
    task->_run = run;
    fa__sched_append(sched, &task->_next, 0);
}

/** Queues a future (future.c only): its first word is its queue link; fa__fut_run runs it. */
static inline void fa__sched_post_fut(fa_sched_t *sched, void *fut)
{
    fa__sched_append(sched, (uintptr_t *)fut, 1);
}

/**
 * Runs up to max queued tasks now, in FIFO order, including tasks queued by the ones it runs.
 * Returns how many ran. The loop watchers call this; tests and benchmarks may call it directly
 * (e.g. to drain without a loop iteration). Not reentrant: do not call from inside a task.
 */
size_t fa_sched_drain(fa_sched_t *sched, size_t max);

/** Fills *st with the current counters. */
void fa_sched_stats(const fa_sched_t *sched, fa_sched_stats_t *st);

/**
 * True when nothing is outstanding: no live future or state, no active timer, no queued task,
 * the idle watcher stopped. Tests assert this at the end of every loop test.
 */
bool fa_sched_quiescent(const fa_sched_t *sched);

/* Recyclers (used by future.c; the scheduler owns them). */

/** Sets up r for objects of obj_size bytes: init objects now, growing up to max later. */
void fa_recycler_init(fa_recycler_t *r, size_t obj_size, uint32_t init, uint32_t max);

/** Returns every slab to the allocator. Objects still out become invalid. */
void fa_recycler_fini(fa_recycler_t *r);

/** Slow path of fa_recycler_get: grows a slab unless at the maximum. NULL when exhausted. */
void *fa__recycler_grow(fa_recycler_t *r);

/**
 * An object from r (its bytes are whatever its last user left, bar the first word), or NULL
 * when r is at its maximum. Calls the allocator only while warming up (growing a slab).
 */
static inline void *fa_recycler_get(fa_recycler_t *r)
{
    void **o = r->_free;
    if (FA_LIKELY(o != NULL)) {
        r->_free = *o;
        r->_live++;
        return o;
    }
    return fa__recycler_grow(r);
}

/** Returns obj (from fa_recycler_get on the same r) to the free list. */
static inline void fa_recycler_put(fa_recycler_t *r, void *obj)
{
    *(void **)obj = r->_free;
    r->_free = obj;
    r->_live--;
}

/** Visits every object of every slab, live or free (fini uses it to stop timers). */
void fa_recycler_each(fa_recycler_t *r, void (*fn)(void *obj, void *arg), void *arg);

#endif
