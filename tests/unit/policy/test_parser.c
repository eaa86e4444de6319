// SPDX-License-Identifier: Apache-2.0
// Unit tests for the Cedar parser: every policy and expression form parses,
// malformed text is refused with file:line:col, reserved words, literal
// bounds, unary limits, annotations, duplicate ids and error recovery.
#include "helpers.h"

static void assert_parses(const char *text)
{
    char *errs = parse_errors(text);
    if (errs) {
        fail_msg("unexpected parse errors for:\n%s\n%s", text, errs);
        free(errs);
    }
}

static void assert_error_at(const char *text, const char *want)
{
    char *errs = parse_errors(text);
    if (!errs)
        fail_msg("expected a parse error for:\n%s", text);
    if (!strstr(errs, want))
        fail_msg("expected \"%s\" in:\n%s", want, errs);
    free(errs);
}

static void test_scope_forms_parse(void **state)
{
    assert_parses("permit(principal, action, resource);");
    assert_parses(
        "forbid(principal == User::\"a\", action == Action::\"r\", resource == P::\"x\");");
    assert_parses("permit(principal in Group::\"g\", action in [Action::\"a\", Action::\"b\"], "
                  "resource in Album::\"t\");");
    assert_parses("permit(principal is User, action in Action::\"g\", resource is NS::Photo in "
                  "NS::Album::\"x\");");
    assert_parses("permit(principal, action in [], resource);");
    assert_parses("permit(principal, action, resource,);");
    assert_parses("permit(principal, action == NS::Action::\"x\", resource);");
    assert_parses("");
    assert_parses("// only a comment\n");
    /* Unicode white space separates tokens, as in the reference */
    assert_parses("permit(principal,\xc2\xa0"
                  "action,\xe2\x80\x83"
                  "resource);\r\n");
}

static void test_conditions_and_expressions_parse(void **state)
{
    assert_parses(
        "permit(principal, action, resource) when { true } unless { false } when { 1 < 2 };");
    assert_parses("permit(principal, action, resource) when {\n"
                  "  if principal has age && principal.age >= 18 then context.ok else false\n"
                  "};");
    assert_parses("permit(principal, action, resource) when {"
                  " [1, \"two\", [3], {a: 1, \"b c\": 2}].contains(1) &&"
                  " resource[\"owner\"] == principal && principal.tags.containsAll([]) &&"
                  " !(-3 * 4 + 5 - 6 == 7) && \"x\" like \"*\\**\" && principal is User in"
                  " Group::\"g\" && principal has a.b.c && ip(\"1.2.3.4\").isIpv4()"
                  " && resource.getTag(\"k\") != 1 && resource.hasTag(\"k\") };");
    assert_parses(
        "permit(principal, action, resource) when { [1, 2,].isEmpty() || {a: 1,} has a };");
}

static void test_annotations_parse(void **state)
{
    policy_set_t *s = policy_set_new(0);
    struct policy_diags d = {0};
    const char *text = "@id(\"allow-read\") @note(\"x\\ty\") @flag\n"
                       "permit(principal, action, resource);\n"
                       "permit(principal, action, resource);";
    assert_int_equal(policy_set_add_text(s, "t.cedar", text, strlen(text), &d), 0);
    assert_string_equal(policy_set_annotation(s, "allow-read", "note"), "x\ty");
    assert_string_equal(policy_set_annotation(s, "allow-read", "flag"), "");
    assert_null(policy_set_annotation(s, "allow-read", "missing"));
    /* the second policy has no @id: it keeps its positional id */
    assert_null(policy_set_annotation(s, "policy1", "id"));
    assert_int_equal(policy_set_count(s), 2);
    policy_set_free(s);
    policy_diags_free(&d);
}

static void test_errors_carry_line_and_column(void **state)
{
    assert_error_at("permit(principal, action, resource)\nwhen { 1 + };", "t.cedar:2:12:");
    assert_error_at("permit(principal, action, resource);\nforbid(principal action, resource);",
                    "t.cedar:2:18: expected ','");
    assert_error_at("permit(principal, action, resource) when { \"unterminated };",
                    "unterminated string");
    assert_error_at("allow(principal, action, resource);",
                    "t.cedar:1:1: expected `permit` or `forbid`");
    assert_error_at("permit(principal, action, resource) when { x };", "unexpected identifier");
    assert_error_at("permit(principal, action, resource)", "expected ';'");
}

static void test_every_broken_policy_is_reported(void **state)
{
    char *errs = parse_errors("permit(principal, action, resource) when { 1 + };\n"
                              "permit(principal, action, resource);\n"
                              "forbid(principal, action resource);\n");
    assert_non_null(errs);
    assert_non_null(strstr(errs, "t.cedar:1:"));
    assert_non_null(strstr(errs, "t.cedar:3:"));
    free(errs);
}

static void test_reserved_words_and_idents(void **state)
{
    assert_error_at("permit(principal, action, resource) when { principal.if };", "reserved");
    assert_error_at("permit(principal, action, resource) when { {in: 1} has in };", "reserved");
    assert_error_at("permit(principal, action, resource) when { principal has then };", "reserved");
    assert_error_at("permit(principal, action, resource) when { if::User::\"a\" };", "");
    assert_parses("permit(principal, action, resource) when { principal.principal == 1 };");
}

static void test_integer_literal_bounds(void **state)
{
    assert_true_expr("9223372036854775807 > 0");
    assert_true_expr("-9223372036854775808 < 0");
    assert_parse_error("9223372036854775808 > 0");
    assert_parse_error("-9223372036854775809 < 0");
    /* -(i64::MIN) is an evaluation error, not a parse error */
    assert_error_expr("--9223372036854775808 < 0");
    assert_true_expr("--1 == 1");
}

static void test_unary_operators_at_most_four(void **state)
{
    assert_true_expr("!!!!true");
    assert_parse_error("!!!!!true");
    assert_true_expr("----1 == 1");
    assert_parse_error("-----1 == -1");
}

static void test_strings_and_escapes(void **state)
{
    assert_true_expr("\"\\u{48}\\x49\\n\" == \"HI\\n\"");
    assert_true_expr("\"a\\0b\" != \"a\"");
    assert_parse_error("\"\\q\" == \"\"");
    assert_parse_error("\"\\x80\" == \"\"");
    assert_parse_error("\"\\u{110000}\" == \"\"");
    assert_parse_error("\"\\*\" == \"*\"");     /* \* only in patterns */
    assert_parse_error("\"\\\n  x\" == \"x\""); /* no line continuations */
    assert_true_expr("\"*\" like \"\\*\"");
}

static void test_functions_and_methods_are_checked(void **state)
{
    assert_parse_error("foo(1)");
    assert_parse_error("[1].foo()");
    assert_parse_error("\"1.2.3.4\".ip()");
    assert_parse_error("isIpv4(ip(\"1.2.3.4\"))");
    assert_parse_error("[1].contains()");
    assert_parse_error("[1].contains(1, 2)");
    assert_parse_error("[].isEmpty(1)");
    /* extension arity is checked when evaluated */
    assert_error_expr("ip(\"1.2.3.4\").isIpv4(1)");
}

static void test_relations_do_not_chain(void **state)
{
    assert_parse_error("1 < 2 < 3");
    assert_parse_error("1 == 1 == true");
    assert_true_expr("(1 < 2) == true");
}

static void test_records_reject_duplicate_keys(void **state)
{
    assert_parse_error("{a: 1, a: 2} has a");
    assert_parse_error("{a: 1, \"a\": 2} has a");
}

static void test_slots_only_in_scope(void **state)
{
    assert_error_at("permit(principal, action, resource) when { ?principal == principal };",
                    "only allowed in the policy scope");
    assert_error_at("permit(principal == ?resource, action, resource);", "not allowed here");
    assert_error_at("permit(principal, action == ?principal, resource);", "not allowed");
    assert_parses("permit(principal == ?principal, action, resource in ?resource);");
}

static void test_action_scope_needs_action_entities(void **state)
{
    assert_error_at("permit(principal, action == User::\"x\", resource);", "type `Action`");
    assert_error_at("permit(principal, action is Action, resource);", "not allowed");
    assert_error_at("permit(principal in [User::\"a\"], action, resource);",
                    "only allowed in the action");
}

static void test_duplicate_ids_are_refused(void **state)
{
    assert_error_at("@id(\"a\") permit(principal, action, resource);\n"
                    "@id(\"a\") forbid(principal, action, resource);",
                    "t.cedar:2:1: duplicate policy id \"a\"");
    assert_error_at("@id(\"x\") @id(\"y\") permit(principal, action, resource);",
                    "duplicate annotation");
}

static void test_deep_nesting_is_refused_not_crashed(void **state)
{
    size_t n = 5000;
    char *text = malloc(n * 2 + 100);
    strcpy(text, "permit(principal, action, resource) when { ");
    size_t k = strlen(text);
    for (size_t i = 0; i < n; i++)
        text[k++] = '(';
    text[k++] = '1';
    for (size_t i = 0; i < n; i++)
        text[k++] = ')';
    strcpy(text + k, " == 1 };");
    char *errs = parse_errors(text);
    assert_non_null(errs);
    assert_non_null(strstr(errs, "nested too deeply"));
    free(errs);
    /* a long flat chain is too deep for the evaluator as well */
    k = strlen("permit(principal, action, resource) when { ");
    for (size_t i = 0; i < n; i++) {
        memcpy(text + k, "1+", 2);
        k += 2;
    }
    strcpy(text + k, "1 > 0 };");
    errs = parse_errors(text);
    assert_non_null(errs);
    free(errs);
    free(text);
}

static void test_files_load_with_their_names_in_errors(void **state)
{
    policy_set_t *s = policy_set_new(0);
    struct policy_diags diags = {0};
    assert_int_equal(policy_set_add_file(s, TEST_DATA_DIR "/photos.cedar", &diags), 0);
    assert_int_equal(policy_set_count(s), 2);
    assert_non_null(policy_set_annotation(s, "owners-read", "id"));
    assert_int_equal(policy_set_add_file(s, TEST_DATA_DIR "/broken.cedar", &diags), -1);
    assert_int_equal(diags.count, 1);
    assert_string_equal(diags.v[0].file, TEST_DATA_DIR "/broken.cedar");
    assert_int_equal(diags.v[0].line, 4);
    assert_int_equal(diags.v[0].col, 25);
    assert_int_equal(policy_set_count(s), 2); /* the old policies stay */
    assert_int_equal(policy_set_add_file(s, TEST_DATA_DIR "/missing.cedar", &diags), -1);
    assert_int_equal(diags.count, 2);
    policy_diags_free(&diags);
    policy_set_free(s);
}

static void test_uid_parse(void **state)
{
    arena_t a;
    arena_init(&a, 1024);
    struct policy_uid u;
    const char *err;
    assert_int_equal(policy_uid_parse(&a, "NS::User::\"al\\u{69}ce\"", &u, &err), 0);
    assert_int_equal(u.type_len, 8);
    assert_memory_equal(u.type, "NS::User", 8);
    assert_int_equal(u.id_len, 5);
    assert_memory_equal(u.id, "alice", 5);
    assert_int_equal(policy_uid_parse(&a, "User", &u, &err), -1);
    assert_int_equal(policy_uid_parse(&a, "User::\"a\" x", &u, &err), -1);
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scope_forms_parse),
        cmocka_unit_test(test_conditions_and_expressions_parse),
        cmocka_unit_test(test_annotations_parse),
        cmocka_unit_test(test_errors_carry_line_and_column),
        cmocka_unit_test(test_every_broken_policy_is_reported),
        cmocka_unit_test(test_reserved_words_and_idents),
        cmocka_unit_test(test_integer_literal_bounds),
        cmocka_unit_test(test_unary_operators_at_most_four),
        cmocka_unit_test(test_strings_and_escapes),
        cmocka_unit_test(test_functions_and_methods_are_checked),
        cmocka_unit_test(test_relations_do_not_chain),
        cmocka_unit_test(test_records_reject_duplicate_keys),
        cmocka_unit_test(test_slots_only_in_scope),
        cmocka_unit_test(test_action_scope_needs_action_entities),
        cmocka_unit_test(test_duplicate_ids_are_refused),
        cmocka_unit_test(test_deep_nesting_is_refused_not_crashed),
        cmocka_unit_test(test_files_load_with_their_names_in_errors),
        cmocka_unit_test(test_uid_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
