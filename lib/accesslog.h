/*
 * accesslog.h — the optional access log: one line per response, buffered per worker.
 *
 * Each worker owns one fa_accesslog_t (log.access: true). A response appends its line to the
 * worker's buffer with no system call; the buffer is written with one write(2) when it is nearly
 * full, on the worker's flush timer (FA_ACCESSLOG_FLUSH_S), and at exit. Only whole lines are
 * written and the file is opened with O_APPEND, so the lines of several workers never interleave.
 * SIGUSR1 makes every worker reopen the file (after logrotate moved it): see fa_accesslog_reopen.
 *
 * Formats (log.access_format):
 *   combined  127.0.0.1 - - [26/Nov/2026:17:00:00 +0000] "GET /stats HTTP/1.1" 200 71 "-" "curl/8"
 *   common    the same without the referer and user agent
 *   json      {"time":"2026-11-26T17:00:00Z","remote":"127.0.0.1","method":"GET",
 *              "target":"/stats","proto":"HTTP/1.1","status":200,"bytes":71,"duration_us":52,
 *              "referer":"","user_agent":"curl/8","worker":0}  (on one line)
 * Bytes are the response body's. Text from the request is escaped (\xHH in the Apache formats,
 * JSON escapes in json) and cut at 1024 bytes per field.
 *
 * Threading: a worker's loop thread only.
 */
#ifndef FA_ACCESSLOG_H
#define FA_ACCESSLOG_H

#include "fa.h"

/** How often a worker writes its buffered lines (seconds). */
#define FA_ACCESSLOG_FLUSH_S 1.0

typedef struct fa_accesslog fa_accesslog_t;

/**
 * Opens the log at path ("" = standard output) in format ("combined", "common" or "json") for
 * worker `worker`. Returns NULL with a message in err (errlen bytes) if the file cannot be opened.
 * The caller owns the result and releases it with fa_accesslog_close.
 */
fa_accesslog_t *fa_accesslog_open(const char *path, const char *format, unsigned worker, char *err,
                                  size_t errlen);

/**
 * Appends the line of req, answered with status and a body of body_len bytes at time now
 * (ev_now, Unix seconds). Writes the buffer first when the line might not fit. req is borrowed.
 */
void fa_accesslog_append(fa_accesslog_t *log, const fa_req_t *req, int status, size_t body_len,
                         double now);

/** Writes the buffered lines. A failed write drops them (counted; logged once per minute). */
void fa_accesslog_flush(fa_accesslog_t *log);

/**
 * Flushes, then reopens the file by its path (a no-op for standard output). On failure the old
 * descriptor is kept and -errno returned.
 */
int fa_accesslog_reopen(fa_accesslog_t *log);

/** Flushes and releases log (closing its file). NULL is a no-op. */
void fa_accesslog_close(fa_accesslog_t *log);

#endif
