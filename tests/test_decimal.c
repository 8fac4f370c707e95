/*
 * test_decimal.c — JSON number text to nanos (exact, rounded, invalid), nanos to text, averages.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "decimal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(decimal, .timeout = 10);

#define E9 ((__int128)1000000000)

/*
 * Criterion copies parameters without honouring 16-byte alignment, so tables hold an __int128 as
 * two 64-bit halves: N128 in an initializer, get128 to read it back.
 */
#define N128(v)                                                                                    \
    {                                                                                              \
        (uint64_t)(__int128)(v), (uint64_t)((unsigned __int128)(__int128)(v) >> 64)                \
    }
typedef struct {
    uint64_t lo, hi;
} i128_t;

static __int128 get128(i128_t v)
{
    return (__int128)(((unsigned __int128)v.hi << 64) | v.lo);
}

/* Criterion copies parameters into another process: strings live inline, never as pointers. */
typedef struct {
    char desc[64];
    char text[48];
    int rc;
    i128_t nanos; /* meaningful when rc >= 0 */
} parse_case_t;

static const parse_case_t parse_cases[] = {
    {"zero", "0", 0, N128(0)},
    {"negative zero", "-0", 0, N128(0)},
    {"negative zero with fraction and exponent", "-0.000e+5", 0, N128(0)},
    {"zero with a huge exponent is still zero", "0e999999999999", 0, N128(0)},
    {"one tenth is exact", "0.1", 0, N128(100000000)},
    {"42.5", "42.5", 0, N128(42 * E9 + 500000000)},
    {"-3.25", "-3.25", 0, N128(-(3 * E9 + 250000000))},
    {"one nano", "0.000000001", 0, N128(1)},
    {"1e-9", "1e-9", 0, N128(1)},
    {"1E+2", "1E+2", 0, N128(100 * E9)},
    {"4.25e2", "4.25e2", 0, N128(425 * E9)},
    {"1E-3", "1E-3", 0, N128(1000000)},
    {"fraction digits shifted in by the exponent", "0.0000000012e1", 0, N128(12)},
    {"exponent shifts a tie into the dropped digits", "0.00000000125e1", 1, N128(12)},
    {"integer", "100", 0, N128(100 * E9)},
    {"largest accepted", "999999999999999.999999999", 0,
     N128((__int128)1000000000000000LL * E9 - 1)},
    {"largest accepted, negative", "-999999999999999.999999999", 0,
     N128(-((__int128)1000000000000000LL * E9 - 1))},
    {"half a nano rounds to even (0)", "0.0000000005", 1, N128(0)},
    {"one and a half nanos round to even (2)", "0.0000000015", 1, N128(2)},
    {"two and a half nanos round to even (2)", "0.0000000025", 1, N128(2)},
    {"just above half rounds up", "0.00000000050000000001", 1, N128(1)},
    {"just below half rounds down", "0.00000000049999999999", 1, N128(0)},
    {"negative half rounds to even", "-0.0000000015", 1, N128(-2)},
    {"ten fraction digits, round down", "1.0000000004", 1, N128(E9)},
    {"ten fraction digits, round up", "1.0000000006", 1, N128(E9 + 1)},
    {"tiny exponent rounds to zero", "1e-999", 1, N128(0)},
    {"far below the first kept digit", "5e-11", 1, N128(0)},
    {"1e15 is out of range", "1e15", -1, N128(0)},
    {"just over the bound after rounding", "999999999999999.9999999996", -1, N128(0)},
    {"1e999", "1e999", -1, N128(0)},
    {"huge exponent", "1e99999999999999999999", -1, N128(0)},
    {"negative out of range", "-1e20", -1, N128(0)},
    {"empty", "", -1, N128(0)},
    {"lone minus", "-", -1, N128(0)},
    {"leading plus", "+1", -1, N128(0)},
    {"leading zero", "01", -1, N128(0)},
    {"dot without fraction digits", "1.", -1, N128(0)},
    {"dot without integer digits", ".5", -1, N128(0)},
    {"exponent without digits", "1e", -1, N128(0)},
    {"exponent sign without digits", "1e+", -1, N128(0)},
    {"trailing garbage", "1x", -1, N128(0)},
    {"space", "1 ", -1, N128(0)},
    {"NaN", "NaN", -1, N128(0)},
    {"Infinity", "Infinity", -1, N128(0)},
    {"hex", "0x10", -1, N128(0)},
    {"double minus", "--1", -1, N128(0)},
};

ParameterizedTestParameters(decimal, parse)
{
    return cr_make_param_array(parse_case_t, parse_cases, FA_ARRAY_SIZE(parse_cases));
}

ParameterizedTest(const parse_case_t *c, decimal, parse)
{
    __int128 v = 12345; /* sentinel: untouched on error */
    int rc = fa_dec_parse(c->text, strlen(c->text), &v);
    cr_assert_eq(rc, c->rc, "%s: \"%s\" returned %d, want %d", c->desc, c->text, rc, c->rc);
    if (rc >= 0)
        cr_assert(v == get128(c->nanos), "%s: \"%s\" gave %lld nanos (low 64 bits)", c->desc,
                  c->text, (long long)v);
    else
        cr_assert(v == 12345, "%s: output written on error", c->desc);
}

/* Every proper prefix of a valid number is either itself valid or rejected, and never read past. */
Test(decimal, truncation_points_never_read_past_len)
{
    const char *full = "-12.3450e+7";
    size_t n = strlen(full);
    for (size_t cut = 0; cut <= n; cut++) {
        char *copy = malloc(cut ? cut : 1); /* exact size: ASan flags any read past cut */
        memcpy(copy, full, cut);
        __int128 v = 0;
        int rc = fa_dec_parse(copy, cut, &v);
        /* Valid prefixes: "-1", "-12", "-12.3", "-12.34", "-12.345", "-12.3450", "...e+7". */
        bool valid = cut == 2 || cut == 3 || (cut >= 5 && cut <= 8) || cut == n;
        cr_assert_eq(rc >= 0, valid, "prefix of length %zu: rc %d", cut, rc);
        free(copy);
    }
}

typedef struct {
    __int128 nanos;
    const char *text;
} fmt_case_t;

Test(decimal, format_is_exact_without_trailing_zeros)
{
    static const fmt_case_t cases[] = {
        {0, "0"},
        {1, "0.000000001"},
        {-1, "-0.000000001"},
        {42 * E9 + 500000000, "42.5"},
        {-(3 * E9 + 250000000), "-3.25"},
        {100 * E9, "100"},
        {100000000, "0.1"},
        {123456789, "0.123456789"},
        {-1000 * E9, "-1000"},
    };
    for (size_t i = 0; i < FA_ARRAY_SIZE(cases); i++) {
        char buf[FA_DEC_FMT_MAX];
        size_t n = fa_dec_format(cases[i].nanos, buf, sizeof(buf));
        cr_assert_str_eq(buf, cases[i].text);
        cr_assert_eq(n, strlen(cases[i].text));
    }
}

Test(decimal, format_extremes_fit_and_small_buffers_are_refused)
{
    __int128 min = (__int128)((unsigned __int128)1 << 127);
    char buf[FA_DEC_FMT_MAX];
    size_t n = fa_dec_format(min, buf, sizeof(buf));
    cr_assert_str_eq(buf, "-170141183460469231731687303715.884105728");
    cr_assert_eq(n, strlen(buf));
    cr_assert_eq(fa_dec_format(42 * E9 + 500000000, buf, 4), 0, "\"42.5\" needs 5 bytes");
    cr_assert_eq(fa_dec_format(42 * E9 + 500000000, buf, 5), 4);
}

/* Parsing the formatted text gives back the same nanos: the format is exact. */
Test(decimal, format_round_trips_through_parse)
{
    static const __int128 values[] = {1, -1, 7, 999999999, 1000000001, -123456789012345678};
    for (size_t i = 0; i < FA_ARRAY_SIZE(values); i++) {
        char buf[FA_DEC_FMT_MAX];
        size_t n = fa_dec_format(values[i], buf, sizeof(buf));
        __int128 back = 0;
        cr_assert_eq(fa_dec_parse(buf, n, &back), 0, "%s", buf);
        cr_assert(back == values[i], "%s", buf);
    }
}

typedef struct {
    char desc[32];
    i128_t sum;
    uint64_t count;
    char text[32];
} avg_case_t;

static const avg_case_t avg_cases[] = {
    {"empty is 0", N128(12345), 0, "0"},
    {"exact quotient", N128(85 * E9), 2, "42.5"},
    {"exact in nanos", N128(1), 1, "0.000000001"},
    {"exact negative", N128(-(13 * E9)), 4, "-3.25"},
    {"one third", N128(1 * E9), 3, "0.3333333333333333"},
    {"two thirds", N128(2 * E9), 3, "0.6666666666666666"},
    {"tiny, 16 digits and exponent", N128(1), 3, "3.333333333333333e-10"},
    {"ten thirds", N128(10 * E9), 3, "3.3333333333333335"},
    {"inexact negative", N128(-(1 * E9)), 3, "-0.3333333333333333"},
};

ParameterizedTestParameters(decimal, avg)
{
    return cr_make_param_array(avg_case_t, avg_cases, FA_ARRAY_SIZE(avg_cases));
}

ParameterizedTest(const avg_case_t *c, decimal, avg)
{
    char buf[FA_DEC_FMT_MAX];
    size_t n = fa_dec_format_avg(get128(c->sum), c->count, buf, sizeof(buf));
    cr_assert_str_eq(buf, c->text, "%s", c->desc);
    cr_assert_eq(n, strlen(c->text));
}

/* Whatever form is printed, it reads back as the double nearest the quotient. */
Test(decimal, avg_inexact_round_trips_through_strtod)
{
    for (uint64_t count = 3; count < 200; count += 7) {
        __int128 sum = (__int128)count * 1234567 + 1;
        char buf[FA_DEC_FMT_MAX];
        fa_dec_format_avg(sum, count, buf, sizeof(buf));
        double want = (double)((long double)sum / count / 1e9L);
        cr_assert_eq(strtod(buf, NULL), want, "%s", buf);
        cr_assert_null(strpbrk(buf, "ni"), "no nan/inf: %s", buf);
    }
}

/* Plain numbers (-?int.frac, no exponent) take a shortcut; the same value written with an
 * exponent goes the general way: both must agree on every result, in range or not. */
Test(decimal, plain_numbers_agree_with_their_exponent_form)
{
    unsigned long long seed = 88172645463325252ULL;
    for (int k = 0; k < 20000; k++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        int idigits = 1 + (int)(seed % 20), fdigits = (int)((seed >> 8) % 11);
        bool neg = (seed >> 16) & 1;
        char ip[32], fp[16];
        for (int i = 0; i < idigits; i++)
            ip[i] = (char)('0' + (seed >> (20 + i * 2)) % 10);
        if (idigits > 1 && ip[0] == '0')
            ip[0] = '7'; /* no leading zero unless the integer part is 0 */
        ip[idigits] = '\0';
        for (int i = 0; i < fdigits; i++)
            fp[i] = (char)('0' + (seed >> (3 + i * 5)) % 10);
        fp[fdigits] = '\0';
        char plain[64], expo[72];
        snprintf(plain, sizeof(plain), "%s%s%s%s", neg ? "-" : "", ip, fdigits ? "." : "", fp);
        snprintf(expo, sizeof(expo), "%s%s", plain, (seed >> 40) & 1 ? "e0" : "E-0");
        __int128 a = 12345, b = 54321;
        int ra = fa_dec_parse(plain, strlen(plain), &a), rb = fa_dec_parse(expo, strlen(expo), &b);
        cr_assert_eq(ra, rb, "%s: %d, %s: %d", plain, ra, expo, rb);
        if (ra >= 0)
            cr_assert(a == b, "%s and %s differ", plain, expo);
    }
    __int128 v;
    cr_assert_eq(fa_dec_parse("123.5", 5, &v), 0);
    cr_assert(v == 123 * E9 + 500000000);
    cr_assert_eq(fa_dec_parse("-0.000000001", 12, &v), 0);
    cr_assert(v == -1);
    cr_assert_eq(fa_dec_parse("0.0000000005", 12, &v), 1, "ten fraction digits round");
}
