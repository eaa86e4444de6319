// SPDX-License-Identifier: Apache-2.0
// The budget store and reservation expiry: settled spend is written by the
// store's thread and loaded back by the next store on the same file; a
// reservation never settled is released after its TTL, and settling it late
// charges the spend without releasing twice; the soft limit fires once.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "budget/budget.h"
#include "state/state.h"

#include "../support/tmp_db.h"

static const time_t NOW = 1764072000; /* 2025-11-25 12:00:00 UTC */

static struct budget_tree *tree(void)
{
    struct budget_tree *t = budget_tree_new();
    struct budget_caps org = {{BUDGET_NO_CAP, BUDGET_NO_CAP, 1000000}};
    assert_int_equal(budget_tree_add(t, "org", NULL, &org), 0);
    assert_int_equal(budget_tree_add(t, "bot", "org", NULL), 0);
    return t;
}

static int64_t spent_total(struct budget_tree *t, const char *id, time_t now)
{
    int64_t s = -1, r = -1;
    assert_int_equal(budget_node_usage(t, id, BUDGET_TOTAL, now, &s, &r), 0);
    return s;
}

static void test_spend_is_written_and_loaded_back(void **state)
{
    (void)state;
    char *path = tmp_db();
    char err[256];
    time_t now = time(NULL);
    struct budget_store *s = budget_store_open(path, err, sizeof err);
    assert_non_null(s);
    struct budget_tree *t = tree();
    assert_int_equal(budget_store_attach(s, t, NULL), 0);
    const char *chain[] = {"bot"};
    for (int i = 0; i < 10; i++) {
        struct budget_reservation r;
        assert_int_equal(budget_reserve(t, chain, 1, 20000, now, &r, NULL), 0);
        r.request_id = "req";
        budget_settle(&r, 12345, now);
    }
    budget_tree_free(t);
    budget_store_close(s); /* writes what is queued */

    struct state *st = state_open(path, err, sizeof err);
    int64_t sum = 0, count = 0;
    assert_int_equal(state_budget_ledger_sum(st, &sum, &count), 0);
    assert_int_equal(sum, 123450);
    assert_int_equal(count, 10);
    state_close(st);

    s = budget_store_open(path, err, sizeof err);
    assert_non_null(s);
    t = tree();
    assert_int_equal(budget_store_attach(s, t, NULL), 0);
    assert_int_equal(spent_total(t, "org", now), 123450);
    assert_int_equal(spent_total(t, "bot", now), 123450);
    budget_tree_free(t);
    budget_store_close(s);
    remove_db(path);
}

static void test_an_unsettled_reservation_expires_and_is_not_released_twice(void **state)
{
    (void)state;
    struct budget_tree *t = tree();
    budget_tree_set_options(t, 60000, 0.8); /* 60 s */
    const char *chain[] = {"bot"};
    struct budget_reservation stuck, r2, r3;
    struct budget_refusal why;
    assert_int_equal(budget_reserve(t, chain, 1, 900000, NOW, &stuck, NULL), 0);
    /* the cap of $1 is held by the stuck call */
    assert_int_equal(budget_reserve(t, chain, 1, 200000, NOW + 30, &r2, &why), 1);
    /* past the TTL it is released */
    assert_int_equal(budget_reserve(t, chain, 1, 200000, NOW + 61, &r2, &why), 0);
    int64_t s = -1, r = -1;
    assert_int_equal(budget_node_usage(t, "org", BUDGET_TOTAL, NOW + 61, &s, &r), 0);
    assert_int_equal(r, 200000);
    /* the late settle charges its spend and leaves r2's reservation alone */
    budget_settle(&stuck, 100000, NOW + 62);
    assert_int_equal(budget_node_usage(t, "org", BUDGET_TOTAL, NOW + 62, &s, &r), 0);
    assert_int_equal(s, 100000);
    assert_int_equal(r, 200000);
    budget_settle(&r2, 0, NOW + 62);
    assert_int_equal(budget_node_usage(t, "org", BUDGET_TOTAL, NOW + 62, &s, &r), 0);
    assert_int_equal(r, 0);
    assert_int_equal(budget_reserve(t, chain, 1, 900000, NOW + 63, &r3, &why), 0);
    budget_settle(&r3, 0, NOW + 63);
    budget_tree_free(t);
}

static void test_real_usage_above_the_reservation_is_charged_in_full(void **state)
{
    (void)state;
    struct budget_tree *t = tree();
    const char *chain[] = {"bot"};
    struct budget_reservation r;
    struct budget_refusal why;
    assert_int_equal(budget_reserve(t, chain, 1, 100000, NOW, &r, NULL), 0);
    budget_settle(&r, 1200000, NOW); /* the provider answered more than asked */
    assert_int_equal(spent_total(t, "org", NOW), 1200000);
    /* the cap is passed by that excess, and refuses everything after */
    assert_int_equal(budget_reserve(t, chain, 1, 1, NOW, &r, &why), 1);
    assert_string_equal(why.node, "org");
    budget_tree_free(t);
}

static void test_redis_urls(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        int rc;
        const char *host, *pw;
        int port, db;
    } cases[] = {
        {"redis://127.0.0.1:6379", 0, "127.0.0.1", NULL, 6379, 0},
        {"redis://cache", 0, "cache", NULL, 6379, 0},
        {"redis://:s3cret@cache:6380/2", 0, "cache", "s3cret", 6380, 2},
        {"redis://user:pw@h/", 0, "h", "pw", 6379, 0},
        {"http://h:1", -1, NULL, NULL, 0, 0},
        {"redis://", -1, NULL, NULL, 0, 0},
        {"redis://h:0", -1, NULL, NULL, 0, 0},
        {"redis://h:70000", -1, NULL, NULL, 0, 0},
        {"redis://h:12ab", -1, NULL, NULL, 0, 0},
        {"redis://h/db", -1, NULL, NULL, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *host, *pw;
        int port, db;
        int rc = budget_redis_parse_url(cases[i].url, &host, &port, &pw, &db);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_string_equal(host, cases[i].host);
            if (cases[i].pw)
                assert_string_equal(pw, cases[i].pw);
            else
                assert_null(pw);
            assert_int_equal(port, cases[i].port);
            assert_int_equal(db, cases[i].db);
        }
        free(host);
        free(pw);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spend_is_written_and_loaded_back),
        cmocka_unit_test(test_an_unsettled_reservation_expires_and_is_not_released_twice),
        cmocka_unit_test(test_real_usage_above_the_reservation_is_charged_in_full),
        cmocka_unit_test(test_redis_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
