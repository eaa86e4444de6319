// SPDX-License-Identifier: Apache-2.0
// Loading valid configs: defaults, every top-level key, the quickstart, files
// on disk, merge keys and x- extension keys.
#include "helpers.h"

#include <unistd.h>

#define QUICKSTART TEST_DATA_DIR "/../../../../examples/quickstart.yaml"

static void test_empty_mapping_gives_defaults(void **state)
{
    struct config *c = load_ok("{}");
    assert_int_equal(atomic_load(&c->refs), 1);
    assert_string_equal(c->path, "t.yaml");
    assert_string_equal(c->listen.host, "127.0.0.1");
    assert_int_equal(c->listen.port, 8080);
    assert_false(c->has_admin);
    assert_null(c->admin.host);
    assert_int_equal(c->admin.port, 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(c->workers, cpus < 1 ? 1 : cpus);
    assert_string_equal(c->state, "embedded");
    assert_null(c->state_redis);
    assert_null(c->state_postgres);
    assert_string_equal(c->state_path, "portcullis.db");
    assert_string_equal(c->log_level, "info");
    assert_null(c->tls.cert_file);
    assert_null(c->tls.key_file);
    assert_int_equal(c->limits.max_header_bytes, 16384);
    assert_int_equal(c->limits.max_headers, 100);
    assert_int_equal(c->limits.max_body_bytes, 8 * 1024 * 1024);
    assert_int_equal(c->limits.header_timeout_ms, 10000);
    assert_int_equal(c->limits.body_timeout_ms, 30000);
    assert_int_equal(c->limits.idle_timeout_ms, 60000);
    assert_int_equal(c->limits.max_connections, 10000);
    assert_int_equal(c->limits.drain_timeout_ms, 10000);
    assert_int_equal(c->limits.max_retries, 2);
    assert_int_equal(c->nproviders, 0);
    assert_int_equal(c->nmodels, 0);
    assert_null(config_find_model(c, "x"));
    assert_null(config_find_provider(c, "x"));
    config_unref(c);
}

static void test_null_sections_are_defaults(void **state)
{
    struct config *c = load_ok("limits:\nproviders:\nmodels:\ntls:\nstate:\nadmin:\n"
                               "identity:\nagents:\n");
    assert_int_equal(c->limits.max_headers, 100);
    assert_string_equal(c->state, "embedded");
    assert_false(c->has_admin);
    assert_null(c->tls.cert_file);
    config_unref(c);
}

static void test_every_top_level_key(void **state)
{
    struct config *c = load_ok("listen: 0.0.0.0:9000\n"
                               "admin: \"[::1]:9091\"\n"
                               "workers: 3\n"
                               "state: embedded\n"
                               "state_path: /var/lib/portcullis/state.db\n"
                               "log_level: debug\n"
                               "limits:\n"
                               "  max_header_bytes: 32KiB\n"
                               "  max_headers: 50\n"
                               "  max_body_bytes: 1MB\n"
                               "  header_timeout: 500ms\n"
                               "  body_timeout: 10s\n"
                               "  idle_timeout: 5m\n"
                               "  max_connections: 20_000\n"
                               "  drain_timeout: 0\n"
                               "  max_retries: 0\n"
                               "identity: {jwt: {issuer: https://idp}}\n"
                               "agents: [{id: acme}]\n"
                               "mcp: {servers: []}\n"
                               "a2a: {}\n"
                               "policy: {default: deny}\n"
                               "guard: {trifecta: enforce}\n"
                               "cache: {exact: {ttl: 1h}}\n"
                               "telemetry: {prometheus: true}\n"
                               "budget: {}\n"
                               "breakers: {}\n"
                               "audit: {}\n");
    assert_string_equal(c->listen.host, "0.0.0.0");
    assert_int_equal(c->listen.port, 9000);
    assert_true(c->has_admin);
    assert_string_equal(c->admin.host, "::1");
    assert_int_equal(c->admin.port, 9091);
    assert_int_equal(c->workers, 3);
    assert_string_equal(c->state, "embedded");
    assert_string_equal(c->state_path, "/var/lib/portcullis/state.db");
    assert_string_equal(c->log_level, "debug");
    assert_int_equal(c->limits.max_header_bytes, 32768);
    assert_int_equal(c->limits.max_headers, 50);
    assert_int_equal(c->limits.max_body_bytes, 1000000);
    assert_int_equal(c->limits.header_timeout_ms, 500);
    assert_int_equal(c->limits.body_timeout_ms, 10000);
    assert_int_equal(c->limits.idle_timeout_ms, 300000);
    assert_int_equal(c->limits.max_connections, 20000);
    assert_int_equal(c->limits.drain_timeout_ms, 0);
    assert_int_equal(c->limits.max_retries, 0);
    config_unref(c);
}

static void test_workers_auto_is_cpu_count(void **state)
{
    struct config *c = load_ok("workers: auto\n");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(c->workers, cpus < 1 ? 1 : cpus);
    config_unref(c);
}

static void test_log_levels(void **state)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    char yaml[64];
    for (size_t i = 0; i < 4; i++) {
        snprintf(yaml, sizeof yaml, "log_level: %s\n", levels[i]);
        struct config *c = load_ok(yaml);
        assert_string_equal(c->log_level, levels[i]);
        config_unref(c);
    }
}

static void test_external_state_mapping(void **state)
{
    struct config *c = load_ok("state:\n"
                               "  redis: redis://127.0.0.1:6379\n"
                               "  postgres: postgresql://gw@db/portcullis\n");
    assert_string_equal(c->state, "external");
    assert_string_equal(c->state_redis, "redis://127.0.0.1:6379");
    assert_string_equal(c->state_postgres, "postgresql://gw@db/portcullis");
    config_unref(c);

    c = load_ok("state: {redis: redis://r}\n");
    assert_string_equal(c->state, "external");
    assert_null(c->state_postgres);
    config_unref(c);
}

static void test_relative_paths_resolve_beside_the_config(void **state)
{
    const char *yaml = "state_path: data/gw.db\n";
    struct config_errors errs;
    struct config *c = config_load_string("/etc/portcullis/gw.yaml", yaml, strlen(yaml), &errs);
    assert_non_null(c);
    assert_string_equal(c->path, "/etc/portcullis/gw.yaml");
    assert_string_equal(c->state_path, "/etc/portcullis/data/gw.db");
    config_unref(c);

    c = config_load_string("/etc/portcullis/gw.yaml", "{}", 2, &errs);
    assert_string_equal(c->state_path, "/etc/portcullis/portcullis.db");
    config_unref(c);

    c = config_load_string("/gw.yaml", "{}", 2, &errs);
    assert_string_equal(c->state_path, "/portcullis.db");
    config_unref(c);

    yaml = "state_path: /abs/gw.db\n";
    c = config_load_string("conf/gw.yaml", yaml, strlen(yaml), &errs);
    assert_string_equal(c->state_path, "/abs/gw.db");
    config_unref(c);
}

static void test_quickstart_loads(void **state)
{
    struct config_errors errs;
    unsetenv("OPENAI_API_KEY");
    struct config *c = config_load(QUICKSTART, &errs);
    if (c == NULL) {
        char *text = errors_text(&errs);
        fail_msg("quickstart does not load:\n%s", text);
    }
    assert_string_equal(c->listen.host, "127.0.0.1");
    assert_int_equal(c->listen.port, 8080);
    assert_string_equal(c->state, "embedded");

    const struct config_provider *local = config_find_provider(c, "local");
    assert_non_null(local);
    assert_int_equal(local->kind, PROVIDER_MOCK);
    assert_true(local->enabled);
    assert_int_equal(local->mock.latency_ms, 20);
    assert_int_equal(local->mock.tokens, 32);
    assert_null(local->base_url);

    const struct config_provider *openai = config_find_provider(c, "openai");
    assert_non_null(openai);
    assert_int_equal(openai->kind, PROVIDER_OPENAI);
    assert_string_equal(openai->base_url, "https://api.openai.com/v1");
    assert_string_equal(openai->api_key_env, "OPENAI_API_KEY");
    assert_false(openai->enabled);
    assert_null(openai->api_key);

    const struct config_model *mock = config_find_model(c, "mock-1");
    assert_non_null(mock);
    assert_int_equal(mock->ntargets, 1);
    assert_ptr_equal(mock->targets[0].provider, local);

    const struct config_model *mini = config_find_model(c, "gpt-4o-mini");
    assert_non_null(mini);
    assert_int_equal(mini->ntargets, 2);
    assert_ptr_equal(mini->targets[0].provider, openai);
    assert_ptr_equal(mini->targets[1].provider, local);
    assert_string_equal(mini->targets[0].model, "gpt-4o-mini");
    assert_true(mini->has_price);
    assert_true(mini->price.input_per_mtok > 0);
    assert_true(mini->price.output_per_mtok > mini->price.input_per_mtok);
    config_unref(c);

    setenv("OPENAI_API_KEY", "sk-test", 1);
    c = config_load(QUICKSTART, &errs);
    assert_non_null(c);
    assert_true(config_find_provider(c, "openai")->enabled);
    config_unref(c);
    unsetenv("OPENAI_API_KEY");
}

static void test_load_file_from_data_dir(void **state)
{
    struct config_errors errs;
    struct config *c = config_load(TEST_DATA_DIR "/full.yaml", &errs);
    if (c == NULL) {
        char *text = errors_text(&errs);
        fail_msg("full.yaml does not load:\n%s", text);
    }
    assert_string_equal(c->path, TEST_DATA_DIR "/full.yaml");
    assert_string_equal(c->state_path, TEST_DATA_DIR "/gw.db");
    assert_int_equal(c->nproviders, 3);
    assert_int_equal(c->nmodels, 2);
    config_unref(c);
}

static void test_x_keys_and_merge_keys(void **state)
{
    struct config *c =
        load_ok("x-mock: &mock {kind: mock, mock: {tokens: 7}}\n"
                "x-price: &price {input_per_mtok: 1, output_per_mtok: 2}\n"
                "providers:\n"
                "  - {<<: *mock, name: a}\n"
                "  - <<: *mock\n"
                "    name: b\n"
                "    mock: {tokens: 9}\n"
                "models:\n"
                "  - {name: m1, targets: [a], price: *price}\n"
                "  - {name: m2, targets: [b], price: {<<: *price, output_per_mtok: 3}}\n");
    assert_int_equal(config_find_provider(c, "a")->mock.tokens, 7);
    assert_int_equal(config_find_provider(c, "b")->mock.tokens, 9);
    assert_true(config_find_model(c, "m1")->price.output_per_mtok == 2);
    assert_true(config_find_model(c, "m2")->price.output_per_mtok == 3);
    assert_true(config_find_model(c, "m2")->price.input_per_mtok == 1);
    config_unref(c);
}

static void test_errs_may_be_null(void **state)
{
    struct config *c = config_load_string("t.yaml", "{}", 2, NULL);
    assert_non_null(c);
    config_unref(c);
    assert_null(config_load_string("t.yaml", "listen: x", 9, NULL));
    assert_null(config_load("/nonexistent/portcullis.yaml", NULL));
}

static void test_quoted_numbers_are_accepted(void **state)
{
    struct config *c = load_ok("workers: \"2\"\nlimits: {max_headers: '64'}\n");
    assert_int_equal(c->workers, 2);
    assert_int_equal(c->limits.max_headers, 64);
    config_unref(c);
}

static void test_lookups_on_a_hand_built_snapshot(void **state)
{
    /* Other modules' tests assemble a config without the loader. */
    struct config_provider providers[1] = {{.name = "p", .kind = PROVIDER_MOCK}};
    struct config_target target = {.provider = &providers[0], .model = "m"};
    struct config_model models[2] = {{.name = "a", .targets = &target, .ntargets = 1},
                                     {.name = "b", .targets = &target, .ntargets = 1}};
    struct config c = {.providers = providers, .nproviders = 1, .models = models, .nmodels = 2};
    assert_ptr_equal(config_find_model(&c, "b"), &models[1]);
    assert_ptr_equal(config_find_provider(&c, "p"), &providers[0]);
    assert_null(config_find_model(&c, "c"));
}

static void test_lookups_find_every_entry(void **state)
{
    char yaml[8192];
    size_t len = (size_t)snprintf(yaml, sizeof yaml, "providers:\n");
    for (int i = 0; i < 50; i++)
        len += (size_t)snprintf(yaml + len, sizeof yaml - len, "  - {name: p%02d, kind: mock}\n",
                                49 - i);
    len += (size_t)snprintf(yaml + len, sizeof yaml - len, "models:\n");
    for (int i = 0; i < 50; i++)
        len += (size_t)snprintf(yaml + len, sizeof yaml - len,
                                "  - {name: m%02d, targets: [p%02d]}\n", (i * 7) % 50, i);
    struct config *c = load_ok(yaml);
    char name[8];
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof name, "p%02d", i);
        assert_ptr_equal(config_find_provider(c, name), &c->providers[49 - i]);
        snprintf(name, sizeof name, "m%02d", (i * 7) % 50);
        assert_ptr_equal(config_find_model(c, name), &c->models[i]);
    }
    assert_null(config_find_model(c, "m50"));
    assert_null(config_find_model(c, ""));
    assert_null(config_find_provider(c, "p"));
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_mapping_gives_defaults),
        cmocka_unit_test(test_null_sections_are_defaults),
        cmocka_unit_test(test_every_top_level_key),
        cmocka_unit_test(test_workers_auto_is_cpu_count),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_external_state_mapping),
        cmocka_unit_test(test_relative_paths_resolve_beside_the_config),
        cmocka_unit_test(test_quickstart_loads),
        cmocka_unit_test(test_load_file_from_data_dir),
        cmocka_unit_test(test_x_keys_and_merge_keys),
        cmocka_unit_test(test_errs_may_be_null),
        cmocka_unit_test(test_quoted_numbers_are_accepted),
        cmocka_unit_test(test_lookups_on_a_hand_built_snapshot),
        cmocka_unit_test(test_lookups_find_every_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
