/*
 * bench_llhttp.c — llhttp (Debian's sources, as built into the daemon) parsing the 1MRC request.
 *
 *   http.llhttp_1mrc         the POST /event request with the headers a load generator sends,
 *                            callbacks that only record spans (what lib/http.c's cost is on top of)
 *   http.llhttp_1mrc_x16     16 of them pipelined in one buffer, per request
 * Median of 7 runs.
 */
#include "bench.h"
#include <llhttp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char req[] = "POST /event HTTP/1.1\r\n"
                          "Host: 127.0.0.1:8080\r\n"
                          "User-Agent: loadgen/1.0\r\n"
                          "Content-Type: application/json\r\n"
                          "Content-Length: 33\r\n"
                          "\r\n"
                          "{\"userId\":\"user_42\",\"value\":42.5}";

static size_t spans, messages;

static int on_span(llhttp_t *p, const char *at, size_t len)
{
    (void)p, (void)at;
    spans += len;
    return 0;
}

static int on_complete(llhttp_t *p)
{
    (void)p;
    messages++;
    return 0;
}

int main(void)
{
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_url = on_span;
    s.on_header_field = on_span;
    s.on_header_value = on_span;
    s.on_body = on_span;
    s.on_message_complete = on_complete;

    size_t one = sizeof(req) - 1;
    char *x16 = malloc(one * 16);
    for (int i = 0; i < 16; i++)
        memcpy(x16 + i * one, req, one);

    const struct {
        const char *name;
        const char *buf;
        size_t len;
        unsigned per;
    } cases[] = {{"http.llhttp_1mrc", req, one, 1}, {"http.llhttp_1mrc_x16", x16, one * 16, 16}};
    for (size_t c = 0; c < 2; c++) {
        double runs[7];
        unsigned iters = 2000000 / cases[c].per;
        for (int r = 0; r < 7; r++) {
            llhttp_t p;
            double t0 = bench_now_ns();
            for (unsigned i = 0; i < iters; i++) {
                llhttp_init(&p, HTTP_REQUEST, &s);
                if (llhttp_execute(&p, cases[c].buf, cases[c].len) != HPE_OK)
                    return 1;
            }
            runs[r] = (bench_now_ns() - t0) / ((double)iters * cases[c].per);
        }
        qsort(runs, 7, sizeof(double), bench_cmp_double);
        printf("bench: %s %.1f ns/op\n", cases[c].name, runs[3]);
    }
    if (messages == 0 || spans == 0)
        return 1;
    free(x16);
    return 0;
}
