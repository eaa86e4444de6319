// SPDX-License-Identifier: Apache-2.0
// Unit tests for core/buf: the hard maximum (-E2BIG leaves the buffer as it
// was), growth, NUL termination, consume/reset, appendf, and the JSON string
// writer, whose output is checked by parsing it back with jansson.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

/* ---- helpers ------------------------------------------------------------ */

/* Encodes s[0..len) with buf_append_json_string into a fresh buffer; caller
 * frees the returned string. */
static char *json_of(const char *s, size_t len)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    assert_int_equal(buf_append_json_string(&b, s, len), 0);
    assert_non_null(b.data);
    assert_int_equal(b.data[b.len], '\0');
    char *out = strdup(b.data);
    buf_free(&b);
    return out;
}

/* Parses a JSON string literal back to bytes with jansson; the decoded bytes
 * must equal s[0..len). */
static void assert_json_roundtrip(const char *s, size_t len)
{
    char *lit = json_of(s, len);
    json_error_t err;
    json_t *v = json_loads(lit, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!v)
        fail_msg("jansson rejected %s: %s", lit, err.text);
    assert_true(json_is_string(v));
    assert_int_equal(json_string_length(v), len);
    assert_memory_equal(json_string_value(v), s, len);
    json_decref(v);
    free(lit);
}

/* ---- limits and growth -------------------------------------------------- */

static void test_init_is_empty_and_owns_nothing(void **state)
{
    buf_t b;
    buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 100);
    buf_free(&b);
    buf_free(&b); /* twice is harmless */
}

static void test_append_copies_and_nul_terminates(void **state)
{
    buf_t b;
    buf_init(&b, 1024);
    assert_int_equal(buf_append(&b, "abc", 3), 0);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    assert_int_equal(buf_append_lit(&b, "def"), 0);
    assert_int_equal(b.len, 6);
    assert_string_equal(b.data, "abcdef");
    assert_true(b.cap > b.len);
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_append_zero_bytes_succeeds_and_changes_nothing(void **state)
{
    buf_t b;
    buf_init(&b, 16);
    assert_int_equal(buf_append(&b, "", 0), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(buf_append(&b, "xy", 2), 0);
    assert_int_equal(buf_append(&b, NULL, 0), 0);
    assert_int_equal(b.len, 2);
    assert_string_equal(b.data, "xy");
    buf_free(&b);
}

static void test_append_grows_across_many_reallocations(void **state)
{
    buf_t b;
    buf_init(&b, 4 << 20);
    char chunk[1000];
    for (int i = 0; i < 3000; i++) {
        memset(chunk, 'a' + i % 26, sizeof(chunk));
        assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), 0);
    }
    assert_int_equal(b.len, 3000 * 1000);
    for (int i = 0; i < 3000; i++)
        if (b.data[i * 1000] != 'a' + i % 26 || b.data[i * 1000 + 999] != 'a' + i % 26)
            fail_msg("chunk %d corrupted", i);
    assert_int_equal(b.data[b.len], '\0');
    buf_free(&b);
}

static void test_append_up_to_max_exactly_succeeds(void **state)
{
    buf_t b;
    buf_init(&b, 10);
    assert_int_equal(buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    buf_free(&b);
}

static void test_append_past_max_fails_e2big_and_leaves_buffer_unchanged(void **state)
{
    buf_t b;
    buf_init(&b, 10);
    assert_int_equal(buf_append(&b, "01234", 5), 0);
    char *data = b.data;
    size_t cap = b.cap;
    assert_int_equal(buf_append(&b, "567890", 6), -E2BIG);
    assert_int_equal(b.len, 5);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "01234");
    /* what still fits still goes in */
    assert_int_equal(buf_append(&b, "56789", 5), 0);
    assert_string_equal(b.data, "0123456789");
    assert_int_equal(buf_append(&b, "x", 1), -E2BIG);
    assert_string_equal(b.data, "0123456789");
    buf_free(&b);
}

static void test_append_to_empty_past_max_allocates_nothing(void **state)
{
    buf_t b;
    buf_init(&b, 4);
    assert_int_equal(buf_append(&b, "hello", 5), -E2BIG);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    buf_free(&b);
}

static void test_huge_length_is_e2big_not_overflow(void **state)
{
    buf_t b;
    buf_init(&b, SIZE_MAX);
    assert_int_equal(buf_append(&b, "ab", 2), 0);
    assert_int_equal(buf_reserve(&b, SIZE_MAX), -E2BIG);
    assert_int_equal(buf_reserve(&b, SIZE_MAX - 1), -E2BIG);
    assert_int_equal(b.len, 2);
    assert_string_equal(b.data, "ab");
    buf_free(&b);
}

static void test_reserve_makes_room_without_changing_content(void **state)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    assert_int_equal(buf_append(&b, "keep", 4), 0);
    assert_int_equal(buf_reserve(&b, 100000), 0);
    assert_true(b.cap >= 4 + 100000 + 1);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");
    assert_int_equal(buf_reserve(&b, (1 << 20) - 4), 0);
    assert_int_equal(buf_reserve(&b, (1 << 20) - 3), -E2BIG);
    assert_string_equal(b.data, "keep");
    buf_free(&b);
}

/* ---- consume and reset ---------------------------------------------------- */

static void test_consume_drops_leading_bytes(void **state)
{
    buf_t b;
    buf_init(&b, 100);
    assert_int_equal(buf_append_lit(&b, "GET / HTTP/1.1\r\n"), 0);
    buf_consume(&b, 4);
    assert_int_equal(b.len, 12);
    assert_string_equal(b.data, "/ HTTP/1.1\r\n");
    buf_consume(&b, 0);
    assert_string_equal(b.data, "/ HTTP/1.1\r\n");
    buf_consume(&b, 12);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    buf_free(&b);
}

static void test_consume_more_than_len_empties(void **state)
{
    buf_t b;
    buf_init(&b, 100);
    assert_int_equal(buf_append_lit(&b, "abc"), 0);
    buf_consume(&b, 1000);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    buf_free(&b);
}

static void test_consume_and_reset_on_unallocated_buffer_are_safe(void **state)
{
    buf_t b;
    buf_init(&b, 100);
    buf_consume(&b, 0);
    buf_consume(&b, 5);
    buf_reset(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_consume_frees_room_under_the_max(void **state)
{
    buf_t b;
    buf_init(&b, 8);
    assert_int_equal(buf_append_lit(&b, "12345678"), 0);
    assert_int_equal(buf_append_lit(&b, "9"), -E2BIG);
    buf_consume(&b, 3);
    assert_int_equal(buf_append_lit(&b, "9ab"), 0);
    assert_string_equal(b.data, "456789ab");
    buf_free(&b);
}

static void test_reset_empties_but_keeps_memory(void **state)
{
    buf_t b;
    buf_init(&b, 1000);
    assert_int_equal(buf_append_lit(&b, "some bytes"), 0);
    char *data = b.data;
    size_t cap = b.cap;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_int_equal(buf_append_lit(&b, "new"), 0);
    assert_string_equal(b.data, "new");
    buf_free(&b);
}

/* ---- appendf ------------------------------------------------------------ */

static void test_appendf_formats_and_appends(void **state)
{
    buf_t b;
    buf_init(&b, 1000);
    assert_int_equal(buf_appendf(&b, "%s=%d", "a", 1), 0);
    assert_int_equal(buf_appendf(&b, ";%s=%05.2f;%zu", "b", 2.5, (size_t)7), 0);
    assert_string_equal(b.data, "a=1;b=02.50;7");
    assert_int_equal(b.len, strlen("a=1;b=02.50;7"));
    buf_free(&b);
}

static void test_appendf_empty_result_allocates_a_valid_string(void **state)
{
    buf_t b;
    buf_init(&b, 10);
    assert_int_equal(buf_appendf(&b, "%s", ""), 0);
    assert_int_equal(b.len, 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    buf_free(&b);
}

static void test_appendf_longer_than_initial_capacity(void **state)
{
    buf_t b;
    buf_init(&b, 100000);
    assert_int_equal(buf_appendf(&b, "x%0*dy", 5000, 1), 0);
    assert_int_equal(b.len, 5002);
    assert_int_equal(b.data[0], 'x');
    assert_int_equal(b.data[5000], '1');
    assert_int_equal(b.data[5001], 'y');
    assert_int_equal(b.data[5002], '\0');
    buf_free(&b);
}

static void test_appendf_past_max_fails_and_leaves_buffer_unchanged(void **state)
{
    buf_t b;
    buf_init(&b, 10);
    assert_int_equal(buf_appendf(&b, "%d", 12345), 0);
    assert_int_equal(buf_appendf(&b, "%s", "678901"), -E2BIG);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "12345");
    assert_int_equal(buf_appendf(&b, "%s", "67890"), 0);
    assert_string_equal(b.data, "1234567890");
    buf_free(&b);
}

/* ---- JSON strings ------------------------------------------------------- */

static void test_json_plain_ascii_is_quoted_verbatim(void **state)
{
    char *s = json_of("hello world", 11);
    assert_string_equal(s, "\"hello world\"");
    free(s);
    s = json_of("", 0);
    assert_string_equal(s, "\"\"");
    free(s);
}

static void test_json_escapes_quote_and_backslash(void **state)
{
    char *s = json_of("say \"hi\" \\o/", 12);
    assert_string_equal(s, "\"say \\\"hi\\\" \\\\o/\"");
    free(s);
    assert_json_roundtrip("\"\\\"\\", 4);
}

static void test_json_escapes_newline_cr_tab_short(void **state)
{
    char *s = json_of("a\nb\rc\td", 7);
    assert_string_equal(s, "\"a\\nb\\rc\\td\"");
    free(s);
}

static void test_json_escapes_other_control_chars_as_u00xx(void **state)
{
    char *s = json_of("\x01\x1f\x08\x0c", 4);
    assert_string_equal(s, "\"\\u0001\\u001f\\u0008\\u000c\"");
    free(s);
    /* NUL inside the data is data, not the end */
    s = json_of("a\0b", 3);
    assert_string_equal(s, "\"a\\u0000b\"");
    free(s);
}

static void test_json_escapes_del(void **state)
{
    char *s = json_of("x\x7fy", 3);
    assert_string_equal(s, "\"x\\u007fy\"");
    free(s);
}

static void test_json_every_control_byte_roundtrips(void **state)
{
    char all[0x21];
    for (int i = 0; i < 0x20; i++)
        all[i] = (char)i;
    all[0x20] = 0x7f;
    assert_json_roundtrip(all, sizeof(all));
    /* no raw control byte may appear in the output */
    char *s = json_of(all, sizeof(all));
    for (const char *p = s; *p; p++)
        assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p != 0x7f);
    free(s);
}

static void test_json_utf8_passes_through_unescaped(void **state)
{
    const char *u = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91"; /* café € 🔑 */
    char *s = json_of(u, strlen(u));
    char expect[64];
    snprintf(expect, sizeof(expect), "\"%s\"", u);
    assert_string_equal(s, expect);
    free(s);
    assert_json_roundtrip(u, strlen(u));
}

static void test_json_appends_after_existing_content(void **state)
{
    buf_t b;
    buf_init(&b, 100);
    assert_int_equal(buf_append_lit(&b, "{\"k\":"), 0);
    assert_int_equal(buf_append_json_string(&b, "v\"", 2), 0);
    assert_int_equal(buf_append_lit(&b, "}"), 0);
    assert_string_equal(b.data, "{\"k\":\"v\\\"\"}");
    json_t *v = json_loads(b.data, 0, NULL);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "k")), "v\"");
    json_decref(v);
    buf_free(&b);
}

static void test_json_string_exactly_at_max_fits(void **state)
{
    buf_t b;
    buf_init(&b, 6); /* "a\nb" -> "a\\nb" with quotes: exactly 6 bytes */
    assert_int_equal(buf_append_json_string(&b, "a\nb", 3), 0);
    assert_string_equal(b.data, "\"a\\nb\"");
    buf_free(&b);
}

static void test_json_string_over_max_fails_e2big(void **state)
{
    buf_t b;
    buf_init(&b, 8);
    assert_int_equal(buf_append_json_string(&b, "0123456789", 10), -E2BIG);
    buf_free(&b);
}

static void test_json_string_over_max_leaves_buffer_unchanged(void **state)
{
    /* Regression: buf.c buf_append_json_string() writes the opening quote and the
     * escaped bytes one append at a time; when the limit is hit midway (here
     * because escapes make the output longer than the raw input), it returns
     * -E2BIG with a half-written, unterminated literal left in the buffer
     * ("pre\"\\u0001\\u0001" below). Callers such as log_line_str then close
     * the object around it and emit invalid JSON. Expected: on failure the
     * buffer is as it was, like every other buf_* append. */
    buf_t b;
    buf_init(&b, 16);
    assert_int_equal(buf_append_lit(&b, "pre"), 0);
    assert_int_equal(buf_append_json_string(&b, "\x01\x01\x01\x01", 4), -E2BIG);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "pre");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_empty_and_owns_nothing),
        cmocka_unit_test(test_append_copies_and_nul_terminates),
        cmocka_unit_test(test_append_zero_bytes_succeeds_and_changes_nothing),
        cmocka_unit_test(test_append_grows_across_many_reallocations),
        cmocka_unit_test(test_append_up_to_max_exactly_succeeds),
        cmocka_unit_test(test_append_past_max_fails_e2big_and_leaves_buffer_unchanged),
        cmocka_unit_test(test_append_to_empty_past_max_allocates_nothing),
        cmocka_unit_test(test_huge_length_is_e2big_not_overflow),
        cmocka_unit_test(test_reserve_makes_room_without_changing_content),
        cmocka_unit_test(test_consume_drops_leading_bytes),
        cmocka_unit_test(test_consume_more_than_len_empties),
        cmocka_unit_test(test_consume_and_reset_on_unallocated_buffer_are_safe),
        cmocka_unit_test(test_consume_frees_room_under_the_max),
        cmocka_unit_test(test_reset_empties_but_keeps_memory),
        cmocka_unit_test(test_appendf_formats_and_appends),
        cmocka_unit_test(test_appendf_empty_result_allocates_a_valid_string),
        cmocka_unit_test(test_appendf_longer_than_initial_capacity),
        cmocka_unit_test(test_appendf_past_max_fails_and_leaves_buffer_unchanged),
        cmocka_unit_test(test_json_plain_ascii_is_quoted_verbatim),
        cmocka_unit_test(test_json_escapes_quote_and_backslash),
        cmocka_unit_test(test_json_escapes_newline_cr_tab_short),
        cmocka_unit_test(test_json_escapes_other_control_chars_as_u00xx),
        cmocka_unit_test(test_json_escapes_del),
        cmocka_unit_test(test_json_every_control_byte_roundtrips),
        cmocka_unit_test(test_json_utf8_passes_through_unescaped),
        cmocka_unit_test(test_json_appends_after_existing_content),
        cmocka_unit_test(test_json_string_exactly_at_max_fits),
        cmocka_unit_test(test_json_string_over_max_fails_e2big),
        cmocka_unit_test(test_json_string_over_max_leaves_buffer_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
