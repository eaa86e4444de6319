// SPDX-License-Identifier: Apache-2.0
// Unit tests for the Cedar evaluator: equality across types, comparisons,
// 64-bit arithmetic with overflow errors, short-circuit &&, || and if,
// has/attribute access on records and entities, like, in (transitive,
// reflexive, sets), is, set methods and tags.
#include "helpers.h"

static void test_equality_is_typed_and_structural(void **state)
{
    assert_true_expr("1 == 1");
    assert_false_expr("1 == \"1\"");
    assert_false_expr("User::\"alice\" == Admin::\"alice\"");
    assert_true_expr("[1, 2, 40] == [40, 1, 2, 2, 1]");
    assert_false_expr("[1, -2, 40] == [1, 40]");
    assert_true_expr("{a: 1, b: [2]} == {b: [2], a: 1}");
    assert_false_expr("{a: 1} == {a: 1, b: 2}");
    assert_true_expr("principal == User::\"alice\"");
    assert_true_expr("decimal(\"1.50\") == decimal(\"1.5\")");
    assert_false_expr("decimal(\"1.0\") == 1");
    assert_true_expr("1 != \"1\"");
}

static void test_comparisons_need_matching_kinds(void **state)
{
    assert_true_expr("3 < 303 && 3 <= 3 && 4 > 3 && 4 >= 4");
    assert_error_expr("3 < \"3\"");
    assert_error_expr("\"a\" < \"b\"");
    assert_error_expr("false < true");
    assert_error_expr("duration(\"1h\") < 3600000");
    assert_error_expr("decimal(\"1.0\") < decimal(\"2.0\")");
}

static void test_arithmetic_overflows_are_errors(void **state)
{
    assert_true_expr("11 + 0 == 11 && -1 + 1 == 0 && 5 - (-3) == 8 && 5 * (-3) == -15");
    assert_error_expr("9223372036854775807 + 1 > 0");
    assert_error_expr("-9223372036854775807 - 2 < 0");
    assert_error_expr("9223372036854775807 * 2 > 0");
    assert_error_expr("-(-9223372036854775807 - 1) > 0");
    assert_error_expr("7 + \"3\" > 0");
    assert_error_expr("-\"a\" == 1");
}

static void test_and_or_short_circuit(void **state)
{
    assert_false_expr("false && 3");
    assert_true_expr("true || 3");
    assert_error_expr("3 && false");
    assert_error_expr("true && 3");
    assert_error_expr("false || 3");
    assert_false_expr("principal has nope && principal.nope == 1");
    assert_true_expr("!(principal has nope) || principal.nope < 21");
    assert_error_expr("principal.nope == 1");
}

static void test_if_then_else(void **state)
{
    assert_true_expr("if 1 == 1 then true else 3");
    assert_true_expr("if false then (1 && \"hello\") else true");
    assert_error_expr("if 1 then true else true");
    assert_error_expr("if true then (1 && \"x\") else true");
    assert_true_expr("(if false then 1 else \"s\") == \"s\"");
}

static void test_condition_must_be_bool(void **state)
{
    assert_error_expr("1");
    assert_error_expr("\"true\"");
    struct policy_decision d;
    assert_int_equal(
        decide_text("permit(principal, action, resource) unless { 1 };", NULL, NULL, &d), 0);
    assert_int_equal(d.nerrors, 1);
    decision_done(&d);
}

static void test_attributes_and_has(void **state)
{
    assert_true_expr("principal.age == 30 && principal[\"name\"] == \"Alice\"");
    assert_true_expr("principal.addr.city == \"Paris\"");
    assert_true_expr("principal has addr.zip && !(principal has addr.country)");
    assert_true_expr("principal has \"addr\"");
    assert_true_expr("principal.manager == User::\"bob\"");
    assert_true_expr("resource.owner == principal");
    assert_error_expr("principal.addr.country == 1");
    assert_error_expr("principal.age has x");
    /* entities missing from the store: has is false, access is an error */
    assert_false_expr("User::\"ghost\" has age");
    assert_error_expr("User::\"ghost\".age == 1");
    assert_int_equal(eval_ctx("context.x == 1 && context has x", "{\"x\": 1}"), EV_TRUE);
    assert_true_expr("{a: {b: 1}} has a.b");
}

static void test_context_is_a_record(void **state)
{
    assert_int_equal(eval_ctx("context.ip.isInRange(ip(\"10.0.0.0/8\"))",
                              "{\"ip\": {\"__extn\": {\"fn\": \"ip\", \"arg\": \"10.1.2.3\"}}}"),
                     EV_TRUE);
    assert_int_equal(eval_ctx("context.u in Group::\"everyone\"",
                              "{\"u\": {\"__entity\": {\"type\": \"User\", \"id\": \"alice\"}}}"),
                     EV_TRUE);
    assert_int_equal(eval_ctx("context.a.contains(2)", "{\"a\": [1, 2, 3]}"), EV_TRUE);
    assert_int_equal(eval_ctx("context == {}", NULL), EV_TRUE);
    /* a repeated key keeps its last value, as the reference reads contexts */
    assert_int_equal(eval_ctx("context.a == 2 && context.r.b == 4",
                              "{\"a\": 1, \"r\": {\"b\": 3, \"b\": 4}, \"a\": 2}"),
                     EV_TRUE);
    assert_int_equal(eval_ctx("context[\"\\0\"] == 1", "{\"\\u0000\": 1}"), EV_TRUE);
    struct policy_decision d;
    assert_int_equal(decide_text("permit(principal, action, resource);", NULL, "[1]", &d), -1);
    assert_int_equal(d.nerrors, 1);
    assert_null(d.errors[0].policy_id);
    decision_done(&d);
    assert_int_equal(decide_text("permit(principal, action, resource);", NULL, "{\"f\": 1.5}", &d),
                     -1);
    decision_done(&d);
}

static void test_like_patterns(void **state)
{
    assert_true_expr("\"ham and eggs\" like \"ham*\"");
    assert_false_expr("\"ham and eggs\" like \"*ham\"");
    assert_true_expr("\"ham and eggs\" like \"*h*a*m*\"");
    assert_true_expr("\"Gotham\" like \"*ham\"");
    assert_false_expr("\"eggs\" like \"*ham*\"");
    assert_true_expr("\"ham\" like \"*ham\" && \"ham\" like \"ham*\" && \"ham\" like \"ham\"");
    assert_false_expr("\"ham\" like \"*ham and eggs*\"");
    assert_true_expr("\"\\\\afterslash\" like \"\\\\*\"");
    assert_true_expr("\"string*with*stars\" like \"string\\*with\\*stars\"");
    assert_false_expr("\"stringXwith\" like \"string\\*with\"");
    assert_true_expr("\"\" like \"*\" && \"\" like \"\" && \"x\" like \"**\"");
    assert_false_expr("\"a\" like \"a*a\"");
    assert_true_expr("\"caf\\u{e9}!\" like \"caf*!\"");
    assert_error_expr("1 like \"*\"");
}

static void test_in_is_transitive_and_reflexive(void **state)
{
    assert_true_expr("principal in User::\"alice\"");
    assert_true_expr("principal in Group::\"staff\"");
    assert_true_expr("principal in Group::\"everyone\"");
    assert_false_expr("Group::\"everyone\" in principal");
    assert_true_expr("Stranger::\"x\" in Stranger::\"x\"");
    assert_false_expr("Stranger::\"x\" in Group::\"everyone\"");
    assert_true_expr("principal in [Group::\"nope\", Group::\"everyone\"]");
    assert_false_expr("principal in []");
    assert_error_expr("principal in [Group::\"everyone\", 1]");
    assert_error_expr("1 in Group::\"everyone\"");
    assert_error_expr("principal in \"Group\"");
    assert_true_expr("User::\"bob\" in User::\"bob\" || User::\"bob\" in 1");
    assert_true_expr("action in Action::\"readonly\"");
}

static void test_is_checks_entity_types(void **state)
{
    assert_true_expr("principal is User && !(principal is Group)");
    assert_true_expr("NS::User::\"a\" is NS::User && !(NS::User::\"a\" is User)");
    assert_true_expr("principal is User in Group::\"everyone\"");
    assert_false_expr("principal is Group in Group::\"everyone\"");
    /* `is T in e` does not evaluate e unless the type matches */
    assert_false_expr("principal is Group in 1");
    assert_error_expr("principal is User in 1");
    assert_error_expr("\"alice\" is String");
}

static void test_set_methods(void **state)
{
    assert_true_expr("[1, 2, 3].contains(1) && ![1, \"x\"].contains(\"X\")");
    assert_true_expr("[1, -22, 34].containsAll([-22, 1]) && [2, 43].containsAll([])");
    assert_false_expr("[1, 34].containsAll([1, 101, 34])");
    assert_true_expr("[1, 101].containsAny([1, -22, 34]) && ![\"bob\"].containsAny([])");
    assert_true_expr("[].isEmpty() && ![1].isEmpty()");
    assert_true_expr("[[1], {a: 1}].contains({a: 1}) && [[1], {a: 1}].contains([1, 1])");
    assert_error_expr("\"ham\".contains(\"h\")");
    assert_error_expr("[1].containsAll(1)");
    assert_error_expr("\"\".isEmpty()");
    assert_true_expr("principal.tags.contains(\"a\")");
}

static void test_tags(void **state)
{
    assert_true_expr("principal.hasTag(\"team\") && principal.getTag(\"team\") == \"red\"");
    assert_true_expr("principal.getTag(\"level\") + 1 == 4");
    assert_false_expr("principal.hasTag(\"nope\") || resource.hasTag(\"team\")");
    assert_error_expr("principal.getTag(\"nope\") == 1");
    assert_error_expr("principal.hasTag(1)");
    assert_error_expr("{a: 1}.hasTag(\"a\")");
    assert_false_expr("User::\"ghost\".hasTag(\"a\")");
    assert_error_expr("User::\"ghost\".getTag(\"a\") == 1");
}

static void test_records_and_sets_propagate_errors(void **state)
{
    assert_error_expr("[1, 1 + \"a\"].isEmpty()");
    assert_error_expr("{a: principal.nope} == {}");
    assert_true_expr("[1 < 2, [\"nested\"]].contains(true)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equality_is_typed_and_structural),
        cmocka_unit_test(test_comparisons_need_matching_kinds),
        cmocka_unit_test(test_arithmetic_overflows_are_errors),
        cmocka_unit_test(test_and_or_short_circuit),
        cmocka_unit_test(test_if_then_else),
        cmocka_unit_test(test_condition_must_be_bool),
        cmocka_unit_test(test_attributes_and_has),
        cmocka_unit_test(test_context_is_a_record),
        cmocka_unit_test(test_like_patterns),
        cmocka_unit_test(test_in_is_transitive_and_reflexive),
        cmocka_unit_test(test_is_checks_entity_types),
        cmocka_unit_test(test_set_methods),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_records_and_sets_propagate_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
