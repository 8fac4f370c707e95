/*
 * serve.c — TEMPORARY stand-in for the server run; see serve.h.
 *
 * FIXME: the master/worker run replaces this file. It exists so that the CLI (cmd/fasterapid) can
 * be built and tested before the server lands; it keeps the final signature.
 */
#include "serve.h"

int fa_main_serve(fa_config_t *config, const char *path, const char *const *overrides, size_t n,
                  bool discard_snapshot)
{
    (void)path;
    (void)overrides;
    (void)n;
    (void)discard_snapshot;
    fa_log_error("serving is not implemented yet");
    fa_config_free(config);
    return 1;
}
