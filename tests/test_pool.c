/*
 * test_pool.c — bump pool: alignment, growth past the first block, reset, cleanups.
 */
#include <criterion/criterion.h>

#include "alloc.h"
#include "pool.h"

#include <string.h>

TestSuite(pool, .timeout = 10);

Test(pool, allocations_are_aligned_and_distinct)
{
    fa_pool_t p;
    fa_pool_init(&p, 1024);
    char *a = fa_pool_alloc(&p, 3);
    char *b = fa_pool_alloc(&p, 1);
    cr_assert_eq((uintptr_t)a % 16, 0);
    cr_assert_eq((uintptr_t)b % 16, 0);
    cr_assert_geq(b - a, 16);
    fa_pool_destroy(&p);
}

Test(pool, grows_past_first_block_and_reset_reuses_it_without_allocating)
{
    fa_pool_t p;
    fa_pool_init(&p, 1024);
    char *first = fa_pool_alloc(&p, 16);
    for (int i = 0; i < 100; i++)
        memset(fa_pool_alloc(&p, 100), i, 100);
    char *big = fa_pool_alloc(&p, 100000);
    memset(big, 1, 100000);
    cr_assert_geq(fa_pool_used(&p), 100000u);
    fa_pool_reset(&p);
    uint64_t before = fa_alloc_count();
    cr_assert_eq(fa_pool_alloc(&p, 16), first, "reset starts again at the first block");
    for (int i = 0; i < 10; i++)
        fa_pool_alloc(&p, 64);
    cr_assert_eq(fa_alloc_count(), before, "allocations within the first block call no allocator");
    fa_pool_destroy(&p);
}

static int order[4], norder;
static void record(void *data)
{
    order[norder++] = (int)(intptr_t)data;
}

Test(pool, cleanups_run_newest_first_once)
{
    fa_pool_t p;
    fa_pool_init(&p, 512);
    norder = 0;
    fa_pool_cleanup_add(&p, record, (void *)1);
    fa_pool_cleanup_add(&p, record, (void *)2);
    fa_pool_reset(&p);
    cr_assert_eq(norder, 2);
    cr_assert_eq(order[0], 2);
    cr_assert_eq(order[1], 1);
    fa_pool_reset(&p);
    cr_assert_eq(norder, 2, "cleanups do not run twice");
    fa_pool_destroy(&p);
}

Test(pool, strndup_terminates)
{
    fa_pool_t p;
    fa_pool_init(&p, 512);
    char *s = fa_pool_strndup(&p, "hello world", 5);
    cr_assert_str_eq(s, "hello");
    fa_pool_destroy(&p);
}
