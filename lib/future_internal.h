/*
 * future_internal.h — the future object and the helpers shared by future.c and future_comb.c.
 * Not public: nothing outside those two files includes it.
 */
#ifndef FA_FUTURE_INTERNAL_H
#define FA_FUTURE_INTERNAL_H

#include "future.h"

/* What produces a future's result (who it waits on), which decides how a delivery is handled. */
enum {
    FA__K_PROMISE = 0, /* settled by fa_promise_*; cb/data: the cancel hook */
    FA__K_READY,       /* created settled */
    FA__K_THEN,        /* cb/data: the then callback */
    FA__K_CATCH,       /* cb/data: the catch callback */
    FA__K_FINALLY,     /* cb/data: the finally callback */
    FA__K_PASS,        /* settles like its single input (a followed future, a finished stage) */
    FA__K_TIMEOUT,     /* aux: the timer */
    FA__K_RETRY,       /* aux: the factory, counters and backoff timer */
    FA__K_ALL,         /* from here on: combinators over an input list, aux: fa__aux_t.comb */
    FA__K_ANY,
    FA__K_RACE,
    FA__K_SOME,
    FA__K_MAP,
    FA__K_FILTER,
    FA__K_REDUCE,
};

enum {
    FA__F_QUEUED = 1 << 0,    /* in the scheduler's run queue */
    FA__F_DONE = 1 << 1,      /* the consumer is a done callback (done/done_data) */
    FA__F_DEAD = 1 << 2,      /* cancelled while queued: the drain recycles it */
    FA__F_DELIVERED = 1 << 3, /* a combinator input already counted, kept until the end */
    FA__F_RUNNING = 1 << 4,   /* a user callback of this future is on the stack */
    FA__F_CANCELED = 1 << 5,  /* cancelled while running: the runner finishes the cancel */
    FA__F_INPUT = 1 << 6,     /* a queued then stage whose input value is in `value` (it was
                                 made from a ready future: see fa_future_then) */
};

typedef struct fa__aux fa__aux_t;

struct fa_fut {
    fa_task_t task; /* run queue link; free list link; cancel work list link */
    fa_sched_t *sched;
    union {
        struct {
            fa_fut_t *consumer; /* who takes the result; NULL: nobody yet */
            fa_fut_t *sib;      /* next input of the same combinator */
        };
        struct {
            fa_done_cb done; /* with FA__F_DONE: the terminal callback (non-NULL) */
            void *done_data;
        };
    };
    fa_fut_t *upstream; /* what this waits on: one input, or a combinator's input list */
    uint32_t gen;       /* bumped whenever the object is recycled or doomed */
    uint32_t idx;       /* index among the consumer's inputs */
    uint8_t state;      /* fa_future_state_t */
    uint8_t kind;
    uint8_t flags;
    union {
        fa_value_t value;
        fa_error_t error;
    };
    union {
        struct {
            void (*cb)(void);
            void *data;
        };
        fa__aux_t *aux;
    };
};

/* Combinator and timer state, from the scheduler's aux recycler. */
struct fa__aux {
    fa_fut_t *slot; /* the future this belongs to (first: the free-list link overwrites it) */
    ev_timer timer;
    union {
        struct {
            fa_attempt_fn fn;
            void *data;
            unsigned attempt, tries;
            double delay;
            fa_error_t last;
        } retry;
        struct {
            fa_value_t *values;
            size_t *winner;
            void (*fn)(void);
            void *data;
            fa_value_t acc;
            uint32_t n, k, ok, failed;
        } comb;
    };
};

fa_fut_t *fa__fut_get(fa_sched_t *sched, uint8_t kind);
void fa__fut_release(fa_fut_t *s);
fa__aux_t *fa__aux_get(fa_sched_t *sched, fa_fut_t *owner);
void fa__aux_put(fa_sched_t *sched, fa__aux_t *a);
int fa__check_input(fa_future_t f);
void fa__post(fa_fut_t *s);
void fa__link(fa_fut_t *c, fa_fut_t *u, uint32_t idx);
void fa__settle(fa_fut_t *c, fa_result_t r);
void fa__discard(fa_result_t r);
void fa__deliver(fa_fut_t *c, fa_fut_t *s);
void fa__comb_deliver(fa_fut_t *c, fa_fut_t *s);
void fa__comb_finish(fa_fut_t *c, fa_result_t r);
bool fa__cancelled_while_running(fa_fut_t *c, fa_result_t r);
void fa__drop(fa_fut_t *u, fa_fut_t **work);
void fa__drop_inputs(fa_fut_t *c, fa_fut_t **work);
void fa__cancel_run(fa_fut_t *work);
void fa__cancel_doomed(fa_fut_t *c);

#endif
