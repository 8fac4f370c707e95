/*
 * fuzz_snapshot.c — libFuzzer target: loading an aggregator snapshot (fa_agg_snapshot_load).
 *
 * The input is the snapshot file (served from a memfd through /proc/self/fd). A corrupt file must
 * be refused with a message (-1), never trusted, never crash. A file that loads must describe a
 * state this aggregator can hold (unique <= total, unique <= capacity), and writing it out again
 * and loading that into a second aggregator must give the same totals.
 */
#include "agg.h"
#include "log.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CAPACITY 64

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fa_agg_t *agg, *agg2;
static int in_fd = -1;
static char in_path[64], out_path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[256];
    agg = fa_agg_create(CAPACITY, 1, err, sizeof(err));
    agg2 = fa_agg_create(CAPACITY, 1, err, sizeof(err));
    in_fd = memfd_create("fuzz_snapshot", MFD_CLOEXEC);
    if (!agg || !agg2 || in_fd < 0)
        abort();
    snprintf(in_path, sizeof(in_path), "/proc/self/fd/%d", in_fd);
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/fa-fuzz-snapshot.XXXXXX", tmp);
    if (!mkdtemp(dir))
        abort();
    snprintf(out_path, sizeof(out_path), "%s/snap", dir);
    return 0;
}

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_snapshot: %s: %s\n", what, detail);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(in_fd, 0) < 0 || pwrite(in_fd, data, size, 0) != (ssize_t)size)
        abort();
    char err[512] = "";
    fa_agg_reset(agg);
    int rc = fa_agg_snapshot_load(agg, in_path, err, sizeof(err));
    if (rc < 0) {
        if (!err[0])
            fail("refused", "without a message");
        fa_agg_totals_t t;
        fa_agg_read(agg, &t); /* a refused file may leave partial state: reset clears it */
        return 0;
    }
    if (rc != 1)
        fail("an existing file", "reported as missing");

    fa_agg_totals_t t, t2;
    fa_agg_read(agg, &t);
    if (t.unique > t.total || t.unique > CAPACITY)
        fail("loaded", "an impossible state (unique > total or > capacity)");
    if (fa_agg_snapshot_write(agg, out_path, err, sizeof(err)) != 0)
        fail("writing back", err);
    fa_agg_reset(agg2);
    if (fa_agg_snapshot_load(agg2, out_path, err, sizeof(err)) != 1)
        fail("reloading what was written", err);
    fa_agg_read(agg2, &t2);
    if (t.total != t2.total || t.unique != t2.unique || t.sum != t2.sum)
        fail("round trip", "the totals changed");
    unlink(out_path);
    return 0;
}
