/*
 * agg.c — the shared aggregator: shards, the lock-free unique-key set, recovery and reset.
 *
 * The protocol, in one place (agg.h has the contract, agg_internal.h the layout):
 *
 * Writer (fa_agg_add on shard S, seq = s, even):
 *   1. j_state = 0; seq = s + 1 with a seq_cst exchange; then read gen. The exchange/load pair and
 *      the resetter's store/load pair (Dekker) guarantee a reset either sees this event in flight
 *      and waits for it, or the writer sees the reset and backs out (seq = s; nothing was written).
 *   2. Look the key up. For a new key: reserve one key of capacity, bump-allocate the record in
 *      the arena and fill it (stamp s + 1), journal (value, word, slot, has_cand = 1), j_state = 1,
 *      then CAS the slot 0 -> word. A lost CAS re-reads the slot: same key means "existing"
 *      (has_cand = 0), another key means probe on (j_slot moves first).
 *      For an existing key: journal (value, has_cand = 0), j_state = 1.
 *   3. Commit: cell[next] = cell[cur] + (1, value, new ? 1 : 0); seq = s + 2 (release).
 *   -ENOSPC backs out like a reset does: seq = s, nothing counted.
 *
 * Recovery (owner dead, seq odd): j_state 0 -> roll back; has_cand and the slot holds j_word ->
 * forward with a new user; has_cand and it does not -> roll back (the key never became visible);
 * no candidate -> forward. Rolling back or forward writes cell[next] and sets seq even.
 *
 * Reader: s1 = seq (acquire); read cell[(s1 >> 1) & 1]; s2 = seq. That copy is rewritten only by
 * the event with seq floor(s1) + 3, so the read is good while s2 <= floor(s1) + 2. A dead writer
 * leaves seq odd forever and readers keep reading the committed copy: they never wait.
 */
#include "agg_internal.h"
#include "decimal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define AGG_MAGIC 0x4641414747303031ULL /* "FAAGG001" */

#define relaxed memory_order_relaxed
#define acquire memory_order_acquire
#define release memory_order_release
#define seq_cst memory_order_seq_cst

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (errlen)
        snprintf(err, errlen, "%s", msg);
}

/* ---- hashing ----------------------------------------------------------------------------------
 */

static uint64_t fmix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/*
 * A seeded multiply-mix hash over 8-byte words. The seed is random per aggregator, so a client
 * cannot precompute keys that collide in the table (the snapshot stores keys, not hashes).
 */
uint64_t fa__agg_hash(const fa_agg_t *a, const char *key, size_t keylen)
{
    const uint64_t k1 = 0x9e3779b97f4a7c15ULL;
    uint64_t h = a->seed ^ (keylen * k1);
    size_t n = keylen;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, key, 8);
        h = (h ^ fmix64(w + k1)) * k1;
        h = (h << 29) | (h >> 35);
        key += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, key, n);
    h ^= fmix64(w ^ ((uint64_t)n << 56) ^ k1);
    return fmix64(h);
}

static uint32_t hash_tag(uint64_t h)
{
    return (uint32_t)(h >> FA__AGG_OFF_BITS);
}

static uint32_t word_tag(uint64_t w)
{
    return (uint32_t)(w >> FA__AGG_OFF_BITS);
}

/* ---- create / destroy --------------------------------------------------------------------------
 */

static size_t page_up(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return FA_ALIGN_UP(n, page);
}

/*
 * Runs in the master before fork. The table is sized for a load factor of at most 0.75 so probe
 * sequences stay short and always end at an empty slot. The arena gets one spare maximal record
 * of slack at its end, so a stale word read during a reset can never point outside the mapping.
 */
fa_agg_t *fa_agg_create(size_t capacity, unsigned nshards, char *err, size_t errlen)
{
    if (capacity == 0 || capacity > FA_AGG_CAPACITY_MAX) {
        set_err(err, errlen, "aggregator capacity must be between 1 and 2^31 keys");
        return NULL;
    }
    if (nshards == 0 || nshards > FA_AGG_SHARDS_MAX) {
        set_err(err, errlen, "aggregator shard count must be between 1 and 256");
        return NULL;
    }
    size_t nslots = 16;
    while (nslots < capacity + capacity / 3 + 1)
        nslots <<= 1;
    size_t arena_size = capacity * FA_AGG_ARENA_PER_KEY + 1;
    size_t head = FA_ALIGN_UP(sizeof(struct fa_agg), FA_CACHELINE);
    size_t shards_at = head;
    size_t table_at = page_up(shards_at + nshards * sizeof(fa__agg_shard_t));
    size_t arena_at = page_up(table_at + nslots * sizeof(uint64_t));
    size_t map_len = page_up(arena_at + arena_size + FA__AGG_REC_HDR + FA_AGG_KEY_MAX);

    void *p = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        if (errlen)
            snprintf(err, errlen, "cannot map %zu bytes for the aggregator: %s", map_len,
                     strerror(errno));
        return NULL;
    }
    /* A fresh anonymous mapping is zero: every counter, slot and journal starts at 0. */
    fa_agg_t *a = p;
    a->magic = AGG_MAGIC;
    a->capacity = capacity;
    a->nslots = nslots;
    a->mask = nslots - 1;
    a->arena_size = arena_size;
    a->map_len = map_len;
    a->nshards = nshards;
    a->shards = (fa__agg_shard_t *)((char *)p + shards_at);
    a->table = (_Atomic uint64_t *)((char *)p + table_at);
    a->arena = (unsigned char *)p + arena_at;
    if (getrandom(&a->seed, sizeof(a->seed), GRND_NONBLOCK) != (ssize_t)sizeof(a->seed)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        a->seed = fmix64((uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_sec);
    }
    atomic_store_explicit(&a->arena_used, 1, relaxed); /* offset 0 would make a 0 word */
    return a;
}

void fa_agg_destroy(fa_agg_t *a)
{
    if (a)
        (void)munmap(a, a->map_len); /* nothing useful to do if this fails at exit */
}

unsigned fa_agg_shard_count(const fa_agg_t *a)
{
    return a->nshards;
}

size_t fa_agg_capacity(const fa_agg_t *a)
{
    return a->capacity;
}

size_t fa_agg_memory_used(const fa_agg_t *a)
{
    size_t arena = (size_t)atomic_load_explicit(&a->arena_used, relaxed);
    if (arena > a->arena_size)
        arena = a->arena_size;
    return (size_t)((char *)a->table - (char *)a) + a->nslots * sizeof(uint64_t) + arena;
}

/* ---- processes: liveness and the maintenance lock ----------------------------------------------
 */

static bool pid_alive(int32_t pid)
{
    if (pid == FA__AGG_OWNER_CLAIMED)
        return true; /* claimed, not started: it may start writing any moment */
    if (pid <= 0)
        return false;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

static void pause_briefly(void)
{
    (void)sched_yield(); /* only on rare paths: reset, maintenance lock */
}

static void reset_locked(fa_agg_t *a);

/*
 * Serialises reset and recovery across processes. The lock word holds the holder's pid; a holder
 * that died is robbed, and if it died in the middle of a reset (gen odd) the robber finishes it,
 * so writers waiting for the reset never wait forever.
 */
static void maint_lock(fa_agg_t *a)
{
    int32_t me = (int32_t)getpid();
    for (;;) {
        int32_t cur = 0;
        if (atomic_compare_exchange_strong_explicit(&a->maint, &cur, me, acquire, relaxed))
            break;
        if (cur == me || !pid_alive(cur)) { /* same pid: a dead holder whose pid was reused */
            if (atomic_compare_exchange_strong_explicit(&a->maint, &cur, me, acquire, relaxed))
                break;
            continue;
        }
        pause_briefly();
    }
    if (atomic_load_explicit(&a->gen, seq_cst) & 1)
        reset_locked(a);
}

static void maint_unlock(fa_agg_t *a)
{
    atomic_store_explicit(&a->maint, 0, release);
}

/*
 * Waits out a reset (rare). If the process running it died, whoever waits finishes it through the
 * maintenance lock, so neither readers nor writers can wait forever (the mapping is writable even
 * where callers hold a const pointer).
 */
static void wait_reset(const fa_agg_t *ca)
{
    fa_agg_t *a = (fa_agg_t *)ca;
    for (unsigned n = 1; atomic_load_explicit(&a->gen, acquire) & 1; n++) {
        pause_briefly();
        int32_t holder = atomic_load_explicit(&a->maint, relaxed);
        if (n % 64 == 0 && holder > 0 && !pid_alive(holder)) {
            maint_lock(a);
            maint_unlock(a);
        }
    }
}

/* ---- shards ------------------------------------------------------------------------------------
 */

int fa_agg_shard_claim(fa_agg_t *a)
{
    for (unsigned i = 0; i < a->nshards; i++) {
        int32_t expect = FA__AGG_OWNER_FREE;
        if (atomic_compare_exchange_strong_explicit(
                &a->shards[i].owner, &expect, FA__AGG_OWNER_CLAIMED, memory_order_acq_rel, relaxed))
            return (int)i;
    }
    return -EBUSY;
}

void fa_agg_shard_set_owner(fa_agg_t *a, unsigned shard, pid_t pid)
{
    atomic_store_explicit(&a->shards[shard].owner, (int32_t)pid, release);
}

void fa_agg_shard_release(fa_agg_t *a, unsigned shard)
{
    (void)fa_agg_recover_shard(a, shard); /* the outcome only matters to logs and tests */
    atomic_store_explicit(&a->shards[shard].owner, FA__AGG_OWNER_FREE, release);
}

/* Writes cell[next] = cell[cur] + delta. Only the shard's writer (or recovery, writer dead). */
static void cell_commit(fa__agg_shard_t *sh, uint64_t s, uint64_t dtotal, uint64_t dunique,
                        __int128 dsum)
{
    fa__agg_cell_t *cur = &sh->cell[(s >> 1) & 1];
    fa__agg_cell_t *next = &sh->cell[((s >> 1) & 1) ^ 1];
    __int128 sum = fa__agg_join(atomic_load_explicit(&cur->sum_lo, relaxed),
                                atomic_load_explicit(&cur->sum_hi, relaxed));
    /* Wrapping, not UB: |value| < 1e24 nanos, so 1.7e14 extreme events before it could wrap. */
    sum = (__int128)((unsigned __int128)sum + (unsigned __int128)dsum);
    atomic_store_explicit(&next->total, atomic_load_explicit(&cur->total, relaxed) + dtotal,
                          relaxed);
    atomic_store_explicit(&next->unique, atomic_load_explicit(&cur->unique, relaxed) + dunique,
                          relaxed);
    atomic_store_explicit(&next->sum_lo, (uint64_t)sum, relaxed);
    atomic_store_explicit(&next->sum_hi, (uint64_t)((unsigned __int128)sum >> 64), relaxed);
}

/*
 * Called with the maintenance lock held, owner dead. Decides from the journal whether the event
 * in flight happened (see the protocol at the top of the file) and commits accordingly.
 */
static int recover_locked(fa_agg_t *a, fa__agg_shard_t *sh)
{
    uint64_t s = atomic_load_explicit(&sh->seq, acquire);
    if (!(s & 1))
        return 0;
    bool forward = false, user = false;
    if (atomic_load_explicit(&sh->j_state, acquire) == 1) {
        if (atomic_load_explicit(&sh->j_has_cand, acquire)) {
            uint64_t slot = atomic_load_explicit(&sh->j_slot, relaxed);
            uint64_t word = atomic_load_explicit(&sh->j_word, relaxed);
            forward = user =
                slot < a->nslots && word && atomic_load_explicit(&a->table[slot], acquire) == word;
        } else {
            forward = true;
        }
    }
    __int128 v = fa__agg_join(atomic_load_explicit(&sh->j_val_lo, relaxed),
                              atomic_load_explicit(&sh->j_val_hi, relaxed));
    /* s is odd: commit as the writer would have, from the copy committed before the event. */
    cell_commit(sh, s - 1, forward, user, forward ? v : 0);
    atomic_store_explicit(&sh->j_state, 0, relaxed);
    atomic_store_explicit(&sh->seq, s + 1, release);
    return forward ? 1 : -1;
}

int fa_agg_recover_shard(fa_agg_t *a, unsigned shard)
{
    if (shard >= a->nshards)
        return 0;
    maint_lock(a);
    int rc = recover_locked(a, &a->shards[shard]);
    maint_unlock(a);
    return rc;
}

/* ---- the key set -------------------------------------------------------------------------------
 */

static bool word_has_key(const fa_agg_t *a, uint64_t w, const char *key, size_t keylen)
{
    const unsigned char *rec = a->arena + (w & FA__AGG_OFF_MASK);
    return rec[0] == keylen && memcmp(rec + FA__AGG_REC_HDR, key, keylen) == 0;
}

/*
 * Reserves one key of capacity and one record of arena, fills the record and returns the word
 * that will publish it, or 0 when either is exhausted (the reservation is given back). The
 * arena counter only grows, so once it passes the end every later allocation fails too.
 */
static uint64_t record_alloc(fa_agg_t *a, unsigned shard, uint64_t stamp, uint64_t h,
                             const char *key, size_t keylen)
{
    if (atomic_fetch_add_explicit(&a->nkeys, 1, relaxed) >= a->capacity) {
        atomic_fetch_sub_explicit(&a->nkeys, 1, relaxed);
        return 0;
    }
    size_t len = FA__AGG_REC_HDR + keylen;
    uint64_t off = atomic_fetch_add_explicit(&a->arena_used, len, relaxed);
    if (off + len > a->arena_size) {
        atomic_fetch_sub_explicit(&a->nkeys, 1, relaxed);
        return 0;
    }
    unsigned char *rec = a->arena + off;
    rec[0] = (unsigned char)keylen;
    rec[1] = (unsigned char)(shard & 0xff);
    rec[2] = (unsigned char)(shard >> 8);
    for (int i = 0; i < 8; i++)
        rec[3 + i] = (unsigned char)(stamp >> (8 * i));
    memcpy(rec + FA__AGG_REC_HDR, key, keylen);
    return ((uint64_t)hash_tag(h) << FA__AGG_OFF_BITS) | off;
}

bool fa_agg_contains(const fa_agg_t *a, const char *key, size_t keylen)
{
    if (keylen > FA_AGG_KEY_MAX)
        return false;
    uint64_t h = fa__agg_hash(a, key, keylen);
    for (uint64_t i = h & a->mask;; i = (i + 1) & a->mask) {
        uint64_t w = atomic_load_explicit(&a->table[i], acquire);
        if (w == 0)
            return false;
        if (word_tag(w) == hash_tag(h) && word_has_key(a, w, key, keylen))
            return true;
    }
}

int fa__agg_insert_base(fa_agg_t *a, const char *key, size_t keylen)
{
    uint64_t h = fa__agg_hash(a, key, keylen);
    uint64_t i = h & a->mask;
    for (;; i = (i + 1) & a->mask) {
        uint64_t w = atomic_load_explicit(&a->table[i], relaxed);
        if (w == 0)
            break;
        if (word_tag(w) == hash_tag(h) && word_has_key(a, w, key, keylen))
            return -EEXIST;
    }
    uint64_t word = record_alloc(a, FA__AGG_BASE_SHARD, 0, h, key, keylen);
    if (!word)
        return -ENOSPC;
    atomic_store_explicit(&a->table[i], word, release);
    return 0;
}

/* ---- the writer --------------------------------------------------------------------------------
 */

/*
 * The hot path, in the shard owner's process. Step numbers refer to the protocol at the top of
 * the file. Every store that recovery reads is ordered before the one that makes it meaningful
 * (j_state = 1 last, j_slot before each CAS), so a kill between any two instructions leaves a
 * journal that tells the truth.
 */
int fa_agg_add(fa_agg_t *a, unsigned shard, const char *key, size_t keylen, __int128 value_nanos)
{
    if (FA_UNLIKELY(keylen > FA_AGG_KEY_MAX))
        return -EINVAL;
    fa__agg_shard_t *sh = &a->shards[shard];
    uint64_t h = fa__agg_hash(a, key, keylen);
    uint64_t s;

    /* 1. Enter: seq odd, unless a reset is running. */
    for (;;) {
        s = atomic_load_explicit(&sh->seq, relaxed);
        atomic_store_explicit(&sh->j_state, 0, relaxed);
        atomic_exchange_explicit(&sh->seq, s + 1, seq_cst);
        if (FA_LIKELY(!(atomic_load_explicit(&a->gen, seq_cst) & 1)))
            break;
        atomic_store_explicit(&sh->seq, s, release); /* back out: no cell was touched */
        wait_reset(a);
    }

    /* 2. Find the key, or publish it. */
    uint64_t word = 0;
    bool isnew = false;
    for (uint64_t i = h & a->mask;; i = (i + 1) & a->mask) {
        uint64_t w = atomic_load_explicit(&a->table[i], acquire);
        if (w == 0) {
            if (!word) {
                word = record_alloc(a, shard, s + 1, h, key, keylen);
                if (!word) {
                    atomic_store_explicit(&sh->seq, s, release);
                    return -ENOSPC;
                }
                atomic_store_explicit(&sh->j_val_lo, (uint64_t)value_nanos, relaxed);
                atomic_store_explicit(&sh->j_val_hi,
                                      (uint64_t)((unsigned __int128)value_nanos >> 64), relaxed);
                atomic_store_explicit(&sh->j_word, word, relaxed);
                atomic_store_explicit(&sh->j_has_cand, 1, relaxed);
                atomic_store_explicit(&sh->j_slot, i, relaxed);
                atomic_store_explicit(&sh->j_state, 1, release);
            } else {
                atomic_store_explicit(&sh->j_slot, i, release);
            }
            uint64_t expect = 0;
            if (atomic_compare_exchange_strong_explicit(&a->table[i], &expect, word,
                                                        memory_order_acq_rel, acquire)) {
                isnew = true;
                break;
            }
            w = expect; /* lost the slot: to the same key, or to another one */
        }
        if (word_tag(w) == hash_tag(h) && word_has_key(a, w, key, keylen)) {
            if (word) {
                atomic_store_explicit(&sh->j_has_cand, 0, release);
                /* The record is wasted (the arena only grows); its key reservation is not. */
                atomic_fetch_sub_explicit(&a->nkeys, 1, relaxed);
            }
            break;
        }
    }
    if (!word) {
        atomic_store_explicit(&sh->j_val_lo, (uint64_t)value_nanos, relaxed);
        atomic_store_explicit(&sh->j_val_hi, (uint64_t)((unsigned __int128)value_nanos >> 64),
                              relaxed);
        atomic_store_explicit(&sh->j_has_cand, 0, relaxed);
        atomic_store_explicit(&sh->j_state, 1, release);
    }

    /* 3. Commit. */
    cell_commit(sh, s, 1, isnew, value_nanos);
    atomic_store_explicit(&sh->seq, s + 2, release);
    return 0;
}

/* ---- readers -----------------------------------------------------------------------------------
 */

/* Reads one shard's committed copy; returns the floor of the sequence it belongs to. */
static uint64_t shard_read(const fa__agg_shard_t *sh, uint64_t *total, uint64_t *unique,
                           __int128 *sum)
{
    for (;;) {
        uint64_t s1 = atomic_load_explicit(&sh->seq, acquire);
        const fa__agg_cell_t *c = &sh->cell[(s1 >> 1) & 1];
        uint64_t t = atomic_load_explicit(&c->total, relaxed);
        uint64_t u = atomic_load_explicit(&c->unique, relaxed);
        uint64_t lo = atomic_load_explicit(&c->sum_lo, relaxed);
        uint64_t hi = atomic_load_explicit(&c->sum_hi, relaxed);
        atomic_thread_fence(acquire);
        uint64_t s2 = atomic_load_explicit(&sh->seq, relaxed);
        uint64_t floor = s1 & ~1ULL;
        /* A writer backing out (seq odd, then even again) wrote no copy: s2 == floor is good. */
        if (s2 <= floor + 2) {
            *total = t;
            *unique = u;
            *sum = fa__agg_join(lo, hi);
            return floor;
        }
    }
}

uint64_t fa__agg_read_floors(const fa_agg_t *a, fa_agg_totals_t *out, uint64_t *floors)
{
    for (;;) {
        uint64_t g1 = atomic_load_explicit(&a->gen, acquire);
        if (g1 & 1) {
            wait_reset(a);
            continue;
        }
        fa_agg_totals_t t = {
            .total = atomic_load_explicit(&a->base.total, relaxed),
            .unique = atomic_load_explicit(&a->base.unique, relaxed),
            .sum = fa__agg_join(atomic_load_explicit(&a->base.sum_lo, relaxed),
                                atomic_load_explicit(&a->base.sum_hi, relaxed)),
        };
        for (unsigned i = 0; i < a->nshards; i++) {
            uint64_t st, su;
            __int128 ss;
            uint64_t floor = shard_read(&a->shards[i], &st, &su, &ss);
            if (floors)
                floors[i] = floor;
            t.total += st;
            t.unique += su;
            t.sum = (__int128)((unsigned __int128)t.sum + (unsigned __int128)ss);
        }
        atomic_thread_fence(acquire);
        if (atomic_load_explicit(&a->gen, relaxed) == g1) {
            *out = t;
            return g1;
        }
    }
}

/*
 * Readers never wait for a writer; they only wait out a reset in progress, which excludes
 * writers too, so a read that starts after the reset began sees zero plus what came after.
 */
void fa_agg_read(const fa_agg_t *a, fa_agg_totals_t *out)
{
    (void)fa__agg_read_floors(a, out, NULL);
}

size_t fa_agg_render_stats(const fa_agg_t *a, char *buf, size_t cap)
{
    fa_agg_totals_t t;
    fa_agg_read(a, &t);
    char sum[FA_DEC_FMT_MAX], avg[FA_DEC_FMT_MAX];
    fa_dec_format(t.sum, sum, sizeof(sum));
    fa_dec_format_avg(t.sum, t.total, avg, sizeof(avg));
    int n =
        snprintf(buf, cap, "{\"totalRequests\":%llu,\"uniqueUsers\":%llu,\"sum\":%s,\"avg\":%s}",
                 (unsigned long long)t.total, (unsigned long long)t.unique, sum, avg);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}

/* ---- reset -------------------------------------------------------------------------------------
 */

static void cell_zero(fa__agg_cell_t *c)
{
    atomic_store_explicit(&c->total, 0, relaxed);
    atomic_store_explicit(&c->unique, 0, relaxed);
    atomic_store_explicit(&c->sum_lo, 0, relaxed);
    atomic_store_explicit(&c->sum_hi, 0, relaxed);
}

void fa__agg_clear(fa_agg_t *a)
{
    for (unsigned i = 0; i < a->nshards; i++) {
        fa__agg_shard_t *sh = &a->shards[i];
        cell_zero(&sh->cell[0]);
        cell_zero(&sh->cell[1]);
        atomic_store_explicit(&sh->j_state, 0, relaxed);
    }
    for (size_t i = 0; i < a->nslots; i++)
        atomic_store_explicit(&a->table[i], 0, relaxed);
    cell_zero(&a->base);
    atomic_store_explicit(&a->nkeys, 0, relaxed);
    atomic_store_explicit(&a->arena_used, 1, relaxed);
}

bool fa__agg_is_fresh(const fa_agg_t *a)
{
    if (atomic_load_explicit(&a->nkeys, relaxed) != 0 ||
        atomic_load_explicit(&a->arena_used, relaxed) != 1)
        return false;
    fa_agg_totals_t t;
    fa_agg_read(a, &t);
    return t.total == 0 && t.unique == 0 && t.sum == 0;
}

/*
 * With the maintenance lock held. Raises gen (odd) so new writers back out and wait, waits for
 * events in flight on live owners (a dead owner's event is discarded with everything else), clears
 * everything, and lowers gen. Also finishes a reset whose process died (gen already odd).
 */
static void reset_locked(fa_agg_t *a)
{
    uint64_t g = atomic_load_explicit(&a->gen, seq_cst);
    if (!(g & 1)) {
        g++;
        atomic_store_explicit(&a->gen, g, seq_cst);
    }
    for (unsigned i = 0; i < a->nshards; i++) {
        fa__agg_shard_t *sh = &a->shards[i];
        for (;;) {
            uint64_t s = atomic_load_explicit(&sh->seq, seq_cst);
            if (!(s & 1))
                break;
            if (!pid_alive(atomic_load_explicit(&sh->owner, acquire))) {
                atomic_store_explicit(&sh->seq, s + 1, release); /* the copies are zeroed below */
                break;
            }
            pause_briefly();
        }
    }
    fa__agg_clear(a);
    atomic_store_explicit(&a->gen, g + 1, seq_cst);
}

int fa_agg_reset(fa_agg_t *a)
{
    maint_lock(a);
    reset_locked(a);
    maint_unlock(a);
    return 0;
}
