/*
 * agg.h — the event aggregator: totals, exact sum and exact unique users, shared by every worker.
 *
 * Lifetime: everything lives in ONE shared mapping (MAP_SHARED|MAP_ANONYMOUS|MAP_NORESERVE) that
 * the master creates before forking; workers inherit it at the same address, so the fa_agg_t
 * pointer is valid in every process. Untouched pages cost nothing. The master owns it and unmaps
 * it with fa_agg_destroy at exit; the state outlives any worker.
 *
 * Writers: each worker is given one shard (fa_agg_shard_claim, by the master) and is the only
 * process writing it. fa_agg_add takes no lock shared with other workers, allocates nothing and
 * makes no system call. The unique-user set is a lock-free open-addressing table of 64-bit words
 * (hash tag | offset of the key record in a shared bump arena); a key is copied into the arena
 * first and published by one CAS of its slot from 0, so nobody ever sees a half-written key.
 * Each worker also keeps a private cache of short keys it knows are in the set
 * (fa_agg_worker_init), so a returning key costs one private cache line instead of two shared
 * misses; fa_agg_add_many prefetches ahead for batches.
 *
 * Crash safety: an event is counted entirely (total, sum, new user) or not at all, even when its
 * worker is killed with SIGKILL at any instruction. Each shard keeps two copies of its counters;
 * its sequence number is odd while an event is in flight and its parity picks the committed copy.
 * A small journal records the event's value and the table slot it may have claimed, so
 * fa_agg_recover_shard (run by the master once the owner is dead) rolls the event forward when
 * its key made it into the table and back otherwise.
 *
 * Readers (any process, any time) never block on a writer, dead or alive: they sum the shards'
 * committed copies with a seqlock-style check and add the "base" restored from a snapshot.
 * A reader sees every event whose fa_agg_add returned before the read started (release/acquire).
 *
 * Capacity: fa_agg_create sizes the table for `capacity` distinct keys (load factor <= 0.75) and
 * the arena for capacity * FA_AGG_ARENA_PER_KEY bytes of key records (each record is 11 bytes of
 * header + the key). When either is exhausted a new key is refused with -ENOSPC and nothing is
 * counted: the caller answers 503. A worker killed in the middle of inserting a new key leaks that
 * key's reservation (one key of capacity and one record of arena) until the next reset.
 */
#ifndef FA_AGG_H
#define FA_AGG_H

#include "fa.h"

#include <sys/types.h>

/** Longest key fa_agg_add accepts (bytes); longer keys return -EINVAL. */
#define FA_AGG_KEY_MAX 255

/** Most shards an aggregator can have. */
#define FA_AGG_SHARDS_MAX 256

/** Arena bytes reserved per key of capacity (virtual: only what is used is touched). */
#define FA_AGG_ARENA_PER_KEY 96

/** Largest capacity fa_agg_create accepts. */
#define FA_AGG_CAPACITY_MAX (1ULL << 31)

/** The shared aggregator. Opaque; lives in the shared mapping. */
typedef struct fa_agg fa_agg_t;

/** A consistent view of the aggregate (a copy: owned by the caller). */
typedef struct {
    uint64_t total;  /* accepted events */
    uint64_t unique; /* distinct keys */
    __int128 sum;    /* in nanos (decimal.h) */
} fa_agg_totals_t;

/**
 * Maps and initialises an aggregator for `capacity` distinct keys and `nshards` shards (1 to
 * FA_AGG_SHARDS_MAX; give it more than the worker count, e.g. 4x, so old and new workers can run
 * side by side during a reload). Master only, before fork. Returns NULL with a message in err
 * (errlen bytes, may be 0) on bad arguments or when the mapping fails.
 */
fa_agg_t *fa_agg_create(size_t capacity, unsigned nshards, char *err, size_t errlen);

/** Unmaps the aggregator. Master only, after every worker has exited; a is invalid afterwards. */
void fa_agg_destroy(fa_agg_t *a);

/** Number of shards, as given to fa_agg_create. */
unsigned fa_agg_shard_count(const fa_agg_t *a);

/** Capacity in distinct keys, as given to fa_agg_create. */
size_t fa_agg_capacity(const fa_agg_t *a);

/**
 * Gives a free shard to one process: marks it taken (owner pid not known yet) and returns its
 * index, or -EBUSY when every shard is taken. Master only. Pair with fa_agg_shard_set_owner once
 * the worker is forked and fa_agg_shard_release once it has exited.
 */
int fa_agg_shard_claim(fa_agg_t *a);

/**
 * Records pid as the owner of a claimed shard. The master calls it after fork (or the worker with
 * getpid()). fa_agg_reset uses it to tell a dead writer from a slow one.
 */
void fa_agg_shard_set_owner(fa_agg_t *a, unsigned shard, pid_t pid);

/**
 * Returns a shard to the free set after its owner has exited (cleanly or not): first runs
 * fa_agg_recover_shard, so the shard is consistent before anyone else writes it. Master only.
 */
void fa_agg_shard_release(fa_agg_t *a, unsigned shard);

/**
 * Brings a shard whose owner died to a consistent state: an event left in flight is rolled
 * forward when its new key was published (or it had none) and rolled back otherwise. Idempotent,
 * a no-op for a clean shard. Call only when the owner is known to be dead (after waitpid) and
 * before the shard is reused. Returns 1 when an event was rolled forward, -1 when one was rolled
 * back, 0 when there was nothing to do. Also completes a reset abandoned by a dead process.
 */
int fa_agg_recover_shard(fa_agg_t *a, unsigned shard);

/**
 * Counts one event on `shard` (which only the calling process writes): total + 1, sum + value
 * (nanos), and unique + 1 when key (keylen bytes, borrowed for the call, arbitrary bytes) was
 * never seen since the last reset. Hot path: no allocation, no syscall, no shared lock.
 * Returns 0, -ENOSPC when the key is new and the set is full (nothing counted), or -EINVAL when
 * keylen > FA_AGG_KEY_MAX. Waits (yielding) while a fa_agg_reset is in progress.
 */
int fa_agg_add(fa_agg_t *a, unsigned shard, const char *key, size_t keylen, __int128 value_nanos);

/**
 * A key made ready ahead of its event by fa_agg_key_prepare. Caller-owned (a stack variable);
 * borrows the key bytes until fa_agg_add_prepared returns. The fields are private to agg.c.
 */
typedef struct {
    const char *_key;
    size_t _keylen;
    uint64_t _lo, _hi, _ch, _h;
    bool _have_h;
} fa_agg_key_t;

/**
 * Computes key's cache form (and, when the event will likely need it, its hash) and requests
 * from RAM the memory the event will read (its key-cache bucket, and then its table slot),
 * without waiting: for a single event, call it as soon as
 * the key is known and do other work (parsing the value) before fa_agg_add_prepared, so that the
 * cache misses of a key not seen lately overlap with that work and with each other instead of
 * following one another. Pure advice: reads nothing shared, changes nothing. Any thread.
 */
void fa_agg_key_prepare(const fa_agg_t *a, const char *key, size_t keylen, fa_agg_key_t *out);

/** Exactly fa_agg_add(a, shard, key, keylen, value_nanos) for the key that k was prepared from
 * (by fa_agg_key_prepare on the same aggregator, in the calling process). */
int fa_agg_add_prepared(fa_agg_t *a, unsigned shard, const fa_agg_key_t *k, __int128 value_nanos);

/**
 * Gives the calling process a private cache of keys it has seen in the set, so that returning
 * keys (1 to 15 bytes) are counted without touching the shared table: each worker calls it after
 * fork, before serving, for the aggregator it writes. Optional: without it fa_agg_add takes the
 * shared path every time. The cache is exact (whole keys compared), emptied by the first event
 * after a reset, and sized from the capacity (at most 4 MiB, private memory with huge pages). A
 * later call replaces the cache. Returns 0 or -errno when the mapping fails (the process simply
 * runs without a cache). Not async-signal-safe; one aggregator per process.
 */
int fa_agg_worker_init(fa_agg_t *a);

/** Unmaps the calling process's cache (a no-op without one). fa_agg_destroy calls it too. */
void fa_agg_worker_fini(fa_agg_t *a);

/** One event of a batch for fa_agg_add_many. */
typedef struct {
    const char *key; /* borrowed for the call */
    size_t keylen;
    __int128 value; /* nanos */
    int result;     /* out: what fa_agg_add would have returned for this event */
    uint32_t tag;   /* the caller's (e.g. the event's index in a batch); left untouched */
} fa_agg_item_t;

/**
 * Counts n events on shard exactly as n calls of fa_agg_add in order would (each event counted
 * entirely or not at all, even under SIGKILL; item i's outcome in items[i].result), but faster on
 * keys that miss the CPU caches: the memory each event needs is prefetched a few events ahead.
 * Returns how many events were counted. Same threads, waits and guarantees as fa_agg_add.
 */
size_t fa_agg_add_many(fa_agg_t *a, unsigned shard, fa_agg_item_t *items, size_t n);

/** Whether key was seen since the last reset. Any process; lock-free; for tests and tools. */
bool fa_agg_contains(const fa_agg_t *a, const char *key, size_t keylen);

/**
 * Reads a consistent aggregate into *out: every fa_agg_add that returned before is included. Any
 * process; never waits for a writer (a dead one included), only for a reset in progress.
 */
void fa_agg_read(const fa_agg_t *a, fa_agg_totals_t *out);

/**
 * Writes {"totalRequests":N,"uniqueUsers":U,"sum":S,"avg":A} (no spaces, NUL-terminated) into
 * buf; sum and avg as fa_dec_format / fa_dec_format_avg. Returns the length, or 0 when cap is too
 * small (FA_AGG_STATS_MAX always suffices). Any process; never scans the key table.
 */
size_t fa_agg_render_stats(const fa_agg_t *a, char *buf, size_t cap);

/** A buffer this large always holds fa_agg_render_stats output. */
#define FA_AGG_STATS_MAX 192

/**
 * Zeroes everything (counters, base, key set) atomically with respect to readers: a read that
 * starts after the reset began sees zero plus the events added after it; keys seen before count
 * as new again. Rare (admin route). It takes the maintenance lock, raises a generation flag that
 * writers check on entry (they then wait, yielding), waits for events already in flight on live
 * owners to finish (events on dead owners are discarded), clears, and lowers the flag. Callable
 * from any process that is not inside fa_agg_add; blocks the caller for the time it takes to clear
 * the table (milliseconds per million keys). Returns 0.
 */
int fa_agg_reset(fa_agg_t *a);

/**
 * Writes a snapshot of the aggregate to path: path.tmp, fsync, rename, fsync of the directory.
 * The file holds a header (magic, version, payload length, FNV-1a 64 checksum of the payload),
 * the totals folded into one record, and every key counted in them. Master only, on a timer and on
 * graceful stop; it never blocks writers (consistent reads, retried if a reset intervenes).
 * Returns 0, or -1 with a message in err.
 */
int fa_agg_snapshot_write(const fa_agg_t *a, const char *path, char *err, size_t errlen);

/**
 * Loads a snapshot into a fresh aggregator (nothing added yet), before fork: the totals become the
 * base that readers add, the keys are inserted into the set. Returns 1 when loaded, 0 when path
 * does not exist (err says "no snapshot"), -1 with a clear message in err when the file is
 * unreadable, foreign, of another version, truncated, corrupt, or larger than the capacity; the
 * daemon then refuses to start (unless told to discard the snapshot). Every length in the file is
 * bounds-checked; nothing in it is trusted.
 */
int fa_agg_snapshot_load(fa_agg_t *a, const char *path, char *err, size_t errlen);

/** Bytes of the mapping touched so far (header, shards, table pages in use, arena used). */
size_t fa_agg_memory_used(const fa_agg_t *a);

#endif
