/*
 * master.h — the master process: listeners, workers, supervision, signals, reload, readiness.
 */
#ifndef FA_MASTER_H
#define FA_MASTER_H

#include "config.h"
#include "fa.h"

typedef struct {
    const char *config_path;
    const char *const *overrides; /* "-o key=value" strings, re-applied at every reload */
    size_t noverrides;
    bool discard_snapshot;
} fa_master_opts_t;

/**
 * Serves config until a stop signal: opens the listeners, forks the workers, supervises them,
 * reloads on SIGHUP (re-reading opts->config_path with the overrides). Takes ownership of config.
 * Returns the process exit status.
 */
int fa_master_run(fa_config_t *config, const fa_master_opts_t *opts);

#endif
