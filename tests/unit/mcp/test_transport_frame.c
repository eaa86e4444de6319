// SPDX-License-Identifier: Apache-2.0
// Unit tests for the MCP transports' framing: newline lines (split anywhere,
// CRLF, limits), Server-Sent Events (multi-line data, every line ending,
// comments, ids, retry, limits), JSON-RPC batch splitting and the top-level
// id/method scan the HTTP transport matches answers with.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/transport_frame.h"

/* Collected output: items separated by '|'. */
static char got[4096];

static int collect(void *ctx, const char *s, size_t len)
{
    size_t at = strlen(got);
    if (at && at < sizeof(got) - 1)
        got[at++] = '|';
    if (len > sizeof(got) - 1 - at)
        len = sizeof(got) - 1 - at;
    memcpy(got + at, s, len);
    got[at + len] = '\0';
    return 0;
}

static int collect_event(void *ctx, const struct mcp_sse_event *ev)
{
    char one[1024];
    snprintf(one, sizeof(one), "%s:%s#%s", ev->type, ev->data, ev->id);
    assert_int_equal(strlen(ev->data), ev->data_len);
    return collect(ctx, one, strlen(one));
}

static void feed_lines_in_pieces(const char *in, size_t piece, size_t max, int truncate,
                                 int want_rc)
{
    struct mcp_lines l;
    mcp_lines_init(&l, max, truncate);
    got[0] = '\0';
    int rc = 0;
    for (size_t i = 0; i < strlen(in) && !rc; i += piece) {
        size_t n = strlen(in) - i < piece ? strlen(in) - i : piece;
        rc = mcp_lines_feed(&l, in + i, n, collect, NULL);
    }
    if (!rc)
        rc = mcp_lines_finish(&l, collect, NULL);
    assert_int_equal(rc, want_rc);
    mcp_lines_free(&l);
}

static void test_lines_are_the_same_however_the_input_is_cut(void **state)
{
    const char *in = "{\"a\":1}\n\r\n\n{\"b\":2}\r\n{\"c\":3}\npartial";
    for (size_t piece = 1; piece <= strlen(in); piece++) {
        feed_lines_in_pieces(in, piece, 100, 0, 0);
        assert_string_equal(got, "{\"a\":1}|{\"b\":2}|{\"c\":3}");
    }
}

static void test_line_over_the_limit_is_an_error_or_cut_in_pieces(void **state)
{
    feed_lines_in_pieces("12345\n123456789\n", 3, 8, 0, -E2BIG);
    assert_string_equal(got, "12345");
    feed_lines_in_pieces("123456789\n", 100, 8, 0, -E2BIG);
    assert_string_equal(got, "");
    feed_lines_in_pieces("12345\n123456789\nab", 2, 4, 1, 0);
    assert_string_equal(got, "1234|5|1234|5678|9|ab");
}

static void sse(const char *in, size_t piece, size_t max, int want_rc)
{
    struct mcp_sse s;
    mcp_sse_init(&s, max);
    got[0] = '\0';
    int rc = 0;
    for (size_t i = 0; i < strlen(in) && !rc; i += piece) {
        size_t n = strlen(in) - i < piece ? strlen(in) - i : piece;
        rc = mcp_sse_feed(&s, in + i, n, collect_event, NULL);
    }
    assert_int_equal(rc, want_rc);
    mcp_sse_free(&s);
}

static void test_sse_events_with_every_line_ending(void **state)
{
    const char *in = "\xEF\xBB\xBF: a comment\r\n"
                     "id: 1\r\n"
                     "data: {\"x\":\r\n"
                     "data:  1}\r\n"
                     "\r\n"
                     "event: note\rdata:{}\r\r"
                     "retry: 1500\n"
                     "id\n"
                     "data\n\n"
                     "data: tail without blank line";
    for (size_t piece = 1; piece <= strlen(in); piece++) {
        sse(in, piece, 1000, 0);
        assert_string_equal(got, "message:{\"x\":\n 1}#1|note:{}#1");
    }
    struct mcp_sse s;
    mcp_sse_init(&s, 1000);
    got[0] = '\0';
    assert_int_equal(mcp_sse_feed(&s, in, strlen(in), collect_event, NULL), 0);
    assert_int_equal(s.retry_ms, 1500);
    assert_string_equal(s.id, "");
    mcp_sse_free(&s);
}

static void test_sse_event_over_the_limit_fails_for_good(void **state)
{
    sse("data: 0123456789\n\n", 4, 8, -E2BIG);
    sse("data: 0123\ndata: 4567\ndata: 89\n\n", 100, 12, -E2BIG);
    struct mcp_sse s;
    mcp_sse_init(&s, 8);
    assert_int_equal(mcp_sse_feed(&s, "data: 0123456789\n", 17, collect_event, NULL), -E2BIG);
    assert_int_equal(mcp_sse_feed(&s, "data: 1\n\n", 9, collect_event, NULL), -E2BIG);
    mcp_sse_free(&s);
}

static int split(const char *in)
{
    got[0] = '\0';
    return mcp_json_split(in, strlen(in), collect, NULL);
}

static void test_json_split_batches_and_single_messages(void **state)
{
    assert_int_equal(split(" {\"id\":1,\"s\":\"]},[\\\"\"} \n"), 0);
    assert_string_equal(got, "{\"id\":1,\"s\":\"]},[\\\"\"}");
    assert_int_equal(split("[{\"a\":[1,2]} , {\"b\":\"x\"},3,\"s\",null]"), 0);
    assert_string_equal(got, "{\"a\":[1,2]}|{\"b\":\"x\"}|3|\"s\"|null");
    /* broken text delivers nothing */
    const char *bad[] = {
        "",           "   ",    "[]",    "[{}",    "[{} {}]",          "[{},]", "{\"a\":1}}",
        "{\"a\":[}]", "\"open", "{} {}", "[1,,2]", "{\"a\":\"\x01\"}", "@"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(split(bad[i]), -EINVAL);
        assert_string_equal(got, "");
    }
    char deep[1200];
    memset(deep, '[', 600);
    memset(deep + 600, ']', 600);
    deep[1199] = '\0';
    assert_int_equal(mcp_json_split(deep, 1200 - 1, collect, NULL), -EINVAL);
}

static void test_json_info_finds_id_method_and_result(void **state)
{
    struct mcp_json_info i;
    const char *req =
        "{\"jsonrpc\":\"2.0\",\"method\":\"initialize\",\"params\":{\"id\":9},\"id\":\"a-1\"}";
    assert_int_equal(mcp_json_info(req, strlen(req), &i), 0);
    assert_int_equal(i.id_len, 5);
    assert_memory_equal(i.id, "\"a-1\"", 5);
    assert_int_equal(i.method_len, 12);
    assert_memory_equal(i.method, "\"initialize\"", 12);
    assert_false(i.has_result);

    const char *resp = " { \"result\" : {\"method\":\"x\"} , \"id\" : \"a-1\" } ";
    assert_int_equal(mcp_json_info(resp, strlen(resp), &i), 0);
    assert_true(mcp_json_is_response_to(&i, "\"a-1\"", 5));
    assert_false(mcp_json_is_response_to(&i, "\"a-2\"", 5));
    const char *err = "{\"jsonrpc\":\"2.0\",\"id\":12,\"error\":{\"code\":-1,\"message\":\"m\"}}";
    assert_int_equal(mcp_json_info(err, strlen(err), &i), 0);
    assert_true(mcp_json_is_response_to(&i, "12", 2));
    const char *note = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}";
    assert_int_equal(mcp_json_info(note, strlen(note), &i), 0);
    assert_false(mcp_json_is_response_to(&i, "12", 2));
    assert_int_equal(mcp_json_info("[1]", 3, &i), -EINVAL);
    assert_int_equal(mcp_json_info("{\"a\" 1}", 7, &i), -EINVAL);
    assert_int_equal(mcp_json_info("{}", 2, &i), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_are_the_same_however_the_input_is_cut),
        cmocka_unit_test(test_line_over_the_limit_is_an_error_or_cut_in_pieces),
        cmocka_unit_test(test_sse_events_with_every_line_ending),
        cmocka_unit_test(test_sse_event_over_the_limit_fails_for_good),
        cmocka_unit_test(test_json_split_batches_and_single_messages),
        cmocka_unit_test(test_json_info_finds_id_method_and_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
