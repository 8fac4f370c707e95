/*
 * pool.h — a bump pool: allocations are never freed one by one, the whole pool is reset at once.
 *
 * A pool owns a first block of a fixed size and, when that runs out, further blocks taken from the
 * allocator; fa_pool_reset runs the registered cleanups (last registered first), returns the extra
 * blocks and keeps the first one, so a request pool that fits its first block costs no allocator
 * call at all. Allocation never returns NULL. A pool is used by one thread at a time.
 */
#ifndef FA_POOL_H
#define FA_POOL_H

#include "fa.h"

typedef void (*fa_pool_cleanup_cb)(void *data);

typedef struct fa_pool_block fa_pool_block_t;
typedef struct fa_pool_cleanup fa_pool_cleanup_t;

struct fa_pool {
    char *_cur, *_end;            /* free space in the current block */
    fa_pool_block_t *_extra;      /* blocks past the first, newest first */
    fa_pool_cleanup_t *_cleanups; /* newest first */
    size_t _block_size;
    size_t _used_extra;           /* bytes handed out from extra blocks, for limits */
    char *_first, *_first_end;
    size_t *_meter;               /* NULL, or a total the extra blocks are added to */
};

/** Initialises a pool whose first block (block_size bytes) comes from fa_malloc. */
void fa_pool_init(fa_pool_t *pool, size_t block_size);

/** Runs the cleanups and returns every block, the first one too. The pool is unusable after. */
void fa_pool_destroy(fa_pool_t *pool);

/** Runs the cleanups, returns the extra blocks, and makes the first block empty again. */
void fa_pool_reset(fa_pool_t *pool);

/** n bytes aligned to 16, valid until the next reset. Never NULL. */
void *fa_pool_alloc(fa_pool_t *pool, size_t n);

/** Like fa_pool_alloc, zeroed. */
void *fa_pool_calloc(fa_pool_t *pool, size_t n);

/** A NUL-terminated copy of s[0..n) in the pool. */
char *fa_pool_strndup(fa_pool_t *pool, const char *s, size_t n);

/** Calls cb(data) at the next reset or destroy. */
void fa_pool_cleanup_add(fa_pool_t *pool, fa_pool_cleanup_cb cb, void *data);

/** Bytes currently handed out (first block plus extra blocks). */
size_t fa_pool_used(const fa_pool_t *pool);

/**
 * Makes the pool add the size of every extra block it takes to *meter, and subtract it when the
 * block goes back (reset, destroy): a worker sums its connections' pools this way. The first
 * block is not counted (the owner counts it once). meter is borrowed for the pool's life; NULL
 * stops counting (only while the pool holds no extra block).
 */
void fa_pool_set_meter(fa_pool_t *pool, size_t *meter);

#endif
