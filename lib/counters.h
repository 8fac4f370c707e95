/*
 * counters.h — the server's operational counters: per-worker request, response, connection and
 * latency figures that any worker can read (for GET /stats?server=1 and GET /metrics) and the
 * master sums for its systemd STATUS= line.
 *
 * Lifetime: ONE shared anonymous mapping (MAP_SHARED|MAP_ANONYMOUS|MAP_NORESERVE) that the master
 * creates before forking, like the aggregator; workers inherit it at the same address. The master
 * owns it and unmaps it with fa_counters_destroy at exit. Untouched pages cost nothing.
 *
 * Writers: the mapping holds FA_COUNTERS_SLOTS slots, one per master process entry. The master
 * gives a slot to a worker process before forking it (fa_counters_slot_open) and only that
 * process writes it, with relaxed atomic loads and stores (single writer: no read-modify-write
 * instruction, no lock, no system call). Every counter sits in a slot aligned to a cache line, so
 * two workers never share one. When the worker has exited, the master folds the slot into a
 * "retired" slot and zeroes it (fa_counters_slot_retire) under a sequence counter, so the totals
 * only grow across respawns and reloads while the slot is reused.
 *
 * Readers (any process, any time) never block: fa_counters_read sums the live slots and the
 * retired one, retrying if the master folded a slot meanwhile. Figures of a live slot are read
 * without a snapshot of the whole slot, so a reader may see a response counted but not yet its
 * latency: harmless for monitoring.
 *
 * Latency is kept in microseconds in an HDR-style log-linear histogram: exact below 64 us, then 32
 * sub-buckets per power of two (a bucket is at most 1/32 = 3.1% wide), up to 2^38 us (76 hours).
 */
#ifndef FA_COUNTERS_H
#define FA_COUNTERS_H

#include "fa.h"

#include <stdatomic.h>
#include <sys/types.h>

/** Number of slots: as many as the master has process entries. */
#define FA_COUNTERS_SLOTS 512

/** Latency histogram geometry (see the file comment). */
#define FA_LAT_SUB_BITS 5
#define FA_LAT_SUB (1u << FA_LAT_SUB_BITS)
#define FA_LAT_MAX_EXP 38
#define FA_LAT_BUCKETS (2 * FA_LAT_SUB + (FA_LAT_MAX_EXP - FA_LAT_SUB_BITS - 1) * FA_LAT_SUB)

/**
 * One worker process's counters. Written by that process only (hot fields) and by the master
 * while no process owns it (identity fields, retire). Read by anyone.
 */
typedef struct fa_counters_slot {
    /* hot: touched by every response */
    _Alignas(FA_CACHELINE) _Atomic uint64_t requests; /* responses produced */
    _Atomic uint64_t responses[6];   /* by status class: [1] 1xx ... [5] 5xx, [0] other */
    _Atomic uint64_t latency_sum_us; /* sum of the latencies, for averages */
    /* warm: refreshed at responses and on the worker's timer */
    _Alignas(FA_CACHELINE) _Atomic uint64_t conns_total;
    _Atomic uint64_t conns_active;
    _Atomic uint64_t accept_errors;
    _Atomic uint64_t memory; /* bytes held for connections (worker.h mem), on the timer */
    /* cold: identity, written by the master before fork and by the worker once at start */
    _Atomic uint32_t live;           /* 1 while a process owns the slot */
    _Atomic uint32_t worker;         /* worker slot id ("w3") */
    _Atomic uint32_t generation;     /* config generation */
    _Atomic int32_t pid;             /* 0 until the worker wrote it */
    _Alignas(FA_CACHELINE) _Atomic uint64_t latency[FA_LAT_BUCKETS];
} fa_counters_slot_t;

/** The shared region. Opaque; lives in the shared mapping. */
typedef struct fa_counters fa_counters_t;

/** Per-worker figures in a view. */
typedef struct {
    unsigned worker, generation;
    int pid;
    uint64_t requests, conns_active, conns_total, memory;
} fa_counters_worker_t;

/**
 * A summed view of the counters, a copy owned by the caller (about 30 KB: allocate it from a pool
 * or the heap, not the stack of a deep call).
 */
typedef struct {
    double uptime;     /* seconds since fa_counters_create */
    double start_time; /* Unix time of fa_counters_create */
    uint64_t requests, responses[6], latency_sum_us;
    uint64_t conns_total, conns_active, accept_errors;
    uint64_t memory; /* bytes held for connections by the live workers */
    uint64_t latency[FA_LAT_BUCKETS]; /* merged histogram */
    uint64_t latency_count;           /* samples in it */
    unsigned nworkers;                /* live slots, in slot order */
    fa_counters_worker_t workers[FA_COUNTERS_SLOTS];
} fa_counters_view_t;

/**
 * Maps and zeroes the region and records the start time. Master only, before fork. Returns NULL
 * with a message in err (errlen bytes) when the mapping fails.
 */
fa_counters_t *fa_counters_create(char *err, size_t errlen);

/** Unmaps the region. Master only, after every worker has exited; c is invalid afterwards. */
void fa_counters_destroy(fa_counters_t *c);

/**
 * Gives slot index (0..FA_COUNTERS_SLOTS-1, not live) to the process about to be forked for
 * worker slot `worker` of `generation`, and returns it. Master only, before fork; the child
 * writes its pid with fa_counters_slot_set_pid.
 */
fa_counters_slot_t *fa_counters_slot_open(fa_counters_t *c, unsigned index, unsigned worker,
                                          unsigned generation);

/** Slot index (0..FA_COUNTERS_SLOTS-1), live or not. Any process. */
fa_counters_slot_t *fa_counters_slot(fa_counters_t *c, unsigned index);

/** Records the owner's pid (the worker itself, once at start). */
void fa_counters_slot_set_pid(fa_counters_slot_t *s, pid_t pid);

/**
 * Folds slot index into the retired totals and zeroes it, so it can be given again. Master only,
 * once the owning process has been reaped (nobody writes the slot any more). No-op if not live.
 */
void fa_counters_slot_retire(fa_counters_t *c, unsigned index);

/** The histogram bucket of a latency of us microseconds. */
static inline unsigned fa_counters_lat_bucket(uint64_t us)
{
    if (us < 2 * FA_LAT_SUB)
        return (unsigned)us;
    unsigned e = 63u - (unsigned)__builtin_clzll(us); /* floor(log2 us) >= FA_LAT_SUB_BITS + 1 */
    if (e >= FA_LAT_MAX_EXP)
        return FA_LAT_BUCKETS - 1;
    unsigned sub = (unsigned)(us >> (e - FA_LAT_SUB_BITS)) & (FA_LAT_SUB - 1);
    return 2 * FA_LAT_SUB + (e - FA_LAT_SUB_BITS - 1) * FA_LAT_SUB + sub;
}

/** The largest latency (us) that falls in bucket b: what a percentile in b reports. */
uint64_t fa_counters_lat_upper(unsigned b);

/* Single-writer increment: a relaxed load and store, never a locked instruction. */
static inline void fa__counters_inc(_Atomic uint64_t *x, uint64_t by)
{
    atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

/** Counts one response of status. Owner process only; hot path: no lock, no system call. */
static inline void fa_counters_count(fa_counters_slot_t *s, int status)
{
    fa__counters_inc(&s->requests, 1);
    fa__counters_inc(&s->responses[status >= 100 && status < 600 ? status / 100 : 0], 1);
}

/** Adds one latency observation of latency_s seconds to the histogram. Owner process only. */
static inline void fa_counters_observe(fa_counters_slot_t *s, double latency_s)
{
    uint64_t us = latency_s > 0 ? (uint64_t)(latency_s * 1e6) : 0;
    fa__counters_inc(&s->latency_sum_us, us);
    fa__counters_inc(&s->latency[fa_counters_lat_bucket(us)], 1);
}

/**
 * Counts one response of status that took latency_s seconds (from its first byte to the
 * response): fa_counters_count and fa_counters_observe at once.
 */
static inline void fa_counters_record(fa_counters_slot_t *s, int status, double latency_s)
{
    fa_counters_count(s, status);
    fa_counters_observe(s, latency_s);
}

/** Publishes the connection figures (owner process only; plain relaxed stores). */
static inline void fa_counters_set_conns(fa_counters_slot_t *s, uint64_t active, uint64_t total,
                                         uint64_t accept_errors)
{
    atomic_store_explicit(&s->conns_active, active, memory_order_relaxed);
    atomic_store_explicit(&s->conns_total, total, memory_order_relaxed);
    atomic_store_explicit(&s->accept_errors, accept_errors, memory_order_relaxed);
}

/** Publishes the bytes the worker holds for its connections (a gauge). Worker only. */
static inline void fa_counters_set_memory(fa_counters_slot_t *s, uint64_t bytes)
{
    atomic_store_explicit(&s->memory, bytes, memory_order_relaxed);
}

/** Fills out with the sums over the live slots and the retired totals. Any process. */
void fa_counters_read(const fa_counters_t *c, fa_counters_view_t *out);

/** Requests served so far (live and retired), cheaply (no histogram). Any process. */
uint64_t fa_counters_requests(const fa_counters_t *c);

/**
 * The latency (us) at quantile q (0 < q <= 1) of a merged histogram holding count samples: the
 * upper bound of the bucket holding the ceil(q * count)-th smallest sample; 0 when count is 0.
 */
uint64_t fa_counters_quantile(const uint64_t *latency, uint64_t count, double q);

#endif
