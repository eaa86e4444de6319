// SPDX-License-Identifier: Apache-2.0
// budget: inside agents: — caps in micro-dollars, the budget tree built only
// when some agent has one, and errors for keys and values that are wrong.
#include "helpers.h"

#include "budget/budget.h"

static char *load_errors(const char *yaml)
{
    struct config_errors errs;
    struct config *c = config_load_string("t.yaml", yaml, strlen(yaml), &errs);
    assert_null(c);
    char *text = errors_text(&errs);
    config_errors_free(&errs);
    return text;
}

static void test_caps_are_micro_dollars_and_the_tree_rolls_up(void **state)
{
    struct config *c = load_ok("agents:\n"
                               "  - id: org\n"
                               "    budget: {usd_per_day: 500, usd_total: 0.000001}\n"
                               "    children:\n"
                               "      - id: research\n"
                               "        budget: {usd_per_month: 20.5}\n"
                               "      - id: free\n");
    const struct config_agent *org = config_find_agent(c, "org");
    const struct config_agent *research = config_find_agent(c, "research");
    assert_true(org->has_budget);
    assert_int_equal(org->budget_micro_usd[BUDGET_DAY], 500000000);
    assert_int_equal(org->budget_micro_usd[BUDGET_MONTH], BUDGET_NO_CAP);
    assert_int_equal(org->budget_micro_usd[BUDGET_TOTAL], 1);
    assert_int_equal(research->budget_micro_usd[BUDGET_MONTH], 20500000);
    assert_false(config_find_agent(c, "free")->has_budget);
    assert_non_null(c->budget);
    assert_int_equal(budget_tree_size(c->budget), 3);
    /* free has no cap of its own, but org's total cap of $0.000001 holds it */
    const char *chain[] = {"free"};
    struct budget_reservation r;
    struct budget_refusal why;
    assert_int_equal(budget_reserve(c->budget, chain, 1, 2, 1764072000, &r, &why), 1);
    assert_string_equal(why.node, "org");
    assert_int_equal(why.period, BUDGET_TOTAL);
    config_unref(c);
}

static void test_no_budget_no_tree(void **state)
{
    struct config *c = load_ok("agents:\n  - id: a\n    budget:\n  - id: b\n");
    assert_null(c->budget);
    config_unref(c);
}

static void test_unknown_keys_and_negative_caps_are_errors(void **state)
{
    char *text = load_errors("agents:\n  - id: a\n    budget: {usd_per_week: 1}\n");
    assert_non_null(strstr(text, "t.yaml:3:"));
    assert_non_null(strstr(text, "usd_per_week"));
    free(text);
    text = load_errors("agents:\n  - id: a\n    budget: {usd_per_day: -1}\n");
    assert_non_null(strstr(text, "agents[0].budget.usd_per_day"));
    free(text);
    text = load_errors("agents:\n  - id: a\n    budget: 20\n");
    assert_non_null(strstr(text, "agents[0].budget"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps_are_micro_dollars_and_the_tree_rolls_up),
        cmocka_unit_test(test_no_budget_no_tree),
        cmocka_unit_test(test_unknown_keys_and_negative_caps_are_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
