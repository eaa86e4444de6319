// SPDX-License-Identifier: Apache-2.0
// A small JSON reader for entity, context and test files: strict RFC 8259,
// strings with explicit lengths (Cedar ids and keys may contain NUL, which
// jansson refuses in keys), duplicate keys refused, nodes in an arena.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

struct jp {
    arena_t *a;
    const char *p, *start, *end;
    const char *err;
    const char *err_at;
    int depth;
    bool last_dup_wins; /* duplicate keys: keep the last instead of refusing */
};

static int jerr(struct jp *j, const char *msg)
{
    if (!j->err) {
        j->err = msg;
        j->err_at = j->p;
    }
    return -1;
}

static void ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static struct pjnode *jnode(struct jp *j, int type)
{
    struct pjnode *n = arena_alloc(j->a, sizeof(*n));
    if (!n) {
        jerr(j, "out of memory");
        return NULL;
    }
    memset(n, 0, sizeof(*n));
    n->type = (uint8_t)type;
    return n;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Validates one UTF-8 sequence at s; its length, or 0 when invalid. */
static size_t utf8_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

static int jstring(struct jp *j, pstr_t *out)
{
    j->p++; /* " */
    const char *s = j->p;
    /* fast path: no escapes, point into a copy of the run */
    size_t cap = 0;
    while (s + cap < j->end && s[cap] != '"' && s[cap] != '\\')
        cap++;
    size_t len_guess = cap;
    while (s + len_guess < j->end && s[len_guess] != '"')
        len_guess += s[len_guess] == '\\' ? 2 : 1;
    char *o = arena_alloc(j->a, len_guess + 1);
    if (!o)
        return jerr(j, "out of memory");
    size_t k = 0;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            o[k] = '\0';
            out->s = o;
            out->len = (uint32_t)k;
            return 0;
        }
        if (c < 0x20)
            return jerr(j, "control character in string");
        if (c != '\\') {
            size_t n = utf8_len((const unsigned char *)j->p, (const unsigned char *)j->end);
            if (!n)
                return jerr(j, "invalid UTF-8 in string");
            memcpy(o + k, j->p, n);
            k += n;
            j->p += n;
            continue;
        }
        if (j->p + 1 >= j->end)
            return jerr(j, "unterminated string");
        char e = j->p[1];
        j->p += 2;
        switch (e) {
        case '"':
            o[k++] = '"';
            break;
        case '\\':
            o[k++] = '\\';
            break;
        case '/':
            o[k++] = '/';
            break;
        case 'b':
            o[k++] = '\b';
            break;
        case 'f':
            o[k++] = '\f';
            break;
        case 'n':
            o[k++] = '\n';
            break;
        case 'r':
            o[k++] = '\r';
            break;
        case 't':
            o[k++] = '\t';
            break;
        case 'u': {
            unsigned cp, lo;
            if (j->end - j->p < 4 || hex4(j->p, &cp))
                return jerr(j, "invalid \\u escape");
            j->p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &lo) ||
                    lo < 0xdc00 || lo > 0xdfff)
                    return jerr(j, "unpaired surrogate in \\u escape");
                j->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                return jerr(j, "unpaired surrogate in \\u escape");
            }
            /* a \u escape takes 6 bytes and yields at most 4 */
            if (cp < 0x80) {
                o[k++] = (char)cp;
            } else if (cp < 0x800) {
                o[k++] = (char)(0xc0 | (cp >> 6));
                o[k++] = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                o[k++] = (char)(0xe0 | (cp >> 12));
                o[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                o[k++] = (char)(0x80 | (cp & 0x3f));
            } else {
                o[k++] = (char)(0xf0 | (cp >> 18));
                o[k++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                o[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                o[k++] = (char)(0x80 | (cp & 0x3f));
            }
            break;
        }
        default:
            return jerr(j, "invalid escape in string");
        }
    }
    return jerr(j, "unterminated string");
}

static int jnumber(struct jp *j, struct pjnode *n)
{
    const char *s = j->p;
    bool neg = false, is_float = false;
    if (j->p < j->end && *j->p == '-') {
        neg = true;
        j->p++;
    }
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return jerr(j, "invalid number");
    if (*j->p == '0' && j->p + 1 < j->end && j->p[1] >= '0' && j->p[1] <= '9')
        return jerr(j, "leading zero in number");
    uint64_t mag = 0;
    bool over = false;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        unsigned d = (unsigned)(*j->p++ - '0');
        if (mag > (UINT64_MAX - d) / 10)
            over = true;
        else
            mag = mag * 10 + d;
    }
    if (j->p < j->end && *j->p == '.') {
        is_float = true;
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return jerr(j, "invalid number");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        is_float = true;
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return jerr(j, "invalid number");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (!is_float && !over && (neg ? mag <= (UINT64_C(1) << 63) : mag <= INT64_MAX)) {
        n->type = PJ_INT;
        n->i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    } else {
        /* a float, or an integer beyond int64: not a Cedar value */
        n->type = PJ_FLOAT;
        n->s.s = s;
        n->s.len = (uint32_t)(j->p - s);
    }
    return 0;
}

static int cmp_keys(const void *x, const void *y)
{
    return pstr_cmp(*(const pstr_t *)x, *(const pstr_t *)y);
}

static struct pjnode *jvalue(struct jp *j);

struct keypos {
    pstr_t key;
    uint32_t pos;
};

static int cmp_keypos(const void *x, const void *y)
{
    const struct keypos *a = x, *b = y;
    int c = pstr_cmp(a->key, b->key);
    return c ? c : (a->pos < b->pos ? -1 : a->pos > b->pos);
}

/* Drops every member whose key appears again later, keeping order. */
static int keep_last(struct pjnode *n)
{
    struct keypos *kp = malloc(n->n * sizeof(*kp));
    bool *drop = calloc(n->n, sizeof(*drop));
    if (!kp || !drop) {
        free(kp);
        free(drop);
        return -1;
    }
    for (uint32_t i = 0; i < n->n; i++)
        kp[i] = (struct keypos){n->keys[i], i};
    qsort(kp, n->n, sizeof(*kp), cmp_keypos);
    for (uint32_t i = 0; i + 1 < n->n; i++)
        if (pstr_cmp(kp[i].key, kp[i + 1].key) == 0)
            drop[kp[i].pos] = true;
    uint32_t m = 0;
    for (uint32_t i = 0; i < n->n; i++)
        if (!drop[i]) {
            n->keys[m] = n->keys[i];
            n->items[m++] = n->items[i];
        }
    n->n = m;
    free(kp);
    free(drop);
    return 0;
}

static struct pjnode *jcompound(struct jp *j, bool object)
{
    struct pjnode *n = jnode(j, object ? PJ_OBJECT : PJ_ARRAY);
    if (!n)
        return NULL;
    if (++j->depth > 512) {
        jerr(j, "JSON nested too deeply");
        return NULL;
    }
    j->p++;
    size_t cap = 0, cnt = 0;
    struct pjnode **items = NULL;
    pstr_t *keys = NULL;
    ws(j);
    char close = object ? '}' : ']';
    if (j->p < j->end && *j->p == close) {
        j->p++;
        goto done;
    }
    for (;;) {
        pstr_t key = {0};
        ws(j);
        if (object) {
            if (j->p >= j->end || *j->p != '"') {
                jerr(j, "expected a string key");
                goto fail;
            }
            if (jstring(j, &key))
                goto fail;
            ws(j);
            if (j->p >= j->end || *j->p != ':') {
                jerr(j, "expected ':'");
                goto fail;
            }
            j->p++;
        }
        struct pjnode *v = jvalue(j);
        if (!v)
            goto fail;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 8;
            struct pjnode **ni = realloc(items, cap * sizeof(*ni));
            if (ni)
                items = ni;
            pstr_t *nk = ni && object ? realloc(keys, cap * sizeof(*nk)) : keys;
            if (nk)
                keys = nk;
            if (!ni || (object && !nk)) {
                jerr(j, "out of memory");
                goto fail;
            }
        }
        items[cnt] = v;
        if (object)
            keys[cnt] = key;
        cnt++;
        ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            break;
        }
        jerr(j, object ? "expected ',' or '}'" : "expected ',' or ']'");
        goto fail;
    }
done:
    n->n = (uint32_t)cnt;
    n->items = arena_alloc(j->a, (cnt ? cnt : 1) * sizeof(*n->items));
    if (object)
        n->keys = arena_alloc(j->a, (cnt ? cnt : 1) * sizeof(*n->keys));
    if (!n->items || (object && !n->keys)) {
        jerr(j, "out of memory");
        goto fail;
    }
    if (cnt)
        memcpy(n->items, items, cnt * sizeof(*items));
    if (object && cnt) {
        memcpy(n->keys, keys, cnt * sizeof(*keys));
        /* duplicate keys make the meaning depend on the reader: refuse, or
         * (request contexts, as the reference reads them) keep the last */
        pstr_t *sorted = keys;
        qsort(sorted, cnt, sizeof(*sorted), cmp_keys);
        bool dups = false;
        for (size_t i = 1; i < cnt && !dups; i++)
            dups = pstr_cmp(sorted[i - 1], sorted[i]) == 0;
        if (dups && !j->last_dup_wins) {
            jerr(j, "duplicate key in JSON object");
            goto fail;
        }
        if (dups && keep_last(n) != 0) {
            jerr(j, "out of memory");
            goto fail;
        }
    }
    free(items);
    free(keys);
    j->depth--;
    return n;
fail:
    free(items);
    free(keys);
    return NULL;
}

static struct pjnode *jvalue(struct jp *j)
{
    ws(j);
    if (j->p >= j->end) {
        jerr(j, "unexpected end of JSON");
        return NULL;
    }
    struct pjnode *n;
    switch (*j->p) {
    case '{':
        return jcompound(j, true);
    case '[':
        return jcompound(j, false);
    case '"':
        n = jnode(j, PJ_STRING);
        return n && jstring(j, &n->s) == 0 ? n : NULL;
    case 't':
    case 'f':
    case 'n': {
        static const char *const words[] = {"true", "false", "null"};
        for (int i = 0; i < 3; i++) {
            size_t l = strlen(words[i]);
            if ((size_t)(j->end - j->p) >= l && memcmp(j->p, words[i], l) == 0) {
                j->p += l;
                n = jnode(j, i == 2 ? PJ_NULL : PJ_BOOL);
                if (n)
                    n->b = i == 0;
                return n;
            }
        }
        jerr(j, "invalid literal");
        return NULL;
    }
    default:
        n = jnode(j, PJ_INT);
        return n && jnumber(j, n) == 0 ? n : NULL;
    }
}

int pj_parse(arena_t *a, const char *text, size_t len, const struct pjnode **out, char *err,
             size_t err_len)
{
    return pj_parse_ex(a, text, len, false, out, err, err_len);
}

int pj_parse_ex(arena_t *a, const char *text, size_t len, bool last_dup_wins,
                const struct pjnode **out, char *err, size_t err_len)
{
    struct jp j = {
        .a = a, .p = text, .start = text, .end = text + len, .last_dup_wins = last_dup_wins};
    const struct pjnode *n = jvalue(&j);
    if (n) {
        ws(&j);
        if (j.p != j.end) {
            jerr(&j, "trailing characters after JSON value");
            n = NULL;
        }
    }
    if (!n) {
        unsigned line = 1, col = 1;
        for (const char *q = text; q < j.err_at && q < j.end; q++) {
            if (*q == '\n') {
                line++;
                col = 1;
            } else if (((unsigned char)*q & 0xc0) != 0x80) {
                col++;
            }
        }
        snprintf(err, err_len, "%u:%u: %s", line, col, j.err ? j.err : "invalid JSON");
        return -1;
    }
    *out = n;
    return 0;
}

const struct pjnode *pj_get(const struct pjnode *obj, const char *key)
{
    if (!obj || obj->type != PJ_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < obj->n; i++)
        if (obj->keys[i].len == kl && memcmp(obj->keys[i].s, key, kl) == 0)
            return obj->items[i];
    return NULL;
}

const struct pjnode *pj_from_jansson(arena_t *a, const json_t *v, int depth)
{
    struct jp j = {.a = a};
    if (!v || depth > 512)
        return NULL;
    struct pjnode *n;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        n = jnode(&j, PJ_OBJECT);
        size_t cnt = json_object_size(v), i = 0;
        if (!n || !(n->items = arena_alloc(a, (cnt ? cnt : 1) * sizeof(*n->items))) ||
            !(n->keys = arena_alloc(a, (cnt ? cnt : 1) * sizeof(*n->keys))))
            return NULL;
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val)
        {
            n->keys[i] = (pstr_t){key, (uint32_t)strlen(key)};
            if (!(n->items[i] = (struct pjnode *)pj_from_jansson(a, val, depth + 1)))
                return NULL;
            i++;
        }
        n->n = (uint32_t)i;
        return n;
    }
    case JSON_ARRAY: {
        n = jnode(&j, PJ_ARRAY);
        size_t cnt = json_array_size(v);
        if (!n || !(n->items = arena_alloc(a, (cnt ? cnt : 1) * sizeof(*n->items))))
            return NULL;
        for (size_t i = 0; i < cnt; i++)
            if (!(n->items[i] =
                      (struct pjnode *)pj_from_jansson(a, json_array_get(v, i), depth + 1)))
                return NULL;
        n->n = (uint32_t)cnt;
        return n;
    }
    case JSON_STRING:
        n = jnode(&j, PJ_STRING);
        if (n)
            n->s = (pstr_t){json_string_value(v), (uint32_t)json_string_length(v)};
        return n;
    case JSON_INTEGER:
        n = jnode(&j, PJ_INT);
        if (n)
            n->i = json_integer_value(v);
        return n;
    case JSON_REAL:
        n = jnode(&j, PJ_FLOAT);
        if (n)
            n->s = (pstr_t){"<real>", 6};
        return n;
    case JSON_TRUE:
    case JSON_FALSE:
        n = jnode(&j, PJ_BOOL);
        if (n)
            n->b = json_is_true(v);
        return n;
    case JSON_NULL:
        return jnode(&j, PJ_NULL);
    }
    return NULL;
}
