/*
 * router.c — a segment trie, built from the config's routes and then frozen for lookups.
 *
 * Two representations live here. While routes are added, the trie is a tree of fa_malloc'd
 * build nodes (bnode_t) that is easy to grow and to check for conflicts. fa_router_compile turns
 * it into one allocation holding flat arrays linked by pointers: nodes, open-addressed
 * hash tables of static children (one per node, power-of-two sized, at most half full), the
 * payloads (one row of FA_METHOD__COUNT per node that ends a route, so dispatch is an index),
 * the names and segment bytes, and the Allow strings for every method set. The build tree is
 * freed then; lookups only read the frozen arrays, so a worker can share them without locks.
 *
 * Lookup walks the path one segment at a time: one word load finds where a short segment ends
 * and gives its key (length and first eight bytes), one probe of the node's table and a compare
 * of two words find the static child; longer segments cost a few more words. Backtracking is a
 * depth-first search; since a node always sits at the same depth, each node is visited at most
 * once per lookup, whatever the routes.
 */
#include "router.h"
#include "alloc.h"

#include <stdio.h>
#include <string.h>

/* ---- methods ---------------------------------------------------------------------------- */

static const char *const method_names[FA_METHOD__COUNT] = {
    [FA_METHOD_GET] = "GET",         [FA_METHOD_HEAD] = "HEAD",     [FA_METHOD_POST] = "POST",
    [FA_METHOD_PUT] = "PUT",         [FA_METHOD_DELETE] = "DELETE", [FA_METHOD_PATCH] = "PATCH",
    [FA_METHOD_OPTIONS] = "OPTIONS",
};

/* Method sets are bit masks, and compile builds one Allow string per set: keep the enum small. */
static_assert(FA_METHOD__COUNT <= 10, "the Allow table has 2^FA_METHOD__COUNT strings");

int fa_method_parse(const char *s, size_t len)
{
    for (int m = 0; m < FA_METHOD__COUNT; m++)
        if (strlen(method_names[m]) == len && memcmp(method_names[m], s, len) == 0)
            return m;
    return -1;
}

const char *fa_method_name(fa_method_t m)
{
    return (unsigned)m < FA_METHOD__COUNT ? method_names[m] : NULL;
}

/* ---- build tree ------------------------------------------------------------------------- */

typedef struct bnode bnode_t;
struct bnode {
    char *seg; /* static: the segment bytes; param and wildcard: the name, without sigil */
    size_t len;
    bnode_t **kids; /* static children, in insertion order */
    size_t nkids, capkids;
    bnode_t *param, *wild;
    unsigned mask; /* methods added for exactly this pattern */
    void *data[FA_METHOD__COUNT];
    uint32_t index; /* position in the frozen node array, set by compile */
};

/* ---- frozen layout ---------------------------------------------------------------------- */

typedef struct rnode rnode_t;

/* One slot of a node's static-children table. A segment's key is its length and its first eight
 * bytes (fewer are zero-padded), so a segment of up to eight bytes is matched by comparing two
 * words; a longer one also compares its remaining bytes. node == NULL marks an empty slot. */
typedef struct {
    uint64_t head;
    uint64_t len;
    const char *str; /* the whole segment, in the router's strings */
    const rnode_t *node;
} rslot_t;

struct rnode {
    const rslot_t *slots; /* this node's table; nodes without static children share an empty one */
    uint32_t slot_mask;   /* table size - 1 */
    uint32_t mask;        /* methods answered here, HEAD included wherever GET is */
    const rnode_t *param; /* child for ":name", or NULL */
    const rnode_t *wild;  /* child for "*name", or NULL */
    void *const *data;    /* FA_METHOD__COUNT payloads, indexed by method; NULL when mask is 0 */
    fa_str_t name;        /* parameter or wildcard name, without sigil */
};

struct fa_router {
    bnode_t *_root; /* build tree; NULL once compiled */
    size_t _nroutes;
    bool _compiled;

    char *_arena; /* the one allocation behind everything below; nodes[0] is the root */
    const rnode_t *_nodes;
    const char *const *_allow; /* [1 << FA_METHOD__COUNT], indexed by method set */
};

static inline uint64_t load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint64_t load32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

#define ONES    0x0101010101010101ull
#define HIGHS   0x8080808080808080ull
#define SLASHES 0x2f2f2f2f2f2f2f2full

/* The table index of a segment key. */
static inline uint32_t seg_hash(uint64_t head, size_t len)
{
    return (uint32_t)((head * 0x9e3779b97f4a7c15ull) >> 32) + (uint32_t)len;
}

/* The key head of segment bytes known to hold no '/' (compile time). */
static uint64_t seg_head(const char *s, size_t n)
{
    uint64_t v = 0;
    memcpy(&v, s, n < 8 ? n : 8);
    return v;
}

/*
 * Finds the end of the segment starting at seg (the next '/' or end) and its key head, reading
 * the path a word at a time. The has-zero-byte test on w ^ "////////"
 * may flag bytes above a real '/', never below, so the lowest flagged byte is the first '/'.
 * Never reads outside [seg, end).
 */
static inline __attribute__((always_inline)) const char *seg_scan(const char *seg, const char *end,
                                                                  uint64_t *head)
{
    if (FA_LIKELY(end - seg >= 8)) {
        uint64_t w = load64(seg), v = w ^ SLASHES;
        uint64_t t = (v - ONES) & ~v & HIGHS;
        if (t) {
            unsigned n = (unsigned)__builtin_ctzll(t) >> 3; /* 0..7 */
            *head = w & ((1ull << (n * 8)) - 1);
            return seg + n;
        }
        *head = w;
        const char *p = seg + 8;
        while (end - p >= 8) {
            v = load64(p) ^ SLASHES;
            t = (v - ONES) & ~v & HIGHS;
            if (t)
                return p + (__builtin_ctzll(t) >> 3);
            p += 8;
        }
        while (p < end && *p != '/')
            p++;
        return p;
    }
    /* Fewer than eight bytes left: gather them into one word with overlapping loads, the
     * bytes past end reading as zero (so not as '/'), and search it the same way. */
    size_t r = (size_t)(end - seg);
    uint64_t w;
    if (r >= 4)
        w = load32(seg) | (uint64_t)load32(end - 4) << (8 * (r - 4));
    else if (r > 0)
        w = (uint64_t)(unsigned char)seg[0] | (uint64_t)(unsigned char)seg[r / 2] << (8 * (r / 2)) |
            (uint64_t)(unsigned char)seg[r - 1] << (8 * (r - 1));
    else
        w = 0;
    uint64_t v = w ^ SLASHES, t = (v - ONES) & ~v & HIGHS;
    size_t n = t ? (size_t)__builtin_ctzll(t) >> 3 : r;
    *head = w & ((1ull << (n * 8)) - 1);
    return seg + n;
}

fa_router_t *fa_router_new(void)
{
    fa_router_t *r = fa_calloc(1, sizeof(*r));
    r->_root = fa_calloc(1, sizeof(bnode_t));
    return r;
}

static void bnode_free(bnode_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        bnode_free(n->kids[i]);
    bnode_free(n->param);
    bnode_free(n->wild);
    fa_free(n->kids);
    fa_free(n->seg);
    fa_free(n);
}

void fa_router_free(fa_router_t *r)
{
    if (!r)
        return;
    bnode_free(r->_root);
    fa_free(r->_arena);
    fa_free(r);
}

size_t fa_router_count(const fa_router_t *r)
{
    return r->_nroutes;
}

/* ---- adding routes ---------------------------------------------------------------------- */

typedef enum { SEG_STATIC, SEG_PARAM, SEG_WILD } seg_kind_t;

typedef struct {
    seg_kind_t kind;
    const char *ptr; /* static: the bytes; param and wildcard: the name after the sigil */
    size_t len;
    bool last;
} seg_t;

/* Splits the segment starting at *p (just after a '/') and advances *p past it and its '/'. */
static void seg_next(const char **p, const char *end, seg_t *s)
{
    const char *b = *p, *e = memchr(b, '/', (size_t)(end - b));
    if (!e)
        e = end;
    s->last = e == end;
    s->kind = SEG_STATIC;
    if (e > b && (*b == ':' || *b == '*')) {
        s->kind = *b == ':' ? SEG_PARAM : SEG_WILD;
        b++;
    }
    s->ptr = b;
    s->len = (size_t)(e - b);
    *p = s->last ? end : e + 1;
}

static bool name_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* Checks the pattern on its own, before anything touches the tree. */
static int pattern_check(const char *pat, size_t n, char *err, size_t errlen)
{
    if (n == 0 || pat[0] != '/') {
        snprintf(err, errlen, "pattern must start with '/'");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)pat[i];
        if (c <= 0x20 || c == 0x7f || c == '?' || c == '#') {
            snprintf(err, errlen, "invalid character in pattern");
            return -1;
        }
    }
    seg_t names[FA_ROUTER_MAX_PARAMS];
    unsigned nnames = 0;
    const char *p = pat + 1, *end = pat + n;
    seg_t s;
    do {
        seg_next(&p, end, &s);
        if (s.kind == SEG_STATIC) {
            if (s.len == 0 && !s.last) {
                snprintf(err, errlen, "empty segment in pattern");
                return -1;
            }
            continue;
        }
        char sigil = s.kind == SEG_PARAM ? ':' : '*';
        if (s.len == 0) {
            snprintf(err, errlen, "empty %s name", s.kind == SEG_PARAM ? "parameter" : "wildcard");
            return -1;
        }
        if (!name_ok(s.ptr, s.len)) {
            snprintf(err, errlen, "invalid parameter name '%c%.*s'", sigil, (int)s.len, s.ptr);
            return -1;
        }
        if (s.kind == SEG_WILD && !s.last) {
            snprintf(err, errlen, "wildcard '*%.*s' must be the last segment", (int)s.len, s.ptr);
            return -1;
        }
        for (unsigned i = 0; i < nnames; i++) {
            if (names[i].len == s.len && memcmp(names[i].ptr, s.ptr, s.len) == 0) {
                snprintf(err, errlen, "duplicate parameter name '%c%.*s'", sigil, (int)s.len,
                         s.ptr);
                return -1;
            }
        }
        if (nnames == FA_ROUTER_MAX_PARAMS) {
            snprintf(err, errlen, "too many parameters (at most %d)", FA_ROUTER_MAX_PARAMS);
            return -1;
        }
        names[nnames++] = s;
    } while (!s.last);
    return 0;
}

static bnode_t *kid_find(const bnode_t *n, const char *s, size_t len)
{
    for (size_t i = 0; i < n->nkids; i++)
        if (n->kids[i]->len == len && memcmp(n->kids[i]->seg, s, len) == 0)
            return n->kids[i];
    return NULL;
}

/* The child of n for segment s, or NULL when the tree does not have it yet. */
static bnode_t *child_of(const bnode_t *n, const seg_t *s)
{
    switch (s->kind) {
    case SEG_STATIC:
        return kid_find(n, s->ptr, s->len);
    case SEG_PARAM:
        return n->param;
    default:
        return n->wild;
    }
}

static bnode_t *bnode_new(const seg_t *s)
{
    bnode_t *c = fa_calloc(1, sizeof(*c));
    c->seg = fa_strndup(s->ptr, s->len);
    c->len = s->len;
    return c;
}

/* Walks the existing tree along a checked pattern and reports what would conflict: a different
 * name at a parameter or wildcard position, or the same method on the same pattern. */
static int pattern_conflicts(const bnode_t *n, fa_method_t m, const char *pat, size_t len,
                             char *err, size_t errlen)
{
    const char *p = pat + 1, *end = pat + len;
    seg_t s;
    do {
        seg_next(&p, end, &s);
        const bnode_t *c = child_of(n, &s);
        if (!c)
            return 0;
        if (s.kind != SEG_STATIC && (c->len != s.len || memcmp(c->seg, s.ptr, s.len) != 0)) {
            char sigil = s.kind == SEG_PARAM ? ':' : '*';
            snprintf(err, errlen, "conflicting %s names '%c%.*s' and '%c%s' at the same position",
                     s.kind == SEG_PARAM ? "parameter" : "wildcard", sigil, (int)s.len, s.ptr,
                     sigil, c->seg);
            return -1;
        }
        n = c;
    } while (!s.last);
    if (n->mask & (1u << m)) {
        snprintf(err, errlen, "duplicate route %s %.*s", method_names[m], (int)len, pat);
        return -1;
    }
    return 0;
}

/*
 * Runs at config load. Everything is checked before the tree changes, so a failed add leaves
 * the router as it was and the caller can go on collecting errors from the other routes.
 */
int fa_router_add(fa_router_t *r, fa_method_t m, const char *pattern, void *data, char *err,
                  size_t errlen)
{
    if (r->_compiled) {
        snprintf(err, errlen, "router is already compiled");
        return -1;
    }
    if ((unsigned)m >= FA_METHOD__COUNT) {
        snprintf(err, errlen, "invalid method");
        return -1;
    }
    size_t len = strlen(pattern);
    if (pattern_check(pattern, len, err, errlen) < 0 ||
        pattern_conflicts(r->_root, m, pattern, len, err, errlen) < 0)
        return -1;

    bnode_t *n = r->_root;
    const char *p = pattern + 1, *end = pattern + len;
    seg_t s;
    do {
        seg_next(&p, end, &s);
        bnode_t *c = child_of(n, &s);
        if (!c) {
            c = bnode_new(&s);
            if (s.kind == SEG_PARAM) {
                n->param = c;
            } else if (s.kind == SEG_WILD) {
                n->wild = c;
            } else {
                if (n->nkids == n->capkids) {
                    n->capkids = n->capkids ? n->capkids * 2 : 4;
                    n->kids = fa_realloc(n->kids, n->capkids * sizeof(*n->kids));
                }
                n->kids[n->nkids++] = c;
            }
        }
        n = c;
    } while (!s.last);
    n->mask |= 1u << m;
    n->data[m] = data;
    r->_nroutes++;
    return 0;
}

/* ---- compiling -------------------------------------------------------------------------- */

typedef struct {
    size_t nodes, slots, strs, data;
} sizes_t;

static size_t table_size(size_t nkids)
{
    size_t cap = 2;
    while (cap < nkids * 2)
        cap *= 2;
    return cap;
}

/* Numbers the nodes in pre-order (the root gets 0) and adds up what each array needs. */
static void size_tree(bnode_t *n, sizes_t *z)
{
    n->index = (uint32_t)z->nodes++;
    z->strs += n->len + 1;
    if (n->nkids)
        z->slots += table_size(n->nkids);
    if (n->mask)
        z->data += FA_METHOD__COUNT;
    for (size_t i = 0; i < n->nkids; i++)
        size_tree(n->kids[i], z);
    if (n->param)
        size_tree(n->param, z);
    if (n->wild)
        size_tree(n->wild, z);
}

typedef struct {
    rnode_t *nodes;
    rslot_t *slots;
    void **data;
    char *strs;
    size_t nslots, nstrs, ndata;
} fill_t;

/* Fills the frozen node of n and its subtree. Every node's bytes are copied (for a static node
 * they are what its parent's slot compares against; for the others, the name handed out). */
static void fill_tree(const bnode_t *n, fill_t *f)
{
    rnode_t *rn = &f->nodes[n->index];
    char *str = f->strs + f->nstrs;
    if (n->len)
        memcpy(str, n->seg, n->len);
    str[n->len] = '\0';
    f->nstrs += n->len + 1;
    rn->name = (fa_str_t){str, n->len};
    rn->param = n->param ? &f->nodes[n->param->index] : NULL;
    rn->wild = n->wild ? &f->nodes[n->wild->index] : NULL;
    rn->mask = n->mask;
    if (n->mask) {
        void **row = f->data + f->ndata;
        f->ndata += FA_METHOD__COUNT;
        for (int m = 0; m < FA_METHOD__COUNT; m++)
            row[m] = n->data[m];
        if ((n->mask & (1u << FA_METHOD_GET)) && !(n->mask & (1u << FA_METHOD_HEAD))) {
            rn->mask |= 1u << FA_METHOD_HEAD;
            row[FA_METHOD_HEAD] = n->data[FA_METHOD_GET];
        }
        rn->data = row;
    }
    for (size_t i = 0; i < n->nkids; i++)
        fill_tree(n->kids[i], f);
    if (n->param)
        fill_tree(n->param, f);
    if (n->wild)
        fill_tree(n->wild, f);

    rn->slots = f->slots; /* the shared empty table, slot 0 */
    rn->slot_mask = 0;
    if (n->nkids) {
        size_t cap = table_size(n->nkids);
        rslot_t *t = f->slots + f->nslots;
        f->nslots += cap;
        for (size_t i = 0; i < n->nkids; i++) {
            const bnode_t *k = n->kids[i];
            uint64_t head = seg_head(k->seg, k->len);
            size_t j = seg_hash(head, k->len) & (cap - 1);
            while (t[j].node)
                j = (j + 1) & (cap - 1);
            t[j].head = head;
            t[j].len = k->len;
            t[j].str = f->nodes[k->index].name.ptr; /* filled by the recursion above */
            t[j].node = &f->nodes[k->index];
        }
        rn->slots = t;
        rn->slot_mask = (uint32_t)(cap - 1);
    }
}

/* Bytes of "GET, HEAD, POST" for a method set, NUL included. */
static size_t allow_len(unsigned set)
{
    size_t n = 1;
    for (int m = 0; m < FA_METHOD__COUNT; m++)
        if (set & (1u << m))
            n += strlen(method_names[m]) + (n > 1 ? 2 : 0);
    return n;
}

/*
 * Runs once at config load, after the last add. Sizes everything first so the frozen router is
 * a single allocation, then fills it and frees the build tree.
 */
int fa_router_compile(fa_router_t *r)
{
    if (r->_compiled)
        return 0;
    sizes_t z = {0};
    z.slots = 1; /* slot 0: the shared empty table of nodes without static children */
    size_tree(r->_root, &z);

    size_t nsets = (size_t)1 << FA_METHOD__COUNT, allow_bytes = 0;
    for (size_t set = 0; set < nsets; set++)
        allow_bytes += allow_len((unsigned)set);

    size_t off_nodes = 0;
    size_t off_slots = FA_ALIGN_UP(off_nodes + z.nodes * sizeof(rnode_t), 16);
    size_t off_data = FA_ALIGN_UP(off_slots + z.slots * sizeof(rslot_t), 16);
    size_t off_allowp = FA_ALIGN_UP(off_data + z.data * sizeof(void *), 16);
    size_t off_strs = FA_ALIGN_UP(off_allowp + nsets * sizeof(char *), 16);
    size_t off_allow = off_strs + z.strs;
    size_t total = off_allow + allow_bytes;

    char *a = fa_calloc(1, total);
    fill_t f = {
        .nodes = (rnode_t *)(a + off_nodes),
        .slots = (rslot_t *)(a + off_slots),
        .data = (void **)(a + off_data),
        .strs = a + off_strs,
        .nslots = 1,
    };
    fill_tree(r->_root, &f);
    assert(f.nslots == z.slots && f.nstrs == z.strs && f.ndata == z.data);

    const char **allow = (const char **)(a + off_allowp);
    char *w = a + off_allow;
    for (size_t set = 0; set < nsets; set++) {
        allow[set] = w;
        for (int m = 0; m < FA_METHOD__COUNT; m++) {
            if (!(set & (1u << m)))
                continue;
            if (w != allow[set]) {
                memcpy(w, ", ", 2);
                w += 2;
            }
            size_t n = strlen(method_names[m]);
            memcpy(w, method_names[m], n);
            w += n;
        }
        *w++ = '\0';
    }
    assert(w == a + total);

    r->_arena = a;
    r->_nodes = f.nodes;
    r->_allow = allow;
    bnode_free(r->_root);
    r->_root = NULL;
    r->_compiled = true;
    return 0;
}

/* ---- lookup ----------------------------------------------------------------------------- */

/* The static child of n for the segment [seg, seg + len) with key head, or NULL. */
static inline const rnode_t *static_child(const rnode_t *n, const char *seg, size_t len,
                                          uint64_t head)
{
    uint32_t j = seg_hash(head, len) & n->slot_mask;
    for (;;) {
        const rslot_t *sl = &n->slots[j];
        if (!sl->node)
            return NULL;
        if (sl->head == head && sl->len == len &&
            (len <= 8 || memcmp(sl->str + 8, seg + 8, len - 8) == 0))
            return sl->node;
        j = (j + 1) & n->slot_mask;
    }
}

/* What stays the same during one lookup, passed as one pointer. */
typedef struct {
    const char *end;
    unsigned m;
    fa_route_match_t *out;
} walk_t;

static bool walk_alts(const walk_t *w, const rnode_t *n, const rnode_t *c, const char *seg,
                      const char *e);

/*
 * The depth-first search. q points at the '/' that starts the rest of the path, or at end when
 * the path is used up. Returns true with out->data set when a route for the method is found;
 * otherwise leaves out->nparams as it found it. Nodes with only static children are followed in
 * this loop; a node that also has a parameter or wildcard child hands over to walk_alts with a
 * tail call, so an all-static path never recurses.
 */
static bool walk(const walk_t *w, const rnode_t *n, const char *q)
{
    for (;;) {
        if (q == w->end) {
            if (n->mask & (1u << w->m)) {
                w->out->data = n->data[w->m];
                return true;
            }
            return false;
        }
        uint64_t head;
        const char *seg = q + 1, *e = seg_scan(seg, w->end, &head);
        const rnode_t *c = static_child(n, seg, (size_t)(e - seg), head);
        if (FA_UNLIKELY(n->param || n->wild))
            return walk_alts(w, n, c, seg, e);
        if (!c)
            return false;
        n = c;
        q = e;
    }
}

/* The choices at a node with a parameter or wildcard child, in priority order: the static
 * child c (may be NULL), the parameter (never for an empty segment), the wildcard. */
static __attribute__((noinline)) bool walk_alts(const walk_t *w, const rnode_t *n, const rnode_t *c,
                                                const char *seg, const char *e)
{
    fa_route_match_t *out = w->out;
    if (c && walk(w, c, e))
        return true;
    if (n->param && e > seg) {
        unsigned i = out->nparams++;
        out->params[i].name = n->param->name;
        out->params[i].value = (fa_str_t){seg, (size_t)(e - seg)};
        if (e == w->end) { /* the usual last segment: settle it here rather than recurse */
            if (n->param->mask & (1u << w->m)) {
                out->data = n->param->data[w->m];
                return true;
            }
        } else if (walk(w, n->param, e)) {
            return true;
        }
        out->nparams = i;
    }
    if (n->wild && (n->wild->mask & (1u << w->m))) {
        unsigned i = out->nparams++;
        out->params[i].name = n->wild->name;
        out->params[i].value = (fa_str_t){seg, (size_t)(w->end - seg)};
        out->data = n->wild->data[w->m];
        return true;
    }
    return false;
}

/* The same search, for the 405 answer: the methods of every route that matches the path. */
static unsigned walk_methods(const rnode_t *n, const char *q, const char *end)
{
    if (q == end)
        return n->mask;
    uint64_t head;
    const char *seg = q + 1, *e = seg_scan(seg, end, &head);
    size_t len = (size_t)(e - seg);

    unsigned set = 0;
    const rnode_t *c = static_child(n, seg, len, head);
    if (c)
        set |= walk_methods(c, e, end);
    if (n->param && len > 0)
        set |= walk_methods(n->param, e, end);
    if (n->wild)
        set |= n->wild->mask;
    return set;
}

fa_route_result_t fa_router_match(const fa_router_t *r, fa_method_t m, const char *path, size_t len,
                                  fa_route_match_t *out)
{
    assert(r->_compiled && "fa_router_compile must run before fa_router_match");
    out->data = NULL;
    out->nparams = 0;
    out->allow = NULL;
    if (FA_UNLIKELY(!r->_compiled || (unsigned)m >= FA_METHOD__COUNT || len == 0 || path[0] != '/'))
        return FA_ROUTE_NOT_FOUND;
    const char *end = path + len;
    walk_t w = {end, (unsigned)m, out};
    if (FA_LIKELY(walk(&w, r->_nodes, path)))
        return FA_ROUTE_FOUND;
    out->nparams = 0;
    unsigned set = walk_methods(r->_nodes, path, end);
    if (set == 0)
        return FA_ROUTE_NOT_FOUND;
    out->allow = r->_allow[set];
    return FA_ROUTE_METHOD_NOT_ALLOWED;
}
