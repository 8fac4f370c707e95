/*
 * future_internal.h — the helpers shared by future.c and future_comb.c (the object layout is in
 * future_inline.h). Not public: nothing outside those two files includes it.
 */
#ifndef FA_FUTURE_INTERNAL_H
#define FA_FUTURE_INTERNAL_H

#include "future.h"

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

fa_fut_t *fa__materialize(fa_future_t f);
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
void fa__drop(fa_fut_t *u, fa_fut_t **work, bool had_consumer);
void fa__drop_inputs(fa_fut_t *c, fa_fut_t **work);
void fa__cancel_run(fa_fut_t *work);
void fa__cancel_doomed(fa_fut_t *c);

#endif
