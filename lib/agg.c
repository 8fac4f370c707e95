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
 *      A hit in the process's key cache (valid for the generation read in step 1) is an existing
 *      key: the same journal, without touching the table.
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
#include <stdlib.h>
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

/* ---- the per-process key cache ----------------------------------------------------------------
 *
 * Looking a key up in the shared set costs two random misses (the table slot, then the key record
 * in the arena), each with a TLB miss, because shared anonymous memory gets no transparent huge
 * pages. Most events are returning users, so each worker process keeps a private cache of keys it
 * has seen in the set: a set-associative table of 64-byte buckets of four 16-byte entries, in
 * private memory with huge pages, probed with one miss and no TLB miss.
 *
 * An entry is the key itself in a canonical 16-byte form (the key's bytes zero-padded, its length
 * in the last byte), so a hit is an exact comparison of the whole key, never a guess from a hash.
 * Keys of 1 to 15 bytes fit; others bypass the cache. The cache is valid for one reset generation:
 * a key enters it only after an event that entered with generation g found or published the key,
 * and a reset clears the table only between generations, so while an event holds g (seq odd, the
 * reset waits for it) every key cached under g is in the table. An event that enters with another
 * generation empties the cache first. A hit therefore means "existing key", which is the journal
 * path that needs no slot: recovery rolls such an event forward. The cache is the process's own:
 * created after fork (fa_agg_worker_init), inherited by a later fork as a private copy (still
 * true), never shared.
 */

#define CACHE_WAYS        4
#define CACHE_KEY_MAX     15
#define CACHE_ENTRIES_MAX (1u << 18) /* 4 MiB: two workers' caches fit the memory budget */
#define CACHE_ALIGN       (2u << 20) /* one huge page */

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the canonical key form assumes it");

typedef struct {
    uint64_t lo, hi; /* hi == 0: empty (a key's form always has its length in hi's top byte) */
} centry_t;

typedef struct {
    _Alignas(FA_CACHELINE) centry_t e[CACHE_WAYS];
} cbucket_t;

static_assert(sizeof(cbucket_t) == FA_CACHELINE, "a bucket is one cache line");

/* The calling process's cache; agg == NULL when it has none. */
static struct {
    const fa_agg_t *agg;
    uint64_t seed; /* the aggregator's: tells a new aggregator mapped at the same address */
    uint64_t gen;  /* the reset generation the entries belong to; odd: none yet */
    uint64_t mask; /* buckets - 1 */
    cbucket_t *b;
    void *map;
    size_t map_len, used;
    unsigned victim;
    /* Recent misses against hits, 0..MISS_SCORE_MAX (+1 a miss, -1 a hit): whether a prepared
     * key's table slot is worth requesting ahead (fa_agg_key_prepare). Advice only. */
    unsigned miss_score;
    fa__agg_cache_stats_t st;
} cache;

#define MISS_SCORE_MAX 16

/* A key prepared for the cache: its canonical form and the bucket hash. hi == 0: bypass. */
typedef struct {
    uint64_t lo, hi, ch;
} ckey_t;

static inline uint64_t load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t load32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t mum(uint64_t x, uint64_t y)
{
    unsigned __int128 p = (unsigned __int128)x * y;
    return (uint64_t)p ^ (uint64_t)(p >> 64);
}

/*
 * The canonical form of a 1..15-byte key without a byte loop or a memcpy call: overlapping loads
 * from both ends cover every byte exactly (equal bytes OR-ed onto themselves), shifted into place.
 */
static inline void ckey_make(const fa_agg_t *a, const char *key, size_t len, ckey_t *k)
{
    if (len - 1 >= CACHE_KEY_MAX) { /* 0 or too long */
        k->hi = 0;
        return;
    }
    uint64_t lo, hi = (uint64_t)len << 56;
    if (len >= 8) {
        lo = load64(key);
        if (len > 8)
            hi |= load64(key + len - 8) >> (8 * (16 - len));
    } else if (len >= 4) {
        lo = load32(key) | (load32(key + len - 4) << (8 * (len - 4)));
    } else {
        lo = (uint64_t)(unsigned char)key[0] |
             (uint64_t)(unsigned char)key[len / 2] << (8 * (len / 2)) |
             (uint64_t)(unsigned char)key[len - 1] << (8 * (len - 1));
    }
    k->lo = lo;
    k->hi = hi;
    k->ch = mum(lo ^ a->seed ^ 0xa0761d6478bd642fULL, hi ^ 0xe7037ed1a0b428dbULL);
}

static inline bool cache_mine(const fa_agg_t *a)
{
    return cache.agg == a && cache.seed == a->seed;
}

static inline cbucket_t *cache_bucket(const ckey_t *k)
{
    return &cache.b[k->ch & cache.mask];
}

static inline bool cache_find(const ckey_t *k)
{
    const cbucket_t *b = cache_bucket(k);
    bool hit = false;
    for (int w = 0; w < CACHE_WAYS; w++)
        hit |= (b->e[w].lo == k->lo) & (b->e[w].hi == k->hi);
    return hit;
}

/* After a miss in the same event: the key is not in its bucket. An empty way or round robin. */
static inline void cache_insert(const ckey_t *k)
{
    cbucket_t *b = cache_bucket(k);
    int w = 0;
    while (w < CACHE_WAYS && b->e[w].hi)
        w++;
    if (w == CACHE_WAYS)
        w = (int)(cache.victim++ % CACHE_WAYS);
    else
        cache.used++;
    b->e[w] = (centry_t){k->lo, k->hi};
}

/* The event entered with generation g and the cache holds another one: forget everything. */
static void cache_flush(uint64_t g)
{
    if (cache.used)
        memset(cache.b, 0, (cache.mask + 1) * sizeof(cbucket_t));
    cache.used = 0;
    cache.gen = g;
    cache.st.flushes++;
}

void fa__agg_cache_stats(fa__agg_cache_stats_t *out)
{
    *out = (fa__agg_cache_stats_t){0};
    if (cache.agg) {
        *out = cache.st;
        out->bytes = (cache.mask + 1) * sizeof(cbucket_t);
    }
}

/*
 * In the worker, after fork and before serving. The size follows the capacity (one entry per key
 * up to CACHE_ENTRIES_MAX); the mapping is aligned to a huge page and advised to use them. Pages
 * are touched only as buckets fill.
 */
int fa_agg_worker_init(fa_agg_t *a)
{
    fa_agg_worker_fini(a);
    size_t entries = 64;
    while (entries < a->capacity && entries < CACHE_ENTRIES_MAX)
        entries <<= 1;
    size_t len = entries / CACHE_WAYS * sizeof(cbucket_t);
    size_t map_len = len + CACHE_ALIGN;
    void *map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return -errno;
    char *b = (char *)FA_ALIGN_UP((uintptr_t)map, CACHE_ALIGN);
    (void)madvise(b, len, MADV_HUGEPAGE); /* advice: without huge pages it is merely slower */
    cache.b = (cbucket_t *)b;
    cache.map = map;
    cache.map_len = map_len;
    cache.mask = entries / CACHE_WAYS - 1;
    cache.gen = 1; /* odd: an event always enters with an even generation */
    cache.used = 0;
    cache.victim = 0;
    cache.miss_score = 0;
    cache.st = (fa__agg_cache_stats_t){0};
    cache.seed = a->seed;
    cache.agg = a;
    return 0;
}

void fa_agg_worker_fini(fa_agg_t *a)
{
    (void)a;
    if (!cache.agg)
        return;
    (void)munmap(cache.map, cache.map_len); /* only fails on bad arguments */
    cache.agg = NULL;
    cache.b = NULL;
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
    if (!a)
        return;
    if (cache.agg == a)
        fa_agg_worker_fini(a);   /* a new aggregator may be mapped at the same address */
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
static inline void cell_commit(fa__agg_shard_t *sh, uint64_t s, uint64_t dtotal, uint64_t dunique,
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
 * Step 1 of the protocol: makes seq odd unless a reset is running, and returns the even seq from
 * before with the generation the event runs under in *gen. The seq_cst exchange is the StoreLoad
 * fence of the Dekker pair with the resetter. (An asymmetric fence, a plain store here and
 * membarrier(MEMBARRIER_CMD_GLOBAL) in the reset, was measured: no gain above noise on this
 * machine's CPU, 7-15 ms per reset; see the commit that introduced the key cache.)
 */
static inline uint64_t enter(fa_agg_t *a, fa__agg_shard_t *sh, uint64_t *gen)
{
    for (;;) {
        uint64_t s = atomic_load_explicit(&sh->seq, relaxed);
        atomic_store_explicit(&sh->j_state, 0, relaxed);
        atomic_exchange_explicit(&sh->seq, s + 1, seq_cst);
        uint64_t g = atomic_load_explicit(&a->gen, seq_cst);
        if (FA_LIKELY(!(g & 1))) {
            *gen = g;
            return s;
        }
        atomic_store_explicit(&sh->seq, s, release); /* back out: no cell was touched */
        wait_reset(a);
    }
}

static inline void journal_value(fa__agg_shard_t *sh, __int128 v)
{
    atomic_store_explicit(&sh->j_val_lo, (uint64_t)v, relaxed);
    atomic_store_explicit(&sh->j_val_hi, (uint64_t)((unsigned __int128)v >> 64), relaxed);
}

/* Step 3. */
static inline void commit(fa__agg_shard_t *sh, uint64_t s, bool isnew, __int128 v)
{
    cell_commit(sh, s, 1, isnew, v);
    atomic_store_explicit(&sh->seq, s + 2, release);
}

/*
 * Step 2 in the shared set, inside an event entered at seq s + 1: finds the key or publishes it.
 * Returns 1 when this event published it, 0 when it was there, -ENOSPC when it is new and there
 * is no room (nothing published; the caller backs out). Every store that recovery reads is ordered
 * before the one that makes it meaningful (j_state = 1 last, j_slot before each CAS), so a kill
 * between any two instructions leaves a journal that tells the truth.
 */
static int set_find_or_publish(fa_agg_t *a, fa__agg_shard_t *sh, unsigned shard, uint64_t s,
                               uint64_t h, const char *key, size_t keylen, __int128 value)
{
    uint64_t word = 0;
    for (uint64_t i = h & a->mask;; i = (i + 1) & a->mask) {
        uint64_t w = atomic_load_explicit(&a->table[i], acquire);
        if (w == 0) {
            if (!word) {
                word = record_alloc(a, shard, s + 1, h, key, keylen);
                if (!word)
                    return -ENOSPC;
                journal_value(sh, value);
                atomic_store_explicit(&sh->j_word, word, relaxed);
                atomic_store_explicit(&sh->j_has_cand, 1, relaxed);
                atomic_store_explicit(&sh->j_slot, i, relaxed);
                atomic_store_explicit(&sh->j_state, 1, release);
            } else {
                atomic_store_explicit(&sh->j_slot, i, release);
            }
            uint64_t expect = 0;
            if (atomic_compare_exchange_strong_explicit(&a->table[i], &expect, word,
                                                        memory_order_acq_rel, acquire))
                return 1;
            w = expect; /* lost the slot: to the same key, or to another one */
        }
        if (word_tag(w) == hash_tag(h) && word_has_key(a, w, key, keylen)) {
            if (word) {
                atomic_store_explicit(&sh->j_has_cand, 0, release);
                /* The record is wasted (the arena only grows); its key reservation is not. */
                atomic_fetch_sub_explicit(&a->nkeys, 1, relaxed);
            } else {
                journal_value(sh, value);
                atomic_store_explicit(&sh->j_has_cand, 0, relaxed);
                atomic_store_explicit(&sh->j_state, 1, release);
            }
            return 0;
        }
    }
}

/*
 * The rest of an event that the key cache could not settle (a miss, a bypass, no cache): the
 * shared set, the commit, and on success the key into the cache. Out of line so that the hit path
 * in add_event stays small.
 */
static __attribute__((noinline)) int add_shared(fa_agg_t *a, fa__agg_shard_t *sh, unsigned shard,
                                                uint64_t s, const char *key, size_t keylen,
                                                __int128 value, const ckey_t *k, bool cached,
                                                bool have_h, uint64_t h)
{
    if (!have_h)
        h = fa__agg_hash(a, key, keylen);
    int rc = set_find_or_publish(a, sh, shard, s, h, key, keylen, value);
    if (FA_UNLIKELY(rc < 0)) {
        atomic_store_explicit(&sh->seq, s, release); /* backs out like a reset: nothing counted */
        return rc;
    }
    commit(sh, s, rc == 1, value);
    if (cached)
        cache_insert(k);
    return 0;
}

/*
 * One whole event, in the shard owner's process. k is the key's cache form (k->hi == 0: no cache
 * lookup); h its hash when have_h (the batch path computes it ahead), computed later otherwise.
 * A cache hit is an existing key: journal the value, commit. A miss goes to the shared set and,
 * once the event is committed, remembers the key under the generation it ran in.
 */
static inline __attribute__((always_inline)) int add_event(fa_agg_t *a, unsigned shard,
                                                           const char *key, size_t keylen,
                                                           __int128 value, const ckey_t *k,
                                                           bool have_h, uint64_t h)
{
    fa__agg_shard_t *sh = &a->shards[shard];
    uint64_t g, s = enter(a, sh, &g);

    bool cached = k->hi && cache_mine(a);
    if (cached) {
        if (FA_UNLIKELY(cache.gen != g))
            cache_flush(g);
        if (cache_find(k)) {
            cache.st.hits++;
            cache.miss_score -= cache.miss_score > 0;
            journal_value(sh, value);
            atomic_store_explicit(&sh->j_has_cand, 0, relaxed);
            atomic_store_explicit(&sh->j_state, 1, release);
            commit(sh, s, false, value);
            return 0;
        }
        cache.st.misses++;
        cache.miss_score += cache.miss_score < MISS_SCORE_MAX;
    } else if (cache.agg) {
        cache.st.bypass++;
    }
    return add_shared(a, sh, shard, s, key, keylen, value, k, cached, have_h, h);
}

int fa_agg_add(fa_agg_t *a, unsigned shard, const char *key, size_t keylen, __int128 value_nanos)
{
    if (FA_UNLIKELY(keylen > FA_AGG_KEY_MAX))
        return -EINVAL;
    ckey_t k = {.hi = 0};
    if (cache.agg)
        ckey_make(a, key, keylen, &k);
    return add_event(a, shard, key, keylen, value_nanos, &k, false, 0);
}

/*
 * fa_agg_add in two halves for one event: the look-ahead of the batch path below (cache form,
 * hash, prefetches), then add_event trusting nothing from it but the pure functions of the key.
 * The cache bucket is requested at once. The table slot is requested too (its hash made now)
 * when the key bypasses the cache, or when recent keys mostly missed it (new users): then a new
 * key's two misses overlap instead of following one another. While keys mostly hit the cache
 * the slot is left alone: its hash and its request (often a TLB miss as well) would be wasted.
 */
void fa_agg_key_prepare(const fa_agg_t *a, const char *key, size_t keylen, fa_agg_key_t *out)
{
    out->_key = key;
    out->_keylen = keylen;
    out->_hi = 0;
    out->_have_h = false;
    if (FA_UNLIKELY(keylen > FA_AGG_KEY_MAX))
        return;
    ckey_t k = {.hi = 0};
    bool cached = false;
    if (cache.agg) {
        ckey_make(a, key, keylen, &k);
        cached = k.hi && cache_mine(a);
        if (cached)
            __builtin_prefetch(cache_bucket(&k));
    }
    out->_lo = k.lo;
    out->_hi = k.hi;
    out->_ch = k.ch;
    if (!cached || cache.miss_score >= MISS_SCORE_MAX / 2) {
        out->_h = fa__agg_hash(a, key, keylen);
        out->_have_h = true;
        __builtin_prefetch(&a->table[out->_h & a->mask]);
    }
}

int fa_agg_add_prepared(fa_agg_t *a, unsigned shard, const fa_agg_key_t *pk, __int128 value_nanos)
{
    if (FA_UNLIKELY(pk->_keylen > FA_AGG_KEY_MAX))
        return -EINVAL;
    ckey_t k = {.lo = pk->_lo, .hi = pk->_hi, .ch = pk->_ch};
    return add_event(a, shard, pk->_key, pk->_keylen, value_nanos, &k, pk->_have_h, pk->_h);
}

/*
 * The batch path: the same events as fa_agg_add in a loop, with the memory they will touch
 * requested ahead. Event i + PF_KEY has its cache form made and its cache bucket prefetched (or,
 * when it bypasses the cache, its hash made and its table slot prefetched); event i + PF_SLOT,
 * if its bucket does not hold it, gets its hash and slot prefetch; event i + PF_REC, if it has a
 * hash, has its slot read and the key record it points to prefetched. All of this is advice: event
 * i itself runs add_event with nothing trusted from the look-ahead but the hash (a pure function
 * of the key), so a reset or another writer in between changes only how many misses it takes.
 */
#define PF_KEY  8
#define PF_SLOT 4
#define PF_REC  2
#define PF_RING 16

typedef struct {
    ckey_t k;
    uint64_t h;
    bool have_h;
} ahead_t;

static inline void ahead_hash(const fa_agg_t *a, const fa_agg_item_t *it, ahead_t *p)
{
    p->h = fa__agg_hash(a, it->key, it->keylen);
    p->have_h = true;
    __builtin_prefetch(&a->table[p->h & a->mask]);
}

static inline void ahead_key(const fa_agg_t *a, bool use_cache, const fa_agg_item_t *it, ahead_t *p)
{
    p->k.hi = 0;
    p->have_h = false;
    if (it->keylen > FA_AGG_KEY_MAX)
        return;
    if (use_cache)
        ckey_make(a, it->key, it->keylen, &p->k);
    if (p->k.hi)
        __builtin_prefetch(cache_bucket(&p->k));
    else
        ahead_hash(a, it, p);
}

static inline void ahead_slot(const fa_agg_t *a, const fa_agg_item_t *it, ahead_t *p)
{
    if (p->k.hi && !cache_find(&p->k))
        ahead_hash(a, it, p);
}

static inline void ahead_record(const fa_agg_t *a, const ahead_t *p)
{
    if (!p->have_h)
        return;
    uint64_t w = atomic_load_explicit(&a->table[p->h & a->mask], relaxed);
    if (w)
        __builtin_prefetch(a->arena + (w & FA__AGG_OFF_MASK));
}

size_t fa_agg_add_many(fa_agg_t *a, unsigned shard, fa_agg_item_t *items, size_t n)
{
    ahead_t ring[PF_RING];
    bool use_cache = cache_mine(a);
    size_t counted = 0;
    for (size_t j = 0; j < n && j < PF_KEY; j++)
        ahead_key(a, use_cache, &items[j], &ring[j % PF_RING]);
    for (size_t j = 0; j < n && j < PF_SLOT; j++)
        ahead_slot(a, &items[j], &ring[j % PF_RING]);
    for (size_t j = 0; j < n && j < PF_REC; j++)
        ahead_record(a, &ring[j % PF_RING]);
    for (size_t i = 0; i < n; i++) {
        if (i + PF_KEY < n)
            ahead_key(a, use_cache, &items[i + PF_KEY], &ring[(i + PF_KEY) % PF_RING]);
        if (i + PF_SLOT < n)
            ahead_slot(a, &items[i + PF_SLOT], &ring[(i + PF_SLOT) % PF_RING]);
        if (i + PF_REC < n)
            ahead_record(a, &ring[(i + PF_REC) % PF_RING]);
        fa_agg_item_t *it = &items[i];
        const ahead_t *p = &ring[i % PF_RING];
        if (FA_UNLIKELY(it->keylen > FA_AGG_KEY_MAX))
            it->result = -EINVAL;
        else
            it->result =
                add_event(a, shard, it->key, it->keylen, it->value, &p->k, p->have_h, p->h);
        counted += it->result == 0;
    }
    return counted;
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
