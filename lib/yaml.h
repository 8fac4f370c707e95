/*
 * yaml.h — a YAML document read into a small tree that remembers where each node came from.
 *
 * libyaml's event parser feeds fa_yaml_load, which builds scalars, sequences and mappings; every
 * node keeps the file name, line and column (1-based) of its first character so that config errors
 * can say "conf/fasterapid.yaml:12:5: ...". Anchors and aliases are resolved by copying the
 * reference (an alias to a scalar is that scalar). Mapping keys are scalars; a duplicate key is an
 * error reported by the loader. The whole tree lives in one fa_pool_t that the caller owns.
 */
#ifndef FA_YAML_H
#define FA_YAML_H

#include "fa.h"
#include "pool.h"

#include <stdio.h>

typedef enum {
    FA_YAML_SCALAR = 1,
    FA_YAML_SEQ = 2,
    FA_YAML_MAP = 3,
} fa_yaml_kind_t;

typedef struct fa_yaml_node fa_yaml_node_t;

typedef struct {
    fa_yaml_node_t *key; /* always a scalar */
    fa_yaml_node_t *value;
} fa_yaml_pair_t;

struct fa_yaml_node {
    fa_yaml_kind_t kind;
    const char *file; /* borrowed from the tree's pool */
    uint32_t line, col;
    bool quoted; /* scalar was written in quotes: "123" is a string, never a number */
    union {
        struct {
            const char *str; /* NUL-terminated, allocated from the pool */
            size_t len;
        } scalar;
        struct {
            fa_yaml_node_t **items;
            size_t len;
        } seq;
        struct {
            fa_yaml_pair_t *pairs; /* in document order */
            size_t len;
        } map;
    };
};

/**
 * Parses a YAML document from buf[0..len) into a tree allocated from pool. file names the source in
 * locations. On a syntax error returns NULL and writes "file:line:col: message" into err (errlen
 * bytes, NUL-terminated). An empty document yields an empty mapping. A duplicate mapping key is a
 * syntax error here, located at the second occurrence.
 *
 * Details: file is copied into the pool. Duplicate keys and non-scalar keys do not stop the parse,
 * so err may hold several lines (separated by '\n', the last one without it); each then reads
 * "file:line:col: PATH: message" where PATH is the dotted path of the key ("server.workers",
 * "routes[1].match"). A second document is an error. Anchors may be used before they are defined
 * only in the sense YAML allows (never): an alias to an unknown anchor is an error. Runs on any
 * thread; the pool is used by this thread only during the call.
 */
fa_yaml_node_t *fa_yaml_load(fa_pool_t *pool, const char *file, const char *buf, size_t len,
                             char *err, size_t errlen);

/** Reads the file at path and calls fa_yaml_load; a read error is reported in err as well. */
fa_yaml_node_t *fa_yaml_load_file(fa_pool_t *pool, const char *path, char *err, size_t errlen);

/** The value of key in a mapping node, or NULL (also NULL if map is not a mapping). */
fa_yaml_node_t *fa_yaml_map_get(const fa_yaml_node_t *map, const char *key);

/** True if the node is a scalar equal to s. */
bool fa_yaml_scalar_is(const fa_yaml_node_t *node, const char *s);

/** Human name of the node kind, for errors: "a scalar", "a sequence", "a mapping". */
const char *fa_yaml_kind_name(fa_yaml_kind_t kind);

/**
 * True if node is a plain (unquoted) scalar that YAML reads as null: "", "~" or "null". Config
 * sections written as "server:" with nothing under them are such nodes.
 */
bool fa_yaml_is_null(const fa_yaml_node_t *node);

/**
 * Writes node as YAML flow text (`{a: 1, b: [x, "y z"]}`) to out, such that fa_yaml_load reads it
 * back to an equal tree. Quoted scalars stay quoted; a plain scalar is written plain when that is
 * safe in flow context, else double-quoted (so it may come back with quoted set).
 */
void fa_yaml_emit_flow(FILE *out, const fa_yaml_node_t *node);

/** libyaml's version string ("0.2.5"), static. */
const char *fa_yaml_libyaml_version(void);

/** Writes s[0..len) as a double-quoted YAML scalar with escapes. */
void fa_yaml_emit_quoted(FILE *out, const char *s, size_t len);

#endif
