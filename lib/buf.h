/*
 * buf.h — small text-building helpers shared by the writers of responses and logs.
 *
 * fa_buf_t appends printf-style into a caller-owned buffer of fixed capacity (never past it);
 * fa_put and fa_put_uint write into a buffer the caller has already sized, returning the new end.
 */
#ifndef FA_BUF_H
#define FA_BUF_H

#include "fa.h"

typedef struct {
    char *p; /* borrowed: cap bytes */
    size_t len, cap;
} fa_buf_t;

/** Appends a formatted string; output past cap - 1 bytes is cut (callers size cap so it is not). */
void fa_buf_printf(fa_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Copies s[0..n) to p; returns p + n. */
static inline char *fa_put(char *p, const char *s, size_t n)
{
    __builtin_memcpy(p, s, n);
    return p + n;
}

/** Writes v in decimal (at most 20 bytes) at p; returns the end. */
char *fa_put_uint(char *p, uint64_t v);

#endif
