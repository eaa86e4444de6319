// SPDX-License-Identifier: Apache-2.0
// Unit tests for core/arena: alignment of every allocation, big allocations
// that get a block of their own, strdup/printf copies, totals, and reuse
// after arena_free. Run under ASan, every byte handed out is also written.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

/* Huge requests must fail with NULL, not abort the sanitized binary. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static int aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

static void test_init_takes_no_memory(void **state)
{
    arena_t a;
    arena_init(&a, 1024);
    assert_null(a.head);
    assert_int_equal(a.total, 0);
    assert_int_equal(a.block_size, 1024);
    arena_free(&a); /* freeing an unused arena is fine */
    assert_null(a.head);
}

static void test_zero_block_size_gets_a_default(void **state)
{
    arena_t a;
    arena_init(&a, 0);
    assert_true(a.block_size > 0);
    void *p = arena_alloc(&a, 100);
    assert_non_null(p);
    memset(p, 0xab, 100);
    arena_free(&a);
}

static void test_every_allocation_is_16_byte_aligned(void **state)
{
    arena_t a;
    arena_init(&a, 4096);
    /* odd sizes, so a bump allocator that forgot to round would drift */
    for (size_t n = 0; n < 300; n++) {
        unsigned char *p = arena_alloc(&a, n);
        assert_non_null(p);
        assert_true(aligned16(p));
        memset(p, (int)n, n ? n : 1);
    }
    arena_free(&a);
}

static void test_allocations_do_not_overlap(void **state)
{
    arena_t a;
    arena_init(&a, 256);
    enum { N = 200 };
    unsigned char *ptrs[N];
    size_t sizes[N];
    for (size_t i = 0; i < N; i++) {
        sizes[i] = 1 + (i * 37) % 200; /* mixes small and "big" (> block/2) */
        ptrs[i] = arena_alloc(&a, sizes[i]);
        assert_non_null(ptrs[i]);
        memset(ptrs[i], (int)(i & 0xff), sizes[i]);
    }
    for (size_t i = 0; i < N; i++)
        for (size_t k = 0; k < sizes[i]; k++)
            assert_int_equal(ptrs[i][k], i & 0xff);
    arena_free(&a);
}

static void test_zero_size_allocation_returns_distinct_usable_pointer(void **state)
{
    arena_t a;
    arena_init(&a, 4096);
    char *p = arena_alloc(&a, 0);
    char *q = arena_alloc(&a, 0);
    assert_non_null(p);
    assert_non_null(q);
    assert_ptr_not_equal(p, q);
    *p = 'x'; /* at least one byte is usable */
    *q = 'y';
    assert_int_equal(*p, 'x');
    arena_free(&a);
}

static void test_large_allocation_larger_than_block_succeeds(void **state)
{
    arena_t a;
    arena_init(&a, 1024);
    size_t big = 1 << 20;
    unsigned char *p = arena_alloc(&a, big);
    assert_non_null(p);
    assert_true(aligned16(p));
    memset(p, 0x5a, big);
    assert_int_equal(p[0], 0x5a);
    assert_int_equal(p[big - 1], 0x5a);
    assert_true(a.total >= big);
    arena_free(&a);
}

static void test_large_allocation_keeps_small_ones_intact(void **state)
{
    /* A big allocation goes into its own block placed behind the head: the
     * small allocations before and after it must still be valid and distinct. */
    arena_t a;
    arena_init(&a, 1024);
    char *s1 = arena_strdup(&a, "before");
    unsigned char *big = arena_alloc(&a, 64 * 1024);
    assert_non_null(big);
    memset(big, 0xee, 64 * 1024);
    char *s2 = arena_strdup(&a, "after");
    unsigned char *big2 = arena_alloc(&a, 600); /* > block_size / 2 */
    assert_non_null(big2);
    memset(big2, 0x11, 600);
    char *s3 = arena_strdup(&a, "last");
    assert_string_equal(s1, "before");
    assert_string_equal(s2, "after");
    assert_string_equal(s3, "last");
    for (size_t i = 0; i < 64 * 1024; i++)
        if (big[i] != 0xee)
            fail_msg("big allocation overwritten at %zu", i);
    for (size_t i = 0; i < 600; i++)
        assert_int_equal(big2[i], 0x11);
    arena_free(&a);
}

static void test_large_allocation_in_empty_arena(void **state)
{
    arena_t a;
    arena_init(&a, 128);
    unsigned char *p = arena_alloc(&a, 1000);
    assert_non_null(p);
    memset(p, 1, 1000);
    unsigned char *q = arena_alloc(&a, 8);
    assert_non_null(q);
    memset(q, 2, 8);
    assert_int_equal(p[999], 1);
    arena_free(&a);
}

static void test_total_counts_rounded_bytes_handed_out(void **state)
{
    arena_t a;
    arena_init(&a, 4096);
    assert_non_null(arena_alloc(&a, 1));
    assert_int_equal(a.total, 16);
    assert_non_null(arena_alloc(&a, 16));
    assert_int_equal(a.total, 32);
    assert_non_null(arena_alloc(&a, 17));
    assert_int_equal(a.total, 64);
    assert_non_null(arena_alloc(&a, 10000));
    assert_int_equal(a.total, 64 + 10000);
    arena_free(&a);
    assert_int_equal(a.total, 0);
}

static void test_strndup_copies_exactly_len_bytes_and_terminates(void **state)
{
    arena_t a;
    arena_init(&a, 4096);
    const char src[] = "hello, world";
    char *p = arena_strndup(&a, src, 5);
    assert_non_null(p);
    assert_string_equal(p, "hello");
    assert_ptr_not_equal(p, src);
    /* embedded NUL is copied as data, length is what the caller says */
    char *q = arena_strndup(&a, "a\0b", 3);
    assert_non_null(q);
    assert_memory_equal(q, "a\0b\0", 4);
    char *e = arena_strndup(&a, "", 0);
    assert_non_null(e);
    assert_string_equal(e, "");
    arena_free(&a);
}

static void test_strdup_copies_whole_string(void **state)
{
    arena_t a;
    arena_init(&a, 16);
    char longs[5000];
    memset(longs, 'q', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    char *p = arena_strdup(&a, longs);
    assert_non_null(p);
    assert_string_equal(p, longs);
    assert_true(aligned16(p));
    arena_free(&a);
}

static void test_printf_formats_into_arena(void **state)
{
    arena_t a;
    arena_init(&a, 64);
    char *p = arena_printf(&a, "%s-%d-%05.1f", "id", 42, 3.14159);
    assert_non_null(p);
    assert_string_equal(p, "id-42-003.1");
    char *e = arena_printf(&a, "%s", "");
    assert_non_null(e);
    assert_string_equal(e, "");
    /* longer than a block: must still come back whole */
    char *big = arena_printf(&a, "%0*d", 3000, 7);
    assert_non_null(big);
    assert_int_equal(strlen(big), 3000);
    assert_int_equal(big[2999], '7');
    assert_int_equal(big[0], '0');
    assert_string_equal(p, "id-42-003.1");
    arena_free(&a);
}

static void test_arena_is_reusable_after_free(void **state)
{
    arena_t a;
    arena_init(&a, 256);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 50; i++) {
            char *s = arena_printf(&a, "round %d item %d", round, i);
            assert_non_null(s);
        }
        assert_non_null(arena_alloc(&a, 10000));
        arena_free(&a);
        assert_null(a.head);
        assert_int_equal(a.total, 0);
    }
}

static void test_overflowing_size_returns_null(void **state)
{
    arena_t a;
    arena_init(&a, 4096);
    /* rounding up to 16 wraps around */
    assert_null(arena_alloc(&a, SIZE_MAX));
    assert_null(arena_alloc(&a, SIZE_MAX - 14));
    arena_free(&a);
}

static void test_impossible_size_returns_null(void **state)
{
    /* Regression: arena.c block_new() computes malloc(sizeof(*b) + size) without an
     * overflow check. For n in [SIZE_MAX-46, SIZE_MAX-15] the rounded size is
     * 0xff..f0, sizeof(struct arena_block) (32) + that wraps to 16, malloc(16)
     * succeeds, and arena_alloc returns a non-NULL pointer that lies past the
     * end of a 16-byte allocation while claiming ~16 EiB. block_new now checks for it. */
    arena_t a;
    arena_init(&a, 4096);
    assert_null(arena_alloc(&a, SIZE_MAX - 15));
    assert_null(arena_alloc(&a, SIZE_MAX - 40));
    assert_null(arena_alloc(&a, SIZE_MAX / 2)); /* no machine has this */
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_takes_no_memory),
        cmocka_unit_test(test_zero_block_size_gets_a_default),
        cmocka_unit_test(test_every_allocation_is_16_byte_aligned),
        cmocka_unit_test(test_allocations_do_not_overlap),
        cmocka_unit_test(test_zero_size_allocation_returns_distinct_usable_pointer),
        cmocka_unit_test(test_large_allocation_larger_than_block_succeeds),
        cmocka_unit_test(test_large_allocation_keeps_small_ones_intact),
        cmocka_unit_test(test_large_allocation_in_empty_arena),
        cmocka_unit_test(test_total_counts_rounded_bytes_handed_out),
        cmocka_unit_test(test_strndup_copies_exactly_len_bytes_and_terminates),
        cmocka_unit_test(test_strdup_copies_whole_string),
        cmocka_unit_test(test_printf_formats_into_arena),
        cmocka_unit_test(test_arena_is_reusable_after_free),
        cmocka_unit_test(test_overflowing_size_returns_null),
        cmocka_unit_test(test_impossible_size_returns_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
