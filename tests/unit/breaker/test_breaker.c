// SPDX-License-Identifier: Apache-2.0
// The breaker state machine with an injected clock: N consecutive errors
// open it, the pause ends in exactly one probe, the probe's outcome closes
// or reopens it; latency backoff halves concurrency; the error-rate alert
// fires once per window; reset, metrics and JSON show the state.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "breaker/breaker.h"

#define T0 1000000ULL /* ms */

static struct breaker *mk(uint32_t n, uint32_t pause_ms)
{
    struct breaker_params p;
    breaker_params_default(&p);
    p.consecutive_errors = n;
    p.pause_ms = pause_ms;
    p.error_rate = 0;
    struct breaker *b = breaker_new("provider:up", &p);
    assert_non_null(b);
    return b;
}

static int call(struct breaker *b, uint64_t now, enum breaker_outcome o)
{
    struct breaker_ticket t;
    struct breaker_why why;
    if (breaker_admit(b, now, &t, &why) != 0)
        return -1;
    return breaker_done(&t, o, 1, now);
}

static enum breaker_state state(struct breaker *b, uint64_t now)
{
    struct breaker_status st;
    breaker_status(b, now, &st);
    return st.state;
}

static void n_consecutive_errors_open_it(void **s)
{
    (void)s;
    struct breaker *b = mk(3, 1000);
    assert_int_equal(call(b, T0, BREAKER_ERROR), 0);
    assert_int_equal(call(b, T0, BREAKER_ERROR), 0);
    assert_int_equal(call(b, T0, BREAKER_OK), 0); /* a success breaks the run */
    assert_int_equal(call(b, T0, BREAKER_ERROR), 0);
    assert_int_equal(call(b, T0, BREAKER_ERROR), 0);
    assert_int_equal(state(b, T0), BREAKER_CLOSED);
    assert_int_equal(call(b, T0, BREAKER_ERROR), BREAKER_EV_OPENED);
    assert_int_equal(state(b, T0), BREAKER_OPEN);
    struct breaker_ticket t;
    struct breaker_why why;
    assert_int_equal(breaker_admit(b, T0 + 400, &t, &why), 1);
    assert_int_equal(why.reason, BREAKER_REFUSED_OPEN);
    assert_int_equal(why.retry_after_ms, 600);
    assert_int_equal(why.errors, 3);
    breaker_unref(b);
}

static void after_pause_exactly_one_probe(void **s)
{
    (void)s;
    struct breaker *b = mk(1, 1000);
    assert_int_equal(call(b, T0, BREAKER_ERROR), BREAKER_EV_OPENED);
    struct breaker_ticket probe, other;
    struct breaker_why why;
    assert_int_equal(breaker_admit(b, T0 + 999, &probe, &why), 1);
    assert_int_equal(breaker_admit(b, T0 + 1000, &probe, &why), 0);
    assert_true(probe.probe);
    assert_int_equal(state(b, T0 + 1000), BREAKER_HALF_OPEN);
    assert_int_equal(breaker_admit(b, T0 + 1001, &other, &why), 1);
    assert_int_equal(why.reason, BREAKER_REFUSED_PROBING);
    /* success closes it */
    assert_int_equal(breaker_done(&probe, BREAKER_OK, 5, T0 + 1010), BREAKER_EV_CLOSED);
    assert_int_equal(state(b, T0 + 1010), BREAKER_CLOSED);
    assert_int_equal(call(b, T0 + 1011, BREAKER_OK), 0);
    breaker_unref(b);
}

static void failed_probe_reopens_for_another_pause(void **s)
{
    (void)s;
    struct breaker *b = mk(1, 1000);
    assert_int_equal(call(b, T0, BREAKER_ERROR), BREAKER_EV_OPENED);
    struct breaker_ticket probe;
    struct breaker_why why;
    assert_int_equal(breaker_admit(b, T0 + 1500, &probe, &why), 0);
    assert_int_equal(breaker_done(&probe, BREAKER_ERROR, 5, T0 + 1600), BREAKER_EV_OPENED);
    assert_int_equal(state(b, T0 + 1600), BREAKER_OPEN);
    assert_int_equal(breaker_admit(b, T0 + 2500, &probe, &why), 1);
    assert_int_equal(why.retry_after_ms, 100);
    assert_int_equal(breaker_admit(b, T0 + 2600, &probe, &why), 0);
    assert_true(probe.probe);
    breaker_unref(b);
}

static void abandoned_probe_frees_the_slot(void **s)
{
    (void)s;
    struct breaker *b = mk(1, 10);
    assert_int_equal(call(b, T0, BREAKER_ERROR), BREAKER_EV_OPENED);
    struct breaker_ticket probe;
    struct breaker_why why;
    assert_int_equal(breaker_admit(b, T0 + 10, &probe, &why), 0);
    assert_int_equal(breaker_done(&probe, BREAKER_ABANDON, 0, T0 + 11), 0);
    assert_int_equal(state(b, T0 + 11), BREAKER_HALF_OPEN);
    assert_int_equal(breaker_admit(b, T0 + 12, &probe, &why), 0);
    assert_true(probe.probe);
    assert_int_equal(breaker_done(&probe, BREAKER_OK, 0, T0 + 13), BREAKER_EV_CLOSED);
    breaker_unref(b);
}

static void calls_finishing_late_do_not_close_an_open_breaker(void **s)
{
    (void)s;
    struct breaker *b = mk(2, 1000);
    struct breaker_ticket slow;
    struct breaker_why why;
    assert_int_equal(breaker_admit(b, T0, &slow, &why), 0);
    call(b, T0, BREAKER_ERROR);
    assert_int_equal(call(b, T0, BREAKER_ERROR), BREAKER_EV_OPENED);
    assert_int_equal(breaker_done(&slow, BREAKER_OK, 5, T0 + 5), 0);
    assert_int_equal(state(b, T0 + 5), BREAKER_OPEN);
    breaker_reset(b);
    assert_int_equal(state(b, T0 + 5), BREAKER_CLOSED);
    assert_int_equal(call(b, T0 + 6, BREAKER_OK), 0);
    breaker_unref(b);
}

static void slow_answers_halve_concurrency(void **s)
{
    (void)s;
    struct breaker_params p;
    breaker_params_default(&p);
    p.consecutive_errors = 0;
    p.error_rate = 0;
    p.latency_p90_ms = 100;
    p.window_ms = 1000;
    p.min_calls = 4;
    struct breaker *b = breaker_new("provider:slow", &p);
    assert_non_null(b);
    struct breaker_ticket t[8];
    struct breaker_why why;
    for (int i = 0; i < 8; i++)
        assert_int_equal(breaker_admit(b, T0, &t[i], &why), 0);
    int ev = 0;
    for (int i = 0; i < 8; i++)
        ev |= breaker_done(&t[i], BREAKER_OK, 500, T0 + 10);
    assert_true(ev & BREAKER_EV_BACKOFF);
    struct breaker_status st;
    breaker_status(b, T0 + 10, &st);
    assert_int_equal(st.concurrency_limit, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(breaker_admit(b, T0 + 20, &t[i], &why), 0);
    assert_int_equal(breaker_admit(b, T0 + 20, &t[4], &why), 1);
    assert_int_equal(why.reason, BREAKER_REFUSED_BACKOFF);
    assert_int_equal(why.concurrency, 4);
    /* still slow a window later: halved again */
    for (int i = 0; i < 4; i++)
        breaker_done(&t[i], BREAKER_OK, 500, T0 + 1020);
    breaker_status(b, T0 + 1020, &st);
    assert_int_equal(st.concurrency_limit, 2);
    /* fast answers for a window: doubled back, then lifted */
    for (int k = 0; k < 2; k++) {
        uint64_t now = T0 + 2100 + (uint64_t)k * 1100;
        for (int i = 0; i < 2; i++)
            assert_int_equal(breaker_admit(b, now, &t[i], &why), 0);
        for (int i = 0; i < 2; i++)
            breaker_done(&t[i], BREAKER_OK, 5, now);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(breaker_admit(b, now, &t[i], &why), 0);
            breaker_done(&t[i], BREAKER_OK, 5, now);
        }
    }
    breaker_status(b, T0 + 4000, &st);
    assert_int_equal(st.concurrency_limit, 0);
    breaker_unref(b);
}

static void error_rate_alert_fires_once_per_window(void **s)
{
    (void)s;
    struct breaker_params p;
    breaker_params_default(&p);
    p.consecutive_errors = 0;
    p.error_rate = 0.5;
    p.alert_window_ms = 1000;
    p.min_calls = 4;
    struct breaker *b = breaker_new("agent:x", &p);
    assert_non_null(b);
    int alerts = 0;
    /* 3 errors of 3: below min_calls, no alert */
    for (int i = 0; i < 3; i++)
        alerts += (call(b, T0, BREAKER_ERROR) & BREAKER_EV_ALERT) != 0;
    assert_int_equal(alerts, 0);
    /* the 4th error: 4 of 4 */
    alerts += (call(b, T0 + 1, BREAKER_ERROR) & BREAKER_EV_ALERT) != 0;
    assert_int_equal(alerts, 1);
    for (int i = 0; i < 20; i++)
        alerts += (call(b, T0 + 2 + (uint64_t)i, BREAKER_ERROR) & BREAKER_EV_ALERT) != 0;
    assert_int_equal(alerts, 1);
    /* a window later, still failing: a second alert */
    for (int i = 0; i < 5; i++)
        alerts += (call(b, T0 + 1100 + (uint64_t)i, BREAKER_ERROR) & BREAKER_EV_ALERT) != 0;
    assert_int_equal(alerts, 2);
    struct breaker_status st;
    breaker_status(b, T0 + 1110, &st);
    assert_int_equal(st.alerts, 2);
    breaker_unref(b);
}

static void error_rate_below_threshold_stays_quiet(void **s)
{
    (void)s;
    struct breaker_params p;
    breaker_params_default(&p);
    p.consecutive_errors = 0;
    p.error_rate = 0.5;
    p.alert_window_ms = 1000;
    p.min_calls = 4;
    struct breaker *b = breaker_new("agent:y", &p);
    assert_non_null(b);
    int ev = 0;
    for (int i = 0; i < 100; i++)
        ev |= call(b, T0 + (uint64_t)i, i % 3 == 0 ? BREAKER_ERROR : BREAKER_OK);
    assert_false(ev & BREAKER_EV_ALERT);
    breaker_unref(b);
}

static void set_renders_state_for_metrics_and_admin(void **s)
{
    (void)s;
    struct breaker_set *set = breaker_set_new();
    assert_non_null(set);
    struct breaker_params p;
    breaker_params_default(&p);
    p.consecutive_errors = 1;
    struct rl_limits lim = {60, 0, 0};
    assert_int_equal(breaker_set_add_agent(set, "team", NULL, &lim, &p), 0);
    assert_int_equal(breaker_set_add_provider(set, 3, "openai", &p), 0);
    struct breaker *b = breaker_set_provider(set, 3);
    assert_non_null(b);
    assert_ptr_equal(breaker_set_find(set, "provider:openai"), b);
    assert_non_null(breaker_set_find(set, "agent:team"));
    assert_null(breaker_set_find(set, "provider:none"));
    assert_null(breaker_set_provider(set, 2));
    assert_int_equal(call(b, T0, BREAKER_ERROR), BREAKER_EV_OPENED);
    buf_t out;
    buf_init(&out, 1 << 20);
    assert_int_equal(breaker_set_render_metrics(set, T0, &out), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    assert_non_null(strstr(out.data, "portcullis_breaker_state{breaker=\"provider:openai\"} 1\n"));
    assert_non_null(strstr(out.data, "portcullis_breaker_state{breaker=\"agent:team\"} 0\n"));
    assert_non_null(
        strstr(out.data, "portcullis_breaker_trips_total{breaker=\"provider:openai\"} 1"));
    assert_non_null(strstr(out.data, "portcullis_rate_limited_total{agent=\"team\"} 0"));
    buf_reset(&out);
    assert_int_equal(breaker_set_render_json(set, T0, &out), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    assert_non_null(strstr(out.data, "\"id\":\"provider:openai\",\"state\":\"open\""));
    buf_free(&out);

    /* a reload keeps the state of breakers whose settings did not change */
    struct breaker_set *next = breaker_set_new();
    assert_non_null(next);
    assert_int_equal(breaker_set_add_agent(next, "team", NULL, &lim, &p), 0);
    assert_int_equal(breaker_set_add_provider(next, 0, "openai", &p), 0);
    breaker_set_adopt(next, set);
    breaker_set_free(set);
    assert_int_equal(state(breaker_set_provider(next, 0), T0), BREAKER_OPEN);
    breaker_set_free(next);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(n_consecutive_errors_open_it),
        cmocka_unit_test(after_pause_exactly_one_probe),
        cmocka_unit_test(failed_probe_reopens_for_another_pause),
        cmocka_unit_test(abandoned_probe_frees_the_slot),
        cmocka_unit_test(calls_finishing_late_do_not_close_an_open_breaker),
        cmocka_unit_test(slow_answers_halve_concurrency),
        cmocka_unit_test(error_rate_alert_fires_once_per_window),
        cmocka_unit_test(error_rate_below_threshold_stays_quiet),
        cmocka_unit_test(set_renders_state_for_metrics_and_admin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
