// SPDX-License-Identifier: Apache-2.0
// The identity:, agents: and audit: config sections: defaults, every key,
// the agents tree flattened parents-first, and the errors with line numbers.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static struct config *load_ok(const char *yaml)
{
    struct config_errors errs;
    struct config *c = config_load_string("/etc/pcl/t.yaml", yaml, strlen(yaml), &errs);
    if (c == NULL) {
        config_errors_print(&errs, stderr);
        fail_msg("unexpected errors");
    }
    return c;
}

/* The load fails and the printed errors contain `needle`. */
static void load_fails_with(const char *yaml, const char *needle)
{
    struct config_errors errs;
    struct config *c = config_load_string("t.yaml", yaml, strlen(yaml), &errs);
    assert_null(c);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_errors_print(&errs, f);
    fclose(f);
    if (strstr(text, needle) == NULL)
        fail_msg("expected '%s' in:\n%s", needle, text);
    free(text);
    config_errors_free(&errs);
}

static void test_defaults_without_sections(void **unused)
{
    struct config *c = load_ok("listen: 127.0.0.1:1\n");
    assert_false(c->identity.present);
    assert_false(c->identity.required);
    assert_true(c->identity.api_keys);
    assert_false(c->identity.has_jwt);
    assert_string_equal(c->identity.issuer, "portcullis");
    assert_int_equal(c->identity.max_depth, 4);
    assert_int_equal(c->identity.delegation_ttl_ms, 15 * 60 * 1000);
    assert_int_equal(c->nagents, 0);
    assert_true(c->audit.enabled);
    assert_int_equal(c->audit.buffer, 4096);
    assert_null(c->audit.jsonl_path);
    config_unref(c);
}

static void test_every_identity_key(void **unused)
{
    struct config *c = load_ok("identity:\n"
                               "  required: true\n"
                               "  api_keys: false\n"
                               "  issuer: https://gw.example\n"
                               "  jwt:\n"
                               "    issuer: https://idp.example\n"
                               "    audiences: [portcullis, other]\n"
                               "    algorithms: [ES256, HS256]\n"
                               "    agent_claim: agent_id\n"
                               "    leeway: 5s\n"
                               "    jwks: {file: keys/jwks.json, min_refetch_interval: 1s}\n"
                               "  delegation: {max_depth: 2, ttl: 5m}\n"
                               "audit: {enabled: false, jsonl: audit.jsonl, buffer: 64}\n");
    const struct config_identity *id = &c->identity;
    assert_true(id->present);
    assert_true(id->required);
    assert_false(id->api_keys);
    assert_string_equal(id->issuer, "https://gw.example");
    assert_true(id->has_jwt);
    assert_string_equal(id->jwt.issuer, "https://idp.example");
    assert_int_equal(id->jwt.naudiences, 2);
    assert_string_equal(id->jwt.audiences[1], "other");
    assert_int_equal(id->jwt.nalgorithms, 2);
    assert_string_equal(id->jwt.algorithms[1], "HS256");
    assert_string_equal(id->jwt.agent_claim, "agent_id");
    assert_int_equal(id->jwt.leeway_ms, 5000);
    assert_string_equal(id->jwt.jwks.file, "/etc/pcl/keys/jwks.json");
    assert_int_equal(id->jwt.jwks.min_refetch_ms, 1000);
    assert_int_equal(id->max_depth, 2);
    assert_int_equal(id->delegation_ttl_ms, 300000);
    assert_false(c->audit.enabled);
    assert_string_equal(c->audit.jsonl_path, "/etc/pcl/audit.jsonl");
    assert_int_equal(c->audit.buffer, 64);
    config_unref(c);
}

static void test_jwt_defaults(void **unused)
{
    struct config *c = load_ok("identity: {jwt: {issuer: i, audiences: a, jwks: {url: "
                               "\"https://idp/jwks\"}}}\n");
    const struct config_jwt *j = &c->identity.jwt;
    assert_int_equal(j->naudiences, 1);
    assert_string_equal(j->audiences[0], "a");
    assert_int_equal(j->nalgorithms, 3);
    assert_string_equal(j->algorithms[0], "RS256");
    assert_string_equal(j->agent_claim, "sub");
    assert_int_equal(j->leeway_ms, 60000);
    assert_string_equal(j->jwks.url, "https://idp/jwks");
    assert_int_equal(j->jwks.refresh_ms, 3600000);
    assert_int_equal(j->jwks.min_refetch_ms, 30000);
    config_unref(c);
}

static void test_agents_tree_is_flattened_parents_first(void **unused)
{
    struct config *c = load_ok("agents:\n"
                               "  - id: acme\n"
                               "    budget: {usd_per_day: 500}\n"
                               "    children:\n"
                               "      - id: research\n"
                               "        children: [{id: researcher, description: writes}]\n"
                               "      - id: ops\n"
                               "  - id: other\n");
    assert_int_equal(c->nagents, 5);
    assert_string_equal(c->agents[0].id, "acme");
    assert_null(c->agents[0].parent);
    assert_string_equal(c->agents[1].id, "research");
    assert_string_equal(c->agents[1].parent, "acme");
    assert_string_equal(c->agents[2].id, "researcher");
    assert_string_equal(c->agents[2].parent, "research");
    assert_int_equal(c->agents[2].depth, 2);
    assert_string_equal(c->agents[2].description, "writes");
    assert_string_equal(c->agents[3].parent, "acme");
    assert_null(c->agents[4].parent);
    assert_non_null(config_find_agent(c, "ops"));
    assert_null(config_find_agent(c, "nobody"));
    config_unref(c);
}

static void test_errors(void **unused)
{
    load_fails_with("identity: {required: maybe}\n",
                    "t.yaml:1: identity.required: expected true or false, got 'maybe'");
    load_fails_with("identity: {jwt: {issuer: i, algorithms: [none]}}\n",
                    "identity.jwt.algorithms: 'none' is not supported");
    load_fails_with("identity: {jwt: {audiences: [a]}}\n", "identity.jwt: issuer is required");
    load_fails_with("identity: {jwt: {issuer: i, jwks: {}}}\n",
                    "identity.jwt.jwks: set exactly one of file or url");
    load_fails_with("identity: {jwt: {issuer: i, jwks: {url: ftp://x}}}\n",
                    "identity.jwt.jwks.url: expected an http:// or https:// URL");
    load_fails_with("identity: {delegation: {max_depth: 99}}\n", "identity.delegation.max_depth");
    load_fails_with("identity: {requird: true}\n", "did you mean");
    load_fails_with("agents:\n  - id: a\n  - id: a\n",
                    "t.yaml:3: agents[1].id: duplicate agent 'a'");
    load_fails_with("agents:\n  - id: a\n    children: [{id: a}]\n", "duplicate agent 'a'");
    load_fails_with("agents: [{id: \"a b\"}]\n", "agents[0].id: 'a b' must be 1-64");
    load_fails_with("agents: [{description: x}]\n", "agents[0]: id is required");
    load_fails_with("agents: [acme]\n", "agents[0]: expected a mapping");
    load_fails_with("audit: {buffer: 1}\n", "audit.buffer");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_without_sections),
        cmocka_unit_test(test_every_identity_key),
        cmocka_unit_test(test_jwt_defaults),
        cmocka_unit_test(test_agents_tree_is_flattened_parents_first),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
