// SPDX-License-Identifier: Apache-2.0
// The replay log behind Last-Event-ID on the gateway's SSE streams: events
// replayed per stream in order after a given id, the log bounded by count
// and bytes (and saying when it lost some), event ids parsed strictly.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mcp/internal.h"

struct got {
    uint64_t seq[MCP_REPLAY_EVENTS + 8];
    size_t n;
};

static int collect(void *ctx, uint64_t seq, const char *json, size_t len)
{
    struct got *g = ctx;
    g->seq[g->n++] = seq;
    return 0;
}

static void replays_what_followed_on_the_same_stream_only(void **state)
{
    struct mcp_evlog *l = mcp_evlog_new();
    assert_int_equal(mcp_evlog_add(l, 0, "{\"a\":1}", 7), 1);
    assert_int_equal(mcp_evlog_add(l, 3, "{\"b\":2}", 7), 2);
    assert_int_equal(mcp_evlog_add(l, 0, "{\"c\":3}", 7), 3);
    assert_int_equal(mcp_evlog_add(l, 3, "{\"d\":4}", 7), 4);
    struct got g = {0};
    assert_int_equal(mcp_evlog_replay(l, 3, 2, collect, &g), 1);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.seq[0], 4);
    g.n = 0;
    assert_int_equal(mcp_evlog_replay(l, 0, 0, collect, &g), 1);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.seq[0], 1);
    assert_int_equal(g.seq[1], 3);
    assert_int_equal(mcp_evlog_replay(l, 0, 5, collect, &g), -1); /* never sent */
    assert_int_equal(mcp_evlog_last(l), 4);
    mcp_evlog_unref(l);
}

static void the_log_is_bounded_and_says_when_it_lost_events(void **state)
{
    struct mcp_evlog *l = mcp_evlog_new();
    for (int i = 0; i < MCP_REPLAY_EVENTS + 44; i++)
        mcp_evlog_add(l, 0, "{}", 2);
    struct got g = {0};
    assert_int_equal(mcp_evlog_replay(l, 0, 10, collect, &g), 0); /* 11..44 are gone */
    assert_int_equal(g.n, MCP_REPLAY_EVENTS);
    assert_int_equal(g.seq[0], 45);
    g.n = 0;
    assert_int_equal(mcp_evlog_replay(l, 0, 44, collect, &g), 1);
    assert_int_equal(g.n, MCP_REPLAY_EVENTS);
    /* bytes: two events of half the bound cannot both stay */
    static char big[MCP_REPLAY_BYTES / 2 + 1];
    memset(big, 'x', sizeof big);
    mcp_evlog_add(l, 1, big, sizeof big);
    uint64_t second = mcp_evlog_add(l, 1, big, sizeof big);
    g.n = 0;
    assert_int_equal(mcp_evlog_replay(l, 1, 0, collect, &g), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.seq[0], second);
    mcp_evlog_unref(l);
}

static void event_ids_parse_strictly(void **state)
{
    uint32_t st;
    uint64_t seq;
    assert_int_equal(mcp_event_id_parse("0-17", &st, &seq), 0);
    assert_int_equal(st, 0);
    assert_int_equal(seq, 17);
    assert_int_equal(mcp_event_id_parse("12-3", &st, &seq), 0);
    assert_int_equal(st, 12);
    const char *bad[] = {"", "-", "0-", "-1", "1", "a-1", "1-a", "1-2-3", "1 -2",
                         "99999999999-1", "1-99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mcp_event_id_parse(bad[i], &st, &seq), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replays_what_followed_on_the_same_stream_only),
        cmocka_unit_test(the_log_is_bounded_and_says_when_it_lost_events),
        cmocka_unit_test(event_ids_parse_strictly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
