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
 * Leaks are LeakSanitizer's job (libFuzzer checks each input that allocates more than it frees).
 */
#include "support/inproc.h"

#include "alloc.h"
#include "log.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef FA_FUZZ_SRCDIR
#define FA_FUZZ_SRCDIR "."
#endif

static fa_inproc_t ip;
static char *out;
static size_t out_cap;

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t chunks[8] = {1, 2, 3, 7, 16, 64, 512, SIZE_MAX};
    if (size == 0)
        return 0;
    unsigned ctl = data[0];
    data++, size--;
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
        open = fa_inproc_send(&ip, fd, data + off, n, &out, &out_len, &out_cap);
        off += n;
        if (open)
            open = !fa_inproc_run(&ip, fd, &out, &out_len, &out_cap);
    }
    bool eof = !open;
    if (open && end_mode == 1) {
        shutdown(fd, SHUT_WR);
        eof = fa_inproc_settle(&ip, fd, &out, &out_len, &out_cap, 5.0);
        if (!eof)
            fail("half-closed client", "the server neither answered nor closed");
    } else if (!eof) {
        eof = fa_inproc_run(&ip, fd, &out, &out_len, &out_cap);
    }

    char why[256];
    if (fa_inproc_check_responses(out, out_len, false, why, sizeof(why)) < 0) {
        fprintf(stderr, "output (%zu bytes):\n%.*s\n", out_len, (int)FA_MIN(out_len, 4096), out);
        fail("responses", why);
    }
    fa_inproc_hangup(&ip, fd);
    if (!fa_inproc_idle(&ip, why, sizeof(why)))
        fail("after hang-up", why);
    if (out_cap > (1u << 20)) { /* do not keep a huge buffer around between inputs */
        fa_free(out);
        out = NULL;
        out_cap = 0;
    }
    return 0;
}
