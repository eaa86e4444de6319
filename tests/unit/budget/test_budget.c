// SPDX-License-Identifier: Apache-2.0
// The budget tree: spend rolls up to every ancestor, refusals are all or
// nothing, concurrent reservations never pass a cap, settling releases the rest.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "budget/budget.h"

static const time_t NOW = 1764072000; /* 2025-11-25 12:00:00 UTC */

static struct budget_caps caps(int64_t day, int64_t month, int64_t total)
{
    struct budget_caps c = {{day, month, total}};
    return c;
}

/* org ($100/day) > team ($50 total) > a, b (no caps) */
static struct budget_tree *tree4(void)
{
    struct budget_tree *t = budget_tree_new();
    assert_non_null(t);
    struct budget_caps org = caps(100000000, BUDGET_NO_CAP, BUDGET_NO_CAP);
    struct budget_caps team = caps(BUDGET_NO_CAP, BUDGET_NO_CAP, 50000000);
    assert_int_equal(budget_tree_add(t, "org", NULL, &org), 0);
    assert_int_equal(budget_tree_add(t, "team", "org", &team), 0);
    assert_int_equal(budget_tree_add(t, "a", "team", NULL), 0);
    assert_int_equal(budget_tree_add(t, "b", "team", NULL), 0);
    return t;
}

static int64_t spent(struct budget_tree *t, const char *id, enum budget_period p)
{
    int64_t s = -1, r = -1;
    assert_int_equal(budget_node_usage(t, id, p, NOW, &s, &r), 0);
    return s;
}

static int64_t reserved(struct budget_tree *t, const char *id, enum budget_period p)
{
    int64_t s = -1, r = -1;
    assert_int_equal(budget_node_usage(t, id, p, NOW, &s, &r), 0);
    return r;
}

static void test_spend_rolls_up_to_every_ancestor(void **state)
{
    struct budget_tree *t = tree4();
    const char *chain[] = {"a"};
    struct budget_reservation r;
    assert_int_equal(budget_reserve(t, chain, 1, 1000, NOW, &r, NULL), 0);
    assert_int_equal(r.nnodes, 3);
    assert_int_equal(reserved(t, "org", BUDGET_DAY), 1000);
    assert_int_equal(reserved(t, "team", BUDGET_TOTAL), 1000);
    budget_settle(&r, 700, NOW);
    assert_int_equal(spent(t, "a", BUDGET_DAY), 700);
    assert_int_equal(spent(t, "team", BUDGET_MONTH), 700);
    assert_int_equal(spent(t, "org", BUDGET_TOTAL), 700);
    assert_int_equal(spent(t, "b", BUDGET_DAY), 0);
    budget_tree_free(t);
}

static void test_refusal_is_all_or_nothing_and_names_node_and_period(void **state)
{
    struct budget_tree *t = tree4();
    const char *chain[] = {"b"};
    struct budget_reservation r;
    struct budget_refusal why;
    assert_int_equal(budget_reserve(t, chain, 1, 40000000, NOW, &r, &why), 0);
    struct budget_reservation r2;
    assert_int_equal(budget_reserve(t, chain, 1, 20000000, NOW, &r2, &why), 1);
    assert_string_equal(why.node, "team");
    assert_int_equal(why.period, BUDGET_TOTAL);
    assert_int_equal(why.retry_after, -1);
    /* nothing was taken anywhere by the refused call */
    assert_int_equal(reserved(t, "org", BUDGET_DAY), 40000000);
    assert_int_equal(reserved(t, "b", BUDGET_DAY), 40000000);
    budget_settle(&r2, 5, NOW); /* settling a refusal is a no-op */
    assert_int_equal(spent(t, "org", BUDGET_DAY), 0);
    budget_settle(&r, 0, NOW);
    budget_tree_free(t);
}

static void test_day_cap_refusal_retries_at_utc_midnight(void **state)
{
    struct budget_tree *t = budget_tree_new();
    struct budget_caps c = caps(10, BUDGET_NO_CAP, BUDGET_NO_CAP);
    assert_int_equal(budget_tree_add(t, "x", NULL, &c), 0);
    const char *chain[] = {"x"};
    struct budget_reservation r;
    struct budget_refusal why;
    assert_int_equal(budget_reserve(t, chain, 1, 11, NOW, &r, &why), 1);
    assert_string_equal(budget_period_name(why.period), "day");
    assert_int_equal(why.retry_after, 12 * 3600);
    assert_int_equal(budget_reserve(t, chain, 1, 10, NOW, &r, &why), 0);
    budget_settle(&r, 10, NOW);
    /* the next day starts clean */
    assert_int_equal(budget_reserve(t, chain, 1, 10, NOW + 86400, &r, &why), 0);
    budget_settle(&r, 10, NOW + 86400);
    budget_tree_free(t);
}

static void test_settle_releases_the_rest(void **state)
{
    struct budget_tree *t = tree4();
    const char *chain[] = {"a"};
    struct budget_reservation r, r2;
    struct budget_refusal why;
    assert_int_equal(budget_reserve(t, chain, 1, 50000000, NOW, &r, &why), 0);
    assert_int_equal(budget_reserve(t, chain, 1, 1, NOW, &r2, &why), 1);
    budget_settle(&r, 10000000, NOW);
    budget_settle(&r, 10000000, NOW); /* twice: no-op */
    assert_int_equal(reserved(t, "team", BUDGET_TOTAL), 0);
    assert_int_equal(spent(t, "team", BUDGET_TOTAL), 10000000);
    assert_int_equal(budget_reserve(t, chain, 1, 40000000, NOW, &r2, &why), 0);
    budget_settle(&r2, 40000000, NOW);
    assert_int_equal(spent(t, "team", BUDGET_TOTAL), 50000000);
    budget_tree_free(t);
}

struct worker_arg {
    struct budget_tree *t;
    const char *leaf;
    int granted;
};

static void *spender(void *p)
{
    struct worker_arg *a = p;
    const char *chain[] = {a->leaf};
    for (int i = 0; i < 2000; i++) {
        struct budget_reservation r;
        if (budget_reserve(a->t, chain, 1, 1000, NOW, &r, NULL) == 0) {
            a->granted++;
            budget_settle(&r, 1000, NOW); /* full cost: spend only grows */
        }
    }
    return NULL;
}

static void test_concurrent_reservations_never_exceed_a_cap(void **state)
{
    struct budget_tree *t = budget_tree_new();
    struct budget_caps parent = caps(BUDGET_NO_CAP, BUDGET_NO_CAP, 777000);
    struct budget_caps child = caps(500000, BUDGET_NO_CAP, BUDGET_NO_CAP);
    static const char *const kids[] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"};
    assert_int_equal(budget_tree_add(t, "parent", NULL, &parent), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(budget_tree_add(t, kids[i], "parent", &child), 0);
    pthread_t th[8];
    struct worker_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (struct worker_arg){t, kids[i], 0};
        assert_int_equal(pthread_create(&th[i], NULL, spender, &args[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        total += args[i].granted;
        assert_true(spent(t, kids[i], BUDGET_DAY) <= 500000);
    }
    assert_int_equal(total, 777);
    assert_int_equal(spent(t, "parent", BUDGET_TOTAL), 777000);
    assert_int_equal(reserved(t, "parent", BUDGET_TOTAL), 0);
    budget_tree_free(t);
}

static void test_cost_is_micro_dollars_rounded_up(void **state)
{
    assert_int_equal(budget_cost(1000, 0.15), 150);
    assert_int_equal(budget_cost(1, 0.15), 1);
    assert_int_equal(budget_cost(0, 5.0), 0);
    assert_int_equal(budget_cost(2000000, 2.5), 5000000);
}

static void test_a_reloaded_tree_adopts_the_spend_of_the_old_one(void **state)
{
    struct budget_tree *old = tree4();
    const char *chain[] = {"a"};
    struct budget_reservation r, inflight;
    struct budget_refusal why;
    assert_int_equal(budget_reserve(old, chain, 1, 30000000, NOW, &r, &why), 0);
    budget_settle(&r, 30000000, NOW);
    assert_int_equal(budget_reserve(old, chain, 1, 10000000, NOW, &inflight, &why), 0);
    /* the new config lowers team's cap and adds a node */
    struct budget_tree *t = budget_tree_new();
    struct budget_caps team = caps(BUDGET_NO_CAP, BUDGET_NO_CAP, 45000000);
    assert_int_equal(budget_tree_add(t, "org", NULL, NULL), 0);
    assert_int_equal(budget_tree_add(t, "team", "org", &team), 0);
    assert_int_equal(budget_tree_add(t, "a", "team", NULL), 0);
    assert_int_equal(budget_tree_add(t, "new", "team", NULL), 0);
    assert_int_equal(budget_tree_adopt(t, old), 0);
    assert_int_equal(spent(t, "team", BUDGET_TOTAL), 30000000);
    assert_int_equal(reserved(t, "team", BUDGET_TOTAL), 10000000);
    const char *chain2[] = {"new"};
    assert_int_equal(budget_reserve(t, chain2, 1, 5000001, NOW, &r, &why), 1);
    assert_string_equal(why.node, "team");
    /* a call that began under the old tree (its config snapshot still held)
     * settles where the new one sees it */
    budget_settle(&inflight, 1000000, NOW);
    budget_tree_free(old);
    assert_int_equal(spent(t, "team", BUDGET_TOTAL), 31000000);
    assert_int_equal(reserved(t, "team", BUDGET_TOTAL), 0);
    assert_int_equal(spent(t, "org", BUDGET_DAY), 31000000);
    assert_int_equal(budget_reserve(t, chain2, 1, 14000000, NOW, &r, &why), 0);
    budget_settle(&r, 0, NOW);
    budget_tree_free(t);
}

static void test_unknown_ids_and_bad_parents(void **state)
{
    struct budget_tree *t = tree4();
    assert_int_equal(budget_tree_add(t, "a", NULL, NULL), -1);
    assert_int_equal(budget_tree_add(t, "z", "nobody", NULL), -1);
    const char *chain[] = {"nobody"};
    struct budget_reservation r;
    assert_int_equal(budget_reserve(t, chain, 1, 1, NOW, &r, NULL), 0);
    assert_int_equal(r.nnodes, 0);
    budget_settle(&r, 1, NOW);
    budget_tree_free(t);
}

/* The month key is computed without gmtime_r: it must agree with it at every
 * month boundary (a second either side) from 1970 to 2400, leap years and
 * century rules included, and every 7 hours in between. */
static void test_month_key_matches_gmtime(void **unused)
{
    for (int64_t t = 0; t < INT64_C(13569465600); t += 7 * 3600 + 1) {
        time_t now = (time_t)t;
        struct tm tm;
        gmtime_r(&now, &tm);
        assert_int_equal(budget_period_key(BUDGET_MONTH, now),
                         (int64_t)(tm.tm_year - 70) * 12 + tm.tm_mon);
    }
    for (int y = 1970; y < 2400; y++)
        for (int m = 0; m < 12; m++) {
            struct tm tm = {.tm_year = y - 1900, .tm_mon = m, .tm_mday = 1};
            time_t start = timegm(&tm);
            int64_t want = (int64_t)(y - 1970) * 12 + m;
            assert_int_equal(budget_period_key(BUDGET_MONTH, start), want);
            if (start > 0)
                assert_int_equal(budget_period_key(BUDGET_MONTH, start - 1), want - 1);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spend_rolls_up_to_every_ancestor),
        cmocka_unit_test(test_month_key_matches_gmtime),
        cmocka_unit_test(test_refusal_is_all_or_nothing_and_names_node_and_period),
        cmocka_unit_test(test_day_cap_refusal_retries_at_utc_midnight),
        cmocka_unit_test(test_settle_releases_the_rest),
        cmocka_unit_test(test_concurrent_reservations_never_exceed_a_cap),
        cmocka_unit_test(test_cost_is_micro_dollars_rounded_up),
        cmocka_unit_test(test_a_reloaded_tree_adopts_the_spend_of_the_old_one),
        cmocka_unit_test(test_unknown_ids_and_bad_parents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
