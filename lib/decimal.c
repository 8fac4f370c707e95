/*
 * decimal.c — JSON number text to nanos and back, without binary floating point on the way in.
 */
#include "decimal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1e24 nanos = FA_DEC_MAX_UNITS units: the exclusive bound on a parsed magnitude. */
#define MAX_NANOS ((unsigned __int128)FA_DEC_MAX_UNITS * FA_DEC_SCALE)
/* Decimal digits of MAX_NANOS - 1: more significant integer digits than this is out of range. */
#define MAX_NANOS_DIGITS 24
/* Exponents are saturated here while reading, so absurd ones cannot overflow the arithmetic. */
#define EXP_CLAMP 100000000LL

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The mantissa is the integer digits followed by the fraction digits, read as one digit string. */
typedef struct {
    const char *ip, *fp;
    size_t ilen, flen;
} mantissa_t;

static int digit_at(const mantissa_t *m, size_t j)
{
    return (j < m->ilen ? m->ip[j] : m->fp[j - m->ilen]) - '0';
}

/*
 * The shape nearly every value has, -?int(.frac)? with at most 18 integer and 9 fraction digits
 * and no exponent: exact in 64-bit integers, never rounded. Returns 0 with *nanos set, or -2 for
 * anything else (including what is out of range or malformed), which the general path decides.
 */
static int parse_plain(const char *s, size_t len, __int128 *nanos)
{
    static const uint32_t scale[10] = {1000000000, 100000000, 10000000, 1000000, 100000,
                                       10000,      1000,      100,      10,      1};
    size_t i = 0;
    bool neg = len && s[0] == '-';
    i += neg;
    size_t i0 = i;
    uint64_t ip = 0;
    if (i < len && s[i] == '0') {
        i++; /* a leading 0 is the whole integer part */
    } else {
        while (i < len && is_digit(s[i]) && i - i0 < 19)
            ip = ip * 10 + (uint64_t)(s[i++] - '0');
    }
    if (i == i0 || i - i0 > 18)
        return -2;
    uint64_t fp = 0;
    size_t flen = 0;
    if (i < len && s[i] == '.') {
        size_t f0 = ++i;
        while (i < len && is_digit(s[i]) && i - f0 < 10)
            fp = fp * 10 + (uint64_t)(s[i++] - '0');
        flen = i - f0;
        if (flen == 0 || flen > 9)
            return -2;
    }
    if (i != len)
        return -2;
    unsigned __int128 acc = (unsigned __int128)ip * FA_DEC_SCALE + fp * scale[flen];
    if (acc >= MAX_NANOS)
        return -2;
    *nanos = neg ? -(__int128)acc : (__int128)acc;
    return 0;
}

/*
 * Plain numbers go to parse_plain. The rest: validates the JSON number grammar, then computes
 * nanos = M * 10^k with M the digit string and k = exponent - fraction digits + 9. Positions
 * [0, T + k) of M (padded with zeros on the right) are the integer part of the nanos; the
 * positions after it are dropped and decide the rounding.
 * Magnitude is bounded before any digit is accumulated, so the accumulator cannot overflow.
 */
int fa_dec_parse(const char *s, size_t len, __int128 *nanos)
{
    if (parse_plain(s, len, nanos) == 0)
        return 0;
    size_t i = 0;
    bool neg = false;
    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    mantissa_t m = {.ip = s + i, .fp = s + i, .ilen = 0, .flen = 0};
    if (i >= len)
        return -1;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < len && is_digit(s[i]))
            i++;
    } else {
        return -1;
    }
    m.ilen = (size_t)(s + i - m.ip);
    if (i < len && s[i] == '.') {
        i++;
        m.fp = s + i;
        while (i < len && is_digit(s[i]))
            i++;
        m.flen = (size_t)(s + i - m.fp);
        if (m.flen == 0)
            return -1;
    }
    long long exp = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < len && (s[i] == '+' || s[i] == '-')) {
            eneg = s[i] == '-';
            i++;
        }
        size_t start = i;
        for (; i < len && is_digit(s[i]); i++)
            if (exp < EXP_CLAMP)
                exp = exp * 10 + (s[i] - '0');
        if (i == start)
            return -1;
        if (eneg)
            exp = -exp;
    }
    if (i != len)
        return -1;

    size_t total = m.ilen + m.flen;
    size_t lead = 0;
    while (lead < total && digit_at(&m, lead) == 0)
        lead++;
    if (lead == total) { /* zero, whatever the exponent or sign */
        *nanos = 0;
        return 0;
    }
    /* Lengths of real input are far below 2^62, so this signed arithmetic cannot overflow. */
    long long nint = (long long)total + exp - (long long)m.flen + 9;
    if (nint - (long long)lead > MAX_NANOS_DIGITS + 1)
        return -1;

    unsigned __int128 acc = 0;
    long long kept = nint < (long long)total ? nint : (long long)total;
    for (long long j = (long long)lead; j < kept; j++)
        acc = acc * 10 + (unsigned)digit_at(&m, (size_t)j);
    for (long long j = (long long)total; j < nint; j++)
        acc *= 10;

    bool rounded = false;
    if (nint < 0) {
        rounded = true; /* the first dropped digit is an implicit 0: below half, round down */
    } else if (nint < (long long)total) {
        int d0 = digit_at(&m, (size_t)nint);
        bool rest = false;
        for (size_t j = (size_t)nint + 1; j < total && !rest; j++)
            rest = digit_at(&m, j) != 0;
        rounded = d0 != 0 || rest;
        if (d0 > 5 || (d0 == 5 && (rest || (acc & 1))))
            acc++;
    }
    if (acc >= MAX_NANOS)
        return -1;
    *nanos = neg ? -(__int128)acc : (__int128)acc;
    return rounded ? 1 : 0;
}

/* Writes the digits of v (at least one) backwards ending at end; returns the first character. */
static char *put_u128_rev(char *end, unsigned __int128 v)
{
    do {
        *--end = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    return end;
}

size_t fa_dec_format(__int128 nanos, char *buf, size_t cap)
{
    char tmp[FA_DEC_FMT_MAX];
    char *end = tmp + sizeof(tmp);
    char *p = end;
    unsigned __int128 mag = nanos < 0 ? -(unsigned __int128)nanos : (unsigned __int128)nanos;
    uint64_t frac = (uint64_t)(mag % FA_DEC_SCALE);
    if (frac) {
        int ndig = 9;
        while (frac % 10 == 0) {
            frac /= 10;
            ndig--;
        }
        for (int d = 0; d < ndig; d++) {
            *--p = (char)('0' + (int)(frac % 10));
            frac /= 10;
        }
        *--p = '.';
    }
    p = put_u128_rev(p, mag / FA_DEC_SCALE);
    if (nanos < 0)
        *--p = '-';
    size_t n = (size_t)(end - p);
    if (n + 1 > cap)
        return 0;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return n;
}

/*
 * The inexact case goes through long double (a 64-bit mantissa on x86-64) so the final rounding to
 * double is within one ulp of the true quotient; the printed form is the shortest that strtod reads
 * back as that same double.
 */
size_t fa_dec_format_avg(__int128 sum, uint64_t count, char *buf, size_t cap)
{
    if (count == 0)
        return fa_dec_format(0, buf, cap);
    if (sum % (__int128)count == 0)
        return fa_dec_format(sum / (__int128)count, buf, cap);
    double d = (double)((long double)sum / (long double)count / (long double)FA_DEC_SCALE);
    char tmp[FA_DEC_FMT_MAX];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    if (n <= 0 || (size_t)n + 1 > cap)
        return 0;
    memcpy(buf, tmp, (size_t)n + 1);
    return (size_t)n;
}
