/*
 * pool.c — bump allocation in blocks; see pool.h.
 */
#include "pool.h"
#include "alloc.h"

#include <string.h>

struct fa_pool_block {
    fa_pool_block_t *next;
    size_t size;
    _Alignas(16) char data[];
};

struct fa_pool_cleanup {
    fa_pool_cleanup_t *next;
    fa_pool_cleanup_cb cb;
    void *data;
};

void fa_pool_init(fa_pool_t *pool, size_t block_size)
{
    block_size = FA_ALIGN_UP(FA_MAX(block_size, (size_t)256), 16);
    memset(pool, 0, sizeof(*pool));
    pool->_block_size = block_size;
    pool->_first = fa_malloc(block_size);
    pool->_first_end = pool->_first + block_size;
    pool->_cur = pool->_first;
    pool->_end = pool->_first_end;
}

static void run_cleanups(fa_pool_t *pool)
{
    /* A cleanup may allocate from the pool or register another cleanup; take the list first. */
    while (pool->_cleanups) {
        fa_pool_cleanup_t *c = pool->_cleanups;
        pool->_cleanups = c->next;
        c->cb(c->data);
    }
}

void fa_pool_reset(fa_pool_t *pool)
{
    run_cleanups(pool);
    for (fa_pool_block_t *b = pool->_extra, *next; b; b = next) {
        next = b->next;
        fa_free(b);
    }
    pool->_extra = NULL;
    if (pool->_meter)
        *pool->_meter -= pool->_used_extra;
    pool->_used_extra = 0;
    pool->_cur = pool->_first;
    pool->_end = pool->_first_end;
}

void fa_pool_destroy(fa_pool_t *pool)
{
    fa_pool_reset(pool);
    fa_free(pool->_first);
    memset(pool, 0, sizeof(*pool));
}

/* Slow path: the current block is full. Large requests get a block of their own so the rest of
 * the current block is not wasted. */
static void *alloc_slow(fa_pool_t *pool, size_t n)
{
    size_t size = n > pool->_block_size / 4 ? n : pool->_block_size;
    fa_pool_block_t *b = fa_malloc(sizeof(*b) + size);
    b->size = size;
    b->next = pool->_extra;
    pool->_extra = b;
    pool->_used_extra += size;
    if (pool->_meter)
        *pool->_meter += size;
    if (size == n)
        return b->data;
    pool->_cur = b->data + n;
    pool->_end = b->data + size;
    return b->data;
}

void *fa_pool_alloc(fa_pool_t *pool, size_t n)
{
    n = FA_ALIGN_UP(n ? n : 1, 16);
    if (FA_LIKELY((size_t)(pool->_end - pool->_cur) >= n)) {
        void *p = pool->_cur;
        pool->_cur += n;
        return p;
    }
    return alloc_slow(pool, n);
}

void *fa_pool_calloc(fa_pool_t *pool, size_t n)
{
    void *p = fa_pool_alloc(pool, n);
    memset(p, 0, n);
    return p;
}

char *fa_pool_strndup(fa_pool_t *pool, const char *s, size_t n)
{
    char *d = fa_pool_alloc(pool, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void fa_pool_cleanup_add(fa_pool_t *pool, fa_pool_cleanup_cb cb, void *data)
{
    fa_pool_cleanup_t *c = fa_pool_alloc(pool, sizeof(*c));
    c->cb = cb;
    c->data = data;
    c->next = pool->_cleanups;
    pool->_cleanups = c;
}

void fa_pool_set_meter(fa_pool_t *pool, size_t *meter)
{
    pool->_meter = meter;
}

size_t fa_pool_used(const fa_pool_t *pool)
{
    size_t first = pool->_extra ? pool->_block_size : (size_t)(pool->_cur - pool->_first);
    return first + pool->_used_extra;
}
