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

typedef struct fa__json_tok fa__json_tok_t;

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
fa_json_type_t fa_json_type(const fa_json_t *doc, int tok);

/** Human name of a type for messages: "null", "a boolean", "a number", "a string", ... */
const char *fa_json_type_name(fa_json_type_t type);

/** Members of an object or elements of an array; 0 for anything else. */
int fa_json_size(const fa_json_t *doc, int tok);

/** The index of the first token after tok's subtree (fa_json_count at the end). */
int fa_json_skip(const fa_json_t *doc, int tok);

/**
 * The value token of key (key[0..keylen), raw UTF-8, not escaped) in object obj, or -1 if obj is
 * not an object or has no such key. Keys written with escapes in the document match their
 * unescaped form. Linear in the number of members.
 */
int fa_json_object_get(const fa_json_t *doc, int obj, const char *key, size_t keylen);

/** An iterator over an object's members or an array's elements; see fa_json_iter_next. */
typedef struct {
    int _next; /* next key (object) or element (array) */
    int _left;
    bool _object;
} fa_json_iter_t;

/** Starts iterating container tok; a non-container yields nothing. */
fa_json_iter_t fa_json_iter(const fa_json_t *doc, int tok);

/**
 * Steps the iterator: sets *key to the member's key token (-1 for array elements) and *value to its
 * value token, and returns true; returns false after the last one. Subtrees are skipped in O(1).
 */
bool fa_json_iter_next(const fa_json_t *doc, fa_json_iter_t *it, int *key, int *value);

/**
 * The text of tok as written: a string's contents between the quotes with escapes intact, a
 * number or literal as is, an array or object with its brackets. Borrowed from the input buffer.
 */
fa_str_t fa_json_raw(const fa_json_t *doc, int tok);

/** True if string token tok contains escape sequences (fa_json_str would copy it). */
bool fa_json_str_escaped(const fa_json_t *doc, int tok);

/**
 * The unescaped value of string token tok in *out, as valid UTF-8. Without escapes this points
 * into the input (zero-copy, not NUL-terminated); with escapes it is a NUL-terminated copy
 * allocated from pool. Returns false (and leaves *out alone) if tok is not a string.
 */
bool fa_json_str(const fa_json_t *doc, int tok, fa_pool_t *pool, fa_str_t *out);

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
