// SPDX-License-Identifier: Apache-2.0
// admin: as "host:port" or {listen, token_env}; the token read from the
// environment at load; budget: soft limit, webhook and reservation TTL.
#include "helpers.h"

static void test_admin_string_form_uses_the_default_token_variable(void **state)
{
    (void)state;
    setenv("PORTCULLIS_ADMIN_TOKEN", "tok-1", 1);
    struct config *c = load_ok("admin: 127.0.0.1:9191\n");
    assert_true(c->has_admin);
    assert_string_equal(c->admin.host, "127.0.0.1");
    assert_int_equal(c->admin.port, 9191);
    assert_string_equal(c->admin_token_env, "PORTCULLIS_ADMIN_TOKEN");
    assert_string_equal(c->admin_token, "tok-1");
    config_unref(c);
    unsetenv("PORTCULLIS_ADMIN_TOKEN");
}

static void test_admin_mapping_names_its_token_variable(void **state)
{
    (void)state;
    unsetenv("MY_ADMIN_TOK");
    struct config *c = load_ok("admin: {listen: '127.0.0.1:9292', token_env: MY_ADMIN_TOK}\n");
    assert_int_equal(c->admin.port, 9292);
    assert_null(c->admin_token); /* unset: the listener answers 401 */
    config_unref(c);
    c = load_ok("listen: 127.0.0.1:8081\n");
    assert_false(c->has_admin);
    config_unref(c);
}

static void test_admin_errors(void **state)
{
    (void)state;
    load_fails("admin: {token_env: X}\n", "t.yaml:1: admin: missing required key 'listen'\n");
    load_fails("admin: {listen: '127.0.0.1:9', token_env: 'not a name'}\n",
               "t.yaml:1: admin.token_env: expected an environment variable name like "
               "PORTCULLIS_ADMIN_TOKEN, got 'not a name'\n");
    load_fails("admin: [1]\n", "t.yaml:1: admin: expected \"host:port\" or a mapping {listen: "
                               "\"host:port\", token_env: NAME}\n");
    load_fails("admin: {listen: '127.0.0.1:9', tokn_env: X}\n",
               "t.yaml:1: admin: unknown key 'tokn_env' (did you mean 'token_env'?)\n");
}

static void test_budget_section(void **state)
{
    (void)state;
    struct config *c = load_ok("listen: 127.0.0.1:8081\n");
    assert_true(c->budget_opts.soft_limit == 0.8);
    assert_null(c->budget_opts.webhook);
    assert_int_equal(c->budget_opts.reservation_ttl_ms, 30 * 60 * 1000);
    config_unref(c);
    c = load_ok("budget: {soft_limit: 0.5, webhook: 'http://127.0.0.1:1/hook', "
                "reservation_ttl: 2m}\n");
    assert_true(c->budget_opts.soft_limit == 0.5);
    assert_string_equal(c->budget_opts.webhook, "http://127.0.0.1:1/hook");
    assert_int_equal(c->budget_opts.reservation_ttl_ms, 120000);
    config_unref(c);
    load_fails("budget: {webhook: 'ftp://x'}\n",
               "t.yaml:1: budget.webhook: expected an http:// or https:// URL, got 'ftp://x'\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admin_string_form_uses_the_default_token_variable),
        cmocka_unit_test(test_admin_mapping_names_its_token_variable),
        cmocka_unit_test(test_admin_errors),
        cmocka_unit_test(test_budget_section),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
