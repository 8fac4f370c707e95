/*
 * future_comb.c — combinators over a list of input futures: when_all, when_any, race,
 * when_some, map, filter, reduce. See future.h for each contract.
 *
 * A combinator is one future (kind FA__K_ALL.. FA__K_REDUCE) plus one aux state holding the
 * counters and the caller's result array. Its inputs are linked below it through `sib`; each
 * input is queued when it settles and delivered here from the drain. A delivered input stays in
 * the list (flagged delivered) until the combinator finishes, when the whole list is dropped at
 * once: delivered inputs are recycled, pending ones cancelled (their producers told), queued
 * ones recycled by the drain. So nothing is ever searched for, and cancelling "the rest" after a
 * fail-fast or a winner is one walk.
 */
#include "future_internal.h"

#include <errno.h>
#include <string.h>

/* A filter's marker for a value the predicate rejected, removed by the final compaction. */
#define FA__VAL_DROPPED 0xffffffffu

/* The error a list of inputs that cannot be linked gets: -EINVAL for a bad list, a foreign or
 * duplicated input, else what fa__check_input says. Only for a refusal (the slow path). */
static int comb_refusal(fa_sched_t *sched, const fa_future_t *in, size_t n)
{
    if (n > UINT32_MAX || (n && !in))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int rc = fa__check_input(in[i]);
        if (rc)
            return rc;
        if ((in[i]._imm ? in[i]._s : in[i]._p->sched) != sched)
            return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) /* duplicates (immediates are values: copies are fine) */
        for (size_t j = i + 1; j < n; j++)
            if (!in[i]._imm && !in[j]._imm && in[i]._p == in[j]._p)
                return -EINVAL;
    return 0;
}

/* Validates and links every input below a new combinator future in one pass, in input order
 * (an immediate input gets an object here). Nothing is queued yet, and on failure nothing is
 * consumed: the inputs linked so far are unlinked again (objects made for immediates are
 * returned). A duplicate input is found when it is linked a second time. *any_settled says
 * whether an input had already settled (comb_start must queue it). */
static int comb_new(fa_sched_t *sched, uint8_t kind, const fa_future_t *in, size_t n,
                    fa_fut_t **out, bool *any_settled)
{
    if (FA_UNLIKELY(n > UINT32_MAX || (n && !in)))
        return -EINVAL;
    fa_fut_t *c = fa__fut_new(sched, kind);
    if (FA_UNLIKELY(!c)) {
        int rc = comb_refusal(sched, in, n);
        return rc ? rc : -ENOMEM;
    }
    fa__aux_t *a = fa__aux_get(sched, c);
    if (FA_UNLIKELY(!a)) {
        fa__fut_free(c);
        int rc = comb_refusal(sched, in, n);
        return rc ? rc : -ENOMEM;
    }
    c->aux = a;
    memset(&a->comb, 0, sizeof(a->comb));
    a->comb.n = (uint32_t)n;
    bool settled = false;
    fa_fut_t **tail = &c->upstream;
    for (size_t i = 0; i < n; i++) {
        fa_fut_t *u = in[i]._p;
        int rc = 0;
        if (in[i]._imm) {
            u = in[i]._s == sched ? fa__materialize(in[i]) : NULL;
            rc = in[i]._s != sched ? -EINVAL : u ? 0 : -ENOMEM;
        } else if (FA_UNLIKELY(!u || u->gen != in[i]._gen)) {
            rc = -ESTALE;
        } else if (FA_UNLIKELY(u->consumer != NULL)) {
            rc = u->consumer == c ? -EINVAL : -EBUSY;
        } else if (FA_UNLIKELY(u->sched != sched)) {
            rc = -EINVAL;
        }
        if (FA_UNLIKELY(rc)) {
            fa_fut_t *v = c->upstream;
            for (size_t j = 0; j < i; j++, v = v->sib) {
                if (in[j]._imm)
                    fa__fut_free(v);
                else
                    v->consumer = NULL;
            }
            fa__aux_put(sched, a);
            fa__fut_free(c);
            return rc;
        }
        u->consumer = c;
        u->idx = (uint32_t)i;
        u->sib = NULL;
        *tail = u;
        tail = &u->sib;
        settled |= u->state != FA_FUT_PENDING;
    }
    *any_settled = settled;
    *out = c;
    return 0;
}

/* Ends the combinator with r: every input left is dropped (cancelled if pending), the state is
 * returned and c settles. c settles before the cancels run so that a cancel hook that touches c
 * finds a settled future, not one being torn down. */
void fa__comb_finish(fa_fut_t *c, fa_result_t r)
{
    fa_fut_t *work = NULL;
    fa__drop_inputs(c, &work);
    fa__aux_put(c->sched, c->aux);
    c->aux = NULL;
    c->kind = FA__K_PASS;
    fa__settle(c, r);
    fa__cancel_run(work);
}

#define finish fa__comb_finish

/* Queues the inputs that had already settled, in input order (so that with ready inputs the
 * earliest one is delivered first), and returns the new future. */
static int comb_start(fa_fut_t *c, bool any_settled, fa_future_t *out)
{
    *out = (fa_future_t){._p = c, ._gen = c->gen};
    for (fa_fut_t *u = any_settled ? c->upstream : NULL; u; u = u->sib)
        if (u->state != FA_FUT_PENDING)
            fa__fut_post(u);
    return 0;
}

static void fill_none(fa_value_t *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        values[i] = FA_VALUE_NONE;
}

int fa_when_all(fa_sched_t *sched, const fa_future_t *in, size_t n, fa_value_t *values,
                fa_future_t *out)
{
    fa_fut_t *c;
    bool any_settled;
    int rc = comb_new(sched, FA__K_ALL, in, n, &c, &any_settled);
    if (rc)
        return rc;
    fill_none(values, n);
    c->aux->comb.values = values;
    if (n == 0) {
        finish(c, fa_ok(FA_VALUE_PTR(values, 0)));
        *out = (fa_future_t){._p = c, ._gen = c->gen};
        return 0;
    }
    return comb_start(c, any_settled, out);
}

static int any_or_race(fa_sched_t *sched, uint8_t kind, const fa_future_t *in, size_t n,
                       size_t *winner, fa_future_t *out)
{
    fa_fut_t *c;
    bool any_settled;
    int rc = comb_new(sched, kind, in, n, &c, &any_settled);
    if (rc)
        return rc;
    c->aux->comb.winner = winner;
    if (n == 0) {
        finish(c, fa_fail(FA_ERROR_STATIC(-EINVAL, fa_err_empty)));
        *out = (fa_future_t){._p = c, ._gen = c->gen};
        return 0;
    }
    return comb_start(c, any_settled, out);
}

int fa_when_any(fa_sched_t *sched, const fa_future_t *in, size_t n, size_t *winner,
                fa_future_t *out)
{
    return any_or_race(sched, FA__K_ANY, in, n, winner, out);
}

int fa_race(fa_sched_t *sched, const fa_future_t *in, size_t n, size_t *winner, fa_future_t *out)
{
    return any_or_race(sched, FA__K_RACE, in, n, winner, out);
}

int fa_when_some(fa_sched_t *sched, const fa_future_t *in, size_t n, size_t k,
                 fa_value_t *values, fa_future_t *out)
{
    if (k > n)
        return -EINVAL;
    fa_fut_t *c;
    bool any_settled;
    int rc = comb_new(sched, FA__K_SOME, in, n, &c, &any_settled);
    if (rc)
        return rc;
    fill_none(values, n);
    c->aux->comb.values = values;
    c->aux->comb.k = (uint32_t)k;
    if (k == 0) {
        finish(c, fa_ok(FA_VALUE_PTR(values, n)));
        *out = (fa_future_t){._p = c, ._gen = c->gen};
        return 0;
    }
    return comb_start(c, any_settled, out);
}

/* map and filter: a per-input callback, results in the caller's values array. */
static int comb_with_fn(fa_sched_t *sched, uint8_t kind, const fa_future_t *in, size_t n,
                        void (*fn)(void), void *data, fa_value_t *values, fa_future_t *out)
{
    fa_fut_t *c;
    bool any_settled;
    int rc = comb_new(sched, kind, in, n, &c, &any_settled);
    if (rc)
        return rc;
    fill_none(values, n);
    c->aux->comb.values = values;
    c->aux->comb.fn = fn;
    c->aux->comb.data = data;
    if (n == 0) {
        finish(c, fa_ok(FA_VALUE_PTR(values, 0)));
        *out = (fa_future_t){._p = c, ._gen = c->gen};
        return 0;
    }
    return comb_start(c, any_settled, out);
}

int fa_future_map(fa_sched_t *sched, const fa_future_t *in, size_t n, fa_map_fn fn, void *data,
                  fa_value_t *values, fa_future_t *out)
{
    return comb_with_fn(sched, FA__K_MAP, in, n, (void (*)(void))fn, data, values, out);
}

int fa_future_filter(fa_sched_t *sched, const fa_future_t *in, size_t n, fa_filter_fn pred,
                     void *data, fa_value_t *values, fa_future_t *out)
{
    return comb_with_fn(sched, FA__K_FILTER, in, n, (void (*)(void))pred, data, values, out);
}

int fa_future_reduce(fa_sched_t *sched, const fa_future_t *in, size_t n, fa_reduce_fn fn,
                     void *data, fa_value_t init, fa_future_t *out)
{
    fa_fut_t *c;
    bool any_settled;
    int rc = comb_new(sched, FA__K_REDUCE, in, n, &c, &any_settled);
    if (rc)
        return rc;
    c->aux->comb.fn = (void (*)(void))fn;
    c->aux->comb.data = data;
    c->aux->comb.acc = init;
    if (n == 0) {
        finish(c, fa_ok(init));
        *out = (fa_future_t){._p = c, ._gen = c->gen};
        return 0;
    }
    return comb_start(c, any_settled, out);
}

/* A user function's result that is not a plain value ends a map or reduce with an error. */
static fa_result_t must_be_value(fa_result_t r)
{
    if (r.state == FA_FUT_FOLLOW) {
        fa__discard(r);
        return fa_fail(FA_ERROR_STATIC(-EINVAL, "map/reduce function returned a future"));
    }
    return r;
}

/* Runs from the drain when input s of combinator c has settled. s stays linked (flagged
 * delivered) until finish drops the whole list, so it is read before anything else happens. */
void fa__comb_deliver(fa_fut_t *c, fa_fut_t *s)
{
    fa__aux_t *a = c->aux;
    uint32_t idx = s->idx;
    bool ok = s->state == FA_FUT_RESOLVED;
    fa_result_t in = ok ? fa_ok(s->value) : fa_fail(s->error);
    fa_result_t r;
    s->flags |= FA__F_DELIVERED;

    switch (c->kind) {
    case FA__K_ALL:
        if (!ok)
            finish(c, in);
        else if (a->comb.values[idx] = in.value, ++a->comb.ok == a->comb.n)
            finish(c, fa_ok(FA_VALUE_PTR(a->comb.values, a->comb.n)));
        return;
    case FA__K_ANY:
    case FA__K_RACE:
        if (ok || c->kind == FA__K_RACE) {
            if (a->comb.winner)
                *a->comb.winner = idx;
            finish(c, in);
        } else if (++a->comb.failed == a->comb.n) {
            finish(c, in);
        }
        return;
    case FA__K_SOME:
        if (ok) {
            a->comb.values[idx] = in.value;
            if (++a->comb.ok == a->comb.k)
                finish(c, fa_ok(FA_VALUE_PTR(a->comb.values, a->comb.n)));
        } else if (++a->comb.failed > a->comb.n - a->comb.k) {
            finish(c, in);
        }
        return;
    case FA__K_MAP:
        if (!ok) {
            finish(c, in);
            return;
        }
        c->flags |= FA__F_RUNNING;
        r = ((fa_map_fn)a->comb.fn)(c->sched, a->comb.data, idx, in.value);
        c->flags &= (uint8_t)~FA__F_RUNNING;
        if (fa__cancelled_while_running(c, r))
            return;
        r = must_be_value(r);
        if (r.state != FA_FUT_RESOLVED)
            finish(c, r);
        else if (a->comb.values[idx] = r.value, ++a->comb.ok == a->comb.n)
            finish(c, fa_ok(FA_VALUE_PTR(a->comb.values, a->comb.n)));
        return;
    case FA__K_FILTER: {
        if (!ok) {
            finish(c, in);
            return;
        }
        c->flags |= FA__F_RUNNING;
        bool keep = ((fa_filter_fn)a->comb.fn)(c->sched, a->comb.data, idx, in.value);
        c->flags &= (uint8_t)~FA__F_RUNNING;
        if (fa__cancelled_while_running(c, fa_ok(FA_VALUE_NONE)))
            return;
        a->comb.values[idx] = in.value;
        if (!keep)
            a->comb.values[idx].kind = FA__VAL_DROPPED;
        if (++a->comb.ok == a->comb.n) {
            uint32_t kept = 0;
            for (uint32_t i = 0; i < a->comb.n; i++)
                if (a->comb.values[i].kind != FA__VAL_DROPPED)
                    a->comb.values[kept++] = a->comb.values[i];
            for (uint32_t i = kept; i < a->comb.n; i++)
                a->comb.values[i] = FA_VALUE_NONE;
            finish(c, fa_ok(FA_VALUE_PTR(a->comb.values, kept)));
        }
        return;
    }
    case FA__K_REDUCE:
        if (!ok) {
            finish(c, in);
            return;
        }
        c->flags |= FA__F_RUNNING;
        r = ((fa_reduce_fn)a->comb.fn)(c->sched, a->comb.data, a->comb.acc, idx, in.value);
        c->flags &= (uint8_t)~FA__F_RUNNING;
        if (fa__cancelled_while_running(c, r))
            return;
        r = must_be_value(r);
        if (r.state != FA_FUT_RESOLVED)
            finish(c, r);
        else if (a->comb.acc = r.value, ++a->comb.ok == a->comb.n)
            finish(c, fa_ok(a->comb.acc));
        return;
    default:
        assert(!"not a combinator");
    }
}
