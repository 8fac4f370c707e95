/*
 * bench_json.c — picks the JSON library by figures: jsmn (through fa_json_parse, the full strict
 * path we ship) against yajl, on the 1MRC body and on a ~1 KiB realistic object.
 *
 * Lines printed (median of 7 runs each):
 *   bench: json.parse_<input>.jsmn          fa_json_parse: jsmn + strict validation, tokens in a pool
 *   bench: json.parse_<input>.yajl          yajl, fresh handle per document (yajl_alloc ... yajl_free),
 *                                           no callbacks: validation only, no values extracted
 *   bench: json.parse_<input>.yajl_reuse    yajl, one handle for every document (allow_multiple_values),
 *                                           so no allocation: yajl's best case, no callbacks either
 *   bench: json.parse_<input>.yajl_tree     yajl_tree_parse + yajl_tree_free (a tree, like our tokens)
 *   bench: json.parse_<input>.jsmn_raw      jsmn alone, token array by upper bound: the tokenizer cost
 *   bench: json.parse_<input>.jsmn_count    jsmn counting pass, then a parse with the exact count
 *   bench: json.extract_1mrc                parse + userId string + value number: what the pipeline does
 *   bench: json.write_stats                 a /stats-like object with the pool writer
 *   bench: json.parse_1mrc.instr            instructions per fa_json_parse of the 1MRC body (callgrind)
 *   bench: json.parse_<input>.<lib>_instr   the same for yajl (fresh handle) and for the 1 KiB input
 *
 * Usage: bench_json [--no-callgrind]. Internally re-runs itself under callgrind with
 * --instr <jsmn|yajl> <1mrc|1k> N; the instruction counts are the figures to trust on a busy box.
 */
#include "bench.h"
#include "json.h"
#include "pool.h"

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include <valgrind/callgrind.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MRC "{\"userId\":\"user_42\",\"value\":42.5}"

/* The same realistic object as tests/test_json.c. */
static const char nested_doc[] =
    "{\"id\":\"evt_01HZY3K8Q4\",\"type\":\"purchase\",\"userId\":\"user_8812\",\"value\":129.99,"
    "\"currency\":\"EUR\",\"ts\":1732640400123,\"session\":{\"id\":\"s-77af\",\"ip\":\"203.0.113.7\","
    "\"ua\":\"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\",\"geo\":{\"country\":\"FR\","
    "\"city\":\"Lyon\",\"lat\":45.764,\"lon\":4.8357}},\"items\":[{\"sku\":\"A-1001\",\"qty\":2,"
    "\"price\":19.5,\"tags\":[\"book\",\"paper\"]},{\"sku\":\"B-2002\",\"qty\":1,\"price\":90.99,"
    "\"tags\":[\"gift\"]}],\"flags\":{\"test\":false,\"priority\":true,\"coupon\":null},"
    "\"note\":\"caf\\u00e9 \\\"quoted\\\" \\\\ path\\/x\\n\",\"scores\":[1,2,3,5,8,13,21,34,55,89],"
    "\"meta\":{\"source\":\"web\",\"campaign\":\"autumn-2024\",\"ref\":\"https://example.com/p?q=1\","
    "\"ab\":[\"control\",\"variant-b\"],\"weights\":[0.25,0.5,-1.5e-3,0]},"
    "\"history\":[{\"at\":1732640000,\"ev\":\"view\"},{\"at\":1732640100,\"ev\":\"cart\"},"
    "{\"at\":1732640300,\"ev\":\"checkout\"}],\"empty\":{},\"none\":[]}";

#define RUNS 7

static const char *in_buf;
static size_t in_len;
static fa_pool_t pool;
static yajl_handle reuse_handle;
static volatile int sink;

static int op_jsmn(void)
{
    fa_json_t doc;
    int r = fa_json_parse(&doc, &pool, in_buf, in_len, NULL, NULL);
    fa_pool_reset(&pool);
    return r;
}

static int op_yajl(void)
{
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    int r = yajl_parse(h, (const unsigned char *)in_buf, in_len) != yajl_status_ok ||
            yajl_complete_parse(h) != yajl_status_ok;
    yajl_free(h);
    return r;
}

static int op_yajl_reuse(void)
{
    return yajl_parse(reuse_handle, (const unsigned char *)in_buf, in_len) != yajl_status_ok;
}

static int op_yajl_tree(void)
{
    yajl_val v = yajl_tree_parse(in_buf, NULL, 0); /* needs the NUL our literals have */
    int r = v == NULL;
    yajl_tree_free(v);
    return r;
}

static jsmntok_t raw_toks[1024];

static int op_jsmn_raw(void)
{
    jsmn_parser p;
    jsmn_init(&p);
    return jsmn_parse(&p, in_buf, in_len, raw_toks, (unsigned)(in_len / 2 + 2)) < 0;
}

static int op_jsmn_count(void)
{
    jsmn_parser p;
    jsmn_init(&p);
    int n = jsmn_parse(&p, in_buf, in_len, NULL, 0);
    jsmntok_t *t = fa_pool_alloc(&pool, sizeof(*t) * (size_t)n);
    jsmn_init(&p);
    int r = jsmn_parse(&p, in_buf, in_len, t, (unsigned)n) < 0;
    fa_pool_reset(&pool);
    return r;
}

static int op_extract(void)
{
    fa_json_t doc;
    if (fa_json_parse(&doc, &pool, in_buf, in_len, NULL, NULL) < 0)
        return 1;
    int u = fa_json_object_get(&doc, 0, "userId", 6);
    int v = fa_json_object_get(&doc, 0, "value", 5);
    fa_str_t s;
    double d;
    int r = u < 0 || v < 0 || !fa_json_str(&doc, u, &pool, &s) || !fa_json_number(&doc, v, &d) ||
            fa_utf8_len(s.ptr, s.len) > 64;
    sink += (int)d;
    fa_pool_reset(&pool);
    return r;
}

static int op_write(void)
{
    fa_json_writer_t w;
    fa_json_writer_init(&w, &pool, 256);
    fa_json_write_begin_object(&w);
    fa_json_write_key(&w, "count", 5);
    fa_json_write_int(&w, 1000000);
    fa_json_write_key(&w, "uniqueUsers", 11);
    fa_json_write_int(&w, 75000);
    fa_json_write_key(&w, "sum", 3);
    fa_json_write_double(&w, 42517305.5);
    fa_json_write_key(&w, "avg", 3);
    fa_json_write_double(&w, 42.5173055);
    fa_json_write_end_object(&w);
    int r = (int)fa_json_writer_str(&w).len;
    fa_pool_reset(&pool);
    return r == 0;
}

/* Median ns/op of RUNS runs, each about 20 ms long after a calibration. */
static double measure(int (*op)(void))
{
    long iters = 1000;
    for (;;) {
        double t0 = bench_now_ns();
        for (long i = 0; i < iters; i++)
            if (op()) {
                fprintf(stderr, "bench_json: parse failed\n");
                exit(1);
            }
        double dt = bench_now_ns() - t0;
        if (dt > 5e6)
            break;
        iters *= 4;
    }
    iters *= 4; /* ~20 ms */
    double runs[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now_ns();
        for (long i = 0; i < iters; i++)
            sink += op();
        runs[r] = (bench_now_ns() - t0) / (double)iters;
    }
    qsort(runs, RUNS, sizeof(runs[0]), bench_cmp_double);
    return runs[RUNS / 2];
}

static void report(const char *name, double ns, const char *what)
{
    printf("bench: %s %.1f ns/op\n", name, ns);
    fprintf(stderr, "  %-32s %9.1f ns  %12.0f ops/s  %s\n", name, ns, 1e9 / ns, what);
}

/* Under callgrind: count only the measured loop (collection toggled around it). */
static int run_instr(const char *what, const char *input, long n)
{
    bool big = strcmp(input, "1k") == 0;
    in_buf = big ? nested_doc : MRC;
    in_len = big ? sizeof(nested_doc) - 1 : sizeof(MRC) - 1;
    int (*op)(void) = strcmp(what, "yajl") == 0 ? op_yajl : op_jsmn;
    for (int i = 0; i < 100; i++)
        op(); /* warm the pool and the allocator */
    CALLGRIND_TOGGLE_COLLECT;
    for (long i = 0; i < n; i++)
        op();
    CALLGRIND_TOGGLE_COLLECT;
    return 0;
}

/* Instruction counts do not suffer from the noise of a shared machine. */
static void callgrind_figure(const char *what, const char *input, long n)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file=/dev/null "
             "/proc/%d/exe --instr %s %s %ld 2>&1",
             (int)getpid(), what, input, n);
    FILE *f = popen(cmd, "r");
    if (!f)
        return;
    char line[512];
    unsigned long long ir = 0;
    while (fgets(line, sizeof(line), f)) {
        char *p = strstr(line, "Collected :");
        if (p)
            ir = strtoull(p + 11, NULL, 10);
    }
    if (pclose(f) != 0 || ir == 0) {
        fprintf(stderr, "  (callgrind unavailable, no instr/op figure)\n");
        return;
    }
    char name[64];
    snprintf(name, sizeof(name), "json.parse_%s.%s", input, what);
    if (strcmp(what, "jsmn") == 0 && strcmp(input, "1mrc") == 0)
        snprintf(name, sizeof(name), "json.parse_1mrc.instr"); /* the name the issue asked for */
    else
        snprintf(name, sizeof(name), "json.parse_%s.%s_instr", input, what);
    printf("bench: %s %.0f instr/op\n", name, (double)ir / (double)n);
    fprintf(stderr, "  %-32s %9.0f instr/op (callgrind)\n", name, (double)ir / (double)n);
}

int main(int argc, char **argv)
{
    fa_pool_init(&pool, 64 * 1024);
    if (argc == 5 && strcmp(argv[1], "--instr") == 0)
        return run_instr(argv[2], argv[3], atol(argv[4]));
    bool callgrind = !(argc == 2 && strcmp(argv[1], "--no-callgrind") == 0);

    static const struct {
        const char *name;
        const char *buf;
        size_t len;
    } inputs[] = {
        {"1mrc", MRC, sizeof(MRC) - 1},
        {"1k", nested_doc, sizeof(nested_doc) - 1},
    };
    static const struct {
        const char *suffix;
        int (*op)(void);
        const char *what;
    } ops[] = {
        {"jsmn", op_jsmn, "fa_json_parse: jsmn + strict checks (what we ship)"},
        {"yajl", op_yajl, "yajl, handle per document, validate only"},
        {"yajl_reuse", op_yajl_reuse, "yajl, one handle, validate only"},
        {"yajl_tree", op_yajl_tree, "yajl_tree_parse + free"},
        {"jsmn_raw", op_jsmn_raw, "jsmn tokenizer alone (not strict)"},
        {"jsmn_count", op_jsmn_count, "jsmn count pass + exact parse"},
    };
    reuse_handle = yajl_alloc(NULL, NULL, NULL);
    yajl_config(reuse_handle, yajl_allow_multiple_values, 1);

    fprintf(stderr, "JSON parsing, median of %d runs (lower is better)\n", RUNS);
    for (size_t i = 0; i < FA_ARRAY_SIZE(inputs); i++) {
        in_buf = inputs[i].buf;
        in_len = inputs[i].len;
        fprintf(stderr, "%s (%zu bytes):\n", inputs[i].name, in_len);
        for (size_t j = 0; j < FA_ARRAY_SIZE(ops); j++) {
            char name[64];
            snprintf(name, sizeof(name), "json.parse_%s.%s", inputs[i].name, ops[j].suffix);
            report(name, measure(ops[j].op), ops[j].what);
        }
    }
    in_buf = MRC;
    in_len = sizeof(MRC) - 1;
    fprintf(stderr, "pipeline pieces:\n");
    report("json.extract_1mrc", measure(op_extract), "parse + get userId/value + str + number");
    report("json.write_stats", measure(op_write), "writer: 4-member stats object");
    yajl_free(reuse_handle);
    if (callgrind) {
        fprintf(stderr, "instructions per parse:\n");
        callgrind_figure("jsmn", "1mrc", 10000);
        callgrind_figure("yajl", "1mrc", 10000);
        callgrind_figure("jsmn", "1k", 1000);
        callgrind_figure("yajl", "1k", 1000);
    }
    fa_pool_destroy(&pool);
    return 0;
}
