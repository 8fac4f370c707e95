/*
 * config.c — the YAML tree checked against schema tables into an immutable fa_config_t; see
 * config.h.
 *
 * Loading runs in four steps: read the file into a node tree (yaml.c) in the config's pool, apply
 * the "-o key=value" overrides to that tree, fill the defaults, then walk the tree once in document
 * order, checking each key against the section tables below and appending one located line per
 * problem. Nothing stops at the first error; the config is returned only when there were none.
 *
 * Everything, tree included, lives in config->pool, so fa_config_free is one pool destroy.
 */
#include "config.h"
#include "alloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define GIB ((size_t)1 << 30)
#define DURATION_TEXT_MAX 352 /* fmt_duration's longest text: 1e-308 s with 17 digits */
#define CONN_MEMORY_SLACK (16 * KIB) /* connection_memory beyond header_bytes, at least */

/* ---- error lines ---------------------------------------------------------------------------- */

static void errbuf_append(fa_errbuf_t *errs, const char *s, size_t n)
{
    if (errs->len + n + 1 > errs->cap) {
        errs->cap = FA_MAX(errs->cap * 2, errs->len + n + 256);
        errs->text = fa_realloc(errs->text, errs->cap);
    }
    memcpy(errs->text + errs->len, s, n);
    errs->len += n;
    errs->text[errs->len] = '\0';
}

void fa_errbuf_add(fa_errbuf_t *errs, const fa_yaml_node_t *at, const char *path, const char *fmt,
                   ...)
{
    char line[1024];
    int n = 0;
    if (at)
        n = snprintf(line, sizeof(line), "%s:%u:%u: ", at->file, at->line, at->col);
    n = FA_MIN(FA_MAX(n, 0), (int)sizeof(line) - 1); /* a long file name truncates */
    if (path && path[0])
        n += snprintf(line + n, sizeof(line) - (size_t)n, "%s: ", path);
    n = FA_MIN(FA_MAX(n, 0), (int)sizeof(line) - 1);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = FA_MIN((size_t)n + (size_t)(m > 0 ? m : 0), sizeof(line) - 1);
    /* A key or path from the file may hold control characters (a quoted key with "\n"): escape
     * them, so that one error stays one line. */
    char out[sizeof(line) + 8];
    size_t k = 0;
    for (size_t i = 0; i < len && k + 5 < sizeof(out); i++) {
        unsigned char c = (unsigned char)line[i];
        if (c == '\n')
            out[k++] = '\\', out[k++] = 'n';
        else if (c < 0x20 || c == 0x7f)
            k += (size_t)snprintf(out + k, sizeof(out) - k, "\\x%02x", c);
        else
            out[k++] = (char)c;
    }
    out[k++] = '\n';
    errbuf_append(errs, out, k);
    errs->count++;
}

void fa_errbuf_free(fa_errbuf_t *errs)
{
    fa_free(errs->text);
    memset(errs, 0, sizeof(*errs));
}

/* Adds the lines of a yaml.c error text (already "file:line:col: ...") one by one. */
static void errbuf_add_lines(fa_errbuf_t *errs, const char *text)
{
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);
        fa_errbuf_add(errs, NULL, NULL, "%.*s", (int)n, text);
        text += n + (nl ? 1 : 0);
    }
}

/* "got ..." part of a message: a scalar's text in quotes, shortened, with control characters
 * escaped so that one error stays one line; else the node's kind. */
static const char *got(const fa_yaml_node_t *node, char *buf, size_t buflen)
{
    if (node->kind != FA_YAML_SCALAR)
        return fa_yaml_kind_name(node->kind);
    size_t n = 0, max = buflen - 8; /* room for the quotes, "..." and the NUL */
    buf[n++] = '"';
    for (size_t i = 0; i < node->scalar.len && n < max; i++) {
        unsigned char c = (unsigned char)node->scalar.str[i];
        if (c == '\n')
            n += (size_t)snprintf(buf + n, buflen - n, "\\n");
        else if (c < 0x20 || c == 0x7f)
            n += (size_t)snprintf(buf + n, buflen - n, "\\x%02x", c);
        else
            buf[n++] = (char)c;
        if (n >= max && i + 1 < node->scalar.len) {
            memcpy(buf + n, "...", 3);
            n += 3;
        }
    }
    buf[n++] = '"';
    buf[n] = '\0';
    return buf;
}

/* Optimal string alignment distance, for "did you mean" hints on short key names. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 31 || lb > 31)
        return 99;
    size_t d[32][32];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = FA_MIN(d[i - 1][j] + 1, d[i][j - 1] + 1);
            v = FA_MIN(v, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                v = FA_MIN(v, d[i - 2][j - 2] + 1);
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

/* The closest of names[] to key when it is close enough to be a likely typo, else NULL. */
static const char *suggest(const char *key, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(key, names[i]);
        if (d < best_d && d * 2 < strlen(names[i]) + 1) {
            best = names[i];
            best_d = d;
        }
    }
    return best;
}

/* Reports an unknown key at its key node, with a "did you mean" hint when there is one. */
static void unknown_key(fa_errbuf_t *errs, const fa_yaml_node_t *at, const char *path,
                        const char *key, const char *const *names, size_t n)
{
    const char *best = suggest(key, names, n);
    if (best)
        fa_errbuf_add(errs, at, path, "unknown key (did you mean \"%s\"?)", best);
    else
        fa_errbuf_add(errs, at, path, "unknown key");
}

/* ---- scalar parsers ---------------------------------------------------------------------------
 */

static void fmt_size(size_t n, char *buf, size_t buflen)
{
    if (n >= GIB && n % GIB == 0)
        snprintf(buf, buflen, "%zug", n / GIB);
    else if (n >= MIB && n % MIB == 0)
        snprintf(buf, buflen, "%zum", n / MIB);
    else if (n >= KIB && n % KIB == 0)
        snprintf(buf, buflen, "%zuk", n / KIB);
    else
        snprintf(buf, buflen, "%zu", n);
}

static bool scan_duration(const char *s, double *out);

/*
 * The shortest of "2h", "5m", "30s", "1.5s", "500ms" that reads back to exactly s seconds; else
 * seconds in fixed notation with 17 significant digits, which always reads back exactly (a
 * duration may be as small as the smallest positive double: buflen >= DURATION_TEXT_MAX).
 */
static void fmt_duration(double s, char *buf, size_t buflen)
{
    double back;
    if (s >= 3600 && fmod(s, 3600) == 0) {
        snprintf(buf, buflen, "%.0fh", s / 3600);
        return;
    }
    if (s >= 60 && fmod(s, 60) == 0) {
        snprintf(buf, buflen, "%.0fm", s / 60);
        return;
    }
    bool ms = s > 0 && s < 1;
    snprintf(buf, buflen, ms ? "%.15gms" : "%.15gs", ms ? s * 1000 : s);
    if (!strchr(buf, 'e') && scan_duration(buf, &back) && back == s)
        return;
    int decimals = s > 0 ? 16 - (int)floor(log10(s)) : 0;
    snprintf(buf, buflen, "%.*fs", FA_MAX(decimals, 0), s);
}

/* Digits only, optional leading minus; rejects "+1", "0x10", " 1", "1.0". */
static bool scan_int(const char *s, long long *out)
{
    const char *p = s + (*s == '-');
    if (*p < '0' || *p > '9')
        return false;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return false;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return false;
    *out = v;
    return true;
}

/* "65536", "64k", "1M", "2g": binary multiples, case-insensitive. */
static bool scan_size(const char *s, size_t *out)
{
    size_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++)
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (size_t)(*p - '0'), &v))
            return false;
    size_t mult = 1;
    switch (*p) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mult = KIB;
        p++;
        break;
    case 'm':
    case 'M':
        mult = MIB;
        p++;
        break;
    case 'g':
    case 'G':
        mult = GIB;
        p++;
        break;
    default:
        return false;
    }
    if (*p || __builtin_mul_overflow(v, mult, &v))
        return false;
    *out = v;
    return true;
}

/* "30", "30s", "500ms", "1.5s", "2m", "1h": a decimal number and an optional unit (seconds when
 * bare). Parsed by hand so that strtod's "inf", "1e3" and hex never slip through. */
static bool scan_duration(const char *s, double *out)
{
    const char *p = s;
    size_t digits = 0, dots = 0;
    for (; (*p >= '0' && *p <= '9') || *p == '.'; p++) {
        if (*p == '.')
            dots++;
        else
            digits++;
    }
    if (digits == 0 || dots > 1 || *s == '.' || p[-1] == '.')
        return false;
    double v = strtod(s, NULL);
    double mult;
    if (*p == '\0' || strcasecmp(p, "s") == 0)
        mult = 1;
    else if (strcasecmp(p, "ms") == 0)
        mult = 0.001;
    else if (strcasecmp(p, "m") == 0)
        mult = 60;
    else if (strcasecmp(p, "h") == 0)
        mult = 3600;
    else
        return false;
    *out = v * mult;
    return isfinite(*out);
}

static bool scan_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < FA_ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, true;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, true;
    }
    return false;
}

static bool parse_int_range(const fa_yaml_node_t *node, const char *path, long long min,
                            long long max, long long *out, fa_errbuf_t *errs)
{
    long long v;
    if (node->kind == FA_YAML_SCALAR && scan_int(node->scalar.str, &v) && v >= min && v <= max) {
        *out = v;
        return true;
    }
    char g[80];
    fa_errbuf_add(errs, node, path, "expected an integer %lld..%lld, got %s", min, max,
                  got(node, g, sizeof(g)));
    return false;
}

static bool parse_size_range(const fa_yaml_node_t *node, const char *path, size_t min, size_t max,
                             size_t *out, fa_errbuf_t *errs)
{
    size_t v;
    if (node->kind == FA_YAML_SCALAR && scan_size(node->scalar.str, &v) && v >= min && v <= max) {
        *out = v;
        return true;
    }
    char g[80], lo[32], hi[32];
    fmt_size(min, lo, sizeof(lo));
    fmt_size(max, hi, sizeof(hi));
    if (max == SIZE_MAX)
        fa_errbuf_add(errs, node, path, "expected a size (bytes, or with suffix k, m, g), got %s",
                      got(node, g, sizeof(g)));
    else
        fa_errbuf_add(errs, node, path,
                      "expected a size %s..%s (bytes, or with suffix k, m, g), got %s", lo, hi,
                      got(node, g, sizeof(g)));
    return false;
}

/* min is exclusive when positive_only, so "0s" can be refused for timeouts. */
static bool parse_duration_range(const fa_yaml_node_t *node, const char *path, bool positive_only,
                                 double max, double *out, fa_errbuf_t *errs)
{
    double v;
    if (node->kind == FA_YAML_SCALAR && scan_duration(node->scalar.str, &v) &&
        (positive_only ? v > 0 : v >= 0) && v <= max) {
        *out = v;
        return true;
    }
    char g[80], hi[32];
    fmt_duration(max, hi, sizeof(hi));
    fa_errbuf_add(errs, node, path,
                  "expected a duration %s %s (seconds, or with unit ms, s, m, h), got %s",
                  positive_only ? "above 0 and at most" : "0 to", hi, got(node, g, sizeof(g)));
    return false;
}

bool fa_config_parse_size(const fa_yaml_node_t *node, const char *path, size_t *out,
                          fa_errbuf_t *errs)
{
    return parse_size_range(node, path, 0, SIZE_MAX, out, errs);
}

bool fa_config_parse_duration(const fa_yaml_node_t *node, const char *path, double *out,
                              fa_errbuf_t *errs)
{
    return parse_duration_range(node, path, false, 365.0 * 24 * 3600, out, errs);
}

bool fa_config_parse_bool(const fa_yaml_node_t *node, const char *path, bool *out,
                          fa_errbuf_t *errs)
{
    if (node->kind == FA_YAML_SCALAR && scan_bool(node->scalar.str, out))
        return true;
    char g[80];
    fa_errbuf_add(errs, node, path, "expected a boolean (true/false, yes/no, on/off), got %s",
                  got(node, g, sizeof(g)));
    return false;
}

bool fa_config_parse_int(const fa_yaml_node_t *node, const char *path, long long min, long long max,
                         long long *out, fa_errbuf_t *errs)
{
    return parse_int_range(node, path, min, max, out, errs);
}

/* ---- listen addresses ------------------------------------------------------------------------ */

/* "0.0.0.0:8080", "*:8080", "[::1]:8080". Numeric only: a name would need DNS at start-up, and a
 * host with several addresses would make "which one" a guess. */
static bool parse_listen_text(const char *s, fa_listen_t *out)
{
    char host[64];
    const char *colon;
    memset(out, 0, sizeof(*out));
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
            return false;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host) || colon == s)
            return false;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    const char *p = colon + 1;
    unsigned port = 0;
    if (*p == '\0' || strlen(p) > 5)
        return false;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        port = port * 10 + (unsigned)(*p - '0');
    }
    if (port > 65535)
        return false;

    char text[INET6_ADDRSTRLEN];
    if (s[0] == '[') {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return false;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        out->addrlen = sizeof(*sin6);
        inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
        snprintf(out->text, sizeof(out->text), "[%s]:%u", text, port);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;
        if (strcmp(host, "*") == 0)
            sin->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return false;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        out->addrlen = sizeof(*sin);
        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
        snprintf(out->text, sizeof(out->text), "%s:%u", text, port);
    }
    return true;
}

/* ---- schema tables ----------------------------------------------------------------------------
 */

typedef enum {
    K_LISTEN,   /* fa_listen_t list in server.listen/nlisten */
    K_WORKERS,  /* unsigned, "auto" = 0 */
    K_BOOL,     /* bool */
    K_INT,      /* int, min..max */
    K_UINT,     /* unsigned, min..max */
    K_COUNT,    /* size_t, plain integer min..max */
    K_SIZE,     /* size_t with k/m/g, min..max bytes */
    K_DURATION, /* double seconds, above 0 and at most max */
    K_STRING,   /* const char *, any scalar */
    K_NAME,     /* const char *, printable ASCII, 1..max bytes (a header value) */
    K_LEVEL,    /* fa_log_level_t */
    K_FORMAT,   /* const char *, one of the access log formats */
} key_kind_t;

typedef struct {
    const char *name;
    key_kind_t kind;
    size_t offset; /* into fa_config_t */
    long long min, max;
} key_spec_t;

typedef struct {
    const char *name;
    const key_spec_t *keys;
    size_t nkeys;
} section_spec_t;

#define OFF(field) offsetof(fa_config_t, field)

static const key_spec_t server_keys[] = {
    {"listen", K_LISTEN, 0, 0, 0},
    {"workers", K_WORKERS, OFF(server.workers), 1, 1024},
    {"pin_workers", K_BOOL, OFF(server.pin_workers), 0, 0},
    {"backlog", K_INT, OFF(server.backlog), 1, 65535},
    {"max_connections", K_UINT, OFF(server.max_connections), 1, 1000000},
    {"name", K_NAME, OFF(server.name), 1, 256},
};

static const key_spec_t limits_keys[] = {
    {"header_bytes", K_SIZE, OFF(limits.header_bytes), 256, (long long)MIB},
    {"body_bytes", K_SIZE, OFF(limits.body_bytes), 0, (long long)GIB},
    {"uri_bytes", K_SIZE, OFF(limits.uri_bytes), 16, (long long)MIB}, /* and <= header_bytes */
    {"max_headers", K_UINT, OFF(limits.max_headers), 1, 10000},
    {"max_pipelined", K_UINT, OFF(limits.max_pipelined), 1, 1024},
    {"connection_memory", K_SIZE, OFF(limits.connection_memory), 16 * KIB, (long long)GIB},
    {"worker_memory", K_SIZE, OFF(limits.worker_memory), (long long)MIB, 64 * (long long)GIB},
};

static const key_spec_t timeouts_keys[] = {
    {"header", K_DURATION, OFF(timeouts.header), 0, 3600},
    {"body", K_DURATION, OFF(timeouts.body), 0, 3600},
    {"keepalive", K_DURATION, OFF(timeouts.keepalive), 0, 3600},
    {"write", K_DURATION, OFF(timeouts.write), 0, 3600},
    {"shutdown", K_DURATION, OFF(timeouts.shutdown), 0, 3600},
};

static const key_spec_t log_keys[] = {
    {"level", K_LEVEL, OFF(log.level), 0, 0},
    {"access", K_BOOL, OFF(log.access), 0, 0},
    {"access_path", K_STRING, OFF(log.access_path), 0, 0},
    {"access_format", K_FORMAT, OFF(log.access_format), 0, 0},
};

static const key_spec_t aggregator_keys[] = {
    {"capacity", K_COUNT, OFF(aggregator.capacity), 1, 100000000},
    {"snapshot", K_STRING, OFF(aggregator.snapshot), 0, 0},
    {"snapshot_interval", K_DURATION, OFF(aggregator.snapshot_interval), 0, 24 * 3600},
};

#define SECTION(n)                                                                                 \
    {                                                                                              \
#n, n##_keys, FA_ARRAY_SIZE(n##_keys)                                                      \
    }
static const section_spec_t sections[] = {
    SECTION(server), SECTION(limits), SECTION(timeouts), SECTION(log), SECTION(aggregator),
};

/* Top-level names, for "did you mean". */
static const char *const top_names[] = {"server",     "limits", "timeouts", "log",
                                        "aggregator", "routes", "upstreams"};

static const char *const access_formats[] = {"combined", "common", "json"};
static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
static const char *const route_keys[] = {"match", "pipeline", "on_error"};

static const section_spec_t *find_section(const char *name)
{
    for (size_t i = 0; i < FA_ARRAY_SIZE(sections); i++)
        if (strcmp(sections[i].name, name) == 0)
            return &sections[i];
    return NULL;
}

static const key_spec_t *find_key(const section_spec_t *sec, const char *name)
{
    for (size_t i = 0; i < sec->nkeys; i++)
        if (strcmp(sec->keys[i].name, name) == 0)
            return &sec->keys[i];
    return NULL;
}

static void section_key_names(const section_spec_t *sec, const char **names)
{
    for (size_t i = 0; i < sec->nkeys; i++)
        names[i] = sec->keys[i].name;
}

/* ---- checking ---------------------------------------------------------------------------------
 */

typedef struct {
    fa_config_t *config;
    fa_errbuf_t *errs;
    /* for the cross checks, when given */
    const fa_yaml_node_t *uri_node, *header_node, *conn_mem_node, *worker_mem_node;
} check_t;

static void set_defaults(fa_config_t *c)
{
    fa_listen_t *l = fa_pool_calloc(&c->pool, sizeof(*l));
    bool ok = parse_listen_text("0.0.0.0:8080", l);
    assert(ok);
    (void)ok;
    c->server.listen = l;
    c->server.nlisten = 1;
    c->server.workers = 0;
    c->server.pin_workers = true;
    c->server.backlog = 4096;
    c->server.max_connections = 10000;
    c->server.name = "fasterapid";
    c->limits.header_bytes = 8 * KIB;
    c->limits.body_bytes = MIB;
    c->limits.uri_bytes = 4 * KIB;
    c->limits.max_headers = 100;
    c->limits.max_pipelined = 64;
    c->limits.connection_memory = 4 * MIB;
    c->limits.worker_memory = GIB;
    c->timeouts.header = 10;
    c->timeouts.body = 30;
    c->timeouts.keepalive = 75;
    c->timeouts.write = 30;
    c->timeouts.shutdown = 10;
    c->log.level = FA_LOG_INFO;
    c->log.access = false;
    c->log.access_path = "";
    c->log.access_format = "combined";
    c->aggregator.capacity = 2000000;
    c->aggregator.snapshot = "";
    c->aggregator.snapshot_interval = 10;
}

static void check_listen(check_t *ck, const fa_yaml_node_t *node, const char *path)
{
    fa_config_t *c = ck->config;
    const fa_yaml_node_t *const *items = (const fa_yaml_node_t *const *)&node;
    size_t n = 1;
    char g[80];
    if (node->kind == FA_YAML_SEQ) {
        items = (const fa_yaml_node_t *const *)node->seq.items;
        n = node->seq.len;
        if (n == 0) {
            fa_errbuf_add(ck->errs, node, path, "expected at least one address");
            return;
        }
    } else if (node->kind != FA_YAML_SCALAR) {
        fa_errbuf_add(ck->errs, node, path, "expected \"HOST:PORT\" or a sequence of them, got %s",
                      got(node, g, sizeof(g)));
        return;
    }
    fa_listen_t *list = fa_pool_calloc(&c->pool, n * sizeof(*list));
    size_t nlist = 0;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        char ipath[160];
        if (node->kind == FA_YAML_SEQ)
            snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        else
            snprintf(ipath, sizeof(ipath), "%s", path);
        const fa_yaml_node_t *it = items[i];
        if (it->kind != FA_YAML_SCALAR || !parse_listen_text(it->scalar.str, &list[nlist])) {
            fa_errbuf_add(ck->errs, it, ipath,
                          "expected \"HOST:PORT\" (IPv4 address, [IPv6 address] or *, port "
                          "0..65535), got %s",
                          got(it, g, sizeof(g)));
            ok = false;
            continue;
        }
        for (size_t j = 0; j < nlist; j++) {
            /* Port 0 asks for a fresh ephemeral port each time, so it never collides.
             * sin_port and sin6_port sit at the same offset, so this reads either family. */
            if (strcmp(list[j].text, list[nlist].text) == 0 &&
                ((struct sockaddr_in *)&list[j].addr)->sin_port != 0) {
                fa_errbuf_add(ck->errs, it, ipath, "duplicate address \"%s\"", list[j].text);
                ok = false;
            }
        }
        nlist++;
    }
    if (ok) {
        c->server.listen = list;
        c->server.nlisten = nlist;
    }
}

/* One key of a section: parse the value per its kind and store it at the table's offset. */
static void check_key(check_t *ck, const key_spec_t *k, const fa_yaml_node_t *v, const char *path)
{
    char *base = (char *)ck->config;
    void *field = base + k->offset;
    char g[80];
    long long n;
    switch (k->kind) {
    case K_LISTEN:
        check_listen(ck, v, path);
        break;
    case K_WORKERS:
        if (fa_yaml_scalar_is(v, "auto")) {
            *(unsigned *)field = 0;
        } else if (v->kind == FA_YAML_SCALAR && scan_int(v->scalar.str, &n) && n >= k->min &&
                   n <= k->max) {
            *(unsigned *)field = (unsigned)n;
        } else {
            fa_errbuf_add(ck->errs, v, path, "expected \"auto\" or an integer %lld..%lld, got %s",
                          k->min, k->max, got(v, g, sizeof(g)));
        }
        break;
    case K_BOOL:
        fa_config_parse_bool(v, path, (bool *)field, ck->errs);
        break;
    case K_INT:
        if (parse_int_range(v, path, k->min, k->max, &n, ck->errs))
            *(int *)field = (int)n;
        break;
    case K_UINT:
        if (parse_int_range(v, path, k->min, k->max, &n, ck->errs))
            *(unsigned *)field = (unsigned)n;
        break;
    case K_COUNT:
        if (parse_int_range(v, path, k->min, k->max, &n, ck->errs))
            *(size_t *)field = (size_t)n;
        break;
    case K_SIZE:
        parse_size_range(v, path, (size_t)k->min, (size_t)k->max, (size_t *)field, ck->errs);
        break;
    case K_DURATION:
        parse_duration_range(v, path, true, (double)k->max, (double *)field, ck->errs);
        break;
    case K_STRING:
        if (v->kind != FA_YAML_SCALAR)
            fa_errbuf_add(ck->errs, v, path, "expected a string, got %s", got(v, g, sizeof(g)));
        else
            *(const char **)field = fa_yaml_is_null(v) ? "" : v->scalar.str;
        break;
    case K_NAME: {
        bool ok = v->kind == FA_YAML_SCALAR && v->scalar.len >= (size_t)k->min &&
                  v->scalar.len <= (size_t)k->max;
        for (size_t i = 0; ok && i < v->scalar.len; i++)
            ok = v->scalar.str[i] >= 0x20 && v->scalar.str[i] < 0x7f;
        if (ok)
            *(const char **)field = v->scalar.str;
        else
            fa_errbuf_add(ck->errs, v, path,
                          "expected %lld..%lld printable ASCII characters, got %s", k->min, k->max,
                          got(v, g, sizeof(g)));
        break;
    }
    case K_LEVEL: {
        int level =
            v->kind == FA_YAML_SCALAR ? fa_log_level_parse(v->scalar.str, v->scalar.len) : -1;
        if (level >= 0)
            *(fa_log_level_t *)field = (fa_log_level_t)level;
        else
            fa_errbuf_add(ck->errs, v, path, "expected one of error, warn, info, debug, got %s",
                          got(v, g, sizeof(g)));
        break;
    }
    case K_FORMAT: {
        const char *found = NULL;
        for (size_t i = 0; i < FA_ARRAY_SIZE(access_formats); i++)
            if (fa_yaml_scalar_is(v, access_formats[i]))
                found = access_formats[i];
        if (found)
            *(const char **)field = found;
        else
            fa_errbuf_add(ck->errs, v, path, "expected one of combined, common, json, got %s",
                          got(v, g, sizeof(g)));
        break;
    }
    }
    if (k->offset == OFF(limits.uri_bytes))
        ck->uri_node = v;
    else if (k->offset == OFF(limits.header_bytes))
        ck->header_node = v;
    else if (k->offset == OFF(limits.connection_memory))
        ck->conn_mem_node = v;
    else if (k->offset == OFF(limits.worker_memory))
        ck->worker_mem_node = v;
}

static void check_section(check_t *ck, const section_spec_t *sec, const fa_yaml_node_t *node)
{
    char g[80];
    if (fa_yaml_is_null(node))
        return; /* "server:" with nothing under it: all defaults */
    if (node->kind != FA_YAML_MAP) {
        fa_errbuf_add(ck->errs, node, sec->name, "expected a mapping, got %s",
                      got(node, g, sizeof(g)));
        return;
    }
    for (size_t i = 0; i < node->map.len; i++) {
        const fa_yaml_node_t *key = node->map.pairs[i].key;
        char path[128];
        snprintf(path, sizeof(path), "%s.%s", sec->name, key->scalar.str);
        const key_spec_t *k = find_key(sec, key->scalar.str);
        if (!k) {
            const char *names[16];
            section_key_names(sec, names);
            unknown_key(ck->errs, key, path, key->scalar.str, names, sec->nkeys);
            continue;
        }
        check_key(ck, k, node->map.pairs[i].value, path);
    }
}

/* "METHOD /path": one method from the table, one space (or more), a path starting with '/' that
 * has no spaces or control characters. Segments like ":id" and "*rest" are the router's concern. */
static bool parse_match(fa_pool_t *pool, const fa_yaml_node_t *node, fa_route_conf_t *r)
{
    if (node->kind != FA_YAML_SCALAR)
        return false;
    const char *s = node->scalar.str, *sp = strchr(s, ' ');
    if (!sp)
        return false;
    const char *method = NULL;
    for (size_t i = 0; i < FA_ARRAY_SIZE(methods); i++)
        if (strlen(methods[i]) == (size_t)(sp - s) && memcmp(methods[i], s, (size_t)(sp - s)) == 0)
            method = methods[i];
    while (*sp == ' ')
        sp++;
    if (!method || *sp != '/')
        return false;
    for (const char *p = sp; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return false;
    r->method = method;
    r->path = fa_pool_strndup(pool, sp, strlen(sp));
    return true;
}

static void check_route(check_t *ck, const fa_yaml_node_t *node, size_t index)
{
    fa_config_t *c = ck->config;
    char path[64], kpath[96], g[80];
    snprintf(path, sizeof(path), "routes[%zu]", index);
    if (node->kind != FA_YAML_MAP) {
        fa_errbuf_add(ck->errs, node, path, "expected a mapping with match and pipeline, got %s",
                      got(node, g, sizeof(g)));
        return;
    }
    for (size_t i = 0; i < node->map.len; i++) {
        const fa_yaml_node_t *key = node->map.pairs[i].key;
        bool known = false;
        for (size_t j = 0; j < FA_ARRAY_SIZE(route_keys); j++)
            known |= strcmp(key->scalar.str, route_keys[j]) == 0;
        if (!known) {
            snprintf(kpath, sizeof(kpath), "%s.%s", path, key->scalar.str);
            unknown_key(ck->errs, key, kpath, key->scalar.str, route_keys,
                        FA_ARRAY_SIZE(route_keys));
        }
    }

    fa_route_conf_t r = {.node = node};
    bool ok = true;
    const fa_yaml_node_t *match = fa_yaml_map_get(node, "match");
    if (!match) {
        fa_errbuf_add(ck->errs, node, path, "missing required key \"match\"");
        ok = false;
    } else if (!parse_match(&c->pool, match, &r)) {
        snprintf(kpath, sizeof(kpath), "%s.match", path);
        fa_errbuf_add(ck->errs, match, kpath,
                      "expected \"METHOD /path\" with METHOD one of GET, HEAD, POST, PUT, DELETE, "
                      "PATCH, OPTIONS, got %s",
                      got(match, g, sizeof(g)));
        ok = false;
    } else {
        r.match_node = match;
        for (size_t i = 0; i < c->nroutes; i++) {
            const fa_route_conf_t *o = &c->routes[i];
            if (strcmp(o->method, r.method) == 0 && strcmp(o->path, r.path) == 0) {
                snprintf(kpath, sizeof(kpath), "%s.match", path);
                fa_errbuf_add(ck->errs, match, kpath,
                              "duplicate route \"%s %s\" (first defined at line %u)", r.method,
                              r.path, o->match_node->line);
                ok = false;
                break;
            }
        }
    }

    const fa_yaml_node_t *pipeline = fa_yaml_map_get(node, "pipeline");
    snprintf(kpath, sizeof(kpath), "%s.pipeline", path);
    if (!pipeline) {
        fa_errbuf_add(ck->errs, node, path, "missing required key \"pipeline\"");
        ok = false;
    } else if (pipeline->kind != FA_YAML_SEQ || pipeline->seq.len == 0) {
        fa_errbuf_add(ck->errs, pipeline, kpath, "expected a non-empty sequence of stages, got %s",
                      pipeline->kind == FA_YAML_SEQ ? "an empty sequence"
                                                    : got(pipeline, g, sizeof(g)));
        ok = false;
    } else {
        for (size_t i = 0; i < pipeline->seq.len; i++) {
            const fa_yaml_node_t *st = pipeline->seq.items[i];
            if (st->kind == FA_YAML_MAP && st->map.len == 1)
                continue;
            char spath[128];
            snprintf(spath, sizeof(spath), "%s[%zu]", kpath, i);
            if (st->kind == FA_YAML_MAP)
                fa_errbuf_add(ck->errs, st, spath,
                              "expected a mapping with one key (stage: argument), got a mapping "
                              "with %zu keys",
                              st->map.len);
            else
                fa_errbuf_add(ck->errs, st, spath,
                              "expected a mapping with one key (stage: argument), got %s",
                              got(st, g, sizeof(g)));
            ok = false;
        }
        r.pipeline = pipeline;
    }

    const fa_yaml_node_t *on_error = fa_yaml_map_get(node, "on_error");
    if (on_error && !fa_yaml_is_null(on_error)) {
        if (on_error->kind != FA_YAML_MAP) {
            snprintf(kpath, sizeof(kpath), "%s.on_error", path);
            fa_errbuf_add(ck->errs, on_error, kpath, "expected a mapping, got %s",
                          got(on_error, g, sizeof(g)));
            ok = false;
        } else {
            r.on_error = on_error;
        }
    }
    if (ok)
        c->routes[c->nroutes++] = r;
}

/* ---- upstreams ------------------------------------------------------------------------------- */

static const char *const upstream_keys[] = {"name",          "addresses",       "pool_size",
                                            "max_connections", "connect_timeout", "response_timeout",
                                            "idle_timeout",    "max_response_bytes"};

/* Resolves one "HOST:PORT" (HOST a name, an IPv4 address or a bracketed IPv6 address) with
 * getaddrinfo and appends every address to u->addrs (grown in the config pool). This is the only
 * DNS lookup fasterapid makes: at load and at each reload, never while serving. */
static void resolve_upstream_address(check_t *ck, fa_upstream_conf_t *u, const fa_yaml_node_t *it,
                                     const char *path)
{
    char g[80], host[256];
    const char *s = it->kind == FA_YAML_SCALAR ? it->scalar.str : "", *port;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
            goto bad;
        snprintf(host, sizeof(host), "%.*s", (int)(close - s - 1), s + 1);
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host) || memchr(s, ':', (size_t)(colon - s)))
            goto bad;
        snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
        port = colon + 1;
    }
    long long pn;
    if (!scan_int(port, &pn) || pn < 1 || pn > 65535)
        goto bad;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fa_errbuf_add(ck->errs, it, path, "cannot resolve \"%s\": %s", host, gai_strerror(rc));
        return;
    }
    size_t n = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        n++;
    fa_upstream_addr_t *list = fa_pool_calloc(&ck->config->pool, (u->naddrs + n) * sizeof(*list));
    if (u->naddrs)
        memcpy(list, u->addrs, u->naddrs * sizeof(*list));
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fa_upstream_addr_t *d = &list[u->naddrs++];
        memcpy(&d->addr, a->ai_addr, a->ai_addrlen);
        d->addrlen = a->ai_addrlen;
        d->host = s;
        char text[INET6_ADDRSTRLEN] = "?";
        if (a->ai_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr, text, sizeof(text));
            snprintf(d->text, sizeof(d->text), "[%s]:%lld", text, pn);
        } else {
            inet_ntop(AF_INET, &((struct sockaddr_in *)a->ai_addr)->sin_addr, text, sizeof(text));
            snprintf(d->text, sizeof(d->text), "%s:%lld", text, pn);
        }
    }
    freeaddrinfo(res);
    u->addrs = list;
    return;
bad:
    fa_errbuf_add(ck->errs, it, path,
                  "expected \"HOST:PORT\" (a DNS name, an IPv4 address or [IPv6 address], port "
                  "1..65535), got %s",
                  got(it, g, sizeof(g)));
}

static void check_upstream(check_t *ck, const fa_yaml_node_t *node, size_t index)
{
    fa_config_t *c = ck->config;
    char path[64], kpath[128], g[80];
    snprintf(path, sizeof(path), "upstreams[%zu]", index);
    if (node->kind != FA_YAML_MAP) {
        fa_errbuf_add(ck->errs, node, path, "expected a mapping with name and addresses, got %s",
                      got(node, g, sizeof(g)));
        return;
    }
    fa_upstream_conf_t u = {
        .node = node,
        .pool_size = 1024,
        .max_connections = 1024,
        .connect_timeout = 1,
        .response_timeout = 10,
        .idle_timeout = 60,
        .max_response_bytes = MIB,
    };
    unsigned before = ck->errs->count;
    const fa_yaml_node_t *addresses = NULL;
    for (size_t i = 0; i < node->map.len; i++) {
        const fa_yaml_node_t *key = node->map.pairs[i].key, *v = node->map.pairs[i].value;
        const char *k = key->scalar.str;
        long long n;
        snprintf(kpath, sizeof(kpath), "%s.%s", path, k);
        if (strcmp(k, "name") == 0) {
            bool ok = v->kind == FA_YAML_SCALAR && v->scalar.len > 0 && v->scalar.len <= 64;
            for (size_t j = 0; ok && j < v->scalar.len; j++) {
                char ch = v->scalar.str[j];
                ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
            }
            if (!ok)
                fa_errbuf_add(ck->errs, v, kpath,
                              "expected 1..64 letters, digits, '_' or '-', got %s",
                              got(v, g, sizeof(g)));
            else
                u.name = v->scalar.str;
        } else if (strcmp(k, "addresses") == 0) {
            addresses = v;
        } else if (strcmp(k, "pool_size") == 0) {
            if (parse_int_range(v, kpath, 0, 100000, &n, ck->errs))
                u.pool_size = (unsigned)n;
        } else if (strcmp(k, "max_connections") == 0) {
            if (parse_int_range(v, kpath, 1, 1000000, &n, ck->errs))
                u.max_connections = (unsigned)n;
        } else if (strcmp(k, "connect_timeout") == 0) {
            parse_duration_range(v, kpath, true, 3600, &u.connect_timeout, ck->errs);
        } else if (strcmp(k, "response_timeout") == 0) {
            parse_duration_range(v, kpath, true, 3600, &u.response_timeout, ck->errs);
        } else if (strcmp(k, "idle_timeout") == 0) {
            parse_duration_range(v, kpath, true, 3600, &u.idle_timeout, ck->errs);
        } else if (strcmp(k, "max_response_bytes") == 0) {
            parse_size_range(v, kpath, 64, GIB, &u.max_response_bytes, ck->errs);
        } else {
            unknown_key(ck->errs, key, kpath, k, upstream_keys, FA_ARRAY_SIZE(upstream_keys));
        }
    }
    if (!u.name && !fa_yaml_map_get(node, "name"))
        fa_errbuf_add(ck->errs, node, path, "missing required key \"name\"");
    for (size_t i = 0; u.name && i < c->nupstreams; i++)
        if (strcmp(c->upstreams[i].name, u.name) == 0)
            fa_errbuf_add(ck->errs, fa_yaml_map_get(node, "name"), path,
                          "duplicate upstream \"%s\" (first defined at line %u)", u.name,
                          c->upstreams[i].node->line);
    snprintf(kpath, sizeof(kpath), "%s.addresses", path);
    if (!addresses) {
        fa_errbuf_add(ck->errs, node, path, "missing required key \"addresses\"");
    } else if (addresses->kind == FA_YAML_SCALAR) {
        resolve_upstream_address(ck, &u, addresses, kpath);
    } else if (addresses->kind != FA_YAML_SEQ || addresses->seq.len == 0) {
        fa_errbuf_add(ck->errs, addresses, kpath,
                      "expected \"HOST:PORT\" or a non-empty sequence of them, got %s",
                      got(addresses, g, sizeof(g)));
    } else {
        for (size_t i = 0; i < addresses->seq.len; i++) {
            char ipath[160];
            snprintf(ipath, sizeof(ipath), "%s[%zu]", kpath, i);
            resolve_upstream_address(ck, &u, addresses->seq.items[i], ipath);
        }
    }
    if (ck->errs->count == before)
        c->upstreams[c->nupstreams++] = u;
}

static void check_upstreams(check_t *ck, const fa_yaml_node_t *node)
{
    char g[80];
    if (fa_yaml_is_null(node))
        return;
    if (node->kind != FA_YAML_SEQ) {
        fa_errbuf_add(ck->errs, node, "upstreams", "expected a sequence of upstreams, got %s",
                      got(node, g, sizeof(g)));
        return;
    }
    ck->config->upstreams =
        fa_pool_calloc(&ck->config->pool, node->seq.len * sizeof(fa_upstream_conf_t));
    for (size_t i = 0; i < node->seq.len; i++)
        check_upstream(ck, node->seq.items[i], i);
}

static void check_routes(check_t *ck, const fa_yaml_node_t *node)
{
    char g[80];
    if (fa_yaml_is_null(node))
        return;
    if (node->kind != FA_YAML_SEQ) {
        fa_errbuf_add(ck->errs, node, "routes", "expected a sequence of routes, got %s",
                      got(node, g, sizeof(g)));
        return;
    }
    ck->config->routes = fa_pool_calloc(&ck->config->pool, node->seq.len * sizeof(fa_route_conf_t));
    for (size_t i = 0; i < node->seq.len; i++)
        check_route(ck, node->seq.items[i], i);
}

static void check_root(check_t *ck, const fa_yaml_node_t *root)
{
    char g[80];
    if (root->kind != FA_YAML_MAP) {
        fa_errbuf_add(ck->errs, root, NULL,
                      "expected a mapping of sections at the top level, got %s",
                      got(root, g, sizeof(g)));
        return;
    }
    for (size_t i = 0; i < root->map.len; i++) {
        const fa_yaml_node_t *key = root->map.pairs[i].key, *value = root->map.pairs[i].value;
        const section_spec_t *sec = find_section(key->scalar.str);
        if (sec)
            check_section(ck, sec, value);
        else if (strcmp(key->scalar.str, "routes") == 0)
            check_routes(ck, value);
        else if (strcmp(key->scalar.str, "upstreams") == 0)
            check_upstreams(ck, value);
        else
            unknown_key(ck->errs, key, key->scalar.str, key->scalar.str, top_names,
                        FA_ARRAY_SIZE(top_names));
    }
    /* uri_bytes defaults to 4k but never more than header_bytes; given explicitly, it must fit. */
    fa_config_t *c = ck->config;
    if (c->limits.uri_bytes > c->limits.header_bytes) {
        if (ck->uri_node)
            fa_errbuf_add(ck->errs, ck->uri_node, "limits.uri_bytes",
                          "must not exceed limits.header_bytes (%zu bytes)",
                          c->limits.header_bytes);
        else
            c->limits.uri_bytes = c->limits.header_bytes;
    }
    /* A connection always holds its read buffer (header_bytes) plus a little output and pool. */
    size_t conn_min = c->limits.header_bytes + CONN_MEMORY_SLACK;
    if (c->limits.connection_memory < conn_min) {
        if (ck->conn_mem_node)
            fa_errbuf_add(ck->errs, ck->conn_mem_node, "limits.connection_memory",
                          "must be at least limits.header_bytes + 16k (%zu bytes)", conn_min);
        else
            fa_errbuf_add(ck->errs, ck->header_node, "limits.header_bytes",
                          "leaves less than 16k of limits.connection_memory (%zu bytes)",
                          c->limits.connection_memory);
    }
    if (c->limits.worker_memory < c->limits.connection_memory) {
        if (ck->worker_mem_node)
            fa_errbuf_add(ck->errs, ck->worker_mem_node, "limits.worker_memory",
                          "must be at least limits.connection_memory (%zu bytes)",
                          c->limits.connection_memory);
        else
            fa_errbuf_add(ck->errs, ck->conn_mem_node, "limits.connection_memory",
                          "must not exceed limits.worker_memory (%zu bytes)",
                          c->limits.worker_memory);
    }
}

/* ---- overrides --------------------------------------------------------------------------------
 */

static fa_yaml_node_t *new_scalar(fa_pool_t *pool, const char *file, const char *s)
{
    fa_yaml_node_t *n = fa_pool_calloc(pool, sizeof(*n));
    n->kind = FA_YAML_SCALAR;
    n->file = file;
    n->line = n->col = 1;
    n->scalar.len = strlen(s);
    n->scalar.str = fa_pool_strndup(pool, s, n->scalar.len);
    return n;
}

/* Sets key to value in map, replacing the value of an existing key or appending a pair. The pairs
 * array is copied on append; the old one stays in the pool until the config is freed. */
static void map_set(fa_pool_t *pool, fa_yaml_node_t *map, const char *file, const char *key,
                    fa_yaml_node_t *value)
{
    for (size_t i = 0; i < map->map.len; i++) {
        if (fa_yaml_scalar_is(map->map.pairs[i].key, key)) {
            map->map.pairs[i].value = value;
            return;
        }
    }
    fa_yaml_pair_t *pairs = fa_pool_alloc(pool, (map->map.len + 1) * sizeof(*pairs));
    if (map->map.len)
        memcpy(pairs, map->map.pairs, map->map.len * sizeof(*pairs));
    pairs[map->map.len] = (fa_yaml_pair_t){new_scalar(pool, file, key), value};
    map->map.pairs = pairs;
    map->map.len++;
}

static fa_yaml_node_t *new_map(fa_pool_t *pool, const char *file)
{
    fa_yaml_node_t *n = fa_pool_calloc(pool, sizeof(*n));
    n->kind = FA_YAML_MAP;
    n->file = file;
    n->line = n->col = 1;
    return n;
}

/* One "-o key=value". The key is checked against the tables before the tree is touched, so a typo
 * is an error instead of a silently ignored setting. The value is YAML parsed with the override's
 * own text as its file name, which is what locates errors in it. */
static void apply_override(fa_config_t *c, fa_yaml_node_t *root, const char *text,
                           fa_errbuf_t *errs)
{
    const char *eq = strchr(text, '=');
    if (!eq || eq == text) {
        fa_errbuf_add(errs, NULL, NULL, "-o %s: expected KEY=VALUE (like server.workers=4)", text);
        return;
    }
    char key[128];
    if ((size_t)(eq - text) >= sizeof(key)) {
        fa_errbuf_add(errs, NULL, NULL, "-o %s: key too long", text);
        return;
    }
    memcpy(key, text, (size_t)(eq - text));
    key[eq - text] = '\0';
    char *dot = strchr(key, '.');
    const char *sub = NULL;
    if (dot) {
        *dot = '\0';
        sub = dot + 1;
    }
    const section_spec_t *sec = find_section(key);
    /* routes and upstreams are sequences: an override replaces them whole. */
    bool is_routes = strcmp(key, "routes") == 0 || strcmp(key, "upstreams") == 0;
    char label[256];
    snprintf(label, sizeof(label), "-o %s", text);
    if (!sec && !is_routes) {
        const char *best = suggest(key, top_names, FA_ARRAY_SIZE(top_names));
        if (sub)
            *dot = '.';
        if (best)
            fa_errbuf_add(errs, NULL, NULL, "%s: %s: unknown key (did you mean \"%s\"?)", label,
                          key, best);
        else
            fa_errbuf_add(errs, NULL, NULL, "%s: %s: unknown key", label, key);
        return;
    }
    if (sub && (is_routes || !find_key(sec, sub))) {
        const char *names[16], *best = NULL;
        if (sec) {
            section_key_names(sec, names);
            best = suggest(sub, names, sec->nkeys);
        }
        if (best)
            fa_errbuf_add(errs, NULL, NULL, "%s: %s.%s: unknown key (did you mean \"%s\"?)", label,
                          key, sub, best);
        else
            fa_errbuf_add(errs, NULL, NULL, "%s: %s.%s: unknown key", label, key, sub);
        return;
    }

    const char *file = fa_pool_strndup(&c->pool, label, strlen(label));
    fa_yaml_node_t *value;
    if (eq[1] == '\0') {
        value = new_scalar(&c->pool, file, "");
    } else {
        char err[2048];
        value = fa_yaml_load(&c->pool, label, eq + 1, strlen(eq + 1), err, sizeof(err));
        if (!value) {
            errbuf_add_lines(errs, err);
            return;
        }
    }
    if (root->kind != FA_YAML_MAP)
        return; /* the top-level error is reported by the check */
    if (!sub) {
        map_set(&c->pool, root, file, key, value);
        return;
    }
    fa_yaml_node_t *section = fa_yaml_map_get(root, key);
    if (!section || fa_yaml_is_null(section)) {
        section = new_map(&c->pool, file);
        map_set(&c->pool, root, file, key, section);
    }
    if (section->kind == FA_YAML_MAP)
        map_set(&c->pool, section, file, sub, value);
    /* Otherwise the section itself is wrong, and the check says so. */
}

/* ---- load, free -------------------------------------------------------------------------------
 */

/* Shared by both loaders once the tree exists (or failed to): overrides, defaults, check. */
static fa_config_t *finish_load(fa_config_t *c, fa_yaml_node_t *root, const char *yaml_err,
                                const char *const *overrides, size_t noverrides, fa_errbuf_t *errs)
{
    unsigned before = errs->count;
    if (!root) {
        errbuf_add_lines(errs, yaml_err);
        goto fail;
    }
    for (size_t i = 0; i < noverrides; i++)
        apply_override(c, root, overrides[i], errs);
    set_defaults(c);
    check_t ck = {.config = c, .errs = errs};
    check_root(&ck, root);
    if (errs->count != before)
        goto fail;
    return c;
fail:
    fa_config_free(c);
    return NULL;
}

static fa_config_t *config_new(const char *file)
{
    fa_config_t *c = fa_calloc(1, sizeof(*c));
    fa_pool_init(&c->pool, 16 * 1024);
    c->file = fa_pool_strndup(&c->pool, file, strlen(file));
    return c;
}

fa_config_t *fa_config_load_buf(const char *file, const char *buf, size_t len,
                                const char *const *overrides, size_t noverrides, fa_errbuf_t *errs)
{
    fa_config_t *c = config_new(file);
    char err[4096];
    fa_yaml_node_t *root = fa_yaml_load(&c->pool, file, buf, len, err, sizeof(err));
    return finish_load(c, root, err, overrides, noverrides, errs);
}

fa_config_t *fa_config_load(const char *path, const char *const *overrides, size_t noverrides,
                            fa_errbuf_t *errs)
{
    fa_config_t *c = config_new(path);
    char err[4096];
    fa_yaml_node_t *root = fa_yaml_load_file(&c->pool, path, err, sizeof(err));
    return finish_load(c, root, err, overrides, noverrides, errs);
}

fa_config_t *fa_config_load_logged(const char *path, const char *const *overrides,
                                   size_t noverrides)
{
    fa_errbuf_t errs = {0};
    fa_config_t *c = fa_config_load(path, overrides, noverrides, &errs);
    for (const char *p = errs.text; p && *p;) {
        size_t n = strcspn(p, "\n");
        fa_log_error("%.*s", (int)n, p);
        p += n + (p[n] == '\n');
    }
    fa_errbuf_free(&errs);
    return c;
}

void fa_config_free(fa_config_t *config)
{
    if (!config)
        return;
    fa_pool_destroy(&config->pool);
    fa_free(config);
}

unsigned fa_config_worker_count(const fa_config_t *config)
{
    if (config->server.workers)
        return config->server.workers;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* ---- dump -------------------------------------------------------------------------------------
 */

/* The effective config as block YAML, every key present, routes re-emitted from their stored
 * nodes in flow style. Built in memory and written at once, so a reader never sees half of it. */
void fa_config_dump(const fa_config_t *c, int fd)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return;
    char a[DURATION_TEXT_MAX], b[DURATION_TEXT_MAX], d[DURATION_TEXT_MAX];

    fprintf(out, "# effective configuration of fasterapid %s, loaded from %s\n", FA_VERSION,
            c->file);
    fputs("server:\n  listen: [", out);
    for (size_t i = 0; i < c->server.nlisten; i++) {
        if (i)
            fputs(", ", out);
        fa_yaml_emit_quoted(out, c->server.listen[i].text, strlen(c->server.listen[i].text));
    }
    fputs("]\n", out);
    if (c->server.workers)
        fprintf(out, "  workers: %u\n", c->server.workers);
    else
        fputs("  workers: auto\n", out);
    fprintf(out, "  pin_workers: %s\n", c->server.pin_workers ? "true" : "false");
    fprintf(out, "  backlog: %d\n", c->server.backlog);
    fprintf(out, "  max_connections: %u\n", c->server.max_connections);
    fputs("  name: ", out);
    fa_yaml_emit_quoted(out, c->server.name, strlen(c->server.name));

    fmt_size(c->limits.header_bytes, a, sizeof(a));
    fmt_size(c->limits.body_bytes, b, sizeof(b));
    fmt_size(c->limits.uri_bytes, d, sizeof(d));
    fprintf(out, "\nlimits:\n  header_bytes: %s\n  body_bytes: %s\n  uri_bytes: %s\n", a, b, d);
    fprintf(out, "  max_headers: %u\n  max_pipelined: %u\n", c->limits.max_headers,
            c->limits.max_pipelined);
    fmt_size(c->limits.connection_memory, a, sizeof(a));
    fmt_size(c->limits.worker_memory, b, sizeof(b));
    fprintf(out, "  connection_memory: %s\n  worker_memory: %s\n", a, b);

    fputs("timeouts:\n", out);
    const struct {
        const char *name;
        double v;
    } t[] = {{"header", c->timeouts.header},
             {"body", c->timeouts.body},
             {"keepalive", c->timeouts.keepalive},
             {"write", c->timeouts.write},
             {"shutdown", c->timeouts.shutdown}};
    for (size_t i = 0; i < FA_ARRAY_SIZE(t); i++) {
        fmt_duration(t[i].v, a, sizeof(a));
        fprintf(out, "  %s: %s\n", t[i].name, a);
    }

    fprintf(out,
            "log:\n  level: %s\n  access: %s\n  access_path: ", fa_log_level_name(c->log.level),
            c->log.access ? "true" : "false");
    fa_yaml_emit_quoted(out, c->log.access_path, strlen(c->log.access_path));
    fprintf(out, "\n  access_format: %s\n", c->log.access_format);

    fmt_duration(c->aggregator.snapshot_interval, a, sizeof(a));
    fprintf(out, "aggregator:\n  capacity: %zu\n  snapshot: ", c->aggregator.capacity);
    fa_yaml_emit_quoted(out, c->aggregator.snapshot, strlen(c->aggregator.snapshot));
    fprintf(out, "\n  snapshot_interval: %s\n", a);

    fputs(c->nupstreams ? "upstreams:\n" : "upstreams: []\n", out);
    for (size_t i = 0; i < c->nupstreams; i++) {
        const fa_upstream_conf_t *u = &c->upstreams[i];
        fputs("  - name: ", out);
        fa_yaml_emit_quoted(out, u->name, strlen(u->name));
        fputs("\n    addresses: ", out);
        fa_yaml_emit_flow(out, fa_yaml_map_get(u->node, "addresses"));
        fmt_duration(u->connect_timeout, a, sizeof(a));
        fmt_duration(u->response_timeout, b, sizeof(b));
        fmt_size(u->max_response_bytes, d, sizeof(d));
        fprintf(out,
                "\n    pool_size: %u\n    max_connections: %u\n    connect_timeout: %s\n"
                "    response_timeout: %s\n",
                u->pool_size, u->max_connections, a, b);
        fmt_duration(u->idle_timeout, a, sizeof(a));
        fprintf(out, "    idle_timeout: %s\n    max_response_bytes: %s\n", a, d);
    }
    fputs(c->nroutes ? "routes:\n" : "routes: []\n", out);
    for (size_t i = 0; i < c->nroutes; i++) {
        const fa_route_conf_t *r = &c->routes[i];
        fputs("  - match: ", out);
        fa_yaml_emit_flow(out, r->match_node);
        fputs("\n    pipeline:\n", out);
        for (size_t j = 0; j < r->pipeline->seq.len; j++) {
            /* A stage is a one-key mapping: "- name: {args}" reads like the source. */
            const fa_yaml_pair_t *st = &r->pipeline->seq.items[j]->map.pairs[0];
            fputs("      - ", out);
            fa_yaml_emit_flow(out, st->key);
            fputs(": ", out);
            fa_yaml_emit_flow(out, st->value);
            fputc('\n', out);
        }
        if (r->on_error) {
            fputs("    on_error: ", out);
            fa_yaml_emit_flow(out, r->on_error);
            fputc('\n', out);
        }
    }
    fclose(out);

    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* a closed pipe: nobody is reading the dump any more */
        off += (size_t)n;
    }
    free(text); /* open_memstream's buffer comes from libc malloc */
}
