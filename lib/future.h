/*
 * future.h — futures and promises with continuation chaining, combinators and cancellation, with
 * no allocator call after warm-up.
 *
 * Model
 *   A future is pending, resolved (holding a small fa_value_t) or rejected (holding an
 *   fa_error_t). It comes in two forms, told apart by its handle:
 *   - an object future: one object from its scheduler's recycler (see sched.h). Every future
 *     that can be pending is one: a promise's future, a stage (then/catch/finally) on an object
 *     future, a timeout, a retry, a combinator. The code that produces the result holds an
 *     fa_promise_t, the code that waits an fa_future_t; both are a pointer plus a generation.
 *     When the object is recycled its generation changes, so a stale handle is detected (calls
 *     return -ESTALE or do nothing) instead of touching a reused object.
 *   - an immediate future: an already settled result carried in the handle itself, with no
 *     object behind it. fa_future_ready/fa_future_failed make one; then/catch/finally on one
 *     make another (see Scheduling). An immediate is a value: it holds no resource, needs no
 *     recycling, never goes stale, and copies of it are equal. Calls that need an object to wait
 *     on an immediate (done, a combinator input, a retry attempt) take one for it then.
 *
 * Single consumer
 *   An object future has at most one consumer: one then/catch/finally/done, one timeout or
 *   retry, or one place in one combinator. Attaching the consumer hands the future over to it:
 *   after fa_future_then(f, ...) the caller must not use f again except through the new future
 *   (a second consumer gets -EBUSY). fa_future_done is the terminal consumer: it stores its
 *   callback in the future itself, so that future stays cancellable by its holder. An object
 *   is recycled right after its consumer has seen its result, or when it is cancelled. An
 *   immediate is consumed the same way by contract, but nothing can detect a second use (each
 *   use sees the same value).
 *
 * Scheduling
 *   Settling never runs a continuation on the spot: when an object future settles (through its
 *   promise, a timer, or a callback's result) it is queued on its worker's scheduler and its
 *   consumer runs from the drain, in FIFO order of settlement. Attaching a consumer to an
 *   object future that has already settled queues it the same way, at the time of attaching.
 *   A chain of any length is therefore a loop in fa_sched_drain, never a recursion.
 *   The one exception is an immediate: then/catch/finally on an immediate future run their
 *   callback inline, inside the call, and return its result as a new future (an immediate
 *   for a value or an error, or the future the callback returned to follow). This is not a
 *   settlement (the result was there when the consumer came), it takes no object and no queue
 *   round trip, and it is how a chain over ready values stays as cheap as a function call.
 *   Inline calls nest when a callback itself chains on an immediate; past
 *   FA_FUTURE_INLINE_DEPTH nested inline callbacks the call falls back to the queue (the
 *   callback runs from the drain, as for an object future), so the C stack stays bounded.
 *   fa_future_done never runs its callback inline, whatever the future: a terminal consumer
 *   (a paused request) is always resumed from the drain.
 *
 * Errors
 *   Errors are values. A rejection skips every `then` stage and reaches the first `catch`
 *   (which may recover with a value or fail again); `finally` sees both and passes the result
 *   through. Well-known conditions use the static strings below, compared by pointer.
 *
 * Cancellation
 *   fa_future_cancel(f) means "nobody wants this result any more". It runs no then/catch/done
 *   callback. It walks upstream through everything f waits on (stage inputs, followed futures,
 *   combinator inputs, timed-out and retried futures), stops their timers, calls the promise
 *   producers' cancel hooks (fa_promise_on_cancel) and `finally` callbacks, and returns every
 *   object to its recycler before it returns. The walk is iterative (no recursion). A late
 *   resolution through a promise of a cancelled future is a no-op (-ESTALE). Cancelling an
 *   immediate does nothing (it holds nothing) and returns 0.
 *
 * Callbacks
 *   A call that takes a callback either fails now (returns a negative errno, nothing consumed,
 *   the callback never called) or calls it back exactly once: inline for then/catch/finally on
 *   an immediate within the depth bound, otherwise from the scheduler's drain, unless the future
 *   is cancelled first (then it is never called; finally callbacks are the exception and run
 *   during the cancel). Callback data is borrowed: it must stay valid until the callback has run
 *   or the future has been cancelled.
 *
 * Pool exhaustion
 *   A call that cannot get an object returns -ENOMEM and consumes nothing. Work started later
 *   inside the scheduler that cannot get an object (a retry attempt, a compose stage) rejects
 *   its future with fa_err_pool_exhausted. Immediates need no object, so a chain over ready
 *   values works with the pool exhausted.
 *
 * Thread
 *   Everything here runs on the thread of the future's scheduler (its worker). Nothing locks.
 */
#ifndef FA_FUTURE_H
#define FA_FUTURE_H

#include "fa.h"
#include "sched.h"

/* Values */

typedef enum {
    FA_VAL_NONE = 0, /* no value (e.g. an unfilled when_some slot) */
    FA_VAL_INT,      /* i */
    FA_VAL_DOUBLE,   /* d */
    FA_VAL_PTR,      /* p and len: borrowed bytes or an array; the producer says who owns them */
    FA_VAL_POOLED,   /* p and len: memory from a request's bump pool, valid until its reset */
} fa_value_kind_t;

/** A small typed value: 16 bytes, copied by value, never a heap box. */
typedef struct {
    union {
        int64_t i;
        double d;
        void *p;
    };
    uint32_t len;
    uint32_t kind; /* fa_value_kind_t */
} fa_value_t;

#define FA_VALUE_NONE ((fa_value_t){.i = 0, .len = 0, .kind = FA_VAL_NONE})
#define FA_VALUE_INT(n) ((fa_value_t){.i = (n), .len = 0, .kind = FA_VAL_INT})
#define FA_VALUE_DOUBLE(x) ((fa_value_t){.d = (x), .len = 0, .kind = FA_VAL_DOUBLE})
#define FA_VALUE_PTR(ptr, n) ((fa_value_t){.p = (ptr), .len = (uint32_t)(n), .kind = FA_VAL_PTR})
#define FA_VALUE_POOLED(ptr, n)                                                                    \
    ((fa_value_t){.p = (ptr), .len = (uint32_t)(n), .kind = FA_VAL_POOLED})

/**
 * An error: a code (a negative errno or an application code) and a message that is either a
 * static string or memory from a request pool. Never owns heap memory.
 */
typedef struct {
    int code;
    const char *msg;
} fa_error_t;

/* Well-known conditions: compare err.msg with these by pointer. Static; never freed. */
extern const char fa_err_timeout[];        /* code -ETIMEDOUT: fa_future_timeout fired */
extern const char fa_err_cancelled[];      /* code -ECANCELED: passed to finally on cancel */
extern const char fa_err_pool_exhausted[]; /* code -ENOMEM: a recycler was at its maximum */
extern const char fa_err_stale[];          /* code -ESTALE: a callback returned a bad handle */
extern const char fa_err_empty[];          /* code -EINVAL: when_any/race with no input */

#define FA_ERROR_STATIC(c, m) ((fa_error_t){.code = (c), .msg = (m)})

/* Handles */

typedef struct fa_fut fa_fut_t; /* private; laid out in future_inline.h */

/**
 * The consumer's handle, 32 bytes, copied by value. For an object future: the object and its
 * generation (only the generation-matching copy is live). For an immediate: the result itself
 * (its two words in _p and _v1) and its scheduler. The fields are private. There is no union
 * here on purpose: the compiler keeps a union-free handle in registers across the inline hot
 * paths, where a union forced it through memory.
 */
typedef struct {
    fa_fut_t *_p;   /* the object; for an immediate, the bits of the value's first word */
    uint32_t _gen;  /* the object's generation */
    uint32_t _imm;  /* 0: an object handle; FA_FUT_RESOLVED / FA_FUT_REJECTED: an immediate */
    uint64_t _v1;   /* an immediate: the value's second word (len and kind, or nothing) */
    fa_sched_t *_s; /* an immediate's scheduler (NULL for an object handle) */
} fa_future_t;

/** The producer's handle to a promise's object. */
typedef struct {
    fa_fut_t *_p;
    uint32_t _gen;
} fa_promise_t;

/** The handle of no future: not valid, cancelling it is -ESTALE. */
#define FA_FUTURE_NULL ((fa_future_t){._p = NULL})

/** How many then/catch/finally callbacks on immediates may run nested inline (see Scheduling). */
#define FA_FUTURE_INLINE_DEPTH 16

typedef enum {
    FA_FUT_PENDING = 0,
    FA_FUT_RESOLVED = 1,
    FA_FUT_REJECTED = 2,
    FA_FUT_FOLLOW = 3, /* only in a callback's return: "settle like this other future" */
} fa_future_state_t;

/**
 * What a callback returns, and what a settled future holds: a value, an error, or (returned by a
 * then/catch/compose callback only) another future whose result becomes this one's. Returning a
 * future hands it over (it must be live and have no consumer; otherwise the stage rejects with
 * fa_err_stale).
 */
typedef struct {
    uint32_t state; /* fa_future_state_t */
    union {
        fa_value_t value;
        fa_error_t error;
        fa_future_t follow;
    };
} fa_result_t;

/* Built member by member rather than from a compound literal: an initializer zero-fills the
 * whole 40-byte union, and the caller's wide loads of the value then wait on those narrow stores
 * (a store-forwarding stall that made a ready then cost 8x its instruction count). */
static inline fa_result_t fa_ok(fa_value_t v)
{
    fa_result_t r;
    r.state = FA_FUT_RESOLVED;
    r.value = v;
    return r;
}
static inline fa_result_t fa_ok_int(int64_t n)
{
    fa_result_t r;
    r.state = FA_FUT_RESOLVED;
    r.value.i = n;
    r.value.len = 0;
    r.value.kind = FA_VAL_INT;
    return r;
}
static inline fa_result_t fa_fail(fa_error_t e)
{
    fa_result_t r;
    r.state = FA_FUT_REJECTED;
    r.error = e;
    return r;
}
static inline fa_result_t fa_follow(fa_future_t f)
{
    return (fa_result_t){.state = FA_FUT_FOLLOW, .follow = f};
}

/* Callback types. `sched` is the future's scheduler; `data` is what was passed with the callback. */

/** A then stage: runs with the upstream value; returns a value, an error or a future to follow. */
typedef fa_result_t (*fa_then_cb)(fa_sched_t *sched, void *data, fa_value_t value);
/** A catch stage: runs with the upstream error; may recover (value/follow) or fail again. */
typedef fa_result_t (*fa_catch_cb)(fa_sched_t *sched, void *data, fa_error_t error);
/**
 * A finally stage: sees the result (resolved or rejected), which is then passed on unchanged. On
 * cancellation it runs during fa_future_cancel with a rejection by fa_err_cancelled.
 */
typedef void (*fa_finally_cb)(fa_sched_t *sched, void *data, const fa_result_t *result);
/** The terminal consumer (fa_future_done): sees the result; not called if cancelled. */
typedef void (*fa_done_cb)(fa_sched_t *sched, void *data, const fa_result_t *result);
/** A producer's cancel hook: stop the work (timers, I/O) that would resolve the promise. */
typedef void (*fa_cancel_cb)(fa_sched_t *sched, void *data);

/* Promises */

/**
 * Creates a pending future and the promise that settles it. Returns 0, or -ENOMEM when the
 * future recycler is at its maximum (nothing created; both handles are set to null handles).
 */
static inline int fa_promise_new(fa_sched_t *sched, fa_promise_t *promise, fa_future_t *future);

/**
 * Settles the future with a value (resolve) or an error (reject) and queues its consumer, if it
 * has one. Returns 0; -EALREADY if it was already settled; -ESTALE if the future was cancelled
 * or recycled (a late resolution: nothing happens). Safe to call from any libev callback of the
 * scheduler's loop.
 */
static inline int fa_promise_resolve(fa_promise_t promise, fa_value_t value);
static inline int fa_promise_reject(fa_promise_t promise, fa_error_t error);

/**
 * Registers the hook cancellation calls (once, synchronously, inside fa_future_cancel) so the
 * producer can stop its timers and I/O. data is borrowed until the promise is settled or the
 * hook has run. Returns 0 or -ESTALE.
 */
int fa_promise_on_cancel(fa_promise_t promise, fa_cancel_cb cb, void *data);

/* Ready futures */

/**
 * An already resolved (rejected) future: an immediate (no object). Returns 0; it cannot fail
 * (the int return is kept so that a factory can return it directly).
 */
static inline int fa_future_ready(fa_sched_t *sched, fa_value_t value, fa_future_t *out);
static inline int fa_future_failed(fa_sched_t *sched, fa_error_t error, fa_future_t *out);

/* Inspection */

/** True when f is a live handle (an immediate, or an object not recycled; not the null handle). */
static inline bool fa_future_valid(fa_future_t f);
/** The state of a live future (FA_FUT_PENDING for a stale one: check fa_future_valid). */
static inline fa_future_state_t fa_future_state(fa_future_t f);

/**
 * Takes the result of a settled future without a callback: fills *out and consumes f (an
 * object is recycled). Returns 0; -EAGAIN if f is still pending (f unchanged); -ESTALE;
 * -EBUSY if f has a consumer. Never waits.
 */
static inline int fa_future_get(fa_future_t f, fa_result_t *out);

/* Chaining. Each consumes f (see "Single consumer") and, on success, writes the new future to
 * *out. Returns 0, -ESTALE (f is not live), -EBUSY (f already has a consumer) or -ENOMEM. On
 * failure f is left to the caller, unchanged. On an immediate f the callback runs inside the
 * call (see "Scheduling") and *out is what it returned. */

/** out resolves with cb(value) once f resolves; if f rejects, cb is skipped and out rejects. */
static inline int fa_future_then(fa_future_t f, fa_then_cb cb, void *data, fa_future_t *out);
/** out rejects or resolves with cb(error) if f rejects; if f resolves, out resolves the same. */
static inline int fa_future_catch(fa_future_t f, fa_catch_cb cb, void *data, fa_future_t *out);
/** out settles like f after cb(result) has run; cb also runs if the chain is cancelled. */
static inline int fa_future_finally(fa_future_t f, fa_finally_cb cb, void *data, fa_future_t *out);

/**
 * The terminal consumer: cb(result) runs from the drain once *f settles (never inside this
 * call, even for an immediate), and the object is recycled after it. Cheapest way to wait: no
 * new future for an object future. On success *f is the handle that cancels the wait: the
 * same object for an object future; for an immediate, the object taken to queue it. It stays
 * the caller's to cancel until cb runs. Returns 0, -ESTALE, -EBUSY or -ENOMEM (an immediate
 * and the pool exhausted; *f unchanged). This is what the request pipeline uses to resume a
 * request.
 */
static inline int fa_future_done(fa_future_t *f, fa_done_cb cb, void *data);

/**
 * Cancels f and everything it waits on (see "Cancellation"), returning all their objects; a
 * future with a done callback is cancelled without calling it. Returns 0 (also for an
 * immediate, which holds nothing); -ESTALE for a stale handle (already settled and consumed,
 * or already cancelled: a no-op); -EBUSY if f has a consumer other than done (cancel the end of
 * the chain instead).
 */
static inline int fa_future_cancel(fa_future_t f);

/* Timers and retries */

/**
 * out settles like f if f settles within `seconds` (an ev_timer on the scheduler's loop);
 * otherwise out rejects with fa_err_timeout and f is cancelled. Consumes f. An immediate f has
 * settled already: out is f, no timer. Returns 0, -ESTALE, -EBUSY or -ENOMEM.
 */
int fa_future_timeout(fa_future_t f, double seconds, fa_future_t *out);

/**
 * A factory of attempts: starts attempt number `attempt` (0-based) and writes its future to
 * *out. Returns 0, or a negative errno (the retry then rejects with that code).
 */
typedef int (*fa_attempt_fn)(fa_sched_t *sched, void *data, unsigned attempt, fa_future_t *out);

/**
 * Calls fn (attempt 0 runs now, inside this call), and while the attempt rejects and fewer than
 * `tries` attempts have been made, waits and calls fn again. The wait starts at `backoff`
 * seconds and doubles after each failure (0: retry from the drain without a timer). out
 * resolves with the first success or rejects with the last error. Cancelling out cancels the
 * running attempt or the wait. Returns 0 or -ENOMEM / the error of attempt 0's fn (fn called
 * but nothing kept); tries must be >= 1 (-EINVAL).
 */
int fa_future_retry(fa_sched_t *sched, fa_attempt_fn fn, void *data, unsigned tries,
                    double backoff, fa_future_t *out);

/* Combinators. Each takes n input futures (handles copied; the array itself may go away after
 * the call), consumes all of them on success and none on failure. Inputs must be live, distinct
 * and without a consumer (else -ESTALE / -EBUSY). `out_values` arrays are borrowed and filled
 * in place: they must stay valid until the combined future settles or is cancelled. When the
 * combined future settles early (fail fast, first winner), the remaining inputs are cancelled. */

/**
 * Resolves with FA_VALUE_PTR(values, n) once every input resolved: values[i] is input i's value
 * (input order). Rejects with the first error in completion order, cancelling the rest.
 */
int fa_when_all(fa_sched_t *sched, const fa_future_t *in, size_t n, fa_value_t *values,
                fa_future_t *out);

/**
 * Resolves with the first value to arrive (its input index in *winner, if winner is not NULL;
 * borrowed like values). Errors are skipped; rejects with the last error when every input
 * rejected, with fa_err_empty when n == 0. The rest are cancelled once one resolves.
 */
int fa_when_any(fa_sched_t *sched, const fa_future_t *in, size_t n, size_t *winner,
                fa_future_t *out);

/** Like when_any but the first input to settle wins, whether it resolved or rejected. */
int fa_race(fa_sched_t *sched, const fa_future_t *in, size_t n, size_t *winner, fa_future_t *out);

/**
 * Resolves with FA_VALUE_PTR(values, n) once k inputs resolved: values[i] holds input i's value
 * for those k, FA_VAL_NONE for the others (which are cancelled). Rejects with the last error as
 * soon as more than n - k inputs rejected. k == 0 resolves at once; k > n is -EINVAL.
 */
int fa_when_some(fa_sched_t *sched, const fa_future_t *in, size_t n, size_t k,
                 fa_value_t *values, fa_future_t *out);

/** A map function: the value for input idx, or an error (a follow result is an error). */
typedef fa_result_t (*fa_map_fn)(fa_sched_t *sched, void *data, size_t idx, fa_value_t value);
/** A filter predicate: keep input idx's value? */
typedef bool (*fa_filter_fn)(fa_sched_t *sched, void *data, size_t idx, fa_value_t value);
/** A fold step: the new accumulator (or an error, which rejects the reduce). */
typedef fa_result_t (*fa_reduce_fn)(fa_sched_t *sched, void *data, fa_value_t acc, size_t idx,
                                    fa_value_t value);

/**
 * Calls fn as each input resolves (completion order, from the drain; not after all of them) and
 * stores its result in values[idx]. Resolves with FA_VALUE_PTR(values, n) when all are mapped;
 * rejects with the first input or fn error, cancelling the rest.
 */
int fa_future_map(fa_sched_t *sched, const fa_future_t *in, size_t n, fa_map_fn fn, void *data,
                  fa_value_t *values, fa_future_t *out);

/**
 * Calls pred as each input resolves; resolves with FA_VALUE_PTR(values, kept) holding the kept
 * values compacted in input order. Rejects with the first error, cancelling the rest.
 */
int fa_future_filter(fa_sched_t *sched, const fa_future_t *in, size_t n, fa_filter_fn pred,
                     void *data, fa_value_t *values, fa_future_t *out);

/**
 * Folds the inputs into one value in COMPLETION order: acc = fn(acc, idx, value) runs as each
 * input resolves, starting from init, so nothing is buffered and the fold overlaps the waiting.
 * Use it for order-insensitive folds (sums, counts, max); for an input-order fold, when_all and
 * fold the array. Resolves with the final acc; rejects with the first input or fn error.
 */
int fa_future_reduce(fa_sched_t *sched, const fa_future_t *in, size_t n, fa_reduce_fn fn,
                     void *data, fa_value_t init, fa_future_t *out);

/* Compose: an ordered list of stage functions run as one future-returning function. */

/** One composed stage: like a then callback (value in; value, error or future out). */
typedef struct {
    fa_then_cb fn;
    void *data; /* borrowed for as long as a composed call may run */
} fa_compose_stage_t;

/**
 * Runs stages[0] on input, then each next stage on the previous stage's value, as a chain of
 * then stages on an immediate input: the stages run inside this call until one returns a
 * pending future, and the rest are chained on it (see "Scheduling"); the first error skips the
 * rest. The stages array is read during the call only. Returns 0 and the future of the last
 * stage in *out, or -ENOMEM (nothing left pending).
 */
int fa_future_compose(fa_sched_t *sched, const fa_compose_stage_t *stages, size_t n,
                      fa_value_t input, fa_future_t *out);

#include "future_inline.h"

#endif
