/*
 * test_ops.c — operational counters and their renderings: the latency histogram's geometry, the
 * shared region's fold on retire, the /stats?server=1 section and GET /metrics end to end under a
 * bounded load (exact deltas), a worker killed and respawned without the totals going back, the
 * Prometheus exposition checked against the format's grammar (and by promtool when installed),
 * and the access log (json to a file, SIGUSR1 reopen; combined to stdout).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "counters.h"
#include "support/daemon.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CONF "tests/conf/ops.yaml"

/* ---- histogram geometry ---- */

TestSuite(counters, .timeout = 30);

Test(counters, buckets_are_exact_then_within_one_32nd)
{
    for (uint64_t us = 0; us < 64; us++)
        cr_assert_eq(fa_counters_lat_bucket(us), us);
    unsigned prev = 63;
    /* Every value from 64 us to 2^20 us, then samples up to the cap. */
    for (uint64_t us = 64; us < (1u << 20); us++) {
        unsigned b = fa_counters_lat_bucket(us);
        cr_assert(b == prev || b == prev + 1, "buckets are contiguous at %llu", (unsigned long long)us);
        cr_assert_geq(fa_counters_lat_upper(b), us);
        uint64_t lower = b ? fa_counters_lat_upper(b - 1) + 1 : 0;
        cr_assert_leq(lower, us);
        cr_assert_leq((double)(fa_counters_lat_upper(b) - lower + 1), (double)lower / 32.0 + 1e-9,
                      "bucket %u is at most 1/32 of its lower bound wide", b);
        prev = b;
    }
    for (unsigned b = 1; b < FA_LAT_BUCKETS; b++) {
        cr_assert_gt(fa_counters_lat_upper(b), fa_counters_lat_upper(b - 1));
        cr_assert_eq(fa_counters_lat_bucket(fa_counters_lat_upper(b)), b);
    }
    cr_assert_eq(fa_counters_lat_bucket(UINT64_MAX), FA_LAT_BUCKETS - 1);
    cr_assert_eq(fa_counters_lat_bucket(1ULL << 40), FA_LAT_BUCKETS - 1);
}

Test(counters, quantiles_of_a_known_distribution)
{
    static uint64_t h[FA_LAT_BUCKETS];
    memset(h, 0, sizeof(h));
    cr_assert_eq(fa_counters_quantile(h, 0, 0.5), 0);
    /* 1000 samples: 1..1000 us, one each. */
    for (uint64_t us = 1; us <= 1000; us++)
        h[fa_counters_lat_bucket(us)]++;
    struct {
        double q;
        uint64_t want;
    } cases[] = {{0.5, 500}, {0.9, 900}, {0.99, 990}, {0.999, 999}, {1.0, 1000}, {0.001, 1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t got = fa_counters_quantile(h, 1000, cases[i].q);
        cr_assert_geq(got, cases[i].want, "q=%g", cases[i].q);
        cr_assert_leq((double)got, cases[i].want * (1 + 1.0 / 32), "q=%g got %llu", cases[i].q,
                      (unsigned long long)got);
    }
}

Test(counters, retire_folds_a_slot_into_the_totals)
{
    char err[256];
    fa_counters_t *c = fa_counters_create(err, sizeof(err));
    cr_assert(c, "%s", err);
    fa_counters_view_t *v = malloc(sizeof(*v));
    fa_counters_slot_t *a = fa_counters_slot_open(c, 3, 0, 1);
    fa_counters_slot_t *b = fa_counters_slot_open(c, 7, 1, 1);
    fa_counters_slot_set_pid(a, 100);
    fa_counters_slot_set_pid(b, 101);
    for (int i = 0; i < 10; i++)
        fa_counters_record(a, 200, 0.001);
    fa_counters_record(b, 404, 0.5);
    fa_counters_record(b, 503, 0.0);
    fa_counters_record(b, 99, 0.0); /* "other" */
    fa_counters_set_conns(a, 2, 5, 1);
    fa_counters_set_conns(b, 1, 3, 0);

    fa_counters_read(c, v);
    cr_assert_eq(v->requests, 13);
    cr_assert_eq(v->responses[2], 10);
    cr_assert_eq(v->responses[4], 1);
    cr_assert_eq(v->responses[5], 1);
    cr_assert_eq(v->responses[0], 1);
    cr_assert_eq(v->latency_count, 13);
    cr_assert_eq(v->latency_sum_us, 10 * 1000 + 500000);
    cr_assert_eq(v->conns_active, 3);
    cr_assert_eq(v->conns_total, 8);
    cr_assert_eq(v->accept_errors, 1);
    cr_assert_eq(v->nworkers, 2);
    cr_assert_eq(v->workers[0].pid, 100);
    cr_assert_eq(v->workers[0].requests, 10);
    cr_assert_eq(v->workers[1].worker, 1);
    cr_assert_eq(v->workers[1].requests, 3);
    cr_assert_eq(fa_counters_requests(c), 13);

    /* Worker 1 dies: its figures stay in the totals, its line goes, its active connections
     * go, and the slot starts from zero for the next process. */
    fa_counters_slot_retire(c, 7);
    fa_counters_read(c, v);
    cr_assert_eq(v->requests, 13);
    cr_assert_eq(v->responses[4], 1);
    cr_assert_eq(v->latency_count, 13);
    cr_assert_eq(v->conns_total, 8);
    cr_assert_eq(v->conns_active, 2);
    cr_assert_eq(v->nworkers, 1);
    cr_assert_eq(v->workers[0].worker, 0);
    b = fa_counters_slot_open(c, 7, 1, 2);
    fa_counters_record(b, 200, 0.0);
    fa_counters_read(c, v);
    cr_assert_eq(v->requests, 14);
    cr_assert_eq(v->nworkers, 2);
    cr_assert_eq(v->workers[1].requests, 1);
    cr_assert_eq(v->workers[1].generation, 2);
    fa_counters_slot_retire(c, 7);
    fa_counters_slot_retire(c, 7); /* not live: no-op */
    cr_assert_eq(fa_counters_requests(c), 14);
    free(v);
    fa_counters_destroy(c);
}

/* ---- the Prometheus text format (0.0.4), checked line by line ---- */

static bool is_name(const char *s, size_t n, bool colon)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || (colon && s[0] == ':')))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || (colon && s[i] == ':')))
            return false;
    return true;
}

static bool is_value(const char *s, size_t n)
{
    char tmp[64];
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (!strcmp(tmp, "+Inf") || !strcmp(tmp, "-Inf") || !strcmp(tmp, "NaN"))
        return true;
    char *end;
    strtod(tmp, &end);
    return end == tmp + n && !isspace((unsigned char)tmp[0]);
}

/* Returns NULL if text is a valid exposition, else a static message naming the line. */
static const char *prom_check(const char *text)
{
    static char why[512];
    char families[64][128], types[64][16], seen[512][256];
    int nfam = 0, nseen = 0;
    const char *cur = NULL; /* family whose samples are being read */
    size_t len = strlen(text);
    if (len == 0 || text[len - 1] != '\n')
        return "the text must end with a newline";
    int lineno = 0;
    for (const char *l = text; *l;) {
        const char *e = strchr(l, '\n');
        size_t n = (size_t)(e - l);
        char line[1024];
        lineno++;
        if (n >= sizeof(line))
            return "line too long";
        memcpy(line, l, n);
        line[n] = 0;
        l = e + 1;
#define BAD(msg)                                                                                   \
    do {                                                                                           \
        snprintf(why, sizeof(why), "line %d: %s: %.400s", lineno, msg, line);                      \
        return why;                                                                                \
    } while (0)
        if (n == 0)
            BAD("empty line");
        if (line[0] == '#') {
            char kw[8], name[128], rest[256];
            int k = sscanf(line, "# %7s %127s %255[^\n]", kw, name, rest);
            if (k >= 2 && !strcmp(kw, "TYPE")) {
                if (!is_name(name, strlen(name), true))
                    BAD("bad metric name in TYPE");
                if (k != 3 || (strcmp(rest, "counter") && strcmp(rest, "gauge") &&
                               strcmp(rest, "summary") && strcmp(rest, "histogram") &&
                               strcmp(rest, "untyped")))
                    BAD("bad type");
                for (int i = 0; i < nfam; i++)
                    if (!strcmp(families[i], name))
                        BAD("second TYPE for a family");
                if (nfam == 64)
                    BAD("too many families for the checker");
                snprintf(families[nfam], sizeof(families[0]), "%s", name);
                snprintf(types[nfam], sizeof(types[0]), "%.15s", rest);
                nfam++;
                cur = families[nfam - 1];
            } else if (k >= 2 && !strcmp(kw, "HELP")) {
                if (!is_name(name, strlen(name), true))
                    BAD("bad metric name in HELP");
            }
            continue; /* other comments are allowed */
        }
        /* sample: name [{labels}] value [timestamp] */
        size_t i = 0;
        while (i < n && line[i] != '{' && line[i] != ' ')
            i++;
        char name[128];
        if (i >= sizeof(name) || !is_name(line, i, true))
            BAD("bad metric name");
        memcpy(name, line, i);
        name[i] = 0;
        if (i < n && line[i] == '{') {
            i++;
            while (i < n && line[i] != '}') {
                size_t s = i;
                while (i < n && line[i] != '=')
                    i++;
                if (i >= n || !is_name(line + s, i - s, false))
                    BAD("bad label name");
                if (i + 1 >= n || line[i + 1] != '"')
                    BAD("label value must be quoted");
                i += 2;
                while (i < n && line[i] != '"') {
                    if (line[i] == '\\') {
                        if (i + 1 >= n || !strchr("\\\"n", line[i + 1]))
                            BAD("bad escape in label value");
                        i++;
                    }
                    i++;
                }
                if (i >= n)
                    BAD("unterminated label value");
                i++;
                if (i < n && line[i] == ',')
                    i++;
                else if (i < n && line[i] != '}')
                    BAD("expected , or } after a label");
            }
            if (i >= n)
                BAD("unterminated label set");
            i++;
        }
        if (i >= n || line[i] != ' ')
            BAD("expected a space before the value");
        i++;
        size_t vs = i;
        while (i < n && line[i] != ' ')
            i++;
        if (!is_value(line + vs, i - vs))
            BAD("bad value");
        if (i < n) { /* timestamp: an integer */
            i++;
            size_t ts = i;
            if (i < n && line[i] == '-')
                i++;
            while (i < n && isdigit((unsigned char)line[i]))
                i++;
            if (i != n || i == ts)
                BAD("bad timestamp");
        }
        /* The sample belongs to the family of the last TYPE: name or, for a summary or a
         * histogram, name_sum/_count/_bucket. */
        if (!cur)
            BAD("sample before any TYPE");
        size_t fl = strlen(cur);
        const char *type = types[nfam - 1];
        bool ok = !strcmp(name, cur);
        if (!ok && strncmp(name, cur, fl) == 0) {
            const char *suf = name + fl;
            if (!strcmp(type, "summary") || !strcmp(type, "histogram"))
                ok = !strcmp(suf, "_sum") || !strcmp(suf, "_count") ||
                     (!strcmp(type, "histogram") && !strcmp(suf, "_bucket"));
        }
        if (!ok)
            BAD("sample outside its family (families must be contiguous)");
        if (!strcmp(type, "summary") && !strcmp(name, cur) && !strstr(line, "quantile=\""))
            BAD("summary sample without a quantile label");
        /* No series twice. */
        char series[256];
        snprintf(series, sizeof(series), "%.*s", (int)(vs - 1), line);
        for (int j = 0; j < nseen; j++)
            if (!strcmp(seen[j], series))
                BAD("duplicate series");
        if (nseen < 512)
            snprintf(seen[nseen++], sizeof(seen[0]), "%s", series);
#undef BAD
    }
    return NULL;
}

/* Inline arrays, not pointers: Criterion runs each case in a fresh process. */
typedef struct {
    char text[96];
    bool valid;
    char why[48];
} prom_case_t;

ParameterizedTestParameters(prom, checker_cases)
{
    static prom_case_t cases[] = {
        {"# HELP a_total A.\n# TYPE a_total counter\na_total 1\n", true, "a counter"},
        {"# TYPE s summary\ns{quantile=\"0.5\"} 0.1\ns_sum 2\ns_count 3\n", true, "a summary"},
        {"# TYPE g gauge\ng{a=\"x\\\"y\",b=\"\"} -1.5e3 1700000000000\n", true,
         "labels, escapes, timestamp"},
        {"# TYPE g gauge\ng +Inf\n", true, "infinity"},
        {"# TYPE g gauge\ng 1", false, "no final newline"},
        {"g 1\n", false, "sample before TYPE"},
        {"# TYPE g gauge\ng 1x\n", false, "bad value"},
        {"# TYPE g gauge\n1g 1\n", false, "bad name"},
        {"# TYPE g gauge\ng{a=x} 1\n", false, "unquoted label value"},
        {"# TYPE g gauge\ng{a=\"x} 1\n", false, "unterminated label value"},
        {"# TYPE g gauge\ng{a=\"\\q\"} 1\n", false, "bad escape"},
        {"# TYPE g gauge\ng{a=\"1\"} 1\ng{a=\"1\"} 2\n", false, "duplicate series"},
        {"# TYPE g gauge\n# TYPE g gauge\ng 1\n", false, "TYPE twice"},
        {"# TYPE g flute\ng 1\n", false, "unknown type"},
        {"# TYPE g gauge\ng 1\n# TYPE h gauge\nh 1\ng 2\n", false, "family split"},
        {"# TYPE s summary\ns 1\n", false, "summary sample without quantile"},
        {"# TYPE g gauge\n\ng 1\n", false, "empty line"},
        {"# TYPE g gauge\ng  1\n", false, "two spaces"},
    };
    return cr_make_param_array(prom_case_t, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(prom_case_t *c, prom, checker_cases)
{
    const char *why = prom_check(c->text);
    if (c->valid)
        cr_assert_null(why, "%s: %s", c->why, why);
    else
        cr_assert_not_null(why, "%s: accepted", c->why);
}

/* ---- end to end ---- */

TestSuite(ops, .timeout = 120);

static fa_tresp_t *get(int port, const char *target)
{
    fa_tresp_t *r = malloc(sizeof(*r));
    char req[256];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nUser-Agent: ops-test\r\n\r\n", target);
    cr_assert_eq(fa_tc_once(port, req, r), 200, "GET %s", target);
    r->body[r->body_len] = 0;
    return r;
}

/* The number after "key": in json (first occurrence after from, or anywhere). */
static long long jnum(const char *json, const char *key)
{
    char pat[96];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(json, pat);
    cr_assert(p, "no %s in %s", key, json);
    return strtoll(p + strlen(pat), NULL, 10);
}

/* The value of the sample whose line starts with series + ' ' in a metrics text. */
static double metric(const char *text, const char *series)
{
    char pat[256];
    snprintf(pat, sizeof(pat), "\n%s ", series);
    const char *p = strstr(text, pat);
    cr_assert(p, "no %s in the metrics", series);
    return strtod(p + strlen(pat), NULL);
}

typedef struct {
    int port, count, ok;
    bool bad; /* send 404s instead of events */
} load_t;

/* Posts count events (or GETs count unknown paths) on one keep-alive connection. */
static void *load_thread(void *arg)
{
    load_t *l = arg;
    fa_tc_t *c = malloc(sizeof(*c));
    fa_tresp_t *r = malloc(sizeof(*r));
    if (!fa_tc_connect(c, l->port))
        goto out;
    for (int i = 0; i < l->count; i++) {
        char req[256], user[32], val[16];
        snprintf(user, sizeof(user), "u%d", i % 50);
        snprintf(val, sizeof(val), "%d", i % 7);
        const char *raw = l->bad ? "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n"
                                 : fa_tc_event(req, sizeof(req), user, val);
        if (!fa_tc_send(c, raw, strlen(raw)) || !fa_tc_read(c, r, false))
            break;
        if (r->status == (l->bad ? 404 : 200))
            l->ok++;
    }
    fa_tc_close(c);
out:
    free(c);
    free(r);
    return NULL;
}

/* Runs nthreads x count requests; returns how many got the expected status. */
static int run_load(int port, int nthreads, int count, bool bad)
{
    pthread_t t[8];
    load_t l[8];
    for (int i = 0; i < nthreads; i++) {
        l[i] = (load_t){.port = port, .count = count, .bad = bad};
        pthread_create(&t[i], NULL, load_thread, &l[i]);
    }
    int ok = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        ok += l[i].ok;
    }
    return ok;
}

Test(ops, stats_server_section_and_metrics_under_load)
{
    fa_td_t d;
    cr_assert(fa_td_start(&d, CONF, NULL), "daemon did not start");

    /* Without ?server=1 the answer is exactly the four 1MRC fields. */
    fa_tresp_t *r = get(d.port, "/stats");
    long long tot, uniq;
    cr_assert_eq(sscanf(r->body, "{\"totalRequests\":%lld,\"uniqueUsers\":%lld,", &tot, &uniq), 2);
    cr_assert_null(strstr(r->body, "server"), "%s", r->body);
    cr_assert_eq(r->body[r->body_len - 1], '}');
    free(r);
    r = get(d.port, "/stats?server=0");
    cr_assert_null(strstr(r->body, "server"), "%s", r->body);
    free(r);

    fa_tresp_t *before = get(d.port, "/stats?server=1");
    long long req0 = jnum(before->body, "requests"), ok0 = jnum(before->body, "2xx"),
              nf0 = jnum(before->body, "4xx"), conn0 = jnum(before->body, "total");

    int ok = run_load(d.port, 4, 250, false);
    int nf = run_load(d.port, 2, 20, true);
    cr_assert_eq(ok, 1000);
    cr_assert_eq(nf, 40);

    fa_tresp_t *after = get(d.port, "/stats?x=1&server=1");
    const char *b = after->body;
    /* The four fields first, unchanged, then the server section. */
    char sum[64], avg[64];
    cr_assert_eq(sscanf(b, "{\"totalRequests\":%lld,\"uniqueUsers\":%lld,\"sum\":%63[^,],\"avg\":%63[^,]"
                           ",\"server\":{",
                        &tot, &uniq, sum, avg),
                 4, "%s", b);
    cr_assert_eq(tot, 1000);
    cr_assert_eq(uniq, 50);
    cr_assert_eq(b[after->body_len - 1], '}');
    /* Exact deltas: the load, plus the first server stats request itself. */
    cr_assert_eq(jnum(b, "requests") - req0, 1000 + 40 + 1, "%s", b);
    cr_assert_eq(jnum(b, "2xx") - ok0, 1000 + 1);
    cr_assert_eq(jnum(b, "4xx") - nf0, 40);
    cr_assert_eq(jnum(b, "5xx"), 0);
    cr_assert_geq(jnum(b, "total") - conn0, 4 + 2 + 1, "at least one connection per thread");
    cr_assert_eq(jnum(b, "workers"), 2);
    cr_assert_geq(jnum(b, "uptimeSeconds"), 0);
    long long p50 = jnum(b, "p50"), p90 = jnum(b, "p90"), p99 = jnum(b, "p99"),
              p999 = jnum(b, "p999");
    cr_assert(p50 <= p90 && p90 <= p99 && p99 <= p999, "%s", b);
    /* Per-worker requests add up to the total while no worker has died. */
    const char *pw = strstr(b, "\"perWorker\":[");
    cr_assert(pw);
    long long sumw = 0;
    int nw = 0;
    for (const char *p = pw; (p = strstr(p, "\"requests\":")); p++, nw++)
        sumw += strtoll(p + 11, NULL, 10);
    cr_assert_eq(nw, 2);
    cr_assert_eq(sumw, jnum(b, "requests"));

    /* /metrics: valid exposition, same figures (plus the stats request in between). */
    fa_tresp_t *m = get(d.port, "/metrics");
    char ctype[128];
    cr_assert(fa_tresp_header(m, "Content-Type", ctype, sizeof(ctype)));
    cr_assert(strstr(ctype, "text/plain; version=0.0.4"), "%s", ctype);
    const char *why = prom_check(m->body);
    cr_assert_null(why, "%s", why);
    char *text = malloc(m->body_len + 2);
    text[0] = '\n';
    memcpy(text + 1, m->body, m->body_len + 1);
    cr_assert_eq(metric(text, "fasterapid_requests_total"), jnum(b, "requests") + 1);
    cr_assert_eq(metric(text, "fasterapid_responses_total{class=\"4xx\"}"), jnum(b, "4xx"));
    cr_assert_eq(metric(text, "fasterapid_events_total"), 1000);
    cr_assert_eq(metric(text, "fasterapid_unique_users"), 50);
    cr_assert_eq(metric(text, "fasterapid_event_value_sum"), strtod(sum, NULL));
    cr_assert_eq(metric(text, "fasterapid_workers"), 2);
    /* Latencies enter the histogram when their loop iteration ends (one clock read each), so
     * another worker's last iteration may still be finishing: its count catches up with the
     * response counts, which are immediate. */
    cr_assert_leq(metric(text, "fasterapid_request_duration_seconds_count"),
                  jnum(b, "requests") + 1);
    bool caught_up = metric(text, "fasterapid_request_duration_seconds_count") ==
                     jnum(b, "requests") + 1;
    for (int i = 0; i < 200 && !caught_up; i++) {
        usleep(10000);
        fa_tresp_t *m2 = get(d.port, "/metrics");
        char *t2 = malloc(m2->body_len + 2);
        t2[0] = '\n';
        memcpy(t2 + 1, m2->body, m2->body_len + 1);
        double total = metric(t2, "fasterapid_requests_total");
        double seen = metric(t2, "fasterapid_request_duration_seconds_count");
        cr_assert_leq(seen, total);
        caught_up = seen == total;
        free(t2);
        free(m2);
    }
    cr_assert(caught_up, "every response's latency is observed once its iteration ended");
    cr_assert_leq(metric(text, "fasterapid_request_duration_seconds{quantile=\"0.5\"}"),
                  metric(text, "fasterapid_request_duration_seconds{quantile=\"0.999\"}"));
    if (access("/usr/bin/promtool", X_OK) == 0) {
        char path[64];
        snprintf(path, sizeof(path), "/tmp/fa-metrics-%d.txt", (int)getpid());
        FILE *f = fopen(path, "w");
        fwrite(m->body, 1, m->body_len, f);
        fclose(f);
        char cmd[160];
        snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
        cr_assert_eq(system(cmd), 0, "promtool rejects the exposition");
        unlink(path);
    }
    free(text);
    free(m);
    free(before);
    free(after);
    cr_assert_eq(fa_td_stop(&d, SIGTERM, 20), 0);
}

Test(ops, totals_survive_a_killed_worker)
{
    fa_td_t d;
    cr_assert(fa_td_start(&d, CONF, NULL));
    cr_assert_eq(run_load(d.port, 2, 100, false), 200);
    fa_tresp_t *r = get(d.port, "/stats?server=1");
    long long before = jnum(r->body, "requests");
    free(r);

    pid_t pids[8];
    cr_assert_eq(fa_td_workers(&d, pids, 8), 2);
    kill(pids[0], SIGKILL);
    cr_assert(fa_td_log_has(&d, "respawning", 10));
    /* Wait for the replacement to run, then compare. */
    pid_t now[8];
    for (int i = 0; i < 500; i++) {
        int n = fa_td_workers(&d, now, 8);
        if (n == 2 && now[0] != pids[0] && now[1] != pids[0])
            break;
        usleep(10000);
    }
    bool found = false;
    for (int i = 0; i < 500 && !found; i++) {
        r = get(d.port, "/stats?server=1");
        found = jnum(r->body, "workers") == 2;
        if (found) {
            /* The dead worker's responses stay counted: only the stats requests were added. */
            long long after = jnum(r->body, "requests");
            cr_assert_eq(after, before + 1 + i, "%s", r->body);
            char pid[32];
            snprintf(pid, sizeof(pid), "\"pid\":%d,", (int)pids[0]);
            cr_assert_null(strstr(r->body, pid), "the dead worker is gone: %s", r->body);
        }
        free(r);
        if (!found)
            usleep(10000);
    }
    cr_assert(found, "the respawned worker never showed up");
    cr_assert_eq(fa_td_stop(&d, SIGTERM, 20), 0);
}

/* ---- access log ---- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* Waits up to timeout_s for path to hold n lines containing needle; returns how many it has. */
static int wait_lines(const char *path, const char *needle, int n, double timeout_s)
{
    for (int i = 0;; i++) {
        char *t = slurp(path);
        int found = 0;
        for (const char *p = t; p && (p = strstr(p, needle)); p++)
            found++;
        if (found >= n || i >= (int)(timeout_s * 50))
            return found;
        usleep(20000);
    }
}

Test(ops, access_log_json_to_a_file_reopened_on_sigusr1)
{
    char path[128], moved[140], o1[200];
    snprintf(path, sizeof(path), "/tmp/fa-access-%d.log", (int)getpid());
    snprintf(moved, sizeof(moved), "%s.1", path);
    unlink(path);
    unlink(moved);
    snprintf(o1, sizeof(o1), "log.access_path=%s", path);
    const char *ov[] = {"log.access=true", o1, "log.access_format=json", NULL};
    fa_td_t d;
    cr_assert(fa_td_start(&d, CONF, ov));

    cr_assert_eq(run_load(d.port, 2, 10, false), 20);
    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert_eq(fa_tc_once(d.port,
                            "GET /nope?q=%22x HTTP/1.1\r\nHost: t\r\nUser-Agent: a\"b\\c\xc3\xa9\r\n\r\n",
                            r),
                 404);
    /* Lines arrive within the flush interval (1 s), not per request. */
    cr_assert_eq(wait_lines(path, "\"method\":\"POST\",\"target\":\"/event\",\"proto\":\"HTTP/1.1\","
                                  "\"status\":200,\"bytes\":0,",
                            20, 10),
                 20);
    cr_assert_eq(wait_lines(path,
                            "\"target\":\"/nope?q=%22x\",\"proto\":\"HTTP/1.1\",\"status\":404,"
                            "\"bytes\":21,",
                            1, 10),
                 1);
    char *t = slurp(path);
    cr_assert(strstr(t, "\"user_agent\":\"a\\\"b\\\\c\\u00c3\\u00a9\""), "escaped user agent: %s", t);
    cr_assert(strstr(t, "{\"time\":\"20"), "%s", t);
    cr_assert(strstr(t, "\"remote\":\"127.0.0.1\""), "%s", t);
    /* Every line is one whole JSON object. */
    for (char *p = t; *p;) {
        char *e = strchr(p, '\n');
        cr_assert(e, "a partial line was written");
        cr_assert_eq(*p, '{');
        cr_assert_eq(e[-1], '}');
        p = e + 1;
    }

    /* logrotate: move the file, SIGUSR1 to the master, the workers write to a new one. */
    cr_assert_eq(rename(path, moved), 0);
    kill(d.pid, SIGUSR1);
    struct stat st;
    bool reopened = false;
    for (int i = 0; i < 500 && !reopened; i++) {
        reopened = stat(path, &st) == 0;
        if (!reopened)
            usleep(10000);
    }
    cr_assert(reopened, "the access log was not reopened");
    cr_assert_eq(run_load(d.port, 1, 5, false), 5);
    cr_assert_eq(wait_lines(path, "\"target\":\"/event\"", 5, 10), 5);
    cr_assert_eq(wait_lines(moved, "\"target\":\"/event\"", 20, 0), 20, "the old file keeps its lines");
    free(r);
    cr_assert_eq(fa_td_stop(&d, SIGTERM, 20), 0);
    unlink(path);
    unlink(moved);
}

Test(ops, access_log_combined_to_stdout_flushed_at_exit)
{
    const char *ov[] = {"log.access=true", NULL};
    fa_td_t d;
    cr_assert(fa_td_start(&d, CONF, ov));
    fa_tresp_t *r = malloc(sizeof(*r));
    cr_assert_eq(fa_tc_once(d.port,
                            "GET /stats HTTP/1.1\r\nHost: t\r\nReferer: http://x/\r\n"
                            "User-Agent: ua/1\r\n\r\n",
                            r),
                 200);
    char want[160];
    snprintf(want, sizeof(want), "\"GET /stats HTTP/1.1\" 200 %zu \"http://x/\" \"ua/1\"",
             r->body_len);
    free(r);
    /* Stopped at once: the line must come out at exit even before the flush timer. */
    cr_assert_eq(fa_td_stop(&d, SIGTERM, 20), 0);
    cr_assert(fa_td_log_has(&d, want, 0), "no combined line %s", want);
    cr_assert(fa_td_log_has(&d, "127.0.0.1 - - [", 0));
}
