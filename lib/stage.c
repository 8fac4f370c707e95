/*
 * stage.c — the registry of stage kinds: one explicit table.
 */
#include "stage.h"

#include <stdio.h>
#include <string.h>

static const fa_stage_type_t *const stage_types[] = {
    &fa_stage_parse_json, &fa_stage_validate, &fa_stage_aggregate, &fa_stage_respond,
    &fa_stage_stats,      &fa_stage_reset,    &fa_stage_delay,     &fa_stage_metrics,
    &fa_stage_fetch,      &fa_stage_fan_out,  &fa_stage_merge,
};

const fa_stage_type_t *fa_stage_find(const char *name, size_t len)
{
    for (size_t i = 0; i < FA_ARRAY_SIZE(stage_types); i++)
        if (strlen(stage_types[i]->name) == len && memcmp(stage_types[i]->name, name, len) == 0)
            return stage_types[i];
    return NULL;
}

const char *fa_stage_names(void)
{
    static char names[256];
    if (!names[0]) {
        size_t n = 0;
        for (size_t i = 0; i < FA_ARRAY_SIZE(stage_types); i++)
            n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s", i ? ", " : "",
                                  stage_types[i]->name);
    }
    return names;
}

bool fa_stage_expect_map(fa_stage_parse_t *p, const fa_yaml_node_t *n, const char *what)
{
    if (n->kind == FA_YAML_MAP)
        return true;
    fa_errbuf_add(p->errs, n, p->path, "%s: expected a mapping, got %s", what,
                  fa_yaml_kind_name(n->kind));
    return false;
}

const void *fa_stage_parse_empty(fa_stage_parse_t *p)
{
    static const char dummy;
    const fa_yaml_node_t *a = p->arg;
    if ((a->kind == FA_YAML_MAP && a->map.len == 0) ||
        (a->kind == FA_YAML_SCALAR && a->scalar.len == 0 && !a->quoted))
        return &dummy;
    fa_errbuf_add(p->errs, a, p->path, "%s takes no argument (write {})", p->key->scalar.str);
    return NULL;
}
