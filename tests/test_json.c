/*
 * test_json.c — strict JSON parsing (valid documents, hostile and malformed input, limits, every
 * truncation point), the accessors, escaping and the writer, and that parsing allocates nothing.
 *
 * Table cases are addressed by index (the parameter), so the table itself stays static data.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "alloc.h"
#include "json.h"
#include "json_internal.h"
#include "pool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(json, .timeout = 30);

#define MRC "{\"userId\":\"user_42\",\"value\":42.5}"

/* A ~1 KiB realistic object, also used by perf/bench_json.c. */
static const char nested_doc[] =
    "{\"id\":\"evt_01HZY3K8Q4\",\"type\":\"purchase\",\"userId\":\"user_8812\",\"value\":129.99,"
    "\"currency\":\"EUR\",\"ts\":1732640400123,\"session\":{\"id\":\"s-77af\",\"ip\":\"203.0.113.7\","
    "\"ua\":\"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\",\"geo\":{\"country\":\"FR\","
    "\"city\":\"Lyon\",\"lat\":45.764,\"lon\":4.8357}},\"items\":[{\"sku\":\"A-1001\",\"qty\":2,"
    "\"price\":19.5,\"tags\":[\"book\",\"paper\"]},{\"sku\":\"B-2002\",\"qty\":1,\"price\":90.99,"
    "\"tags\":[\"gift\"]}],\"flags\":{\"test\":false,\"priority\":true,\"coupon\":null},"
    "\"note\":\"caf\\u00e9 \\\"quoted\\\" \\\\ path\\/x\\n\",\"scores\":[1,2,3,5,8,13,21,34,55,89],"
    "\"meta\":{\"source\":\"web\",\"campaign\":\"autumn-2024\",\"ref\":\"https://example.com/p?q=1\","
    "\"ab\":[\"control\",\"variant-b\"],\"weights\":[0.25,0.5,-1.5e-3,0]},"
    "\"history\":[{\"at\":1732640000,\"ev\":\"view\"},{\"at\":1732640100,\"ev\":\"cart\"},"
    "{\"at\":1732640300,\"ev\":\"checkout\"}],\"empty\":{},\"none\":[]}";

static fa_pool_t pool;

static void setup(void)
{
    fa_pool_init(&pool, 16384);
}

static void teardown(void)
{
    fa_pool_destroy(&pool);
}

static int parse_n(fa_json_t *doc, const char *s, size_t n, const fa_json_limits_t *lim,
                   fa_json_error_t *err)
{
    return fa_json_parse(doc, &pool, s, n, lim, err);
}

/* A heap copy of s[0..n) of exactly n bytes, freed at the pool's next reset: under ASan a read
 * past the end of the input is caught, which the bytes after a literal would hide. */
static const char *exact(const char *s, size_t n)
{
    char *c = fa_malloc(n ? n : 1);
    memcpy(c, s, n);
    fa_pool_cleanup_add(&pool, fa_free, c);
    return c;
}

/* parse_n on an exact copy: what the table and truncation tests use. */
static int parse_exact(fa_json_t *doc, const char *s, size_t n, const fa_json_limits_t *lim,
                       fa_json_error_t *err)
{
    return fa_json_parse(doc, &pool, exact(s, n), n, lim, err);
}

/* ---- valid documents ---- */

typedef struct {
    const char *desc;
    const char *in;
    int len; /* -1: strlen */
    fa_json_type_t root;
} valid_case_t;

static const valid_case_t valid_cases[] = {
    {"1MRC body", MRC, -1, FA_JSON_OBJECT},
    {"empty object", "{}", -1, FA_JSON_OBJECT},
    {"empty array", "[]", -1, FA_JSON_ARRAY},
    {"whitespace everywhere", " \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } } \n", -1, FA_JSON_OBJECT},
    {"top-level string", "\"str\"", -1, FA_JSON_STRING},
    {"top-level number", "42", -1, FA_JSON_NUMBER},
    {"top-level number with spaces", "  -12.5e3  ", -1, FA_JSON_NUMBER},
    {"top-level true", "true", -1, FA_JSON_TRUE},
    {"top-level false", "false", -1, FA_JSON_FALSE},
    {"top-level null", " null ", -1, FA_JSON_NULL},
    {"zero", "0", -1, FA_JSON_NUMBER},
    {"negative zero", "-0", -1, FA_JSON_NUMBER},
    {"negative zero with fraction and exponent", "-0.0e+0", -1, FA_JSON_NUMBER},
    {"exponent upper case", "[1E5,1e-5,1E+5,0.5e0]", -1, FA_JSON_ARRAY},
    {"number too big for a double is still JSON", "1e999", -1, FA_JSON_NUMBER},
    {"long number", "[123456789012345678901234567890.123456789e-10]", -1, FA_JSON_ARRAY},
    {"nested arrays", "[[[[]]],[[]]]", -1, FA_JSON_ARRAY},
    {"nested objects", "{\"a\":{\"b\":{\"c\":[]}}}", -1, FA_JSON_OBJECT},
    {"mixed array", "[1,\"a\",true,false,null,{\"k\":[]},[]]", -1, FA_JSON_ARRAY},
    {"every escape", "\"\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\\b\\f\\r\\t\\u0000\"", -1,
     FA_JSON_STRING},
    {"raw UTF-8", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", -1, FA_JSON_STRING},
    {"U+0080 and U+07FF", "\"\xc2\x80\xdf\xbf\"", -1, FA_JSON_STRING},
    {"U+0800 and U+D7FF", "\"\xe0\xa0\x80\xed\x9f\xbf\"", -1, FA_JSON_STRING},
    {"U+E000 and U+FFFF", "\"\xee\x80\x80\xef\xbf\xbf\"", -1, FA_JSON_STRING},
    {"U+10000 and U+10FFFF", "\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"", -1, FA_JSON_STRING},
    {"DEL is not a control character", "\"\x7f\"", -1, FA_JSON_STRING},
    {"empty key", "{\"\":1}", -1, FA_JSON_OBJECT},
    {"same key in different objects", "{\"a\":1,\"b\":{\"a\":1},\"c\":[{\"a\":2},{\"a\":3}]}", -1,
     FA_JSON_OBJECT},
    {"keys differing only by escapes are distinct", "{\"a\\n\":1,\"a\\t\":2,\"a\":3}", -1,
     FA_JSON_OBJECT},
    {"realistic 1 KiB object", nested_doc, -1, FA_JSON_OBJECT},
};

ParameterizedTestParameters(json, valid)
{
    static int idx[FA_ARRAY_SIZE(valid_cases)];
    for (size_t i = 0; i < FA_ARRAY_SIZE(idx); i++)
        idx[i] = (int)i;
    return cr_make_param_array(int, idx, FA_ARRAY_SIZE(idx));
}

ParameterizedTest(int *i, json, valid, .init = setup, .fini = teardown)
{
    const valid_case_t *c = &valid_cases[*i];
    size_t n = c->len < 0 ? strlen(c->in) : (size_t)c->len;
    fa_json_t doc;
    fa_json_error_t err = {0};
    int r = parse_exact(&doc, c->in, n, NULL, &err);
    cr_assert_eq(r, 0, "%s: %s", c->desc, err.msg);
    cr_assert_eq(fa_json_type(&doc, fa_json_root(&doc)), c->root, "%s: root type", c->desc);
    cr_assert_eq(fa_json_skip(&doc, 0), fa_json_count(&doc), "%s: root spans every token",
                 c->desc);
}

/* ---- invalid documents ---- */

typedef struct {
    const char *desc;
    const char *in;
    int len;           /* -1: strlen */
    fa_json_code_t code;
    long offset;       /* -1: not checked */
    const char *msg;   /* substring of the message, or NULL */
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"empty input", "", -1, FA_JSON_EEMPTY, 0, "no value"},
    {"whitespace only", " \n\t\r ", -1, FA_JSON_EEMPTY, 5, "no value"},
    {"truncated true", "tru", -1, FA_JSON_ESYNTAX, 0, "invalid literal"},
    {"truncated true in array", "[tru]", -1, FA_JSON_ESYNTAX, 1, "invalid literal"},
    {"true with extra letters", "[truex]", -1, FA_JSON_ESYNTAX, 1, "invalid literal"},
    {"truncated null", "{\"a\":nul}", -1, FA_JSON_ESYNTAX, 5, "invalid literal"},
    {"truncated false", "fals", -1, FA_JSON_ESYNTAX, 0, "invalid literal"},
    {"capitalised True", "True", -1, FA_JSON_ESYNTAX, 0, "unexpected character 'T'"},
    {"NaN", "NaN", -1, FA_JSON_ESYNTAX, 0, NULL},
    {"NaN in array", "[NaN]", -1, FA_JSON_ESYNTAX, 1, NULL},
    {"Infinity", "Infinity", -1, FA_JSON_ESYNTAX, 0, NULL},
    {"-Infinity in array", "[-Infinity]", -1, FA_JSON_ESYNTAX, 2, NULL},
    {"leading zero", "01", -1, FA_JSON_ESYNTAX, 1, "leading zero"},
    {"leading zero in array", "[01]", -1, FA_JSON_ESYNTAX, 2, "leading zero"},
    {"negative leading zero", "-01", -1, FA_JSON_ESYNTAX, 2, "leading zero"},
    {"dot without fraction", "1.", -1, FA_JSON_ESYNTAX, 2, "after '.'"},
    {"dot without fraction in array", "[1.]", -1, FA_JSON_ESYNTAX, 3, "after '.'"},
    {"dot before exponent", "[1.e5]", -1, FA_JSON_ESYNTAX, 3, "after '.'"},
    {"leading dot", ".5", -1, FA_JSON_ESYNTAX, 0, "unexpected character '.'"},
    {"leading dot in array", "[.5]", -1, FA_JSON_ESYNTAX, 1, NULL},
    {"leading plus", "+1", -1, FA_JSON_ESYNTAX, 0, NULL},
    {"leading plus in object", "{\"a\":+1}", -1, FA_JSON_ESYNTAX, 5, NULL},
    {"lone minus", "-", -1, FA_JSON_ESYNTAX, 1, "digit expected"},
    {"lone minus in array", "[-]", -1, FA_JSON_ESYNTAX, 2, "digit expected"},
    {"empty exponent", "1e", -1, FA_JSON_ESYNTAX, 2, "exponent"},
    {"signed empty exponent", "[1e+]", -1, FA_JSON_ESYNTAX, 4, "exponent"},
    {"hexadecimal", "[0x10]", -1, FA_JSON_ESYNTAX, 2, "invalid character 'x'"},
    {"trailing comma in array", "[1,]", -1, FA_JSON_ESYNTAX, 3, "trailing comma before ']'"},
    {"trailing comma in object", "{\"a\":1,}", -1, FA_JSON_ESYNTAX, 7, "trailing comma before '}'"},
    {"leading comma in array", "[,1]", -1, FA_JSON_ESYNTAX, 1, NULL},
    {"double comma", "[1,,2]", -1, FA_JSON_ESYNTAX, 3, NULL},
    {"line comment", "[1]//c", -1, FA_JSON_ESYNTAX, 3, NULL},
    {"block comment first", "/*c*/[1]", -1, FA_JSON_ESYNTAX, 0, NULL},
    {"block comment inside", "[1,/*c*/2]", -1, FA_JSON_ESYNTAX, 3, NULL},
    {"trailing garbage", "{} x", -1, FA_JSON_ESYNTAX, 3, NULL},
    {"two objects", "{}{}", -1, FA_JSON_ESYNTAX, 2, "after the JSON value"},
    {"two numbers", "1 2", -1, FA_JSON_ESYNTAX, 2, "after the JSON value"},
    {"two strings", "\"a\" \"b\"", -1, FA_JSON_ESYNTAX, 4, "after the JSON value"},
    {"number then comma", "1,", -1, FA_JSON_ESYNTAX, 1, "after the JSON value"},
    {"extra closing bracket", "[1]]", -1, FA_JSON_ESYNTAX, 3, NULL},
    {"extra closing brace", "{\"a\":1}}", -1, FA_JSON_ESYNTAX, 7, NULL},
    {"missing colon", "{\"a\" 1}", -1, FA_JSON_ESYNTAX, -1, NULL},
    {"missing colon between strings", "{\"a\" \"b\"}", -1, FA_JSON_ESYNTAX, 5, "expected ':'"},
    {"key without value", "{\"a\"}", -1, FA_JSON_ESYNTAX, 4, "expected ':'"},
    {"colon without value", "{\"a\":}", -1, FA_JSON_ESYNTAX, 5, "expected a value"},
    {"missing comma in array", "[1 2]", -1, FA_JSON_ESYNTAX, 3, "expected ',' or ']'"},
    {"missing comma between strings", "[\"a\" \"b\"]", -1, FA_JSON_ESYNTAX, 5,
     "expected ',' or ']'"},
    {"missing comma in object", "{\"a\":1 \"b\":2}", -1, FA_JSON_ESYNTAX, 7, NULL},
    {"colon in array", "[1:2]", -1, FA_JSON_ESYNTAX, -1, NULL},
    {"number as key", "{1:2}", -1, FA_JSON_ESYNTAX, 1, "string key"},
    {"null as key", "{null:1}", -1, FA_JSON_ESYNTAX, 1, "string key"},
    {"object as key", "{{}:1}", -1, FA_JSON_ESYNTAX, 1, "string key"},
    {"array as key", "{[]:1}", -1, FA_JSON_ESYNTAX, 1, "string key"},
    {"single-quoted key", "{'a':1}", -1, FA_JSON_ESYNTAX, 1, NULL},
    {"mismatched brackets", "[}", -1, FA_JSON_ESYNTAX, 1, NULL},
    {"mismatched braces", "{]", -1, FA_JSON_ESYNTAX, 1, NULL},
    {"unterminated string", "\"abc", -1, FA_JSON_ESYNTAX, 0, "unterminated string"},
    {"unterminated value string", "{\"userId\":\"user_42", -1, FA_JSON_ESYNTAX, 10,
     "invalid JSON at byte 10: unterminated string"},
    {"unterminated array", "[1,2", -1, FA_JSON_ESYNTAX, 4, "unexpected end of input"},
    {"invalid escape", "\"a\\x\"", -1, FA_JSON_ESYNTAX, 2, "invalid escape"},
    {"short \\u escape", "\"\\u12\"", -1, FA_JSON_ESYNTAX, 1, NULL},
    {"non-hex \\u escape", "\"\\u12G4\"", -1, FA_JSON_ESYNTAX, 1, NULL},
    {"escaped single quote", "\"\\'\"", -1, FA_JSON_ESYNTAX, 1, "invalid escape"},
    {"raw control character", "\"a\x01z\"", -1, FA_JSON_ESTRING, 2, "control character 0x01"},
    {"raw tab", "\"a\tb\"", -1, FA_JSON_ESTRING, 2, "control character 0x09"},
    {"raw newline in key", "{\"a\nb\":1}", -1, FA_JSON_ESTRING, 3, "control character"},
    {"NUL in string", "\"a\0b\"", 5, FA_JSON_ESTRING, 2, "control character 0x00"},
    {"NUL between values", "[1,\0 2]", 7, FA_JSON_ESYNTAX, 3, "0x00"},
    {"NUL after the value", "{}\0", 3, FA_JSON_ESYNTAX, 2, NULL},
    {"lone high surrogate", "\"\\ud800\"", -1, FA_JSON_ESYNTAX, 1, "lone high surrogate"},
    {"lone low surrogate", "\"\\udc00\"", -1, FA_JSON_ESYNTAX, 1, "lone low surrogate"},
    {"high surrogate then letter", "\"\\ud800x\"", -1, FA_JSON_ESYNTAX, 1, "lone high"},
    {"high surrogate then BMP escape", "\"\\ud800\\u0041\"", -1, FA_JSON_ESYNTAX, 1, "lone high"},
    {"two high surrogates", "\"\\ud83d\\ud83d\"", -1, FA_JSON_ESYNTAX, 1, "lone high"},
    {"reversed surrogate pair", "\"\\ude00\\ud83d\"", -1, FA_JSON_ESYNTAX, 1, "lone low"},
    {"lone continuation byte", "\"\x80\"", -1, FA_JSON_ESTRING, 1, "invalid UTF-8 byte"},
    {"overlong 2-byte C0", "\"\xc0\xaf\"", -1, FA_JSON_ESTRING, 1, "overlong"},
    {"overlong 2-byte C1", "\"\xc1\xbf\"", -1, FA_JSON_ESTRING, 1, "overlong"},
    {"overlong 3-byte", "\"\xe0\x80\xaf\"", -1, FA_JSON_ESTRING, 1, "overlong"},
    {"overlong 4-byte", "\"\xf0\x80\x80\xaf\"", -1, FA_JSON_ESTRING, 1, "overlong"},
    {"encoded surrogate D800", "\"\xed\xa0\x80\"", -1, FA_JSON_ESTRING, 1, "surrogate"},
    {"encoded surrogate DFFF", "\"\xed\xbf\xbf\"", -1, FA_JSON_ESTRING, 1, "surrogate"},
    {"above U+10FFFF (F4 90)", "\"\xf4\x90\x80\x80\"", -1, FA_JSON_ESTRING, 1, "above U+10FFFF"},
    {"above U+10FFFF (F5)", "\"\xf5\x80\x80\x80\"", -1, FA_JSON_ESTRING, 1, "above U+10FFFF"},
    {"byte FF", "\"\xff\"", -1, FA_JSON_ESTRING, 1, "above U+10FFFF"},
    {"truncated 3-byte at end of string", "\"\xe2\x82\"", -1, FA_JSON_ESTRING, 1, "truncated"},
    {"bad continuation", "\"\xe2\x28\xa1\"", -1, FA_JSON_ESTRING, 1, "truncated"},
    {"truncated 4-byte sequence", "[\"\xf0\x9f\x98\",1]", -1, FA_JSON_ESTRING, 2, "truncated"},
    {"invalid UTF-8 in key", "{\"\xc3\":1}", -1, FA_JSON_ESTRING, 2, NULL},
    {"UTF-8 outside a string", "[\xc3\xa9]", -1, FA_JSON_ESYNTAX, 1, NULL},
    {"duplicate key", "{\"a\":1,\"a\":2}", -1, FA_JSON_EDUPKEY, 7, "duplicate key \"a\""},
    {"duplicate key after unescaping", "{\"userId\":1,\"u\\u0073erId\":2}", -1, FA_JSON_EDUPKEY,
     12, "duplicate key \"userId\""},
    {"duplicate key in nested object", "[{\"x\":{\"k\":1,\"j\":2,\"k\":3}}]", -1, FA_JSON_EDUPKEY,
     19, "duplicate key \"k\""},
    {"duplicate escaped key shown escaped", "{\"a\\nb\":1,\"a\\u000ab\":2}", -1, FA_JSON_EDUPKEY,
     -1, "duplicate key \"a\\nb\""},
};

ParameterizedTestParameters(json, invalid)
{
    static int idx[FA_ARRAY_SIZE(bad_cases)];
    for (size_t i = 0; i < FA_ARRAY_SIZE(idx); i++)
        idx[i] = (int)i;
    return cr_make_param_array(int, idx, FA_ARRAY_SIZE(idx));
}

ParameterizedTest(int *i, json, invalid, .init = setup, .fini = teardown)
{
    const bad_case_t *c = &bad_cases[*i];
    size_t n = c->len < 0 ? strlen(c->in) : (size_t)c->len;
    fa_json_t doc;
    fa_json_error_t err = {0};
    int r = parse_exact(&doc, c->in, n, NULL, &err);
    cr_assert_eq(r, -1, "%s: accepted", c->desc);
    cr_expect_eq(err.code, c->code, "%s: code %d, expected %d (%s)", c->desc, err.code, c->code,
                 err.msg);
    if (c->offset >= 0)
        cr_expect_eq((long)err.offset, c->offset, "%s: offset %zu, expected %ld (%s)", c->desc,
                     err.offset, c->offset, err.msg);
    cr_expect(strncmp(err.msg, "invalid JSON at byte ", 21) == 0, "%s: %s", c->desc, err.msg);
    if (c->msg)
        cr_expect(strstr(err.msg, c->msg) != NULL, "%s: message \"%s\" lacks \"%s\"", c->desc,
                  err.msg, c->msg);
}

/* ---- every truncation point ---- */

ParameterizedTestParameters(json, truncated_1mrc)
{
    static int lens[sizeof(MRC) - 1];
    for (size_t i = 0; i < FA_ARRAY_SIZE(lens); i++)
        lens[i] = (int)i;
    return cr_make_param_array(int, lens, FA_ARRAY_SIZE(lens));
}

ParameterizedTest(int *n, json, truncated_1mrc, .init = setup, .fini = teardown)
{
    fa_json_t doc;
    fa_json_error_t err = {0};
    cr_assert_eq(parse_exact(&doc, MRC, (size_t)*n, NULL, &err), -1,
                 "prefix of %d bytes accepted", *n);
    cr_assert_leq(err.offset, (size_t)*n, "prefix of %d: offset %zu past the end", *n, err.offset);
    cr_assert_neq(err.code, FA_JSON_OK);
}

Test(json, every_truncation_of_the_nested_doc_is_an_error, .init = setup, .fini = teardown)
{
    size_t len = strlen(nested_doc);
    for (size_t n = 0; n < len; n++) {
        fa_json_t doc;
        fa_json_error_t err = {0};
        fa_pool_reset(&pool);
        cr_assert_eq(parse_exact(&doc, nested_doc, n, NULL, &err), -1, "prefix of %zu accepted",
                     n);
        cr_assert_leq(err.offset, n, "prefix of %zu: offset %zu", n, err.offset);
    }
}

/* ---- accessors ---- */

Test(json, mrc_accessors, .init = setup, .fini = teardown)
{
    fa_json_t doc;
    fa_json_error_t err;
    cr_assert_eq(parse_n(&doc, MRC, strlen(MRC), NULL, &err), 0, "%s", err.msg);
    int root = fa_json_root(&doc);
    cr_assert_eq(fa_json_count(&doc), 5);
    cr_assert_eq(fa_json_size(&doc, root), 2);
    int u = fa_json_object_get(&doc, root, "userId", 6);
    int v = fa_json_object_get(&doc, root, "value", 5);
    cr_assert_eq(fa_json_object_get(&doc, root, "user", 4), -1, "prefix of a key is no match");
    cr_assert_eq(fa_json_object_get(&doc, root, "userIdx", 7), -1);
    cr_assert_eq(fa_json_object_get(&doc, u, "x", 1), -1, "a string is not an object");
    cr_assert_eq(fa_json_type(&doc, u), FA_JSON_STRING);
    cr_assert_eq(fa_json_type(&doc, v), FA_JSON_NUMBER);
    fa_str_t s;
    cr_assert(fa_json_str(&doc, u, &pool, &s));
    cr_assert_eq(s.len, 7);
    cr_assert(memcmp(s.ptr, "user_42", 7) == 0);
    cr_assert_eq(s.ptr, MRC + 11, "no escapes: zero-copy into the input");
    cr_assert_not(fa_json_str(&doc, v, &pool, &s), "a number is not a string");
    double d;
    cr_assert(fa_json_number(&doc, v, &d));
    cr_assert_eq(d, 42.5);
    cr_assert_not(fa_json_number(&doc, u, &d), "a string is not a number");
    fa_str_t raw = fa_json_raw(&doc, root);
    cr_assert_eq(raw.len, strlen(MRC), "an object's raw text includes its braces");
    raw = fa_json_raw(&doc, v);
    cr_assert(raw.len == 4 && memcmp(raw.ptr, "42.5", 4) == 0);
    cr_assert_str_eq(fa_json_type_name(fa_json_type(&doc, v)), "a number");
}

Test(json, iteration_skips_subtrees, .init = setup, .fini = teardown)
{
    const char *in = "{\"a\":[1,[2,3],{\"x\":{\"y\":4}}],\"b\":{\"c\":[[]]},\"d\":\"e\"}";
    fa_json_t doc;
    fa_json_error_t err;
    cr_assert_eq(parse_n(&doc, in, strlen(in), NULL, &err), 0, "%s", err.msg);
    const char *keys[] = {"a", "b", "d"};
    fa_json_type_t types[] = {FA_JSON_ARRAY, FA_JSON_OBJECT, FA_JSON_STRING};
    fa_json_iter_t it = fa_json_iter(&doc, 0);
    int k, v, n = 0;
    while (fa_json_iter_next(&doc, &it, &k, &v)) {
        cr_assert_lt(n, 3);
        fa_str_t ks = fa_json_raw(&doc, k);
        cr_assert(ks.len == 1 && ks.ptr[0] == keys[n][0], "member %d key", n);
        cr_assert_eq(fa_json_type(&doc, v), types[n], "member %d type", n);
        n++;
    }
    cr_assert_eq(n, 3);
    int a = fa_json_object_get(&doc, 0, "a", 1);
    cr_assert_eq(fa_json_size(&doc, a), 3);
    it = fa_json_iter(&doc, a);
    const char *raws[] = {"1", "[2,3]", "{\"x\":{\"y\":4}}"};
    n = 0;
    while (fa_json_iter_next(&doc, &it, &k, &v)) {
        cr_assert_eq(k, -1, "array elements have no key");
        fa_str_t r = fa_json_raw(&doc, v);
        cr_assert(r.len == strlen(raws[n]) && memcmp(r.ptr, raws[n], r.len) == 0, "element %d", n);
        n++;
    }
    cr_assert_eq(n, 3);
    it = fa_json_iter(&doc, fa_json_object_get(&doc, 0, "d", 1));
    cr_assert_not(fa_json_iter_next(&doc, &it, &k, &v), "a string has no members");
    cr_assert_eq(fa_json_skip(&doc, a), fa_json_object_get(&doc, 0, "b", 1) - 1);
}

Test(json, escaped_key_lookup, .init = setup, .fini = teardown)
{
    const char *in =
        "{\"u\\u0073erId\":\"x\",\"a\\\"b\":1,\"\\ud83d\\ude00\":2,\"tab\\there\":3,\"caf\xc3\xa9\":4}";
    fa_json_t doc;
    fa_json_error_t err;
    cr_assert_eq(parse_n(&doc, in, strlen(in), NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(fa_json_object_get(&doc, 0, "userId", 6), 2);
    cr_assert_eq(fa_json_object_get(&doc, 0, "a\"b", 3), 4);
    cr_assert_eq(fa_json_object_get(&doc, 0, "\xf0\x9f\x98\x80", 4), 6);
    cr_assert_eq(fa_json_object_get(&doc, 0, "tab\there", 8), 8);
    cr_assert_eq(fa_json_object_get(&doc, 0, "caf\xc3\xa9", 5), 10);
    cr_assert_eq(fa_json_object_get(&doc, 0, "u\\u0073erId", 11), -1, "escapes are decoded");
    cr_assert_eq(fa_json_object_get(&doc, 0, "userI", 5), -1);
    cr_assert_eq(fa_json_object_get(&doc, 0, "userIdd", 7), -1);
}

Test(json, string_unescaping, .init = setup, .fini = teardown)
{
    const char *in = "[\"\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\\b\\f\\r\\t\\u0000\\u20ac!\"]";
    const char want[] = "\xc3\xa9\xf0\x9f\x98\x80\n\"\\/\b\f\r\t\0\xe2\x82\xac!";
    fa_json_t doc;
    fa_json_error_t err;
    cr_assert_eq(parse_n(&doc, in, strlen(in), NULL, &err), 0, "%s", err.msg);
    fa_str_t s;
    cr_assert(fa_json_str_escaped(&doc, 1));
    cr_assert(fa_json_str(&doc, 1, &pool, &s));
    cr_assert_eq(s.len, sizeof(want) - 1);
    cr_assert(memcmp(s.ptr, want, s.len) == 0);
    cr_assert_eq(s.ptr[s.len], '\0', "a copied string is NUL-terminated");
    cr_assert_eq(fa_utf8_len(s.ptr, s.len), 13);
}

Test(json, utf8_len_counts_code_points)
{
    cr_assert_eq(fa_utf8_len("", 0), 0);
    cr_assert_eq(fa_utf8_len("abc", 3), 3);
    cr_assert_eq(fa_utf8_len("caf\xc3\xa9", 5), 4);
    cr_assert_eq(fa_utf8_len("\xe2\x82\xac\xf0\x9f\x98\x80", 7), 2);
}

/* Eight bytes at a time plus a tail: every start and length over text mixing ASCII with 2-, 3-
 * and 4-byte sequences (and stray continuation bytes) against a byte-by-byte count. */
Test(json, utf8_len_matches_a_byte_count_at_every_offset)
{
    static const char text[] = "ab\xc3\xa9" "cdef\xe2\x82\xacgh\xf0\x9f\x98\x80ijklmnop\x80\xbfq"
                               "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9rstuvwxyz0123456789\xe2\x82\xac";
    size_t len = sizeof(text) - 1;
    for (size_t start = 0; start < len; start++)
        for (size_t n = 0; start + n <= len; n++) {
            size_t want = 0;
            for (size_t i = start; i < start + n; i++)
                want += ((unsigned char)text[i] & 0xc0) != 0x80;
            cr_assert_eq(fa_utf8_len(text + start, n), want, "start %zu len %zu", start, n);
        }
}

/* ---- numbers ---- */

typedef struct {
    const char *in;
    bool ok;
    double want;
} num_case_t;

Test(json, numbers, .init = setup, .fini = teardown)
{
    static const num_case_t cases[] = {
        {"0", true, 0.0},
        {"-0", true, -0.0},
        {"42.5", true, 42.5},
        {"-12.25e2", true, -1225.0},
        {"1e22", true, 1e22},
        {"1e23", true, 1e23},
        {"9007199254740993", true, 9007199254740992.0},
        {"0.1", true, 0.1},
        {"123456789012345678901234567890", true, 123456789012345678901234567890.0},
        {"1e999", false, 0},
        {"-1e999", false, 0},
        {"1e-400", true, 0.0},
        {"4.9406564584124654e-324", true, 4.9406564584124654e-324},
        {"1.7976931348623157e308", true, 1.7976931348623157e308},
    };
    for (size_t i = 0; i < FA_ARRAY_SIZE(cases); i++) {
        /* Both bare (the number ends the buffer) and inside an array. */
        char arr[128];
        int n = snprintf(arr, sizeof(arr), "[%s]", cases[i].in);
        const char *ins[2] = {cases[i].in, arr};
        size_t lens[2] = {strlen(cases[i].in), (size_t)n};
        for (int j = 0; j < 2; j++) {
            fa_json_t doc;
            fa_json_error_t err;
            cr_assert_eq(parse_n(&doc, ins[j], lens[j], NULL, &err), 0, "%s: %s", ins[j], err.msg);
            double d = -1;
            int tok = j ? 1 : 0;
            cr_assert_eq(fa_json_number(&doc, tok, &d), cases[i].ok, "%s", ins[j]);
            if (cases[i].ok) {
                cr_assert_eq(d, cases[i].want, "%s: %.17g", ins[j], d);
                cr_assert_eq(signbit(d), signbit(cases[i].want), "%s: sign", ins[j]);
            }
        }
    }
}

/* The fast path must agree with strtod bit for bit, on the kinds of numbers it takes. */
Test(json, number_fast_path_matches_strtod, .init = setup, .fini = teardown)
{
    srand(12345);
    for (int i = 0; i < 20000; i++) {
        char in[64];
        long long m = ((long long)rand() << 20 ^ rand()) % 1000000000000000LL;
        int frac = rand() % 18, ex = rand() % 30 - 15;
        int n;
        if (i % 3 == 0)
            n = snprintf(in, sizeof(in), "%lld", m);
        else if (i % 3 == 1)
            n = snprintf(in, sizeof(in), "%s%lld.%0*d", rand() % 2 ? "-" : "", m / 1000, 3,
                         (int)(m % 1000));
        else
            n = snprintf(in, sizeof(in), "%lld.%de%d", m % 100000, frac, ex);
        fa_json_t doc;
        fa_json_error_t err;
        fa_pool_reset(&pool);
        cr_assert_eq(parse_n(&doc, in, (size_t)n, NULL, &err), 0, "%s: %s", in, err.msg);
        double d;
        cr_assert(fa_json_number(&doc, 0, &d), "%s", in);
        double want = strtod(in, NULL);
        cr_assert(memcmp(&d, &want, sizeof(d)) == 0, "%s: got %.17g want %.17g", in, d, want);
    }
}

/* ---- limits and hostile sizes ---- */

static char *repeat(const char *open, size_t n, const char *mid, const char *close)
{
    size_t lo = strlen(open), lm = strlen(mid), lc = strlen(close);
    char *s = fa_malloc(n * (lo + lc) + lm + 1), *p = s;
    for (size_t i = 0; i < n; i++, p += lo)
        memcpy(p, open, lo);
    memcpy(p, mid, lm);
    p += lm;
    for (size_t i = 0; i < n; i++, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return s;
}

Test(json, depth_limit, .init = setup, .fini = teardown)
{
    fa_json_limits_t lim = {.max_depth = 4};
    fa_json_t doc;
    fa_json_error_t err;
    char *ok = repeat("[", 4, "1", "]");
    char *deep = repeat("[", 5, "1", "]");
    char *objs = repeat("{\"k\":", 5, "1", "}");
    cr_assert_eq(parse_n(&doc, ok, strlen(ok), &lim, &err), 0, "%s", err.msg);
    cr_assert_eq(parse_n(&doc, deep, strlen(deep), &lim, &err), -1);
    cr_assert_eq(err.code, FA_JSON_ETOODEEP);
    cr_assert_eq(err.offset, 4, "the first bracket beyond the limit");
    cr_assert_eq(parse_n(&doc, objs, strlen(objs), &lim, &err), -1);
    cr_assert_eq(err.code, FA_JSON_ETOODEEP);
    fa_free(ok);
    fa_free(deep);
    fa_free(objs);
}

/* Deep nesting well past the limit, in both the small-body and the pre-scanned path, and far
 * past anything a recursive parser would survive. */
Test(json, hostile_depth_is_refused_without_recursion, .init = setup, .fini = teardown)
{
    size_t depths[] = {65, 200, 100000, 1000000};
    for (size_t i = 0; i < FA_ARRAY_SIZE(depths); i++) {
        char *deep = repeat("[", depths[i], "", "]");
        fa_json_limits_t lim = {.max_bytes = 4u << 20};
        fa_json_t doc;
        fa_json_error_t err;
        fa_pool_reset(&pool);
        cr_assert_eq(parse_n(&doc, deep, strlen(deep), &lim, &err), -1, "depth %zu", depths[i]);
        cr_assert_eq(err.code, FA_JSON_ETOODEEP, "depth %zu: %s", depths[i], err.msg);
        cr_assert_eq(err.offset, 64);
        fa_free(deep);
    }
    /* Unclosed, too. */
    char *open = repeat("[", 300000, "", "");
    fa_json_t doc;
    fa_json_error_t err;
    cr_assert_eq(parse_n(&doc, open, strlen(open), NULL, &err), -1);
    cr_assert_eq(err.code, FA_JSON_ETOODEEP);
    fa_free(open);
}

Test(json, token_and_byte_limits, .init = setup, .fini = teardown)
{
    fa_json_t doc;
    fa_json_error_t err;
    fa_json_limits_t lim = {.max_tokens = 3};
    cr_assert_eq(parse_n(&doc, "[1,2]", 5, &lim, &err), 0, "%s", err.msg);
    cr_assert_eq(parse_n(&doc, "[1,2,3]", 7, &lim, &err), -1);
    cr_assert_eq(err.code, FA_JSON_ETOOMANY, "%s", err.msg);
    cr_assert_eq(parse_n(&doc, "{\"a\":1,\"b\":2}", 13, &lim, &err), -1);
    cr_assert_eq(err.code, FA_JSON_ETOOMANY, "%s", err.msg);

    lim = (fa_json_limits_t){.max_bytes = 10};
    cr_assert_eq(parse_n(&doc, "[1,2,3,4]", 9, &lim, &err), 0);
    cr_assert_eq(parse_n(&doc, "[1,2,3,4,5]", 11, &lim, &err), -1);
    cr_assert_eq(err.code, FA_JSON_ETOOBIG);

    /* A big array beyond the default token limit, in the pre-scanned path. */
    size_t n = FA_JSON_DEFAULT_MAX_TOKENS + 10;
    char *big = fa_malloc(n * 2 + 2);
    big[0] = '[';
    for (size_t i = 0; i < n; i++) {
        big[1 + 2 * i] = '0';
        big[2 + 2 * i] = ',';
    }
    big[2 * n] = ']';
    cr_assert_eq(parse_n(&doc, big, 2 * n + 1, NULL, &err), -1);
    cr_assert_eq(err.code, FA_JSON_ETOOMANY, "%s", err.msg);
    fa_free(big);
}

Test(json, huge_string_is_fine_and_zero_copy, .init = setup, .fini = teardown)
{
    size_t n = 900000;
    char *s = fa_malloc(n + 16);
    memcpy(s, "{\"k\":\"", 6);
    for (size_t i = 0; i < n; i++)
        s[6 + i] = (char)('a' + i % 26);
    memcpy(s + 6 + n, "\"}", 2);
    fa_json_t doc;
    fa_json_error_t err;
    cr_assert_eq(parse_n(&doc, s, n + 8, NULL, &err), 0, "%s", err.msg);
    fa_str_t v;
    cr_assert(fa_json_str(&doc, 2, &pool, &v));
    cr_assert_eq(v.len, n);
    cr_assert_eq(v.ptr, s + 6);
    s[6 + n / 2] = '\x1f';
    cr_assert_eq(parse_n(&doc, s, n + 8, NULL, &err), -1);
    cr_assert_eq(err.code, FA_JSON_ESTRING);
    cr_assert_eq(err.offset, 6 + n / 2);
    fa_free(s);
}

/* Many keys use the hashed duplicate check; the error names the later key. */
Test(json, duplicate_keys_in_large_objects, .init = setup, .fini = teardown)
{
    char buf[8192];
    size_t w = 0;
    buf[w++] = '{';
    for (int i = 0; i < 300; i++)
        w += (size_t)sprintf(buf + w, "%s\"key%d\":%d", i ? "," : "", i, i);
    buf[w++] = '}';
    fa_json_t doc;
    fa_json_error_t err;
    cr_assert_eq(parse_n(&doc, buf, w, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(fa_json_size(&doc, 0), 300);
    int v = fa_json_object_get(&doc, 0, "key299", 6);
    cr_assert_geq(v, 0);
    cr_assert(fa_json_raw(&doc, v).len == 3 && memcmp(fa_json_raw(&doc, v).ptr, "299", 3) == 0);
    /* Make the last key repeat key17, written with an escape. */
    w -= strlen("\"key299\":299}");
    w += (size_t)sprintf(buf + w, "\"k\\u0065y17\":0}");
    cr_assert_eq(parse_n(&doc, buf, w, NULL, &err), -1);
    cr_assert_eq(err.code, FA_JSON_EDUPKEY);
    cr_assert(strstr(err.msg, "duplicate key \"key17\"") != NULL, "%s", err.msg);
}

Test(json, duplicate_key_message_is_bounded, .init = setup, .fini = teardown)
{
    char buf[2048];
    char key[600];
    memset(key, 'x', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    int n = snprintf(buf, sizeof(buf), "{\"%s\":1,\"%s\":2}", key, key);
    fa_json_t doc;
    fa_json_error_t err;
    cr_assert_eq(parse_n(&doc, buf, (size_t)n, NULL, &err), -1);
    cr_assert_eq(err.code, FA_JSON_EDUPKEY);
    cr_assert_lt(strlen(err.msg), sizeof(err.msg));
    cr_assert(strstr(err.msg, "...") != NULL, "%s", err.msg);
}

/* ---- no allocator calls on the hot path ---- */

Test(json, parsing_allocates_nothing_after_warm_up, .init = setup, .fini = teardown)
{
    const char *ins[] = {MRC, nested_doc, "{\"a\\u0041\":\"x\\ny\",\"b\":[1,2,{\"c\":null}]}"};
    for (int round = 0; round < 2; round++) {
        uint64_t before = fa_alloc_count();
        for (int rep = 0; rep < 100; rep++) {
            for (size_t i = 0; i < FA_ARRAY_SIZE(ins); i++) {
                fa_json_t doc;
                fa_json_error_t err;
                cr_assert_eq(parse_n(&doc, ins[i], strlen(ins[i]), NULL, &err), 0, "%s", err.msg);
                fa_str_t s;
                double d;
                int k = fa_json_object_get(&doc, 0, "value", 5);
                if (k >= 0)
                    cr_assert(fa_json_number(&doc, k, &d));
                k = fa_json_object_get(&doc, 0, "aA", 2);
                if (k >= 0)
                    cr_assert(fa_json_str(&doc, k, &pool, &s));
                fa_pool_reset(&pool);
            }
        }
        if (round == 1)
            cr_assert_eq(fa_alloc_count(), before, "parsing called the allocator");
    }
}

/* ---- output ---- */

typedef struct {
    const char *desc;
    const char *in;
    int len;
    const char *want;
} esc_case_t;

Test(json, escape_table)
{
    static const esc_case_t cases[] = {
        {"plain", "abc", -1, "abc"},
        {"quote and backslash", "a\"b\\c", -1, "a\\\"b\\\\c"},
        {"short escapes", "\b\f\n\r\t", -1, "\\b\\f\\n\\r\\t"},
        {"other control characters", "\x01\x1f\x0b", -1, "\\u0001\\u001f\\u000b"},
        {"NUL", "a\0b", 3, "a\\u0000b"},
        {"slash and DEL kept", "/\x7f", -1, "/\x7f"},
        {"valid UTF-8 kept", "caf\xc3\xa9 \xf0\x9f\x98\x80", -1, "caf\xc3\xa9 \xf0\x9f\x98\x80"},
        {"invalid UTF-8 replaced", "a\xffz\xc3", -1, "a\\ufffdz\\ufffd"},
        {"encoded surrogate replaced byte by byte", "\xed\xa0\x80", -1,
         "\\ufffd\\ufffd\\ufffd"},
    };
    for (size_t i = 0; i < FA_ARRAY_SIZE(cases); i++) {
        const esc_case_t *c = &cases[i];
        size_t n = c->len < 0 ? strlen(c->in) : (size_t)c->len;
        char out[128];
        size_t need = fa_json_escape(NULL, 0, c->in, n);
        cr_assert_eq(need, strlen(c->want), "%s: size", c->desc);
        cr_assert_eq(fa_json_escape(out, sizeof(out), c->in, n), need, "%s", c->desc);
        cr_assert(memcmp(out, c->want, need) == 0, "%s: got %.*s", c->desc, (int)need, out);
        /* A short buffer gets a prefix and the full size. */
        char small[4] = {'#', '#', '#', '#'};
        cr_assert_eq(fa_json_escape(small, 3, c->in, n), need, "%s", c->desc);
        cr_assert(memcmp(small, c->want, FA_MIN(need, (size_t)3)) == 0, "%s: prefix", c->desc);
        cr_assert_eq(small[3], '#', "%s: wrote past cap", c->desc);
    }
}

/* Escaping then parsing gives back the input, for every byte value and for multi-byte text. */
Test(json, escape_round_trip, .init = setup, .fini = teardown)
{
    char in[256 + 64];
    size_t n = 0;
    for (int c = 0; c < 128; c++)
        in[n++] = (char)c;
    const char *mb = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xef\xbf\xbf";
    memcpy(in + n, mb, strlen(mb));
    n += strlen(mb);
    char out[2048];
    out[0] = '"';
    size_t m = fa_json_escape(out + 1, sizeof(out) - 2, in, n);
    cr_assert_lt(m, sizeof(out) - 2);
    out[m + 1] = '"';
    fa_json_t doc;
    fa_json_error_t err;
    cr_assert_eq(parse_n(&doc, out, m + 2, NULL, &err), 0, "%s", err.msg);
    fa_str_t s;
    cr_assert(fa_json_str(&doc, 0, &pool, &s));
    cr_assert_eq(s.len, n);
    cr_assert(memcmp(s.ptr, in, n) == 0);
}

Test(json, writer_builds_valid_json, .init = setup, .fini = teardown)
{
    fa_json_writer_t w;
    fa_json_writer_init(&w, &pool, 8); /* tiny, so it has to grow */
    fa_json_write_begin_object(&w);
    fa_json_write_key(&w, "count", 5);
    fa_json_write_int(&w, 1000000);
    fa_json_write_key(&w, "min", 3);
    fa_json_write_int(&w, INT64_MIN);
    fa_json_write_key(&w, "avg", 3);
    fa_json_write_double(&w, 42.5);
    fa_json_write_key(&w, "name", 4);
    fa_json_write_str(&w, "a\"b\n", 4);
    fa_json_write_key(&w, "list", 4);
    fa_json_write_begin_array(&w);
    fa_json_write_bool(&w, true);
    fa_json_write_null(&w);
    fa_json_write_begin_object(&w);
    fa_json_write_end_object(&w);
    fa_json_write_begin_array(&w);
    fa_json_write_end_array(&w);
    fa_json_write_double(&w, NAN);
    fa_json_write_bool(&w, false);
    fa_json_write_end_array(&w);
    fa_json_write_key(&w, "raw", 3);
    fa_json_write_raw(&w, "[1]", 3);
    fa_json_write_end_object(&w);
    fa_str_t s = fa_json_writer_str(&w);
    const char *want = "{\"count\":1000000,\"min\":-9223372036854775808,\"avg\":42.5,"
                       "\"name\":\"a\\\"b\\n\",\"list\":[true,null,{},[],null,false],\"raw\":[1]}";
    cr_assert(s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0, "got %.*s", (int)s.len,
              s.ptr);
    fa_json_t doc;
    fa_json_error_t err;
    cr_assert_eq(parse_n(&doc, s.ptr, s.len, NULL, &err), 0, "%s", err.msg);
}

Test(json, doubles_are_shortest_round_trip, .init = setup, .fini = teardown)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0.1, "0.1"},   {-0.0, "-0"},   {0.0, "0"},        {1e15, "1e+15"}, {123456.0, "123456"},
        {1.0 / 3, "0.3333333333333333"}, {1e300, "1e+300"}, {5e-324, "4.94065645841247e-324"},
        {INFINITY, "null"},
    };
    for (size_t i = 0; i < FA_ARRAY_SIZE(cases); i++) {
        fa_json_writer_t w;
        fa_json_writer_init(&w, &pool, 64);
        fa_json_write_double(&w, cases[i].v);
        fa_str_t s = fa_json_writer_str(&w);
        cr_assert(s.len == strlen(cases[i].want) && memcmp(s.ptr, cases[i].want, s.len) == 0,
                  "%.17g: got %.*s want %s", cases[i].v, (int)s.len, s.ptr, cases[i].want);
    }
    srand(7);
    for (int i = 0; i < 5000; i++) {
        uint64_t bits = (uint64_t)rand() << 33 ^ (uint64_t)rand() << 11 ^ (uint64_t)rand();
        double v;
        memcpy(&v, &bits, sizeof(v));
        if (!isfinite(v))
            continue;
        fa_json_writer_t w;
        fa_json_writer_init(&w, &pool, 64);
        fa_json_write_double(&w, v);
        fa_str_t s = fa_json_writer_str(&w);
        fa_json_t doc;
        fa_json_error_t err;
        cr_assert_eq(parse_n(&doc, s.ptr, s.len, NULL, &err), 0, "%.*s: %s", (int)s.len, s.ptr,
                     err.msg);
        double back;
        cr_assert(fa_json_number(&doc, 0, &back));
        cr_assert(memcmp(&back, &v, sizeof(v)) == 0, "%.17g wrote %.*s", v, (int)s.len, s.ptr);
        fa_pool_reset(&pool);
    }
}

/* ---- the flat-object fast path against the general path ---- */

/* Parses s through the general path and, if the flat path takes it too, checks that both built
 * the same tokens; returns whether the flat path took it. What the flat path declines goes to the
 * general path in fa_json_parse, so declining is always correct. */
static bool flat_agrees(const char *in, size_t n, const fa_json_limits_t *lim)
{
    fa_json_t gen, flat;
    fa_json_error_t err = {0};
    fa_pool_reset(&pool);
    const char *s = exact(in, n);
    int rg = fa__json_parse_path(&gen, &pool, s, n, lim, &err, FA__JSON_GENERAL);
    int rf = fa__json_parse_path(&flat, &pool, s, n, lim, NULL, FA__JSON_FLAT);
    if (rf != 0)
        return false;
    cr_assert_eq(rg, 0, "flat path accepted what the general path refuses (%s): %.*s", err.msg,
                 (int)n, s);
    cr_assert_eq(fa_json_count(&flat), fa_json_count(&gen), "%.*s", (int)n, s);
    for (int i = 0; i < fa_json_count(&gen); i++) {
        int a[5], b[5];
        fa__json_tok_fields(&gen, i, a);
        fa__json_tok_fields(&flat, i, b);
        cr_assert_arr_eq(a, b, sizeof(a), "token %d differs: %.*s", i, (int)n, s);
    }
    return true;
}

Test(json, flat_path_builds_the_general_tokens_or_declines, .init = setup, .fini = teardown)
{
    static const char *const seeds[] = {
        MRC,
        "{}",
        " { } \n",
        "{\"a\":1}",
        "{\"userId\" : \"user_1\" ,\t\"value\" : -0.5e+3 }\r\n",
        "{\"a\":true,\"b\":false,\"c\":null,\"d\":\"\",\"e\":0,\"f\":-12.25E-2}",
        "{\"caf\xc3\xa9\":\"\xe2\x82\xac 5\",\"n\":\"tab\\t \\u00e9 \\ud83d\\ude00\"}",
        "{\"k\\u0031\":1}",
        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,\"k\":11,"
        "\"l\":12,\"m\":13,\"n\":14,\"o\":15,\"p\":16}",
        "{\"k\":\"1234567\"}",
        "{\"key\":\"12345678\"} ",
        "{\"v\":-12.5e+3}\n",
        "{\"a\\u00e9\":\"x\xc3\xa9y\"}",
        "{\"userId\":\"user_123\",\"value\":12.5,\"t\":true}",
    };
    /* Bytes that matter to the grammar, and a few that are never allowed. */
    static const char alphabet[] = "{}[]\",:\\ \t\n0159.eE+-tfnulx/\x01\x80\xc3\xff";
    const size_t nalpha = sizeof(alphabet) - 1;
    char buf[512];
    unsigned taken = 0, cases = 0;
    for (size_t si = 0; si < FA_ARRAY_SIZE(seeds); si++) {
        const char *s = seeds[si];
        size_t len = strlen(s);
        cr_assert(flat_agrees(s, len, NULL), "flat path declined seed %zu: %s", si, s);
        for (size_t i = 0; i <= len; i++) {
            taken += flat_agrees(s, i, NULL), cases++; /* every truncation */
            if (i == len)
                break;
            /* deletion of byte i */
            memcpy(buf, s, i);
            memcpy(buf + i, s + i + 1, len - i - 1);
            taken += flat_agrees(buf, len - 1, NULL), cases++;
            for (size_t a = 0; a < nalpha; a++) {
                /* substitution of byte i */
                memcpy(buf, s, len);
                buf[i] = alphabet[a];
                taken += flat_agrees(buf, len, NULL), cases++;
                /* insertion before byte i */
                memcpy(buf, s, i);
                buf[i] = alphabet[a];
                memcpy(buf + i + 1, s + i, len - i);
                taken += flat_agrees(buf, len + 1, NULL), cases++;
            }
        }
    }
    /* Both outcomes must have happened many times, or the comparison proved little. */
    cr_assert_gt(taken, 500, "%u of %u", taken, cases);
    cr_assert_lt(taken, cases / 2, "%u of %u", taken, cases);

    /* Limits: a token cap below the member count, and 17 members, go to the general path. */
    fa_json_limits_t lim = {.max_tokens = 4};
    cr_assert_not(flat_agrees(MRC, strlen(MRC), &lim));
    lim.max_tokens = 5;
    cr_assert(flat_agrees(MRC, strlen(MRC), &lim));
    const char *k17 = "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,"
                      "\"j\":10,\"k\":11,\"l\":12,\"m\":13,\"n\":14,\"o\":15,\"p\":16,\"q\":17}";
    cr_assert_not(flat_agrees(k17, strlen(k17), NULL));
    /* Duplicates and escaped keys among several are the general path's (it names the key). */
    cr_assert_not(flat_agrees("{\"a\":1,\"a\":2}", 13, NULL));
    cr_assert_not(flat_agrees("{\"\\u0061\":1,\"b\":2}", 18, NULL));
}

/* Builds {"<key>":<value>} followed by ws spaces into buf; returns its length. */
static size_t member(char *buf, const char *key, size_t klen, const char *value, size_t vlen,
                     size_t ws)
{
    size_t n = 0;
    buf[n++] = '{';
    buf[n++] = '"';
    memcpy(buf + n, key, klen), n += klen;
    buf[n++] = '"';
    buf[n++] = ':';
    memcpy(buf + n, value, vlen), n += vlen;
    buf[n++] = '}';
    memset(buf + n, ' ', ws), n += ws;
    return n;
}

/* The flat path reads strings eight bytes at a time and, near the end of the input, the last eight
 * bytes shifted: strings of every length around 8 and 16 ending at every distance from the end of
 * an exact-size buffer (inputs under 8 bytes too), plain or with an escape, a non-ASCII character,
 * a control character or a quote at every position, all as the general path has them. */
Test(json, flat_path_strings_near_the_end_of_the_input, .init = setup, .fini = teardown)
{
    static const char *const inserts[] = {"\\n", "\\u00e9", "\xc3\xa9", "\xe2\x82\xac", "\x01",
                                          "\"", "\\", "\xff"};
    static const size_t klens[] = {0, 1, 6, 7, 8, 9, 15, 16, 17};
    char key[32], val[64], buf[128];
    unsigned taken = 0, cases = 0;
    memset(key, 'k', sizeof(key));
    for (size_t ki = 0; ki < FA_ARRAY_SIZE(klens); ki++) {
        for (size_t vlen = 0; vlen <= 18; vlen++) {
            for (size_t ws = 0; ws <= 9; ws++) {
                /* A plain string value, and the key alone with a number value. */
                val[0] = '"';
                memset(val + 1, 'v', vlen);
                val[vlen + 1] = '"';
                size_t n = member(buf, key, klens[ki], val, vlen + 2, ws);
                cr_assert(flat_agrees(buf, n, NULL), "declined: %.*s", (int)n, buf);
                n = member(buf, key, klens[ki], "1", 1, ws);
                cr_assert(flat_agrees(buf, n, NULL), "declined: %.*s", (int)n, buf);
                /* Something that is not plain ASCII at each position of the value. */
                for (size_t at = 0; at <= vlen; at++) {
                    for (size_t x = 0; x < FA_ARRAY_SIZE(inserts); x++) {
                        size_t xl = strlen(inserts[x]);
                        val[0] = '"';
                        memset(val + 1, 'v', vlen);
                        memmove(val + 1 + at + xl, val + 1 + at, vlen - at);
                        memcpy(val + 1 + at, inserts[x], xl);
                        val[vlen + xl + 1] = '"';
                        n = member(buf, key, klens[ki], val, vlen + xl + 2, ws);
                        taken += flat_agrees(buf, n, NULL), cases++;
                        /* The same text in the key. */
                        n = member(buf, val + 1, vlen + xl, "0", 1, ws);
                        taken += flat_agrees(buf, n, NULL), cases++;
                    }
                }
            }
        }
    }
    /* Escapes and valid UTF-8 are taken (a single key may be escaped); the rest is declined. */
    cr_assert_gt(taken, cases / 3, "%u of %u", taken, cases);
    cr_assert_lt(taken, cases, "%u of %u", taken, cases);
}

/* Numbers end with the input's last '}' in sight: every number form, at every distance from the
 * end of an exact-size buffer, with its FA_JSON_NUM_ flags as the general path records them. */
Test(json, flat_path_numbers_and_literals_at_the_end, .init = setup, .fini = teardown)
{
    static const char *const values[] = {
        "0",    "-0",   "7",     "-12",  "12.5", "0.25", "-0.0e+0", "1e5",  "1E-5", "2.5e10",
        "1e",   "1e+",  "1.",    "01",   "-",    "-a",   ".5",      "1.5x", "1ee5", "true",
        "false", "null", "tru",   "nul",  "fals", "truex", "nullx", "+1",   "1e999", "1.e5",
    };
    char buf[64];
    unsigned taken = 0;
    for (size_t i = 0; i < FA_ARRAY_SIZE(values); i++) {
        for (size_t ws = 0; ws <= 9; ws++) {
            size_t n = member(buf, "v", 1, values[i], strlen(values[i]), ws);
            taken += flat_agrees(buf, n, NULL);
            /* Truncated: the number runs into the end of the input. */
            taken += flat_agrees(buf, n - ws - 1, NULL);
        }
    }
    cr_assert_eq(taken, 14 * 10, "every valid value taken at every distance, no invalid one (%u)",
                 taken);
}

/* Duplicate keys on the flat path: compared as written, with a filter on the length (mod 64). */
Test(json, flat_path_duplicate_keys, .init = setup, .fini = teardown)
{
    char xs[66], in[200];
    cr_assert(flat_agrees("{\"ab\":1,\"cd\":2,\"ef\":3}", 22, NULL), "same lengths, no dup");
    cr_assert_not(flat_agrees("{\"ab\":1,\"cd\":2,\"ab\":3}", 22, NULL));
    cr_assert_not(flat_agrees("{\"\":1,\"\":2}", 11, NULL));
    /* Keys of 1 and 65 bytes share a filter bit; 65-byte keys differing only in the last byte. */
    memset(xs, 'x', 65);
    xs[65] = '\0';
    int n = snprintf(in, sizeof(in), "{\"x\":1,\"%s\":2,\"%.64sy\":3}", xs, xs);
    cr_assert(flat_agrees(in, (size_t)n, NULL), "%s", in);
    n = snprintf(in, sizeof(in), "{\"x\":1,\"%s\":2,\"%s\":3}", xs, xs);
    cr_assert_not(flat_agrees(in, (size_t)n, NULL), "%s", in);
}

/* What the tokenizer records for validate's sake, through both paths alike: a string plain ASCII
 * as written, and how a number is written. */
Test(json, ascii_strings_and_number_forms, .init = setup, .fini = teardown)
{
    static const char body[] = "\"a\":\"plain\",\"b\":\"caf\xc3\xa9\",\"c\":\"tab\\t\",\"d\":\"\","
                               "\"e\":12,\"f\":-1.5,\"g\":2e3,\"h\":1.5E-3,\"i\":true,\"j\":null";
    char in[256];
    for (int wrapped = 0; wrapped < 2; wrapped++) {
        /* As is (the flat path), then inside an array (the general path). */
        int n = snprintf(in, sizeof(in), wrapped ? "[{%s}]" : "{%s}", body);
        fa_json_t doc;
        fa_json_error_t err;
        cr_assert_eq(parse_exact(&doc, in, (size_t)n, NULL, &err), 0, "%s", err.msg);
        int o = wrapped;
#define GET(k) fa_json_object_get(&doc, o, k, 1)
        cr_assert(fa_json_str_ascii(&doc, GET("a")));
        cr_assert_not(fa_json_str_ascii(&doc, GET("b")), "non-ASCII");
        cr_assert_not(fa_json_str_ascii(&doc, GET("c")), "escaped");
        cr_assert(fa_json_str_escaped(&doc, GET("c")));
        cr_assert_not(fa_json_str_escaped(&doc, GET("b")));
        cr_assert(fa_json_str_ascii(&doc, GET("d")), "empty");
        cr_assert_not(fa_json_str_ascii(&doc, GET("e")), "a number is not a string");
        cr_assert(fa_json_str_ascii(&doc, GET("a") - 1), "a key is a string too");
        cr_assert_eq(fa_json_number_form(&doc, GET("e")), 0);
        cr_assert_eq(fa_json_number_form(&doc, GET("f")), FA_JSON_NUM_FRACTION);
        cr_assert_eq(fa_json_number_form(&doc, GET("g")), FA_JSON_NUM_EXPONENT);
        cr_assert_eq(fa_json_number_form(&doc, GET("h")),
                     FA_JSON_NUM_FRACTION | FA_JSON_NUM_EXPONENT);
        cr_assert_eq(fa_json_number_form(&doc, GET("i")), 0, "a literal");
        cr_assert_eq(fa_json_number_form(&doc, GET("j")), 0, "a literal");
        cr_assert_eq(fa_json_number_form(&doc, GET("a")), 0, "a string");
        cr_assert_eq(fa_json_number_form(&doc, o), 0, "an object");
#undef GET
        fa_pool_reset(&pool);
    }
    /* A bare top-level number records its form too. */
    fa_json_t doc;
    cr_assert_eq(parse_exact(&doc, " -2.5e1 ", 8, NULL, NULL), 0);
    cr_assert_eq(fa_json_number_form(&doc, 0), FA_JSON_NUM_FRACTION | FA_JSON_NUM_EXPONENT);
}
