// SPDX-License-Identifier: Apache-2.0
// providers: and models: — defaults, API keys from the environment, base URL
// normalisation, targets pointing at providers, prices, and their errors.
#include "helpers.h"

static void test_provider_defaults(void **state)
{
    struct config *c = load_ok("providers:\n"
                               "  - {name: m, kind: mock}\n"
                               "  - {name: o, kind: openai, base_url: https://api.example/v1}\n");
    const struct config_provider *m = config_find_provider(c, "m");
    assert_int_equal(m->kind, PROVIDER_MOCK);
    assert_null(m->base_url);
    assert_null(m->api_key_env);
    assert_null(m->api_key);
    assert_true(m->enabled);
    assert_int_equal(m->timeout_ms, 600000);
    assert_int_equal(m->connect_timeout_ms, 5000);
    assert_string_equal(m->anthropic_version, "2023-06-01");
    assert_int_equal(m->mock.latency_ms, 0);
    assert_int_equal(m->mock.chunk_delay_ms, 0);
    assert_int_equal(m->mock.tokens, 16);
    assert_true(m->mock.failure_rate == 0);

    const struct config_provider *o = config_find_provider(c, "o");
    assert_int_equal(o->kind, PROVIDER_OPENAI);
    assert_string_equal(o->base_url, "https://api.example/v1");
    assert_true(o->enabled);
    assert_ptr_equal(o, &c->providers[1]);
    config_unref(c);
}

static void test_every_provider_key(void **state)
{
    struct config *c = load_ok("providers:\n"
                               "  - name: claude\n"
                               "    kind: anthropic\n"
                               "    base_url: https://api.anthropic.com//\n"
                               "    timeout: 2m\n"
                               "    connect_timeout: 1500ms\n"
                               "    anthropic_version: 2024-01-01\n"
                               "  - name: fake\n"
                               "    kind: mock\n"
                               "    mock: {latency: 1s, chunk_delay: 5, tokens: 100, "
                               "failure_rate: 0.5}\n");
    const struct config_provider *a = config_find_provider(c, "claude");
    assert_int_equal(a->kind, PROVIDER_ANTHROPIC);
    assert_string_equal(a->base_url, "https://api.anthropic.com");
    assert_int_equal(a->timeout_ms, 120000);
    assert_int_equal(a->connect_timeout_ms, 1500);
    assert_string_equal(a->anthropic_version, "2024-01-01");
    const struct config_provider *f = config_find_provider(c, "fake");
    assert_int_equal(f->mock.latency_ms, 1000);
    assert_int_equal(f->mock.chunk_delay_ms, 5);
    assert_int_equal(f->mock.tokens, 100);
    assert_true(f->mock.failure_rate == 0.5);
    assert_string_equal(config_provider_kind_name(a->kind), "anthropic");
    assert_string_equal(config_provider_kind_name(f->kind), "mock");
    assert_string_equal(config_provider_kind_name(PROVIDER_OPENAI), "openai");
    config_unref(c);
}

static const char env_yaml[] = "providers:\n"
                               "  - name: o\n"
                               "    kind: openai\n"
                               "    base_url: https://api.openai.com/v1\n"
                               "    api_key_env: PORTCULLIS_TEST_KEY\n";

static void test_api_key_env_set_enables_provider(void **state)
{
    setenv("PORTCULLIS_TEST_KEY", "sk-secret", 1);
    struct config *c = load_ok(env_yaml);
    const struct config_provider *o = config_find_provider(c, "o");
    assert_true(o->enabled);
    assert_string_equal(o->api_key_env, "PORTCULLIS_TEST_KEY");
    assert_string_equal(o->api_key, "sk-secret");
    config_unref(c);
    unsetenv("PORTCULLIS_TEST_KEY");
}

static void test_api_key_env_unset_or_empty_disables_provider(void **state)
{
    unsetenv("PORTCULLIS_TEST_KEY");
    struct config *c = load_ok(env_yaml);
    assert_false(config_find_provider(c, "o")->enabled);
    assert_null(config_find_provider(c, "o")->api_key);
    config_unref(c);

    setenv("PORTCULLIS_TEST_KEY", "", 1);
    c = load_ok(env_yaml);
    assert_false(config_find_provider(c, "o")->enabled);
    assert_null(config_find_provider(c, "o")->api_key);
    config_unref(c);
    unsetenv("PORTCULLIS_TEST_KEY");
}

static void test_snapshot_keeps_the_key_it_loaded_with(void **state)
{
    setenv("PORTCULLIS_TEST_KEY", "first", 1);
    struct config *c = load_ok(env_yaml);
    setenv("PORTCULLIS_TEST_KEY", "second", 1);
    assert_string_equal(config_find_provider(c, "o")->api_key, "first");
    config_unref(c);
    unsetenv("PORTCULLIS_TEST_KEY");
}

static void test_models_targets_and_defaults(void **state)
{
    struct config *c = load_ok("providers:\n"
                               "  - {name: a, kind: mock}\n"
                               "  - {name: b, kind: mock}\n"
                               "models:\n"
                               "  - name: route\n"
                               "    targets:\n"
                               "      - a\n"
                               "      - {provider: b, model: upstream-name, weight: 0}\n"
                               "  - {name: org/model:8b, targets: [{provider: b, weight: 5}]}\n");
    const struct config_model *r = config_find_model(c, "route");
    assert_non_null(r);
    assert_int_equal(r->ntargets, 2);
    assert_ptr_equal(r->targets[0].provider, config_find_provider(c, "a"));
    assert_string_equal(r->targets[0].model, "route");
    assert_int_equal(r->targets[0].weight, 1);
    assert_ptr_equal(r->targets[1].provider, &c->providers[1]);
    assert_string_equal(r->targets[1].model, "upstream-name");
    assert_int_equal(r->targets[1].weight, 0);
    assert_false(r->has_price);

    const struct config_model *o = config_find_model(c, "org/model:8b");
    assert_non_null(o);
    assert_string_equal(o->targets[0].model, "org/model:8b");
    assert_int_equal(o->targets[0].weight, 5);
    assert_null(config_find_model(c, "ROUTE"));
    config_unref(c);
}

static void test_price_and_cached_default(void **state)
{
    struct config *c = load_ok("providers: [{name: a, kind: mock}]\n"
                               "models:\n"
                               "  - {name: m1, targets: [a], price: {input_per_mtok: 0.15, "
                               "output_per_mtok: 0.6, cached_input_per_mtok: 0.075}}\n"
                               "  - {name: m2, targets: [a], price: {input_per_mtok: 3, "
                               "output_per_mtok: 15}}\n");
    const struct config_model *m1 = config_find_model(c, "m1");
    assert_true(m1->has_price);
    assert_true(m1->price.input_per_mtok == 0.15);
    assert_true(m1->price.output_per_mtok == 0.6);
    assert_true(m1->price.cached_input_per_mtok == 0.075);
    const struct config_model *m2 = config_find_model(c, "m2");
    assert_true(m2->price.cached_input_per_mtok == 3);
    config_unref(c);
}

static void test_models_may_come_before_providers(void **state)
{
    struct config *c = load_ok("models: [{name: m, targets: [p]}]\n"
                               "providers: [{name: p, kind: mock}]\n");
    assert_ptr_equal(config_find_model(c, "m")->targets[0].provider, &c->providers[0]);
    config_unref(c);
}

static void test_provider_errors(void **state)
{
    load_fails("providers:\n"
               "  - kind: mock\n"
               "  - {name: a}\n"
               "  - {name: b, kind: opnai}\n"
               "  - {name: c, kind: openai}\n"
               "  - {name: d, kind: mock, base_url: http://x}\n"
               "  - {name: e, kind: openai, base_url: ftp://x}\n"
               "  - {name: f, kind: openai, base_url: https://}\n"
               "  - {name: g h, kind: mock}\n"
               "  - {name: i, kind: mock, api_key_env: 1BAD}\n"
               "  - {name: j, kind: mock, timeout: 0}\n"
               "  - {name: k, kind: openai, base_url: http://x, mock: {tokens: 1}}\n"
               "  - {name: l, kind: mock, anthropic_version: x}\n"
               "  - {name: m, kind: mock, mock: {failure_rate: 1.01}}\n"
               "  - {name: n, kind: mock, mock: {tokens: -1, latency: -5ms}}\n",
               "t.yaml:2: providers[0]: missing required key 'name'\n"
               "t.yaml:3: providers[1]: missing required key 'kind' (openai, anthropic or mock)\n"
               "t.yaml:4: providers[2].kind: expected openai, anthropic or mock, got 'opnai'\n"
               "t.yaml:5: providers[3]: missing required key 'base_url' for kind openai\n"
               "t.yaml:6: providers[4].base_url: not allowed for kind mock\n"
               "t.yaml:7: providers[5].base_url: must start with http:// or https://, got "
               "'ftp://x'\n"
               "t.yaml:8: providers[6].base_url: missing host in 'https://'\n"
               "t.yaml:9: providers[7].name: must be letters, digits, '-', '_' or '.', got 'g h'\n"
               "t.yaml:10: providers[8].api_key_env: expected an environment variable name like "
               "OPENAI_API_KEY, got '1BAD'\n"
               "t.yaml:11: providers[9].timeout: must be at least 1ms\n"
               "t.yaml:12: providers[10].mock: only applies to kind mock\n"
               "t.yaml:13: providers[11].anthropic_version: only applies to kind anthropic\n"
               "t.yaml:14: providers[12].mock.failure_rate: must be between 0 and 1, got 1.01\n"
               "t.yaml:15: providers[13].mock.latency: must not be negative\n"
               "t.yaml:15: providers[13].mock.tokens: must not be negative\n");
}

static void test_duplicate_provider_and_model_names(void **state)
{
    load_fails("providers:\n"
               "  - {name: a, kind: mock}\n"
               "  - {name: b, kind: mock}\n"
               "  - {name: a, kind: mock}\n"
               "models:\n"
               "  - {name: m, targets: [a]}\n"
               "  - {name: m, targets: [b]}\n"
               "  - {name: m, targets: [b]}\n",
               "t.yaml:4: providers[2].name: duplicate provider 'a' (first defined at line 2)\n"
               "t.yaml:7: models[1].name: duplicate model 'm' (first defined at line 6)\n"
               "t.yaml:8: models[2].name: duplicate model 'm' (first defined at line 6)\n");
}

static void test_model_errors(void **state)
{
    load_fails("providers: [{name: openai, kind: mock}]\n"
               "models:\n"
               "  - {targets: [openai]}\n"
               "  - {name: a, targets: []}\n"
               "  - {name: b, targets: [opena]}\n"
               "  - name: c\n"
               "    targets:\n"
               "      - provider: openai\n"
               "      - provider: nobody\n"
               "      - {model: x}\n"
               "      - [openai]\n"
               "      - {provider: openai, weight: -1, model: \"\"}\n"
               "  - {name: \"has space\", targets: [openai]}\n"
               "  - {name: d, targets: [openai], price: {input_per_mtok: 1}}\n"
               "  - {name: e, targets: [openai], price: {input_per_mtok: -1, output_per_mtok: "
               "x}}\n"
               "  - {name: f, targets: openai}\n",
               "t.yaml:3: models[0]: missing required key 'name'\n"
               "t.yaml:4: models[1].targets: needs at least one target (a provider name)\n"
               "t.yaml:5: models[2].targets[0].provider: unknown provider 'opena' (did you mean "
               "'openai'?)\n"
               "t.yaml:9: models[3].targets[1].provider: unknown provider 'nobody'\n"
               "t.yaml:10: models[3].targets[2]: missing required key 'provider'\n"
               "t.yaml:11: models[3].targets[3]: expected a provider name or {provider: NAME, "
               "model: ...}\n"
               "t.yaml:12: models[3].targets[4].model: must not be empty\n"
               "t.yaml:12: models[3].targets[4].weight: must not be negative\n"
               "t.yaml:13: models[4].name: must be non-empty, without spaces or control "
               "characters\n"
               "t.yaml:14: models[5].price: input_per_mtok and output_per_mtok are both "
               "required\n"
               "t.yaml:15: models[6].price.input_per_mtok: must not be negative\n"
               "t.yaml:15: models[6].price.output_per_mtok: expected a number, got 'x'\n"
               "t.yaml:16: models[7].targets: expected a list, got 'openai'\n");
}

static void test_target_error_points_at_the_target_line(void **state)
{
    load_fails("providers:\n"
               "  - name: local\n"
               "    kind: mock\n"
               "models:\n"
               "  - name: m\n"
               "    targets:\n"
               "      - provider: local\n"
               "      - provider: remote\n",
               "t.yaml:8: models[0].targets[1].provider: unknown provider 'remote'\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provider_defaults),
        cmocka_unit_test(test_every_provider_key),
        cmocka_unit_test(test_api_key_env_set_enables_provider),
        cmocka_unit_test(test_api_key_env_unset_or_empty_disables_provider),
        cmocka_unit_test(test_snapshot_keeps_the_key_it_loaded_with),
        cmocka_unit_test(test_models_targets_and_defaults),
        cmocka_unit_test(test_price_and_cached_default),
        cmocka_unit_test(test_models_may_come_before_providers),
        cmocka_unit_test(test_provider_errors),
        cmocka_unit_test(test_duplicate_provider_and_model_names),
        cmocka_unit_test(test_model_errors),
        cmocka_unit_test(test_target_error_points_at_the_target_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
