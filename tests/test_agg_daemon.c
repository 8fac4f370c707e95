/*
 * test_agg_daemon.c — the aggregator's worker-side paths end to end: a batch committed through
 * fa_agg_add_many that fills the key set mid-batch (the refused event is reported by its index,
 * the others counted), returning keys counted from the worker's key cache, and a reset through
 * the admin route while that cache holds every key: the keys must count as new again.
 * One worker, so every request meets the same cache.
 */
#include <criterion/criterion.h>

#include "support/daemon.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static fa_td_t d;

static void start(void)
{
    static const char *ov[] = {"aggregator.capacity=5", "server.workers=1", NULL};
    cr_assert(fa_td_start(&d, "tests/conf/http.yaml", ov), "daemon did not start; see %s",
              d.log_path);
}

static void stop(void)
{
    int st = fa_td_stop(&d, SIGTERM, 15);
    cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "unclean stop; see %s", d.log_path);
}

TestSuite(agg_daemon, .init = start, .fini = stop, .timeout = 60);

/* Sends one request (method and path, optional body) on c; returns the status, response in r. */
static int request(fa_tc_t *c, const char *what, const char *body, fa_tresp_t *r)
{
    char head[256];
    size_t len = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof(head), "%s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
                     what, len);
    cr_assert(fa_tc_send(c, head, (size_t)n));
    if (len)
        cr_assert(fa_tc_send(c, body, len));
    cr_assert(fa_tc_read(c, r, false));
    r->body[r->body_len < sizeof(r->body) ? r->body_len : sizeof(r->body) - 1] = '\0';
    return r->status;
}

static void expect_stats(fa_tc_t *c, fa_tresp_t *r, const char *prefix)
{
    cr_assert_eq(request(c, "GET /stats", NULL, r), 200);
    cr_assert_eq(strncmp(r->body, prefix, strlen(prefix)), 0, "stats %s, want %s...", r->body,
                 prefix);
}

/* Five keys fill the set; "f" (index 6) is refused, the returning "b" after it is counted. */
static const char batch[] = "{\"userId\":\"a\",\"value\":1}\n"
                            "{\"userId\":\"b\",\"value\":2}\n"
                            "{\"userId\":\"c\",\"value\":3}\n"
                            "{\"userId\":\"a\",\"value\":4}\n"
                            "{\"userId\":\"d\",\"value\":5}\n"
                            "{\"userId\":\"e\",\"value\":6}\n"
                            "{\"userId\":\"f\",\"value\":7}\n"
                            "{\"userId\":\"b\",\"value\":8}\n";
static const char report[] = "{\"accepted\":7,\"rejected_total\":1,\"rejected\":["
                             "{\"index\":6,\"error\":\"too many distinct keys: the aggregator "
                             "is full\"}]}";

Test(agg_daemon, full_set_mid_batch_and_reset_with_a_warm_key_cache)
{
    fa_tc_t *c = malloc(sizeof(*c));
    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert(fa_tc_connect(c, d.port));

    cr_assert_eq(request(c, "POST /events", batch, r), 200);
    cr_assert_str_eq(r->body, report);
    expect_stats(c, r, "{\"totalRequests\":7,\"uniqueUsers\":5,\"sum\":29,");

    /* Again: a-e are now cache hits in the worker, f is still refused. */
    cr_assert_eq(request(c, "POST /events", batch, r), 200);
    cr_assert_str_eq(r->body, report);
    cr_assert_eq(request(c, "POST /event", "{\"userId\":\"c\",\"value\":1}", r), 200);
    cr_assert_eq(request(c, "POST /event", "{\"userId\":\"g\",\"value\":1}", r), 503);
    expect_stats(c, r, "{\"totalRequests\":15,\"uniqueUsers\":5,\"sum\":59,");

    /* After a reset the cache still holds a-e: they must count as new, and fill the set again. */
    cr_assert_eq(request(c, "POST /stats/reset", NULL, r), 200);
    expect_stats(c, r, "{\"totalRequests\":0,\"uniqueUsers\":0,\"sum\":0,");
    cr_assert_eq(request(c, "POST /events", batch, r), 200);
    cr_assert_str_eq(r->body, report);
    expect_stats(c, r, "{\"totalRequests\":7,\"uniqueUsers\":5,\"sum\":29,");
    cr_assert_eq(request(c, "POST /event", "{\"userId\":\"e\",\"value\":1}", r), 200);
    expect_stats(c, r, "{\"totalRequests\":8,\"uniqueUsers\":5,\"sum\":30,");

    fa_tc_close(c);
    free(c);
    free(r);
}
