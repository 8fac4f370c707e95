/*
 * yaml.c — libyaml's event parser folded into a located node tree; see yaml.h.
 *
 * The builder keeps a stack of open collections. Their children are gathered in fa_malloc'd
 * vectors while the collection is open (its final size is unknown) and copied into the caller's
 * pool when it closes, so the pool only ever holds the final tree. The vectors, the anchor table
 * and libyaml's own state are released on every exit path.
 */
#include "yaml.h"
#include "alloc.h"

#include <yaml.h> /* libyaml: lib/ is searched only for quoted includes (-iquote) */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    fa_yaml_node_t *node;   /* the collection being built; its items are filled at the end */
    fa_yaml_node_t **items; /* sequence items, or alternating key, value for a mapping */
    size_t len, cap;
    char *anchor; /* fa_malloc'd name to register when the collection closes, or NULL */
} frame_t;

typedef struct {
    char *name; /* fa_malloc'd */
    fa_yaml_node_t *node;
} anchor_t;

typedef struct {
    fa_pool_t *pool;
    const char *file; /* in the pool */
    const char *buf;
    char *err;
    size_t errlen, errused;
    unsigned nerrors;
    frame_t *stack;
    size_t depth, stack_cap;
    anchor_t *anchors;
    size_t nanchors, anchors_cap;
    fa_yaml_node_t *root;
    bool have_root;
} builder_t;

/* Appends one line to the caller's error buffer, silently truncating when it is full: the first
 * errors matter most. */
static void add_err(builder_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_err(builder_t *b, const char *fmt, ...)
{
    b->nerrors++;
    if (!b->err || b->errlen == 0 || b->errused + 1 >= b->errlen)
        return;
    if (b->errused > 0)
        b->err[b->errused++] = '\n';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->err + b->errused, b->errlen - b->errused, fmt, ap);
    va_end(ap);
    size_t start = b->errused;
    if (n > 0)
        b->errused = FA_MIN(b->errused + (size_t)n, b->errlen - 1);
    b->err[b->errused] = '\0';
    /* A key from the file (in the path) may hold a newline: one error stays one line. */
    for (size_t i = start; i < b->errused; i++)
        if ((unsigned char)b->err[i] < 0x20)
            b->err[i] = '?';
}

static fa_yaml_node_t *new_node(builder_t *b, fa_yaml_kind_t kind, yaml_mark_t mark)
{
    fa_yaml_node_t *n = fa_pool_calloc(b->pool, sizeof(*n));
    n->kind = kind;
    n->file = b->file;
    n->line = (uint32_t)mark.line + 1;
    n->col = (uint32_t)mark.column + 1;
    return n;
}

static void anchor_set(builder_t *b, char *name, fa_yaml_node_t *node)
{
    if (b->nanchors == b->anchors_cap) {
        b->anchors_cap = b->anchors_cap ? b->anchors_cap * 2 : 8;
        b->anchors = fa_realloc(b->anchors, b->anchors_cap * sizeof(*b->anchors));
    }
    b->anchors[b->nanchors++] = (anchor_t){name, node};
}

static fa_yaml_node_t *anchor_get(builder_t *b, const char *name)
{
    /* YAML lets a later anchor of the same name shadow an earlier one: search newest first. */
    for (size_t i = b->nanchors; i-- > 0;)
        if (strcmp(b->anchors[i].name, name) == 0)
            return b->anchors[i].node;
    return NULL;
}

/* Writes the dotted path of the slot being filled in the top frame ("server.workers",
 * "routes[2].pipeline[0]"), with key appended when given. Used only for error messages. */
static void path_of(builder_t *b, const fa_yaml_node_t *key, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < b->depth && n < outlen; i++) {
        frame_t *f = &b->stack[i];
        bool last = i + 1 == b->depth;
        int m = 0;
        if (f->node->kind == FA_YAML_SEQ && !last) {
            m = snprintf(out + n, outlen - n, "[%zu]", f->len);
        } else if (f->node->kind == FA_YAML_MAP) {
            const fa_yaml_node_t *k = last ? key : (f->len % 2 ? f->items[f->len - 1] : NULL);
            if (k && k->kind == FA_YAML_SCALAR)
                m = snprintf(out + n, outlen - n, "%s%s", n ? "." : "", k->scalar.str);
        }
        if (m > 0)
            n = FA_MIN(n + (size_t)m, outlen - 1);
    }
}

/* Places a finished node: as the document root, or into the open collection on top. A mapping
 * checks its keys here, as they arrive, so that every duplicate is reported at its own line. */
static void place(builder_t *b, fa_yaml_node_t *node)
{
    if (b->depth == 0) {
        b->root = node;
        b->have_root = true;
        return;
    }
    frame_t *f = &b->stack[b->depth - 1];
    if (f->node->kind == FA_YAML_MAP && f->len % 2 == 0) {
        char path[256];
        if (node->kind != FA_YAML_SCALAR) {
            path_of(b, NULL, path, sizeof(path));
            add_err(b, "%s:%u:%u: %s%smapping keys must be scalars, got %s", b->file, node->line,
                    node->col, path, path[0] ? ": " : "", fa_yaml_kind_name(node->kind));
        } else {
            for (size_t i = 0; i < f->len; i += 2) {
                const fa_yaml_node_t *k = f->items[i];
                /* The same text, or two spellings of null ("", "~", "null"): one key. */
                bool same = k->kind == FA_YAML_SCALAR &&
                            ((k->scalar.len == node->scalar.len &&
                              memcmp(k->scalar.str, node->scalar.str, k->scalar.len) == 0) ||
                             (fa_yaml_is_null(k) && fa_yaml_is_null(node)));
                if (same) {
                    path_of(b, node, path, sizeof(path));
                    add_err(b, "%s:%u:%u: %s: duplicate key (first defined at line %u, column %u)",
                            b->file, node->line, node->col, path, k->line, k->col);
                    break;
                }
            }
        }
    }
    if (f->len == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->items = fa_realloc(f->items, f->cap * sizeof(*f->items));
    }
    f->items[f->len++] = node;
}

static void push(builder_t *b, fa_yaml_node_t *node, const yaml_char_t *anchor)
{
    if (b->depth == b->stack_cap) {
        b->stack_cap = b->stack_cap ? b->stack_cap * 2 : 8;
        b->stack = fa_realloc(b->stack, b->stack_cap * sizeof(*b->stack));
    }
    b->stack[b->depth++] = (frame_t){
        .node = node,
        .anchor = anchor ? fa_strndup((const char *)anchor, strlen((const char *)anchor)) : NULL,
    };
}

/* Closes the top collection: its children move from the temporary vector into the pool. */
static void pop(builder_t *b)
{
    frame_t f = b->stack[--b->depth];
    fa_yaml_node_t *n = f.node;
    if (n->kind == FA_YAML_SEQ) {
        n->seq.len = f.len;
        n->seq.items = fa_pool_alloc(b->pool, f.len * sizeof(*n->seq.items));
        if (f.len)
            memcpy(n->seq.items, f.items, f.len * sizeof(*n->seq.items));
    } else {
        n->map.len = f.len / 2;
        n->map.pairs = fa_pool_alloc(b->pool, n->map.len * sizeof(*n->map.pairs));
        for (size_t i = 0; i < n->map.len; i++)
            n->map.pairs[i] = (fa_yaml_pair_t){f.items[2 * i], f.items[2 * i + 1]};
    }
    fa_free(f.items);
    if (f.anchor)
        anchor_set(b, f.anchor, n);
    place(b, n);
}

/* Converts libyaml's error state to one located line. Reader errors (bad UTF-8) carry a byte
 * offset instead of a mark, so the line and column are counted here. */
static void syntax_error(builder_t *b, const yaml_parser_t *p, size_t len)
{
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
    if (p->error == YAML_READER_ERROR) {
        line = 1;
        col = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            if (b->buf[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
    }
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->context)
        add_err(b, "%s:%zu:%zu: %s (%s that started at line %zu)", b->file, line, col, problem,
                p->context, (size_t)p->context_mark.line + 1);
    else
        add_err(b, "%s:%zu:%zu: %s", b->file, line, col, problem);
}

/* The tree is built from events in one pass. Syntax errors stop it; duplicate or non-scalar keys,
 * unknown aliases and extra documents are recorded and the pass goes on, so one run reports them
 * all. */
fa_yaml_node_t *fa_yaml_load(fa_pool_t *pool, const char *file, const char *buf, size_t len,
                             char *err, size_t errlen)
{
    builder_t b = {.pool = pool, .buf = buf, .err = err, .errlen = errlen};
    b.file = fa_pool_strndup(pool, file, strlen(file));
    if (err && errlen)
        err[0] = '\0';

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        add_err(&b, "%s: cannot initialise the YAML parser", b.file);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

    unsigned ndocs = 0;
    bool done = false, failed = false;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            syntax_error(&b, &parser, len);
            failed = true;
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++ndocs == 2)
                add_err(&b, "%s:%zu:%zu: a second document; a config file holds exactly one",
                        b.file, ev.start_mark.line + 1, ev.start_mark.column + 1);
            break;
        case YAML_SCALAR_EVENT: {
            fa_yaml_node_t *n = new_node(&b, FA_YAML_SCALAR, ev.start_mark);
            n->scalar.len = ev.data.scalar.length;
            n->scalar.str =
                fa_pool_strndup(pool, (const char *)ev.data.scalar.value, ev.data.scalar.length);
            n->quoted = ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
            if (ev.data.scalar.anchor)
                anchor_set(&b,
                           fa_strndup((const char *)ev.data.scalar.anchor,
                                      strlen((const char *)ev.data.scalar.anchor)),
                           n);
            if (ndocs < 2)
                place(&b, n);
            break;
        }
        case YAML_SEQUENCE_START_EVENT:
            push(&b, new_node(&b, FA_YAML_SEQ, ev.start_mark), ev.data.sequence_start.anchor);
            break;
        case YAML_MAPPING_START_EVENT:
            push(&b, new_node(&b, FA_YAML_MAP, ev.start_mark), ev.data.mapping_start.anchor);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            /* A second document is only parsed for syntax: its nodes are never placed. */
            if (ndocs < 2) {
                pop(&b);
            } else {
                b.depth--;
                fa_free(b.stack[b.depth].items);
                fa_free(b.stack[b.depth].anchor);
            }
            break;
        case YAML_ALIAS_EVENT: {
            const char *name = (const char *)ev.data.alias.anchor;
            fa_yaml_node_t *n = anchor_get(&b, name);
            if (!n) {
                add_err(&b, "%s:%zu:%zu: unknown anchor \"%s\"", b.file, ev.start_mark.line + 1,
                        ev.start_mark.column + 1, name);
                /* Keep the tree's shape: stand in an empty scalar at the alias. */
                n = new_node(&b, FA_YAML_SCALAR, ev.start_mark);
                n->scalar.str = "";
            }
            if (ndocs < 2)
                place(&b, n);
            break;
        }
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);

    while (b.depth > 0) {
        b.depth--;
        fa_free(b.stack[b.depth].items);
        fa_free(b.stack[b.depth].anchor);
    }
    fa_free(b.stack);
    for (size_t i = 0; i < b.nanchors; i++)
        fa_free(b.anchors[i].name);
    fa_free(b.anchors);

    if (failed || b.nerrors > 0)
        return NULL;
    if (!b.have_root || fa_yaml_is_null(b.root)) {
        fa_yaml_node_t *empty = fa_pool_calloc(pool, sizeof(*empty));
        empty->kind = FA_YAML_MAP;
        empty->file = b.file;
        empty->line = b.have_root ? b.root->line : 1;
        empty->col = b.have_root ? b.root->col : 1;
        return empty;
    }
    return b.root;
}

/* Reads the whole file into a temporary buffer: config files are small, and libyaml needs
 * the input either as a string or through a callback. */
fa_yaml_node_t *fa_yaml_load_file(fa_pool_t *pool, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = fa_malloc(cap);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = fa_realloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            fa_free(buf);
            close(fd);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    fa_yaml_node_t *root = fa_yaml_load(pool, path, buf, len, err, errlen);
    fa_free(buf);
    return root;
}

fa_yaml_node_t *fa_yaml_map_get(const fa_yaml_node_t *map, const char *key)
{
    if (!map || map->kind != FA_YAML_MAP)
        return NULL;
    for (size_t i = 0; i < map->map.len; i++)
        if (fa_yaml_scalar_is(map->map.pairs[i].key, key))
            return map->map.pairs[i].value;
    return NULL;
}

bool fa_yaml_scalar_is(const fa_yaml_node_t *node, const char *s)
{
    size_t n = strlen(s);
    return node && node->kind == FA_YAML_SCALAR && node->scalar.len == n &&
           memcmp(node->scalar.str, s, n) == 0;
}

const char *fa_yaml_kind_name(fa_yaml_kind_t kind)
{
    switch (kind) {
    case FA_YAML_SCALAR:
        return "a scalar";
    case FA_YAML_SEQ:
        return "a sequence";
    case FA_YAML_MAP:
        return "a mapping";
    }
    return "an unknown node";
}

bool fa_yaml_is_null(const fa_yaml_node_t *node)
{
    return node && node->kind == FA_YAML_SCALAR && !node->quoted &&
           (node->scalar.len == 0 || fa_yaml_scalar_is(node, "~") ||
            fa_yaml_scalar_is(node, "null"));
}

void fa_yaml_emit_quoted(FILE *out, const char *s, size_t len)
{
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] == 0x85)
            fputs("\\N", out), i++; /* NEL: a line break to YAML, folded unless escaped */
        else if (c == 0xe2 && i + 2 < len && (unsigned char)s[i + 1] == 0x80 &&
                 ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9))
            fputs((unsigned char)s[i + 2] == 0xa8 ? "\\L" : "\\P", out), i += 2; /* LS, PS */
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* Whether a plain scalar can be written back plain inside flow collections and still read as the
 * same plain string. Deliberately conservative: anything doubtful gets quoted instead. */
static bool plain_safe(const char *s, size_t len)
{
    if (len == 0)
        return false;
    if (len == 1 && s[0] == '~')
        return true;
    unsigned char c0 = (unsigned char)s[0];
    bool first_ok = (c0 >= '0' && c0 <= '9') || (c0 >= 'a' && c0 <= 'z') ||
                    (c0 >= 'A' && c0 <= 'Z') || c0 == '_' || c0 == '/' || c0 == '.' || c0 == '$' ||
                    (c0 == '-' && len > 1 && s[1] >= '0' && s[1] <= '9');
    if (!first_ok || s[len - 1] == ' ' || s[len - 1] == ':')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            continue;
        if (c == ':' && s[i + 1] == ' ')
            return false;
        if (!strchr(" _.-/+$()=;~^<>:", c) || c == '\0')
            return false;
    }
    return true;
}

/* Keys longer than this may pass YAML's 1024-character limit once escaped (\xNN: 4 per byte). */
#define LONG_KEY 250

void fa_yaml_emit_flow(FILE *out, const fa_yaml_node_t *node)
{
    switch (node->kind) {
    case FA_YAML_SCALAR:
        /* An empty plain scalar (YAML's null) is written as nothing, which reads back the same
         * after "key: ", so "stats:" survives; a sequence writes it as "~" instead. */
        if (!node->quoted &&
            (node->scalar.len == 0 || plain_safe(node->scalar.str, node->scalar.len)))
            fwrite(node->scalar.str, 1, node->scalar.len, out);
        else
            fa_yaml_emit_quoted(out, node->scalar.str, node->scalar.len);
        break;
    case FA_YAML_SEQ:
        fputc('[', out);
        for (size_t i = 0; i < node->seq.len; i++) {
            const fa_yaml_node_t *it = node->seq.items[i];
            if (i)
                fputs(", ", out);
            if (it->kind == FA_YAML_SCALAR && !it->quoted && it->scalar.len == 0)
                fputc('~', out);
            else
                fa_yaml_emit_flow(out, it);
        }
        fputc(']', out);
        break;
    case FA_YAML_MAP:
        fputc('{', out);
        for (size_t i = 0; i < node->map.len; i++) {
            if (i)
                fputs(", ", out);
            const fa_yaml_node_t *key = node->map.pairs[i].key;
            /* An empty plain key (null, e.g. "{&a : x}") written as nothing would read "{: x}",
             * which is not YAML: write "~", the same null. */
            if (key->kind == FA_YAML_SCALAR && !key->quoted && key->scalar.len == 0) {
                fputc('~', out);
            } else {
                /* An implicit key is at most 1024 characters in YAML (libyaml enforces it);
                 * a long one, escapes included, is written as an explicit "? key". */
                if (key->kind != FA_YAML_SCALAR || key->scalar.len > LONG_KEY)
                    fputs("? ", out);
                fa_yaml_emit_flow(out, key);
            }
            fputs(": ", out);
            fa_yaml_emit_flow(out, node->map.pairs[i].value);
        }
        fputc('}', out);
        break;
    }
}

const char *fa_yaml_libyaml_version(void)
{
    return yaml_get_version_string();
}
