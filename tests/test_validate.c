/*
 * test_validate.c — the validate stage's number checks, in process (tests/conf/stages.yaml): a
 * number field without bounds is only checked for finiteness, with or without a conversion.
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

TestSuite(validate, .init = setup, .fini = teardown, .timeout = 60);

/* POSTs {"v":<number>} to path and returns the response's status; its body into body. */
static int post(const char *path, const char *number, char *body, size_t bodylen)
{
    static char req[4096];
    char json[2048];
    snprintf(json, sizeof(json), "{\"v\":%s}", number);
    snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\nContent-Length: %zu\r\n\r\n%s", path,
             strlen(json), json);
    int fd = fa_inproc_connect(&ip);
    cr_assert_geq(fd, 0);
    char *out = NULL;
    size_t len = 0, cap = 0;
    cr_assert(fa_inproc_send(&ip, fd, req, strlen(req), &out, &len, &cap));
    fa_inproc_run(&ip, fd, &out, &len, &cap);
    fa_inproc_hangup(&ip, fd);
    cr_assert_gt(len, 12, "no response to %s", number);
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
