/*
 * log.c — see log.h.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

fa_log_level_t fa_log_level = FA_LOG_INFO;

static char log_tag[32] = "master";
static int log_fd = 2;
static int log_stamp = -1; /* -1: not decided yet */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int fa_log_level_parse(const char *s, size_t len)
{
    for (size_t i = 0; i < FA_ARRAY_SIZE(level_names); i++)
        if (strlen(level_names[i]) == len && strncasecmp(s, level_names[i], len) == 0)
            return (int)i;
    return -1;
}

const char *fa_log_level_name(fa_log_level_t level)
{
    return level_names[level];
}

void fa_log_set_tag(const char *tag)
{
    snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

void fa_log_set_fd(int fd)
{
    log_fd = fd;
}

void fa_log(fa_log_level_t level, const char *fmt, ...)
{
    char line[2048];
    size_t n = 0;

    if (log_stamp < 0)
        log_stamp = getenv("JOURNAL_STREAM") == NULL;
    if (log_stamp) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
    }
    n += (size_t)snprintf(line + n, sizeof(line) - n, "fasterapid[%s]: %s: ", log_tag,
                          level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n = FA_MIN(n + (size_t)m, sizeof(line) - 2);
    line[n++] = '\n';
    /* A failed log write has nowhere to be reported; ignore it on purpose. */
    (void)!write(log_fd, line, n);
}
