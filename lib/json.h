/*
 * json.h — strict RFC 8259 JSON parsing into a token array, and a small JSON writer.
 *
 * Parsing uses jsmn (Debian libjsmn-dev) as the tokenizer and adds a validation pass that makes
 * the whole thing strict: every literal and number is checked against the grammar, every string
 * for escapes (\uXXXX surrogate pairs included), control characters and UTF-8 (no overlongs, no
 * encoded surrogates, nothing above U+10FFFF), the punctuation between tokens for ',' and ':' and
 * trailing commas, exactly one top-level value, and duplicate keys inside an object. The choice
 * of jsmn over yajl is recorded by perf/bench_json.c.
 *
 * A parsed document borrows the input buffer and keeps its tokens in a pool (normally the request
 * pool): both must outlive every use of the document, and nothing is freed by the caller. Parsing
 * calls no allocator once the pool's first block is big enough. A document is used by one thread.
 *
 * Tokens are addressed by index; the root is index 0. An object's members are (key, value) token
 * pairs; fa_json_iter walks members or elements without descending into their subtrees.
 *
 * Decisions worth knowing: a lone surrogate escape (\ud800 without its pair, or \udc00 alone) is
 * rejected, since it cannot be turned into UTF-8 and RFC 8259 only says such text has unpredictable
 * behaviour; NaN and Infinity are not JSON; numbers too big for a double (1e999) are valid JSON
 * that fa_json_number refuses; numbers are read in the C locale's syntax.
 */
#ifndef FA_JSON_H
#define FA_JSON_H

#include "fa.h"
#include "pool.h"

#include <string.h>

/** Limits applied by fa_json_parse. A zero field takes its default. */
typedef struct {
    size_t max_bytes;    /* default FA_JSON_DEFAULT_MAX_BYTES; never above FA_JSON_HARD_MAX_BYTES */
    uint32_t max_depth;  /* nesting of arrays and objects; default FA_JSON_DEFAULT_MAX_DEPTH */
    uint32_t max_tokens; /* values plus keys; default FA_JSON_DEFAULT_MAX_TOKENS */
} fa_json_limits_t;

#define FA_JSON_DEFAULT_MAX_BYTES ((size_t)1 << 20)
#define FA_JSON_HARD_MAX_BYTES ((size_t)1 << 30) /* jsmn keeps offsets in an int */
#define FA_JSON_DEFAULT_MAX_DEPTH 64u
#define FA_JSON_DEFAULT_MAX_TOKENS 65536u

/** Why a parse failed. */
typedef enum {
    FA_JSON_OK = 0,
    FA_JSON_ESYNTAX,   /* not JSON: bad structure, literal, number, escape, trailing data */
    FA_JSON_EEMPTY,    /* nothing but whitespace */
    FA_JSON_ESTRING,   /* control character or invalid UTF-8 inside a string */
    FA_JSON_EDUPKEY,   /* the same key twice in one object (compared after unescaping) */
    FA_JSON_ETOOBIG,   /* more than max_bytes */
    FA_JSON_ETOODEEP,  /* nesting beyond max_depth */
    FA_JSON_ETOOMANY,  /* more than max_tokens tokens */
} fa_json_code_t;

/**
 * A parse error: the code, the byte offset of the problem and a short message ready for a 400
 * body, e.g. "invalid JSON at byte 12: unterminated string". Filled only when parsing fails.
 */
typedef struct {
    fa_json_code_t code;
    size_t offset;
    char msg[128]; /* NUL-terminated */
} fa_json_error_t;

/** What a token holds. */
typedef enum {
    FA_JSON_NULL = 1,
    FA_JSON_FALSE,
    FA_JSON_TRUE,
    FA_JSON_NUMBER,
    FA_JSON_STRING,
    FA_JSON_ARRAY,
    FA_JSON_OBJECT,
} fa_json_type_t;

/*
 * A token, private like every field here: it is shown only so that the accessors below can be
 * inline (the request path calls them a dozen times per event). Its layout is jsmn's jsmntok_t
 * with parent links, field for field (json.c asserts it), because jsmn writes the token array
 * itself; may_alias lets these accessors read memory jsmn wrote through its own struct type.
 */
typedef struct __attribute__((__may_alias__)) fa__json_tok {
    int _type;  /* FA__JSON_TOK_OBJECT ... (jsmn's jsmntype_t values) */
    int _start; /* offset of the first byte; for a string, the first byte after its quote */
    int _end;   /* offset after the last byte; for a string, its closing quote */
    int _size;  /* members or elements of a container; FA__JSON_STR_ flags of a string;
                 * FA_JSON_NUM_ flags of a number; 0 for a literal */
    int _next;  /* the index of the first token after this one's subtree */
} fa__json_tok_t;

enum { FA__JSON_TOK_OBJECT = 1, FA__JSON_TOK_ARRAY, FA__JSON_TOK_STRING, FA__JSON_TOK_PRIMITIVE };

/* Flags of a string token: the raw text holds escapes; it holds bytes >= 0x80. */
enum { FA__JSON_STR_ESCAPED = 1, FA__JSON_STR_NONASCII = 2 };

/** How a number is written (fa_json_number_form): with a fraction, with an exponent. */
enum { FA_JSON_NUM_FRACTION = 1, FA_JSON_NUM_EXPONENT = 2 };

/** A parsed document. Fields are private; it borrows the input and lives in the pool given. */
typedef struct {
    const char *_buf;
    size_t _len;
    fa__json_tok_t *_toks; /* allocated from the pool given to fa_json_parse */
    int _ntoks;
} fa_json_t;

/**
 * Parses buf[0..len) (not NUL-terminated) strictly into doc. Tokens are allocated from pool and
 * stay valid until its reset; buf is borrowed for the document's life. lim may be NULL for the
 * defaults. Returns 0, or -1 with err filled (err may be NULL when the caller needs no detail).
 */
int fa_json_parse(fa_json_t *doc, fa_pool_t *pool, const char *buf, size_t len,
                  const fa_json_limits_t *lim, fa_json_error_t *err);

/** The root token (always 0 in a parsed document). */
static inline int fa_json_root(const fa_json_t *doc)
{
    (void)doc;
    return 0;
}

/** Number of tokens in the document. */
static inline int fa_json_count(const fa_json_t *doc)
{
    return doc->_ntoks;
}

/** The type of token tok. */
static inline fa_json_type_t fa_json_type(const fa_json_t *doc, int tok)
{
    const fa__json_tok_t *t = &doc->_toks[tok];
    switch (t->_type) {
    case FA__JSON_TOK_OBJECT:
        return FA_JSON_OBJECT;
    case FA__JSON_TOK_ARRAY:
        return FA_JSON_ARRAY;
    case FA__JSON_TOK_STRING:
        return FA_JSON_STRING;
    default:
        switch (doc->_buf[t->_start]) {
        case 't':
            return FA_JSON_TRUE;
        case 'f':
            return FA_JSON_FALSE;
        case 'n':
            return FA_JSON_NULL;
        default:
            return FA_JSON_NUMBER;
        }
    }
}

/** Human name of a type for messages: "null", "a boolean", "a number", "a string", ... */
const char *fa_json_type_name(fa_json_type_t type);

/** Members of an object or elements of an array; 0 for anything else. */
static inline int fa_json_size(const fa_json_t *doc, int tok)
{
    const fa__json_tok_t *t = &doc->_toks[tok];
    return t->_type == FA__JSON_TOK_OBJECT || t->_type == FA__JSON_TOK_ARRAY ? t->_size : 0;
}

/** The index of the first token after tok's subtree (fa_json_count at the end). */
static inline int fa_json_skip(const fa_json_t *doc, int tok)
{
    return doc->_toks[tok]._next;
}

/* Not API: n bytes at a equal n bytes at b. Keys are short, so up to 16 bytes this compares two
 * overlapping words of 4 or 8 bytes (the first and the last) instead of calling memcmp. */
static inline bool fa__json_bytes_eq(const char *a, const char *b, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t x0, x1, y0, y1;
        memcpy(&x0, a, 8);
        memcpy(&x1, a + n - 8, 8);
        memcpy(&y0, b, 8);
        memcpy(&y1, b + n - 8, 8);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    }
    if (n >= 4 && n < 8) {
        uint32_t x0, x1, y0, y1;
        memcpy(&x0, a, 4);
        memcpy(&x1, a + n - 4, 4);
        memcpy(&y0, b, 4);
        memcpy(&y1, b + n - 4, 4);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    }
    return memcmp(a, b, n) == 0;
}

/* Not API: escaped (validated) string text s[0..n) equals key[0..keylen) once unescaped. */
bool fa__json_escaped_eq(const char *s, size_t n, const char *key, size_t keylen);

/**
 * The value token of key (key[0..keylen), raw UTF-8, not escaped) in object obj, or -1 if obj is
 * not an object or has no such key. Keys written with escapes in the document match their
 * unescaped form. Linear in the number of members.
 */
static inline int fa_json_object_get(const fa_json_t *doc, int obj, const char *key,
                                     size_t keylen)
{
    const fa__json_tok_t *t = doc->_toks;
    if (obj < 0 || obj >= doc->_ntoks || t[obj]._type != FA__JSON_TOK_OBJECT)
        return -1;
    for (int k = obj + 1, left = t[obj]._size; left > 0; left--, k = t[k + 1]._next) {
        const char *s = doc->_buf + t[k]._start;
        size_t n = (size_t)(t[k]._end - t[k]._start);
        if (FA_UNLIKELY(t[k]._size & FA__JSON_STR_ESCAPED)) {
            if (fa__json_escaped_eq(s, n, key, keylen))
                return k + 1;
        } else if (n == keylen && fa__json_bytes_eq(s, key, n)) {
            return k + 1;
        }
    }
    return -1;
}

/** An iterator over an object's members or an array's elements; see fa_json_iter_next. */
typedef struct {
    int _next; /* next key (object) or element (array) */
    int _left;
    bool _object;
} fa_json_iter_t;

/** Starts iterating container tok; a non-container yields nothing. */
static inline fa_json_iter_t fa_json_iter(const fa_json_t *doc, int tok)
{
    const fa__json_tok_t *t = &doc->_toks[tok];
    bool object = t->_type == FA__JSON_TOK_OBJECT;
    return (fa_json_iter_t){
        ._next = tok + 1,
        ._left = object || t->_type == FA__JSON_TOK_ARRAY ? t->_size : 0,
        ._object = object,
    };
}

/**
 * Steps the iterator: sets *key to the member's key token (-1 for array elements) and *value to its
 * value token, and returns true; returns false after the last one. Subtrees are skipped in O(1).
 */
static inline bool fa_json_iter_next(const fa_json_t *doc, fa_json_iter_t *it, int *key,
                                     int *value)
{
    if (it->_left <= 0)
        return false;
    it->_left--;
    int k = it->_next;
    if (it->_object) {
        *key = k;
        *value = k + 1;
    } else {
        *key = -1;
        *value = k;
    }
    it->_next = doc->_toks[*value]._next;
    return true;
}

/**
 * The text of tok as written: a string's contents between the quotes with escapes intact, a
 * number or literal as is, an array or object with its brackets. Borrowed from the input buffer.
 */
static inline fa_str_t fa_json_raw(const fa_json_t *doc, int tok)
{
    const fa__json_tok_t *t = &doc->_toks[tok];
    return (fa_str_t){doc->_buf + t->_start, (size_t)(t->_end - t->_start)};
}

/** True if string token tok contains escape sequences (fa_json_str would copy it). */
static inline bool fa_json_str_escaped(const fa_json_t *doc, int tok)
{
    const fa__json_tok_t *t = &doc->_toks[tok];
    return t->_type == FA__JSON_TOK_STRING && (t->_size & FA__JSON_STR_ESCAPED);
}

/**
 * True if string token tok is plain ASCII as written: no escapes and no byte >= 0x80. Its text is
 * then its value (fa_json_str copies nothing) and its length in bytes is its length in code points.
 * False for anything that is not a string.
 */
static inline bool fa_json_str_ascii(const fa_json_t *doc, int tok)
{
    const fa__json_tok_t *t = &doc->_toks[tok];
    return t->_type == FA__JSON_TOK_STRING && t->_size == 0;
}

/* Not API: fa_json_str for a string with escapes (a copy in pool). */
bool fa__json_str_unescape(const fa_json_t *doc, int tok, fa_pool_t *pool, fa_str_t *out);

/**
 * The unescaped value of string token tok in *out, as valid UTF-8. Without escapes this points
 * into the input (zero-copy, not NUL-terminated); with escapes it is a NUL-terminated copy
 * allocated from pool. Returns false (and leaves *out alone) if tok is not a string.
 */
static inline bool fa_json_str(const fa_json_t *doc, int tok, fa_pool_t *pool, fa_str_t *out)
{
    const fa__json_tok_t *t = &doc->_toks[tok];
    if (t->_type != FA__JSON_TOK_STRING)
        return false;
    if (FA_UNLIKELY(t->_size & FA__JSON_STR_ESCAPED))
        return fa__json_str_unescape(doc, tok, pool, out);
    *out = (fa_str_t){doc->_buf + t->_start, (size_t)(t->_end - t->_start)};
    return true;
}

/**
 * How number token tok is written, as the tokenizer saw it: FA_JSON_NUM_FRACTION if it has a '.'
 * part, FA_JSON_NUM_EXPONENT if it has an 'e' or 'E' part; 0 for an integer such as -12, and for
 * any token that is not a number. Reading it costs no pass over the text.
 */
static inline unsigned fa_json_number_form(const fa_json_t *doc, int tok)
{
    const fa__json_tok_t *t = &doc->_toks[tok];
    return t->_type == FA__JSON_TOK_PRIMITIVE ? (unsigned)t->_size : 0;
}

/**
 * The value of number token tok in *out, correctly rounded. Returns false if tok is not a number
 * or the value is not finite as a double (1e999); underflow to 0 or a subnormal is accepted.
 */
bool fa_json_number(const fa_json_t *doc, int tok, double *out);

/** Number of code points in s[0..len), which must be valid UTF-8 (as fa_json_str returns). */
size_t fa_utf8_len(const char *s, size_t len);

/**
 * Escapes s[0..len) for use inside a JSON string (no quotes added): '"', '\\' and control
 * characters are escaped (\n \t \r \b \f, else \u00XX); valid UTF-8 is kept as is and each byte of
 * invalid UTF-8 becomes \ufffd so the output is always valid JSON. Writes min(cap, needed) bytes
 * to dst (dst may be NULL when cap is 0) and returns the bytes needed. Any thread.
 */
size_t fa_json_escape(char *dst, size_t cap, const char *s, size_t len);

/**
 * A growable JSON text in a pool, with commas placed by the writer: after begin_object or
 * begin_array, each value (or key) is preceded by a comma unless it is the first. Growing copies
 * into a new pool allocation (the old one is left for the pool's reset). Not checked for
 * balance: the caller writes keys and values in a valid order.
 */
typedef struct {
    fa_pool_t *_pool;
    char *_buf;
    size_t _len, _cap;
    bool _comma; /* the next value needs a comma first */
} fa_json_writer_t;

/** Starts an empty text with cap bytes reserved from pool (grown as needed). */
void fa_json_writer_init(fa_json_writer_t *w, fa_pool_t *pool, size_t cap);

/** The text so far: borrowed from the pool, valid until the next write or the pool's reset. */
fa_str_t fa_json_writer_str(const fa_json_writer_t *w);

/** Appends bytes as they are (no comma handling). */
void fa_json_write_raw(fa_json_writer_t *w, const char *s, size_t len);

/** Writes an object key ("key":), with a comma before it if needed. */
void fa_json_write_key(fa_json_writer_t *w, const char *s, size_t len);

/** Writes a string value, escaped and quoted. */
void fa_json_write_str(fa_json_writer_t *w, const char *s, size_t len);

/** Writes an integer value. */
void fa_json_write_int(fa_json_writer_t *w, int64_t v);

/**
 * Writes a double value in the shortest of %.15g, %.16g, %.17g that reads back to the same
 * value; NaN and infinities (which JSON cannot represent) are written as null.
 */
void fa_json_write_double(fa_json_writer_t *w, double v);

/** Writes true or false. */
void fa_json_write_bool(fa_json_writer_t *w, bool v);

/** Writes null. */
void fa_json_write_null(fa_json_writer_t *w);

/** Opens an object or array (as a value, with a comma before it if needed). */
void fa_json_write_begin_object(fa_json_writer_t *w);
void fa_json_write_begin_array(fa_json_writer_t *w);

/** Closes the innermost object or array. */
void fa_json_write_end_object(fa_json_writer_t *w);
void fa_json_write_end_array(fa_json_writer_t *w);

#endif
