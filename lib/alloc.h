/*
 * alloc.h — the process allocator front: never returns NULL.
 *
 * fa_malloc and friends abort with the size logged when memory runs out: a daemon that cannot get
 * a few hundred bytes has nothing better to do. fa_try_malloc returns NULL for callers that can
 * degrade (a large body). Every call is counted, per thread, so tests and benchmarks can prove
 * that a hot path allocates nothing (fa_alloc_count).
 */
#ifndef FA_ALLOC_H
#define FA_ALLOC_H

#include "fa.h"

void *fa_malloc(size_t n);
void *fa_calloc(size_t count, size_t n);
void *fa_realloc(void *p, size_t n);
/* n zeroed bytes at a multiple of align (a power of two, at least sizeof(void *)). */
void *fa_aligned_zalloc(size_t align, size_t n);
char *fa_strndup(const char *s, size_t n);
void *fa_try_malloc(size_t n);
void fa_free(void *p);

/** Allocations made by fa_malloc/fa_calloc/fa_realloc/fa_try_malloc on this thread so far. */
uint64_t fa_alloc_count(void);

#endif
