/*
 * serve.h — the daemon's run: what main calls once the configuration has loaded.
 *
 * main keeps the argv-derived config path and "-o" overrides and passes them here, so that a reload
 * (SIGHUP) can build a fresh config with fa_config_load_logged(path, overrides, noverrides) exactly
 * as the first one was built.
 */
#ifndef FA_SERVE_H
#define FA_SERVE_H

#include "config.h"

/**
 * Runs the server until it is told to stop; returns the process exit status (0 on a clean stop).
 * Takes ownership of config (freed before returning, or replaced on reload). path and overrides are
 * borrowed from argv and must outlive the call. discard_snapshot: ignore an existing aggregator
 * snapshot file at start. Called once, from main, on the main thread.
 */
int fa_main_serve(fa_config_t *config, const char *path, const char *const *overrides, size_t n,
                  bool discard_snapshot);

#endif
