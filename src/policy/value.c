// SPDX-License-Identifier: Apache-2.0
// Cedar values: the total order behind ==, sets and records kept sorted for
// binary-search lookups, and printing in Cedar syntax for messages.
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

const struct pset pset_empty = {0};
const struct prec prec_empty = {0};

uint64_t puid_hash(const char *type, size_t tlen, const char *id, size_t ilen)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < tlen; i++)
        h = (h ^ (unsigned char)type[i]) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL; /* separator: no byte of a type name */
    for (size_t i = 0; i < ilen; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
    return h;
}

int pstr_cmp(pstr_t a, pstr_t b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.s, b.s, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return a.len < b.len ? -1 : a.len > b.len;
}

int puid_cmp(const puid_t *a, const puid_t *b)
{
    if (a == b)
        return 0;
    int c = pstr_cmp(a->type, b->type);
    return c ? c : pstr_cmp(a->id, b->id);
}

pstr_t pstr_dup(arena_t *a, const char *s, size_t len)
{
    pstr_t r = {NULL, 0};
    char *p = arena_strndup(a, s ? s : "", s ? len : 0);
    if (p) {
        r.s = p;
        r.len = (uint32_t)len;
    }
    return r;
}

bool pstr_is_action_type(pstr_t type)
{
    static const char word[] = "Action";
    size_t n = sizeof(word) - 1;
    if (type.len < n || memcmp(type.s + type.len - n, word, n) != 0)
        return false;
    return type.len == n || (type.len > n + 1 && type.s[type.len - n - 1] == ':');
}

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

int pval_cmp(const pval_t *a, const pval_t *b)
{
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    switch (a->kind) {
    case PV_BOOL:
        return (int)a->u.b - (int)b->u.b;
    case PV_LONG:
    case PV_DECIMAL:
    case PV_DATETIME:
    case PV_DURATION:
        return cmp_i64(a->u.n, b->u.n);
    case PV_STRING:
        return pstr_cmp(a->u.str, b->u.str);
    case PV_ENTITY:
        return puid_cmp(a->u.uid, b->u.uid);
    case PV_SET: {
        const struct pset *x = a->u.set, *y = b->u.set;
        if (x == y)
            return 0;
        uint32_t n = x->n < y->n ? x->n : y->n;
        for (uint32_t i = 0; i < n; i++) {
            int c = pval_cmp(&x->v[i], &y->v[i]);
            if (c)
                return c;
        }
        return cmp_i64(x->n, y->n);
    }
    case PV_RECORD: {
        const struct prec *x = a->u.rec, *y = b->u.rec;
        if (x == y)
            return 0;
        uint32_t n = x->n < y->n ? x->n : y->n;
        for (uint32_t i = 0; i < n; i++) {
            int c = pstr_cmp(x->f[i].key, y->f[i].key);
            if (!c)
                c = pval_cmp(&x->f[i].val, &y->f[i].val);
            if (c)
                return c;
        }
        return cmp_i64(x->n, y->n);
    }
    case PV_IP: {
        if (a->ip_v6 != b->ip_v6)
            return a->ip_v6 < b->ip_v6 ? -1 : 1;
        int c = memcmp(a->u.ip, b->u.ip, 16);
        if (c)
            return c < 0 ? -1 : 1;
        return cmp_i64(a->ip_prefix, b->ip_prefix);
    }
    }
    return 0;
}

static int cmp_qsort(const void *x, const void *y)
{
    return pval_cmp(x, y);
}

/* Small arrays (the usual record or set in a request) sort faster by
 * insertion than through qsort's merge sort and its allocation. */
#define SMALL_SORT 16

const struct pset *pset_make(arena_t *a, pval_t *items, size_t n)
{
    if (n == 0)
        return &pset_empty;
    if (n > UINT32_MAX)
        return NULL;
    if (n > SMALL_SORT) {
        qsort(items, n, sizeof(*items), cmp_qsort);
    } else {
        for (size_t i = 1; i < n; i++) {
            pval_t x = items[i];
            size_t j = i;
            for (; j > 0 && pval_cmp(&items[j - 1], &x) > 0; j--)
                items[j] = items[j - 1];
            items[j] = x;
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || pval_cmp(&items[k - 1], &items[i]) != 0)
            items[k++] = items[i];
    struct pset *s = arena_alloc(a, sizeof(*s) + k * sizeof(pval_t));
    if (!s)
        return NULL;
    s->n = (uint32_t)k;
    memcpy(s->v, items, k * sizeof(pval_t));
    return s;
}

bool pset_has(const struct pset *s, const pval_t *v)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = pval_cmp(&s->v[mid], v);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static int cmp_field(const void *x, const void *y)
{
    return pstr_cmp(((const struct pfield *)x)->key, ((const struct pfield *)y)->key);
}

const struct prec *prec_make(arena_t *a, struct pfield *f, size_t n, const pstr_t **dup)
{
    *dup = NULL;
    if (n == 0)
        return &prec_empty;
    if (n > UINT32_MAX)
        return NULL;
    if (n > SMALL_SORT) {
        qsort(f, n, sizeof(*f), cmp_field);
    } else {
        for (size_t i = 1; i < n; i++) {
            struct pfield x = f[i];
            size_t j = i;
            for (; j > 0 && pstr_cmp(f[j - 1].key, x.key) > 0; j--)
                f[j] = f[j - 1];
            f[j] = x;
        }
    }
    for (size_t i = 1; i < n; i++)
        if (pstr_cmp(f[i - 1].key, f[i].key) == 0) {
            *dup = &f[i].key;
            return NULL;
        }
    struct prec *r = arena_alloc(a, sizeof(*r) + n * sizeof(struct pfield));
    if (!r)
        return NULL;
    r->n = (uint32_t)n;
    memcpy(r->f, f, n * sizeof(*f));
    return r;
}

const pval_t *prec_get(const struct prec *r, const char *key, size_t len)
{
    pstr_t k = {key, (uint32_t)len};
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = pstr_cmp(r->f[mid].key, k);
        if (c == 0)
            return &r->f[mid].val;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *pkind_name(int kind)
{
    switch (kind) {
    case PV_BOOL:
        return "bool";
    case PV_LONG:
        return "long";
    case PV_STRING:
        return "string";
    case PV_ENTITY:
        return "entity";
    case PV_SET:
        return "set";
    case PV_RECORD:
        return "record";
    case PV_DECIMAL:
        return "decimal";
    case PV_IP:
        return "ipaddr";
    case PV_DATETIME:
        return "datetime";
    case PV_DURATION:
        return "duration";
    }
    return "?";
}

/* ---- printing ------------------------------------------------------------ */

int pstr_print_quoted(buf_t *b, pstr_t s)
{
    int rc = buf_append_lit(b, "\"");
    for (uint32_t i = 0; i < s.len && rc == 0; i++) {
        unsigned char c = (unsigned char)s.s[i];
        switch (c) {
        case '"':
            rc = buf_append_lit(b, "\\\"");
            break;
        case '\\':
            rc = buf_append_lit(b, "\\\\");
            break;
        case '\n':
            rc = buf_append_lit(b, "\\n");
            break;
        case '\r':
            rc = buf_append_lit(b, "\\r");
            break;
        case '\t':
            rc = buf_append_lit(b, "\\t");
            break;
        case '\0':
            rc = buf_append_lit(b, "\\0");
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                rc = buf_appendf(b, "\\u{%x}", c);
            else
                rc = buf_append(b, &s.s[i], 1);
        }
    }
    return rc ? rc : buf_append_lit(b, "\"");
}

int puid_print(buf_t *b, const puid_t *u)
{
    int rc = buf_append(b, u->type.s, u->type.len);
    if (!rc)
        rc = buf_append_lit(b, "::");
    return rc ? rc : pstr_print_quoted(b, u->id);
}

static int print_datetime(buf_t *b, int64_t ms)
{
    /* days-from-civil inverted (Howard Hinnant's algorithm), floor division */
    int64_t days = ms / 86400000, rem = ms % 86400000;
    if (rem < 0) {
        rem += 86400000;
        days--;
    }
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    return buf_appendf(b,
                       "datetime(\"%04" PRId64 "-%02" PRId64 "-%02" PRId64 "T%02" PRId64
                       ":%02" PRId64 ":%02" PRId64 ".%03" PRId64 "Z\")",
                       y, m, d, rem / 3600000, rem / 60000 % 60, rem / 1000 % 60, rem % 1000);
}

static int print_ip(buf_t *b, const pval_t *v)
{
    int rc;
    if (!v->ip_v6) {
        rc = buf_appendf(b, "ip(\"%u.%u.%u.%u", v->u.ip[0], v->u.ip[1], v->u.ip[2], v->u.ip[3]);
    } else {
        rc = buf_append_lit(b, "ip(\"");
        for (int i = 0; i < 8 && rc == 0; i++)
            rc = buf_appendf(b, "%s%x", i ? ":" : "", (v->u.ip[2 * i] << 8) | v->u.ip[2 * i + 1]);
    }
    return rc ? rc : buf_appendf(b, "/%u\")", v->ip_prefix);
}

int pval_print(buf_t *b, const pval_t *v)
{
    int rc = 0;
    switch (v->kind) {
    case PV_BOOL:
        return v->u.b ? buf_append_lit(b, "true") : buf_append_lit(b, "false");
    case PV_LONG:
        return buf_appendf(b, "%" PRId64, v->u.n);
    case PV_STRING:
        return pstr_print_quoted(b, v->u.str);
    case PV_ENTITY:
        return puid_print(b, v->u.uid);
    case PV_SET:
        rc = buf_append_lit(b, "[");
        for (uint32_t i = 0; i < v->u.set->n && rc == 0; i++) {
            if (i)
                rc = buf_append_lit(b, ", ");
            if (!rc)
                rc = pval_print(b, &v->u.set->v[i]);
        }
        return rc ? rc : buf_append_lit(b, "]");
    case PV_RECORD:
        rc = buf_append_lit(b, "{");
        for (uint32_t i = 0; i < v->u.rec->n && rc == 0; i++) {
            if (i)
                rc = buf_append_lit(b, ", ");
            if (!rc)
                rc = pstr_print_quoted(b, v->u.rec->f[i].key);
            if (!rc)
                rc = buf_append_lit(b, ": ");
            if (!rc)
                rc = pval_print(b, &v->u.rec->f[i].val);
        }
        return rc ? rc : buf_append_lit(b, "}");
    case PV_DECIMAL: {
        uint64_t mag = v->u.n < 0 ? 0 - (uint64_t)v->u.n : (uint64_t)v->u.n;
        return buf_appendf(b, "decimal(\"%s%" PRIu64 ".%04" PRIu64 "\")", v->u.n < 0 ? "-" : "",
                           mag / 10000, mag % 10000);
    }
    case PV_IP:
        return print_ip(b, v);
    case PV_DATETIME:
        return print_datetime(b, v->u.n);
    case PV_DURATION:
        return buf_appendf(b, "duration(\"%" PRId64 "ms\")", v->u.n);
    }
    return 0;
}
