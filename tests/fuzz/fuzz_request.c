/*
 * fuzz_request.c — libFuzzer target: the request path from bytes to response bytes, in process.
 *
 * One input is one client connection of a worker built from the shipped config
 * (conf/fasterapid.yaml, or $FA_FUZZ_CONF) by tests/support/inproc.c: llhttp glue, header
 * handling, the router, the pipelines (parse_json, validate, aggregate, stats, respond) and
 * response writing all run for real, over a socketpair. The first byte of the input says how the rest is delivered, so that
 * every truncation point gets hit:
 *   bits 2..4  the largest chunk written at once (1, 2, 3, 7, 16, 64, 512 or everything); chunk
 *              sizes are drawn from a PRNG seeded with the input, and the loop turns after each
 *   bits 0..1  the end of the conversation: 0 and 3 hang up once the server is quiet, 1 shuts
 *              down the write side first and expects the server to answer and close, 2 hangs
 *              up after a random prefix (an abandoned request)
 * Invariants checked (abort on violation, which libFuzzer reports as a crash): the output is a
 * sequence of well-formed responses (fa_inproc_check_responses); a half-closed client sees EOF;
 * after the hang-up no connection, closing connection, future or timer is left (fa_inproc_idle).
 * Differential: when chunks are 64 bytes or more (whole requests reach the plain-request fast
 * path, fa__http_parse_fast), the same conversation is replayed with the worker on llhttp alone
 * (llhttp_only), and both must answer byte for byte the same, Date lines aside.
 * Leaks are LeakSanitizer's job (libFuzzer checks each input that allocates more than it frees).
 */
#include "support/inproc.h"

#include "alloc.h"
#include "log.h"

#include <ev.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef FA_FUZZ_SRCDIR
#define FA_FUZZ_SRCDIR "."
#endif

static fa_inproc_t ip;
/*
 * A conversation normally takes milliseconds. One that took longer than this (the process was
 * stopped or starved) may have met a timeout (the shortest, the 2 s lingering close, ends a
 * conversation early): its output is no basis for the differential comparison.
 */
#define MAX_COMPARABLE_SECONDS 1.0

static char *out, *out_slow; /* the conversation's output; the llhttp-only rerun's */
static size_t out_cap, out_slow_cap;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!getenv("FA_FUZZ_LOG")) /* stage errors are expected by the thousand */
        fa_log_set_fd(open("/dev/null", O_WRONLY | O_CLOEXEC));
    if (!getenv("FA_SRCDIR"))
        setenv("FA_SRCDIR", FA_FUZZ_SRCDIR, 1);
    /* FA_FUZZ_CONF picks another config, e.g. tests/fuzz/request-async.yaml: its /slow route
     * waits on a 2 ms timer, so hang-ups cancel pending futures and half-closes wait for them. */
    const char *conf = getenv("FA_FUZZ_CONF") ? getenv("FA_FUZZ_CONF") : "conf/fasterapid.yaml";
    char err[1024];
    if (!fa_inproc_init(&ip, conf, NULL, 0, 1024, err, sizeof(err))) {
        fprintf(stderr, "fuzz_request: %s\n", err);
        exit(1);
    }
    return 0;
}

static uint32_t rng_next(uint32_t *s)
{
    /* xorshift32: enough to spread chunk sizes; seeded from the input so runs reproduce */
    uint32_t x = *s;
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    return *s = x;
}

static void fail(const char *what, const char *why)
{
    fprintf(stderr, "fuzz_request: %s: %s\n", what, why);
    abort();
}

/*
 * One conversation: the input delivered as ctl says, the server's output collected into *buf
 * (*len bytes). Checks the invariants that hold whatever the parser (see the top of the file).
 */
static void converse(const uint8_t *data, size_t size, unsigned ctl, char **buf, size_t *len,
                     size_t *cap)
{
    static const size_t chunks[8] = {1, 2, 3, 7, 16, 64, 512, SIZE_MAX};
    size_t max_chunk = chunks[(ctl >> 2) & 7];
    unsigned end_mode = ctl & 3;
    uint32_t seed = (uint32_t)(ctl * 2654435761u) ^ (uint32_t)size ^ 0x9e3779b9u;
    if (seed == 0)
        seed = 1;
    size_t stop_at = end_mode == 2 && size ? rng_next(&seed) % size : size;

    fa_agg_reset(ip.agg);
    int fd = fa_inproc_connect(&ip);
    if (fd < 0)
        fail("socketpair", "failed");
    size_t out_len = 0;
    bool open = true;
    for (size_t off = 0; off < stop_at && open;) {
        size_t n = stop_at - off;
        if (max_chunk != SIZE_MAX) {
            size_t k = 1 + rng_next(&seed) % max_chunk; /* FA_MIN evaluates twice */
            n = FA_MIN(n, k);
        }
        open = fa_inproc_send(&ip, fd, data + off, n, buf, &out_len, cap);
        off += n;
        if (open)
            open = !fa_inproc_run(&ip, fd, buf, &out_len, cap);
    }
    bool eof = !open;
    if (open && end_mode == 1) {
        shutdown(fd, SHUT_WR);
        eof = fa_inproc_settle(&ip, fd, buf, &out_len, cap, 5.0);
        if (!eof)
            fail("half-closed client", "the server neither answered nor closed");
    } else if (!eof) {
        eof = fa_inproc_run(&ip, fd, buf, &out_len, cap);
    }

    char why[256];
    if (fa_inproc_check_responses(*buf, out_len, false, why, sizeof(why)) < 0) {
        fprintf(stderr, "output (%zu bytes):\n%.*s\n", out_len, (int)FA_MIN(out_len, 4096), *buf);
        fail("responses", why);
    }
    fa_inproc_hangup(&ip, fd);
    if (!fa_inproc_idle(&ip, why, sizeof(why)))
        fail("after hang-up", why);
    *len = out_len;
}

/* Removes the "Date: ...\r\n" lines (the only bytes that depend on the clock) in place. */
static size_t strip_dates(char *p, size_t n)
{
    size_t w = 0;
    for (size_t r = 0; r < n;) {
        if ((r == 0 || p[r - 1] == '\n') && n - r >= 6 && memcmp(p + r, "Date: ", 6) == 0) {
            const char *eol = memchr(p + r, '\n', n - r);
            if (eol) {
                r = (size_t)(eol - p) + 1;
                continue;
            }
        }
        p[w++] = p[r++];
    }
    return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned ctl = data[0];
    data++, size--;
    size_t out_len = 0;
    double t0 = ev_time();
    converse(data, size, ctl, &out, &out_len, &out_cap);
    if (((ctl >> 2) & 7) >= 5 && ev_time() - t0 < MAX_COMPARABLE_SECONDS) {
        /* Chunks this large let whole requests reach the plain-request fast path: llhttp alone
         * must answer byte for byte the same (Date lines aside). */
        size_t slow_len = 0;
        ip.worker.llhttp_only = true;
        double t1 = ev_time();
        converse(data, size, ctl, &out_slow, &slow_len, &out_slow_cap);
        ip.worker.llhttp_only = false;
        if (ev_time() - t1 >= MAX_COMPARABLE_SECONDS)
            slow_len = SIZE_MAX; /* see MAX_COMPARABLE_SECONDS: no verdict */
        size_t a = strip_dates(out, out_len);
        size_t b = slow_len == SIZE_MAX ? a : strip_dates(out_slow, slow_len);
        if (slow_len != SIZE_MAX && (a != b || memcmp(out, out_slow, a) != 0)) {
            size_t i = 0;
            while (i < a && i < b && out[i] == out_slow[i])
                i++;
            size_t from = i > 200 ? i - 200 : 0;
            fprintf(stderr, "fast path (%zu bytes) and llhttp (%zu bytes) differ at byte %zu:\n"
                    "--- fast:\n%.*s\n--- llhttp:\n%.*s\n", a, b, i,
                    (int)FA_MIN(a - from, (size_t)600), out + from,
                    (int)FA_MIN(b - from, (size_t)600), out_slow + from);
            fail("differential", "the fast path and llhttp answered differently");
        }
    }
    if (out_cap > (1u << 20)) { /* do not keep a huge buffer around between inputs */
        fa_free(out);
        out = NULL;
        out_cap = 0;
    }
    if (out_slow_cap > (1u << 20)) {
        fa_free(out_slow);
        out_slow = NULL;
        out_slow_cap = 0;
    }
    return 0;
}
