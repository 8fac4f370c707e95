/*
 * config.h — the daemon's configuration: read from YAML, checked against schema tables, immutable.
 *
 * Lifetime: a fa_config_t is the config arena. Everything it points to (the YAML tree of the routes
 * included) is allocated from its own pool and lives until fa_config_free. Workers read it and never
 * write it; a reload builds a new one and the old one is freed once no worker uses it.
 *
 * Errors are collected, not stopped at: every problem is reported, each as one line
 * "FILE:LINE:COL: PATH: message" (PATH like "server.workers" or "routes[2].pipeline[1]").
 */
#ifndef FA_CONFIG_H
#define FA_CONFIG_H

#include "fa.h"
#include "log.h"
#include "pool.h"
#include "yaml.h"

#include <sys/socket.h>

/** A growing list of located error lines. Zero-initialise before use. */
typedef struct {
    char *text; /* NUL-terminated, one error per line, fa_malloc'd; NULL while empty */
    size_t len, cap;
    unsigned count;
} fa_errbuf_t;

/**
 * Appends "FILE:LINE:COL: PATH: message\n" (at may be NULL: then no location; path may be NULL or
 * "": then no path).
 */
void fa_errbuf_add(fa_errbuf_t *errs, const fa_yaml_node_t *at, const char *path, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));
void fa_errbuf_free(fa_errbuf_t *errs);

typedef struct {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char text[64]; /* "127.0.0.1:8080" or "[::1]:8080", for messages */
} fa_listen_t;

typedef struct {
    const char *method;               /* "GET", "POST", ... upper case, NUL-terminated */
    const char *path;                 /* "/users/:id" as written; NUL-terminated */
    const fa_yaml_node_t *node;       /* the route's mapping, for locations */
    const fa_yaml_node_t *match_node; /* the "match" scalar */
    const fa_yaml_node_t *pipeline;   /* a sequence of one-key mappings: the stages */
    const fa_yaml_node_t *on_error;   /* optional mapping; NULL when absent */
} fa_route_conf_t;

/** One resolved address of an upstream (getaddrinfo at load; never on the request path). */
typedef struct {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    const char *host; /* "HOST:PORT" as written: the Host header sent to it */
    char text[64];    /* "10.0.0.7:8080" or "[::1]:8080", for messages */
} fa_upstream_addr_t;

/**
 * An upstream service (the `upstreams` section): where it is and how it is called. Lives in the
 * config arena; each worker keeps its own connection pool for it (upstream.h).
 */
typedef struct {
    const char *name;             /* referenced by the fetch and fan_out stages */
    const fa_yaml_node_t *node;   /* the entry, for locations */
    fa_upstream_addr_t *addrs;    /* every address of every entry, taken in turn */
    size_t naddrs;
    unsigned pool_size;           /* idle keep-alive connections kept per worker (at most) */
    unsigned max_connections;     /* open connections per worker; past it a call fails (502) */
    double connect_timeout;       /* seconds */
    double response_timeout;      /* seconds, from the request written to the response read */
    double idle_timeout;          /* seconds an idle pooled connection is kept before closing */
    size_t max_response_bytes;    /* status line, headers and body together */
} fa_upstream_conf_t;

struct fa_config {
    fa_pool_t pool; /* owns everything below */
    const char *file;

    struct {
        fa_listen_t *listen;
        size_t nlisten;
        unsigned workers; /* 0 = auto: one per CPU in the affinity mask */
        bool pin_workers;
        int backlog;
        unsigned max_connections; /* per worker */
        const char *name;         /* Server header value */
    } server;

    struct {
        size_t header_bytes; /* whole request header section, request line included */
        size_t body_bytes;
        size_t uri_bytes;
        unsigned max_headers;
        unsigned max_pipelined; /* requests parsed ahead of the one being answered */
        size_t connection_memory; /* read buffer + unsent output + request pool, per connection */
        size_t worker_memory;     /* the same summed over a worker's connections */
    } limits;

    struct { /* seconds */
        double header, body, keepalive, write, shutdown;
    } timeouts;

    struct {
        fa_log_level_t level;
        bool access;
        const char *access_path;   /* "" = stdout */
        const char *access_format; /* "combined", "common" or "json" */
    } log;

    struct {
        size_t capacity;          /* distinct keys */
        const char *snapshot;     /* "" = no snapshot */
        double snapshot_interval; /* seconds */
    } aggregator;

    fa_upstream_conf_t *upstreams;
    size_t nupstreams;

    fa_route_conf_t *routes;
    size_t nroutes;
};

/**
 * Loads path, applies the "-o key=value" overrides (in order, each "dotted.key=yaml-value"), checks
 * everything, and returns the config, or NULL with every problem appended to errs.
 */
fa_config_t *fa_config_load(const char *path, const char *const *overrides, size_t noverrides,
                            fa_errbuf_t *errs);

/** Same, from a buffer (tests). file names the source in messages. */
fa_config_t *fa_config_load_buf(const char *file, const char *buf, size_t len,
                                const char *const *overrides, size_t noverrides,
                                fa_errbuf_t *errs);

/**
 * fa_config_load for the daemon's start and reload paths: every error line is logged with
 * fa_log_error instead of being returned. NULL when the config has errors. Call it again with the
 * same path and overrides (kept by main from argv) to reload.
 */
fa_config_t *fa_config_load_logged(const char *path, const char *const *overrides,
                                   size_t noverrides);

/** Releases the config and everything it points to (the YAML tree included). NULL is a no-op. */
void fa_config_free(fa_config_t *config);

/** Writes the effective config (defaults filled in) as YAML to fd. */
void fa_config_dump(const fa_config_t *config, int fd);

/** Number of workers to start: config->server.workers, or the CPUs in the affinity mask for auto. */
unsigned fa_config_worker_count(const fa_config_t *config);

/* Helpers for stage parsers and other sections: parse one scalar, appending a located error. */
bool fa_config_parse_size(const fa_yaml_node_t *node, const char *path, size_t *out,
                          fa_errbuf_t *errs);
bool fa_config_parse_duration(const fa_yaml_node_t *node, const char *path, double *out,
                              fa_errbuf_t *errs);
bool fa_config_parse_bool(const fa_yaml_node_t *node, const char *path, bool *out,
                          fa_errbuf_t *errs);
bool fa_config_parse_int(const fa_yaml_node_t *node, const char *path, long long min,
                         long long max, long long *out, fa_errbuf_t *errs);

#endif
