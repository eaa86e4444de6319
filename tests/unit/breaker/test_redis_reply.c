// SPDX-License-Identifier: Apache-2.0
// The Redis rate-limit script's reply as the gateway reads it: which buckets
// a chain checks, the views for x-ratelimit-* headers, the refused bucket
// named with its wait, and malformed replies rejected rather than trusted.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "breaker/breaker.h"

static struct breaker_set *tree(struct breaker_chain *c)
{
    struct breaker_set *s = breaker_set_new();
    struct rl_limits team = {10, 1000, 0}, bot = {0, 100, 0};
    assert_non_null(s);
    assert_int_equal(breaker_set_add_agent(s, "team", NULL, &team, NULL), 0);
    assert_int_equal(breaker_set_add_agent(s, "mid", "team", NULL, NULL), 0);
    assert_int_equal(breaker_set_add_agent(s, "bot", "mid", &bot, NULL), 0);
    const char *ids[] = {"bot"};
    assert_int_equal(breaker_chain_resolve(s, ids, 1, c), 0);
    return s;
}

static void a_chain_lists_its_buckets_caller_first(void **state)
{
    (void)state;
    struct breaker_chain c;
    struct breaker_set *s = tree(&c);
    struct rl_bucket_ref refs[BREAKER_MAX_BUCKETS];
    assert_int_equal(breaker_chain_buckets(s, &c, refs), 3);
    assert_string_equal(refs[0].node, "bot");
    assert_true(refs[0].tokens && refs[0].limit == 100);
    assert_string_equal(refs[1].node, "team");
    assert_true(!refs[1].tokens && refs[1].limit == 10);
    assert_true(refs[2].tokens && refs[2].limit == 1000);
    breaker_set_free(s);
}

static void a_grant_gives_the_tightest_views(void **state)
{
    (void)state;
    struct breaker_chain c;
    struct breaker_set *s = tree(&c);
    struct rl_bucket_ref refs[BREAKER_MAX_BUCKETS];
    size_t n = breaker_chain_buckets(s, &c, refs);
    /* bot's tokens 30 s ahead (half the bucket), team's requests 18 s (3 of
     * 10 used), team's tokens 6 s (100 of 1000) */
    long long v[] = {1, 0, 0, 30000000, 18000000, 6000000};
    struct rl_admission adm = {.tokens = 50};
    struct rl_refusal why;
    assert_int_equal(breaker_rl_redis_reply(refs, n, v, 6, &adm, &why), 0);
    assert_int_equal(adm.tokens, 50);
    assert_true(adm.has_requests && adm.has_tokens);
    assert_int_equal(adm.requests.limit, 10);
    assert_int_equal(adm.requests.remaining, 7);
    assert_int_equal(adm.requests.reset_ns, 18000000000ULL);
    assert_int_equal(adm.tokens_view.limit, 100); /* 50 left beats 900 left */
    assert_int_equal(adm.tokens_view.remaining, 50);
    breaker_set_free(s);
}

static void a_refusal_names_the_bucket_and_the_wait(void **state)
{
    (void)state;
    struct breaker_chain c;
    struct breaker_set *s = tree(&c);
    struct rl_bucket_ref refs[BREAKER_MAX_BUCKETS];
    size_t n = breaker_chain_buckets(s, &c, refs);
    long long v[] = {0, 2, 4000000, 0, 60000000, 0};
    struct rl_admission adm = {.tokens = 5};
    struct rl_refusal why;
    assert_int_equal(breaker_rl_redis_reply(refs, n, v, 6, &adm, &why), 1);
    assert_string_equal(why.node, "team");
    assert_int_equal(why.tokens, 0);
    assert_int_equal(why.limit, 10);
    assert_int_equal(why.retry_after_ns, 4000000000ULL);
    assert_int_equal(adm.requests.remaining, 0);
    assert_int_equal(adm.tokens_view.remaining, 100);
    breaker_set_free(s);
}

static void malformed_replies_are_rejected(void **state)
{
    (void)state;
    struct breaker_chain c;
    struct breaker_set *s = tree(&c);
    struct rl_bucket_ref refs[BREAKER_MAX_BUCKETS];
    size_t n = breaker_chain_buckets(s, &c, refs);
    struct rl_admission adm = {0};
    struct rl_refusal why;
    long long short_reply[] = {1, 0, 0, 0};
    assert_int_equal(breaker_rl_redis_reply(refs, n, short_reply, 4, &adm, &why), -1);
    long long bad_status[] = {7, 0, 0, 0, 0, 0};
    assert_int_equal(breaker_rl_redis_reply(refs, n, bad_status, 6, &adm, &why), -1);
    long long bad_index[] = {0, 4, 10, 0, 0, 0};
    assert_int_equal(breaker_rl_redis_reply(refs, n, bad_index, 6, &adm, &why), -1);
    long long zero_index[] = {0, 0, 10, 0, 0, 0};
    assert_int_equal(breaker_rl_redis_reply(refs, n, zero_index, 6, &adm, &why), -1);
    /* absurd times are clamped, not overflowed */
    long long huge[] = {0, 1, 0x7fffffffffffffffLL, -5, 0x7fffffffffffffffLL, 0};
    assert_int_equal(breaker_rl_redis_reply(refs, n, huge, 6, &adm, &why), 1);
    assert_int_equal(why.retry_after_ns, 86400000000000ULL);
    assert_int_equal(adm.requests.remaining, 0);
    breaker_set_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_chain_lists_its_buckets_caller_first),
        cmocka_unit_test(a_grant_gives_the_tightest_views),
        cmocka_unit_test(a_refusal_names_the_bucket_and_the_wait),
        cmocka_unit_test(malformed_replies_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
