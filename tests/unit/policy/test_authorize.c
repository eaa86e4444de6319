// SPDX-License-Identifier: Apache-2.0
// Unit tests for decisions: default deny, forbid overrides permit, an erring
// policy is skipped and reported (whatever its effect), the determining
// policy ids, @id naming, scope matching through the hierarchy, and the
// scope index agreeing with a plain scan on many policies.
#include "helpers.h"

struct outcome {
    bool allow;
    char reasons[256];
    char errors[256];
};

static struct outcome run(const char *policies)
{
    struct outcome o = {0};
    policy_entities_t *es = test_entities();
    struct policy_decision d;
    assert_int_equal(decide_text(policies, es, NULL, &d), 0);
    o.allow = d.allow;
    for (size_t i = 0; i < d.nreasons; i++)
        snprintf(o.reasons + strlen(o.reasons), sizeof(o.reasons) - strlen(o.reasons), "%s%s",
                 i ? "," : "", d.reasons[i]);
    for (size_t i = 0; i < d.nerrors; i++) {
        assert_non_null(d.errors[i].message);
        snprintf(o.errors + strlen(o.errors), sizeof(o.errors) - strlen(o.errors), "%s%s",
                 i ? "," : "", d.errors[i].policy_id);
    }
    decision_done(&d);
    policy_entities_free(es);
    return o;
}

static void test_no_policies_deny(void **state)
{
    struct outcome o = run("");
    assert_false(o.allow);
    assert_string_equal(o.reasons, "");
    o = run("permit(principal == User::\"bob\", action, resource);");
    assert_false(o.allow);
}

static void test_permit_allows_and_names_itself(void **state)
{
    struct outcome o =
        run("permit(principal == User::\"bob\", action, resource);\n"
            "permit(principal in Group::\"everyone\", action, resource);\n"
            "permit(principal, action in Action::\"readonly\", resource in Album::\"trip\");");
    assert_true(o.allow);
    assert_string_equal(o.reasons, "policy1,policy2");
    assert_string_equal(o.errors, "");
}

static void test_forbid_overrides_permit(void **state)
{
    struct outcome o =
        run("permit(principal, action, resource);\n"
            "forbid(principal is User, action, resource) when { principal.age > 18 };\n"
            "forbid(principal, action, resource) unless { true };");
    assert_false(o.allow);
    assert_string_equal(o.reasons, "policy1");
}

static void test_erring_policy_is_skipped_and_reported(void **state)
{
    /* an erring forbid does not deny */
    struct outcome o = run("permit(principal, action, resource);\n"
                           "forbid(principal, action, resource) when { principal.nope == 1 };");
    assert_true(o.allow);
    assert_string_equal(o.reasons, "policy0");
    assert_string_equal(o.errors, "policy1");
    /* an erring permit does not allow */
    o = run("permit(principal, action, resource) when { 1 + \"a\" == 2 };");
    assert_false(o.allow);
    assert_string_equal(o.reasons, "");
    assert_string_equal(o.errors, "policy0");
    /* a later condition is not evaluated once an earlier one is false */
    o = run("permit(principal, action, resource) when { false } when { 1 + \"a\" == 2 };");
    assert_string_equal(o.errors, "");
    /* out of scope: the condition is never evaluated */
    o = run("permit(principal == User::\"bob\", action, resource) when { 1 + \"a\" == 2 };");
    assert_string_equal(o.errors, "");
}

static void test_error_messages_say_where(void **state)
{
    policy_entities_t *es = test_entities();
    struct policy_decision d;
    assert_int_equal(
        decide_text("permit(principal, action, resource)\n when { principal.nope };", es, NULL, &d),
        0);
    assert_int_equal(d.nerrors, 1);
    assert_string_equal(d.errors[0].policy_id, "policy0");
    assert_non_null(strstr(d.errors[0].message, "2:"));
    assert_non_null(strstr(d.errors[0].message, "nope"));
    decision_done(&d);
    policy_entities_free(es);
}

static void test_annotation_ids_name_policies(void **state)
{
    policy_set_t *s = policy_set_new(0);
    struct policy_diags diags = {0};
    const char *text =
        "@id(\"staff-may-read\") permit(principal in Group::\"staff\", action, resource);\n"
        "forbid(principal, action, resource) when { context.blocked };";
    assert_int_equal(policy_set_add_text(s, "a.cedar", text, strlen(text), &diags), 0);
    policy_entities_t *es = test_entities();
    struct policy_request req = {.principal = policy_uid_make("User", "alice"),
                                 .action = policy_uid_make("Action", "read"),
                                 .resource = policy_uid_make("Photo", "p1"),
                                 .context_json = "{\"blocked\": false}",
                                 .context_json_len = 18};
    struct policy_decision d;
    assert_int_equal(policy_decide(s, es, &req, &d), 0);
    assert_true(d.allow);
    assert_int_equal(d.nreasons, 1);
    assert_string_equal(d.reasons[0], "staff-may-read");
    policy_decision_free(&d);
    /* a second file continues the positional numbering */
    const char *more = "permit(principal, action, resource) when { context.blocked };";
    assert_int_equal(policy_set_add_text(s, "b.cedar", more, strlen(more), &diags), 0);
    req.context_json = "{\"blocked\": true}";
    req.context_json_len = 17;
    assert_int_equal(policy_decide(s, es, &req, &d), 0);
    assert_false(d.allow);
    assert_string_equal(d.reasons[0], "policy1");
    policy_decision_free(&d);
    policy_entities_free(es);
    policy_set_free(s);
    policy_diags_free(&diags);
}

static void test_failed_load_adds_nothing(void **state)
{
    policy_set_t *s = policy_set_new(0);
    struct policy_diags diags = {0};
    const char *text =
        "permit(principal, action, resource);\nforbid(principal, action, resource) when { 1 + };";
    assert_int_equal(policy_set_add_text(s, "x.cedar", text, strlen(text), &diags), -1);
    assert_int_equal(policy_set_count(s), 0);
    assert_int_equal(diags.count, 1);
    assert_string_equal(diags.v[0].file, "x.cedar");
    assert_int_equal(diags.v[0].line, 2);
    policy_diags_free(&diags);
    policy_set_free(s);
}

/* Many policies keyed on different principals, resources and actions:
 * the indexed decision must equal a brute-force expectation. */
static void test_index_agrees_with_scan(void **state)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    for (int i = 0; i < 300; i++) {
        int rc = 0;
        switch (i % 5) {
        case 0:
            rc = buf_appendf(&b, "permit(principal == User::\"u%d\", action, resource);\n", i);
            break;
        case 1:
            rc = buf_appendf(&b, "permit(principal, action, resource == Photo::\"p%d\");\n", i);
            break;
        case 2:
            rc = buf_appendf(&b, "permit(principal, action in [Action::\"a%d\"], resource);\n", i);
            break;
        case 3:
            rc = buf_appendf(&b, "forbid(principal in Group::\"g%d\", action, resource);\n", i);
            break;
        default:
            rc = buf_appendf(&b, "permit(principal is T%d, action, resource);\n", i);
            break;
        }
        assert_int_equal(rc, 0);
    }
    assert_int_equal(buf_appendf(&b, "permit(principal in Group::\"staff\", action, resource);\n"),
                     0);
    policy_set_t *s = policy_set_new(POLICY_SET_POSITIONAL_IDS);
    struct policy_diags diags = {0};
    assert_int_equal(policy_set_add_text(s, "many.cedar", b.data, b.len, &diags), 0);
    policy_entities_t *es = test_entities();
    struct {
        const char *pt, *pi, *ai, *ri;
        bool allow;
        const char *reason;
    } cases[] = {
        {"User", "u0", "x", "none", true, "policy0"},
        {"User", "u5", "x", "none", true, "policy5"},
        {"User", "nobody", "x", "p11", true, "policy11"},
        {"User", "nobody", "a7", "none", true, "policy7"},
        {"T4", "z", "x", "none", true, "policy4"},
        {"User", "alice", "x", "none", true, "policy300"},
        {"User", "nobody", "x", "none", false, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy_request req = {.principal = policy_uid_make(cases[i].pt, cases[i].pi),
                                     .action = policy_uid_make("Action", cases[i].ai),
                                     .resource = policy_uid_make("Photo", cases[i].ri)};
        struct policy_decision d;
        assert_int_equal(policy_decide(s, es, &req, &d), 0);
        assert_int_equal(d.allow, cases[i].allow);
        if (cases[i].reason) {
            assert_int_equal(d.nreasons, 1);
            assert_string_equal(d.reasons[0], cases[i].reason);
        }
        policy_decision_free(&d);
    }
    policy_entities_free(es);
    policy_set_free(s);
    policy_diags_free(&diags);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_policies_deny),
        cmocka_unit_test(test_permit_allows_and_names_itself),
        cmocka_unit_test(test_forbid_overrides_permit),
        cmocka_unit_test(test_erring_policy_is_skipped_and_reported),
        cmocka_unit_test(test_error_messages_say_where),
        cmocka_unit_test(test_annotation_ids_name_policies),
        cmocka_unit_test(test_failed_load_adds_nothing),
        cmocka_unit_test(test_index_agrees_with_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
