/*
 * buf.c — see buf.h.
 */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>

void fa_buf_printf(fa_buf_t *b, const char *fmt, ...)
{
    if (b->len + 1 >= b->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->len = FA_MIN(b->len + (size_t)n, b->cap - 1);
}

char *fa_put_uint(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}
