/*
 * serve.c — the daemon's run: hands the loaded config to the master; see serve.h.
 */
#include "serve.h"
#include "master.h"

int fa_main_serve(fa_config_t *config, const char *path, const char *const *overrides, size_t n,
                  bool discard_snapshot)
{
    fa_master_opts_t opts = {
        .config_path = path,
        .overrides = overrides,
        .noverrides = n,
        .discard_snapshot = discard_snapshot,
    };
    return fa_master_run(config, &opts);
}
