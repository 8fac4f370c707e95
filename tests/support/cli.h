/*
 * cli.h — test helper: run the built fasterapid binary and capture what it printed.
 *
 * `make test` exports FASTERAPID_BIN (absolute path of the binary under test) and FA_SRCDIR (the
 * repository root); tests run from the repository root.
 */
#ifndef FA_TEST_CLI_H
#define FA_TEST_CLI_H

#include <stddef.h>

typedef struct {
    int status; /* exit status, or 128 + signal number when killed */
    char *out;  /* everything written to stdout, NUL-terminated, malloc'd */
    char *err;  /* everything written to stderr, NUL-terminated, malloc'd */
} fa_cli_result_t;

/** $FASTERAPID_BIN, or "build/fasterapid" when unset. Static string. */
const char *fa_cli_bin(void);

/** Path of a file in the source tree ($FA_SRCDIR/rel, or rel), in a static buffer. */
const char *fa_cli_src(const char *rel);

/**
 * Runs the binary with args (NULL-terminated, program name excluded) and waits for it, stdin
 * from /dev/null. Release the result with fa_cli_result_free.
 */
fa_cli_result_t fa_cli_run(const char *const *args);

void fa_cli_result_free(fa_cli_result_t *r);

#endif
