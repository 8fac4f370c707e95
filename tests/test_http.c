/*
 * test_http.c — end-to-end tests of the daemon over real sockets: the 1MRC contract, HTTP/1.1
 * framing (keep-alive, pipelining, 100-continue, chunked bodies, HEAD, HTTP/1.0), every error
 * status, timeouts, the asynchronous pipeline path, and the plain-request fast path answering and
 * reading header fields as llhttp does.
 */
#include <criterion/criterion.h>

#include "support/daemon.h"

#define SLOW_REQ "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static fa_td_t d;

static void start(void)
{
    cr_assert(fa_td_start(&d, "tests/conf/http.yaml", NULL), "daemon did not start; see %s",
              d.log_path);
}

static void stop(void)
{
    int st = fa_td_stop(&d, SIGTERM, 15);
    cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "daemon did not stop cleanly (status %d); see %s", st, d.log_path);
}

TestSuite(http, .init = start, .fini = stop, .timeout = 60);

static int get(const char *raw, fa_tresp_t *r)
{
    return fa_tc_once(d.port, raw, r);
}

Test(http, mrc_contract)
{
    fa_tresp_t r;
    char req[512], h[128];
    cr_assert_eq(get(fa_tc_event(req, sizeof(req), "user_42", "42.5"), &r), 200);
    cr_assert_eq(r.body_len, 0);
    cr_assert(fa_tresp_header(&r, "Content-Length", h, sizeof(h)));
    cr_assert_str_eq(h, "0");
    cr_assert_eq(get(fa_tc_event(req, sizeof(req), "user_7", "-3.25"), &r), 200);
    cr_assert_eq(get(fa_tc_event(req, sizeof(req), "user_42", "0.1"), &r), 200);

    cr_assert_eq(get("GET /stats HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    cr_assert(fa_tresp_header(&r, "Content-Type", h, sizeof(h)));
    cr_assert_str_eq(h, "application/json");
    cr_assert_str_eq(r.body, "{\"totalRequests\":3,\"uniqueUsers\":2,\"sum\":39.35,"
                             "\"avg\":13.116666666666667}");

    cr_assert_eq(get("GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    cr_assert_str_eq(r.body, "{\"status\":\"healthy\"}");
    cr_assert_eq(get("GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", &r), 404);

    cr_assert_eq(get("GET /event HTTP/1.1\r\nHost: t\r\n\r\n", &r), 405);
    cr_assert(fa_tresp_header(&r, "Allow", h, sizeof(h)));
    cr_assert_str_eq(h, "POST");
    cr_assert_eq(get("DELETE /stats HTTP/1.1\r\nHost: t\r\n\r\n", &r), 405);
    cr_assert(fa_tresp_header(&r, "Allow", h, sizeof(h)));
    cr_assert_str_eq(h, "GET, HEAD");
    cr_assert_eq(get("PUT /event HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r), 405);
}

typedef struct {
    const char *desc;
    const char *body;
} bad_event_t;

Test(http, mrc_bad_events_are_400_and_not_counted)
{
    static const bad_event_t bad[] = {
        {"malformed JSON", "{\"userId\":\"u\",\"value\":"},
        {"not an object", "[1,2]"},
        {"empty body", ""},
        {"missing userId", "{\"value\":1}"},
        {"empty userId", "{\"userId\":\"\",\"value\":1}"},
        {"userId not a string", "{\"userId\":5,\"value\":1}"},
        {"missing value", "{\"userId\":\"u\"}"},
        {"value a string", "{\"userId\":\"u\",\"value\":\"1\"}"},
        {"value null", "{\"userId\":\"u\",\"value\":null}"},
        {"value not finite", "{\"userId\":\"u\",\"value\":1e999}"},
        {"NaN", "{\"userId\":\"u\",\"value\":NaN}"},
        {"duplicate key", "{\"userId\":\"u\",\"userId\":\"v\",\"value\":1}"},
        {"invalid UTF-8", "{\"userId\":\"\xc3\x28\",\"value\":1}"},
        {"trailing garbage", "{\"userId\":\"u\",\"value\":1} x"},
    };
    fa_tresp_t r;
    char req[1024];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(req, sizeof(req),
                 "POST /event HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(bad[i].body), bad[i].body);
        cr_expect_eq(get(req, &r), 400, "%s: got %d %s", bad[i].desc, r.status, r.body);
        cr_expect(strstr(r.body, "\"error\"") != NULL, "%s: body %s", bad[i].desc, r.body);
    }
    cr_assert_eq(get("GET /stats HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    cr_assert_str_eq(r.body, "{\"totalRequests\":0,\"uniqueUsers\":0,\"sum\":0,\"avg\":0}");
}

Test(http, keepalive_and_pipelining)
{
    fa_tc_t *c = malloc(sizeof(*c));
    fa_tresp_t r;
    char req[512], all[4096] = "";
    cr_assert(fa_tc_connect(c, d.port));
    for (int i = 0; i < 3; i++) {
        fa_tc_event(req, sizeof(req), "k", "1");
        cr_assert(fa_tc_send(c, req, strlen(req)));
        cr_assert(fa_tc_read(c, &r, false));
        cr_assert_eq(r.status, 200);
    }
    /* three requests in one write, answered in order */
    strcat(all, fa_tc_event(req, sizeof(req), "p", "2"));
    strcat(all, "GET /users/abc HTTP/1.1\r\nHost: t\r\n\r\n");
    strcat(all, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(fa_tc_send(c, all, strlen(all)));
    cr_assert(fa_tc_read(c, &r, false));
    cr_assert_eq(r.status, 200);
    cr_assert(fa_tc_read(c, &r, false));
    cr_assert_str_eq(r.body, "{\"user\":\"abc\"}");
    cr_assert(fa_tc_read(c, &r, false));
    cr_assert_str_eq(r.body, "{\"totalRequests\":4,\"uniqueUsers\":2,\"sum\":5,\"avg\":1.25}");
    fa_tc_close(c);
    free(c);
}

Test(http, expect_100_continue_and_chunked_body)
{
    fa_tc_t *c = malloc(sizeof(*c));
    fa_tresp_t r;
    const char *body = "{\"userId\":\"c\",\"value\":7}";
    char req[512];
    snprintf(req, sizeof(req),
             "POST /event HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: %zu\r\n\r\n",
             strlen(body));
    cr_assert(fa_tc_connect(c, d.port));
    cr_assert(fa_tc_send(c, req, strlen(req)));
    cr_assert(fa_tc_read(c, &r, false));
    cr_assert_eq(r.status, 100);
    cr_assert(fa_tc_send(c, body, strlen(body)));
    cr_assert(fa_tc_read(c, &r, false));
    cr_assert_eq(r.status, 200);

    /* chunked, split in awkward places */
    const char *parts[] = {"POST /event HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                           "5\r\n{\"use", "\r\n", "13\r\nrId\":\"c\",\"value\":3}\r\n", "0\r\n\r\n"};
    for (size_t i = 0; i < 5; i++) {
        cr_assert(fa_tc_send(c, parts[i], strlen(parts[i])));
        usleep(20000);
    }
    cr_assert(fa_tc_read(c, &r, false));
    cr_assert_eq(r.status, 200, "chunked: %d %s", r.status, r.body);
    fa_tc_close(c);
    free(c);
    cr_assert_eq(get("GET /stats HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    cr_assert_str_eq(r.body, "{\"totalRequests\":2,\"uniqueUsers\":1,\"sum\":10,\"avg\":5}");
}

/*
 * A chunked body whose trailer section says "Connection: close": llhttp takes it and parses
 * nothing more on the connection, so the answer says Connection: close and the connection ends
 * there; a request pipelined behind it is not answered (before, it was neither answered nor
 * refused: the client waited for the keep-alive timeout). Found by fuzz_request's differential
 * mode, where the plain-request fast path answered the request behind it and llhttp did not.
 */
Test(http, connection_close_in_a_trailer_ends_the_connection)
{
    fa_tc_t *c = malloc(sizeof(*c));
    fa_tresp_t r;
    static const char req[] = "POST /event HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "18\r\n{\"userId\":\"t\",\"value\":1}\r\n0\r\nConnection: close\r\n\r\n"
                              "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    cr_assert(fa_tc_connect(c, d.port));
    cr_assert(fa_tc_send(c, req, sizeof(req) - 1));
    cr_assert(fa_tc_read(c, &r, false));
    cr_assert_eq(r.status, 200, "%s", r.head);
    char conn[32];
    cr_assert(fa_tresp_header(&r, "Connection", conn, sizeof(conn)), "%s", r.head);
    cr_assert_str_eq(conn, "close");
    cr_assert(fa_tc_closed(c, 5000), "the connection stayed open");
    fa_tc_close(c);
    free(c);
}

typedef struct {
    const char *desc;
    const char *raw;
    int status;
} err_case_t;

Test(http, error_statuses)
{
    static char big_uri[2048], big_hdr[6000], big_body[200];
    memset(big_uri, 'a', sizeof(big_uri));
    memcpy(big_uri, "GET /", 5);
    strcpy(big_uri + 1500, " HTTP/1.1\r\nHost: t\r\n\r\n");
    strcpy(big_hdr, "GET /health HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(big_hdr + strlen(big_hdr), 'b', 5000);
    strcpy(big_hdr + 5040, "\r\n\r\n");
    snprintf(big_body, sizeof(big_body),
             "POST /event HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
    const err_case_t cases[] = {
        {"garbage", "HELLO\r\n\r\n", 400},
        {"CL and TE", "POST /event HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        {"two different CL", "POST /event HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
        {"body over limit", big_body, 413},
        {"URI over limit", big_uri, 414},
        {"headers over limit", big_hdr, 431},
        {"unsupported coding", "POST /event HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
        {"HTTP/2.0", "GET /health HTTP/2.0\r\nHost: t\r\n\r\n", 505},
        {"bad expectation", "POST /event HTTP/1.1\r\nHost: t\r\nExpect: nothing\r\nContent-Length: 0\r\n\r\n", 417},
        {"absolute URI path", "GET health HTTP/1.1\r\nHost: t\r\n\r\n", 400},
        {"two Host headers", "GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
    };
    fa_tresp_t r;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_eq(get(cases[i].raw, &r), cases[i].status, "%s: got %d", cases[i].desc,
                     r.status);
    /* the server goes on */
    cr_assert_eq(get("GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
}

Test(http, head_and_http10)
{
    fa_tresp_t r;
    char h[64];
    cr_assert_eq(get("HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    cr_assert(fa_tresp_header(&r, "Content-Length", h, sizeof(h)));
    cr_assert_str_eq(h, "20");
    cr_assert_eq(r.body_len, 0);

    fa_tc_t *c = malloc(sizeof(*c));
    cr_assert(fa_tc_connect(c, d.port));
    cr_assert(fa_tc_send(c, "GET /health HTTP/1.0\r\n\r\n", 24));
    cr_assert(fa_tc_read(c, &r, false));
    cr_assert_eq(r.status, 200);
    cr_assert(fa_tresp_header(&r, "Connection", h, sizeof(h)));
    cr_assert_str_eq(h, "close");
    cr_assert(fa_tc_closed(c, 2000), "HTTP/1.0 without keep-alive is closed");
    fa_tc_close(c);

    cr_assert(fa_tc_connect(c, d.port));
    const char *ka = "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    cr_assert(fa_tc_send(c, ka, strlen(ka)));
    cr_assert(fa_tc_read(c, &r, false));
    cr_assert(fa_tresp_header(&r, "Connection", h, sizeof(h)));
    cr_assert_str_eq(h, "keep-alive");
    cr_assert(fa_tc_send(c, ka, strlen(ka)));
    cr_assert(fa_tc_read(c, &r, false));
    cr_assert_eq(r.status, 200);
    fa_tc_close(c);
    free(c);
}

Test(http, header_timeout_answers_408)
{
    fa_tc_t *c = malloc(sizeof(*c));
    fa_tresp_t r;
    cr_assert(fa_tc_connect(c, d.port));
    cr_assert(fa_tc_send(c, "GET /health HTTP/1.1\r\nHo", 24));
    cr_assert(fa_tc_read(c, &r, false), "a response before the test's own timeout");
    cr_assert_eq(r.status, 408);
    cr_assert(fa_tc_closed(c, 3000));
    fa_tc_close(c);

    /* a slowloris that trickles bytes is cut off at the header deadline too */
    cr_assert(fa_tc_connect(c, d.port));
    const char *req = "GET /health HTTP/1.1\r\nX-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    bool cut = false;
    for (size_t i = 0; i < strlen(req) && !cut; i++) {
        if (!fa_tc_send(c, req + i, 1))
            cut = true;
        usleep(100000);
        if (fa_tc_closed(c, 0))
            cut = true;
    }
    cr_assert(cut || fa_tc_closed(c, 2000), "trickling client was not cut off");
    fa_tc_close(c);
    free(c);
}

Test(http, path_params_and_body_templates)
{
    fa_tresp_t r;
    cr_assert_eq(get("GET /users/a%22b HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    cr_assert_str_eq(r.body, "{\"user\":\"a%22b\"}");
    const char *echo = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 22\r\n\r\n"
                       "{\"msg\":\"say \\\"hi\\\"\\n\"}";
    cr_assert_eq(get(echo, &r), 200, "%s", r.body);
    cr_assert_str_eq(r.body, "{\"got\":\"say \\\"hi\\\"\\n\"}");
}

Test(http, async_stage_and_disconnect)
{
    fa_tresp_t r;
    cr_assert_eq(get("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    cr_assert_str_eq(r.body, "slow done");
    /* a client that leaves while its request waits: the worker cancels and goes on */
    for (int i = 0; i < 20; i++) {
        fa_tc_t c;
        cr_assert(fa_tc_connect(&c, d.port));
        cr_assert(fa_tc_send(&c, SLOW_REQ, strlen(SLOW_REQ)));
        fa_tc_close(&c);
    }
    cr_assert_eq(get("GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    usleep(700000); /* let the abandoned timers' time pass */
    cr_assert_eq(get("GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
}

typedef struct {
    const char *desc, *body;
    int status;
    const char *answer;
} strict_case_t;

Test(http, validate_rules_end_to_end)
{
    static const strict_case_t cases[] = {
        {"all good", "{\"name\":\"abc\",\"n\":3,\"color\":\"red\",\"tags\":[1],\"ok\":true}", 201,
         "{\"name\":\"abc\",\"n\":\"3\"}"},
        {"every rule broken",
         "{\"name\":\"A\",\"n\":1.5,\"color\":\"blue\",\"tags\":[1,2,3],\"ok\":1,\"x\":0}", 400,
         "{\"error\":\"validation failed\",\"fields\":["
         "{\"field\":\"name\",\"error\":\"must be at least 2 characters long\"},"
         "{\"field\":\"name\",\"error\":\"does not match the pattern\"},"
         "{\"field\":\"n\",\"error\":\"must be an integer\"},"
         "{\"field\":\"color\",\"error\":\"is not one of the allowed values\"},"
         "{\"field\":\"tags\",\"error\":\"must have at most 2 elements\"},"
         "{\"field\":\"ok\",\"error\":\"must be a boolean\"},"
         "{\"field\":\"x\",\"error\":\"is not allowed\"}]}"},
        {"missing and out of range", "{\"n\":11}", 400,
         "{\"error\":\"validation failed\",\"fields\":["
         "{\"field\":\"name\",\"error\":\"is required\"},"
         "{\"field\":\"n\",\"error\":\"must be at most 10\"}]}"},
        {"code points, not bytes", "{\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\",\"n\":0}",
         400,
         "{\"error\":\"validation failed\",\"fields\":["
         "{\"field\":\"name\",\"error\":\"does not match the pattern\"}]}"},
        {"too deep", "{\"name\":\"ab\",\"n\":1,\"tags\":[[[1]]]}", 400, NULL},
    };
    fa_tresp_t r;
    char req[1024];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(req, sizeof(req), "POST /strict HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(cases[i].body), cases[i].body);
        cr_expect_eq(get(req, &r), cases[i].status, "%s: %d %s", cases[i].desc, r.status, r.body);
        if (cases[i].answer)
            cr_expect_str_eq(r.body, cases[i].answer, "%s", cases[i].desc);
    }
}

Test(http, on_error_answers_and_absolute_form_targets)
{
    fa_tresp_t r;
    cr_assert_eq(get("POST /tolerant/7 HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\n{\"n\":\"x\"}",
                     &r),
                 422);
    cr_assert_str_eq(r.body, "{\"id\":\"7\",\"problem\":\"n must be an integer\"}");
    cr_assert_eq(get("POST /tolerant/7 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nnope", &r),
                 422);
    char big[512];
    snprintf(big, sizeof(big),
             "POST /tolerant/7 HTTP/1.1\r\nHost: t\r\nContent-Length: 80\r\n\r\n{\"n\":\"%074d\"}", 0);
    cr_assert_eq(get(big, &r), 400, "default answer for a 413");
    cr_assert_str_eq(r.body, "no: request body too large for this route");
    cr_assert_eq(get("POST /tolerant/7 HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\n{\"n\":1}", &r),
                 204);

    cr_assert_eq(get("GET http://example.com/users/x?y=1 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    cr_assert_str_eq(r.body, "{\"user\":\"x\"}");
    cr_assert_eq(get("GET HTTPS://example.com?q HTTP/1.1\r\nHost: t\r\n\r\n", &r), 404);
}

Test(http, pipelined_requests_behind_a_waiting_one_keep_its_bytes)
{
    /* More pipelined bytes than the read buffer holds (4 KiB in the test config) arrive while the
     * first request waits on a timer: they must neither overwrite what that request still reads
     * (its path parameter) nor be refused as a header section too large. */
    fa_tc_t *c = malloc(sizeof(*c));
    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert(fa_tc_connect(c, d.port));
    const char *first = "GET /slowecho/abc?x=1 HTTP/1.1\r\nHost: t\r\n\r\n";
    const char *next = "GET /users/u HTTP/1.1\r\nHost: t\r\n\r\n";
    size_t n = 300, flen = strlen(first), nlen = strlen(next);
    char *all = malloc(flen + n * nlen);
    memcpy(all, first, flen);
    for (size_t i = 0; i < n; i++)
        memcpy(all + flen + i * nlen, next, nlen);
    cr_assert(fa_tc_send(c, all, flen + n * nlen));
    cr_assert(fa_tc_read(c, r, false));
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(r->body, "{\"id\":\"abc\",\"q\":\"x=1\"}");
    for (size_t i = 0; i < n; i++) {
        cr_assert(fa_tc_read(c, r, false), "response %zu", i);
        cr_assert_eq(r->status, 200, "response %zu: %d", i, r->status);
        cr_assert_str_eq(r->body, "{\"user\":\"u\"}");
    }
    fa_tc_close(c);
    free(all);
    free(c);
    free(r);
}

/*
 * The plain-request fast path (fa__http_parse_fast) takes a request that arrives whole; one whose
 * first byte arrives alone is begun, so parsed to its end, by llhttp. Each case must be answered
 * the same either way (status, Connection, body), and, where a status is given, with that status.
 * The cases sit on the edges of the fast path's scans: a header section that ends at the end of
 * what was read, lines across its 64-byte windows, every byte a target may or may not hold, tabs,
 * obs-fold, bare LFs and CRs, long names and lines, the header count, Content-Length digits.
 */
typedef struct {
    const char *desc;
    const char *raw;
    size_t len;
    int status; /* 0: whatever llhttp answers */
} same_case_t;

#define SAME(desc, raw, status) {desc, raw, sizeof(raw) - 1, status}

/* Sends raw to port on a new connection, whole or in two writes after its first byte, and reads
 * one answer into out as "status connection body" ("none" if none came). */
static void answer(int port, const char *raw, size_t len, bool split, char *out, size_t cap)
{
    fa_tc_t *c = malloc(sizeof(*c));
    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert(fa_tc_connect(c, port));
    if (split) {
        cr_assert(fa_tc_send(c, raw, 1));
        usleep(10000); /* the daemon reads the first byte alone, and llhttp begins the request */
        cr_assert(fa_tc_send(c, raw + 1, len - 1));
    } else {
        cr_assert(fa_tc_send(c, raw, len));
    }
    char conn[64] = "";
    if (fa_tc_read(c, r, strncmp(raw, "HEAD ", 5) == 0)) {
        fa_tresp_header(r, "Connection", conn, sizeof(conn));
        snprintf(out, cap, "%d %s %.*s", r->status, conn, (int)r->body_len, r->body);
    } else {
        snprintf(out, cap, "none");
    }
    fa_tc_close(c);
    free(c);
    free(r);
}

static void expect_same_at(int port, const char *desc, const char *raw, size_t len, int status)
{
    char whole[2048], split[2048];
    answer(port, raw, len, false, whole, sizeof(whole));
    answer(port, raw, len, true, split, sizeof(split));
    cr_expect_str_eq(whole, split, "%s: whole: %s; split: %s", desc, whole, split);
    if (status)
        cr_expect_eq(atoi(whole), status, "%s: %s", desc, whole);
}

static void expect_same(const char *desc, const char *raw, size_t len, int status)
{
    expect_same_at(d.port, desc, raw, len, status);
}

/* A request of line and count fields "X-k: k" into raw (cap bytes); returns its length. */
static int with_fields(char *raw, size_t cap, const char *line, int count)
{
    int n = snprintf(raw, cap, "%s\r\n", line);
    for (int k = 0; k < count; k++)
        n += snprintf(raw + n, cap - (size_t)n, "X-%d: %d\r\n", k, k);
    return n + snprintf(raw + n, cap - (size_t)n, "\r\n");
}

Test(http, the_fast_path_answers_as_llhttp_does)
{
    static const same_case_t cases[] = {
        SAME("the header section ends where the read does",
             "GET /users/abc HTTP/1.1\r\nHost: t\r\n\r\n", 200),
        SAME("no header at all", "GET /users/abc HTTP/1.1\r\n\r\n", 200),
        SAME("HEAD", "HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n", 200),
        SAME("a query", "GET /slowecho/abc?x=1&y=%20:@/?z HTTP/1.1\r\nHost: t\r\n\r\n", 200),
        SAME("an empty query", "GET /slowecho/abc? HTTP/1.1\r\nHost: t\r\n\r\n", 200),
        SAME("Content-Length with leading zeros",
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0019\r\n\r\n"
             "{\"msg\":\"zeros ok!\"}",
             200),
        SAME("Content-Length of 15 digits",
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 000000000000019\r\n\r\n"
             "{\"msg\":\"zeros ok!\"}",
             200),
        SAME("Content-Length of 16 digits",
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0000000000000019\r\n\r\n"
             "{\"msg\":\"zeros ok!\"}",
             0),
        SAME("Content-Length: +19",
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +19\r\n\r\n"
             "{\"msg\":\"zeros ok!\"}",
             0),
        SAME("Content-Length:19, no space",
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length:19\r\n\r\n"
             "{\"msg\":\"zeros ok!\"}",
             200),
        SAME("a shorter Content-Length, the rest pipelined",
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"
             "GET /health HTTP/1.1\r\n\r\n",
             0),
        SAME("the shape wrk sends: its lines cross a 64-byte window",
             "POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n"
             "Content-Length: 19\r\n\r\n{\"msg\":\"zeros ok!\"}",
             200),
        SAME("the same in another order",
             "POST /echo HTTP/1.1\r\nContent-Length: 19\r\nHost: 127.0.0.1:8080\r\n"
             "Content-Type: application/json\r\n\r\n{\"msg\":\"zeros ok!\"}",
             200),
        SAME("obs-fold", "GET /health HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 0),
        SAME("obs-fold with a tab", "GET /health HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 0),
        SAME("a line starting with a tab", "GET /health HTTP/1.1\r\n\tX: a\r\n\r\n", 0),
        SAME("LF line ends", "GET /health HTTP/1.1\nHost: t\n\n", 0),
        SAME("a lone LF in the header section", "GET /health HTTP/1.1\r\nHost: t\n\r\n", 0),
        SAME("a lone LF ending it", "GET /health HTTP/1.1\r\nHost: t\r\n\n", 0),
        SAME("a lone CR in a value", "GET /health HTTP/1.1\r\nX: a\rb\r\n\r\n", 0),
        SAME("a tab before the value", "GET /health HTTP/1.1\r\nX:\tv\r\n\r\n", 200),
        SAME("tabs in the value", "GET /health HTTP/1.1\r\nX: a\tb \t c\r\n\r\n", 200),
        SAME("a value ending in a tab", "GET /health HTTP/1.1\r\nX: v\t\r\n\r\n", 0),
        SAME("a value ending in a space", "GET /health HTTP/1.1\r\nX: v \r\n\r\n", 0),
        SAME("an empty value", "GET /health HTTP/1.1\r\nX:\r\n\r\n", 0),
        SAME("a value of whitespace", "GET /health HTTP/1.1\r\nX: \t \r\n\r\n", 0),
        SAME("obs-text in a value", "GET /health HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n", 0),
        SAME("DEL in a value", "GET /health HTTP/1.1\r\nX: a\x7f\r\n\r\n", 0),
        SAME("a control byte in a value", "GET /health HTTP/1.1\r\nX: a\x01\r\n\r\n", 0),
        SAME("every tchar in a name",
             "GET /health HTTP/1.1\r\nX-A!#$%&'*+.^_`|~09az: v\r\n\r\n", 200),
        SAME("a space before the ':'", "GET /health HTTP/1.1\r\nX : v\r\n\r\n", 0),
        SAME("a '(' in a name", "GET /health HTTP/1.1\r\nX(: v\r\n\r\n", 0),
        SAME("no ':'", "GET /health HTTP/1.1\r\nX v\r\n\r\n", 0),
        SAME("an empty name", "GET /health HTTP/1.1\r\n: v\r\n\r\n", 0),
        SAME("two ':' in a value", "GET /health HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 200),
        SAME("two Host headers", "GET /health HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400),
        SAME("Connection: close", "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n", 200),
        SAME("Connection: Keep-Alive",
             "GET /health HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n", 200),
        SAME("Connection: keep-alive, close",
             "GET /health HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", 200),
        SAME("Upgrade", "GET /health HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n", 0),
        SAME("Transfer-Encoding",
             "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
             "13\r\n{\"msg\":\"zeros ok!\"}\r\n0\r\n\r\n",
             200),
        SAME("Expect: 100-continue with the body",
             "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 19\r\n\r\n"
             "{\"msg\":\"zeros ok!\"}",
             100),
        SAME("HTTP/1.0", "GET /health HTTP/1.0\r\n\r\n", 200),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_same(cases[i].desc, cases[i].raw, cases[i].len, cases[i].status);

    /* Every byte in a target, in the path and in the query. */
    char raw[4096], desc[64];
    for (int b = 1; b < 256; b++) {
        int n = snprintf(raw, sizeof(raw), "GET /users/a%cb HTTP/1.1\r\nHost: t\r\n\r\n", b);
        snprintf(desc, sizeof(desc), "byte 0x%02x in a path", b);
        expect_same(desc, raw, (size_t)n, 0);
        n = snprintf(raw, sizeof(raw), "GET /users/a?%c HTTP/1.1\r\nHost: t\r\n\r\n", b);
        snprintf(desc, sizeof(desc), "byte 0x%02x in a query", b);
        expect_same(desc, raw, (size_t)n, 0);
    }
    /* Long names and lines: a line that no 64-byte window holds. */
    char name[80], value[200];
    memset(name, 'N', 70), name[70] = 0;
    memset(value, 'v', 150), value[150] = 0;
    int n = snprintf(raw, sizeof(raw), "GET /health HTTP/1.1\r\n%s: v\r\nHost: t\r\n\r\n", name);
    expect_same("a name of 70 bytes", raw, (size_t)n, 200);
    n = snprintf(raw, sizeof(raw), "GET /health HTTP/1.1\r\n%s v\r\nHost: t\r\n\r\n", name);
    expect_same("a name of 70 bytes and no ':'", raw, (size_t)n, 0);
    n = snprintf(raw, sizeof(raw), "GET /health HTTP/1.1\r\nX: %s\r\nHost: t\r\n\r\n", value);
    expect_same("a line of 155 bytes", raw, (size_t)n, 200);
    n = snprintf(raw, sizeof(raw), "GET /health HTTP/1.1\r\nX: %s\t%s\r\n\r\n", value, value);
    expect_same("a tab in a long line", raw, (size_t)n, 200);
    /* The section ends where the read does, past a first window. */
    n = snprintf(raw, sizeof(raw), "GET /users/abc HTTP/1.1\r\nHost: t\r\nX-Pad: %.60s\r\n\r\n",
                 value);
    expect_same("a longer header section ending where the read does", raw, (size_t)n, 200);
    /* Lines across every position of the window boundary. */
    for (int pad = 0; pad < 70; pad++) {
        n = snprintf(raw, sizeof(raw),
                     "POST /echo HTTP/1.1\r\nX-Pad: %.*s\r\nHost: t\r\n"
                     "Content-Type: application/json\r\nContent-Length: 19\r\n\r\n"
                     "{\"msg\":\"zeros ok!\"}",
                     pad + 1, value);
        snprintf(desc, sizeof(desc), "padding of %d", pad + 1);
        expect_same(desc, raw, (size_t)n, 200);
    }
    /* As many header fields as the fast path takes, and one more. */
    for (int count = 31; count <= 33; count++) {
        n = with_fields(raw, sizeof(raw), "GET /health HTTP/1.1", count);
        snprintf(desc, sizeof(desc), "%d header fields", count);
        expect_same(desc, raw, (size_t)n, 200);
    }
    /* A target over limits.uri_bytes (1k here). */
    static char uri[1101];
    memset(uri, 'u', sizeof(uri) - 1);
    n = snprintf(raw, sizeof(raw), "GET /users/%s HTTP/1.1\r\nHost: t\r\n\r\n", uri);
    expect_same("a target over the limit", raw, (size_t)n, 414);
}

/*
 * The same, against a route that answers with the header views it was given (and the path, the
 * query and the body): whichever parser built them, they must read the same.
 */
static fa_td_t dv;

static void start_views(void)
{
    cr_assert(fa_td_start(&dv, "tests/conf/views.yaml", NULL), "daemon did not start; see %s",
              dv.log_path);
}

static void stop_views(void)
{
    int st = fa_td_stop(&dv, SIGTERM, 15);
    cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "daemon did not stop cleanly (status %d); see %s", st, dv.log_path);
}

TestSuite(http_views, .init = start_views, .fini = stop_views, .timeout = 60);

Test(http_views, the_fast_path_reads_the_header_fields_as_llhttp_does)
{
    static const same_case_t cases[] = {
        SAME("plain", "GET /v/a HTTP/1.1\r\nHost: h\r\nX: x1\r\nY: y1\r\n\r\n", 200),
        SAME("names in any case", "GET /v/a HTTP/1.1\r\nhOsT: h\r\nx: x1\r\nY: y1\r\n\r\n", 200),
        SAME("no space after ':'", "GET /v/a HTTP/1.1\r\nHost:h\r\nX:x1\r\n\r\n", 200),
        SAME("spaces and tabs after ':'",
             "GET /v/a HTTP/1.1\r\nHost: \t h\r\nX:\t\tx1\r\n\r\n", 200),
        SAME("inner whitespace", "GET /v/a HTTP/1.1\r\nX: a\tb  c\r\nY: d e\r\n\r\n", 200),
        SAME("':' in values", "GET /v/a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX: a:b:c\r\n\r\n", 200),
        SAME("a query", "GET /v/a?x=1&y=%20:@/?z HTTP/1.1\r\nX: q\r\n\r\n", 200),
        SAME("the first of two", "GET /v/a HTTP/1.1\r\nX: one\r\nX: two\r\n\r\n", 200),
        SAME("Connection", "GET /v/a HTTP/1.1\r\nConnection: keep-alive\r\nX: c\r\n\r\n", 200),
        SAME("a body",
             "POST /v/a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n"
             "Content-Length: 19\r\nX: b\r\n\r\n{\"msg\":\"zeros ok!\"}",
             200),
        SAME("a body, Content-Length with leading zeros",
             "POST /v/a HTTP/1.1\r\nContent-Length: 00019\r\nHost: h\r\n\r\n"
             "{\"msg\":\"zeros ok!\"}",
             200),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_same_at(dv.port, cases[i].desc, cases[i].raw, cases[i].len, cases[i].status);

    char raw[4096], desc[64], value[200];
    memset(value, 'v', 150), value[150] = 0;
    /* Each line across every position of the 64-byte windows, and lines longer than one. */
    for (int pad = 0; pad < 70; pad++) {
        int n = snprintf(raw, sizeof(raw),
                         "GET /v/a HTTP/1.1\r\nP: %.*s\r\nHost: 127.0.0.1:8080\r\nX: %.*s\r\n"
                         "Y: y\r\n\r\n",
                         pad + 1, value, 70 - pad, value);
        snprintf(desc, sizeof(desc), "padding of %d", pad + 1);
        expect_same_at(dv.port, desc, raw, (size_t)n, 200);
    }
    char name[71];
    memset(name, 'n', 70), name[70] = 0;
    int n = snprintf(raw, sizeof(raw), "GET /v/a HTTP/1.1\r\n%s: long name\r\nX: %s\r\n\r\n",
                     name, value);
    expect_same_at(dv.port, "a name of 70 bytes", raw, (size_t)n, 200);
    /* 32 fields, as many as the fast path takes, and 33. */
    for (int count = 32; count <= 33; count++) {
        n = with_fields(raw, sizeof(raw), "GET /v/a HTTP/1.1", count);
        snprintf(desc, sizeof(desc), "%d header fields", count);
        expect_same_at(dv.port, desc, raw, (size_t)n, 200);
    }
}
