// SPDX-License-Identifier: Apache-2.0
// Unit tests for a2a/sse.c: an A2A event stream as the a2a-sdk sends it is cut
// into the same events, byte for byte, whether it is fed whole, split at every
// offset or byte by byte; LF, CRLF and CR framing; the event too large; the
// held tail at the end; data lines joined.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "a2a/internal.h"

static const char STREAM[] =
    "data: {\"result\": {\"task\": {\"id\": \"t1\", \"status\": {\"state\": "
    "\"TASK_STATE_SUBMITTED\"}}}, \"id\": 1, \"jsonrpc\": \"2.0\"}\r\n\r\n"
    ": keep-alive\n\n"
    "event: message\ndata: {\"result\":\n"
    "data: {\"statusUpdate\": {\"taskId\": \"t1\"}}}\n\n"
    "data: {\"result\": {\"artifactUpdate\": {\"artifact\": {\"parts\": [{\"text\": "
    "\"a\"}]}}}}\r\r";

struct got {
    char events[8][512];
    size_t len[8];
    size_t n;
    int stop_at; /* return -1 on this event (1-based); 0 never */
};

static int collect(void *ud, const char *ev, size_t len)
{
    struct got *g = ud;
    if (g->n < 8 && len < 512) {
        memcpy(g->events[g->n], ev, len);
        g->len[g->n] = len;
    }
    g->n++;
    return g->stop_at && (int)g->n == g->stop_at ? -1 : 0;
}

static void check_events(const struct got *g)
{
    assert_int_equal(g->n, 4);
    size_t off = 0;
    for (size_t i = 0; i < g->n; i++) {
        assert_memory_equal(g->events[i], STREAM + off, g->len[i]);
        off += g->len[i];
    }
    assert_int_equal(off, sizeof STREAM - 1);
}

static void splits_whole_and_at_every_offset_alike(void **state)
{
    (void)state;
    size_t n = sizeof STREAM - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        struct a2a_sse s;
        struct got g = {0};
        a2a_sse_init(&s, 4096);
        assert_int_equal(a2a_sse_feed(&s, STREAM, cut, collect, &g), 0);
        assert_int_equal(a2a_sse_feed(&s, STREAM + cut, n - cut, collect, &g), 0);
        assert_int_equal(a2a_sse_finish(&s, collect, &g), 0);
        check_events(&g);
        a2a_sse_free(&s);
    }
}

static void splits_byte_by_byte(void **state)
{
    (void)state;
    struct a2a_sse s;
    struct got g = {0};
    a2a_sse_init(&s, 4096);
    for (size_t i = 0; i + 1 < sizeof STREAM; i++)
        assert_int_equal(a2a_sse_feed(&s, STREAM + i, 1, collect, &g), 0);
    /* the last event ends "\r\r": complete only once the stream ends */
    assert_int_equal(g.n, 3);
    assert_int_equal(a2a_sse_finish(&s, collect, &g), 0);
    check_events(&g);
    a2a_sse_free(&s);
}

static void an_event_too_large_is_refused(void **state)
{
    (void)state;
    struct a2a_sse s;
    struct got g = {0};
    char big[300];
    memset(big, 'x', sizeof big);
    memcpy(big, "data: ", 6);
    a2a_sse_init(&s, 256);
    assert_int_equal(a2a_sse_feed(&s, "data: ok\n\n", 10, collect, &g), 0);
    assert_int_equal(a2a_sse_feed(&s, big, sizeof big, collect, &g), -E2BIG);
    assert_int_equal(g.n, 1);
    a2a_sse_free(&s);
}

static void the_callback_can_stop_the_feed(void **state)
{
    (void)state;
    struct a2a_sse s;
    struct got g = {.stop_at = 2};
    a2a_sse_init(&s, 4096);
    assert_int_equal(a2a_sse_feed(&s, STREAM, sizeof STREAM - 1, collect, &g), -1);
    assert_int_equal(g.n, 2);
    a2a_sse_free(&s);
}

static void event_data_joins_lines_and_reads_the_name(void **state)
{
    (void)state;
    const char ev[] = "event: error\r\ndata:{\"a\":\ndata:  1}\n: c\nid: 7\n\n";
    buf_t d;
    buf_init(&d, 1024);
    char name[16];
    assert_int_equal(a2a_sse_event_data(ev, sizeof ev - 1, &d, name, sizeof name), 2);
    assert_string_equal(name, "error");
    assert_int_equal(d.len, strlen("{\"a\":\n 1}"));
    assert_memory_equal(d.data, "{\"a\":\n 1}", d.len);
    buf_reset(&d);
    assert_int_equal(a2a_sse_event_data(": only a comment\n\n", 18, &d, NULL, 0), 0);
    assert_int_equal(d.len, 0);
    buf_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(splits_whole_and_at_every_offset_alike),
        cmocka_unit_test(splits_byte_by_byte),
        cmocka_unit_test(an_event_too_large_is_refused),
        cmocka_unit_test(the_callback_can_stop_the_feed),
        cmocka_unit_test(event_data_joins_lines_and_reads_the_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
