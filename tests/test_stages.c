/*
 * test_stages.c — built-in stages in process, on tests/conf/stages.yaml:
 *   respond   stages without substitutions, answered from a response prebuilt at load
 *             (fa_resp_fixed_t): every byte but the Date line as fa_req_respond writes it, for
 *             each way the request changes the answer (HEAD, HTTP/1.0 keep-alive, Connection:
 *             close, a 204);
 *   validate  number checks: a number field without bounds is only checked for finiteness, with
 *             or without a conversion; integer and string fields, whose usual values are passed
 *             on what the tokenizer recorded (plain ASCII, no exponent) and the rest fully checked.
 */
#include <criterion/criterion.h>

#include "support/inproc.h"

#include "alloc.h"
#include "log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static fa_inproc_t ip;

static void setup(void)
{
    char err[1024];
    fa_log_set_fd(open("/dev/null", O_WRONLY | O_CLOEXEC));
    cr_assert(fa_inproc_init(&ip, "tests/conf/stages.yaml", NULL, 0, 1000, err, sizeof(err)),
              "%s", err);
}

static void teardown(void)
{
    cr_expect_eq(fa_inproc_fini(&ip), 0, "futures still live at the end");
}

TestSuite(respond, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(validate, .init = setup, .fini = teardown, .timeout = 60);

/* Sends req on a new connection and returns everything it received (*len bytes, fa_free it);
 * *eof tells whether the server closed. */
static char *exchange_raw(const char *req, size_t *len, bool *eof)
{
    int fd = fa_inproc_connect(&ip);
    cr_assert_geq(fd, 0);
    char *out = NULL;
    size_t cap = 0;
    *len = 0;
    cr_assert(fa_inproc_send(&ip, fd, req, strlen(req), &out, len, &cap));
    *eof = fa_inproc_run(&ip, fd, &out, len, &cap);
    fa_inproc_hangup(&ip, fd);
    return out;
}

/* Sends req on a new connection and returns everything it received, each Date value replaced
 * by "X" (after checking it has the IMF-fixdate length); *eof tells whether the server closed. */
static char *exchange(const char *req, bool *eof)
{
    size_t len;
    char *out = exchange_raw(req, &len, eof);
    char *masked = fa_malloc(len + 1);
    size_t m = 0;
    for (size_t i = 0; i < len;) {
        if (len - i > 6 && memcmp(out + i, "Date: ", 6) == 0) {
            const char *end = memchr(out + i, '\r', len - i);
            cr_assert_not_null(end);
            cr_assert_eq((size_t)(end - (out + i + 6)), 29, "Date: %.*s", (int)(end - out - i), out + i);
            memcpy(masked + m, "Date: X", 7);
            m += 7;
            i = (size_t)(end - out);
        } else {
            masked[m++] = out[i++];
        }
    }
    masked[m] = '\0';
    fa_free(out);
    return masked;
}

static void expect(const char *req, const char *want, bool want_eof)
{
    bool eof;
    char *got = exchange(req, &eof);
    cr_assert_str_eq(got, want, "for %s", req);
    cr_assert_eq(eof, want_eof, "for %s: the connection %s", req, eof ? "closed" : "stayed open");
    fa_free(got);
}

#define HEAD_LINES "Server: fasterapid\r\nDate: X\r\n"

Test(respond, headers_and_text_body)
{
    expect("GET /h HTTP/1.1\r\nHost: t\r\n\r\n",
           "HTTP/1.1 202 Accepted\r\n" HEAD_LINES "Content-Length: 6\r\nContent-Type: text/plain\r\n"
           "Cache-Control: no-store\r\nX-Two: a b\r\n\r\nhello\n",
           false);
}

Test(respond, head_has_the_length_but_no_body)
{
    expect("HEAD /h HTTP/1.1\r\n\r\n",
           "HTTP/1.1 202 Accepted\r\n" HEAD_LINES "Content-Length: 6\r\nContent-Type: text/plain\r\n"
           "Cache-Control: no-store\r\nX-Two: a b\r\n\r\n",
           false);
}

Test(respond, no_content)
{
    expect("GET /e HTTP/1.1\r\n\r\n", "HTTP/1.1 204 No Content\r\n" HEAD_LINES "Content-Length: 0\r\n\r\n",
           false);
}

Test(respond, json_over_http_1_0_keep_alive_and_close)
{
    expect("GET /j HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
           "HTTP/1.1 200 OK\r\n" HEAD_LINES "Content-Length: 20\r\nContent-Type: application/json\r\n"
           "Connection: keep-alive\r\n\r\n{\"status\":\"healthy\"}",
           false);
    expect("GET /j HTTP/1.1\r\nConnection: close\r\n\r\n",
           "HTTP/1.1 200 OK\r\n" HEAD_LINES "Content-Length: 20\r\nContent-Type: application/json\r\n"
           "Connection: close\r\n\r\n{\"status\":\"healthy\"}",
           true);
}

Test(respond, pipelined_answers_in_order)
{
    expect("GET /e HTTP/1.1\r\n\r\nGET /j HTTP/1.1\r\n\r\nHEAD /e HTTP/1.1\r\n\r\n",
           "HTTP/1.1 204 No Content\r\n" HEAD_LINES "Content-Length: 0\r\n\r\n"
           "HTTP/1.1 200 OK\r\n" HEAD_LINES "Content-Length: 20\r\nContent-Type: application/json\r\n"
           "\r\n{\"status\":\"healthy\"}"
           "HTTP/1.1 204 No Content\r\n" HEAD_LINES "Content-Length: 0\r\n\r\n",
           false);
}

/* ---- validate ---- */

/* POSTs {"v":<value>} to path and returns the response's status; its body into body. */
static int post(const char *path, const char *value, char *body, size_t bodylen)
{
    static char req[4096];
    char json[2048];
    snprintf(json, sizeof(json), "{\"v\":%s}", value);
    snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\nContent-Length: %zu\r\n\r\n%s", path,
             strlen(json), json);
    size_t len;
    bool eof;
    char *out = exchange_raw(req, &len, &eof);
    cr_assert_gt(len, 12, "no response to %s", value);
    int status = atoi(out + 9);
    const char *b = strstr(out, "\r\n\r\n");
    snprintf(body, bodylen, "%.*s", b ? (int)(len - (size_t)(b + 4 - out)) : 0, b ? b + 4 : "");
    fa_free(out);
    return status;
}

static const char inf_answer[] =
    "{\"error\":\"validation failed\",\"fields\":[{\"field\":\"v\",\"error\":\"must be a finite number\"}]}";

Test(validate, unbounded_numbers_must_be_finite)
{
    static char digits[400], number[420];
    char body[512];
    cr_assert_eq(post("/num", "123.5", body, sizeof(body)), 200);
    cr_assert_eq(post("/num", "-0", body, sizeof(body)), 200);
    cr_assert_eq(post("/num", "1e308", body, sizeof(body)), 200);
    cr_assert_eq(post("/num", "1E-400", body, sizeof(body)), 200, "underflow is a finite 0");
    cr_assert_eq(post("/num", "1e999", body, sizeof(body)), 400);
    cr_assert_str_eq(body, inf_answer);
    cr_assert_eq(post("/num", "-2.5E+309", body, sizeof(body)), 400);
    cr_assert_str_eq(body, inf_answer);
    /* Long numbers without an exponent, either side of 300 characters and of DBL_MAX. */
    for (size_t n = 298; n <= 312; n++) {
        memset(digits, '9', n);
        digits[n] = '\0';
        snprintf(number, sizeof(number), "-%s.5", digits);
        int want = n + 1 > 309 ? 400 : 200; /* 10^309 and beyond overflow a double */
        cr_assert_eq(post("/num", digits, body, sizeof(body)), want, "%zu nines", n);
        cr_assert_eq(post("/num", number, body, sizeof(body)), want, "-%zu nines .5", n);
        if (want == 400)
            cr_assert_str_eq(body, inf_answer);
    }
}

Test(validate, bounded_numbers_are_compared)
{
    char body[512];
    cr_assert_eq(post("/bounded", "0.5", body, sizeof(body)), 200);
    cr_assert_eq(post("/bounded", "-1.5", body, sizeof(body)), 400);
    cr_assert_str_eq(body, "{\"error\":\"validation failed\",\"fields\":[{\"field\":\"v\",\"error\":\"must be at least -1\"}]}");
    cr_assert_eq(post("/bounded", "1e301", body, sizeof(body)), 400);
    cr_assert_eq(post("/bounded", "1e999", body, sizeof(body)), 400);
    cr_assert_str_eq(body, inf_answer);
}

/* The answer to a body whose field v fails with why. */
static void expect_invalid(const char *path, const char *value, const char *why)
{
    char body[512], want[256];
    snprintf(want, sizeof(want),
             "{\"error\":\"validation failed\",\"fields\":[{\"field\":\"v\",\"error\":\"%s\"}]}", why);
    cr_assert_eq(post(path, value, body, sizeof(body)), 400, "%s", value);
    cr_assert_str_eq(body, want, "%s", value);
}

Test(validate, integers_have_no_fraction_or_exponent)
{
    static char digits[400];
    char body[512];
    cr_assert_eq(post("/int", "0", body, sizeof(body)), 200);
    cr_assert_eq(post("/int", "-42", body, sizeof(body)), 200);
    cr_assert_eq(post("/int", " 7 ", body, sizeof(body)), 200);
    expect_invalid("/int", "1.0", "must be an integer");
    expect_invalid("/int", "1e2", "must be an integer");
    expect_invalid("/int", "-1.5E+2", "must be an integer");
    expect_invalid("/int", "\"1\"", "must be an integer");
    expect_invalid("/int", "true", "must be an integer");
    expect_invalid("/int", "null", "must be an integer");
    expect_invalid("/int", "[1]", "must be an integer");
    /* Either side of 300 characters (the plain finiteness test) and of DBL_MAX. */
    for (size_t n = 298; n <= 312; n++) {
        memset(digits, '9', n);
        digits[n] = '\0';
        if (n + 1 > 309)
            expect_invalid("/int", digits, "must be a finite number");
        else
            cr_assert_eq(post("/int", digits, body, sizeof(body)), 200, "%zu nines", n);
    }
}

Test(validate, string_lengths_count_code_points)
{
    char body[512];
    cr_assert_eq(post("/str", "\"ab\"", body, sizeof(body)), 200);
    cr_assert_eq(post("/str", "\"abcd\"", body, sizeof(body)), 200);
    expect_invalid("/str", "\"a\"", "must be at least 2 characters long");
    expect_invalid("/str", "\"\"", "must be at least 2 characters long");
    expect_invalid("/str", "\"abcde\"", "must be at most 4 characters long");
    /* Not plain ASCII: raw UTF-8 and escapes count a code point each. */
    cr_assert_eq(post("/str", "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"", body, sizeof(body)), 200,
                 "four 2-byte characters");
    expect_invalid("/str", "\"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\"",
                   "must be at most 4 characters long");
    expect_invalid("/str", "\"\xf0\x9f\x98\x80\"", "must be at least 2 characters long");
    cr_assert_eq(post("/str", "\"\\u00e9\\n\\t\\ud83d\\ude00\"", body, sizeof(body)), 200,
                 "four escapes");
    expect_invalid("/str", "\"\\u0041\"", "must be at least 2 characters long");
    expect_invalid("/str", "\"a\\\\bcd\"", "must be at most 4 characters long");
    expect_invalid("/str", "12", "must be a string");
    expect_invalid("/str", "{}", "must be a string");
    cr_assert_eq(post("/anystr", "\"\"", body, sizeof(body)), 200);
    cr_assert_eq(post("/anystr", "\"caf\xc3\xa9 \\\" x\"", body, sizeof(body)), 200);
    expect_invalid("/anystr", "false", "must be a string");
}

Test(validate, escaped_keys_are_found)
{
    /* A key written with an escape still names the field. */
    static char req[512];
    const char *json = "{\"\\u0076\":\"abc\"}";
    snprintf(req, sizeof(req), "POST /str HTTP/1.1\r\nContent-Length: %zu\r\n\r\n%s", strlen(json),
             json);
    size_t len;
    bool eof;
    char *out = exchange_raw(req, &len, &eof);
    cr_assert_gt(len, 12);
    cr_assert_eq(atoi(out + 9), 200, "%.*s", (int)len, out);
    fa_free(out);
}
