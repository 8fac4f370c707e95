/*
 * test_pipeline.c — pipelines compiled from config: every kind of located error a stage or the
 * pipeline compiler reports (exact text, line and column), and that a good config compiles.
 */
#include <criterion/criterion.h>

#include "app.h"
#include "config.h"
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(pipeline, .timeout = 30);

typedef struct {
    const char *name;
    const char *yaml;
    const char *errors; /* every line, in order */
} compile_case_t;

static const compile_case_t cases[] = {
    {"unknown_stage",
     "routes:\n  - match: POST /e\n    pipeline:\n      - parse_jsn: {}\n      - respond: {}\n",
     "t.yaml:4:9: routes[0].pipeline[0]: unknown stage \"parse_jsn\" (stages: %STAGES%)\n"},
    {"stage_after_terminal",
     "routes:\n  - match: GET /e\n    pipeline:\n      - respond: {}\n      - stats: {}\n",
     "t.yaml:5:9: routes[0].pipeline[1]: stage \"stats\" never runs: an earlier stage always answers the request\n"},
    {"never_answers",
     "routes:\n  - match: POST /e\n    pipeline:\n      - parse_json: {}\n",
     "t.yaml:4:7: routes[0].pipeline: the pipeline never answers: end it with a stage that responds (respond, stats, reset)\n"},
    {"min_gt_max",
     "routes:\n  - match: POST /e\n    pipeline:\n      - parse_json: {}\n      - validate:\n          v: { type: number, min: 5, max: 1 }\n      - respond: {}\n",
     "t.yaml:6:14: routes[0].pipeline[1].validate.v: min (5) is greater than max (1)\n"},
    {"minlen_on_number",
     "routes:\n  - match: POST /e\n    pipeline:\n      - parse_json: {}\n      - validate:\n          v: { type: number, min_length: 1 }\n      - respond: {}\n",
     "t.yaml:6:14: routes[0].pipeline[1].validate.v: min_length, max_length and pattern apply to string fields (add type: string)\n"},
    {"bad_type",
     "routes:\n  - match: POST /e\n    pipeline:\n      - parse_json: {}\n      - validate:\n          v: { type: decimal }\n      - respond: {}\n",
     "t.yaml:6:22: routes[0].pipeline[1].validate.v.type: expected one of string, number, integer, boolean, object, array, null, got \"decimal\"\n"},
    {"bad_regex",
     "routes:\n  - match: POST /e\n    pipeline:\n      - parse_json: {}\n      - validate:\n          v: { type: string, pattern: \"a(\" }\n      - respond: {}\n",
     "t.yaml:6:39: routes[0].pipeline[1].validate.v: pattern: Unmatched ( or \\(\n"},
    {"validate_without_json",
     "routes:\n  - match: POST /e\n    pipeline:\n      - validate:\n          v: { type: string }\n      - respond: {}\n",
     "t.yaml:4:9: routes[0].pipeline[0]: validate needs an earlier parse_json stage\n"},
    {"aggregate_unvalidated",
     "routes:\n  - match: POST /e\n    pipeline:\n      - parse_json: {}\n      - validate:\n          k: { type: string }\n      - aggregate: { key: k, value: v }\n      - respond: {}\n",
     "t.yaml:7:27: routes[0].pipeline[2].aggregate.key: field \"k\" must be checked by an earlier validate stage as a required string\nt.yaml:7:37: routes[0].pipeline[2].aggregate.value: field \"v\" must be checked by an earlier validate stage as a required number or integer\n"},
    {"aggregate_unknown_key",
     "routes:\n  - match: POST /e\n    pipeline:\n      - parse_json: {}\n      - validate:\n          k: { type: string, required: true }\n          v: { type: number, required: true }\n      - aggregate: { key: k, value: v, extra: 1 }\n      - respond: {}\n",
     "t.yaml:8:40: routes[0].pipeline[2].aggregate.extra: unknown key (aggregate takes key and value)\n"},
    {"respond_missing_param",
     "routes:\n  - match: GET /u/:id\n    pipeline:\n      - respond: { json: { u: \"${path.name}\" } }\n",
     "t.yaml:4:26: routes[0].pipeline[0]: ${path.name}: the route \"/u/:id\" has no such parameter\n"},
    {"respond_body_without_json",
     "routes:\n  - match: GET /u\n    pipeline:\n      - respond: { json: { u: \"${body.x}\" } }\n",
     "t.yaml:4:26: routes[0].pipeline[0]: ${body.x} needs an earlier parse_json stage\n"},
    {"respond_bad_status",
     "routes:\n  - match: GET /u\n    pipeline:\n      - respond: { status: 42 }\n",
     "t.yaml:4:28: routes[0].pipeline[0].respond.status: expected an integer 200..599, got \"42\"\n"},
    {"respond_body_and_json",
     "routes:\n  - match: GET /u\n    pipeline:\n      - respond: { body: x, json: {a: 1} }\n",
     "t.yaml:4:35: routes[0].pipeline[0]: respond: give either body or json, not both\n"},
    {"stats_with_arg",
     "routes:\n  - match: GET /s\n    pipeline:\n      - stats: { verbose: true }\n",
     "t.yaml:4:16: routes[0].pipeline[0]: stats takes no argument (write {})\n"},
    {"batch_not_first",
     "routes:\n  - match: POST /b\n    pipeline:\n      - delay: 1ms\n      - parse_json: { batch: ndjson }\n",
     "t.yaml:5:9: routes[0].pipeline[1]: a batch parse_json must be the first stage of its pipeline\n"},
    {"batch_with_respond",
     "routes:\n  - match: POST /b\n    pipeline:\n      - parse_json: { batch: ndjson }\n      - respond: {}\n",
     "t.yaml:5:9: routes[0].pipeline[1]: stage \"respond\" cannot run per event of a batch (the batch report is the answer; per-event stages must not wait)\n"},
    {"batch_bad_framing",
     "routes:\n  - match: POST /b\n    pipeline:\n      - parse_json: { batch: csv }\n",
     "t.yaml:4:30: routes[0].pipeline[0].parse_json.batch: expected ndjson, array or auto\n"},
    {"max_events_without_batch",
     "routes:\n  - match: POST /b\n    pipeline:\n      - parse_json: { max_events: 5 }\n      - respond: {}\n",
     "t.yaml:4:21: routes[0].pipeline[0]: parse_json: max_events needs batch: ndjson|array|auto\n"},
    {"delay_bad",
     "routes:\n  - match: GET /d\n    pipeline:\n      - delay: soon\n      - respond: {}\n",
     "t.yaml:4:16: routes[0].pipeline[0]: expected a duration 0 to 8760h (seconds, or with unit ms, s, m, h), got \"soon\"\n"},
    {"conflicting_params",
     "routes:\n  - match: GET /u/:id\n    pipeline:\n      - respond: {}\n  - match: GET /u/:uid/x\n    pipeline:\n      - respond: {}\n",
     "t.yaml:5:12: routes[1]: conflicting parameter names ':uid' and ':id' at the same position\n"},
    {"two_errors",
     "routes:\n  - match: POST /e\n    pipeline:\n      - parse_json: { max_depth: 0 }\n      - respond: { status: 700 }\n",
     "t.yaml:4:34: routes[0].pipeline[0].parse_json.max_depth: expected an integer 1..1024, got \"0\"\nt.yaml:5:28: routes[0].pipeline[1].respond.status: expected an integer 200..599, got \"700\"\n"},
    {"on_error_bad_keys",
     "routes:\n  - match: GET /x\n    pipeline:\n      - respond: {}\n    on_error:\n      teapot: { status: 418 }\n      500: { stauts: 1 }\n",
     "t.yaml:6:7: routes[0].on_error.teapot: expected a status 400..599, 4xx, 5xx or default as the key\n"
     "t.yaml:7:14: routes[0].on_error.500.respond.stauts: unknown key (respond takes status, body, json, content_type, headers)\n"},
};

/* Loads and compiles yaml; returns the errors text ("" if it compiled). */
static char *compile(const char *yaml)
{
    fa_errbuf_t errs = {0};
    fa_config_t *c = fa_config_load_buf("t.yaml", yaml, strlen(yaml), NULL, 0, &errs);
    fa_app_t *app = c ? fa_app_build(c, &errs) : NULL;
    char *text = strdup(errs.text ? errs.text : "");
    fa_app_free(app);
    fa_config_free(c);
    fa_errbuf_free(&errs);
    return text;
}

Test(pipeline, every_compile_error_is_located)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = compile(cases[i].yaml);
        /* "%STAGES%" stands for the registry's list, which grows with every stage kind */
        char want[1024];
        const char *mark = strstr(cases[i].errors, "%STAGES%");
        if (mark)
            snprintf(want, sizeof(want), "%.*s%s%s", (int)(mark - cases[i].errors),
                     cases[i].errors, fa_stage_names(), mark + 8);
        else
            snprintf(want, sizeof(want), "%s", cases[i].errors);
        cr_expect_str_eq(got, want, "%s", cases[i].name);
        free(got);
    }
}

Test(pipeline, the_shipped_and_test_configs_compile)
{
    const char *files[] = {"conf/fasterapid.yaml", "tests/conf/http.yaml", "perf/fasterapid-perf.yaml"};
    for (size_t i = 0; i < 3; i++) {
        fa_errbuf_t errs = {0};
        char path[1024];
        const char *src = getenv("FA_SRCDIR");
        snprintf(path, sizeof(path), "%s/%s", src ? src : ".", files[i]);
        fa_config_t *c = fa_config_load(path, NULL, 0, &errs);
        cr_assert_not_null(c, "%s: %s", files[i], errs.text);
        fa_app_t *app = fa_app_build(c, &errs);
        cr_assert_not_null(app, "%s: %s", files[i], errs.text);
        fa_app_free(app);
        fa_config_free(c);
        fa_errbuf_free(&errs);
    }
}

Test(pipeline, a_good_pipeline_with_every_rule_compiles)
{
    char *got = compile("routes:\n"
                        "  - match: POST /e/:id\n"
                        "    pipeline:\n"
                        "      - parse_json: { max_bytes: 1k, max_depth: 4 }\n"
                        "      - validate:\n"
                        "          fields:\n"
                        "            k: { type: string, required: true, min_length: 1, max_length: 8, pattern: \"[a-z]+\" }\n"
                        "            v: { type: integer, required: true, min: 0, max: 10 }\n"
                        "            c: { type: string, enum: [red, green] }\n"
                        "            l: { type: array, max: 3 }\n"
                        "          additional: false\n"
                        "      - aggregate: { key: k, value: v }\n"
                        "      - respond: { status: 201, headers: { X-Id: a }, json: { id: \"${path.id}\", k: \"${body.k}\" } }\n");
    cr_assert_str_eq(got, "");
    free(got);
}
