// SPDX-License-Identifier: Apache-2.0
// Scalar parsers behind config values: integers, sizes with units, durations,
// numbers and host:port, including the reasons users see when they are wrong.
#include "helpers.h"

#include "config/values.h"

static uint64_t size_of(const char *s)
{
    uint64_t v = 0;
    char why[160];
    int r = config_parse_size(s, UINT64_MAX, &v, why, sizeof why);
    if (r != 0)
        fail_msg("size '%s' rejected: %s", s, why);
    return v;
}

static const char *size_error(const char *s, uint64_t max)
{
    static char why[160];
    uint64_t v;
    assert_int_equal(config_parse_size(s, max, &v, why, sizeof why), -1);
    return why;
}

static uint64_t ms_of(const char *s)
{
    uint64_t v = 0;
    char why[160];
    int r = config_parse_duration_ms(s, UINT32_MAX, &v, why, sizeof why);
    if (r != 0)
        fail_msg("duration '%s' rejected: %s", s, why);
    return v;
}

static const char *duration_error(const char *s)
{
    static char why[160];
    uint64_t v;
    assert_int_equal(config_parse_duration_ms(s, UINT32_MAX, &v, why, sizeof why), -1);
    return why;
}

static void test_uint_accepts_digits_and_underscores(void **state)
{
    uint64_t v;
    char why[160];
    assert_int_equal(config_parse_uint("0", 10, &v, why, sizeof why), 0);
    assert_int_equal(v, 0);
    assert_int_equal(config_parse_uint("10_000", 100000, &v, why, sizeof why), 0);
    assert_int_equal(v, 10000);
    assert_int_equal(config_parse_uint("18446744073709551615", UINT64_MAX, &v, why, sizeof why), 0);
    assert_true(v == UINT64_MAX);
}

static void test_uint_rejects_negative_junk_and_overflow(void **state)
{
    uint64_t v;
    char why[160];
    assert_int_equal(config_parse_uint("-1", 10, &v, why, sizeof why), -1);
    assert_string_equal(why, "must not be negative");
    assert_int_equal(config_parse_uint("1.5", 10, &v, why, sizeof why), -1);
    assert_string_equal(why, "expected an integer, got '1.5'");
    assert_int_equal(config_parse_uint("", 10, &v, why, sizeof why), -1);
    assert_int_equal(config_parse_uint("_1", 10, &v, why, sizeof why), -1);
    assert_int_equal(config_parse_uint("1_", 10, &v, why, sizeof why), -1);
    assert_int_equal(config_parse_uint("0x10", 100, &v, why, sizeof why), -1);
    assert_int_equal(config_parse_uint("11", 10, &v, why, sizeof why), -1);
    assert_string_equal(why, "too large (at most 10)");
    assert_int_equal(config_parse_uint("18446744073709551616", UINT64_MAX, &v, why, sizeof why),
                     -1);
    assert_string_equal(why, "too large (at most 18446744073709551615)");
}

static void test_size_units_binary_and_decimal(void **state)
{
    assert_int_equal(size_of("4096"), 4096);
    assert_int_equal(size_of("16KiB"), 16384);
    assert_int_equal(size_of("8MiB"), 8 * 1024 * 1024);
    assert_int_equal(size_of("1MB"), 1000000);
    assert_int_equal(size_of("1GiB"), 1024ULL * 1024 * 1024);
    assert_int_equal(size_of("2GB"), 2000000000ULL);
    assert_int_equal(size_of("3K"), 3000);
    assert_int_equal(size_of("10B"), 10);
    assert_int_equal(size_of("8 mib"), 8 * 1024 * 1024);
    assert_int_equal(size_of("1.5KiB"), 1536);
    assert_int_equal(size_of("0"), 0);
}

static void test_size_rejects_bad_values(void **state)
{
    assert_string_equal(size_error("8XB", UINT64_MAX),
                        "expected a size like 16KiB, 8MiB, 1MB or a number of bytes, got '8XB'");
    assert_string_equal(size_error("MiB", UINT64_MAX),
                        "expected a size like 16KiB, 8MiB, 1MB or a number of bytes, got 'MiB'");
    assert_string_equal(size_error("-1KiB", UINT64_MAX), "must not be negative");
    assert_string_equal(size_error("1.5", UINT64_MAX), "not a whole number of bytes: '1.5'");
    assert_string_equal(size_error("5GiB", UINT32_MAX), "too large (at most 4294967295 bytes)");
    assert_string_equal(size_error("99999999999999999999", UINT64_MAX),
                        "too large (at most 18446744073709551615 bytes)");
    assert_string_equal(size_error("20000000GiB", UINT64_MAX),
                        "too large (at most 18446744073709551615 bytes)");
}

static void test_duration_units(void **state)
{
    assert_int_equal(ms_of("250"), 250);
    assert_int_equal(ms_of("500ms"), 500);
    assert_int_equal(ms_of("10s"), 10000);
    assert_int_equal(ms_of("5m"), 300000);
    assert_int_equal(ms_of("1h"), 3600000);
    assert_int_equal(ms_of("1m30s"), 90000);
    assert_int_equal(ms_of("1.5s"), 1500);
    assert_int_equal(ms_of("2 s"), 2000);
    assert_int_equal(ms_of("0s"), 0);
    assert_int_equal(ms_of("1h1m1s1ms"), 3661001);
}

static void test_duration_rejects_bad_values(void **state)
{
    assert_string_equal(duration_error("-1s"), "must not be negative");
    assert_string_equal(duration_error("10q"), "expected a duration like 500ms, 10s, 5m, 1h or a "
                                               "number of milliseconds, got '10q'");
    assert_string_equal(duration_error("s"), "expected a duration like 500ms, 10s, 5m, 1h or a "
                                             "number of milliseconds, got 's'");
    assert_string_equal(duration_error("1.5"), "expected a duration like 500ms, 10s, 5m, 1h or a "
                                               "number of milliseconds, got '1.5'");
    assert_string_equal(duration_error("5000000000"), "too large (at most 4294967295 ms)");
    assert_string_equal(duration_error("2000h"), "too large (at most 4294967295 ms)");
    assert_string_equal(duration_error("99999999999999999999s"),
                        "too large (at most 4294967295 ms)");
}

static void test_number(void **state)
{
    double v;
    char why[160];
    assert_int_equal(config_parse_number("0.15", &v, why, sizeof why), 0);
    assert_true(v == 0.15);
    assert_int_equal(config_parse_number("2", &v, why, sizeof why), 0);
    assert_true(v == 2);
    assert_int_equal(config_parse_number("1e-3", &v, why, sizeof why), 0);
    assert_true(v == 1e-3);
    assert_int_equal(config_parse_number(".5", &v, why, sizeof why), 0);
    assert_true(v == 0.5);
    assert_int_equal(config_parse_number("-1", &v, why, sizeof why), -1);
    assert_string_equal(why, "must not be negative");
    assert_int_equal(config_parse_number("nan", &v, why, sizeof why), -1);
    assert_string_equal(why, "expected a number, got 'nan'");
    assert_int_equal(config_parse_number("inf", &v, why, sizeof why), -1);
    assert_int_equal(config_parse_number("0x10", &v, why, sizeof why), -1);
    assert_int_equal(config_parse_number("1e", &v, why, sizeof why), -1);
    assert_int_equal(config_parse_number("1e999", &v, why, sizeof why), -1);
    assert_string_equal(why, "number out of range: '1e999'");
}

static void test_hostport_valid(void **state)
{
    char *host = NULL;
    uint16_t port = 0;
    char why[160];
    assert_int_equal(config_parse_hostport("127.0.0.1:8080", &host, &port, why, sizeof why), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    free(host);
    assert_int_equal(config_parse_hostport("[::1]:9090", &host, &port, why, sizeof why), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9090);
    free(host);
    assert_int_equal(config_parse_hostport("gateway.internal:1", &host, &port, why, sizeof why), 0);
    assert_string_equal(host, "gateway.internal");
    assert_int_equal(port, 1);
    free(host);
    assert_int_equal(config_parse_hostport("0.0.0.0:65535", &host, &port, why, sizeof why), 0);
    assert_int_equal(port, 65535);
    free(host);
}

static void test_hostport_invalid(void **state)
{
    char *host = NULL;
    uint16_t port = 0;
    char why[160];
    static const struct {
        const char *in, *why;
    } cases[] = {
        {"localhost", "expected host:port like 127.0.0.1:8080, got 'localhost'"},
        {":8080", "missing host in ':8080' (use 0.0.0.0:8080 for all interfaces)"},
        {"host:0", "port 0 out of range 1-65535"},
        {"host:65536", "port 65536 out of range 1-65535"},
        {"host:123456789012345", "port 123456789012345 out of range 1-65535"},
        {"host:", "invalid port in 'host:'"},
        {"host:80a", "invalid port in 'host:80a'"},
        {"::1:80", "IPv6 addresses need brackets, like [::1]:8080"},
        {"[::1]80", "expected host:port like 127.0.0.1:8080 or [::1]:8080, got '[::1]80'"},
        {"[]:80", "expected host:port like 127.0.0.1:8080 or [::1]:8080, got '[]:80'"},
        {"ho st:80", "invalid host in 'ho st:80'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(config_parse_hostport(cases[i].in, &host, &port, why, sizeof why), -1);
        assert_string_equal(why, cases[i].why);
    }
    assert_null(host);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uint_accepts_digits_and_underscores),
        cmocka_unit_test(test_uint_rejects_negative_junk_and_overflow),
        cmocka_unit_test(test_size_units_binary_and_decimal),
        cmocka_unit_test(test_size_rejects_bad_values),
        cmocka_unit_test(test_duration_units),
        cmocka_unit_test(test_duration_rejects_bad_values),
        cmocka_unit_test(test_number),
        cmocka_unit_test(test_hostport_valid),
        cmocka_unit_test(test_hostport_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
