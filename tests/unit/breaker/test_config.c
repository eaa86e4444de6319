// SPDX-License-Identifier: Apache-2.0
// rate_limit: and breaker: in the config: values and defaults, the breaker
// set built from agents and providers, and line-numbered errors for bad
// input (which leave no snapshot behind).
#include "../config/helpers.h"

#include "breaker/breaker.h"

static const char *const PROVIDERS = "providers:\n"
                                     "  - name: up\n"
                                     "    kind: mock\n"
                                     "    breaker: {consecutive_errors: 3, pause: 2s, "
                                     "latency_p90: 1500ms, window: 10s, error_rate: 0.25, "
                                     "alert_window: 1m, min_calls: 4, "
                                     "webhook: 'http://127.0.0.1:9/hook'}\n"
                                     "  - name: plain\n"
                                     "    kind: mock\n";

static void test_values_and_defaults(void **state)
{
    (void)state;
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "%s"
             "agents:\n"
             "  - id: org\n"
             "    rate_limit: {requests_per_minute: 60, tokens_per_minute: 100000}\n"
             "    children:\n"
             "      - id: research\n"
             "        breaker: {}\n"
             "        rate_limit: {tokens_per_minute: 500}\n",
             PROVIDERS);
    struct config *c = load_ok(yaml);
    const struct config_agent *org = config_find_agent(c, "org");
    const struct config_agent *research = config_find_agent(c, "research");
    assert_int_equal(org->requests_per_minute, 60);
    assert_int_equal(org->tokens_per_minute, 100000);
    assert_null(org->breaker);
    assert_int_equal(research->requests_per_minute, 0);
    assert_int_equal(research->tokens_per_minute, 500);
    assert_non_null(research->breaker);
    assert_int_equal(research->breaker->consecutive_errors, 10);
    assert_int_equal(research->breaker->pause_ms, 60000);
    assert_int_equal(research->breaker->alert_window_ms, 300000);
    assert_true(research->breaker->error_rate == 0.5);
    const struct breaker_params *p = c->providers[0].breaker;
    assert_non_null(p);
    assert_int_equal(p->consecutive_errors, 3);
    assert_int_equal(p->pause_ms, 2000);
    assert_int_equal(p->latency_p90_ms, 1500);
    assert_int_equal(p->window_ms, 10000);
    assert_true(p->error_rate == 0.25);
    assert_int_equal(p->alert_window_ms, 60000);
    assert_int_equal(p->min_calls, 4);
    assert_string_equal(p->webhook, "http://127.0.0.1:9/hook");
    assert_null(c->providers[1].breaker);

    assert_non_null(c->breakers);
    assert_non_null(breaker_set_provider(c->breakers, 0));
    assert_null(breaker_set_provider(c->breakers, 1));
    assert_non_null(breaker_set_find(c->breakers, "agent:research"));
    /* research's calls are limited by org's 60 requests per minute too */
    struct breaker_chain ch;
    const char *ids[] = {"research"};
    assert_int_equal(breaker_chain_resolve(c->breakers, ids, 1, &ch), 0);
    assert_int_equal(breaker_chain_limits(c->breakers, &ch), 3);
    config_unref(c);
}

/* MCP: tool calls per agent (rolled up) and per server, all or nothing */
static void test_mcp_tool_call_limits(void **state)
{
    (void)state;
    struct config *c = load_ok("agents:\n"
                               "  - id: team\n"
                               "    rate_limit: {tool_calls_per_minute: 3}\n"
                               "    children: [{id: bot}]\n"
                               "mcp:\n"
                               "  servers:\n"
                               "    - {name: files, url: 'http://127.0.0.1:9/mcp',\n"
                               "       rate_limit: {calls_per_minute: 2}}\n"
                               "    - {name: web, url: 'http://127.0.0.1:9/mcp',\n"
                               "       breaker: {consecutive_errors: 2}}\n");
    assert_int_equal(config_find_agent(c, "team")->tool_calls_per_minute, 3);
    assert_int_equal(c->mcp.servers[0].calls_per_minute, 2);
    assert_int_equal(c->mcp.servers[1].calls_per_minute, 0);
    assert_null(c->mcp.servers[0].breaker);
    assert_non_null(c->mcp.servers[1].breaker);
    assert_int_equal(c->mcp.servers[1].breaker->consecutive_errors, 2);
    assert_null(breaker_set_mcp_server(c->breakers, "files"));
    assert_non_null(breaker_set_mcp_server(c->breakers, "web"));
    assert_ptr_equal(breaker_set_find(c->breakers, "mcp:web"),
                     breaker_set_mcp_server(c->breakers, "web"));
    struct breaker_set *s = c->breakers;
    assert_non_null(s);
    const char *ids[] = {"bot"};
    struct rl_refusal why;
    struct rl_view v;
    const uint64_t t0 = 1000000000000ULL;
    assert_int_equal(breaker_tool_admit(s, ids, 1, "files", t0, &v, &why), 0);
    assert_int_equal(v.limit, 2); /* the tighter of team (2 left) and files (1 left) */
    assert_int_equal(v.remaining, 1);
    assert_int_equal(breaker_tool_admit(s, ids, 1, "files", t0, NULL, &why), 0);
    /* files is used up: refused, and team's unit is given back */
    assert_int_equal(breaker_tool_admit(s, ids, 1, "files", t0, NULL, &why), 1);
    assert_string_equal(why.node, "files");
    assert_int_equal(why.tokens, 3);
    assert_int_equal(why.limit, 2);
    assert_true(why.retry_after_ns > 0 && why.retry_after_ns <= 30000000000ULL);
    /* team has one left: web takes it, then team refuses */
    assert_int_equal(breaker_tool_admit(s, ids, 1, "web", t0, NULL, &why), 0);
    assert_int_equal(breaker_tool_admit(s, ids, 1, "web", t0, NULL, &why), 1);
    assert_string_equal(why.node, "team");
    assert_int_equal(why.tokens, 2);
    /* a minute later both have refilled */
    assert_int_equal(breaker_tool_admit(s, ids, 1, "files", t0 + 60000000000ULL, NULL, &why), 0);
    /* LLM rate limits are not involved: no requests or tokens limits */
    struct breaker_chain ch;
    assert_int_equal(breaker_chain_resolve(s, ids, 1, &ch), 0);
    assert_int_equal(breaker_chain_limits(s, &ch), 0);
    config_unref(c);
    load_fails("mcp:\n"
               "  servers:\n"
               "    - name: files\n"
               "      url: 'http://127.0.0.1:9/mcp'\n"
               "      rate_limit: {calls_per_minute: 0}\n",
               "t.yaml:5: mcp.servers[0].rate_limit.calls_per_minute: must be at least 1\n");
    load_fails("mcp:\n"
               "  servers:\n"
               "    - name: files\n"
               "      url: 'http://127.0.0.1:9/mcp'\n"
               "      rate_limit: 5\n",
               "t.yaml:5: mcp.servers[0].rate_limit: expected a mapping like "
               "{calls_per_minute: 60}\n");
}

static void test_nothing_configured_no_set(void **state)
{
    (void)state;
    struct config *c = load_ok("agents:\n  - id: a\n    children: [{id: b}]\n");
    assert_null(c->breakers);
    config_unref(c);
}

static void test_bad_values_are_line_numbered_errors(void **state)
{
    (void)state;
    load_fails("agents:\n"
               "  - id: a\n"
               "    rate_limit: {requests_per_minute: 0}\n",
               "t.yaml:3: agents[0].rate_limit.requests_per_minute: must be at least 1\n");
    load_fails("agents:\n"
               "  - id: a\n"
               "    rate_limit: {}\n",
               "t.yaml:3: agents[0].rate_limit: needs requests_per_minute, tokens_per_minute "
               "or tool_calls_per_minute\n");
    load_fails("agents:\n"
               "  - id: a\n"
               "    rate_limit: 60\n",
               "t.yaml:3: agents[0].rate_limit: expected a mapping like "
               "{requests_per_minute: 60}\n");
    load_fails("agents:\n"
               "  - id: a\n"
               "    rate_limit: {request_per_minute: 5}\n",
               "t.yaml:3: agents[0].rate_limit: unknown key 'request_per_minute' (did you mean "
               "'requests_per_minute'?)\n");
    load_fails("agents:\n"
               "  - id: a\n"
               "    breaker:\n"
               "      pause: soon\n"
               "      error_rate: 1.5\n",
               "t.yaml:4: agents[0].breaker.pause: expected a duration like 500ms, 10s, 5m, "
               "1h or a number of milliseconds, got 'soon'\n"
               "t.yaml:5: agents[0].breaker.error_rate: must be between 0 and 1, got 1.5\n");
    load_fails("providers:\n"
               "  - name: up\n"
               "    kind: mock\n"
               "    breaker: {webhook: 'ftp://x', consecutive_erors: 3}\n",
               "t.yaml:4: providers[0].breaker: unknown key 'consecutive_erors' (did you mean "
               "'consecutive_errors'?)\n"
               "t.yaml:4: providers[0].breaker.webhook: must start with http:// or https://, "
               "got 'ftp://x'\n");
    load_fails("providers:\n"
               "  - name: up\n"
               "    kind: mock\n"
               "    breaker: [1]\n",
               "t.yaml:4: providers[0].breaker: expected a mapping like {consecutive_errors: "
               "10, pause: 60s}\n");
    load_fails("providers:\n"
               "  - name: up\n"
               "    kind: mock\n"
               "    breaker: {window: 5ms}\n",
               "t.yaml:4: providers[0].breaker.window: must be at least 10ms\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_and_defaults),
        cmocka_unit_test(test_mcp_tool_call_limits),
        cmocka_unit_test(test_nothing_configured_no_set),
        cmocka_unit_test(test_bad_values_are_line_numbered_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
