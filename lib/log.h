/*
 * log.h — the error log: one line per event, written with one write(2) so that lines from the
 * master and the workers never interleave.
 *
 * Each line reads "2026-11-26T17:00:00Z fasterapid[w1]: error: message". The timestamp is left out
 * under journald (which adds its own, detected by $JOURNAL_STREAM). The process tag is "master" or
 * "wN", set once with fa_log_set_tag after fork.
 */
#ifndef FA_LOG_H
#define FA_LOG_H

#include "fa.h"

typedef enum {
    FA_LOG_ERROR = 0,
    FA_LOG_WARN = 1,
    FA_LOG_INFO = 2,
    FA_LOG_DEBUG = 3,
} fa_log_level_t;

extern fa_log_level_t fa_log_level;

/** Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int fa_log_level_parse(const char *s, size_t len);
const char *fa_log_level_name(fa_log_level_t level);

/** Sets the process tag ("master", "w0", ...). The string is copied. */
void fa_log_set_tag(const char *tag);

/** Sends the log to fd (default 2). Used by tests; the fd stays owned by the caller. */
void fa_log_set_fd(int fd);

void fa_log(fa_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define fa_log_error(...) fa_log(FA_LOG_ERROR, __VA_ARGS__)
#define fa_log_warn(...)                                                                           \
    do {                                                                                           \
        if (fa_log_level >= FA_LOG_WARN)                                                           \
            fa_log(FA_LOG_WARN, __VA_ARGS__);                                                      \
    } while (0)
#define fa_log_info(...)                                                                           \
    do {                                                                                           \
        if (fa_log_level >= FA_LOG_INFO)                                                           \
            fa_log(FA_LOG_INFO, __VA_ARGS__);                                                      \
    } while (0)
#define fa_log_debug(...)                                                                          \
    do {                                                                                           \
        if (fa_log_level >= FA_LOG_DEBUG)                                                          \
            fa_log(FA_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

/** Start-up only: logs at error level. The caller exits. */
#define fa_log_fatal(...) fa_log(FA_LOG_ERROR, __VA_ARGS__)

#endif
