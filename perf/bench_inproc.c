/*
 * bench_inproc.c — the whole request path in one process: request bytes in, response bytes out.
 *
 * A worker built by tests/support/inproc (the shipped config, its own loop, scheduler and
 * aggregator) serves one end of an AF_UNIX socketpair through the real connection code (llhttp
 * glue, router, pipeline, response writing, timers); the benchmark writes a request into the other
 * end, turns the loop once, and reads the whole response back. No TCP, no second process: what is
 * left is this daemon's own work plus two socketpair writes and reads per request.
 *
 *   inproc.event      POST /event with the 1MRC body (75,000 users cycling): 200, empty body
 *   inproc.stats      GET /stats: the four fields
 *   inproc.event_x16  16 POST /event pipelined in one write, per request
 * ITERS=N sets the iterations per run (default 200,000); ONLY_EVENT=1 runs only the first (for
 * valgrind --tool=callgrind). Median of 7 runs, of wall time (mostly the four socketpair system calls per exchange) and of
 * user CPU time (getrusage: the daemon's own code, the figure to compare with nginx's user time).
 */
#include "bench.h"
#include "support/inproc.h"
#include "worker.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double user_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec * 1e9 + (double)ru.ru_utime.tv_usec * 1e3;
}

static char reqs[75000][160];
static size_t lens[75000];
static char rbuf[1 << 16];

/* One write of n requests, one loop turn, then read until n responses arrived. */
static int exchange(fa_inproc_t *ip, int fd, const char *req, size_t len, unsigned n)
{
    if (write(fd, req, len) != (ssize_t)len)
        return -1;
    unsigned seen = 0;
    while (seen < n) {
        ev_run(ip->worker.loop, EVRUN_NOWAIT);
        ssize_t got = read(fd, rbuf, sizeof(rbuf));
        if (got <= 0)
            continue;
        for (ssize_t i = 0; i + 8 < got; i++)
            if (rbuf[i] == 'H' && memcmp(rbuf + i, "HTTP/1.1 ", 9) == 0)
                seen++;
    }
    return (int)seen;
}

static void bench(fa_inproc_t *ip, int fd, const char *name, int kind, unsigned iters)
{
    static char x16[16 * 160];
    double runs[7], user[7];
    for (int r = 0; r < 7; r++) {
        double t0 = bench_now_ns(), u0 = user_ns();
        for (unsigned i = 0; i < iters; i++) {
            unsigned u = i % 75000;
            if (kind == 0) {
                exchange(ip, fd, reqs[u], lens[u], 1);
            } else if (kind == 1) {
                static const char st[] = "GET /stats HTTP/1.1\r\nHost: b\r\n\r\n";
                exchange(ip, fd, st, sizeof(st) - 1, 1);
            } else {
                size_t n = 0;
                for (unsigned k = 0; k < 16; k++) {
                    memcpy(x16 + n, reqs[(u + k) % 75000], lens[(u + k) % 75000]);
                    n += lens[(u + k) % 75000];
                }
                exchange(ip, fd, x16, n, 16);
            }
        }
        double per = (double)iters * (kind == 2 ? 16 : 1);
        runs[r] = (bench_now_ns() - t0) / per;
        user[r] = (user_ns() - u0) / per;
    }
    qsort(runs, 7, sizeof(double), bench_cmp_double);
    qsort(user, 7, sizeof(double), bench_cmp_double);
    printf("bench: %s %.0f ns/op\n", name, runs[3]);
    printf("bench: %s.user %.0f ns/op\n", name, user[3]);
}

int main(void)
{
    static fa_inproc_t ip;
    char err[512];
    const char *ov[] = {"log.level=warn"};
    if (!fa_inproc_init(&ip, "conf/fasterapid.yaml", ov, 1, 200000, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    for (unsigned i = 0; i < 75000; i++) {
        char body[64];
        int bl = snprintf(body, sizeof(body), "{\"userId\":\"user_%u\",\"value\":%u.5}", i, i % 1000);
        lens[i] = (size_t)snprintf(reqs[i], sizeof(reqs[i]),
                                   "POST /event HTTP/1.1\r\nHost: b\r\nContent-Type: "
                                   "application/json\r\nContent-Length: %d\r\n\r\n%s",
                                   bl, body);
    }
    int fd = fa_inproc_connect(&ip);
    if (fd < 0)
        return 1;
    for (unsigned i = 0; i < 20000; i++) /* warm-up: buffers, pools, keys */
        exchange(&ip, fd, reqs[i % 75000], lens[i % 75000], 1);
    unsigned iters = getenv("ITERS") ? (unsigned)atoi(getenv("ITERS")) : 200000;
    bench(&ip, fd, "inproc.event", 0, iters);
    if (!getenv("ONLY_EVENT")) {
        bench(&ip, fd, "inproc.stats", 1, iters);
        bench(&ip, fd, "inproc.event_x16", 2, iters / 10);
    }
    close(fd);
    return fa_inproc_fini(&ip) == 0 ? 0 : 1;
}
