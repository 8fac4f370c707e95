/*
 * test_yaml.c — the YAML node tree: shape, locations, quoting, aliases, and located errors.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static fa_pool_t pool;
static char err[2048];

static void setup(void)
{
    fa_pool_init(&pool, 4096);
    err[0] = '\0';
}

static void teardown(void)
{
    fa_pool_destroy(&pool);
}

TestSuite(yaml, .init = setup, .fini = teardown, .timeout = 10);

static fa_yaml_node_t *load(const char *text)
{
    return fa_yaml_load(&pool, "t.yaml", text, strlen(text), err, sizeof(err));
}

Test(yaml, builds_maps_sequences_and_scalars_with_locations)
{
    fa_yaml_node_t *root = load("server:\n"
                                "  listen: [\"a\", b]\n"
                                "  workers: 4\n"
                                "list:\n"
                                "  - x\n"
                                "  - {k: v}\n");
    cr_assert_not_null(root, "%s", err);
    cr_assert_eq(root->kind, FA_YAML_MAP);
    cr_assert_eq(root->map.len, 2);
    cr_assert_str_eq(root->file, "t.yaml");

    fa_yaml_node_t *server = fa_yaml_map_get(root, "server");
    cr_assert_eq(server->kind, FA_YAML_MAP);
    cr_assert_eq(server->line, 2);
    cr_assert_eq(server->col, 3);

    fa_yaml_node_t *listen = fa_yaml_map_get(server, "listen");
    cr_assert_eq(listen->kind, FA_YAML_SEQ);
    cr_assert_eq(listen->seq.len, 2);
    cr_assert_eq(listen->line, 2);
    cr_assert_eq(listen->col, 11);
    cr_assert(listen->seq.items[0]->quoted);
    cr_assert_not(listen->seq.items[1]->quoted);
    cr_assert_eq(listen->seq.items[1]->col, 17);

    fa_yaml_node_t *workers = fa_yaml_map_get(server, "workers");
    cr_assert(fa_yaml_scalar_is(workers, "4"));
    cr_assert_eq(workers->scalar.len, 1);
    cr_assert_eq(workers->line, 3);
    cr_assert_eq(workers->col, 12);
    cr_assert_eq(server->map.pairs[1].key->line, 3);
    cr_assert_eq(server->map.pairs[1].key->col, 3);

    fa_yaml_node_t *list = fa_yaml_map_get(root, "list");
    cr_assert_eq(list->seq.len, 2);
    cr_assert_eq(list->seq.items[1]->kind, FA_YAML_MAP);
    cr_assert(fa_yaml_scalar_is(fa_yaml_map_get(list->seq.items[1], "k"), "v"));
    cr_assert_eq(list->seq.items[1]->line, 6);
    cr_assert_eq(list->seq.items[1]->col, 5);

    cr_assert_null(fa_yaml_map_get(root, "missing"));
    cr_assert_null(fa_yaml_map_get(workers, "x"), "not a mapping");
}

Test(yaml, scalars_keep_embedded_nul_and_escapes)
{
    fa_yaml_node_t *root = load("a: \"x\\0y\\n\"\n");
    cr_assert_not_null(root, "%s", err);
    fa_yaml_node_t *a = fa_yaml_map_get(root, "a");
    cr_assert_eq(a->scalar.len, 4);
    cr_assert_eq(memcmp(a->scalar.str, "x\0y\n", 4), 0);
    cr_assert_eq(a->scalar.str[4], '\0');
}

Test(yaml, aliases_resolve_to_the_anchored_node)
{
    fa_yaml_node_t *root = load("base: &b {x: 1}\n"
                                "name: &n hello\n"
                                "copy: *b\n"
                                "again: *n\n");
    cr_assert_not_null(root, "%s", err);
    fa_yaml_node_t *copy = fa_yaml_map_get(root, "copy");
    cr_assert_eq(copy->kind, FA_YAML_MAP);
    cr_assert(fa_yaml_scalar_is(fa_yaml_map_get(copy, "x"), "1"));
    cr_assert(fa_yaml_scalar_is(fa_yaml_map_get(root, "again"), "hello"));
}

Test(yaml, unknown_alias_is_located)
{
    cr_assert_null(load("a: 1\nb: *nope\n"));
    cr_assert_str_eq(err, "t.yaml:2:4: unknown anchor \"nope\"");
}

Test(yaml, empty_document_is_an_empty_mapping)
{
    const char *texts[] = {"", "# only a comment\n", "---\n", "~\n"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        fa_yaml_node_t *root = load(texts[i]);
        cr_assert_not_null(root, "case %zu: %s", i, err);
        cr_assert_eq(root->kind, FA_YAML_MAP, "case %zu", i);
        cr_assert_eq(root->map.len, 0, "case %zu", i);
    }
}

Test(yaml, load_file_reads_and_reports_a_missing_file)
{
    char path[] = "/tmp/fa-yaml-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("k: v\n", f);
    fclose(f);
    fa_yaml_node_t *root = fa_yaml_load_file(&pool, path, err, sizeof(err));
    cr_assert_not_null(root, "%s", err);
    cr_assert_str_eq(root->map.pairs[0].key->file, path);
    unlink(path);
    cr_assert_null(fa_yaml_load_file(&pool, path, err, sizeof(err)));
    cr_assert(strstr(err, "cannot open") != NULL, "%s", err);
}

/* ---- errors: each case is a document and the exact error text ---- */

typedef struct {
    const char *what;
    const char *text;
    const char *error;
} yaml_error_case_t;

static yaml_error_case_t error_cases[] = {
    {"duplicate top-level key", "a: 1\nb: 2\na: 3\n",
     "t.yaml:3:1: a: duplicate key (first defined at line 1, column 1)"},
    {"duplicate nested key, path named", "server:\n  workers: 1\n  workers: 2\n",
     "t.yaml:3:3: server.workers: duplicate key (first defined at line 2, column 3)"},
    {"duplicate key inside a sequence item", "routes:\n  - match: a\n  - match: b\n    match: c\n",
     "t.yaml:4:5: routes[1].match: duplicate key (first defined at line 3, column 5)"},
    {"every duplicate is reported", "a: 1\na: 2\nb: {c: 1, c: 2}\n",
     "t.yaml:2:1: a: duplicate key (first defined at line 1, column 1)\n"
     "t.yaml:3:11: b.c: duplicate key (first defined at line 3, column 5)"},
    {"two spellings of a null key (found by fuzz_config: the dump wrote both as ~)",
     "b: {~: 1, null: 2, &x : 3}\n",
     "t.yaml:1:11: b.null: duplicate key (first defined at line 1, column 5)\n"
     "t.yaml:1:20: b.: duplicate key (first defined at line 1, column 5)"},
    {"sequence as a key", "? [a]\n: 1\n",
     "t.yaml:1:3: mapping keys must be scalars, got a sequence"},
    {"two documents", "a: 1\n---\nb: 2\n",
     "t.yaml:2:1: a second document; a config file holds exactly one"},
    {"bad indentation", "a:\n  b: 1\n c: 2\n",
     "t.yaml:3:2: did not find expected key (while parsing a block mapping that started at line "
     "1)"},
    {"unclosed flow sequence", "a: [1, 2\n",
     "t.yaml:2:1: did not find expected ',' or ']' (while parsing a flow sequence that started at "
     "line 1)"},
    {"tab indentation", "a:\n\tb: 1\n",
     "t.yaml:2:1: found character that cannot start any token (while scanning for the next token "
     "that started at line 2)"},
    {"invalid UTF-8", "a: \xff\n", "t.yaml:1:4: invalid leading UTF-8 octet"},
};

/* Criterion may run each case in a fresh process image, where pointers into the table would be
 * stale: the parameters are indices, and the table is read in the test's own process. */
static size_t error_index[sizeof(error_cases) / sizeof(error_cases[0])];

ParameterizedTestParameters(yaml, errors)
{
    for (size_t i = 0; i < FA_ARRAY_SIZE(error_index); i++)
        error_index[i] = i;
    return cr_make_param_array(size_t, error_index, FA_ARRAY_SIZE(error_index));
}

ParameterizedTest(size_t *i, yaml, errors)
{
    const yaml_error_case_t *c = &error_cases[*i];
    cr_assert_null(load(c->text), "%s: loaded", c->what);
    cr_assert_str_eq(err, c->error, "%s", c->what);
}

/* ---- emitting: flow text reads back to the same tree ---- */

static bool same_tree(const fa_yaml_node_t *a, const fa_yaml_node_t *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case FA_YAML_SCALAR:
        return a->scalar.len == b->scalar.len &&
               memcmp(a->scalar.str, b->scalar.str, a->scalar.len) == 0;
    case FA_YAML_SEQ:
        if (a->seq.len != b->seq.len)
            return false;
        for (size_t i = 0; i < a->seq.len; i++)
            if (!same_tree(a->seq.items[i], b->seq.items[i]))
                return false;
        return true;
    case FA_YAML_MAP:
        if (a->map.len != b->map.len)
            return false;
        for (size_t i = 0; i < a->map.len; i++)
            if (!same_tree(a->map.pairs[i].key, b->map.pairs[i].key) ||
                !same_tree(a->map.pairs[i].value, b->map.pairs[i].value))
                return false;
        return true;
    }
    return false;
}

Test(yaml, flow_emitter_round_trips)
{
    const char *text =
        "plain: hello world\n"
        "quoted: \"123\"\n"
        "tricky: [\"a: b\", \"x #y\", \"{z}\", \"-\", \"\", \"tab\\there\", \"q\\\"\\\\\"]\n"
        "block: 'a,b'\n"
        "ipv6: \"[::1]:0\"\n"
        "addr: 127.0.0.1:80\n"
        "neg: -5\n"
        "empty:\n"
        "nulls: [a, ~, \"\"]\n"
        "nested: {a: [1, {b: ~}], c: {}}\n"
        "tmpl: \"${path.id}\"\n"
        "route: GET /users/:id\n";
    fa_yaml_node_t *root = load(text);
    cr_assert_not_null(root, "%s", err);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    fa_yaml_emit_flow(out, root);
    fclose(out);
    fa_yaml_node_t *back = load(buf);
    cr_assert_not_null(back, "%s\nin: %s", err, buf);
    cr_assert(same_tree(root, back), "emitted: %s", buf);
    cr_assert(fa_yaml_map_get(back, "quoted")->quoted, "a quoted scalar stays quoted: %s", buf);
    cr_assert_not(fa_yaml_map_get(back, "route")->quoted, "a safe plain scalar stays plain: %s",
                  buf);
    cr_assert(fa_yaml_is_null(fa_yaml_map_get(back, "empty")), "%s", buf);
    free(buf);
}
