/*
 * test_respond.c — respond stages without substitutions, answered from a response prebuilt at
 * load (fa_resp_fixed_t): every byte but the Date line as fa_req_respond writes it, for each way
 * the request changes the answer (HEAD, HTTP/1.0 keep-alive, Connection: close, a 204).
 */
#include <criterion/criterion.h>

#include "support/inproc.h"

#include "alloc.h"
#include "log.h"

#include <fcntl.h>
#include <stdio.h>
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

/* Sends req on a new connection and returns everything it received, each Date value replaced
 * by "X" (after checking it has the IMF-fixdate length); *eof tells whether the server closed. */
static char *exchange(const char *req, bool *eof)
{
    int fd = fa_inproc_connect(&ip);
    cr_assert_geq(fd, 0);
    char *out = NULL;
    size_t len = 0, cap = 0;
    cr_assert(fa_inproc_send(&ip, fd, req, strlen(req), &out, &len, &cap));
    *eof = fa_inproc_run(&ip, fd, &out, &len, &cap);
    fa_inproc_hangup(&ip, fd);
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
