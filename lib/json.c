/*
 * json.c — strict JSON on top of jsmn, and the JSON writer; see json.h.
 *
 * Parsing runs in two passes. jsmn (strict mode, parent links) cuts the input into tokens: it
 * finds where strings, primitives and containers start and end, but accepts a lot that is not JSON
 * (missing commas and colons, trailing commas, `tru`, `01`, bad UTF-8, several top-level values).
 * The second pass, validate(), walks the tokens in document order with a small pushdown automaton
 * that also reads every byte between tokens, so the punctuation is checked exactly, and checks the
 * inside of every string and primitive. It leaves each token with the index of the token after its
 * subtree (stored in jsmn's `parent` field, which is not needed once parsing is over) and each
 * container with its member count, which is what the accessors use.
 *
 * When jsmn itself fails, diagnose() looks at where it stopped to produce a precise message.
 */
#include "json.h"
#include "alloc.h"
#include "json_internal.h"

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parsing works on jsmntok_t; the document hands the same array out as fa__json_tok_t, which
 * json.h declares field for field so that its accessors can be inline. After validation `parent`
 * holds the index after the subtree ("next") and `size` a container's member count, a string's
 * FA__JSON_STR_ flags or a number's FA_JSON_NUM_ flags (0 for a literal). */
static_assert(sizeof(fa__json_tok_t) == sizeof(jsmntok_t), "tokens are jsmn tokens");
static_assert(sizeof(((jsmntok_t *)0)->type) == sizeof(int), "jsmntype_t is an int");
static_assert(offsetof(fa__json_tok_t, _type) == offsetof(jsmntok_t, type), "type");
static_assert(offsetof(fa__json_tok_t, _start) == offsetof(jsmntok_t, start), "start");
static_assert(offsetof(fa__json_tok_t, _end) == offsetof(jsmntok_t, end), "end");
static_assert(offsetof(fa__json_tok_t, _size) == offsetof(jsmntok_t, size), "size");
static_assert(offsetof(fa__json_tok_t, _next) == offsetof(jsmntok_t, parent), "parent");
static_assert((int)FA__JSON_TOK_OBJECT == (int)JSMN_OBJECT &&
                  (int)FA__JSON_TOK_ARRAY == (int)JSMN_ARRAY &&
                  (int)FA__JSON_TOK_STRING == (int)JSMN_STRING &&
                  (int)FA__JSON_TOK_PRIMITIVE == (int)JSMN_PRIMITIVE,
              "token types are jsmn's");

/* Bodies up to this size get a token array sized by a proven upper bound without a pre-scan; the
 * jsmn worst case (closing brackets walk parent chains: O(tokens x depth)) is tiny there. */
#define SMALL_BODY 512

/* Nesting levels kept on the C stack during validation before the pool is used. */
#define INLINE_STACK 64

/* ---- character classes ---- */

static inline bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Inside a string: 0 plain ASCII, 1 control character, 2 backslash, 3 quote, 4 byte >= 0x80. */
static const uint8_t str_class[256] = {
    [0 ... 0x1f] = 1, ['\\'] = 2, ['"'] = 3, [0x80 ... 0xff] = 4,
};

/* Eight bytes at a time (SWAR): a mask with the high bit set in each byte that is below 0x20, a
 * backslash, a quote or >= 0x80. Borrows only spread upwards from a real hit, so the lowest set
 * bit is exact, which is all the callers use. A byte >= 0x80 is a hit whatever the subtractions
 * make of it, so each test needs no "and not x" of its own: a byte equal to c is the only one
 * below 0x80 for which (x ^ c) - 1 has its high bit set, and one below 0x20 the only one for
 * which x - 0x20 has. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* The byte at the lowest address is the least significant one: ctz finds the first hit, and a
 * right shift drops the first bytes of a load. */
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "SWAR scanning assumes little-endian");

static inline uint64_t load8(const char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}

static inline uint64_t zero_bytes(uint64_t x)
{
    return (x - ONES) & ~x & HIGHS;
}

static inline uint64_t special_bytes(uint64_t x)
{
    return (((x ^ (ONES * '\\')) - ONES) | ((x ^ (ONES * '"')) - ONES) | (x - ONES * 0x20) | x) &
           HIGHS;
}

/* Bytes that end a primitive in the root-primitive path. */
static inline bool ends_primitive(unsigned char c)
{
    return is_ws(c) || c == ',' || c == ']' || c == '}' || c == '[' || c == '{' || c == '"' ||
           c == ':';
}

/* ---- errors ---- */

typedef struct {
    const char *buf;
    size_t len;
    jsmntok_t *toks;
    int ntoks;
    uint32_t max_depth;
    fa_pool_t *pool;
    fa_json_error_t *err;
} ctx_t;

static int fail(fa_json_error_t *err, fa_json_code_t code, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Runs only on the error path, so snprintf's cost does not matter. */
static int fail(fa_json_error_t *err, fa_json_code_t code, size_t off, const char *fmt, ...)
{
    if (!err)
        return -1;
    err->code = code;
    err->offset = off;
    int n = snprintf(err->msg, sizeof(err->msg), "invalid JSON at byte %zu: ", off);
    if (n < 0 || (size_t)n >= sizeof(err->msg))
        return -1;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err->msg + n, sizeof(err->msg) - (size_t)n, fmt, ap); /* truncation is fine */
    va_end(ap);
    return -1;
}

/* "unexpected character 'x'" for printable ASCII, "unexpected byte 0xNN" otherwise. */
static int fail_char(fa_json_error_t *err, const char *buf, size_t off)
{
    unsigned char c = (unsigned char)buf[off];
    if (c > 0x20 && c < 0x7f)
        return fail(err, FA_JSON_ESYNTAX, off, "unexpected character '%c'", c);
    return fail(err, FA_JSON_ESYNTAX, off, "unexpected byte 0x%02x", c);
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at p (whose first byte is >= 0x80), or 0 with *why set. Only
 * shortest forms, no surrogates, nothing above U+10FFFF (RFC 3629, section 4). */
static size_t utf8_seq(const unsigned char *p, const unsigned char *e, const char **why)
{
    unsigned c = p[0];
    unsigned lo = 0x80, hi = 0xbf;
    size_t n;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        *why = c == 0xc0 || c == 0xc1 ? "overlong UTF-8 sequence"
               : c >= 0xf5            ? "UTF-8 code point above U+10FFFF"
                                      : "invalid UTF-8 byte";
        return 0;
    }
    if ((size_t)(e - p) < n) {
        *why = "truncated UTF-8 sequence";
        return 0;
    }
    if (p[1] < lo || p[1] > hi) {
        if (p[1] < 0x80 || p[1] > 0xbf)
            *why = "truncated UTF-8 sequence";
        else if (c == 0xed)
            *why = "UTF-8 encoded surrogate";
        else if (c == 0xf4)
            *why = "UTF-8 code point above U+10FFFF";
        else
            *why = "overlong UTF-8 sequence";
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            *why = "truncated UTF-8 sequence";
            return 0;
        }
    }
    return n;
}

size_t fa_utf8_len(const char *s, size_t len)
{
    /* Every byte but a continuation byte (10xxxxxx) starts a code point: count those eight at a
     * time (bit 7 set and bit 6, moved up into bit 7's place, clear). */
    size_t n = len, i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t x = load8(s + i);
        uint64_t cont = x & ~(x << 1) & HIGHS;
        if (cont)
            n -= (size_t)__builtin_popcountll(cont);
    }
    for (; i < len; i++)
        n -= ((unsigned char)s[i] & 0xc0) == 0x80;
    return n;
}

/* ---- strings ---- */

static unsigned hex4(const char *p)
{
    return (unsigned)(hex_val((unsigned char)p[0]) << 12 | hex_val((unsigned char)p[1]) << 8 |
                      hex_val((unsigned char)p[2]) << 4 | hex_val((unsigned char)p[3]));
}

static bool is_hex4(const char *p, const char *e)
{
    if (e - p < 4)
        return false;
    for (int i = 0; i < 4; i++)
        if (hex_val((unsigned char)p[i]) < 0)
            return false;
    return true;
}

/* Checks one escape sequence at p (p[0] == '\\'); returns its length or 0 with *why set. A high
 * surrogate must be followed by an escaped low surrogate; a lone one of either is refused. */
static size_t check_escape(const char *p, const char *e, const char **why)
{
    if (e - p < 2) {
        *why = "unterminated escape";
        return 0;
    }
    switch (p[1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return 2;
    case 'u':
        break;
    default:
        *why = "invalid escape";
        return 0;
    }
    if (!is_hex4(p + 2, e)) {
        *why = "invalid \\u escape";
        return 0;
    }
    unsigned cp = hex4(p + 2);
    if (cp >= 0xdc00 && cp <= 0xdfff) {
        *why = "lone low surrogate escape";
        return 0;
    }
    if (cp < 0xd800 || cp > 0xdbff)
        return 6;
    if (e - p < 12 || p[6] != '\\' || p[7] != 'u' || !is_hex4(p + 8, e)) {
        *why = "lone high surrogate escape";
        return 0;
    }
    unsigned lo = hex4(p + 8);
    if (lo < 0xdc00 || lo > 0xdfff) {
        *why = "lone high surrogate escape";
        return 0;
    }
    return 12;
}

/* Validates the contents of a string token (between the quotes). Returns its FA__JSON_STR_ flags
 * (0 for plain ASCII), or -1 on error. Runs for every string on the general path (and on the flat
 * path for a string that is not plain ASCII): the plain-ASCII loop is the hot part. */
static int check_string(ctx_t *c, size_t start, size_t end)
{
    const char *s = c->buf + start, *e = c->buf + end, *p = s;
    /* Offsets up to this one can load 8 bytes without leaving the input. */
    size_t load_max = c->len >= 8 ? c->len - 8 : 0;
    bool can_load = c->len >= 8;
    int flags = 0;
    const char *why;
    while (p < e) {
        /* Skip plain ASCII eight bytes at a time; a short string may load bytes past its end
         * (still inside the input) which are masked off. */
        if (can_load && (size_t)(p - c->buf) <= load_max) {
            uint64_t m = special_bytes(load8(p));
            size_t left = (size_t)(e - p);
            if (left < 8)
                m &= (1ULL << (left * 8)) - 1;
            if (!m) {
                p += left < 8 ? left : 8;
                continue;
            }
            p += __builtin_ctzll(m) >> 3;
        }
        unsigned char ch = (unsigned char)*p;
        switch (str_class[ch]) {
        case 0:
            p++;
            continue;
        case 1:
            return fail(c->err, FA_JSON_ESTRING, (size_t)(p - c->buf),
                        "control character 0x%02x in string", ch);
        case 2: {
            size_t n = check_escape(p, e, &why);
            if (!n)
                return fail(c->err, FA_JSON_ESYNTAX, (size_t)(p - c->buf), "%s", why);
            p += n;
            flags |= FA__JSON_STR_ESCAPED;
            continue;
        }
        case 3: /* jsmn ends strings at quotes, so this cannot happen */
            return fail(c->err, FA_JSON_ESYNTAX, (size_t)(p - c->buf), "unexpected quote");
        default: {
            size_t n = utf8_seq((const unsigned char *)p, (const unsigned char *)e, &why);
            if (!n)
                return fail(c->err, FA_JSON_ESTRING, (size_t)(p - c->buf), "%s in string", why);
            p += n;
            flags |= FA__JSON_STR_NONASCII;
            continue;
        }
        }
    }
    return flags;
}

/* Decodes one (validated) unit of string text at *pp into out, returns its byte count. */
static size_t decode_step(const char **pp, char out[4])
{
    const char *p = *pp;
    if (*p != '\\') {
        out[0] = *p;
        *pp = p + 1;
        return 1;
    }
    unsigned cp;
    switch (p[1]) {
    case 'b': out[0] = '\b'; break;
    case 'f': out[0] = '\f'; break;
    case 'n': out[0] = '\n'; break;
    case 'r': out[0] = '\r'; break;
    case 't': out[0] = '\t'; break;
    case 'u':
        cp = hex4(p + 2);
        *pp = p + 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (hex4(p + 8) - 0xdc00);
            *pp = p + 12;
        }
        if (cp < 0x80) {
            out[0] = (char)cp;
            return 1;
        }
        if (cp < 0x800) {
            out[0] = (char)(0xc0 | cp >> 6);
            out[1] = (char)(0x80 | (cp & 0x3f));
            return 2;
        }
        if (cp < 0x10000) {
            out[0] = (char)(0xe0 | cp >> 12);
            out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
            out[2] = (char)(0x80 | (cp & 0x3f));
            return 3;
        }
        out[0] = (char)(0xf0 | cp >> 18);
        out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[3] = (char)(0x80 | (cp & 0x3f));
        return 4;
    default: out[0] = p[1]; break; /* '"', '\\', '/' */
    }
    *pp = p + 2;
    return 1;
}

/* Unescapes validated string text s[0..n) into dst (at least n bytes); returns the length. */
static size_t unescape(const char *s, size_t n, char *dst)
{
    const char *p = s, *e = s + n;
    size_t len = 0;
    while (p < e) {
        const char *bs = memchr(p, '\\', (size_t)(e - p));
        size_t run = bs ? (size_t)(bs - p) : (size_t)(e - p);
        memcpy(dst + len, p, run);
        len += run;
        p += run;
        if (p < e)
            len += decode_step(&p, dst + len);
    }
    return len;
}

/* ---- primitives ---- */

/* Validates a number or literal s[start..end) completely (jsmn only checks the characters).
 * Returns a number's FA_JSON_NUM_ flags (0 for a literal), or -1 on error. */
static int check_primitive(ctx_t *c, size_t start, size_t end)
{
    const char *b = c->buf, *s = b + start, *e = b + end, *p = s;
    switch (*s) {
    case 't':
        if (e - s == 4 && memcmp(s, "true", 4) == 0)
            return 0;
        return fail(c->err, FA_JSON_ESYNTAX, start, "invalid literal (expected true)");
    case 'f':
        if (e - s == 5 && memcmp(s, "false", 5) == 0)
            return 0;
        return fail(c->err, FA_JSON_ESYNTAX, start, "invalid literal (expected false)");
    case 'n':
        if (e - s == 4 && memcmp(s, "null", 4) == 0)
            return 0;
        return fail(c->err, FA_JSON_ESYNTAX, start, "invalid literal (expected null)");
    case '-': case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
    case '8': case '9':
        break;
    default:
        return fail_char(c->err, b, start);
    }
    int form = 0;
    if (*p == '-')
        p++;
    if (p == e || !is_digit((unsigned char)*p))
        return fail(c->err, FA_JSON_ESYNTAX, (size_t)(p - b), "digit expected in number");
    if (*p == '0') {
        p++;
        if (p < e && is_digit((unsigned char)*p))
            return fail(c->err, FA_JSON_ESYNTAX, (size_t)(p - b), "leading zero in number");
    } else {
        while (p < e && is_digit((unsigned char)*p))
            p++;
    }
    if (p < e && *p == '.') {
        p++;
        if (p == e || !is_digit((unsigned char)*p))
            return fail(c->err, FA_JSON_ESYNTAX, (size_t)(p - b), "digit expected after '.'");
        while (p < e && is_digit((unsigned char)*p))
            p++;
        form |= FA_JSON_NUM_FRACTION;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p == e || !is_digit((unsigned char)*p))
            return fail(c->err, FA_JSON_ESYNTAX, (size_t)(p - b), "digit expected in exponent");
        while (p < e && is_digit((unsigned char)*p))
            p++;
        form |= FA_JSON_NUM_EXPONENT;
    }
    if (p != e) {
        unsigned char ch = (unsigned char)*p;
        if (ch > 0x20 && ch < 0x7f)
            return fail(c->err, FA_JSON_ESYNTAX, (size_t)(p - b), "invalid character '%c' in number",
                        ch);
        return fail(c->err, FA_JSON_ESYNTAX, (size_t)(p - b), "invalid byte 0x%02x in number", ch);
    }
    return form;
}

/* ---- duplicate keys ---- */

/* The unescaped form of key token k: zero-copy or a copy in the pool (escaped keys are rare). */
static fa_str_t key_view(ctx_t *c, int k)
{
    const jsmntok_t *t = &c->toks[k];
    fa_str_t s = {c->buf + t->start, (size_t)(t->end - t->start)};
    if (t->size & FA__JSON_STR_ESCAPED) {
        char *d = fa_pool_alloc(c->pool, s.len);
        s.len = unescape(s.ptr, s.len, d);
        s.ptr = d;
    }
    return s;
}

static inline bool str_eq(fa_str_t a, fa_str_t b)
{
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

static int fail_dup(ctx_t *c, int k, fa_str_t key)
{
    /* Quote at most ~40 bytes of a hostile key, cut on a code point boundary. */
    char shown[48 * 6];
    size_t n = key.len;
    const char *more = "";
    if (n > 40) {
        n = 40;
        while (n > 0 && ((unsigned char)key.ptr[n] & 0xc0) == 0x80)
            n--;
        more = "...";
    }
    size_t w = fa_json_escape(shown, sizeof(shown) - 1, key.ptr, n);
    shown[FA_MIN(w, sizeof(shown) - 1)] = '\0';
    return fail(c->err, FA_JSON_EDUPKEY, (size_t)c->toks[k].start - 1, "duplicate key \"%s%s\"",
                shown, more);
}

static uint32_t hash_bytes(fa_str_t s)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < s.len; i++)
        h = (h ^ (unsigned char)s.ptr[i]) * 16777619u;
    return h;
}

/* Runs when object obj closes (its members are final). Small objects compare pairwise; large ones
 * use an open-addressing table in the pool, so a hostile object with many keys stays linear. The
 * error names the later of the two keys. */
static int check_dup_keys(ctx_t *c, int obj)
{
    int n = c->toks[obj].size;
    if (n < 2)
        return 0;
    if (n <= 16) {
        int keys[16];
        int k = obj + 1;
        for (int i = 0; i < n; i++) {
            keys[i] = k;
            k = c->toks[k + 1].parent;
        }
        for (int i = 1; i < n; i++) {
            const jsmntok_t *ti = &c->toks[keys[i]];
            size_t li = (size_t)(ti->end - ti->start);
            for (int j = 0; j < i; j++) {
                const jsmntok_t *tj = &c->toks[keys[j]];
                if (!((ti->size | tj->size) & FA__JSON_STR_ESCAPED)) {
                    if ((size_t)(tj->end - tj->start) == li &&
                        memcmp(c->buf + ti->start, c->buf + tj->start, li) == 0)
                        return fail_dup(c, keys[i], key_view(c, keys[i]));
                } else if (str_eq(key_view(c, keys[i]), key_view(c, keys[j]))) {
                    return fail_dup(c, keys[i], key_view(c, keys[i]));
                }
            }
        }
        return 0;
    }
    size_t cap = 32;
    while (cap < (size_t)n * 2)
        cap <<= 1;
    fa_str_t *views = fa_pool_alloc(c->pool, sizeof(*views) * (size_t)n);
    int *slots = fa_pool_alloc(c->pool, sizeof(*slots) * cap);
    memset(slots, 0xff, sizeof(*slots) * cap);
    int k = obj + 1;
    for (int i = 0; i < n; i++) {
        views[i] = key_view(c, k);
        size_t h = hash_bytes(views[i]) & (cap - 1);
        while (slots[h] >= 0) {
            if (str_eq(views[slots[h]], views[i]))
                return fail_dup(c, k, views[i]);
            h = (h + 1) & (cap - 1);
        }
        slots[h] = i;
        k = c->toks[k + 1].parent;
    }
    return 0;
}

/* ---- the validation walk ---- */

enum {
    S_ROOT_VALUE, /* expecting the top-level value */
    S_ROOT_DONE,  /* after it: only whitespace */
    S_ARR_FIRST,  /* after '[' */
    S_ARR_VALUE,  /* after ',' in an array */
    S_ARR_NEXT,   /* after an element */
    S_OBJ_FIRST,  /* after '{' */
    S_OBJ_KEY,    /* after ',' in an object */
    S_OBJ_COLON,  /* after a key */
    S_OBJ_VALUE,  /* after ':' */
    S_OBJ_NEXT,   /* after a member's value */
};

/* The walk over jsmn's tokens. Every byte of the input is looked at once more: token contents by
 * check_string/check_primitive, the bytes between tokens here, where whitespace, ',', ':' and
 * closing brackets must appear exactly where the grammar allows. Tokens come in document order, so
 * the bytes between the end of one token and the start of the next are exactly the "gap". */
static int validate(ctx_t *c)
{
    const char *b = c->buf;
    jsmntok_t *toks = c->toks;
    int inline_stack[INLINE_STACK];
    int *stack = inline_stack;
    if (c->max_depth > INLINE_STACK)
        stack = fa_pool_alloc(c->pool, sizeof(int) * c->max_depth);
    uint32_t sp = 0;
    int state = S_ROOT_VALUE;
    size_t pos = 0;

    for (int i = 0; i <= c->ntoks; i++) {
        jsmntok_t *t = i < c->ntoks ? &toks[i] : NULL;
        size_t at = !t ? c->len : t->type == JSMN_STRING ? (size_t)t->start - 1 : (size_t)t->start;
        if (at < pos)
            return fail(c->err, FA_JSON_ESYNTAX, at, "malformed input");

        /* The gap before token i (or before the end): whitespace, ',' ':' and closing brackets. */
        for (; pos < at; pos++) {
            unsigned char ch = (unsigned char)b[pos];
            if (is_ws(ch))
                continue;
            switch (state) {
            case S_ARR_NEXT:
                if (ch == ',') {
                    state = S_ARR_VALUE;
                    continue;
                }
                /* fall through */
            case S_ARR_FIRST:
                if (ch == ']')
                    break;
                if (state == S_ARR_NEXT)
                    return fail(c->err, FA_JSON_ESYNTAX, pos, "expected ',' or ']'");
                return fail(c->err, FA_JSON_ESYNTAX, pos, "expected a value");
            case S_OBJ_NEXT:
                if (ch == ',') {
                    state = S_OBJ_KEY;
                    continue;
                }
                if (ch == '}')
                    break;
                return fail(c->err, FA_JSON_ESYNTAX, pos, "expected ',' or '}'");
            case S_OBJ_FIRST:
                if (ch == '}')
                    break;
                return fail(c->err, FA_JSON_ESYNTAX, pos, "expected a string key");
            case S_OBJ_COLON:
                if (ch == ':') {
                    state = S_OBJ_VALUE;
                    continue;
                }
                return fail(c->err, FA_JSON_ESYNTAX, pos, "expected ':'");
            case S_ARR_VALUE:
            case S_OBJ_KEY:
                if (ch == ']' || ch == '}')
                    return fail(c->err, FA_JSON_ESYNTAX, pos, "trailing comma before '%c'", ch);
                return fail(c->err, FA_JSON_ESYNTAX, pos,
                            state == S_OBJ_KEY ? "expected a string key" : "expected a value");
            case S_ROOT_DONE:
                return fail(c->err, FA_JSON_ESYNTAX, pos, "unexpected data after the JSON value");
            default: /* S_ROOT_VALUE, S_OBJ_VALUE: a value must start here, not punctuation */
                if (ch == ',' || ch == ':' || ch == ']' || ch == '}')
                    return fail(c->err, FA_JSON_ESYNTAX, pos, "expected a value");
                return fail_char(c->err, b, pos);
            }
            /* A closing bracket of the right kind: finish the container on top. */
            int top = stack[--sp];
            jsmntok_t *ct = &toks[top];
            if ((size_t)ct->end != pos + 1)
                return fail(c->err, FA_JSON_ESYNTAX, pos, "unexpected '%c'", ch);
            ct->parent = i;
            if (ct->type == JSMN_OBJECT && check_dup_keys(c, top) < 0)
                return -1;
            state = sp == 0 ? S_ROOT_DONE
                    : toks[stack[sp - 1]].type == JSMN_ARRAY ? S_ARR_NEXT
                                                               : S_OBJ_NEXT;
        }
        if (!t)
            break;

        /* Token i itself. */
        switch (state) {
        case S_OBJ_FIRST:
        case S_OBJ_KEY:
            if (t->type != JSMN_STRING)
                return fail(c->err, FA_JSON_ESYNTAX, at, "expected a string key");
            int flags = check_string(c, (size_t)t->start, (size_t)t->end);
            if (flags < 0)
                return -1;
            t->size = flags;
            t->parent = i + 1;
            toks[stack[sp - 1]].size++;
            pos = (size_t)t->end + 1;
            state = S_OBJ_COLON;
            continue;
        case S_ROOT_VALUE:
        case S_ARR_FIRST:
        case S_ARR_VALUE:
        case S_OBJ_VALUE:
            break;
        case S_ARR_NEXT:
            return fail(c->err, FA_JSON_ESYNTAX, at, "expected ',' or ']'");
        case S_OBJ_NEXT:
            return fail(c->err, FA_JSON_ESYNTAX, at, "expected ',' or '}'");
        case S_OBJ_COLON:
            return fail(c->err, FA_JSON_ESYNTAX, at, "expected ':'");
        default:
            return fail(c->err, FA_JSON_ESYNTAX, at, "unexpected data after the JSON value");
        }
        if (state == S_ARR_FIRST || state == S_ARR_VALUE)
            toks[stack[sp - 1]].size++;
        switch (t->type) {
        case JSMN_STRING: {
            int flags = check_string(c, (size_t)t->start, (size_t)t->end);
            if (flags < 0)
                return -1;
            t->size = flags;
            t->parent = i + 1;
            pos = (size_t)t->end + 1;
            break;
        }
        case JSMN_PRIMITIVE: {
            int form = check_primitive(c, (size_t)t->start, (size_t)t->end);
            if (form < 0)
                return -1;
            t->size = form;
            t->parent = i + 1;
            pos = (size_t)t->end;
            break;
        }
        default: /* object or array */
            if (sp >= c->max_depth)
                return fail(c->err, FA_JSON_ETOODEEP, at, "nesting deeper than %u", c->max_depth);
            stack[sp++] = i;
            t->size = 0;
            pos = at + 1;
            state = t->type == JSMN_OBJECT ? S_OBJ_FIRST : S_ARR_FIRST;
            continue;
        }
        state = sp == 0 ? S_ROOT_DONE
                : toks[stack[sp - 1]].type == JSMN_ARRAY ? S_ARR_NEXT
                                                           : S_OBJ_NEXT;
    }
    if (state != S_ROOT_DONE)
        return fail(c->err, state == S_ROOT_VALUE ? FA_JSON_EEMPTY : FA_JSON_ESYNTAX, c->len,
                    state == S_ROOT_VALUE ? "no value" : "unexpected end of input");
    return 0;
}

/* Turns a jsmn failure into a precise message. jsmn rewinds to the start of a bad string or
 * primitive, and stops on the offending byte for structural errors or at the end of input. */
static int diagnose(ctx_t *c, int r, const jsmn_parser *p, const jsmntok_t *toks)
{
    const char *b = c->buf;
    size_t pos = p->pos, len = c->len;
    if (pos >= len)
        return fail(c->err, FA_JSON_ESYNTAX, len, "unexpected end of input");
    unsigned char ch = (unsigned char)b[pos];
    if (ch == '"') {
        /* A bad escape (INVAL), or a string that ends early or holds a NUL (PART). */
        const char *why;
        for (size_t q = pos + 1; q < len && b[q] != '"'; q++) {
            if ((unsigned char)b[q] < 0x20)
                return fail(c->err, FA_JSON_ESTRING, q, "control character 0x%02x in string",
                            (unsigned char)b[q]);
            if (b[q] == '\\') {
                if (!check_escape(b + q, b + len, &why))
                    return fail(c->err, FA_JSON_ESYNTAX, q, "%s", why);
                q++;
            }
        }
        return fail(c->err, FA_JSON_ESYNTAX, pos, "unterminated string");
    }
    if (ch == '-' || is_digit(ch) || ch == 't' || ch == 'f' || ch == 'n') {
        /* jsmn refuses a primitive where a key belongs (the open object is on top) or after a
         * member's value (the key, which already has its value, is on top), before reading it. */
        if (r == JSMN_ERROR_INVAL && p->toksuper >= 0) {
            const jsmntok_t *sup = &toks[p->toksuper];
            if (sup->type == JSMN_OBJECT)
                return fail(c->err, FA_JSON_ESYNTAX, pos, "expected a string key");
            if (sup->type == JSMN_STRING && sup->size != 0)
                return fail(c->err, FA_JSON_ESYNTAX, pos, "expected ',' or '}'");
        }
        /* jsmn's strict primitives end only at whitespace, ',', ']' or '}'. */
        size_t end = pos;
        while (end < len && !is_ws((unsigned char)b[end]) && b[end] != ',' && b[end] != ']' &&
               b[end] != '}')
            end++;
        if (check_primitive(c, pos, end) < 0)
            return -1;
        if (r == JSMN_ERROR_PART)
            return fail(c->err, FA_JSON_ESYNTAX, len, "unexpected end of input");
        return fail_char(c->err, b, pos); /* not reached: jsmn's INVAL has a cause above */
    }
    if (ch == '{' || ch == '[')
        return fail(c->err, FA_JSON_ESYNTAX, pos, "expected a string key");
    if (ch == '}' || ch == ']')
        return fail(c->err, FA_JSON_ESYNTAX, pos, "unexpected '%c'", ch);
    return fail_char(c->err, b, pos);
}

/* Pre-scan for bodies over SMALL_BODY: the nesting depth (refused before jsmn, whose bracket
 * matching costs O(depth) per bracket) and an upper bound on the token count for valid JSON:
 * every token but the root follows a '[', '{', ',' or ':'. Strings are skipped. */
static int prescan(ctx_t *c, size_t *bound)
{
    const char *b = c->buf;
    size_t len = c->len, n = 1;
    uint32_t depth = 0;
    for (size_t i = 0; i < len; i++) {
        switch (b[i]) {
        case '"':
            for (i++; i < len && b[i] != '"'; i++) {
                while (i + 8 <= len) {
                    uint64_t x = load8(b + i);
                    uint64_t m = zero_bytes(x ^ (ONES * '"')) | zero_bytes(x ^ (ONES * '\\'));
                    if (m) {
                        i += __builtin_ctzll(m) >> 3;
                        break;
                    }
                    i += 8;
                }
                if (i < len && b[i] == '\\')
                    i++;
                else if (i >= len || b[i] == '"')
                    break;
            }
            break;
        case '[':
        case '{':
            if (++depth > c->max_depth)
                return fail(c->err, FA_JSON_ETOODEEP, i, "nesting deeper than %u", c->max_depth);
            n++;
            break;
        case ']':
        case '}':
            depth -= depth > 0;
            break;
        case ',':
        case ':':
            n++;
            break;
        }
    }
    *bound = n;
    return 0;
}


/* ---- the flat-object fast path ---- */

/* Members a flat object may have on the fast path: the pairwise duplicate check stays cheap. */
#define FLAT_MAX_KEYS 16

/* What flat_string returns: the closing quote's offset shifted left by two, or'ed with the string's
 * FA__JSON_STR_ flags; 0 declines (no string's quote is at offset 0). One register, no memory. */
#define FLAT_QUOTE(r) ((r) >> 2)
#define FLAT_FLAGS(r) ((int)((r)&3))

/* The rest of flat_string, out of line: text that is not plain ASCII (an escape, a control
 * character or a byte >= 0x80 at p), that runs to the end of the input, or that lies in an input
 * under eight bytes. Finds the end as jsmn does (the first quote not escaped by a backslash) and
 * lets check_string settle the text, without a message: only the general path writes those. */
static __attribute__((noinline)) size_t flat_string_slow(const char *b, size_t len, size_t s,
                                                         size_t p)
{
    while (p < len && b[p] != '"')
        p += b[p] == '\\' ? 2 : 1;
    if (p >= len)
        return 0;
    ctx_t c = {.buf = b, .len = len};
    int flags = check_string(&c, s, p);
    return flags < 0 ? 0 : p << 2 | (size_t)flags;
}

/* Finds the closing quote of the string whose text starts at p and checks the text (see
 * FLAT_QUOTE for the result). Plain ASCII text, nearly every key and value, is settled here eight
 * bytes at a time; with fewer than eight bytes left, the last eight bytes of the input are loaded
 * and shifted so that byte p comes first, and no load ever leaves [b, b + len). */
static inline size_t flat_string(const char *b, size_t len, size_t p)
{
    size_t s = p;
    uint64_t m;
    for (;;) {
        if (p + 8 <= len) {
            m = special_bytes(load8(b + p));
            if (!m) {
                p += 8;
                continue;
            }
        } else if (p < len && len >= 8) {
            /* The zeros shifted in count as control characters, so the first hit is either a
             * real one or the end of the input, where the slow path declines. */
            m = special_bytes(load8(b + len - 8) >> (8 * (p + 8 - len)));
        } else {
            return flat_string_slow(b, len, s, p);
        }
        break;
    }
    p += (size_t)__builtin_ctzll(m) >> 3;
    if (FA_LIKELY(p < len && b[p] == '"'))
        return p << 2;
    return flat_string_slow(b, len, s, p);
}

/* The first byte at or after p that is not whitespace. No length check: parse_flat calls it only
 * where the '}' that ends the input lies ahead. Compact JSON has no whitespace, so the first test
 * (a byte above ' ') nearly always settles it. */
static inline size_t skip_ws(const char *b, size_t p)
{
    while ((unsigned char)b[p] <= ' ' && is_ws((unsigned char)b[p]))
        p++;
    return p;
}

/* The offset of the punctuation ch at p, or after whitespace at p; 0 if anything else comes
 * first. Where one byte is expected, testing for it first spares compact JSON the whitespace
 * test. Same bounds as skip_ws. */
static inline size_t at_char(const char *b, size_t p, char ch)
{
    if (b[p] != ch) {
        p = skip_ws(b, p);
        if (b[p] != ch)
            return 0;
    }
    return p;
}

/* The end of the number starting at p if it follows the JSON grammar, with *form set as
 * check_primitive returns it; else 0. No length check either: at worst the '}' that ends the
 * input follows, and it stops every step here. */
static inline size_t flat_number_end(const char *b, size_t p, int *form)
{
    int f = 0;
    p += b[p] == '-';
    if (!is_digit((unsigned char)b[p]))
        return 0;
    if (b[p] == '0')
        p++;
    else
        while (is_digit((unsigned char)b[p]))
            p++;
    if (b[p] == '.') {
        if (!is_digit((unsigned char)b[++p]))
            return 0;
        while (is_digit((unsigned char)b[p]))
            p++;
        f = FA_JSON_NUM_FRACTION;
    }
    if ((b[p] | 0x20) == 'e') {
        p++;
        p += b[p] == '+' || b[p] == '-';
        if (!is_digit((unsigned char)b[p]))
            return 0;
        while (is_digit((unsigned char)b[p]))
            p++;
        f |= FA_JSON_NUM_EXPONENT;
    }
    *form = f;
    return p;
}

/* One token, field by field. The stores are volatile only so that they stay five plain stores:
 * left to itself, GCC first packs the fields into a vector register, which here costs more
 * instructions than it saves (about 20 per request on the 1MRC body). */
static inline void flat_tok(jsmntok_t *tok, jsmntype_t type, size_t start, size_t end, int size,
                            int next)
{
    volatile jsmntok_t *t = tok;
    t->type = type;
    t->start = (int)start;
    t->end = (int)end;
    t->size = size;
    t->parent = next;
}

/*
 * One pass over a flat object ({"userId":"u1","value":42.5}: string keys, values that are strings,
 * numbers or literals, at most FLAT_MAX_KEYS members), the shape nearly every event has. It builds
 * exactly the tokens jsmn followed by validate() would (same offsets, sizes, flags and next links)
 * in a small fraction of the instructions. Anything else, valid or not (nesting, duplicate or
 * escaped keys when there are several, a syntax error), returns false without side effects, and
 * the general path parses the input from scratch: it alone writes error messages, so errors read
 * the same whichever path saw the input first. p is the offset of the '{'.
 *
 * The object must end the input but for whitespace, so that is checked first: from then on the
 * last '}' bounds every scan but the string one (each step of the others consumes a byte that is
 * not '}', and skip_ws stops at it), and only flat_string and the literals check the length.
 */
static inline __attribute__((always_inline)) bool
parse_flat(const char *b, size_t len, size_t p, size_t max_tokens, fa_pool_t *pool, fa_json_t *doc)
{
    size_t last = len - 1;
    while (is_ws((unsigned char)b[last])) /* stops at the '{' at the latest */
        last--;
    if (b[last] != '}' || last == p)
        return false;
    jsmntok_t t[1 + 2 * FLAT_MAX_KEYS];
    int n = 1, kflags = 0;
    /* Bit (length % 64) of every key so far: a key can only repeat one whose bit is set. */
    uint64_t klens = 0;
    size_t open = p;
    p = skip_ws(b, p + 1);
    if (b[p] != '}') {
        if (b[p] != '"')
            return false;
        for (;;) {
            if (n == 1 + 2 * FLAT_MAX_KEYS)
                return false;
            size_t r = flat_string(b, len, p + 1);
            if (!r)
                return false;
            size_t e = FLAT_QUOTE(r), klen = e - p - 1;
            uint64_t bit = (uint64_t)1 << (klen & 63);
            if (FA_UNLIKELY(klens & bit)) {
                /* A key written as an earlier one is a duplicate, which the general path names. */
                for (int j = 1; j < n; j += 2)
                    if ((size_t)(t[j].end - t[j].start) == klen &&
                        memcmp(b + t[j].start, b + p + 1, klen) == 0)
                        return false;
            }
            klens |= bit;
            kflags |= FLAT_FLAGS(r);
            flat_tok(&t[n], JSMN_STRING, p + 1, e, FLAT_FLAGS(r), n + 1);
            n++;
            p = at_char(b, e + 1, ':');
            if (!p)
                return false;
            p = skip_ws(b, p + 1);
            unsigned char ch = (unsigned char)b[p];
            if (ch == '"') {
                r = flat_string(b, len, p + 1);
                if (!r)
                    return false;
                e = FLAT_QUOTE(r);
                flat_tok(&t[n], JSMN_STRING, p + 1, e, FLAT_FLAGS(r), n + 1);
                e++;
            } else {
                int form = 0;
                if (ch == '-' || is_digit(ch))
                    e = flat_number_end(b, p, &form);
                else if (ch == 't' && len - p >= 4 && memcmp(b + p, "true", 4) == 0)
                    e = p + 4;
                else if (ch == 'f' && len - p >= 5 && memcmp(b + p, "false", 5) == 0)
                    e = p + 5;
                else if (ch == 'n' && len - p >= 4 && memcmp(b + p, "null", 4) == 0)
                    e = p + 4;
                else
                    return false;
                /* jsmn's strict primitives end at whitespace, ',', ']' or '}': what follows is
                 * checked below to be whitespace then ',' or '}', or the path declines. */
                if (!e)
                    return false;
                flat_tok(&t[n], JSMN_PRIMITIVE, p, e, form, n + 1);
            }
            n++;
            p = at_char(b, e, ',');
            if (!p) {
                p = skip_ws(b, e);
                break;
            }
            p = at_char(b, p + 1, '"');
            if (!p)
                return false;
        }
    }
    if (b[p] != '}' || p != last || (size_t)n > max_tokens)
        return false;
    if (n > 3 && (kflags & FA__JSON_STR_ESCAPED))
        return false; /* duplicates would need unescaping: the general path knows how */
    flat_tok(&t[0], JSMN_OBJECT, open, p + 1, n >> 1, n);
    jsmntok_t *toks = fa_pool_alloc(pool, (size_t)n * sizeof(*toks));
    memcpy(toks, t, (size_t)n * sizeof(*toks));
    doc->_toks = (fa__json_tok_t *)toks;
    doc->_ntoks = n;
    return true;
}

/* ---- entry points ---- */

/* Everything but the flat path: a bare number or literal, or jsmn and validate(). p is the offset
 * of the first byte that is not whitespace. Out of line so that the flat path's caller stays
 * small. */
static __attribute__((noinline)) int parse_general(fa_json_t *doc, fa_pool_t *pool,
                                                   const char *buf, size_t len,
                                                   const fa_json_limits_t *lim,
                                                   fa_json_error_t *err, size_t p)
{
    size_t max_tokens = lim && lim->max_tokens ? lim->max_tokens : FA_JSON_DEFAULT_MAX_TOKENS;
    ctx_t c = {
        .buf = buf,
        .len = len,
        .max_depth = lim && lim->max_depth ? lim->max_depth : FA_JSON_DEFAULT_MAX_DEPTH,
        .pool = pool,
        .err = err,
    };
    unsigned char first = (unsigned char)buf[p];
    if (first != '{' && first != '[' && first != '"') {
        /* A bare top-level number or literal: jsmn's strict mode wants a delimiter after every
         * primitive and would call `42` truncated, so it is handled here in full. */
        size_t end = p;
        while (end < len && !ends_primitive((unsigned char)buf[end]))
            end++;
        if (end == p)
            return fail_char(err, buf, p);
        int form = check_primitive(&c, p, end);
        if (form < 0)
            return -1;
        for (size_t q = end; q < len; q++)
            if (!is_ws((unsigned char)buf[q]))
                return fail(err, FA_JSON_ESYNTAX, q, "unexpected data after the JSON value");
        jsmntok_t *t = fa_pool_alloc(pool, sizeof(*t));
        *t = (jsmntok_t){JSMN_PRIMITIVE, (int)p, (int)end, form, 1};
        doc->_toks = (fa__json_tok_t *)t;
        doc->_ntoks = 1;
        return 0;
    }

    /* Token array: for valid JSON there are at most len/2+1 tokens (each takes two bytes, a
     * primitive counting its delimiter), or the pre-scan's bound; one more than max_tokens is
     * enough to notice an excess. A too-small guess only happens for invalid input and is retried
     * with one token per byte, so the error message is jsmn's real one. */
    size_t n = len / 2 + 2;
    if (len > SMALL_BODY && prescan(&c, &n) < 0)
        return -1;
    n = FA_MIN(n, max_tokens + 1);
    jsmn_parser jp;
    jsmntok_t *toks;
    int r;
    for (;;) {
        toks = fa_pool_alloc(pool, n * sizeof(*toks));
        jsmn_init(&jp);
        r = jsmn_parse(&jp, buf, len, toks, (unsigned)n);
        if (r != JSMN_ERROR_NOMEM)
            break;
        if (n > max_tokens)
            return fail(err, FA_JSON_ETOOMANY, jp.pos, "more than %zu tokens", max_tokens);
        n = FA_MIN(len + 1, max_tokens + 1);
    }
    c.toks = toks;
    if (r < 0)
        return diagnose(&c, r, &jp, toks);
    if ((size_t)r > max_tokens)
        return fail(err, FA_JSON_ETOOMANY, (size_t)toks[max_tokens].start, "more than %zu tokens",
                    max_tokens);
    c.ntoks = r;
    if (validate(&c) < 0)
        return -1;
    doc->_toks = (fa__json_tok_t *)toks;
    doc->_ntoks = r;
    return 0;
}

/* What fa_json_parse and the tests' fa__json_parse_path share; inlined into each, so the path is
 * a constant in fa_json_parse. The checks before the flat path are the ones whose errors come
 * first whatever the input holds: size, then emptiness. */
static inline __attribute__((always_inline)) int
parse_path(fa_json_t *doc, fa_pool_t *pool, const char *buf, size_t len,
           const fa_json_limits_t *lim, fa_json_error_t *err, fa__json_path_t path)
{
    size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : FA_JSON_DEFAULT_MAX_BYTES;
    max_bytes = FA_MIN(max_bytes, FA_JSON_HARD_MAX_BYTES);
    doc->_buf = buf;
    doc->_len = len;
    doc->_toks = NULL;
    doc->_ntoks = 0;
    if (len > max_bytes)
        return fail(err, FA_JSON_ETOOBIG, max_bytes, "larger than %zu bytes", max_bytes);
    size_t p = 0;
    while (p < len && is_ws((unsigned char)buf[p]))
        p++;
    if (p == len)
        return fail(err, FA_JSON_EEMPTY, len, "no value");
    if (path != FA__JSON_GENERAL && buf[p] == '{') {
        size_t max_tokens = lim && lim->max_tokens ? lim->max_tokens : FA_JSON_DEFAULT_MAX_TOKENS;
        if (parse_flat(buf, len, p, max_tokens, pool, doc))
            return 0;
    }
    if (path == FA__JSON_FLAT)
        return -1;
    return parse_general(doc, pool, buf, len, lim, err, p);
}

int fa__json_parse_path(fa_json_t *doc, fa_pool_t *pool, const char *buf, size_t len,
                        const fa_json_limits_t *lim, fa_json_error_t *err, fa__json_path_t path)
{
    return parse_path(doc, pool, buf, len, lim, err, path);
}

int fa_json_parse(fa_json_t *doc, fa_pool_t *pool, const char *buf, size_t len,
                  const fa_json_limits_t *lim, fa_json_error_t *err)
{
    return parse_path(doc, pool, buf, len, lim, err, FA__JSON_ANY);
}

void fa__json_tok_fields(const fa_json_t *doc, int tok, int out[5])
{
    const fa__json_tok_t *t = &doc->_toks[tok];
    out[0] = t->_type, out[1] = t->_start, out[2] = t->_end, out[3] = t->_size, out[4] = t->_next;
}

/* ---- accessors (the rest are inline in json.h) ---- */

const char *fa_json_type_name(fa_json_type_t type)
{
    switch (type) {
    case FA_JSON_NULL:
        return "null";
    case FA_JSON_FALSE:
    case FA_JSON_TRUE:
        return "a boolean";
    case FA_JSON_NUMBER:
        return "a number";
    case FA_JSON_STRING:
        return "a string";
    case FA_JSON_ARRAY:
        return "an array";
    case FA_JSON_OBJECT:
        return "an object";
    }
    return "?";
}

/* Runs for fa_json_object_get when a key in the document has escapes, without copying it. */
bool fa__json_escaped_eq(const char *s, size_t n, const char *key, size_t keylen)
{
    const char *p = s, *e = s + n;
    size_t k = 0;
    char out[4];
    while (p < e) {
        size_t m = decode_step(&p, out);
        if (k + m > keylen || memcmp(out, key + k, m) != 0)
            return false;
        k += m;
    }
    return k == keylen;
}

bool fa__json_str_unescape(const fa_json_t *doc, int tok, fa_pool_t *pool, fa_str_t *out)
{
    const fa__json_tok_t *t = &doc->_toks[tok];
    const char *s = doc->_buf + t->_start;
    size_t n = (size_t)(t->_end - t->_start);
    char *d = fa_pool_alloc(pool, n + 1);
    size_t m = unescape(s, n, d);
    d[m] = '\0';
    *out = (fa_str_t){d, m};
    return true;
}

/* ---- numbers ---- */

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Clinger's fast path: with at most 2^53 as the digits and a power of ten that is itself exact
 * (<= 1e22), one IEEE multiplication or division is correctly rounded, so the result equals
 * strtod's. Returns false when the number is outside that case. s[0..n) is a valid JSON number. */
static bool number_fast(const char *s, size_t n, double *out)
{
    const char *p = s, *e = s + n;
    bool neg = *p == '-';
    p += neg;
    uint64_t m = 0;
    int digits = 0, scale = 0;
    for (; p < e && is_digit((unsigned char)*p); p++, digits++)
        m = m * 10 + (uint64_t)(*p - '0');
    if (p < e && *p == '.')
        for (p++; p < e && is_digit((unsigned char)*p); p++, digits++, scale--)
            m = m * 10 + (uint64_t)(*p - '0');
    if (digits > 18)
        return false;
    if (p < e) { /* exponent */
        p++;
        bool eneg = *p == '-';
        p += *p == '-' || *p == '+';
        if (e - p > 4)
            return false;
        int x = 0;
        for (; p < e; p++)
            x = x * 10 + (*p - '0');
        scale += eneg ? -x : x;
    }
    if (m > ((uint64_t)1 << 53) || scale < -22 || scale > 22)
        return false;
    double v = (double)m;
    v = scale < 0 ? v / pow10_exact[-scale] : v * pow10_exact[scale];
    *out = neg ? -v : v;
    return true;
}

bool fa_json_number(const fa_json_t *doc, int tok, double *out)
{
    const fa__json_tok_t *t = &doc->_toks[tok];
    const char *s = doc->_buf + t->_start;
    size_t n = (size_t)(t->_end - t->_start);
    if (t->_type != JSMN_PRIMITIVE || !(*s == '-' || is_digit((unsigned char)*s)))
        return false;
    if (number_fast(s, n, out))
        return true;
    /* strtod needs a terminator. Inside the document the token is followed by a delimiter that
     * cannot continue a number; only a number ending the buffer needs a copy. */
    double v;
    char small[64];
    if ((size_t)t->_end < doc->_len) {
        v = strtod(s, NULL);
    } else if (n < sizeof(small)) {
        memcpy(small, s, n);
        small[n] = '\0';
        v = strtod(small, NULL);
    } else {
        char *copy = fa_strndup(s, n); /* a huge bare number: not a hot path */
        v = strtod(copy, NULL);
        fa_free(copy);
    }
    if (!isfinite(v))
        return false;
    *out = v;
    return true;
}

/* ---- output ---- */

/* What each byte becomes inside a JSON string: 0 itself, 'u' \u00XX, another letter \<letter>,
 * 1 a byte >= 0x80 to check as UTF-8. */
static const char esc_class[256] = {
    [0 ... 7] = 'u', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', [0x0b] = 'u', ['\f'] = 'f',
    ['\r'] = 'r', [0x0e ... 0x1f] = 'u',
    ['"'] = '"', ['\\'] = '\\', [0x80 ... 0xff] = 1,
};

size_t fa_json_escape(char *dst, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *e = p + len;
    size_t w = 0;
#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (w < cap)                                                                               \
            dst[w] = (char)(ch);                                                                   \
        w++;                                                                                       \
    } while (0)
    while (p < e) {
        char k = esc_class[*p];
        if (FA_LIKELY(k == 0)) {
            PUT(*p);
            p++;
            continue;
        }
        if (k == 1) {
            const char *why;
            size_t n = utf8_seq(p, e, &why);
            if (n) {
                for (size_t i = 0; i < n; i++)
                    PUT(p[i]);
                p += n;
            } else {
                const char *r = "\\ufffd";
                for (int i = 0; i < 6; i++)
                    PUT(r[i]);
                p++;
            }
            continue;
        }
        PUT('\\');
        if (k == 'u') {
            PUT('u');
            PUT('0');
            PUT('0');
            PUT(hex[*p >> 4]);
            PUT(hex[*p & 15]);
        } else {
            PUT(k);
        }
        p++;
    }
#undef PUT
    return w;
}

void fa_json_writer_init(fa_json_writer_t *w, fa_pool_t *pool, size_t cap)
{
    cap = FA_MAX(cap, (size_t)64);
    *w = (fa_json_writer_t){._pool = pool, ._buf = fa_pool_alloc(pool, cap), ._cap = cap};
}

fa_str_t fa_json_writer_str(const fa_json_writer_t *w)
{
    return (fa_str_t){w->_buf, w->_len};
}

/* Makes room for n more bytes: a bigger pool allocation, the old one left to the pool. */
static void reserve(fa_json_writer_t *w, size_t n)
{
    if (FA_LIKELY(w->_cap - w->_len >= n))
        return;
    size_t cap = FA_MAX(w->_cap * 2, w->_len + n);
    char *b = fa_pool_alloc(w->_pool, cap);
    memcpy(b, w->_buf, w->_len);
    w->_buf = b;
    w->_cap = cap;
}

static inline void put(fa_json_writer_t *w, const char *s, size_t n)
{
    reserve(w, n);
    memcpy(w->_buf + w->_len, s, n);
    w->_len += n;
}

static inline void comma(fa_json_writer_t *w)
{
    if (w->_comma) {
        reserve(w, 1);
        w->_buf[w->_len++] = ',';
    }
}

void fa_json_write_raw(fa_json_writer_t *w, const char *s, size_t len)
{
    put(w, s, len);
}

/* Writes "s" escaped; tries in the room already there first, so the usual case scans once. */
static void quoted(fa_json_writer_t *w, const char *s, size_t len)
{
    reserve(w, len + 2);
    size_t room = w->_cap - w->_len - 1;
    size_t need = fa_json_escape(w->_buf + w->_len + 1, room - 1, s, len);
    if (need + 2 > room + 1) {
        reserve(w, need + 2);
        (void)fa_json_escape(w->_buf + w->_len + 1, need, s, len);
    }
    w->_buf[w->_len] = '"';
    w->_buf[w->_len + 1 + need] = '"';
    w->_len += need + 2;
}

void fa_json_write_key(fa_json_writer_t *w, const char *s, size_t len)
{
    comma(w);
    quoted(w, s, len);
    put(w, ":", 1);
    w->_comma = false;
}

void fa_json_write_str(fa_json_writer_t *w, const char *s, size_t len)
{
    comma(w);
    quoted(w, s, len);
    w->_comma = true;
}

static size_t format_int(char *out, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t w = 0;
    if (v < 0)
        out[w++] = '-';
    while (n)
        out[w++] = tmp[--n];
    return w;
}

void fa_json_write_int(fa_json_writer_t *w, int64_t v)
{
    char tmp[24];
    comma(w);
    put(w, tmp, format_int(tmp, v));
    w->_comma = true;
}

void fa_json_write_double(fa_json_writer_t *w, double v)
{
    char tmp[40];
    size_t n;
    comma(w);
    if (!isfinite(v)) {
        n = 4;
        memcpy(tmp, "null", 4);
    } else if (v == (double)(int64_t)v && fabs(v) < 1e15 && !(v == 0 && signbit(v))) {
        n = format_int(tmp, (int64_t)v); /* what %.15g prints for these, without printf */
    } else {
        static const char *const fmts[] = {"%.15g", "%.16g", "%.17g"};
        int m = 0;
        for (size_t i = 0; i < FA_ARRAY_SIZE(fmts); i++) {
            m = snprintf(tmp, sizeof(tmp), fmts[i], v);
            if (strtod(tmp, NULL) == v)
                break;
        }
        n = (size_t)m;
    }
    put(w, tmp, n);
    w->_comma = true;
}

void fa_json_write_bool(fa_json_writer_t *w, bool v)
{
    comma(w);
    if (v)
        put(w, "true", 4);
    else
        put(w, "false", 5);
    w->_comma = true;
}

void fa_json_write_null(fa_json_writer_t *w)
{
    comma(w);
    put(w, "null", 4);
    w->_comma = true;
}

void fa_json_write_begin_object(fa_json_writer_t *w)
{
    comma(w);
    put(w, "{", 1);
    w->_comma = false;
}

void fa_json_write_begin_array(fa_json_writer_t *w)
{
    comma(w);
    put(w, "[", 1);
    w->_comma = false;
}

void fa_json_write_end_object(fa_json_writer_t *w)
{
    put(w, "}", 1);
    w->_comma = true;
}

void fa_json_write_end_array(fa_json_writer_t *w)
{
    put(w, "]", 1);
    w->_comma = true;
}
