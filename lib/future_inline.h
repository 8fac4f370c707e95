/*
 * future_inline.h — the layout of a future object and the hot paths of future.h as static inline
 * functions (create, resolve, then, done, get), so that a pending link costs no call into
 * future.c until the drain runs it, and a then on an immediate is a plain function call.
 *
 * Private: included by future.h only. Nothing outside future.c and future_comb.c may touch the
 * fields below; every other file goes through the functions of future.h.
 */
#ifndef FA_FUTURE_INLINE_H
#define FA_FUTURE_INLINE_H

#include <errno.h>
#include <string.h>

/* What produces a future's result (who it waits on), which decides how a delivery is handled. */
enum {
    FA__K_PROMISE = 0, /* settled by fa_promise_*; cb/data: the cancel hook */
    FA__K_READY,       /* created settled: an immediate given an object (fa__materialize) */
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
    FA__F_DONE = 1 << 1,      /* the consumer is a done callback (done/done_data) */
    FA__F_DEAD = 1 << 2,      /* cancelled while queued: the drain recycles it */
    FA__F_DELIVERED = 1 << 3, /* a combinator input already counted, kept until the end */
    FA__F_RUNNING = 1 << 4,   /* a user callback of this future is on the stack */
    FA__F_CANCELED = 1 << 5,  /* cancelled while running: the runner finishes the cancel */
};

typedef struct fa__aux fa__aux_t;

/* The hot paths below are forced inline: as plain `inline` GCC outlines fa_future_then (its
 * object path is long), and a 32-byte handle passed to an outlined copy goes through memory. */
#define FA__HOT static inline __attribute__((always_inline))

/*
 * One future object: 64 bytes, one cache line (the recycler aligns its slabs to 64). Fields
 * that are never needed at the same time share storage:
 * - the first word is the run-queue link while queued, the free-list link while free, and
 *   `upstream` while pending (a pending future is never queued; a settled one waits on nothing);
 * - the callback (or cancel hook, or aux state) is needed only while pending, the result only
 *   once settled;
 * - a done callback replaces consumer/sib (a future with a done callback is nobody's input).
 * While a cancel runs, its work list is threaded through `consumer` (a doomed future has none).
 */
struct fa_fut {
    union {
        uintptr_t link;     /* queued: the run-queue link (sched.h); free: the free-list link */
        fa_fut_t *upstream; /* pending: one input, or the head of a combinator's input list */
    };
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
    union {
        fa_value_t value; /* settled */
        fa_error_t error;
        struct {
            void (*cb)(void); /* pending: the stage callback or the promise's cancel hook */
            void *data;
        };
        fa__aux_t *aux; /* pending: a timeout's, retry's or combinator's state */
    };
    uint32_t gen;  /* bumped whenever the object is recycled or doomed */
    uint32_t idx;  /* index among the consumer's inputs */
    uint8_t state; /* fa_future_state_t */
    uint8_t kind;
    uint8_t flags;
};

/* Out-of-line parts (future.c). The handle goes to them as scalars: a 32-byte struct passed by
 * value is copied through the stack with wide loads over narrow stores (see fa__val_move). */
int fa__cancel_obj(fa_fut_t *s, uint32_t gen);
int fa__chain_obj(fa_fut_t *u, uint32_t gen, uint8_t kind, void (*cb)(void), void *data,
                  fa_future_t *out);
int fa__catch_imm(fa_future_t f, fa_catch_cb cb, void *data, fa_future_t *out);
int fa__finally_imm(fa_future_t f, fa_finally_cb cb, void *data, fa_future_t *out);
void fa__then_settle_slow(fa_fut_t *c, fa_result_t r);
int fa__imm_result_slow(fa_sched_t *sched, fa_result_t r, fa_future_t *out);
int fa__then_deep(fa_future_t f, uint8_t kind, void (*cb)(void), void *data, fa_future_t *out);
int fa__imm_done(fa_future_t *f, fa_done_cb cb, void *data);

/*
 * Copies a 16-byte value as two 8-byte words held in registers. A callback writes its result
 * field by field (8-byte stores); a plain struct copy reads it back with one 16-byte load that
 * spans two stores, which store-to-load forwarding cannot serve, and each such copy stalls for
 * tens of cycles. The empty asm keeps the compiler from merging the words into a vector move.
 */
FA__HOT void fa__val_move(void *dst, const void *src)
{
    uint64_t a, b;
    memcpy(&a, src, 8);
    memcpy(&b, (const char *)src + 8, 8);
    __asm__("" : "+r"(a), "+r"(b));
    memcpy(dst, &a, 8);
    memcpy((char *)dst + 8, &b, 8);
}

FA__HOT fa_fut_t *fa__fut_new(fa_sched_t *sched, uint8_t kind)
{
    fa_fut_t *s = (fa_fut_t *)fa_recycler_get(&sched->_futures);
    if (FA_UNLIKELY(!s))
        return NULL;
    s->sched = sched;
    s->consumer = NULL;
    s->upstream = NULL; /* sib is set by whoever links s as an input */
    s->state = FA_FUT_PENDING;
    s->kind = kind;
    s->flags = 0;
    return s;
}

/* Recycles s, making every handle to it stale. */
FA__HOT void fa__fut_free(fa_fut_t *s)
{
    s->gen++;
    fa_recycler_put(&s->sched->_futures, s);
}

FA__HOT void fa__fut_post(fa_fut_t *s)
{
    fa__sched_post_fut(s->sched, s);
}

/* An immediate's value, from the two words its handle carries (and back). */
FA__HOT fa_value_t fa__imm_value(fa_future_t f)
{
    uint64_t w[2] = {(uint64_t)(uintptr_t)f._p, f._v1};
    fa_value_t v;
    memcpy(&v, w, sizeof(v));
    return v;
}

FA__HOT void fa__imm_set(fa_future_t *f, fa_sched_t *sched, uint32_t state, const void *value)
{
    uint64_t a, b; /* two word loads, not one 16-byte load: see fa__val_move */
    memcpy(&a, value, 8);
    memcpy(&b, (const char *)value + 8, 8);
    __asm__("" : "+r"(a), "+r"(b));
    f->_p = (fa_fut_t *)(uintptr_t)a;
    f->_gen = 0;
    f->_imm = state;
    f->_v1 = b;
    f->_s = sched;
}

FA__HOT fa_future_t fa__imm(fa_sched_t *sched, uint32_t state, fa_value_t v)
{
    fa_future_t f;
    fa__imm_set(&f, sched, state, &v);
    return f;
}

/* What a callback run inline on an immediate returned (*r), as the new future. */
FA__HOT int fa__imm_result(fa_sched_t *sched, const fa_result_t *r, fa_future_t *out)
{
    uint32_t state = r->state;
    if (FA_LIKELY(state == FA_FUT_RESOLVED || state == FA_FUT_REJECTED)) {
        fa__imm_set(out, sched, state, &r->value);
        return 0;
    }
    return fa__imm_result_slow(sched, *r, out);
}

FA__HOT int fa_promise_new(fa_sched_t *sched, fa_promise_t *promise, fa_future_t *future)
{
    fa_fut_t *s = fa__fut_new(sched, FA__K_PROMISE);
    if (FA_UNLIKELY(!s)) {
        *promise = (fa_promise_t){NULL, 0};
        *future = FA_FUTURE_NULL;
        return -ENOMEM;
    }
    s->cb = NULL;
    *promise = (fa_promise_t){s, s->gen};
    *future = (fa_future_t){._p = s, ._gen = s->gen, ._imm = 0, ._v1 = 0, ._s = NULL};
    return 0;
}

FA__HOT int fa__promise_settle(fa_promise_t p, uint8_t state, fa_value_t v)
{
    fa_fut_t *s = p._p;
    if (FA_UNLIKELY(!s || s->gen != p._gen))
        return -ESTALE;
    if (FA_UNLIKELY(s->state != FA_FUT_PENDING || s->kind != FA__K_PROMISE))
        return -EALREADY;
    s->state = state;
    s->value = v;
    if (s->consumer)
        fa__fut_post(s);
    return 0;
}

FA__HOT int fa_promise_resolve(fa_promise_t promise, fa_value_t value)
{
    return fa__promise_settle(promise, FA_FUT_RESOLVED, value);
}

FA__HOT int fa_promise_reject(fa_promise_t promise, fa_error_t error)
{
    fa_value_t v;
    static_assert(sizeof(error) == sizeof(v), "an error and a value share storage");
    memcpy(&v, &error, sizeof(v));
    return fa__promise_settle(promise, FA_FUT_REJECTED, v);
}

FA__HOT int fa_future_ready(fa_sched_t *sched, fa_value_t value, fa_future_t *out)
{
    *out = fa__imm(sched, FA_FUT_RESOLVED, value);
    return 0;
}

FA__HOT int fa_future_failed(fa_sched_t *sched, fa_error_t error, fa_future_t *out)
{
    fa_value_t v;
    memcpy(&v, &error, sizeof(v));
    *out = fa__imm(sched, FA_FUT_REJECTED, v);
    return 0;
}

FA__HOT bool fa_future_valid(fa_future_t f)
{
    return f._imm || (f._p && f._p->gen == f._gen);
}

FA__HOT fa_future_state_t fa_future_state(fa_future_t f)
{
    if (f._imm)
        return (fa_future_state_t)f._imm;
    return fa_future_valid(f) ? (fa_future_state_t)f._p->state : FA_FUT_PENDING;
}

FA__HOT int fa_future_get(fa_future_t f, fa_result_t *out)
{
    if (f._imm) {
        out->state = f._imm;
        out->value = fa__imm_value(f);
        return 0;
    }
    fa_fut_t *s = f._p;
    if (FA_UNLIKELY(!s || s->gen != f._gen))
        return -ESTALE;
    if (FA_UNLIKELY(s->consumer != NULL))
        return -EBUSY;
    if (s->state == FA_FUT_PENDING)
        return -EAGAIN;
    out->state = s->state;
    fa__val_move(&out->value, &s->value);
    fa__fut_free(s);
    return 0;
}

/* A then on an object future: a new stage object linked below u (queued at once if u has
 * settled already). On an immediate: the callback runs here, one level deeper inline. */
FA__HOT int fa_future_then(fa_future_t f, fa_then_cb cb, void *data, fa_future_t *out)
{
    if (f._imm) {
        if (f._imm != FA_FUT_RESOLVED) {
            *out = f; /* a rejection skips the stage */
            return 0;
        }
        fa_sched_t *sched = f._s;
        if (FA_UNLIKELY(sched->_inline >= FA_FUTURE_INLINE_DEPTH))
            return fa__then_deep(f, FA__K_THEN, (void (*)(void))cb, data, out);
        sched->_inline++;
        fa_result_t r = cb(sched, data, fa__imm_value(f));
        sched->_inline--;
        return fa__imm_result(sched, &r, out);
    }
    fa_fut_t *u = f._p;
    if (FA_UNLIKELY(!u || u->gen != f._gen))
        return -ESTALE;
    if (FA_UNLIKELY(u->consumer != NULL))
        return -EBUSY;
    fa_fut_t *c = fa__fut_new(u->sched, FA__K_THEN);
    if (FA_UNLIKELY(!c))
        return -ENOMEM;
    c->cb = (void (*)(void))cb;
    c->data = data;
    c->upstream = u;
    u->consumer = c;
    u->sib = NULL;
    if (u->state != FA_FUT_PENDING)
        fa__fut_post(u);
    *out = (fa_future_t){._p = c, ._gen = c->gen};
    return 0;
}

FA__HOT int fa_future_catch(fa_future_t f, fa_catch_cb cb, void *data, fa_future_t *out)
{
    if (f._imm)
        return fa__catch_imm(f, cb, data, out);
    return fa__chain_obj(f._p, f._gen, FA__K_CATCH, (void (*)(void))cb, data, out);
}

FA__HOT int fa_future_finally(fa_future_t f, fa_finally_cb cb, void *data, fa_future_t *out)
{
    if (f._imm)
        return fa__finally_imm(f, cb, data, out);
    return fa__chain_obj(f._p, f._gen, FA__K_FINALLY, (void (*)(void))cb, data, out);
}

FA__HOT int fa_future_cancel(fa_future_t f)
{
    if (f._imm)
        return 0; /* an immediate holds nothing */
    return fa__cancel_obj(f._p, f._gen);
}

FA__HOT int fa_future_done(fa_future_t *f, fa_done_cb cb, void *data)
{
    if (f->_imm)
        return fa__imm_done(f, cb, data);
    fa_fut_t *s = f->_p;
    if (FA_UNLIKELY(!s || s->gen != f->_gen))
        return -ESTALE;
    if (FA_UNLIKELY(s->consumer != NULL))
        return -EBUSY;
    s->done = cb;
    s->done_data = data;
    s->flags |= FA__F_DONE;
    if (s->state != FA_FUT_PENDING)
        fa__fut_post(s);
    return 0;
}

/*
 * What the drain does with a queued future s (sched.c inlines this into its loop): the two
 * common cases here, a then stage on a value and a done callback, the rest in fa__fut_run.
 * s is recycled before any callback runs, so a callback sees only the consumer. The stage is
 * marked running around its callback: a cancel from inside only flags it, and
 * fa__then_settle_slow finishes that cancel once the callback has returned.
 */
static inline void fa__fut_run_inline(fa_fut_t *s)
{
    uint8_t flags = s->flags;
    if (FA_LIKELY(!(flags & (FA__F_DEAD | FA__F_DONE)))) {
        fa_fut_t *c = s->consumer;
        if (FA_LIKELY(c->kind == FA__K_THEN && s->state == FA_FUT_RESOLVED)) {
            fa_value_t v = s->value;
            fa__fut_free(s);
            c->upstream = NULL;
            c->flags |= FA__F_RUNNING;
            fa_result_t r = ((fa_then_cb)c->cb)(c->sched, c->data, v);
            c->flags &= (uint8_t)~FA__F_RUNNING;
            if (FA_LIKELY(!(c->flags & FA__F_CANCELED) &&
                          (r.state == FA_FUT_RESOLVED || r.state == FA_FUT_REJECTED))) {
                c->state = (uint8_t)r.state;
                fa__val_move(&c->value, &r.value);
                if (c->consumer)
                    fa__fut_post(c);
                return;
            }
            fa__then_settle_slow(c, r);
            return;
        }
    } else if (flags == FA__F_DONE) {
        fa_result_t r;
        r.state = s->state;
        fa__val_move(&r.value, &s->value);
        fa_done_cb cb = s->done;
        void *data = s->done_data;
        fa_sched_t *sched = s->sched;
        fa__fut_free(s);
        cb(sched, data, &r);
        return;
    }
    fa__fut_run(s);
}

#endif
