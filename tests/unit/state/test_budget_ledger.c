// SPDX-License-Identifier: Apache-2.0
// The budget tables of the embedded store: settlements and totals written in
// one transaction (all or nothing), totals read back for the current
// periods only, and the ledger's sum.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state/state.h"

#include "../support/tmp_db.h"

struct seen {
    int n;
    int64_t spent[8];
    int alerted[8];
};

static int collect(const struct state_budget_total *t, void *arg)
{
    struct seen *s = arg;
    if (s->n < 8) {
        s->spent[s->n] = t->spent;
        s->alerted[s->n] = t->alerted;
    }
    s->n++;
    return 0;
}

static void test_settlements_and_totals_round_trip(void **state)
{
    (void)state;
    char *path = tmp_db();
    char err[256];
    struct state *st = state_open(path, err, sizeof err);
    assert_non_null(st);
    struct state_budget_settlement rows[] = {
        {1000, "r1", "[\"a\",\"org\"]", 16005},
        {1001, NULL, "[\"a\",\"org\"]", 5},
    };
    struct state_budget_total tot[] = {
        {"org", 0, 20000, 100, 0}, {"org", 0, 19999, 7, 1}, /* yesterday: not loaded */
        {"org", 1, 657, 300, 1},   {"org", 2, 0, 900, 0},
    };
    assert_int_equal(state_budget_write(st, rows, 2, tot, 4), 0);
    /* an upsert replaces the spend of the same node, period and key */
    tot[0].spent = 16010;
    assert_int_equal(state_budget_write(st, NULL, 0, tot, 1), 0);
    struct seen s = {0};
    assert_int_equal(state_budget_totals_each(st, 20000, 657, collect, &s), 0);
    assert_int_equal(s.n, 3);
    int64_t sum = -1, count = -1;
    assert_int_equal(state_budget_ledger_sum(st, &sum, &count), 0);
    assert_int_equal(sum, 16010);
    assert_int_equal(count, 2);
    state_close(st);
    remove_db(path);
}

static void test_a_bad_row_writes_nothing(void **state)
{
    (void)state;
    char *path = tmp_db();
    char err[256];
    struct state *st = state_open(path, err, sizeof err);
    assert_non_null(st);
    struct state_budget_settlement rows[] = {{1000, "ok", "[\"a\"]", 10}};
    struct state_budget_total bad[] = {{"a", 2, 0, 10, 0}, {"a", 7, 0, 10, 0}}; /* period 7 */
    assert_int_equal(state_budget_write(st, rows, 1, bad, 2), -1);
    struct state_budget_settlement neg[] = {{1000, "x", "[\"a\"]", 10}, {1, "y", "[]", -5}};
    assert_int_equal(state_budget_write(st, neg, 2, NULL, 0), -1);
    int64_t sum = -1, count = -1;
    assert_int_equal(state_budget_ledger_sum(st, &sum, &count), 0);
    assert_int_equal(count, 0);
    struct seen s = {0};
    assert_int_equal(state_budget_totals_each(st, 0, 0, collect, &s), 0);
    assert_int_equal(s.n, 0);
    state_close(st);
    remove_db(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settlements_and_totals_round_trip),
        cmocka_unit_test(test_a_bad_row_writes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
