// SPDX-License-Identifier: Apache-2.0
// The guard's settings for the MCP hub: guard.trifecta off|warn|enforce, and the
// per-server override mcp.servers[].guard (block|sanitize|flag|off), which needs the
// guard: section for its rule pack; bad values are refused with file:line.
#include "../config/helpers.h"

static const char *const BASE = "providers: [{name: m, kind: mock}]\n"
                                "models: [{name: mock-1, targets: [m]}]\n";

static struct config *load(const char *rest, struct config_errors *errs)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "%s%s", BASE, rest);
    return config_load_string("t.yaml", yaml, strlen(yaml), errs);
}

static const char *const SERVERS =
    "mcp:\n"
    "  servers:\n"
    "    - {name: a, url: 'http://127.0.0.1:1/mcp', guard: block}\n"
    "    - {name: b, url: 'http://127.0.0.1:2/mcp', guard: flag}\n"
    "    - {name: c, url: 'http://127.0.0.1:3/mcp', guard: off}\n"
    "    - {name: d, url: 'http://127.0.0.1:4/mcp', guard: sanitize}\n"
    "    - {name: e, url: 'http://127.0.0.1:5/mcp'}\n";

static void trifecta_modes(void **state)
{
    (void)state;
    struct config_errors errs;
    const char *modes[] = {"off", "warn", "enforce"};
    for (int i = 0; i < 3; i++) {
        char g[128];
        snprintf(g, sizeof g, "guard: {scan: [tool_outputs], trifecta: %s}\n", modes[i]);
        struct config *c = load(g, &errs);
        assert_non_null(c);
        assert_int_equal(c->guard.trifecta_warn, i == 1);
        assert_int_equal(c->guard.trifecta_enforce, i == 2);
        assert_int_equal(c->guard.scan, CONFIG_GUARD_TOOL_OUTPUTS);
        config_unref(c);
    }
}

static void per_server_override(void **state)
{
    (void)state;
    struct config_errors errs;
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "guard: {action: sanitize}\n%s", SERVERS);
    struct config *c = load(yaml, &errs);
    assert_non_null(c);
    assert_int_equal(c->mcp.nservers, 5);
    assert_int_equal(c->mcp.servers[0].guard_action, CONFIG_GUARD_BLOCK);
    assert_int_equal(c->mcp.servers[1].guard_action, CONFIG_GUARD_FLAG);
    assert_int_equal(c->mcp.servers[2].guard_action, -1);
    assert_int_equal(c->mcp.servers[3].guard_action, CONFIG_GUARD_SANITIZE);
    assert_int_equal(c->mcp.servers[4].guard_action, 0); /* guard.action applies */
    config_unref(c);
}

static void override_without_guard_section_is_refused(void **state)
{
    (void)state;
    struct config_errors errs;
    struct config *c = load(SERVERS, &errs);
    assert_null(c);
    char *text = errors_text(&errs);
    assert_non_null(strstr(text, "t.yaml:5: mcp.servers[0].guard: needs a guard: section"));
    assert_non_null(strstr(text, "t.yaml:6: mcp.servers[1].guard: needs a guard: section"));
    assert_null(strstr(text, "servers[2]")); /* off needs no rule pack */
    free(text);
    config_errors_free(&errs);
}

static void bad_override_is_refused(void **state)
{
    (void)state;
    struct config_errors errs;
    struct config *c = load("guard: {}\n"
                            "mcp:\n"
                            "  servers:\n"
                            "    - {name: a, url: 'http://127.0.0.1:1/mcp', guard: quarantine}\n",
                            &errs);
    assert_null(c);
    char *text = errors_text(&errs);
    assert_non_null(strstr(text, "t.yaml:6: mcp.servers[0].guard: expected block, sanitize, flag "
                                 "or off, got 'quarantine'"));
    free(text);
    config_errors_free(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(trifecta_modes),
        cmocka_unit_test(per_server_override),
        cmocka_unit_test(override_without_guard_section_is_refused),
        cmocka_unit_test(bad_override_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
