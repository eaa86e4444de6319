// SPDX-License-Identifier: Apache-2.0
// Unit tests for the Cedar extension types: ipaddr (v4/v6, ranges, the
// predicates), decimal (format, range, comparisons), datetime (formats,
// offsets, calendar checks, methods) and duration (units, order, overflow,
// conversions).
#include "helpers.h"

static void test_ip_parsing(void **state)
{
    const char *good[] = {
        "127.0.0.1",       "::1", "127.0.0.1/24",    "ffee::/64", "ff00::2", "::2", "0.0.0.0/0",
        "1:2:3:4:5:6:7:8", "1::", "1:2:3:4:5:6:7::", "::/0"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char e[128];
        snprintf(e, sizeof(e), "ip(\"%s\") == ip(\"%s\")", good[i], good[i]);
        assert_int_equal(eval(e), EV_TRUE);
    }
    const char *bad[] = {"380.0.0.1",   "ab.ab.ab.ab",    "127.0.0.1/8/24",
                         "fee::/64::1", "fzz::1",         "01.2.3.4",
                         "1.2.3",       "1.2.3.4/33",     "::/129",
                         "1.2.3.4/08",  "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8:9",
                         "1::2::3",     "12345::",        "",
                         "1.2.3.4 ",    "1.2.3.4/+8"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char e[128];
        snprintf(e, sizeof(e), "ip(\"%s\").isIpv4() || true", bad[i]);
        if (eval(e) != EV_ERROR)
            fail_msg("ip(\"%s\") should not parse", bad[i]);
    }
}

static void test_ip_equality_keeps_the_host_part(void **state)
{
    assert_false_expr("ip(\"192.168.0.1/24\") == ip(\"192.168.0.8/24\")");
    assert_false_expr("ip(\"127.0.0.1\") == ip(\"::1\")");
    assert_true_expr("ip(\"127.0.0.1\") == ip(\"127.0.0.1/32\")");
    assert_false_expr("ip(\"127.0.0.1\") == \"127.0.0.1\"");
}

static void test_ip_predicates(void **state)
{
    assert_true_expr(
        "ip(\"127.0.0.1\").isIpv4() && !ip(\"::1\").isIpv4() && ip(\"ffee::/64\").isIpv6()");
    assert_true_expr("ip(\"127.0.0.2\").isLoopback() && ip(\"::1\").isLoopback()");
    assert_false_expr("ip(\"::2\").isLoopback() || ip(\"127.0.0.1/4\").isLoopback()");
    assert_true_expr("ip(\"ff00::2\").isMulticast() && ip(\"224.1.2.3\").isMulticast()");
    assert_false_expr("ip(\"127.0.0.1\").isMulticast() || ip(\"224.0.0.0/3\").isMulticast()");
    assert_true_expr("ip(\"192.168.0.1\").isInRange(ip(\"192.168.0.1/24\"))");
    assert_true_expr("ip(\"192.168.0.75\").isInRange(ip(\"192.168.0.1/24\"))");
    assert_false_expr("ip(\"192.168.0.75\").isInRange(ip(\"192.168.0.1/28\"))");
    assert_true_expr("ip(\"1:2:3:4::\").isInRange(ip(\"1:2:3:4::/48\"))");
    assert_false_expr("ip(\"192.168.0.1\").isInRange(ip(\"1:2:3:4::\"))");
    assert_true_expr("ip(\"10.1.0.0/16\").isInRange(ip(\"10.0.0.0/8\"))");
    assert_false_expr("ip(\"10.0.0.0/8\").isInRange(ip(\"10.1.0.0/16\"))");
    assert_error_expr("ip(\"192.168.0.1\").isInRange(1)");
    assert_error_expr("principal.age.isIpv4()");
    assert_true_expr("principal.ip.isInRange(ip(\"10.0.0.0/24\"))");
}

static void test_decimal(void **state)
{
    assert_true_expr("decimal(\"1.23\").lessThan(decimal(\"1.24\"))");
    assert_false_expr("decimal(\"1.23\").lessThan(decimal(\"1.23\"))");
    assert_true_expr("decimal(\"1.23\").lessThanOrEqual(decimal(\"1.23\"))");
    assert_true_expr("decimal(\"-1.23\").greaterThan(decimal(\"-1.24\"))");
    assert_true_expr("decimal(\"123.45\").greaterThanOrEqual(decimal(\"1.23\"))");
    assert_true_expr("decimal(\"00.000\") == decimal(\"0.0\")");
    assert_true_expr("decimal(\"-0.5\").lessThan(decimal(\"0.0\"))");
    assert_true_expr("decimal(\"-0.0\") == decimal(\"0.0\")");
    assert_true_expr("decimal(\"922337203685477.5807\") == decimal(\"922337203685477.5807\")");
    assert_true_expr("decimal(\"-922337203685477.5808\").lessThan(decimal(\"0.0\"))");
    const char *bad[] = {
        "1234",    "1.0.", "1.",   ".1",  "1.a", "-.", "1000000000000000.0", "922337203685477.5808",
        "0.12345", "",     "+1.0", " 1.0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char e[128];
        snprintf(e, sizeof(e), "decimal(\"%s\") == decimal(\"0.0\")", bad[i]);
        if (eval(e) != EV_ERROR)
            fail_msg("decimal(\"%s\") should not parse", bad[i]);
    }
    assert_error_expr("decimal(\"1.1\").lessThan(2)");
    assert_error_expr("ip(\"1.1.2.3\").lessThan(decimal(\"1.2\"))");
    assert_error_expr("decimal(1) == decimal(\"1.0\")");
}

static void test_datetime_formats(void **state)
{
    assert_true_expr("datetime(\"2024-10-15\") == datetime(\"2024-10-15T00:00:00Z\")");
    assert_true_expr(
        "datetime(\"2024-10-15T11:35:00.000Z\") == datetime(\"2024-10-15T11:35:00Z\")");
    assert_true_expr(
        "datetime(\"2024-10-15T11:35:00+0100\") == datetime(\"2024-10-15T10:35:00Z\")");
    assert_true_expr("datetime(\"2024-10-15T11:35:00.250-0130\") == "
                     "datetime(\"2024-10-15T13:05:00.250Z\")");
    assert_true_expr("datetime(\"1969-12-31T23:59:59Z\") < datetime(\"1970-01-01\")");
    assert_true_expr(
        "datetime(\"2024-02-29\") == datetime(\"2024-02-28\").offset(duration(\"1d\"))");
    const char *bad[] = {"2022-10-10 ",
                         "2024-10-15Z",
                         "2024-10-15T11:38:02ZZ",
                         "2024-01-01T01:02",
                         "2024-01-01T00:00:00",
                         "2016-12-31T23:59:60.000Z",
                         "2023-02-29",
                         "2024-13-01",
                         "2024-00-10",
                         "2024-01-01T24:00:00Z",
                         "2024-01-01T00:00:00+2400",
                         "24-01-01",
                         "2024-01-01T00:00:00.1Z",
                         "2024-01-01T00:00:00+01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char e[128];
        snprintf(e, sizeof(e), "datetime(\"%s\") == datetime(\"2024-01-01\")", bad[i]);
        if (eval(e) != EV_ERROR)
            fail_msg("datetime(\"%s\") should not parse", bad[i]);
    }
}

static void test_datetime_methods(void **state)
{
    assert_true_expr("datetime(\"2024-10-15\").offset(duration(\"1h\")) == "
                     "datetime(\"2024-10-15T01:00:00Z\")");
    assert_true_expr("datetime(\"2024-10-16T01:00:00Z\").offset(duration(\"-1d\")) == "
                     "datetime(\"2024-10-15T01:00:00Z\")");
    assert_true_expr("datetime(\"2024-10-14T23:18:00Z\").durationSince(datetime(\"2024-10-15\")) "
                     "== duration(\"-42m\")");
    assert_true_expr(
        "datetime(\"2024-10-16T00:00:00-0500\").durationSince(datetime(\"2024-10-15\")) "
        "== duration(\"1d5h\")");
    assert_true_expr("datetime(\"2025-02-20T22:00:00-0500\").toDate() == datetime(\"2025-02-21\")");
    assert_true_expr("datetime(\"2025-02-20T10:35:00-0500\").toTime() == duration(\"15h35m\")");
    assert_true_expr("datetime(\"1969-12-31T23:00:00Z\").toDate() == datetime(\"1969-12-31\")");
    assert_true_expr("datetime(\"1969-12-31T23:00:00Z\").toTime() == duration(\"23h\")");
    assert_error_expr("datetime(\"2024-10-15\").offset(duration(\"9223372036854775807ms\")) == "
                      "datetime(\"2024-10-15\")");
    assert_error_expr("datetime(\"2024-10-15\").offset(42) == datetime(\"2024-10-15\")");
    assert_error_expr("duration(\"5h\").toDate() == datetime(\"2024-10-15\")");
    assert_error_expr("datetime(\"1970-01-01T01:00:00Z\") < 3600000");
}

static void test_duration(void **state)
{
    assert_true_expr("duration(\"1d\").toMilliseconds() == 86400000");
    assert_true_expr(
        "duration(\"4s100ms\").toSeconds() == 4 && duration(\"100ms\").toSeconds() == 0");
    assert_true_expr("duration(\"4m70s\").toMinutes() == 5 && duration(\"4h70m\").toHours() == 5");
    assert_true_expr("duration(\"4d30h\").toDays() == 5");
    assert_true_expr("duration(\"-90s\").toMinutes() == -1");
    assert_true_expr(
        "duration(\"2h30m\") == duration(\"150m\") && duration(\"-1d12h\") < duration(\"0ms\")");
    assert_true_expr("duration(\"3h30m\") < duration(\"15000s\")");
    assert_true_expr("duration(\"9223372036854775807ms\").toMilliseconds() == 9223372036854775807");
    const char *bad[] = {"1d-1s",
                         "1d2h3m4s5ms ",
                         "1d2h3m4s5ms6",
                         "d",
                         "1s1d",
                         "1s1s",
                         "",
                         "-",
                         "1d9223372036854775807ms",
                         "1x",
                         "1.5h",
                         "--1d",
                         "1mss"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char e[128];
        snprintf(e, sizeof(e), "duration(\"%s\") == duration(\"1h\")", bad[i]);
        if (eval(e) != EV_ERROR)
            fail_msg("duration(\"%s\") should not parse", bad[i]);
    }
    assert_error_expr("\"4s\".toSeconds() == 4");
}

static void test_extension_values_in_entities(void **state)
{
    const char *json = "[{\"uid\": {\"type\": \"T\", \"id\": \"x\"}, \"parents\": [], \"attrs\": {"
                       " \"d\": {\"__extn\": {\"fn\": \"decimal\", \"arg\": \"1.5\"}},"
                       " \"t\": {\"__extn\": {\"fn\": \"offset\", \"args\": ["
                       "   {\"__extn\": {\"fn\": \"datetime\", \"arg\": \"1970-01-01\"}},"
                       "   {\"__extn\": {\"fn\": \"duration\", \"arg\": \"1d\"}}]}}}}]";
    char err[256];
    policy_entities_t *es = policy_entities_load_text(json, strlen(json), err, sizeof(err));
    assert_non_null(es);
    struct policy_decision d;
    const char *pol = "permit(principal, action, resource) when { T::\"x\".d == decimal(\"1.5\") "
                      "&& T::\"x\".t == datetime(\"1970-01-02\") };";
    assert_int_equal(decide_text(pol, es, NULL, &d), 0);
    assert_true(d.allow);
    decision_done(&d);
    policy_entities_free(es);
    const char *bad = "[{\"uid\": {\"type\": \"T\", \"id\": \"x\"}, \"parents\": [], \"attrs\": {"
                      " \"d\": {\"__extn\": {\"fn\": \"decimal\", \"arg\": \"1.55555\"}}}}]";
    assert_null(policy_entities_load_text(bad, strlen(bad), err, sizeof(err)));
    assert_non_null(strstr(err, "decimal"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ip_parsing),
        cmocka_unit_test(test_ip_equality_keeps_the_host_part),
        cmocka_unit_test(test_ip_predicates),
        cmocka_unit_test(test_decimal),
        cmocka_unit_test(test_datetime_formats),
        cmocka_unit_test(test_datetime_methods),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_extension_values_in_entities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
