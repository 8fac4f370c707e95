/*
 * test_install.c — `make install` and `make uninstall` into temporary trees, and the installed
 * systemd unit checked by `systemd-analyze verify`.
 *
 * The tests install the binary under test ($FASTERAPID_BIN, through INSTALL_BIN) so that they never
 * build anything; $FA_SRCDIR is the source tree (both set by make check).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(install, .timeout = 60);

static char tmp[128];

static void make_tmp(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/fa-install-XXXXXX");
    cr_assert(mkdtemp(tmp));
}

static void rm_tmp(void)
{
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    (void)!system(cmd); /* best effort: a leftover temporary tree is harmless */
}

/* Runs `make -C SRC <args> INSTALL_BIN=...`, output to out (appended); returns the exit status. */
static int run_make(const char *args, const char *out)
{
    const char *src = getenv("FA_SRCDIR"), *bin = getenv("FASTERAPID_BIN");
    cr_assert(src && bin, "run through make check (FA_SRCDIR and FASTERAPID_BIN)");
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "make --no-print-directory -C '%s' %s INSTALL_BIN='%s' >>'%s' 2>&1",
             src, args, bin, out);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot read %s", path);
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s is missing", path);
    return st.st_mode & 07777;
}

Test(install, destdir_layout_keeps_an_edited_config_and_uninstalls)
{
    make_tmp();
    char out[200], args[400], p[400];
    snprintf(out, sizeof(out), "%s/make.log", tmp);
    snprintf(args, sizeof(args), "install DESTDIR='%s/root'", tmp);
    cr_assert_eq(run_make(args, out), 0, "%s", slurp(out));

    snprintf(p, sizeof(p), "%s/root/usr/local/bin/fasterapid", tmp);
    cr_assert_eq(mode_of(p), 0755);
    snprintf(p, sizeof(p), "%s/root/etc/fasterapid/fasterapid.yaml", tmp);
    cr_assert_eq(mode_of(p), 0644);
    char *conf = slurp(p);
    cr_assert(strstr(conf, "- match: GET /metrics"), "the shipped config is installed");
    snprintf(p, sizeof(p), "%s/root/lib/systemd/system/fasterapid.service", tmp);
    cr_assert_eq(mode_of(p), 0644);
    char *unit = slurp(p);
    cr_assert_null(strstr(unit, "@BINDIR@"), "every placeholder is filled in:\n%s", unit);
    cr_assert_null(strstr(unit, "@SYSCONFDIR@"), "every placeholder is filled in:\n%s", unit);
    cr_assert(strstr(unit, "\nExecStart=/usr/local/bin/fasterapid -c "
                           "/etc/fasterapid/fasterapid.yaml"),
              "%s", unit);
    cr_assert(strstr(unit, "\nExecStartPre=/usr/local/bin/fasterapid -t -c "
                           "/etc/fasterapid/fasterapid.yaml\n"),
              "%s", unit);
    cr_assert(strstr(unit, "\nType=notify\n"));

    /* An edited config survives a second install. */
    snprintf(p, sizeof(p), "%s/root/etc/fasterapid/fasterapid.yaml", tmp);
    FILE *f = fopen(p, "a");
    fputs("# edited by the operator\n", f);
    fclose(f);
    cr_assert_eq(run_make(args, out), 0, "%s", slurp(out));
    cr_assert(strstr(slurp(p), "# edited by the operator\n"), "the config was overwritten");
    cr_assert(strstr(slurp(out), "keeping existing"), "%s", slurp(out));

    /* Uninstall: binary and unit go, the configuration stays. */
    snprintf(args, sizeof(args), "uninstall DESTDIR='%s/root'", tmp);
    cr_assert_eq(run_make(args, out), 0, "%s", slurp(out));
    snprintf(p, sizeof(p), "%s/root/usr/local/bin/fasterapid", tmp);
    cr_assert_neq(access(p, F_OK), 0, "binary left behind");
    snprintf(p, sizeof(p), "%s/root/lib/systemd/system/fasterapid.service", tmp);
    cr_assert_neq(access(p, F_OK), 0, "unit left behind");
    snprintf(p, sizeof(p), "%s/root/etc/fasterapid/fasterapid.yaml", tmp);
    cr_assert_eq(access(p, F_OK), 0, "the configuration was removed");
    rm_tmp();
}

/* Runs systemd-analyze verify on unit; returns its status and its output in out. */
static int verify(const char *unit, char *out, size_t len)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "SYSTEMD_LOG_COLOR=0 systemd-analyze verify '%s' 2>&1", unit);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(install, installed_unit_passes_systemd_analyze_verify)
{
    if (access("/usr/bin/systemd-analyze", X_OK) != 0)
        cr_skip_test("systemd-analyze is not installed (Debian package systemd)");
    make_tmp();
    char out[200], args[600], unit[300], text[8192];

    /* Can systemd-analyze verify anything here? A trivial unit tells; only if it cannot is the
     * test skipped. */
    snprintf(unit, sizeof(unit), "%s/probe.service", tmp);
    FILE *f = fopen(unit, "w");
    fputs("[Service]\nType=oneshot\nExecStart=/bin/true\n", f);
    fclose(f);
    if (verify(unit, text, sizeof(text)) != 0) {
        rm_tmp();
        cr_skip_test("systemd-analyze verify cannot run in this environment: %s", text);
    }
    /* ... and does it catch a broken one? Then a clean verdict below means something. */
    f = fopen(unit, "w");
    fputs("[Service]\nType=notify\nExecStart=relative/path\n", f);
    fclose(f);
    cr_assert_neq(verify(unit, text, sizeof(text)), 0, "a broken unit verified: %s", text);

    /* Install with real paths (no DESTDIR) under the temporary tree, so that the unit's
     * ExecStart, ExecStartPre and config exist where it says. */
    snprintf(out, sizeof(out), "%s/make.log", tmp);
    snprintf(args, sizeof(args), "install PREFIX='%s/usr' SYSCONFDIR='%s/etc' UNITDIR='%s/unit'",
             tmp, tmp, tmp);
    cr_assert_eq(run_make(args, out), 0, "%s", slurp(out));
    snprintf(unit, sizeof(unit), "%s/unit/fasterapid.service", tmp);
    int rc = verify(unit, text, sizeof(text));
    cr_assert_eq(rc, 0, "systemd-analyze verify failed:\n%s", text);
    cr_assert_null(strstr(text, "fasterapid.service"), "warnings about the unit:\n%s", text);

    /* The unit's ExecStartPre (the config test) passes on the installed config. */
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "'%s/usr/bin/fasterapid' -t -c '%s/etc/fasterapid/fasterapid.yaml'"
                               " >/dev/null 2>&1",
             tmp, tmp);
    cr_assert_eq(system(cmd), 0, "the installed config does not pass -t");
    rm_tmp();
}
