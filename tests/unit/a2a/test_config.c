// SPDX-License-Identifier: Apache-2.0
// a2a: section: agents with their defaults (card URL at the url's origin,
// identity token in Authorization), every refusal with file:line, and the
// Cedar entities the agents become (Agent::"name" with trust, merged with an
// agent of the agents: tree of the same id).
#include "../config/helpers.h"

#include <jansson.h>

static const char *const BASE = "providers: [{name: m, kind: mock}]\n"
                                "models: [{name: mock-1, targets: [m]}]\n";

static struct config *load(const char *yaml_tail, struct config_errors *errs)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%s%s", BASE, yaml_tail);
    return config_load_string("t.yaml", yaml, strlen(yaml), errs);
}

static char *errors_of(const char *yaml_tail)
{
    struct config_errors errs;
    struct config *c = load(yaml_tail, &errs);
    if (c != NULL) {
        config_unref(c);
        fail_msg("accepted: %s", yaml_tail);
    }
    char *t = errors_text(&errs);
    config_errors_free(&errs);
    return t;
}

static void agents_and_defaults(void **state)
{
    (void)state;
    struct config_errors errs;
    struct config *c = load("a2a:\n"
                            "  public_url: https://gw.example/\n"
                            "  card_ttl: 5s\n"
                            "  agents:\n"
                            "    - {name: echo, url: 'http://127.0.0.1:9000/rpc/v1'}\n"
                            "    - name: planner\n"
                            "      url: https://planner.example/a2a\n"
                            "      card_url: https://planner.example/card.json\n"
                            "      identity_header: X-Caller\n"
                            "      headers: {X-Api-Key: s3cret}\n"
                            "      trust: untrusted\n"
                            "      timeout: 30s\n",
                            &errs);
    assert_non_null(c);
    assert_true(c->a2a.present);
    assert_string_equal(c->a2a.public_url, "https://gw.example");
    assert_int_equal(c->a2a.card_ttl_ms, 5000);
    assert_int_equal(c->a2a.nagents, 2);
    const struct config_a2a_agent *e = config_find_a2a_agent(c, "echo");
    assert_non_null(e);
    assert_string_equal(e->card_url, "http://127.0.0.1:9000/.well-known/agent-card.json");
    assert_string_equal(e->identity_header, "Authorization");
    assert_false(e->untrusted);
    assert_int_equal(e->timeout_ms, 300000);
    const struct config_a2a_agent *p = config_find_a2a_agent(c, "planner");
    assert_string_equal(p->card_url, "https://planner.example/card.json");
    assert_string_equal(p->identity_header, "X-Caller");
    assert_int_equal(p->nheaders, 1);
    assert_string_equal(p->headers[0].name, "X-Api-Key");
    assert_true(p->untrusted);
    assert_int_equal(p->timeout_ms, 30000);
    assert_int_equal(p->line, 8);
    assert_null(config_find_a2a_agent(c, "nope"));
    config_unref(c);
}

static void bad_values_are_refused_with_line(void **state)
{
    (void)state;
    char *t = errors_of("a2a:\n  agents:\n    - {name: 'a b', url: ftp://x}\n");
    assert_string_equal(t, "t.yaml:5: a2a.agents[0].name: 'a b' must be 1-64 letters, digits, "
                           "'-', '_' or '.'\n"
                           "t.yaml:5: a2a.agents[0].url: expected an http:// or https:// URL, "
                           "got 'ftp://x'\n");
    free(t);
    t = errors_of("a2a:\n  agents:\n    - {name: a, url: 'http://h/'}\n"
                  "    - {name: a, url: 'http://h/'}\n");
    assert_string_equal(t, "t.yaml:6: a2a.agents[1]: agent name 'a' is already used on line 5\n");
    free(t);
    t = errors_of("a2a:\n  agents:\n    - {url: 'http://h/', trust: maybe, colour: red}\n");
    assert_non_null(strstr(t, "unknown key 'colour'"));
    assert_non_null(strstr(t, "missing name"));
    assert_non_null(strstr(t, "expected trusted or untrusted, got 'maybe'"));
    free(t);
    /* a static Authorization would be overwritten by the token: said, and
     * the value (a secret) is never echoed */
    t = errors_of("a2a:\n  agents:\n    - {name: a, url: 'http://h/', headers: "
                  "{authorization: Bearer upstream-secret}}\n");
    assert_non_null(strstr(t, "would be overwritten by the identity token"));
    assert_null(strstr(t, "upstream-secret"));
    free(t);
    t = errors_of("a2a:\n  agents:\n    - {name: a, url: 'http://h/', headers: "
                  "{'X-Bad': \"line\\nbreak-secret\"}}\n");
    assert_non_null(strstr(t, "control characters"));
    assert_null(strstr(t, "secret"));
    free(t);
    t = errors_of("a2a: {public_url: 'gw.example', agents: []}\n");
    assert_non_null(strstr(t, "a2a.public_url: expected a base URL"));
    free(t);
    t = errors_of("a2a: [1]\n");
    assert_non_null(strstr(t, "a2a: expected a mapping"));
    free(t);
}

static void agents_become_cedar_entities(void **state)
{
    (void)state;
    struct config_errors errs;
    struct config *c = load("agents: [{id: planner}]\n"
                            "a2a:\n"
                            "  agents:\n"
                            "    - {name: planner, url: 'http://h/', trust: untrusted}\n"
                            "    - {name: echo, url: 'http://h/'}\n",
                            &errs);
    assert_non_null(c);
    json_t *arr = config_policy_entities_json(c);
    size_t i;
    json_t *e;
    int seen = 0;
    json_array_foreach(arr, i, e)
    {
        const char *type = json_string_value(json_object_get(json_object_get(e, "uid"), "type"));
        const char *id = json_string_value(json_object_get(json_object_get(e, "uid"), "id"));
        json_t *trust = json_object_get(json_object_get(e, "attrs"), "trust");
        if (strcmp(type, "Agent") == 0 && strcmp(id, "planner") == 0) {
            assert_string_equal(json_string_value(trust), "untrusted");
            seen |= 1;
        } else if (strcmp(type, "Agent") == 0 && strcmp(id, "echo") == 0) {
            assert_string_equal(json_string_value(trust), "trusted");
            seen |= 2;
        }
    }
    assert_int_equal(seen, 3);
    json_decref(arr);
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(agents_and_defaults),
        cmocka_unit_test(bad_values_are_refused_with_line),
        cmocka_unit_test(agents_become_cedar_entities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
