/*
 * test_cli.c — the fasterapid command line, run as a real process ($FASTERAPID_BIN).
 */
#include <criterion/criterion.h>

#include "support/cli.h"
#include "config.h"

#include <stdio.h>
#include <string.h>

TestSuite(cli, .timeout = 30);

Test(cli, test_mode_accepts_the_shipped_config)
{
    char conf[4096];
    snprintf(conf, sizeof(conf), "%s", fa_cli_src("conf/fasterapid.yaml"));
    fa_cli_result_t r = fa_cli_run((const char *[]){"-t", "-c", conf, NULL});
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    char want[4200];
    snprintf(want, sizeof(want), "fasterapid: configuration file %s test is successful\n", conf);
    cr_assert_str_eq(r.err, want);
    cr_assert_str_eq(r.out, "");
    fa_cli_result_free(&r);
}

Test(cli, test_mode_locates_a_misspelt_key_and_fails)
{
    char conf[4096];
    snprintf(conf, sizeof(conf), "%s", fa_cli_src("tests/conf/bad.yaml"));
    fa_cli_result_t r = fa_cli_run((const char *[]){"-c", conf, "-t", NULL});
    cr_assert_eq(r.status, 1, "stderr: %s", r.err);
    char want[9000];
    snprintf(want, sizeof(want),
             "%s:3:3: server.wrokers: unknown key (did you mean \"workers\"?)\n"
             "fasterapid: configuration file %s test failed\n",
             conf, conf);
    cr_assert_str_eq(r.err, want);
    fa_cli_result_free(&r);
}

Test(cli, a_missing_file_is_a_config_failure)
{
    fa_cli_result_t r = fa_cli_run((const char *[]){"-t", "-c", "/nonexistent/x.yaml", NULL});
    cr_assert_eq(r.status, 1);
    cr_assert_str_eq(r.err, "/nonexistent/x.yaml: cannot open: No such file or directory\n"
                            "fasterapid: configuration file /nonexistent/x.yaml test failed\n");
    fa_cli_result_free(&r);
}

Test(cli, dump_shows_overrides_and_reloads)
{
    char conf[4096];
    snprintf(conf, sizeof(conf), "%s", fa_cli_src("conf/fasterapid.yaml"));
    fa_cli_result_t r =
        fa_cli_run((const char *[]){"-c", conf, "-T", "-o", "server.workers=3", "-o",
                                    "server.listen=[127.0.0.1:0, \"[::1]:0\"]", NULL});
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "\n  workers: 3\n"), "%s", r.out);
    cr_assert(strstr(r.out, "\n  listen: [\"127.0.0.1:0\", \"[::1]:0\"]\n"), "%s", r.out);

    fa_errbuf_t errs = {0};
    fa_config_t *c = fa_config_load_buf("dump", r.out, strlen(r.out), NULL, 0, &errs);
    cr_assert_not_null(c, "%s", errs.text);
    cr_assert_eq(c->server.workers, 3);
    cr_assert_eq(c->server.nlisten, 2);
    cr_assert_eq(c->nroutes, 6);
    fa_config_free(c);
    fa_cli_result_free(&r);
}

Test(cli, a_bad_override_fails_with_its_location)
{
    char conf[4096];
    snprintf(conf, sizeof(conf), "%s", fa_cli_src("conf/fasterapid.yaml"));
    fa_cli_result_t r =
        fa_cli_run((const char *[]){"-c", conf, "-T", "-o", "server.workers=lots", NULL});
    cr_assert_eq(r.status, 1);
    cr_assert_str_eq(r.out, "");
    cr_assert(strstr(r.err, "-o server.workers=lots:1:1: server.workers: expected \"auto\" or an "
                            "integer 1..1024, got \"lots\"\n") == r.err,
              "%s", r.err);
    fa_cli_result_free(&r);
}

Test(cli, version_lists_the_linked_libraries)
{
    fa_cli_result_t r = fa_cli_run((const char *[]){"-v", NULL});
    cr_assert_eq(r.status, 0);
    cr_assert(
        strncmp(r.out, "fasterapid " FA_VERSION "\n", strlen("fasterapid " FA_VERSION "\n")) == 0,
        "%s", r.out);
    cr_assert(strstr(r.out, "\nlibev 4."), "%s", r.out);
    cr_assert(strstr(r.out, "\nllhttp "), "%s", r.out);
    cr_assert(strstr(r.out, "\nlibyaml 0."), "%s", r.out);
    cr_assert(strstr(r.out, "\njemalloc 5.") || strstr(r.out, "libc malloc"), "%s", r.out);
    fa_cli_result_free(&r);
}

Test(cli, help_goes_to_stdout)
{
    fa_cli_result_t r = fa_cli_run((const char *[]){"-h", NULL});
    cr_assert_eq(r.status, 0);
    cr_assert(strncmp(r.out, "usage: fasterapid", 17) == 0, "%s", r.out);
    cr_assert_str_eq(r.err, "");
    fa_cli_result_free(&r);
}

Test(cli, usage_errors_exit_2)
{
    const char *const cases[][3] = {
        {"-x", NULL}, {"--bogus", NULL}, {"-c", NULL}, {"-o", NULL}, {"stray", NULL}};
    const char *const messages[] = {"unknown option -x", "unknown option --bogus",
                                    "option -c needs an argument", "option -o needs an argument",
                                    "unexpected argument stray"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fa_cli_result_t r = fa_cli_run(cases[i]);
        cr_assert_eq(r.status, 2, "%s", cases[i][0]);
        cr_assert(strstr(r.err, messages[i]) == r.err + strlen("fasterapid: "), "%s", r.err);
        cr_assert(strstr(r.err, "\nusage: fasterapid"), "%s", r.err);
        cr_assert_str_eq(r.out, "");
        fa_cli_result_free(&r);
    }
}

Test(cli, serving_with_a_bad_config_exits_1)
{
    char conf[4096];
    snprintf(conf, sizeof(conf), "%s", fa_cli_src("tests/conf/bad.yaml"));
    fa_cli_result_t r = fa_cli_run((const char *[]){"-c", conf, NULL});
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "server.wrokers: unknown key"), "%s", r.err);
    fa_cli_result_free(&r);
}

Test(cli, ephemeral_test_config_is_valid)
{
    char conf[4096];
    snprintf(conf, sizeof(conf), "%s", fa_cli_src("tests/conf/ephemeral.yaml"));
    fa_cli_result_t r = fa_cli_run((const char *[]){"-t", "-c", conf, NULL});
    cr_assert_eq(r.status, 0, "%s", r.err);
    fa_cli_result_free(&r);
}
