// SPDX-License-Identifier: Apache-2.0
// Cedar extension types: ipaddr, decimal, datetime and duration — their
// string parsers and their functions/methods, called by the evaluator.
#include <string.h>

#include "policy/internal.h"
#include "core/hex.h"

const struct pfn_info pfn_table[FN__COUNT] = {
    [FN_IP] = {"ip", false, false, 1},
    [FN_DECIMAL] = {"decimal", false, false, 1},
    [FN_DATETIME] = {"datetime", false, false, 1},
    [FN_DURATION] = {"duration", false, false, 1},
    [FN_CONTAINS] = {"contains", true, true, 2},
    [FN_CONTAINS_ALL] = {"containsAll", true, true, 2},
    [FN_CONTAINS_ANY] = {"containsAny", true, true, 2},
    [FN_IS_EMPTY] = {"isEmpty", true, true, 1},
    [FN_HAS_TAG] = {"hasTag", true, true, 2},
    [FN_GET_TAG] = {"getTag", true, true, 2},
    [FN_IS_IPV4] = {"isIpv4", true, false, 1},
    [FN_IS_IPV6] = {"isIpv6", true, false, 1},
    [FN_IS_LOOPBACK] = {"isLoopback", true, false, 1},
    [FN_IS_MULTICAST] = {"isMulticast", true, false, 1},
    [FN_IS_IN_RANGE] = {"isInRange", true, false, 2},
    [FN_LESS_THAN] = {"lessThan", true, false, 2},
    [FN_LESS_THAN_OR_EQUAL] = {"lessThanOrEqual", true, false, 2},
    [FN_GREATER_THAN] = {"greaterThan", true, false, 2},
    [FN_GREATER_THAN_OR_EQUAL] = {"greaterThanOrEqual", true, false, 2},
    [FN_OFFSET] = {"offset", true, false, 2},
    [FN_DURATION_SINCE] = {"durationSince", true, false, 2},
    [FN_TO_DATE] = {"toDate", true, false, 1},
    [FN_TO_TIME] = {"toTime", true, false, 1},
    [FN_TO_MILLISECONDS] = {"toMilliseconds", true, false, 1},
    [FN_TO_SECONDS] = {"toSeconds", true, false, 1},
    [FN_TO_MINUTES] = {"toMinutes", true, false, 1},
    [FN_TO_HOURS] = {"toHours", true, false, 1},
    [FN_TO_DAYS] = {"toDays", true, false, 1},
};

int pfn_lookup(const char *name, size_t len)
{
    for (int i = 0; i < FN__COUNT; i++)
        if (strlen(pfn_table[i].name) == len && memcmp(pfn_table[i].name, name, len) == 0)
            return i;
    return -1;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---- decimal ------------------------------------------------------------ */

/* "-?[0-9]+\.[0-9]{1,4}", scaled by 10^4 with overflow checks; the sign
 * applies to the fraction too ("-0.5" is negative). */
int pext_decimal_parse(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    size_t int_start = i;
    while (i < len && is_digit(s[i]))
        i++;
    if (i == int_start || i >= len || s[i] != '.')
        return -1;
    size_t int_end = i++;
    size_t frac_start = i;
    while (i < len && is_digit(s[i]))
        i++;
    size_t nfrac = i - frac_start;
    if (i != len || nfrac == 0 || nfrac > 4)
        return -1;
    int64_t l = 0;
    for (size_t k = int_start; k < int_end; k++) {
        int d = s[k] - '0';
        if (__builtin_mul_overflow(l, 10, &l))
            return -1;
        if (neg ? __builtin_sub_overflow(l, d, &l) : __builtin_add_overflow(l, d, &l))
            return -1;
    }
    if (__builtin_mul_overflow(l, 10000, &l))
        return -1;
    int64_t r = 0;
    for (size_t k = frac_start; k < frac_start + nfrac; k++)
        r = r * 10 + (s[k] - '0');
    for (size_t k = nfrac; k < 4; k++)
        r *= 10;
    int64_t v;
    if (neg ? __builtin_sub_overflow(l, r, &v) : __builtin_add_overflow(l, r, &v))
        return -1;
    *out = v;
    return 0;
}

/* ---- ipaddr --------------------------------------------------------------- */

/* Decimal without leading zeros, at most maxdigits digits, value <= max. */
static int parse_small(const char *s, size_t len, int maxdigits, unsigned max, unsigned *out)
{
    if (len == 0 || len > (size_t)maxdigits || (len > 1 && s[0] == '0'))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_v4(const char *s, size_t len, uint8_t *addr)
{
    size_t start = 0;
    int part = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            unsigned v;
            if (part >= 4 || parse_small(s + start, i - start, 3, 255, &v))
                return -1;
            addr[part++] = (uint8_t)v;
            start = i + 1;
        }
    }
    return part == 4 ? 0 : -1;
}

/* Groups of 1-4 hex digits separated by ':'; one "::" stands for one or
 * more zero groups. No embedded IPv4, no zone. */
static int read_groups(const char *s, size_t len, size_t *pos, uint16_t *g, int limit)
{
    int n = 0;
    size_t p = *pos;
    while (n < limit) {
        size_t q = p;
        if (n > 0) {
            if (q >= len || s[q] != ':')
                break;
            q++;
        }
        size_t d = q;
        unsigned v = 0;
        while (q < len && q - d < 4 && hex_value(s[q]) >= 0)
            v = v * 16 + (unsigned)hex_value(s[q++]);
        if (q == d)
            break;
        if (q < len && hex_value(s[q]) >= 0)
            return -1; /* a fifth hex digit */
        g[n++] = (uint16_t)v;
        p = q;
    }
    *pos = p;
    return n;
}

static int parse_v6(const char *s, size_t len, uint8_t *addr)
{
    uint16_t head[8] = {0}, tail[8] = {0};
    size_t pos = 0;
    int nh = read_groups(s, len, &pos, head, 8);
    if (nh < 0)
        return -1;
    int nt = 0;
    if (nh < 8) {
        if (pos + 1 >= len || s[pos] != ':' || s[pos + 1] != ':')
            return -1;
        pos += 2;
        nt = read_groups(s, len, &pos, tail, 7 - nh);
        if (nt < 0)
            return -1;
        for (int i = 0; i < nt; i++)
            head[8 - nt + i] = tail[i];
    }
    if (pos != len)
        return -1;
    for (int i = 0; i < 8; i++) {
        addr[2 * i] = (uint8_t)(head[i] >> 8);
        addr[2 * i + 1] = (uint8_t)head[i];
    }
    return 0;
}

int pext_ip_parse(const char *s, size_t len, pval_t *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = PV_IP;
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    bool v6 = memchr(s, ':', alen) != NULL;
    if (v6 ? parse_v6(s, alen, out->u.ip) : parse_v4(s, alen, out->u.ip))
        return -1;
    unsigned max = v6 ? 128 : 32, prefix = max;
    if (slash && parse_small(slash + 1, len - alen - 1, v6 ? 3 : 2, max, &prefix))
        return -1;
    out->ip_v6 = v6;
    out->ip_prefix = (uint8_t)prefix;
    return 0;
}

/* Address bits under `prefix` equal in a and b. */
static bool same_network(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

/* Every address of a's range lies in range's range. */
bool pext_ip_in_range(const pval_t *a, const pval_t *range)
{
    if (a->ip_v6 != range->ip_v6 || range->ip_prefix > a->ip_prefix)
        return false;
    return same_network(a->u.ip, range->u.ip, range->ip_prefix);
}

bool pext_ip_is_loopback(const pval_t *a)
{
    pval_t net = {.kind = PV_IP, .ip_v6 = a->ip_v6};
    if (a->ip_v6) {
        net.u.ip[15] = 1;
        net.ip_prefix = 128;
    } else {
        net.u.ip[0] = 127;
        net.ip_prefix = 8;
    }
    return pext_ip_in_range(a, &net);
}

bool pext_ip_is_multicast(const pval_t *a)
{
    pval_t net = {.kind = PV_IP, .ip_v6 = a->ip_v6};
    if (a->ip_v6) {
        net.u.ip[0] = 0xff;
        net.ip_prefix = 8;
    } else {
        net.u.ip[0] = 224;
        net.ip_prefix = 4;
    }
    return pext_ip_in_range(a, &net);
}

/* ---- datetime ---------------------------------------------------------- */

static int fixed_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* YYYY-MM-DD, optionally followed by Thh:mm:ss[.SSS](Z|(+|-)hhmm). */
int pext_datetime_parse(const char *s, size_t len, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, oh = 0, om = 0;
    if (len < 10 || s[4] != '-' || s[7] != '-' || fixed_digits(s, 4, &y) ||
        fixed_digits(s + 5, 2, &mo) || fixed_digits(s + 8, 2, &d))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return -1;
    int64_t offset_ms = 0;
    if (len > 10) {
        const char *t = s + 10;
        size_t n = len - 10;
        if (n < 10 || t[0] != 'T' || t[3] != ':' || t[6] != ':' || fixed_digits(t + 1, 2, &h) ||
            fixed_digits(t + 4, 2, &mi) || fixed_digits(t + 7, 2, &sec))
            return -1;
        if (h > 23 || mi > 59 || sec > 59)
            return -1;
        t += 9;
        n -= 9;
        if (t[0] == '.') {
            if (n < 4 || fixed_digits(t + 1, 3, &ms))
                return -1;
            t += 4;
            n -= 4;
        }
        if (n == 1 && t[0] == 'Z') {
            /* UTC */
        } else if (n == 5 && (t[0] == '+' || t[0] == '-')) {
            if (fixed_digits(t + 1, 2, &oh) || fixed_digits(t + 3, 2, &om) || oh > 23 || om > 59)
                return -1;
            offset_ms = ((int64_t)oh * 3600000 + (int64_t)om * 60000) * (t[0] == '-' ? -1 : 1);
        } else {
            return -1;
        }
    }
    int64_t days = days_from_civil(y, mo, d);
    *out = days * 86400000 + (int64_t)h * 3600000 + (int64_t)mi * 60000 + (int64_t)sec * 1000 + ms -
           offset_ms;
    return 0;
}

/* ---- duration ----------------------------------------------------------- */

/* -?(N d)?(N h)?(N m)?(N s)?(N ms)?, at least one part, units in order. */
int pext_duration_parse(const char *s, size_t len, int64_t *out)
{
    static const struct {
        const char *unit;
        size_t len;
        int64_t ms;
    } units[] = {
        {"d", 1, 86400000}, {"h", 1, 3600000}, {"m", 1, 60000}, {"s", 1, 1000}, {"ms", 2, 1}};
    size_t i = 0;
    bool neg = false;
    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    __int128 total = 0;
    int next_unit = 0, parts = 0;
    while (i < len) {
        size_t start = i;
        __int128 q = 0;
        while (i < len && is_digit(s[i])) {
            q = q * 10 + (s[i] - '0');
            if (q > (__int128)INT64_MAX + 1)
                return -1;
            i++;
        }
        if (i == start)
            return -1;
        int u = -1;
        for (int k = next_unit; k < 5 && u < 0; k++) {
            if (len - i >= units[k].len && memcmp(s + i, units[k].unit, units[k].len) == 0) {
                /* "m" must not be the start of "ms" */
                if (k == 2 && len - i >= 2 && s[i + 1] == 's')
                    continue;
                u = k;
            }
        }
        if (u < 0)
            return -1;
        i += units[u].len;
        next_unit = u + 1;
        total += q * units[u].ms;
        if (total > (__int128)INT64_MAX + 1)
            return -1;
        parts++;
    }
    if (parts == 0)
        return -1;
    if (neg)
        total = -total;
    if (total > INT64_MAX || total < INT64_MIN)
        return -1;
    *out = (int64_t)total;
    return 0;
}

/* ---- functions -------------------------------------------------------- */

static int want(const pval_t *v, int kind, const char **err, const char *msg)
{
    if (v->kind == kind)
        return 0;
    *err = msg;
    return -1;
}

static void set_bool(pval_t *out, bool b)
{
    memset(out, 0, sizeof(*out));
    out->kind = PV_BOOL;
    out->u.b = b;
}

static void set_num(pval_t *out, int kind, int64_t n)
{
    memset(out, 0, sizeof(*out));
    out->kind = (uint8_t)kind;
    out->u.n = n;
}

static int construct(int fn, const pval_t *arg, pval_t *out, const char **err)
{
    if (want(arg, PV_STRING, err, "type error: extension constructor expects a string"))
        return -1;
    const char *s = arg->u.str.s;
    size_t n = arg->u.str.len;
    int64_t v;
    switch (fn) {
    case FN_IP:
        if (pext_ip_parse(s, n, out)) {
            *err = "invalid IP address or range";
            return -1;
        }
        return 0;
    case FN_DECIMAL:
        if (pext_decimal_parse(s, n, &v)) {
            *err = "invalid decimal value or overflow";
            return -1;
        }
        set_num(out, PV_DECIMAL, v);
        return 0;
    case FN_DATETIME:
        if (pext_datetime_parse(s, n, &v)) {
            *err = "invalid datetime value";
            return -1;
        }
        set_num(out, PV_DATETIME, v);
        return 0;
    default:
        if (pext_duration_parse(s, n, &v)) {
            *err = "invalid duration value or overflow";
            return -1;
        }
        set_num(out, PV_DURATION, v);
        return 0;
    }
}

int pext_call(int fn, const pval_t *a, size_t nargs, pval_t *out, const char **err)
{
    if (fn < 0 || fn >= FN__COUNT || nargs != pfn_table[fn].nargs) {
        *err = "wrong number of arguments to extension function";
        return -1;
    }
    const int64_t day = 86400000;
    int64_t v;
    switch (fn) {
    case FN_IP:
    case FN_DECIMAL:
    case FN_DATETIME:
    case FN_DURATION:
        return construct(fn, &a[0], out, err);
    case FN_IS_IPV4:
    case FN_IS_IPV6:
    case FN_IS_LOOPBACK:
    case FN_IS_MULTICAST:
        if (want(&a[0], PV_IP, err, "type error: expected an ipaddr"))
            return -1;
        set_bool(out, fn == FN_IS_IPV4       ? !a[0].ip_v6
                      : fn == FN_IS_IPV6     ? a[0].ip_v6
                      : fn == FN_IS_LOOPBACK ? pext_ip_is_loopback(&a[0])
                                             : pext_ip_is_multicast(&a[0]));
        return 0;
    case FN_IS_IN_RANGE:
        if (want(&a[0], PV_IP, err, "type error: expected an ipaddr") ||
            want(&a[1], PV_IP, err, "type error: expected an ipaddr"))
            return -1;
        set_bool(out, pext_ip_in_range(&a[0], &a[1]));
        return 0;
    case FN_LESS_THAN:
    case FN_LESS_THAN_OR_EQUAL:
    case FN_GREATER_THAN:
    case FN_GREATER_THAN_OR_EQUAL:
        if (want(&a[0], PV_DECIMAL, err, "type error: expected a decimal") ||
            want(&a[1], PV_DECIMAL, err, "type error: expected a decimal"))
            return -1;
        set_bool(out, fn == FN_LESS_THAN            ? a[0].u.n < a[1].u.n
                      : fn == FN_LESS_THAN_OR_EQUAL ? a[0].u.n <= a[1].u.n
                      : fn == FN_GREATER_THAN       ? a[0].u.n > a[1].u.n
                                                    : a[0].u.n >= a[1].u.n);
        return 0;
    case FN_OFFSET:
        if (want(&a[0], PV_DATETIME, err, "type error: expected a datetime") ||
            want(&a[1], PV_DURATION, err, "type error: expected a duration"))
            return -1;
        if (__builtin_add_overflow(a[0].u.n, a[1].u.n, &v)) {
            *err = "overflow in datetime offset";
            return -1;
        }
        set_num(out, PV_DATETIME, v);
        return 0;
    case FN_DURATION_SINCE:
        if (want(&a[0], PV_DATETIME, err, "type error: expected a datetime") ||
            want(&a[1], PV_DATETIME, err, "type error: expected a datetime"))
            return -1;
        if (__builtin_sub_overflow(a[0].u.n, a[1].u.n, &v)) {
            *err = "overflow in durationSince";
            return -1;
        }
        set_num(out, PV_DURATION, v);
        return 0;
    case FN_TO_DATE: {
        if (want(&a[0], PV_DATETIME, err, "type error: expected a datetime"))
            return -1;
        int64_t q = a[0].u.n / day;
        if (a[0].u.n % day < 0)
            q--;
        if (__builtin_mul_overflow(q, day, &v)) {
            *err = "overflow in toDate";
            return -1;
        }
        set_num(out, PV_DATETIME, v);
        return 0;
    }
    case FN_TO_TIME: {
        if (want(&a[0], PV_DATETIME, err, "type error: expected a datetime"))
            return -1;
        int64_t r = a[0].u.n % day;
        set_num(out, PV_DURATION, r < 0 ? r + day : r);
        return 0;
    }
    case FN_TO_MILLISECONDS:
    case FN_TO_SECONDS:
    case FN_TO_MINUTES:
    case FN_TO_HOURS:
    case FN_TO_DAYS: {
        if (want(&a[0], PV_DURATION, err, "type error: expected a duration"))
            return -1;
        static const int64_t div[] = {1, 1000, 60000, 3600000, 86400000};
        set_num(out, PV_LONG, a[0].u.n / div[fn - FN_TO_MILLISECONDS]);
        return 0;
    }
    }
    *err = "not an extension function";
    return -1;
}
