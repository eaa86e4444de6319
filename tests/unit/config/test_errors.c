// SPDX-License-Identifier: Apache-2.0
// What users see when a config is wrong: one "file:line: message" per
// problem, every problem at once, sorted by line, never a crash.
#include "helpers.h"

#include <fcntl.h>
#include <unistd.h>

static void test_yaml_syntax_error_has_libyaml_line(void **state)
{
    load_fails("listen: 127.0.0.1:8080\n  workers: 2\n",
               "t.yaml:2: invalid YAML: mapping values are not allowed in this context\n");
    load_fails("listen: 127.0.0.1:8080\nproviders:\n  - name: a\n   kind: mock\n",
               "t.yaml:4: invalid YAML: did not find expected '-' indicator (while parsing a "
               "block collection at line 3)\n");
    load_fails("a: b\n- c\n", "t.yaml:2: invalid YAML: did not find expected key (while parsing "
                              "a block mapping at line 1)\n");
    load_fails("models: [\n", "t.yaml:2: invalid YAML: did not find expected node content "
                              "(while parsing a flow node at line 2)\n");
    load_fails("listen: *nowhere\n", "t.yaml:1: invalid YAML: found undefined alias\n");
}

static void test_invalid_utf8_reports_its_line(void **state)
{
    load_fails("listen: 127.0.0.1:8080\nlog_level: \xc3\x28\n",
               "t.yaml:2: invalid YAML: invalid trailing UTF-8 octet\n");
}

static void test_empty_and_non_mapping_roots(void **state)
{
    load_fails("", "t.yaml:0: the configuration is empty\n");
    load_fails("# nothing but a comment\n\n", "t.yaml:0: the configuration is empty\n");
    load_fails("\n- listen\n",
               "t.yaml:2: the top level must be a mapping of keys (listen:, providers:, ...)\n");
    load_fails("just a string\n",
               "t.yaml:1: the top level must be a mapping of keys (listen:, providers:, ...)\n");
}

static void test_second_document_is_an_error(void **state)
{
    load_fails("listen: 127.0.0.1:8080\n---\nlisten: 127.0.0.1:8081\n",
               "t.yaml:3: only one YAML document is allowed (found a second '---')\n");
}

static void test_unknown_keys_name_the_key_and_suggest(void **state)
{
    load_fails("listn: 127.0.0.1:8080\n",
               "t.yaml:1: unknown top-level key 'listn' (did you mean 'listen'?)\n");
    load_fails("frobnicate: 1\n", "t.yaml:1: unknown top-level key 'frobnicate'\n");
    load_fails("limits:\n  max_body: 1MiB\n", "t.yaml:2: limits: unknown key 'max_body'\n");
    load_fails("limits:\n  max_header: 1KiB\n",
               "t.yaml:2: limits: unknown key 'max_header' (did you mean 'max_headers'?)\n");
    load_fails("tls: {cert: a, kye: b}\n",
               "t.yaml:1: tls: unknown key 'kye' (did you mean 'key'?)\n"
               "t.yaml:1: tls: cert and key must be set together (missing key)\n");
    load_fails("providers:\n  - name: a\n    kind: mock\n    mock:\n      tokns: 3\n",
               "t.yaml:5: providers[0].mock: unknown key 'tokns' (did you mean 'tokens'?)\n");
    load_fails("providers:\n  - name: a\n    kind: mock\n    latency: 3\n",
               "t.yaml:4: providers[0]: unknown key 'latency'\n");
    load_fails("providers: [{name: a, kind: mock}]\n"
               "models:\n  - name: m\n    target: [a]\n",
               "t.yaml:3: models[0]: missing required key 'targets'\n"
               "t.yaml:4: models[0]: unknown key 'target' (did you mean 'targets'?)\n");
}

static void test_duplicate_and_non_string_keys(void **state)
{
    load_fails("listen: 127.0.0.1:1\nworkers: 2\nlisten: 127.0.0.1:2\n",
               "t.yaml:3: duplicate key 'listen'\n");
    load_fails("? [a, b]\n: 1\n", "t.yaml:1: expected a string key, got a list\n");
}

static void test_wrong_types(void **state)
{
    load_fails("listen: [127.0.0.1:8080]\n",
               "t.yaml:1: listen: expected a single value, got a list\n");
    load_fails("workers: {n: 2}\n", "t.yaml:1: workers: expected a single value, got a mapping\n");
    load_fails("limits: 5\n", "t.yaml:1: limits: expected a mapping, got '5'\n");
    load_fails("providers: {name: a}\n", "t.yaml:1: providers: expected a list, got a mapping\n");
    load_fails("models: gpt\n", "t.yaml:1: models: expected a list, got 'gpt'\n");
    load_fails("providers:\n  - local\n",
               "t.yaml:2: providers[0]: expected a mapping like {name: x, kind: mock}\n");
    load_fails("log_level:\n", "t.yaml:1: log_level: missing value\n");
    load_fails("listen: \"127.0.0.1:80\\0\"\n", "t.yaml:1: listen: contains a NUL character\n");
}

static void test_later_sections_only_check_their_shape(void **state)
{
    load_fails("identity: [a]\n", "t.yaml:1: identity: expected a mapping, got a list\n");
    load_fails("agents: {id: acme}\n", "t.yaml:1: agents: expected a list, got a mapping\n");
    load_fails("mcp: on\n", "t.yaml:1: mcp: expected a mapping, got 'on'\n");
    load_fails("a2a: []\npolicy: []\nguard: []\ncache: []\ntelemetry: []\nbudget: []\n"
               "breakers: []\naudit: []\n",
               "t.yaml:1: a2a: expected a mapping, got a list\n"
               "t.yaml:2: policy: expected a mapping, got a list\n"
               "t.yaml:3: guard: expected a mapping, got a list\n"
               "t.yaml:4: cache: expected a mapping, got a list\n"
               "t.yaml:5: telemetry: expected a mapping, got a list\n"
               "t.yaml:6: budget: expected a mapping, got a list\n"
               "t.yaml:7: breakers: expected a mapping, got a list\n"
               "t.yaml:8: audit: expected a mapping, got a list\n");
}

static void test_listen_errors(void **state)
{
    load_fails("listen: 127.0.0.1:99999\n", "t.yaml:1: listen: port 99999 out of range 1-65535\n");
    load_fails("listen: 127.0.0.1:0\n", "t.yaml:1: listen: port 0 out of range 1-65535\n");
    load_fails("listen: 8080\n",
               "t.yaml:1: listen: expected host:port like 127.0.0.1:8080, got '8080'\n");
    load_fails("admin: \":9090\"\n",
               "t.yaml:1: admin: missing host in ':9090' (use 0.0.0.0:9090 for all interfaces)\n");
    load_fails("admin: ::1:9090\n", "t.yaml:1: admin: IPv6 addresses need brackets, like "
                                    "[::1]:8080\n");
}

static void test_workers_state_and_log_level_errors(void **state)
{
    load_fails("workers: 0\n", "t.yaml:1: workers: must be at least 1\n");
    load_fails("workers: -4\n",
               "t.yaml:1: workers: must be a positive integer or 'auto', got '-4'\n");
    load_fails("workers: lots\n", "t.yaml:1: workers: expected an integer, got 'lots'\n");
    load_fails("workers: 5000\n", "t.yaml:1: workers: too large (at most 1024)\n");
    load_fails("state: sqlite\n", "t.yaml:1: state: expected 'embedded' or a mapping {redis: "
                                  "URL, postgres: URL}, got 'sqlite'\n");
    load_fails("state: {}\n",
               "t.yaml:1: state: an external state mapping needs redis, postgres or both\n");
    load_fails("state:\n  redis: \"\"\n  mysql: x\n", "t.yaml:2: state.redis: must not be empty\n"
                                                      "t.yaml:3: state: unknown key 'mysql'\n");
    load_fails("state_path: \"\"\n", "t.yaml:1: state_path: must not be empty\n");
    load_fails("log_level: verbose\n",
               "t.yaml:1: log_level: expected debug, info, warn or error, got 'verbose'\n");
}

static void test_limits_errors(void **state)
{
    load_fails("limits:\n"
               "  max_header_bytes: 100\n"
               "  max_headers: -1\n"
               "  max_body_bytes: 8XB\n"
               "  header_timeout: -1s\n"
               "  body_timeout: 0\n"
               "  idle_timeout: 10q\n"
               "  max_connections: 1.5\n"
               "  drain_timeout: forever\n"
               "  max_retries: 5000000000\n",
               "t.yaml:2: limits.max_header_bytes: must be at least 256 bytes\n"
               "t.yaml:3: limits.max_headers: must not be negative\n"
               "t.yaml:4: limits.max_body_bytes: expected a size like 16KiB, 8MiB, 1MB or a number "
               "of bytes, got '8XB'\n"
               "t.yaml:5: limits.header_timeout: must not be negative\n"
               "t.yaml:6: limits.body_timeout: must be at least 1ms\n"
               "t.yaml:7: limits.idle_timeout: expected a duration like 500ms, 10s, 5m, 1h or a "
               "number of milliseconds, got '10q'\n"
               "t.yaml:8: limits.max_connections: expected an integer, got '1.5'\n"
               "t.yaml:9: limits.drain_timeout: expected a duration like 500ms, 10s, 5m, 1h or a "
               "number of milliseconds, got 'forever'\n"
               "t.yaml:10: limits.max_retries: too large (at most 4294967295)\n");
    load_fails("limits: {max_header_bytes: 8GiB}\n",
               "t.yaml:1: limits.max_header_bytes: too large (at most 4294967295 bytes)\n");
}

static void test_many_errors_collected_and_sorted_by_line(void **state)
{
    /* models is processed after providers, but messages come out by line. */
    load_fails("models:\n"
               "  - {name: m, targets: [ghost]}\n"
               "listen: nowhere\n"
               "providers:\n"
               "  - {name: p, kind: mock, mock: {failure_rate: 2}}\n"
               "workers: none\n"
               "bogus: 1\n",
               "t.yaml:2: models[0].targets[0].provider: unknown provider 'ghost'\n"
               "t.yaml:3: listen: expected host:port like 127.0.0.1:8080, got 'nowhere'\n"
               "t.yaml:5: providers[0].mock.failure_rate: must be between 0 and 1, got 2\n"
               "t.yaml:6: workers: expected an integer, got 'none'\n"
               "t.yaml:7: unknown top-level key 'bogus'\n");
}

static void test_error_count_is_capped(void **state)
{
    /* 300 unknown keys: 100 errors and a note that there were more. */
    size_t cap = 300 * 16 + 1;
    char *yaml = malloc(cap);
    size_t len = 0;
    for (int i = 0; i < 300; i++)
        len += (size_t)snprintf(yaml + len, cap - len, "bad%d: 1\n", i);
    struct config_errors errs;
    assert_null(config_load_string("t.yaml", yaml, len, &errs));
    assert_int_equal(errs.count, 101);
    assert_string_equal(errs.items[0].message, "unknown top-level key 'bad0'");
    assert_int_equal(errs.items[99].line, 100);
    assert_int_equal(errs.items[100].line, 0);
    assert_string_equal(errs.items[100].message, "too many errors, stopped after 100");
    config_errors_free(&errs);
    assert_null(errs.items);
    assert_int_equal(errs.count, 0);
    free(yaml);
}

static void test_control_characters_do_not_break_lines(void **state)
{
    load_fails("log_level: \"a\\nb\\tc\"\n",
               "t.yaml:1: log_level: expected debug, info, warn or error, got 'a?b?c'\n");
}

static void test_alias_bomb_is_bounded(void **state)
{
    /* Each level multiplies by 10; walking it would be 10^7 provider visits. */
    const char *yaml = "x-a: &a [{name: p, kind: mock}, {name: p, kind: mock}]\n"
                       "x-b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "providers: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n";
    struct config_errors errs;
    assert_null(config_load_string("t.yaml", yaml, strlen(yaml), &errs));
    assert_true(errs.count >= 1);
    config_errors_free(&errs);

    load_fails("providers: [&p {<<: *p, name: a, kind: mock}]\n",
               "t.yaml:1: providers[0]: merge key (<<) refers to a mapping that contains it\n");
}

static void test_deep_nesting_is_refused_quickly(void **state)
{
    /* libyaml's scanner is quadratic in flow depth: this must stop at 128. */
    size_t n = 200000;
    char *yaml = malloc(2 * n + 16);
    size_t len = (size_t)sprintf(yaml, "listen: 1\nx: ");
    memset(yaml + len, '[', n);
    memset(yaml + len + n, ']', n);
    len += 2 * n;
    struct config_errors errs;
    assert_null(config_load_string("t.yaml", yaml, len, &errs));
    char *text = errors_text(&errs);
    assert_string_equal(text, "t.yaml:2: nested deeper than 128 levels\n");
    free(text);
    config_errors_free(&errs);
    free(yaml);
}

static void test_missing_file(void **state)
{
    struct config_errors errs;
    assert_null(config_load("/nonexistent/portcullis.yaml", &errs));
    char *text = errors_text(&errs);
    assert_string_equal(text, "/nonexistent/portcullis.yaml:0: cannot read: No such file or "
                              "directory\n");
    free(text);
    config_errors_free(&errs);

    assert_null(config_load(TEST_DATA_DIR, &errs));
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.items[0].message, "cannot read: Is a directory");
    config_errors_free(&errs);
}

static void test_file_over_4mib_is_refused(void **state)
{
    char path[] = "/tmp/portcullis-config-big-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char block[4096];
    memset(block, '#', sizeof block);
    block[sizeof block - 1] = '\n';
    for (int i = 0; i <= 1024; i++)
        assert_int_equal(write(fd, block, sizeof block), sizeof block);
    close(fd);

    struct config_errors errs;
    assert_null(config_load(path, &errs));
    assert_int_equal(errs.count, 1);
    assert_int_equal(errs.items[0].line, 0);
    assert_string_equal(errs.items[0].message, "the configuration is larger than 4 MiB");
    config_errors_free(&errs);
    unlink(path);
}

static void test_errs_are_overwritten_not_appended(void **state)
{
    struct config_errors errs;
    assert_null(config_load_string("t.yaml", "x: 1\n", 5, &errs));
    assert_int_equal(errs.count, 1);
    config_errors_free(&errs);
    struct config *c = config_load_string("t.yaml", "{}", 2, &errs);
    assert_non_null(c);
    assert_int_equal(errs.count, 0);
    assert_null(errs.items);
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_syntax_error_has_libyaml_line),
        cmocka_unit_test(test_invalid_utf8_reports_its_line),
        cmocka_unit_test(test_empty_and_non_mapping_roots),
        cmocka_unit_test(test_second_document_is_an_error),
        cmocka_unit_test(test_unknown_keys_name_the_key_and_suggest),
        cmocka_unit_test(test_duplicate_and_non_string_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_later_sections_only_check_their_shape),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_workers_state_and_log_level_errors),
        cmocka_unit_test(test_limits_errors),
        cmocka_unit_test(test_many_errors_collected_and_sorted_by_line),
        cmocka_unit_test(test_error_count_is_capped),
        cmocka_unit_test(test_control_characters_do_not_break_lines),
        cmocka_unit_test(test_alias_bomb_is_bounded),
        cmocka_unit_test(test_deep_nesting_is_refused_quickly),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_file_over_4mib_is_refused),
        cmocka_unit_test(test_errs_are_overwritten_not_appended),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
