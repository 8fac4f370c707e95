/*
 * fuzz_config.c — libFuzzer target: the YAML config loader and the pipeline builder.
 *
 * Any input must yield either a config or at least one error line, never a crash or a leak. A
 * config that loads is also compiled into an app (fa_app_build: route and stage parsing) and,
 * when that succeeds, dumped with fa_config_dump; the dump must load again, and dumping that must
 * give the same text (the effective config is a fixed point).
 */
#include "alloc.h"
#include "app.h"
#include "config.h"
#include "log.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int dump_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!getenv("FA_FUZZ_LOG"))
        fa_log_set_fd(open("/dev/null", O_WRONLY | O_CLOEXEC));
    dump_fd = memfd_create("fuzz_config_dump", MFD_CLOEXEC);
    if (dump_fd < 0)
        abort();
    return 0;
}

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_config: %s\n%s\n", what, detail ? detail : "");
    abort();
}

/* fa_config_dump of c as a fa_malloc'd NUL-terminated string. */
static char *dump(const fa_config_t *c, size_t *len)
{
    if (ftruncate(dump_fd, 0) < 0 || lseek(dump_fd, 0, SEEK_SET) < 0)
        abort();
    fa_config_dump(c, dump_fd);
    off_t n = lseek(dump_fd, 0, SEEK_CUR);
    char *text = fa_malloc((size_t)n + 1);
    if (pread(dump_fd, text, (size_t)n, 0) != n)
        abort();
    text[n] = 0;
    *len = (size_t)n;
    return text;
}

/* Checks that an error buffer holds count non-empty lines. */
static void check_errors(const fa_errbuf_t *errs, const char *what)
{
    if (errs->count == 0 || !errs->text || errs->len == 0 || errs->text[errs->len - 1] != '\n')
        fail(what, "refused without an error line");
    unsigned lines = 0;
    for (const char *p = errs->text; *p; p++) {
        const char *nl = strchr(p, '\n');
        if (nl == p)
            fail(what, "an empty error line");
        lines++;
        p = nl;
    }
    if (lines < errs->count)
        fail(what, "fewer error lines than errors");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fa_errbuf_t errs = {0};
    fa_config_t *c = fa_config_load_buf("fuzz.yaml", (const char *)data, size, NULL, 0, &errs);
    if (!c) {
        check_errors(&errs, "config refused");
        fa_errbuf_free(&errs);
        return 0;
    }
    if (errs.count)
        fail("config loaded with errors", errs.text);
    fa_app_t *app = fa_app_build(c, &errs);
    if (!app) {
        check_errors(&errs, "app refused");
        fa_errbuf_free(&errs);
        fa_config_free(c);
        return 0;
    }
    fa_app_free(app);

    size_t len1, len2;
    char *d1 = dump(c, &len1);
    fa_config_t *c2 = fa_config_load_buf("fuzz.yaml", d1, len1, NULL, 0, &errs);
    if (!c2) {
        fprintf(stderr, "dump:\n%s\n", d1);
        fail("the dump of a valid config does not load", errs.text);
    }
    char *d2 = dump(c2, &len2);
    if (len1 != len2 || memcmp(d1, d2, len1) != 0) {
        fprintf(stderr, "first dump:\n%s\nsecond dump:\n%s\n", d1, d2);
        fail("dumping the reloaded dump changed it", NULL);
    }
    fa_free(d1);
    fa_free(d2);
    fa_config_free(c2);
    fa_config_free(c);
    fa_errbuf_free(&errs);
    return 0;
}
