// SPDX-License-Identifier: Apache-2.0
// Scalar parsers for config values: integers, sizes, durations, numbers,
// host:port. Strict: anything not fully consumed is an error.
#include "config/values.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t whylen, const char *fmt, ...)
{
    if (why != NULL && whylen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Reads decimal digits (underscores allowed between digits) from *p into *v.
 * Returns the number of digits read, or -1 on overflow of uint64_t. */
static int read_digits(const char **p, uint64_t *v)
{
    const char *s = *p;
    uint64_t acc = 0;
    int n = 0;
    for (;;) {
        if (isdigit((unsigned char)*s)) {
            unsigned d = (unsigned)(*s - '0');
            if (acc > (UINT64_MAX - d) / 10)
                return -1;
            acc = acc * 10 + d;
            n++;
            s++;
        } else if (*s == '_' && n > 0 && isdigit((unsigned char)s[1])) {
            s++;
        } else {
            break;
        }
    }
    *p = s;
    *v = acc;
    return n;
}

/* Reads "digits[.digits]" as a double; returns -1 when there is no digit,
 * -2 when the integer part overflows. */
static int read_decimal(const char **p, double *v)
{
    const char *s = *p;
    uint64_t ip = 0;
    int n = read_digits(&s, &ip);
    if (n < 0)
        return -2;
    double val = (double)ip;
    if (*s == '.' && isdigit((unsigned char)s[1])) {
        double scale = 0.1;
        for (s++; isdigit((unsigned char)*s); s++) {
            val += (*s - '0') * scale;
            scale /= 10;
        }
    } else if (n == 0) {
        return -1;
    }
    *p = s;
    *v = val;
    return 0;
}

int config_parse_uint(const char *s, uint64_t max, uint64_t *out, char *why, size_t whylen)
{
    const char *p = s;
    uint64_t v;
    if (*p == '-')
        return fail(why, whylen, "must not be negative");
    int n = read_digits(&p, &v);
    if (n < 0)
        return fail(why, whylen, "too large (at most %llu)", (unsigned long long)max);
    if (n == 0 || *p != '\0')
        return fail(why, whylen, "expected an integer, got '%.60s'", s);
    if (v > max)
        return fail(why, whylen, "too large (at most %llu)", (unsigned long long)max);
    *out = v;
    return 0;
}

struct unit {
    const char *name;
    uint64_t mult;
};

static const struct unit size_units[] = {
    {"b", 1},
    {"k", 1000ULL},
    {"kb", 1000ULL},
    {"kib", 1024ULL},
    {"m", 1000ULL * 1000},
    {"mb", 1000ULL * 1000},
    {"mib", 1024ULL * 1024},
    {"g", 1000ULL * 1000 * 1000},
    {"gb", 1000ULL * 1000 * 1000},
    {"gib", 1024ULL * 1024 * 1024},
};

int config_parse_size(const char *s, uint64_t max, uint64_t *out, char *why, size_t whylen)
{
    static const char expected[] = "expected a size like 16KiB, 8MiB, 1MB or a number of bytes";
    const char *p = s;
    double num;
    uint64_t mult = 1;

    if (*p == '-')
        return fail(why, whylen, "must not be negative");
    int r = read_decimal(&p, &num);
    if (r == -2)
        return fail(why, whylen, "too large (at most %llu bytes)", (unsigned long long)max);
    if (r < 0)
        return fail(why, whylen, "%s, got '%.60s'", expected, s);
    while (*p == ' ')
        p++;
    if (*p != '\0') {
        size_t i;
        for (i = 0; i < sizeof size_units / sizeof size_units[0]; i++)
            if (strcasecmp(p, size_units[i].name) == 0)
                break;
        if (i == sizeof size_units / sizeof size_units[0])
            return fail(why, whylen, "%s, got '%.60s'", expected, s);
        mult = size_units[i].mult;
    }
    double bytes = num * (double)mult;
    if (bytes != floor(bytes))
        return fail(why, whylen, "not a whole number of bytes: '%.60s'", s);
    if (!(bytes <= (double)max) || bytes > 9007199254740992.0)
        return fail(why, whylen, "too large (at most %llu bytes)", (unsigned long long)max);
    *out = (uint64_t)bytes;
    if (*out > max)
        return fail(why, whylen, "too large (at most %llu bytes)", (unsigned long long)max);
    return 0;
}

int config_parse_duration_ms(const char *s, uint64_t max, uint64_t *out, char *why, size_t whylen)
{
    static const char expected[] =
        "expected a duration like 500ms, 10s, 5m, 1h or a number of milliseconds";
    const char *p = s;
    uint64_t whole;

    if (*p == '-')
        return fail(why, whylen, "must not be negative");
    /* A bare integer is milliseconds. */
    int n = read_digits(&p, &whole);
    if (n > 0 && *p == '\0') {
        if (whole > max)
            return fail(why, whylen, "too large (at most %llu ms)", (unsigned long long)max);
        *out = whole;
        return 0;
    }
    if (n < 0)
        return fail(why, whylen, "too large (at most %llu ms)", (unsigned long long)max);

    double total = 0;
    p = s;
    do {
        double num, mult;
        int r = read_decimal(&p, &num);
        if (r == -2)
            return fail(why, whylen, "too large (at most %llu ms)", (unsigned long long)max);
        if (r < 0)
            return fail(why, whylen, "%s, got '%.60s'", expected, s);
        while (*p == ' ')
            p++;
        if (p[0] == 'm' && p[1] == 's') {
            mult = 1;
            p += 2;
        } else if (*p == 's') {
            mult = 1000;
            p++;
        } else if (*p == 'm') {
            mult = 60 * 1000;
            p++;
        } else if (*p == 'h') {
            mult = 3600 * 1000;
            p++;
        } else {
            return fail(why, whylen, "%s, got '%.60s'", expected, s);
        }
        total += num * mult;
        if (!(total <= (double)max))
            return fail(why, whylen, "too large (at most %llu ms)", (unsigned long long)max);
    } while (*p != '\0');

    total = floor(total + 0.5);
    if (!(total <= (double)max))
        return fail(why, whylen, "too large (at most %llu ms)", (unsigned long long)max);
    *out = (uint64_t)total;
    return 0;
}

int config_parse_number(const char *s, double *out, char *why, size_t whylen)
{
    const char *p = s;
    if (*p == '-')
        return fail(why, whylen, "must not be negative");
    if (*p == '+')
        p++;
    /* Shape check first: strtod also takes hex, inf and nan. */
    const char *q = p;
    int digits = 0;
    while (isdigit((unsigned char)*q)) {
        q++;
        digits++;
    }
    if (*q == '.')
        for (q++; isdigit((unsigned char)*q); q++)
            digits++;
    if (digits > 0 && (*q == 'e' || *q == 'E')) {
        q++;
        if (*q == '+' || *q == '-')
            q++;
        if (!isdigit((unsigned char)*q))
            digits = 0;
        while (isdigit((unsigned char)*q))
            q++;
    }
    if (digits == 0 || *q != '\0')
        return fail(why, whylen, "expected a number, got '%.60s'", s);
    double v = strtod(p, NULL);
    if (!isfinite(v))
        return fail(why, whylen, "number out of range: '%.60s'", s);
    *out = v;
    return 0;
}

static int host_char(int c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_';
}

static int ipv6_char(int c)
{
    return isxdigit(c) || c == ':' || c == '.' || c == '%' || isalnum(c);
}

int config_parse_hostport(const char *s, char **host, uint16_t *port, char *why, size_t whylen)
{
    static const char expected[] = "expected host:port like 127.0.0.1:8080";
    const char *h, *he, *ps;

    if (s[0] == '[') {
        h = s + 1;
        he = strchr(h, ']');
        if (he == NULL || he == h || he[1] != ':')
            return fail(why, whylen, "%s or [::1]:8080, got '%.60s'", expected, s);
        for (const char *c = h; c < he; c++)
            if (!ipv6_char((unsigned char)*c))
                return fail(why, whylen, "invalid IPv6 address in '%.60s'", s);
        ps = he + 2;
    } else {
        h = s;
        he = strrchr(s, ':');
        if (he == NULL)
            return fail(why, whylen, "%s, got '%.60s'", expected, s);
        if (he == h)
            return fail(why, whylen, "missing host in '%.60s' (use 0.0.0.0%s for all interfaces)",
                        s, he);
        for (const char *c = h; c < he; c++) {
            if (*c == ':')
                return fail(why, whylen, "IPv6 addresses need brackets, like [::1]:8080");
            if (!host_char((unsigned char)*c))
                return fail(why, whylen, "invalid host in '%.60s'", s);
        }
        ps = he + 1;
    }

    uint64_t v = 0;
    const char *p = ps;
    for (; isdigit((unsigned char)*p); p++)
        if (v <= 65535)
            v = v * 10 + (unsigned)(*p - '0');
    if (p == ps || *p != '\0')
        return fail(why, whylen, "invalid port in '%.60s'", s);
    if (v < 1 || v > 65535)
        return fail(why, whylen, "port %.20s out of range 1-65535", ps);

    char *copy = strndup(h, (size_t)(he - h));
    if (copy == NULL)
        return fail(why, whylen, "out of memory");
    *host = copy;
    *port = (uint16_t)v;
    return 0;
}
