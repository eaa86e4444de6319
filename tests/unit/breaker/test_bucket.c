// SPDX-License-Identifier: Apache-2.0
// Token buckets with an injected clock: a full minute's burst then refusal,
// refill at the configured rate, give-back and debt, exact totals under
// threads, and chains that charge every ancestor all or nothing.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "breaker/breaker.h"

#define SEC 1000000000ULL
#define T0 (1000 * SEC)

static void burst_of_limit_then_refused(void **state)
{
    (void)state;
    struct rl_bucket b = {.limit = 60};
    struct rl_view v;
    for (int i = 0; i < 60; i++) {
        assert_int_equal(rl_take(&b, 1, T0, &v), 0);
        assert_int_equal(v.remaining, 59 - i);
        assert_int_equal(v.limit, 60);
    }
    assert_int_equal(rl_take(&b, 1, T0, &v), 1);
    assert_int_equal(v.remaining, 0);
    /* one request per second refills: the next fits in a second */
    assert_true(v.retry_after_ns > 0 && v.retry_after_ns <= SEC);
    assert_int_equal(v.reset_ns, 60 * SEC);
}

static void refills_at_the_rate(void **state)
{
    (void)state;
    struct rl_bucket b = {.limit = 60};
    for (int i = 0; i < 60; i++)
        assert_int_equal(rl_take(&b, 1, T0, NULL), 0);
    assert_int_equal(rl_take(&b, 1, T0 + SEC / 2, NULL), 1);
    assert_int_equal(rl_take(&b, 1, T0 + SEC, NULL), 0);
    assert_int_equal(rl_take(&b, 1, T0 + SEC, NULL), 1);
    /* a full minute later the whole burst is back */
    struct rl_view v;
    rl_peek(&b, T0 + 62 * SEC, &v);
    assert_int_equal(v.remaining, 60);
    assert_int_equal(v.reset_ns, 0);
}

static void give_back_and_debt(void **state)
{
    (void)state;
    struct rl_bucket b = {.limit = 1000};
    struct rl_view v;
    assert_int_equal(rl_take(&b, 600, T0, &v), 0);
    assert_int_equal(v.remaining, 400);
    rl_give(&b, 500); /* used only 100 */
    rl_peek(&b, T0, &v);
    assert_int_equal(v.remaining, 900);
    rl_charge(&b, 1900, T0); /* usage far above the estimate: in debt */
    rl_peek(&b, T0, &v);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(rl_take(&b, 1, T0 + 30 * SEC, NULL), 1);
    /* 2000 tokens of bucket time are 2 minutes: one minute later 0 room */
    assert_int_equal(rl_take(&b, 1, T0 + 60 * SEC, NULL), 1);
    assert_int_equal(rl_take(&b, 1, T0 + 61 * SEC, NULL), 0);
}

static void cost_above_limit_passes_only_from_full(void **state)
{
    (void)state;
    struct rl_bucket b = {.limit = 100};
    assert_int_equal(rl_take(&b, 5000, T0, NULL), 0);
    assert_int_equal(rl_take(&b, 1, T0, NULL), 1);
    assert_int_equal(rl_take(&b, 5000, T0 + 30 * SEC, NULL), 1);
    assert_int_equal(rl_take(&b, 5000, T0 + 60 * SEC, NULL), 0);
}

static void unlimited_bucket_always_takes(void **state)
{
    (void)state;
    struct rl_bucket b = {.limit = 0};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(rl_take(&b, 1000000, T0, NULL), 0);
}

struct race {
    struct rl_bucket *b;
    int taken;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < 10000; i++)
        if (rl_take(r->b, 1, T0, NULL) == 0)
            r->taken++;
    return NULL;
}

static void threads_share_one_exact_total(void **state)
{
    (void)state;
    struct rl_bucket b = {.limit = 5000};
    struct race r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct race){&b, 0};
        assert_int_equal(pthread_create(&th[i], NULL, racer, &r[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += r[i].taken;
    }
    assert_int_equal(total, 5000);
}

/* org (10 rpm) > team (no limit) > a (5 rpm, 100 tpm), b */
static struct breaker_set *tree(void)
{
    struct breaker_set *s = breaker_set_new();
    assert_non_null(s);
    struct rl_limits org = {10, 0, 0}, a = {5, 100, 0};
    assert_int_equal(breaker_set_add_agent(s, "org", NULL, &org, NULL), 0);
    assert_int_equal(breaker_set_add_agent(s, "team", "org", NULL, NULL), 0);
    assert_int_equal(breaker_set_add_agent(s, "a", "team", &a, NULL), 0);
    assert_int_equal(breaker_set_add_agent(s, "b", "team", NULL, NULL), 0);
    assert_int_equal(breaker_set_add_agent(s, "b", "team", NULL, NULL), -1);
    assert_int_equal(breaker_set_add_agent(s, "c", "nobody", NULL, NULL), -1);
    assert_true(breaker_set_active(s));
    return s;
}

static void chain_charges_every_ancestor(void **state)
{
    (void)state;
    struct breaker_set *s = tree();
    struct breaker_chain ca, cb;
    const char *ida[] = {"a"}, *idb[] = {"b"};
    assert_int_equal(breaker_chain_resolve(s, ida, 1, &ca), 0);
    assert_int_equal(ca.n, 3);
    assert_int_equal(breaker_chain_limits(s, &ca), 3);
    assert_int_equal(breaker_chain_resolve(s, idb, 1, &cb), 0);
    assert_int_equal(breaker_chain_limits(s, &cb), 1);
    struct rl_admission adm;
    struct rl_refusal why;
    /* a: 5 requests, then a's own limit refuses */
    for (int i = 0; i < 5; i++)
        assert_int_equal(breaker_rl_admit(s, &ca, 10, T0, &adm, &why), 0);
    assert_int_equal(adm.requests.remaining, 0);
    assert_int_equal(adm.tokens_view.remaining, 50);
    assert_int_equal(breaker_rl_admit(s, &ca, 10, T0, &adm, &why), 1);
    assert_string_equal(why.node, "a");
    assert_int_equal(why.tokens, 0);
    /* b: org has 5 left of its 10 */
    for (int i = 0; i < 5; i++)
        assert_int_equal(breaker_rl_admit(s, &cb, 0, T0, &adm, &why), 0);
    assert_int_equal(breaker_rl_admit(s, &cb, 0, T0, &adm, &why), 1);
    assert_string_equal(why.node, "org");
    assert_true(why.retry_after_ns > 0);
    breaker_set_free(s);
}

static void refusal_takes_nothing_and_usage_corrects(void **state)
{
    (void)state;
    struct breaker_set *s = tree();
    struct breaker_chain ca;
    const char *ida[] = {"a"};
    assert_int_equal(breaker_chain_resolve(s, ida, 1, &ca), 0);
    struct rl_admission adm;
    struct rl_refusal why;
    assert_int_equal(breaker_rl_admit(s, &ca, 80, T0, &adm, &why), 0);
    /* 30 more tokens do not fit in a: refused, and org's request is given back */
    struct rl_admission adm2;
    assert_int_equal(breaker_rl_admit(s, &ca, 30, T0, &adm2, &why), 1);
    assert_int_equal(why.tokens, 1);
    assert_string_equal(why.node, "a");
    /* the call used 20: 80 free again */
    breaker_rl_settle(s, &ca, &adm, 20, T0);
    assert_int_equal(breaker_rl_admit(s, &ca, 80, T0, &adm2, &why), 0);
    assert_int_equal(adm2.tokens_view.remaining, 0);
    /* org saw 2 requests (the refused one was given back): 8 left for b */
    struct breaker_chain cb;
    const char *idb[] = {"b"};
    assert_int_equal(breaker_chain_resolve(s, idb, 1, &cb), 0);
    int ok = 0;
    while (breaker_rl_admit(s, &cb, 0, T0, &adm, &why) == 0)
        ok++;
    assert_int_equal(ok, 8);
    breaker_set_free(s);
}

static int take_all(struct breaker_set *s, const char *id)
{
    struct breaker_chain c;
    const char *ids[] = {id};
    struct rl_admission adm;
    struct rl_refusal why;
    assert_int_equal(breaker_chain_resolve(s, ids, 1, &c), 0);
    int n = 0;
    while (n < 1000 && breaker_rl_admit(s, &c, 0, T0, &adm, &why) == 0)
        n++;
    return n;
}

static void a_reload_keeps_what_was_used(void **state)
{
    (void)state;
    struct rl_limits ten = {10, 0, 0}, twenty = {20, 0, 0};
    struct breaker_set *old = breaker_set_new();
    assert_non_null(old);
    assert_int_equal(breaker_set_add_agent(old, "same", NULL, &ten, NULL), 0);
    assert_int_equal(breaker_set_add_agent(old, "raised", NULL, &ten, NULL), 0);
    assert_int_equal(take_all(old, "same"), 10);
    assert_int_equal(take_all(old, "raised"), 10);
    struct breaker_set *next = breaker_set_new();
    assert_non_null(next);
    assert_int_equal(breaker_set_add_agent(next, "same", NULL, &ten, NULL), 0);
    assert_int_equal(breaker_set_add_agent(next, "raised", NULL, &twenty, NULL), 0);
    assert_int_equal(breaker_set_add_agent(next, "new", NULL, &ten, NULL), 0);
    breaker_set_adopt(next, old);
    breaker_set_free(old);
    /* unchanged: still used up; raised to 20: a minute's worth of bucket time
     * was used, which is all of 20 too; a new node starts full */
    assert_int_equal(take_all(next, "same"), 0);
    assert_int_equal(take_all(next, "raised"), 0);
    assert_int_equal(take_all(next, "new"), 10);
    breaker_set_free(next);
}

static void durations_read_like_openai(void **state)
{
    (void)state;
    char b[32];
    breaker_format_duration(20 * 1000000ULL, b, sizeof b);
    assert_string_equal(b, "20ms");
    breaker_format_duration(SEC, b, sizeof b);
    assert_string_equal(b, "1s");
    breaker_format_duration(1500 * 1000000ULL, b, sizeof b);
    assert_string_equal(b, "1.5s");
    breaker_format_duration(360 * SEC, b, sizeof b);
    assert_string_equal(b, "6m0s");
    breaker_format_duration(0, b, sizeof b);
    assert_string_equal(b, "0ms");
    /* every width of the millisecond form, rounded up */
    static const struct {
        uint64_t ns;
        const char *want;
    } ms[] = {{1, "1ms"},          {9000000, "9ms"},    {9000001, "10ms"}, {99000000, "99ms"},
              {100000000, "100ms"}, {999000000, "999ms"}, {999000001, "1s"}};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        breaker_format_duration(ms[i].ns, b, sizeof b);
        assert_string_equal(b, ms[i].want);
    }
    char small[4]; /* too short for "20ms": cut like snprintf */
    breaker_format_duration(20 * 1000000ULL, small, sizeof small);
    assert_string_equal(small, "20m");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_of_limit_then_refused),
        cmocka_unit_test(refills_at_the_rate),
        cmocka_unit_test(give_back_and_debt),
        cmocka_unit_test(cost_above_limit_passes_only_from_full),
        cmocka_unit_test(unlimited_bucket_always_takes),
        cmocka_unit_test(threads_share_one_exact_total),
        cmocka_unit_test(chain_charges_every_ancestor),
        cmocka_unit_test(refusal_takes_nothing_and_usage_corrects),
        cmocka_unit_test(a_reload_keeps_what_was_used),
        cmocka_unit_test(durations_read_like_openai),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
