/*
 * counters.c — see counters.h.
 */
#include "counters.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define relaxed memory_order_relaxed
#define RETRIES 100000u /* reads retried while a fold is in progress */

static_assert(sizeof(fa_counters_slot_t) % FA_CACHELINE == 0, "slots never share a cache line");
static_assert(offsetof(fa_counters_slot_t, conns_total) == FA_CACHELINE,
              "response counters fill the first line");
static_assert(offsetof(fa_counters_slot_t, latency) == 2 * FA_CACHELINE,
              "the histogram starts on its own line");

struct fa_counters {
    /* Immutable after fa_counters_create. */
    size_t map_len;
    double start_mono, start_real;
    /* Odd while the master folds a slot into `retired`. */
    _Alignas(FA_CACHELINE) _Atomic uint64_t retire_seq;
    fa_counters_slot_t retired;
    fa_counters_slot_t slots[FA_COUNTERS_SLOTS];
};

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

fa_counters_t *fa_counters_create(char *err, size_t errlen)
{
    size_t len = FA_ALIGN_UP(sizeof(fa_counters_t), 4096);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
        if (errlen)
            snprintf(err, errlen, "cannot map %zu bytes for the counters: %s", len,
                     strerror(errno));
        return NULL;
    }
    /* A fresh anonymous mapping is zero: every slot starts empty. */
    fa_counters_t *c = p;
    c->map_len = len;
    c->start_mono = clock_s(CLOCK_MONOTONIC);
    c->start_real = clock_s(CLOCK_REALTIME);
    return c;
}

void fa_counters_destroy(fa_counters_t *c)
{
    if (c)
        (void)munmap(c, c->map_len); /* nothing useful to do if this fails at exit */
}

fa_counters_slot_t *fa_counters_slot_open(fa_counters_t *c, unsigned index, unsigned worker,
                                          unsigned generation)
{
    assert(index < FA_COUNTERS_SLOTS);
    fa_counters_slot_t *s = &c->slots[index];
    atomic_store_explicit(&s->worker, worker, relaxed);
    atomic_store_explicit(&s->generation, generation, relaxed);
    atomic_store_explicit(&s->pid, 0, relaxed);
    atomic_store_explicit(&s->live, 1, memory_order_release);
    return s;
}

fa_counters_slot_t *fa_counters_slot(fa_counters_t *c, unsigned index)
{
    assert(index < FA_COUNTERS_SLOTS);
    return &c->slots[index];
}

void fa_counters_slot_set_pid(fa_counters_slot_t *s, pid_t pid)
{
    atomic_store_explicit(&s->pid, (int32_t)pid, relaxed);
}

static void move(_Atomic uint64_t *to, _Atomic uint64_t *from)
{
    uint64_t v = atomic_load_explicit(from, relaxed);
    if (v) {
        fa__counters_inc(to, v);
        atomic_store_explicit(from, 0, relaxed);
    }
}

/*
 * Runs in the master after waitpid returned the slot's owner, so nobody writes the slot. The
 * sequence counter tells readers to retry: while it is odd a figure may sit in both places or in
 * neither.
 */
void fa_counters_slot_retire(fa_counters_t *c, unsigned index)
{
    assert(index < FA_COUNTERS_SLOTS);
    fa_counters_slot_t *s = &c->slots[index], *r = &c->retired;
    if (!atomic_load_explicit(&s->live, relaxed))
        return;
    uint64_t seq = atomic_load_explicit(&c->retire_seq, relaxed);
    atomic_store_explicit(&c->retire_seq, seq + 1, relaxed);
    atomic_thread_fence(memory_order_release);
    move(&r->requests, &s->requests);
    for (unsigned i = 0; i < 6; i++)
        move(&r->responses[i], &s->responses[i]);
    move(&r->latency_sum_us, &s->latency_sum_us);
    move(&r->conns_total, &s->conns_total);
    move(&r->accept_errors, &s->accept_errors);
    atomic_store_explicit(&s->conns_active, 0, relaxed);
    atomic_store_explicit(&s->memory, 0, relaxed);
    for (unsigned i = 0; i < FA_LAT_BUCKETS; i++)
        move(&r->latency[i], &s->latency[i]);
    atomic_store_explicit(&s->live, 0, relaxed);
    atomic_store_explicit(&s->pid, 0, relaxed);
    atomic_store_explicit(&c->retire_seq, seq + 2, memory_order_release);
}

uint64_t fa_counters_lat_upper(unsigned b)
{
    if (b < 2 * FA_LAT_SUB)
        return b;
    unsigned k = b - 2 * FA_LAT_SUB;
    unsigned shift = k / FA_LAT_SUB + 1; /* exponent - FA_LAT_SUB_BITS */
    uint64_t lower = (uint64_t)(FA_LAT_SUB + k % FA_LAT_SUB) << shift;
    return lower + (1ULL << shift) - 1;
}

static uint64_t ld(const _Atomic uint64_t *x)
{
    return atomic_load_explicit(x, relaxed);
}

/* Adds slot s into out; its per-worker line too when live. */
static void add_slot(const fa_counters_slot_t *s, fa_counters_view_t *out, bool live)
{
    uint64_t requests = ld(&s->requests);
    out->requests += requests;
    for (unsigned i = 0; i < 6; i++)
        out->responses[i] += ld(&s->responses[i]);
    out->latency_sum_us += ld(&s->latency_sum_us);
    out->conns_total += ld(&s->conns_total);
    out->conns_active += ld(&s->conns_active);
    out->accept_errors += ld(&s->accept_errors);
    out->memory += ld(&s->memory);
    for (unsigned i = 0; i < FA_LAT_BUCKETS; i++)
        out->latency[i] += ld(&s->latency[i]);
    if (live)
        out->workers[out->nworkers++] = (fa_counters_worker_t){
            .worker = atomic_load_explicit(&s->worker, relaxed),
            .generation = atomic_load_explicit(&s->generation, relaxed),
            .pid = atomic_load_explicit(&s->pid, relaxed),
            .requests = requests,
            .conns_active = ld(&s->conns_active),
            .conns_total = ld(&s->conns_total),
            .memory = ld(&s->memory),
        };
}

/*
 * Sums every live slot and the retired totals. A fold by the master during the pass (a worker
 * was reaped) makes it start again; that is rare and bounded by how often workers die.
 */
void fa_counters_read(const fa_counters_t *c, fa_counters_view_t *out)
{
    /* The bound only matters if the master died in the middle of a fold. */
    for (unsigned tries = 0;; tries++) {
        uint64_t seq = atomic_load_explicit(&c->retire_seq, memory_order_acquire);
        memset(out, 0, offsetof(fa_counters_view_t, workers));
        if ((seq & 1) && tries < RETRIES)
            continue;
        add_slot(&c->retired, out, false);
        for (unsigned i = 0; i < FA_COUNTERS_SLOTS; i++)
            if (atomic_load_explicit(&c->slots[i].live, memory_order_acquire))
                add_slot(&c->slots[i], out, true);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&c->retire_seq, relaxed) == seq || tries >= RETRIES)
            break;
    }
    for (unsigned b = 0; b < FA_LAT_BUCKETS; b++)
        out->latency_count += out->latency[b];
    out->uptime = clock_s(CLOCK_MONOTONIC) - c->start_mono;
    out->start_time = c->start_real;
}

uint64_t fa_counters_requests(const fa_counters_t *c)
{
    for (unsigned tries = 0;; tries++) {
        uint64_t seq = atomic_load_explicit(&c->retire_seq, memory_order_acquire);
        if ((seq & 1) && tries < RETRIES)
            continue;
        uint64_t n = ld(&c->retired.requests);
        for (unsigned i = 0; i < FA_COUNTERS_SLOTS; i++)
            if (atomic_load_explicit(&c->slots[i].live, memory_order_acquire))
                n += ld(&c->slots[i].requests);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&c->retire_seq, relaxed) == seq || tries >= RETRIES)
            return n;
    }
}

uint64_t fa_counters_quantile(const uint64_t *latency, uint64_t count, double q)
{
    if (count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)count);
    if ((double)rank < q * (double)count)
        rank++; /* ceil */
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < FA_LAT_BUCKETS; b++) {
        seen += latency[b];
        if (seen >= rank)
            return fa_counters_lat_upper(b);
    }
    return fa_counters_lat_upper(FA_LAT_BUCKETS - 1);
}
