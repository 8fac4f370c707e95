/*
 * main.c — the fasterapid command: parse argv, load the configuration, hand over to the server.
 *
 * Kept thin on purpose: everything worth testing lives in lib/. The config path and the "-o"
 * overrides stay here (borrowed from argv) for the life of the process, because a reload builds
 * the next config from exactly the same inputs (see serve.h).
 *
 * Exit status: 0 success, 1 a configuration (or run-time) failure, 2 a usage error.
 */
#include "alloc.h"
#include "config.h"
#include "log.h"
#include "app.h"
#include "serve.h"
#include "yaml.h"

#include <ev.h>
#include <getopt.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef FA_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#define DEFAULT_CONF "conf/fasterapid.yaml"
#define SYSTEM_CONF  "/etc/fasterapid/fasterapid.yaml"

static void usage(FILE *out)
{
    fputs("usage: fasterapid [-c FILE] [-o KEY=VALUE]... [-t] [-T] [-v] [-h] [--discard-snapshot]\n"
          "\n"
          "  -c FILE             configuration file (default " DEFAULT_CONF " if it exists,\n"
          "                      else " SYSTEM_CONF ")\n"
          "  -o KEY=VALUE        override one setting, VALUE in YAML (server.workers=4,\n"
          "                      'server.listen=[127.0.0.1:8080]'); may be repeated\n"
          "  -t                  test the configuration and exit\n"
          "  -T                  test the configuration, print it with defaults filled in, exit\n"
          "  -v                  print the version and the linked libraries' versions\n"
          "  -h, --help          print this help\n"
          "  --discard-snapshot  start with empty aggregator totals even if a snapshot exists\n",
          out);
}

static void print_versions(void)
{
    printf("fasterapid %s\n", FA_VERSION);
    printf("libev %d.%d\n", ev_version_major(), ev_version_minor());
    printf("llhttp %d.%d.%d\n", LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH);
    printf("libyaml %s\n", fa_yaml_libyaml_version());
#ifdef FA_WITH_JEMALLOC
    const char *version = "unknown";
    size_t size = sizeof(version);
    if (mallctl("version", &version, &size, NULL, 0) != 0)
        version = "unknown";
    printf("jemalloc %s\n", version);
#else
    printf("malloc: libc malloc\n");
#endif
}

/* -t and -T: every located error on stderr, then one verdict line. */
static int test_config(const char *path, const char *const *overrides, size_t n, bool dump)
{
    fa_errbuf_t errs = {0};
    fa_config_t *config = fa_config_load(path, overrides, n, &errs);
    /* The routes' pipelines are compiled too, so that -t catches every error a start would. */
    fa_app_t *app = config ? fa_app_build(config, &errs) : NULL;
    if (!app) {
        fa_config_free(config);
        if (errs.text)
            fputs(errs.text, stderr);
        fprintf(stderr, "fasterapid: configuration file %s test failed\n", path);
        fa_errbuf_free(&errs);
        return 1;
    }
    fflush(stdout);
    if (dump)
        fa_config_dump(config, STDOUT_FILENO);
    fprintf(stderr, "fasterapid: configuration file %s test is successful\n", path);
    fa_app_free(app);
    fa_config_free(config);
    return 0;
}

int main(int argc, char **argv)
{
    enum { OPT_DISCARD_SNAPSHOT = 256 };
    static const struct option long_options[] = {
        {"help", no_argument, NULL, 'h'},
        {"discard-snapshot", no_argument, NULL, OPT_DISCARD_SNAPSHOT},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    /* Owned by main for the whole run; the strings themselves are argv's. */
    const char **overrides = fa_calloc((size_t)argc, sizeof(*overrides));
    size_t noverrides = 0;
    bool test = false, dump = false, version = false, discard_snapshot = false;
    int status = 0;

    opterr = 0; /* messages are ours, followed by the usage */
    for (int opt; (opt = getopt_long(argc, argv, ":c:o:tTvh", long_options, NULL)) != -1;) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'o':
            overrides[noverrides++] = optarg;
            break;
        case 't':
            test = true;
            break;
        case 'T':
            dump = true;
            break;
        case 'v':
            version = true;
            break;
        case 'h':
            usage(stdout);
            goto out;
        case OPT_DISCARD_SNAPSHOT:
            discard_snapshot = true;
            break;
        case ':':
            fprintf(stderr, "fasterapid: option %s needs an argument\n", argv[optind - 1]);
            usage(stderr);
            status = 2;
            goto out;
        default:
            if (optopt)
                fprintf(stderr, "fasterapid: unknown option -%c\n", optopt);
            else
                fprintf(stderr, "fasterapid: unknown option %s\n", argv[optind - 1]);
            usage(stderr);
            status = 2;
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fasterapid: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        status = 2;
        goto out;
    }

    if (version) {
        print_versions();
        goto out;
    }
    if (!path)
        path = access(DEFAULT_CONF, F_OK) == 0 ? DEFAULT_CONF : SYSTEM_CONF;
    if (test || dump) {
        status = test_config(path, overrides, noverrides, dump);
        goto out;
    }

    fa_config_t *config = fa_config_load_logged(path, overrides, noverrides);
    if (!config) {
        fa_log_fatal("configuration file %s has errors; not starting", path);
        status = 1;
        goto out;
    }
    status = fa_main_serve(config, path, overrides, noverrides, discard_snapshot);
out:
    fa_free(overrides);
    return status;
}
