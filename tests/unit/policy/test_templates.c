// SPDX-License-Identifier: Apache-2.0
// Unit tests for policy templates: a template never applies by itself,
// linking fills ?principal / ?resource, each link is its own policy with its
// own id, and bad links (unknown template, taken id, wrong slots) fail.
#include "helpers.h"

static policy_set_t *load(const char *text)
{
    policy_set_t *s = policy_set_new(POLICY_SET_POSITIONAL_IDS);
    struct policy_diags diags = {0};
    assert_int_equal(policy_set_add_text(s, "t.cedar", text, strlen(text), &diags), 0);
    policy_diags_free(&diags);
    return s;
}

static struct policy_decision decide(policy_set_t *s, const char *who, const char *photo)
{
    policy_entities_t *es = test_entities();
    struct policy_request req = {.principal = policy_uid_make("User", who),
                                 .action = policy_uid_make("Action", "read"),
                                 .resource = policy_uid_make("Photo", photo)};
    struct policy_decision d;
    assert_int_equal(policy_decide(s, es, &req, &d), 0);
    policy_entities_free(es);
    return d;
}

static void test_unlinked_template_does_not_apply(void **state)
{
    policy_set_t *s = load("permit(principal == ?principal, action, resource);");
    assert_int_equal(policy_set_count(s), 0);
    assert_int_equal(policy_set_template_count(s), 1);
    struct policy_decision d = decide(s, "alice", "p1");
    assert_false(d.allow);
    policy_decision_free(&d);
    policy_set_free(s);
}

static void test_link_fills_slots(void **state)
{
    policy_set_t *s = load("permit(principal in ?principal, action, resource == ?resource)"
                           " when { principal.age > 18 };");
    char err[256];
    struct policy_uid g = policy_uid_make("Group", "everyone"), p = policy_uid_make("Photo", "p1");
    assert_int_equal(policy_set_link(s, "policy0", "staff-p1", &g, &p, err, sizeof(err)), 0);
    struct policy_decision d = decide(s, "alice", "p1");
    assert_true(d.allow);
    assert_int_equal(d.nreasons, 1);
    assert_string_equal(d.reasons[0], "staff-p1");
    policy_decision_free(&d);
    d = decide(s, "alice", "p2");
    assert_false(d.allow);
    policy_decision_free(&d);
    /* the condition comes with the template: bob has no age, so it errs */
    d = decide(s, "bob", "p1");
    assert_false(d.allow);
    policy_decision_free(&d);
    assert_int_equal(policy_set_count(s), 1);
    policy_set_free(s);
}

static void test_links_are_independent(void **state)
{
    policy_set_t *s = load("forbid(principal == ?principal, action, resource);\n"
                           "permit(principal, action, resource);");
    char err[256];
    struct policy_uid bob = policy_uid_make("User", "bob"),
                      carol = policy_uid_make("User", "carol");
    assert_int_equal(policy_set_link(s, "policy0", "no-bob", &bob, NULL, err, sizeof(err)), 0);
    assert_int_equal(policy_set_link(s, "policy0", "no-carol", &carol, NULL, err, sizeof(err)), 0);
    struct policy_decision d = decide(s, "alice", "p1");
    assert_true(d.allow);
    policy_decision_free(&d);
    d = decide(s, "carol", "p1");
    assert_false(d.allow);
    assert_string_equal(d.reasons[0], "no-carol");
    policy_decision_free(&d);
    policy_set_free(s);
}

static void test_bad_links_fail(void **state)
{
    policy_set_t *s = load("permit(principal == ?principal, action, resource);\n"
                           "permit(principal, action, resource);");
    char err[256];
    struct policy_uid u = policy_uid_make("User", "x");
    assert_int_equal(policy_set_link(s, "nope", "l1", &u, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no template"));
    assert_int_equal(policy_set_link(s, "policy1", "l1", &u, NULL, err, sizeof(err)), -1);
    assert_int_equal(policy_set_link(s, "policy0", "policy1", &u, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "already in use"));
    assert_int_equal(policy_set_link(s, "policy0", "l1", NULL, NULL, err, sizeof(err)), -1);
    assert_int_equal(policy_set_link(s, "policy0", "l1", &u, &u, err, sizeof(err)), -1);
    assert_int_equal(policy_set_link(s, "policy0", "l1", &u, NULL, err, sizeof(err)), 0);
    assert_int_equal(policy_set_link(s, "policy0", "l1", &u, NULL, err, sizeof(err)), -1);
    policy_set_free(s);
}

static void test_is_in_slot(void **state)
{
    policy_set_t *s = load("permit(principal is User in ?principal, action, resource);");
    char err[256];
    struct policy_uid g = policy_uid_make("Group", "staff");
    assert_int_equal(policy_set_link(s, "policy0", "users-in-staff", &g, NULL, err, sizeof(err)),
                     0);
    struct policy_decision d = decide(s, "alice", "p1");
    assert_true(d.allow);
    policy_decision_free(&d);
    policy_set_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unlinked_template_does_not_apply),
        cmocka_unit_test(test_link_fills_slots),
        cmocka_unit_test(test_links_are_independent),
        cmocka_unit_test(test_bad_links_fail),
        cmocka_unit_test(test_is_in_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
