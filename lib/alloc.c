/*
 * alloc.c — allocator front with an out-of-memory policy and a per-thread allocation counter.
 */
#include "alloc.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

static _Thread_local uint64_t alloc_count;

uint64_t fa_alloc_count(void)
{
    return alloc_count;
}

static void *oom(size_t n)
{
    fa_log_fatal("out of memory allocating %zu bytes", n);
    abort();
}

void *fa_try_malloc(size_t n)
{
    alloc_count++;
    return malloc(n ? n : 1);
}

void *fa_malloc(size_t n)
{
    void *p = fa_try_malloc(n);
    return p ? p : oom(n);
}

void *fa_calloc(size_t count, size_t n)
{
    alloc_count++;
    void *p = calloc(count ? count : 1, n ? n : 1);
    return p ? p : oom(count * n);
}

void *fa_realloc(void *p, size_t n)
{
    alloc_count++;
    void *q = realloc(p, n ? n : 1);
    return q ? q : oom(n);
}

void *fa_aligned_zalloc(size_t align, size_t n)
{
    alloc_count++;
    void *p = NULL;
    if (posix_memalign(&p, align, n ? n : 1) != 0)
        return oom(n);
    memset(p, 0, n);
    return p;
}

char *fa_strndup(const char *s, size_t n)
{
    char *d = fa_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void fa_free(void *p)
{
    free(p);
}
