/*
 * agg_internal.h — the aggregator's shared-memory layout, shared by agg.c and agg_snapshot.c only.
 *
 * The mapping is laid out as: struct fa_agg | shards[nshards] | table[nslots] | arena.
 *
 * A key record in the arena is: u8 key length | u16 shard (little endian) | u64 stamp | key bytes.
 * The shard is the writer that inserted it (FA__AGG_BASE_SHARD for keys restored from a snapshot)
 * and the stamp that shard's (odd) sequence number during the insert: a snapshot includes a key
 * exactly when its inserting event was committed in the totals it read, so keys and counts agree.
 *
 * A table word is (24-bit hash tag << 40) | arena offset; offsets start at 1 so a used word is
 * never 0.
 */
#ifndef FA_AGG_INTERNAL_H
#define FA_AGG_INTERNAL_H

#include "agg.h"

#include <stdatomic.h>

#define FA__AGG_REC_HDR    11
#define FA__AGG_BASE_SHARD 0xFFFFu
#define FA__AGG_OFF_BITS   40
#define FA__AGG_OFF_MASK   ((1ULL << FA__AGG_OFF_BITS) - 1)

/* Shard owners: FREE, CLAIMED (pid not known yet), or a pid. */
#define FA__AGG_OWNER_FREE    0
#define FA__AGG_OWNER_CLAIMED (-1)

/* One committed copy of a shard's counters. The sum is an __int128 split in two halves. */
typedef struct {
    _Atomic uint64_t total, unique, sum_lo, sum_hi;
} fa__agg_cell_t;

/*
 * One shard: written by one process. seq is odd while an event is in flight; cell[(seq >> 1) & 1]
 * is the committed copy and the writer fills the other one. The j_ fields are the journal of the
 * event in flight, read only by fa_agg_recover_shard.
 */
typedef struct {
    _Alignas(FA_CACHELINE) _Atomic uint64_t seq;
    _Atomic uint64_t j_state;    /* 0: journal incomplete (roll back), 1: complete */
    _Atomic uint64_t j_has_cand; /* 1: the event may have published j_word at j_slot */
    _Atomic uint64_t j_slot;
    _Atomic uint64_t j_word;
    _Atomic uint64_t j_val_lo, j_val_hi;
    _Alignas(FA_CACHELINE) fa__agg_cell_t cell[2];
    _Alignas(FA_CACHELINE) _Atomic int32_t owner; /* cold: claims, reset, recovery */
} fa__agg_shard_t;

static_assert(offsetof(fa__agg_shard_t, cell) == FA_CACHELINE, "cells start a cache line");
static_assert(sizeof(fa__agg_cell_t) * 2 == FA_CACHELINE, "both cells share one cache line");
static_assert(offsetof(fa__agg_shard_t, owner) == 2 * FA_CACHELINE, "owner on its own line");
static_assert(sizeof(fa__agg_shard_t) == 3 * FA_CACHELINE, "a shard is three cache lines");

struct fa_agg {
    /* Immutable after fa_agg_create. Pointers are valid in every forked process. */
    uint64_t magic;
    size_t capacity, nslots, arena_size, map_len;
    uint64_t mask, seed;
    unsigned nshards;
    fa__agg_shard_t *shards;
    _Atomic uint64_t *table;
    unsigned char *arena;

    _Alignas(FA_CACHELINE) _Atomic uint64_t gen; /* odd while a reset runs */
    _Atomic int32_t maint;                       /* pid holding the maintenance lock, 0 free */

    _Alignas(FA_CACHELINE) _Atomic uint64_t nkeys; /* keys reserved (>= keys in the table) */
    _Alignas(FA_CACHELINE) _Atomic uint64_t arena_used;
    _Alignas(FA_CACHELINE) fa__agg_cell_t base; /* restored from a snapshot; changed only
                                                   before fork or under a reset */
};

static_assert(offsetof(struct fa_agg, gen) % FA_CACHELINE == 0, "gen on its own line");
static_assert(offsetof(struct fa_agg, nkeys) % FA_CACHELINE == 0, "nkeys on its own line");
static_assert(offsetof(struct fa_agg, arena_used) % FA_CACHELINE == 0, "arena_used own line");

/* What the calling process's key cache did since fa_agg_worker_init (tests and benchmarks). */
typedef struct {
    uint64_t hits, misses, bypass, flushes;
    size_t bytes; /* size of the bucket array (resident once used: huge pages) */
} fa__agg_cache_stats_t;

/* Copies the calling process's cache counters; all zero when it has no cache. */
void fa__agg_cache_stats(fa__agg_cache_stats_t *out);

/* Hash of a key with the aggregator's seed. */
uint64_t fa__agg_hash(const fa_agg_t *a, const char *key, size_t keylen);

/* Reads the totals and, when floors is not NULL, each shard's committed sequence floor (events
   with a stamp below it are in the totals). Waits while a reset runs. Returns the generation. */
uint64_t fa__agg_read_floors(const fa_agg_t *a, fa_agg_totals_t *out, uint64_t *floors);

/* Inserts a restored key (snapshot load, single-threaded, before fork). Returns 0, -EEXIST,
   -ENOSPC. */
int fa__agg_insert_base(fa_agg_t *a, const char *key, size_t keylen);

/* Clears the table, arena and all counters. Only while nothing else touches the aggregator. */
void fa__agg_clear(fa_agg_t *a);

/* Whether nothing was ever added: no keys, all counters zero. */
bool fa__agg_is_fresh(const fa_agg_t *a);

static inline __int128 fa__agg_join(uint64_t lo, uint64_t hi)
{
    return (__int128)(((unsigned __int128)hi << 64) | lo);
}

#endif
