/*
 * agg_snapshot.c — the aggregator on disk: written by the master, loaded at start.
 *
 * File format, every integer little endian:
 *   header (40 bytes): magic "FAAGGSNP" | u32 version (1) | u32 flags (0) | u64 payload length |
 *                      u64 key count | u64 FNV-1a 64 of the payload followed by header bytes [0,
 * 32) payload:           u64 total | u64 unique | u64 sum low | u64 sum high (nanos, two's
 * complement) then key count records of: u8 length | that many key bytes The totals are the sum of
 * every shard and the base, folded into one record; the keys are exactly the ones those totals
 * counted (unique == key count), so a load restores a consistent aggregate.
 */
#include "agg_internal.h"
#include "alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAP_MAGIC     "FAAGGSNP"
#define SNAP_VERSION   1
#define SNAP_HDR       40
#define SNAP_TOTALS    32
#define FNV_OFFSET     0xcbf29ce484222325ULL
#define FNV_PRIME      0x100000001b3ULL
#define WBUF_SIZE      (64 * 1024)
#define WRITE_ATTEMPTS 8

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- writing -----------------------------------------------------------------------------------
 */

/* A buffered writer that checksums what it writes. Owned by one fa_agg_snapshot_write call. */
typedef struct {
    int fd;
    unsigned char *buf; /* fa_malloc'd, WBUF_SIZE */
    size_t len;
    uint64_t fnv;
    int error; /* first errno */
} wr_t;

static void wr_flush(wr_t *w)
{
    size_t done = 0;
    while (done < w->len && !w->error) {
        ssize_t n = write(w->fd, w->buf + done, w->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            w->error = n < 0 ? errno : EIO;
        else
            done += (size_t)n;
    }
    w->len = 0;
}

static void wr_put(wr_t *w, const void *p, size_t n)
{
    w->fnv = fnv1a(w->fnv, p, n);
    while (n) {
        size_t k = FA_MIN(n, WBUF_SIZE - w->len);
        memcpy(w->buf + w->len, p, k);
        w->len += k;
        p = (const char *)p + k;
        n -= k;
        if (w->len == WBUF_SIZE)
            wr_flush(w);
    }
}

static int fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= sizeof(dir))
            return -ENAMETOOLONG;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/*
 * One attempt: streams the totals and the keys they counted into fd. A key is counted in the
 * totals read when its stamp is below its shard's committed floor (see agg_internal.h). Returns 0,
 * 1 when a reset ran meanwhile (try again), -1 on error with err set.
 */
static int write_attempt(const fa_agg_t *a, int fd, const char *tmp, char *err, size_t errlen)
{
    uint64_t floors[FA_AGG_SHARDS_MAX];
    fa_agg_totals_t t;
    uint64_t gen = fa__agg_read_floors(a, &t, floors);

    wr_t w = {.fd = fd, .buf = fa_malloc(WBUF_SIZE), .len = 0, .fnv = 0, .error = 0};
    unsigned char hdr[SNAP_HDR] = {0};
    wr_put(&w, hdr, SNAP_HDR); /* placeholder, rewritten at the end */
    w.fnv = FNV_OFFSET;
    unsigned char tot[SNAP_TOTALS];
    put64(tot, t.total);
    put64(tot + 8, t.unique);
    put64(tot + 16, (uint64_t)t.sum);
    put64(tot + 24, (uint64_t)((unsigned __int128)t.sum >> 64));
    wr_put(&w, tot, sizeof(tot));
    uint64_t payload = SNAP_TOTALS, nkeys = 0;
    for (size_t i = 0; i < a->nslots; i++) {
        uint64_t word = atomic_load_explicit(&a->table[i], memory_order_acquire);
        if (!word)
            continue;
        const unsigned char *rec = a->arena + (word & FA__AGG_OFF_MASK);
        unsigned shard = rec[1] | (unsigned)rec[2] << 8;
        uint64_t stamp = get64(rec + 3);
        if (shard != FA__AGG_BASE_SHARD && (shard >= a->nshards || stamp >= floors[shard]))
            continue; /* inserted by an event newer than the totals */
        wr_put(&w, rec, 1);
        wr_put(&w, rec + FA__AGG_REC_HDR, rec[0]);
        payload += 1 + (uint64_t)rec[0];
        nkeys++;
    }
    uint64_t fnv_payload = w.fnv;
    wr_flush(&w);
    fa_free(w.buf);
    if (atomic_load_explicit(&a->gen, memory_order_acquire) != gen)
        return 1;
    if (w.error) {
        errf(err, errlen, "%s: %s", tmp, strerror(w.error));
        return -1;
    }
    if (nkeys != t.unique) {
        errf(err, errlen, "%s: %llu keys for %llu unique users: inconsistent aggregate (bug)", tmp,
             (unsigned long long)nkeys, (unsigned long long)t.unique);
        return -1;
    }
    memcpy(hdr, SNAP_MAGIC, 8);
    hdr[8] = SNAP_VERSION;
    put64(hdr + 16, payload);
    put64(hdr + 24, nkeys);
    /* FNV is sequential: the payload was hashed as it streamed, the header's fields come last. */
    put64(hdr + 32, fnv1a(fnv_payload, hdr, 32));
    for (size_t done = 0; done < SNAP_HDR;) {
        ssize_t n = pwrite(fd, hdr + done, SNAP_HDR - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            errf(err, errlen, "%s: %s", tmp, n < 0 ? strerror(errno) : "short write");
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

/*
 * Master only. Writers keep running: the totals come from the consistent-read protocol and the
 * table is scanned without locks; only a concurrent reset makes it start over.
 */
int fa_agg_snapshot_write(const fa_agg_t *a, const char *path, char *err, size_t errlen)
{
    size_t plen = strlen(path);
    char *tmp = fa_malloc(plen + 5);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int rc = -1;
    for (int attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            errf(err, errlen, "%s: %s", tmp, strerror(errno));
            goto out;
        }
        rc = write_attempt(a, fd, tmp, err, errlen);
        if (rc == 0 && fsync(fd) < 0) {
            errf(err, errlen, "%s: fsync: %s", tmp, strerror(errno));
            rc = -1;
        }
        if (close(fd) < 0 && rc == 0) {
            errf(err, errlen, "%s: close: %s", tmp, strerror(errno));
            rc = -1;
        }
        if (rc != 1)
            break;
        rc = -1; /* a reset ran meanwhile: the file mixes two generations */
        errf(err, errlen, "%s: aggregator kept being reset while writing", path);
    }
    if (rc != 0) {
        (void)unlink(tmp); /* best effort: a stale .tmp is harmless and overwritten next time */
        goto out;
    }
    if (rename(tmp, path) < 0) {
        errf(err, errlen, "rename %s to %s: %s", tmp, path, strerror(errno));
        (void)unlink(tmp); /* as above */
        rc = -1;
        goto out;
    }
    int drc = fsync_dir_of(path);
    if (drc < 0) {
        errf(err, errlen, "%s: fsync of the directory: %s", path, strerror(-drc));
        rc = -1;
    }
out:
    fa_free(tmp);
    return rc;
}

/* ---- loading -----------------------------------------------------------------------------------
 */

/*
 * Reads the file whole (its size is bounded by the capacity first), checks the header and the
 * checksum before looking at any record, then walks the records with every length checked
 * against the end of the buffer. Any failure after keys were inserted clears the aggregator again.
 */
static int load_buf(fa_agg_t *a, const char *path, const unsigned char *buf, size_t size, char *err,
                    size_t errlen)
{
    if (size < SNAP_HDR) {
        errf(err, errlen, "%s: truncated snapshot (%zu bytes, the header alone is %d)", path, size,
             SNAP_HDR);
        return -1;
    }
    if (memcmp(buf, SNAP_MAGIC, 8) != 0) {
        errf(err, errlen, "%s: not a fasterapid aggregator snapshot (bad magic)", path);
        return -1;
    }
    uint32_t version = (uint32_t)buf[8] | (uint32_t)buf[9] << 8 | (uint32_t)buf[10] << 16 |
                       (uint32_t)buf[11] << 24;
    if (version != SNAP_VERSION) {
        errf(err, errlen, "%s: snapshot version %u, this build reads version %d", path, version,
             SNAP_VERSION);
        return -1;
    }
    uint64_t payload = get64(buf + 16), nkeys = get64(buf + 24);
    if (payload != size - SNAP_HDR) {
        errf(err, errlen,
             "%s: truncated or padded snapshot: header says %llu payload bytes, file "
             "has %zu",
             path, (unsigned long long)payload, size - SNAP_HDR);
        return -1;
    }
    uint64_t fnv = fnv1a(fnv1a(FNV_OFFSET, buf + SNAP_HDR, (size_t)payload), buf, 32);
    if (fnv != get64(buf + 32)) {
        errf(err, errlen, "%s: snapshot checksum mismatch (corrupt file)", path);
        return -1;
    }
    if (payload < SNAP_TOTALS) {
        errf(err, errlen, "%s: corrupt snapshot: payload too short for the totals", path);
        return -1;
    }
    if (nkeys > a->capacity) {
        errf(err, errlen, "%s: snapshot holds %llu keys but the aggregator capacity is %zu", path,
             (unsigned long long)nkeys, a->capacity);
        return -1;
    }
    const unsigned char *p = buf + SNAP_HDR;
    const unsigned char *end = buf + size;
    uint64_t total = get64(p), unique = get64(p + 8);
    __int128 sum = fa__agg_join(get64(p + 16), get64(p + 24));
    if (unique != nkeys || unique > total) {
        errf(err, errlen, "%s: corrupt snapshot: %llu events, %llu unique users, %llu keys", path,
             (unsigned long long)total, (unsigned long long)unique, (unsigned long long)nkeys);
        return -1;
    }
    p += SNAP_TOTALS;
    for (uint64_t k = 0; k < nkeys; k++) {
        size_t len = p < end ? *p : 0;
        if (p >= end || (size_t)(end - p - 1) < len) {
            errf(err, errlen, "%s: corrupt snapshot: key %llu runs past the end", path,
                 (unsigned long long)k);
            goto fail;
        }
        int rc = fa__agg_insert_base(a, (const char *)p + 1, len);
        if (rc < 0) {
            errf(err, errlen, "%s: corrupt snapshot: key %llu: %s", path, (unsigned long long)k,
                 rc == -EEXIST ? "duplicate key" : "no room in the aggregator");
            goto fail;
        }
        p += 1 + len;
    }
    if (p != end) {
        errf(err, errlen, "%s: corrupt snapshot: %zu bytes after the last key", path,
             (size_t)(end - p));
        goto fail;
    }
    atomic_store_explicit(&a->base.total, total, memory_order_relaxed);
    atomic_store_explicit(&a->base.unique, unique, memory_order_relaxed);
    atomic_store_explicit(&a->base.sum_lo, (uint64_t)sum, memory_order_relaxed);
    atomic_store_explicit(&a->base.sum_hi, (uint64_t)((unsigned __int128)sum >> 64),
                          memory_order_release);
    return 1;
fail:
    fa__agg_clear(a);
    return -1;
}

int fa_agg_snapshot_load(fa_agg_t *a, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            errf(err, errlen, "%s: no snapshot", path);
            return 0;
        }
        errf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        errf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    /* The largest file this aggregator could have written: refuse anything bigger unread. */
    uint64_t max = SNAP_HDR + SNAP_TOTALS + (uint64_t)a->capacity * (1 + FA_AGG_KEY_MAX);
    if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t)st.st_size > max) {
        errf(err, errlen, "%s: not a snapshot this aggregator could have written (%lld bytes)",
             path, (long long)st.st_size);
        close(fd);
        return -1;
    }
    if (!fa__agg_is_fresh(a)) {
        errf(err, errlen, "%s: the aggregator already holds data; load snapshots at start only",
             path);
        close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    unsigned char *buf = fa_malloc(size ? size : 1);
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    int rc = got == size ? load_buf(a, path, buf, size, err, errlen) : -1;
    if (got != size)
        errf(err, errlen, "%s: short read (%zu of %zu bytes)", path, got, size);
    fa_free(buf);
    close(fd);
    return rc;
}
