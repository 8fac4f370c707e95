/*
 * test_upstream_config.c — located errors of the upstreams section and of the fetch, fan_out and
 * merge stages, and what the loader fills in (resolution, defaults, the dump round trip).
 */
#include <criterion/criterion.h>

#include "app.h"
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

TestSuite(upstream_config, .timeout = 10);

static const char *build_errors(const char *yaml)
{
    static char out[4096];
    fa_errbuf_t errs = {0};
    fa_config_t *c = fa_config_load_buf("u.yaml", yaml, strlen(yaml), NULL, 0, &errs);
    if (c) {
        fa_app_t *app = fa_app_build(c, &errs);
        fa_app_free(app);
        fa_config_free(c);
    }
    snprintf(out, sizeof(out), "%s", errs.text ? errs.text : "");
    fa_errbuf_free(&errs);
    return out;
}

Test(upstream_config, errors_are_located)
{
    cr_assert_str_eq(build_errors("upstreams:\n  - name: a\n    adresses: \"127.0.0.1:1\"\n"),
                     "u.yaml:3:5: upstreams[0].adresses: unknown key (did you mean "
                     "\"addresses\"?)\nu.yaml:2:5: upstreams[0]: missing required key "
                     "\"addresses\"\n");
    cr_assert_str_eq(build_errors("upstreams:\n  - { name: a, addresses: \"127.0.0.1:1\" }\n"
                                  "  - { name: a, addresses: \"127.0.0.1:x\" }\n"),
                     "u.yaml:3:13: upstreams[1]: duplicate upstream \"a\" (first defined at line "
                     "2)\nu.yaml:3:27: upstreams[1].addresses: expected \"HOST:PORT\" (a DNS "
                     "name, an IPv4 address or [IPv6 address], port 1..65535), got "
                     "\"127.0.0.1:x\"\n");
    cr_assert_str_eq(build_errors("upstreams:\n  - name: a\n    addresses: \"127.0.0.1:1\"\n"
                                  "    idle_timeout: 0s\n  - name: b\n"
                                  "    addresses: \"127.0.0.1:1\"\n    idle_timeout: soon\n"),
                     "u.yaml:4:19: upstreams[0].idle_timeout: expected a duration above 0 and at "
                     "most 1h (seconds, or with unit ms, s, m, h), got \"0s\"\n"
                     "u.yaml:7:19: upstreams[1].idle_timeout: expected a duration above 0 and at "
                     "most 1h (seconds, or with unit ms, s, m, h), got \"soon\"\n");
    const char *routes = "upstreams: [{ name: a, addresses: \"127.0.0.1:1\" }]\n"
                         "routes:\n"
                         "  - match: GET /x\n"
                         "    pipeline:\n"
                         "      - fetch: { upstream: b, path: /x }\n"
                         "      - fetch: { upstream: a, path: \"/${results.nope.id}\" }\n"
                         "      - merge: { results: [a, zz] }\n";
    cr_assert_str_eq(build_errors(routes),
                     "u.yaml:5:28: routes[0].pipeline[0].fetch.upstream: unknown upstream \"b\" "
                     "(upstreams: a)\n"
                     "u.yaml:6:37: routes[0].pipeline[1]: ${results.nope.id}: no earlier fetch or "
                     "fan_out stores a result named \"nope\"\n"
                     "u.yaml:7:31: routes[0].pipeline[2].merge.results: no earlier fetch or "
                     "fan_out stores a result named \"zz\"\n");
}

Test(upstream_config, defaults_and_addresses)
{
    const char *y = "upstreams:\n"
                    "  - name: u\n"
                    "    addresses: [\"127.0.0.1:81\", \"[::1]:82\", \"localhost:83\"]\n";
    fa_errbuf_t errs = {0};
    fa_config_t *c = fa_config_load_buf("u.yaml", y, strlen(y), NULL, 0, &errs);
    cr_assert_not_null(c, "%s", errs.text);
    cr_assert_eq(c->nupstreams, 1);
    const fa_upstream_conf_t *u = &c->upstreams[0];
    cr_assert_str_eq(u->name, "u");
    cr_assert_geq(u->naddrs, 3); /* localhost may give one or two */
    cr_assert_str_eq(u->addrs[0].text, "127.0.0.1:81");
    cr_assert_str_eq(u->addrs[0].host, "127.0.0.1:81");
    cr_assert_str_eq(u->addrs[1].text, "[::1]:82");
    cr_assert_str_eq(u->addrs[2].host, "localhost:83");
    cr_assert_eq(u->pool_size, 1024);
    cr_assert_eq(u->max_connections, 1024);
    cr_assert_float_eq(u->connect_timeout, 1.0, 1e-9);
    cr_assert_float_eq(u->response_timeout, 10.0, 1e-9);
    cr_assert_float_eq(u->idle_timeout, 60.0, 1e-9);
    cr_assert_eq(u->max_response_bytes, 1 << 20);

    /* The dump names every key and reads back to the same upstream. */
    int fd = memfd_create("dump", 0);
    fa_config_dump(c, fd);
    off_t n = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)n + 1);
    cr_assert_eq(pread(fd, text, (size_t)n, 0), n);
    close(fd);
    cr_assert(strstr(text, "upstreams:\n  - name: \"u\"\n    addresses: [\"127.0.0.1:81\", "
                           "\"[::1]:82\", \"localhost:83\"]\n    pool_size: 1024\n"),
              "%s", text);
    fa_config_t *again = fa_config_load_buf("dump.yaml", text, strlen(text), NULL, 0, &errs);
    cr_assert_not_null(again, "%s", errs.text);
    cr_assert_eq(again->upstreams[0].naddrs, u->naddrs);
    cr_assert(strstr(text, "    idle_timeout: 1m\n"), "%s", text);
    free(text);
    fa_config_free(again);
    fa_config_free(c);
    fa_errbuf_free(&errs);
}
