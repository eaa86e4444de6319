// SPDX-License-Identifier: Apache-2.0
// Validating JSON scanner without allocation (see json.h).
#include "core/json.h"
#include "core/hex.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

struct scan {
    const unsigned char *s, *end;
    const unsigned char *cur;
    const char *msg;
    /* optional: members of the root object to pick up while validating */
    const char *const *keys;
    size_t nkeys;
    const size_t *klen; /* strlen of each key */
    struct json_span *out;
    int dup;
    size_t dup_index;
};

static int name_equals(const struct json_span *name, const char *key, size_t klen);
static void pick_member(struct scan *sc, const struct json_span *name, const struct json_span *val);

static int fail(struct scan *sc, const char *msg)
{
    if (!sc->msg)
        sc->msg = msg;
    return -1;
}

static void skip_ws(struct scan *sc)
{
    while (sc->cur < sc->end &&
           (*sc->cur == ' ' || *sc->cur == '\t' || *sc->cur == '\n' || *sc->cur == '\r'))
        sc->cur++;
}

static int read_hex4(const unsigned char *p, const unsigned char *end, unsigned *out)
{
    if (end - p < 4)
        return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

/* Length of a valid UTF-8 sequence starting at p (multi-byte only), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n;
    unsigned min;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, min = 0x80, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, min = 0x800, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Non-zero when one of the 8 bytes in x needs attention inside a string: a
 * quote, a backslash, a control character or a non-ASCII byte. */
static inline uint64_t plain8(uint64_t x)
{
    uint64_t quote = x ^ (ONES * '"');
    uint64_t bslash = x ^ (ONES * '\\');
    uint64_t zero_q = (quote - ONES) & ~quote;
    uint64_t zero_b = (bslash - ONES) & ~bslash;
    uint64_t ctrl = (x - ONES * 0x20) & ~x;
    return (zero_q | zero_b | ctrl | x) & HIGHS;
}

static int scan_string(struct scan *sc)
{
    sc->cur++; /* opening quote */
    for (;;) {
#ifdef __SSE2__
        /* fast path over plain ASCII, sixteen bytes at a time: a signed
         * compare with 0x20 catches control bytes and non-ASCII at once */
        while (sc->end - sc->cur >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)sc->cur);
            __m128i hit = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                             _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
            int m = _mm_movemask_epi8(hit);
            if (m) {
                sc->cur += __builtin_ctz((unsigned)m);
                break;
            }
            sc->cur += 16;
        }
#endif
        /* eight bytes at a time */
        while (sc->end - sc->cur >= 8) {
            uint64_t x;
            memcpy(&x, sc->cur, 8);
            if (plain8(x))
                break;
            sc->cur += 8;
        }
        while (sc->cur < sc->end && *sc->cur >= 0x20 && *sc->cur < 0x80 && *sc->cur != '"' &&
               *sc->cur != '\\')
            sc->cur++;
        if (sc->cur >= sc->end)
            return fail(sc, "unterminated string");
        unsigned char c = *sc->cur;
        if (c == '"') {
            sc->cur++;
            return 0;
        }
        if (c < 0x20)
            return fail(sc, "control character in string");
        if (c == '\\') {
            if (sc->end - sc->cur < 2)
                return fail(sc, "unterminated string");
            unsigned char e = sc->cur[1];
            if (e == 'u') {
                unsigned v;
                if (read_hex4(sc->cur + 2, sc->end, &v) < 0)
                    return fail(sc, "invalid \\u escape");
                sc->cur += 6;
                if (v >= 0xD800 && v <= 0xDBFF) {
                    unsigned lo;
                    if (sc->end - sc->cur < 6 || sc->cur[0] != '\\' || sc->cur[1] != 'u' ||
                        read_hex4(sc->cur + 2, sc->end, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                        return fail(sc, "unpaired surrogate in \\u escape");
                    sc->cur += 6;
                } else if (v >= 0xDC00 && v <= 0xDFFF) {
                    return fail(sc, "unpaired surrogate in \\u escape");
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == 0)
                return fail(sc, "invalid escape in string");
            sc->cur += 2;
            continue;
        }
        size_t n = utf8_len(sc->cur, sc->end);
        if (!n)
            return fail(sc, "invalid UTF-8 in string");
        sc->cur += n;
    }
}

static int scan_number(struct scan *sc)
{
    const unsigned char *p = sc->cur, *end = sc->end;
    if (p < end && *p == '-')
        p++;
    if (p >= end)
        return fail(sc, "invalid number");
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return fail(sc, "invalid number");
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return fail(sc, "invalid number");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return fail(sc, "invalid number");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    sc->cur = p;
    return 0;
}

static int scan_literal(struct scan *sc, const char *lit, size_t n)
{
    if ((size_t)(sc->end - sc->cur) < n || memcmp(sc->cur, lit, n) != 0)
        return fail(sc, "invalid literal");
    sc->cur += n;
    return 0;
}

static int scan_value(struct scan *sc, int depth, struct json_span *out);

static int scan_container(struct scan *sc, int depth, int is_obj)
{
    if (depth >= JSON_MAX_DEPTH)
        return fail(sc, "nesting too deep");
    sc->cur++;
    skip_ws(sc);
    unsigned char close = is_obj ? '}' : ']';
    if (sc->cur < sc->end && *sc->cur == close) {
        sc->cur++;
        return 0;
    }
    int pick = depth == 0 && is_obj && sc->keys;
    for (;;) {
        struct json_span name, val;
        if (is_obj) {
            skip_ws(sc);
            if (sc->cur >= sc->end || *sc->cur != '"')
                return fail(sc, "expected a string as member name");
            name.p = (const char *)sc->cur;
            if (scan_string(sc) < 0)
                return -1;
            name.len = (size_t)((const char *)sc->cur - name.p);
            name.kind = JS_STRING;
            skip_ws(sc);
            if (sc->cur >= sc->end || *sc->cur != ':')
                return fail(sc, "expected ':' after member name");
            sc->cur++;
        }
        if (scan_value(sc, depth + 1, pick ? &val : NULL) < 0)
            return -1;
        if (pick)
            pick_member(sc, &name, &val);
        skip_ws(sc);
        if (sc->cur >= sc->end)
            return fail(sc, is_obj ? "unterminated object" : "unterminated array");
        if (*sc->cur == ',') {
            sc->cur++;
            continue;
        }
        if (*sc->cur == close) {
            sc->cur++;
            return 0;
        }
        return fail(sc, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int scan_value(struct scan *sc, int depth, struct json_span *out)
{
    skip_ws(sc);
    if (sc->cur >= sc->end)
        return fail(sc, "unexpected end of input");
    const unsigned char *start = sc->cur;
    enum json_kind kind;
    int rc;
    switch (*sc->cur) {
    case '{': kind = JS_OBJECT; rc = scan_container(sc, depth, 1); break;
    case '[': kind = JS_ARRAY; rc = scan_container(sc, depth, 0); break;
    case '"': kind = JS_STRING; rc = scan_string(sc); break;
    case 't': kind = JS_TRUE; rc = scan_literal(sc, "true", 4); break;
    case 'f': kind = JS_FALSE; rc = scan_literal(sc, "false", 5); break;
    case 'n': kind = JS_NULL; rc = scan_literal(sc, "null", 4); break;
    default:
        if (*sc->cur == '-' || (*sc->cur >= '0' && *sc->cur <= '9')) {
            kind = JS_NUMBER;
            rc = scan_number(sc);
        } else {
            return fail(sc, "unexpected character");
        }
    }
    if (rc < 0)
        return -1;
    if (out) {
        out->p = (const char *)start;
        out->len = (size_t)(sc->cur - start);
        out->kind = kind;
    }
    return 0;
}

static void pick_member(struct scan *sc, const struct json_span *name, const struct json_span *val)
{
    for (size_t i = 0; i < sc->nkeys; i++) {
        if (!name_equals(name, sc->keys[i], sc->klen[i]))
            continue;
        if (sc->out[i].kind != JS_NONE && !sc->dup) {
            sc->dup = 1;
            sc->dup_index = i;
        }
        sc->out[i] = *val;
    }
}

static int validate(struct scan *sc, struct json_span *root, struct json_error *err);

int json_validate(const char *s, size_t len, struct json_span *root, struct json_error *err)
{
    struct scan sc = {.s = (const unsigned char *)s,
                      .end = (const unsigned char *)s + len,
                      .cur = (const unsigned char *)s};
    return validate(&sc, root, err);
}

int json_validate_lookup(const char *s, size_t len, struct json_span *root,
                         const char *const *keys, size_t nkeys, struct json_span *out,
                         size_t *dup_index, struct json_error *err)
{
    size_t klen[16];
    if (nkeys > 16) { /* more than any caller reads; refused rather than ignored */
        if (err)
            *err = (struct json_error){0, 1, 1, "too many keys to look up"};
        return -1;
    }
    for (size_t i = 0; i < nkeys; i++) {
        out[i].kind = JS_NONE;
        klen[i] = strlen(keys[i]);
    }
    struct scan sc = {.s = (const unsigned char *)s,
                      .end = (const unsigned char *)s + len,
                      .cur = (const unsigned char *)s,
                      .keys = keys,
                      .nkeys = nkeys,
                      .klen = klen,
                      .out = out};
    if (validate(&sc, root, err) < 0)
        return -1;
    if (sc.dup) {
        if (dup_index)
            *dup_index = sc.dup_index;
        return -2;
    }
    return 0;
}

static int validate(struct scan *sc_, struct json_span *root, struct json_error *err)
{
    struct scan sc = *sc_;
    int rc = -1;
    if (scan_value(&sc, 0, root) == 0) {
        skip_ws(&sc);
        if (sc.cur == sc.end)
            rc = 0;
        else
            fail(&sc, "unexpected data after the JSON value");
    }
    sc_->dup = sc.dup;
    sc_->dup_index = sc.dup_index;
    if (rc == 0)
        return 0;
    if (err) {
        err->offset = (size_t)(sc.cur - sc.s);
        err->msg = sc.msg;
        err->line = 1;
        err->column = 1;
        for (const unsigned char *p = sc.s; p < sc.cur; p++) {
            if (*p == '\n') {
                err->line++;
                err->column = 1;
            } else {
                err->column++;
            }
        }
    }
    return -1;
}

/* Decodes escapes of a member name and compares it with key (keys are plain
 * names without backslashes). Decoding only ever shortens a name, so a name
 * no longer than the key matches only byte for byte, and only a longer one
 * can need decoding. */
static int name_equals(const struct json_span *name, const char *key, size_t klen)
{
    const char *p = name->p + 1;
    size_t n = name->len - 2;
    if (n <= klen)
        return n == klen && memcmp(p, key, n) == 0;
    if (!memchr(p, '\\', n))
        return 0;
    char tmp[256];
    size_t tl;
    if (json_string_decode(name, tmp, sizeof(tmp), &tl) < 0)
        return 0;
    return tl == klen && memcmp(tmp, key, klen) == 0;
}

int json_lookup(const struct json_span *obj, const char *const *keys, size_t nkeys,
                struct json_span *out, size_t *dup_index)
{
    for (size_t i = 0; i < nkeys; i++)
        out[i].kind = JS_NONE;
    if (obj->kind != JS_OBJECT)
        return 0;
    size_t klen[16];
    for (size_t i = 0; i < nkeys && i < 16; i++)
        klen[i] = strlen(keys[i]);
    struct scan sc = {.s = (const unsigned char *)obj->p,
                      .end = (const unsigned char *)obj->p + obj->len,
                      .cur = (const unsigned char *)obj->p + 1};
    for (;;) {
        skip_ws(&sc);
        if (sc.cur >= sc.end || *sc.cur != '"')
            return 0; /* '}' (or malformed: nothing more to find) */
        struct json_span name, val;
        if (scan_value(&sc, 0, &name) < 0)
            return 0;
        skip_ws(&sc);
        if (sc.cur >= sc.end || *sc.cur != ':')
            return 0;
        sc.cur++;
        if (scan_value(&sc, 1, &val) < 0)
            return 0;
        for (size_t i = 0; i < nkeys && i < 16; i++) {
            if (name_equals(&name, keys[i], klen[i])) {
                if (out[i].kind != JS_NONE) {
                    if (dup_index)
                        *dup_index = i;
                    return -1;
                }
                out[i] = val;
            }
        }
        skip_ws(&sc);
        if (sc.cur < sc.end && *sc.cur == ',')
            sc.cur++;
    }
}

int json_get(const struct json_span *obj, const char *key, struct json_span *out)
{
    const char *keys[1] = {key};
    if (json_lookup(obj, keys, 1, out, NULL) < 0)
        return -1;
    return out->kind != JS_NONE;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int json_string_decode(const struct json_span *str, char *out, size_t cap, size_t *out_len)
{
    if (str->kind != JS_STRING || str->len < 2 || cap == 0)
        return -1;
    const unsigned char *p = (const unsigned char *)str->p + 1;
    const unsigned char *end = (const unsigned char *)str->p + str->len - 1;
    size_t o = 0;
    while (p < end) {
        char tmp[4];
        size_t n = 1;
        if (*p != '\\') {
            tmp[0] = (char)*p++;
        } else if (end - p >= 2 && p[1] != 'u') {
            switch (p[1]) {
            case 'b': tmp[0] = '\b'; break;
            case 'f': tmp[0] = '\f'; break;
            case 'n': tmp[0] = '\n'; break;
            case 'r': tmp[0] = '\r'; break;
            case 't': tmp[0] = '\t'; break;
            default: tmp[0] = (char)p[1]; break;
            }
            p += 2;
        } else {
            unsigned cp, lo;
            if (read_hex4(p + 2, end, &cp) < 0)
                return -1;
            p += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - p < 6 || read_hex4(p + 2, end, &lo) < 0)
                    return -1;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            if (cp == 0)
                return -1;
            n = put_utf8(tmp, cp);
        }
        if (tmp[0] == '\0' && n == 1)
            return -1;
        if (o + n >= cap)
            return -1;
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return 0;
}

int json_int(const struct json_span *num, int64_t *out)
{
    if (num->kind != JS_NUMBER || num->len == 0 || num->len > 20)
        return -1;
    const char *p = num->p, *end = num->p + num->len;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end)
        return -1;
    uint64_t v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1; /* fraction or exponent: not an integer */
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_C(9223372036854775807) + (uint64_t)neg - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}
