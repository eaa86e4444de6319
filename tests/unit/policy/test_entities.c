// SPDX-License-Identifier: Apache-2.0
// Unit tests for the entities loader: the JSON format (uid forms, attrs,
// parents, tags, escapes), NUL bytes in ids and keys, refusals (duplicates,
// floats, bad type names, malformed JSON), hierarchy closure with cycles,
// and schema-based parsing of implicit entity references and extensions.
#include "helpers.h"

static policy_entities_t *load(const char *json, char *err)
{
    return policy_entities_load_text(json, strlen(json), err, 256);
}

static int decide_with(policy_entities_t *es, const char *expr)
{
    char text[1024];
    snprintf(text, sizeof(text), "permit(principal, action, resource) when { %s };", expr);
    struct policy_decision d;
    int rc = decide_text(text, es, NULL, &d);
    assert_int_equal(rc, 0);
    int r = d.nerrors ? EV_ERROR : d.allow ? EV_TRUE : EV_FALSE;
    decision_done(&d);
    return r;
}

static void test_uid_forms_and_values(void **state)
{
    char err[256];
    policy_entities_t *es =
        load("[{\"uid\": {\"__entity\": {\"type\": \"NS::T\", \"id\": \"a\"}},"
             "  \"attrs\": {\"s\": \"x\", \"n\": -5, \"b\": true, \"set\": [1, 1, 2],"
             "             \"rec\": {\"k\": {\"deep\": [{\"__entity\": {\"type\": \"U\", \"id\": "
             "\"u\"}}]}}},"
             "  \"parents\": [{\"__entity\": {\"type\": \"G\", \"id\": \"g\"}}]},"
             " {\"uid\": {\"type\": \"G\", \"id\": \"g\"}, \"attrs\": {}, \"parents\": []}]",
             err);
    assert_non_null(es);
    assert_int_equal(policy_entities_count(es), 2);
    assert_int_equal(decide_with(es, "NS::T::\"a\".s == \"x\" && NS::T::\"a\".n == -5"), EV_TRUE);
    assert_int_equal(decide_with(es, "NS::T::\"a\".set == [2, 1] && NS::T::\"a\".b"), EV_TRUE);
    assert_int_equal(decide_with(es, "NS::T::\"a\".rec.k.deep.contains(U::\"u\")"), EV_TRUE);
    assert_int_equal(decide_with(es, "NS::T::\"a\" in G::\"g\""), EV_TRUE);
    assert_int_equal(decide_with(es, "G::\"g\".hasTag(\"x\")"), EV_FALSE);
    policy_entities_free(es);
}

static void test_nul_bytes_in_ids_and_keys(void **state)
{
    char err[256];
    policy_entities_t *es =
        load("[{\"uid\": {\"type\": \"a\", \"id\": \"\\u0000\"}, \"parents\": [],"
             "  \"attrs\": {\"\\u0000k\": 1}, \"tags\": {\"\\u0000\": 2}}]",
             err);
    assert_non_null(es);
    assert_int_equal(
        decide_with(es, "a::\"\\0\"[\"\\0k\"] == 1 && a::\"\\0\".getTag(\"\\0\") == 2"), EV_TRUE);
    assert_int_equal(decide_with(es, "a::\"\" has \"\\0k\""), EV_FALSE);
    policy_entities_free(es);
}

/* One entity T::"a" with the given members after its uid. */
#define ONE(members) "[{\"uid\": {\"type\": \"T\", \"id\": \"a\"}, " members "}]"

static void test_refusals(void **state)
{
    char err[256];
    const char *bad[] = {
        "{}",
        "[1]",
        "[{\"uid\": {\"type\": \"T\", \"id\": \"a\"}, \"attrs\": {}, \"parents\": []},"
        " {\"uid\": {\"type\": \"T\", \"id\": \"a\"}, \"attrs\": {}, \"parents\": []}]",
        ONE("\"attrs\": {}"),   /* parents is required */
        ONE("\"parents\": []"), /* attrs is required */
        ONE("\"attrs\": null, \"parents\": []"),
        ONE("\"attrs\": {}, \"parents\": null"),
        ONE("\"attrs\": {}, \"parents\": [], \"tags\": null"),
        ONE("\"attrs\": {}, \"parents\": {}"),
        ONE("\"attrs\": [], \"parents\": []"),
        ONE("\"attrs\": {\"f\": 1.5}, \"parents\": []"),
        ONE("\"attrs\": {\"n\": null}, \"parents\": []"),
        ONE("\"attrs\": {\"n\": 9223372036854775808}, \"parents\": []"),
        ONE("\"attrs\": {\"k\": 1, \"k\": 2}, \"parents\": []"),
        ONE("\"attrs\": {\"x\": {\"__extn\": {\"fn\": \"nope\", \"arg\": \"\"}}}, \"parents\": []"),
        ONE("\"attrs\": {\"x\": {\"__expr\": \"1 + 1\"}}, \"parents\": []"),
        ONE("\"attrs\": {\"x\": {\"__entity\": {\"type\": \"if\", \"id\": \"b\"}}}, \"parents\": "
            "[]"),
        ONE("\"attrs\": {\"x\": {\"__entity\": {\"type\": \"A::__cedar\", \"id\": \"b\"}}}, "
            "\"parents\": []"),
        ONE("\"attrs\": {}, \"parents\": [{\"type\": \"T\", \"id\": \"a\"}]"), /* its own parent */
        "[{\"uid\": {\"type\": \"User \", \"id\": \"a\"}, \"attrs\": {}, \"parents\": []}]",
        "[{\"uid\": {\"type\": \"T\"}, \"attrs\": {}, \"parents\": []}]",
        "[{\"uid\": {\"type\": \"Action\", \"id\": \"a\"}, \"attrs\": {}, \"parents\": "
        "[{\"type\": \"User\", \"id\": \"x\"}]}]",
        "[{\"uid\": {\"type\": \"T\", \"id\": \"a\"}",
        "[{\"uid\": {\"type\": \"T\", \"id\": \"\\ud800\"}, \"attrs\": {}, \"parents\": []}]",
        "[] x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        policy_entities_t *es = load(bad[i], err);
        if (es) {
            policy_entities_free(es);
            fail_msg("should be refused: %s", bad[i]);
        }
        assert_true(strlen(err) > 0);
    }
    /* accepted as the reference does: extra members, escapes beside other
     * keys (then a record), a uid's __entity beside other keys */
    const char *good[] = {
        ONE("\"attrs\": {}, \"parents\": [], \"extra\": 1"),
        ONE("\"attrs\": {\"x\": {\"__entity\": {\"type\": \"U\", \"id\": \"b\"}, \"y\": 1}}, "
            "\"parents\": []"),
        "[{\"uid\": {\"__entity\": {\"type\": \"T\", \"id\": \"a\"}, \"x\": 1}, \"attrs\": {}, "
        "\"parents\": []}]",
        "[{\"uid\": {\"type\": \"NS::Action\", \"id\": \"a\"}, \"attrs\": {}, \"parents\": "
        "[{\"type\": \"Action\", \"id\": \"x\"}]}]",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        policy_entities_t *es = load(good[i], err);
        if (!es)
            fail_msg("should load: %s (%s)", good[i], err);
        policy_entities_free(es);
    }
}

static void test_hierarchy_is_closed_and_acyclic(void **state)
{
    char err[256];
    policy_entities_t *es =
        load("["
             "{\"uid\": {\"type\": \"G\", \"id\": \"a\"}, \"attrs\": {}, \"parents\": [{\"type\": "
             "\"G\", \"id\": \"b\"}]},"
             "{\"uid\": {\"type\": \"G\", \"id\": \"b\"}, \"attrs\": {}, \"parents\": [{\"type\": "
             "\"G\", \"id\": \"c\"}]},"
             "{\"uid\": {\"type\": \"G\", \"id\": \"c\"}, \"attrs\": {}, \"parents\": ["
             "  {\"type\": \"G\", \"id\": \"ghost\"}]}"
             "]",
             err);
    assert_non_null(es);
    assert_int_equal(decide_with(es, "G::\"a\" in G::\"c\" && !(G::\"c\" in G::\"b\")"), EV_TRUE);
    assert_int_equal(decide_with(es, "G::\"a\" in G::\"ghost\""), EV_TRUE);
    assert_int_equal(decide_with(es, "G::\"ghost\" in G::\"a\""), EV_FALSE);
    policy_entities_free(es);
    /* a cycle is refused, as by the reference */
    es = load("["
              "{\"uid\": {\"type\": \"G\", \"id\": \"a\"}, \"attrs\": {}, \"parents\": [{\"type\": "
              "\"G\", \"id\": \"b\"}]},"
              "{\"uid\": {\"type\": \"G\", \"id\": \"b\"}, \"attrs\": {}, \"parents\": [{\"type\": "
              "\"G\", \"id\": \"a\"}]}"
              "]",
              err);
    assert_null(es);
    assert_non_null(strstr(err, "cycle"));
}

static void test_schema_based_parsing(void **state)
{
    const char *schema_text =
        "namespace App {\n"
        "  type Addr = { ip: ipaddr, since?: datetime };\n"
        "  entity Group;\n"
        "  entity User in [Group] = { manager: User, addr: Addr, score: decimal,\n"
        "                              friends: Set<User> } tags Long;\n"
        "  action read, write in [\"all\"] appliesTo { principal: [User], resource: [User],\n"
        "                                    context: { when: duration } };\n"
        "  action \"all\";\n"
        "}\n";
    struct policy_diags diags = {0};
    policy_schema_t *schema =
        policy_schema_load_text("s.cedarschema", schema_text, strlen(schema_text), &diags);
    if (!schema) {
        policy_diags_print(&diags, stderr);
        fail();
    }
    char path[] = "/tmp/portcullis-entities-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *json = "[{\"uid\": {\"type\": \"App::User\", \"id\": \"a\"}, \"attrs\": {"
                       " \"manager\": {\"type\": \"App::User\", \"id\": \"b\"},"
                       " \"addr\": {\"ip\": \"10.0.0.1\", \"since\": \"2024-01-01\"},"
                       " \"score\": {\"fn\": \"decimal\", \"arg\": \"0.5\"},"
                       " \"friends\": [{\"type\": \"App::User\", \"id\": \"b\"}]},"
                       " \"parents\": [], \"tags\": {\"t\": 1}}]";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    char err[256];
    policy_entities_t *es = policy_entities_load_file_schema(path, schema, err, sizeof(err));
    unlink(path);
    assert_non_null(es);
    const char *pol =
        "permit(principal, action in App::Action::\"all\", resource) when {"
        " principal.manager == App::User::\"b\" && principal.addr.ip.isIpv4() &&"
        " principal.addr.since < datetime(\"2025-01-01\") &&"
        " principal.score == decimal(\"0.5\") && principal.friends.contains(App::User::\"b\")"
        " && context.when == duration(\"1h\") };";
    policy_set_t *s = policy_set_new(POLICY_SET_POSITIONAL_IDS);
    assert_int_equal(policy_set_add_text(s, "p.cedar", pol, strlen(pol), &diags), 0);
    struct policy_request req = {.principal = policy_uid_make("App::User", "a"),
                                 .action = policy_uid_make("App::Action", "read"),
                                 .resource = policy_uid_make("App::User", "a"),
                                 .context_json = "{\"when\": \"1h\"}",
                                 .context_json_len = 14,
                                 .schema = schema};
    struct policy_decision d;
    assert_int_equal(policy_decide(s, es, &req, &d), 0);
    for (size_t i = 0; i < d.nerrors; i++)
        print_message("%s: %s\n", d.errors[i].policy_id, d.errors[i].message);
    assert_true(d.allow);
    policy_decision_free(&d);
    policy_set_free(s);
    policy_entities_free(es);
    policy_schema_free(schema);
    policy_diags_free(&diags);
}

static void test_schema_errors_have_positions(void **state)
{
    struct policy_diags diags = {0};
    const char *text = "entity User;\nentity Photo = { owner: User,, };\n";
    policy_schema_t *schema = policy_schema_load_text("s.cedarschema", text, strlen(text), &diags);
    assert_null(schema);
    assert_int_equal(diags.count, 1);
    assert_int_equal(diags.v[0].line, 2);
    policy_diags_free(&diags);
}

static void test_json_jansson_entry_point(void **state)
{
    json_error_t jerr;
    json_t *j = json_loads(
        "[{\"uid\": {\"type\": \"T\", \"id\": \"a\"}, \"attrs\": {\"x\": 1}, \"parents\": []}]", 0,
        &jerr);
    assert_non_null(j);
    char err[256];
    policy_entities_t *es = policy_entities_load_json(j, err, sizeof(err));
    json_decref(j);
    assert_non_null(es);
    assert_int_equal(decide_with(es, "T::\"a\".x == 1"), EV_TRUE);
    policy_entities_free(es);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uid_forms_and_values),
        cmocka_unit_test(test_nul_bytes_in_ids_and_keys),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_hierarchy_is_closed_and_acyclic),
        cmocka_unit_test(test_schema_based_parsing),
        cmocka_unit_test(test_schema_errors_have_positions),
        cmocka_unit_test(test_json_jansson_entry_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
