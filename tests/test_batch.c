/*
 * test_batch.c — POST /events end to end: both framings, mixed valid and invalid events with the
 * exact report and exact /stats deltas, bodies split at every byte (inside a line, a string, a
 * UTF-8 sequence), the limits that refuse a batch whole, and batches racing single events.
 */
#include <criterion/criterion.h>

#include "support/daemon.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define FA_TMIN(a, b) ((a) < (b) ? (a) : (b))

static fa_td_t d;

static void start(void)
{
    static const char *ov[] = {"limits.body_bytes=4m", NULL};
    cr_assert(fa_td_start(&d, "tests/conf/http.yaml", ov), "daemon did not start; see %s",
              d.log_path);
}

static void stop(void)
{
    int st = fa_td_stop(&d, SIGTERM, 15);
    cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "unclean stop; see %s",
              d.log_path);
}

TestSuite(batch, .init = start, .fini = stop, .timeout = 120);

static void stats_body(char *out, size_t len)
{
    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert_eq(fa_tc_once(d.port, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n", r), 200);
    snprintf(out, len, "%.*s", (int)FA_TMIN(r->body_len, len - 1), r->body);
    free(r);
}

/* POST /events with body (Content-Length framing) on c; returns the status, report in r. */
static int post(fa_tc_t *c, const char *body, size_t len, fa_tresp_t *r)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "POST /events HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", len);
    cr_assert(fa_tc_send(c, head, (size_t)n));
    cr_assert(fa_tc_send(c, body, len));
    cr_assert(fa_tc_read(c, r, false));
    return r->status;
}

static const char mixed[] = "{\"userId\":\"a\",\"value\":1}\n"
                            "{\"userId\":\"b\",\"value\":2.5}\r\n"
                            "\n"
                            "{\"userId\":\"\",\"value\":1}\n"
                            "not json\n"
                            "{\"userId\":\"a\",\"value\":\"x\"}\n"
                            "{\"userId\":\"\xc3\xa9t\xc3\xa9\",\"value\":0.25}";
static const char mixed_report[] =
    "{\"accepted\":3,\"rejected_total\":3,\"rejected\":["
    "{\"index\":2,\"error\":\"userId must not be empty\"},"
    "{\"index\":3,\"error\":\"invalid JSON at byte 0: invalid literal (expected null)\"},"
    "{\"index\":4,\"error\":\"value must be a number\"}]}";

Test(batch, ndjson_mixed_report_and_exact_totals)
{
    fa_tc_t *c = malloc(sizeof(*c));
    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert(fa_tc_connect(c, d.port));
    cr_assert_eq(post(c, mixed, strlen(mixed), r), 200);
    cr_assert_str_eq(r->body, mixed_report);
    char s[256];
    stats_body(s, sizeof(s));
    cr_assert_str_eq(s, "{\"totalRequests\":3,\"uniqueUsers\":3,\"sum\":3.75,\"avg\":1.25}");
    fa_tc_close(c);
    free(c);
    free(r);
}

Test(batch, array_framing_and_whole_refusals)
{
    fa_tc_t *c = malloc(sizeof(*c));
    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert(fa_tc_connect(c, d.port));
    const char *arr = " [ {\"userId\":\"x]\",\"value\":1}, {\"userId\":\"y\",\"value\":[1]},5,"
                      "{\"userId\":\"z\",\"value\":1e2} ] ";
    cr_assert_eq(post(c, arr, strlen(arr), r), 200);
    cr_assert_str_eq(r->body, "{\"accepted\":2,\"rejected_total\":2,\"rejected\":["
                              "{\"index\":1,\"error\":\"value must be a number\"},"
                              "{\"index\":2,\"error\":\"the event must be a JSON object\"}]}");
    char before[256], after[256];
    stats_body(before, sizeof(before));
    cr_assert_str_eq(before, "{\"totalRequests\":2,\"uniqueUsers\":2,\"sum\":101,\"avg\":50.5}");

    /* not a batch at all: refused whole, nothing counted */
    const struct {
        const char *body;
        int status;
    } bad[] = {
        {"[{\"userId\":\"q\",\"value\":1}, {\"userId\":\"d\"", 400}, /* not closed */
        {"[{\"userId\":\"q\",\"value\":1}]]", 400},                /* data after */
        {"[{\"userId\":\"q\",\"value\":1},]", 400},                 /* trailing comma */
        {"[{\"userId\":\"q\",\"value\":1},,{}]", 400},              /* empty element */
        {"   ", 400},                                                /* empty */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fa_tc_t *c2 = malloc(sizeof(*c2));
        cr_assert(fa_tc_connect(c2, d.port));
        cr_expect_eq(post(c2, bad[i].body, strlen(bad[i].body), r), bad[i].status,
                     "case %zu: %d %s", i, r->status, r->body);
        fa_tc_close(c2);
        free(c2);
    }
    /* over max_events (10000 in the config) */
    size_t n = 10001, len = 0;
    char *big = malloc(n * 32);
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(big + len, "{\"userId\":\"m\",\"value\":1}\n");
    fa_tc_t *c3 = malloc(sizeof(*c3));
    cr_assert(fa_tc_connect(c3, d.port));
    cr_assert_eq(post(c3, big, len, r), 413, "%d %s", r->status, r->body);
    fa_tc_close(c3);
    stats_body(after, sizeof(after));
    cr_assert_str_eq(after, before, "a refused batch counted something");
    free(big);
    free(c3);
    fa_tc_close(c);
    free(c);
    free(r);
}

Test(batch, chunked_splits_at_every_byte)
{
    /* Every split point of the mixed batch, sent as two chunks: inside lines, strings, the
     * two-byte UTF-8 sequences; the report never changes. */
    fa_tc_t *c = malloc(sizeof(*c));
    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert(fa_tc_connect(c, d.port));
    size_t len = strlen(mixed);
    char *req = malloc(len + 512);
    for (size_t cut = 1; cut < len; cut++) {
        int n = sprintf(req,
                        "POST /events HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "%zx\r\n",
                        cut);
        memcpy(req + n, mixed, cut);
        n += (int)cut;
        n += sprintf(req + n, "\r\n%zx\r\n", len - cut);
        memcpy(req + n, mixed + cut, len - cut);
        n += (int)(len - cut);
        n += sprintf(req + n, "\r\n0\r\n\r\n");
        cr_assert(fa_tc_send(c, req, (size_t)n));
        cr_assert(fa_tc_read(c, r, false), "cut %zu", cut);
        cr_assert_eq(r->status, 200, "cut %zu: %s", cut, r->body);
        cr_assert_str_eq(r->body, mixed_report, "cut %zu", cut);
    }
    char s[256], want[256];
    stats_body(s, sizeof(s));
    long long events = 3LL * (long long)(len - 1);
    snprintf(want, sizeof(want), "{\"totalRequests\":%lld,\"uniqueUsers\":3,", events);
    cr_assert(strncmp(s, want, strlen(want)) == 0, "%s", s);
    fa_tc_close(c);
    free(req);
    free(c);
    free(r);
}

typedef struct {
    int port, id, ok;
    bool batch;
} racer_t;

static void *racer(void *arg)
{
    racer_t *t = arg;
    fa_tc_t *c = malloc(sizeof(*c));
    fa_tresp_t *r = malloc(sizeof(*r));
    char *body = malloc(100 * 40), req[256];
    if (!fa_tc_connect(c, t->port))
        return NULL;
    for (int round = 0; round < 50; round++) {
        if (t->batch) {
            size_t len = 0;
            for (int i = 0; i < 100; i++)
                len += (size_t)sprintf(body + len, "{\"userId\":\"r%d_%d\",\"value\":0.5}\n", t->id,
                                       i);
            char head[128];
            int n = snprintf(head, sizeof(head),
                             "POST /events HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", len);
            if (fa_tc_send(c, head, (size_t)n) && fa_tc_send(c, body, len) &&
                fa_tc_read(c, r, false) && r->status == 200 &&
                strncmp(r->body, "{\"accepted\":100,", 16) == 0)
                t->ok += 100;
        } else {
            char user[32];
            snprintf(user, sizeof(user), "s%d", t->id);
            fa_tc_event(req, sizeof(req), user, "0.5");
            if (fa_tc_send(c, req, strlen(req)) && fa_tc_read(c, r, false) && r->status == 200)
                t->ok++;
        }
    }
    fa_tc_close(c);
    free(c);
    free(r);
    free(body);
    return NULL;
}

Test(batch, batches_race_single_events_exactly)
{
    racer_t t[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (racer_t){.port = d.port, .id = i, .batch = i % 2 == 0};
        pthread_create(&th[i], NULL, racer, &t[i]);
    }
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok += t[i].ok;
    }
    cr_assert_eq(ok, 2 * 50 * 100 + 2 * 50);
    char s[256], want[256];
    stats_body(s, sizeof(s));
    snprintf(want, sizeof(want), "{\"totalRequests\":%d,\"uniqueUsers\":202,\"sum\":%d,", ok,
             ok / 2);
    cr_assert(strncmp(s, want, strlen(want)) == 0, "%s (want %s)", s, want);
}
