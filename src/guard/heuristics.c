// SPDX-License-Identifier: Apache-2.0
// guard heuristics the rule pack cannot express, each one pass and near free on text
// that has nothing to find: base64 / hex runs decoded and checked for instruction-like
// text (encoded payloads), and hidden Unicode (tag characters, bidi, zero-width).
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "guard/internal.h"

const struct guard_rule guard_heuristics[GUARD_NHEURISTICS] = {
    [GUARD_H_ENCODED] = {.id = "heuristic.encoded_instructions",
                         .category = "encoded_payload",
                         .severity = GUARD_HIGH},
    [GUARD_H_UNICODE_TAGS] = {.id = "hidden.unicode_tags",
                              .category = "hidden_text",
                              .severity = GUARD_HIGH},
    [GUARD_H_BIDI] = {.id = "hidden.bidi_controls",
                      .category = "hidden_text",
                      .severity = GUARD_MEDIUM},
    [GUARD_H_ZW_RUN] = {.id = "hidden.zero_width_run",
                        .category = "hidden_text",
                        .severity = GUARD_MEDIUM},
    [GUARD_H_ZW] = {.id = "hidden.zero_width", .category = "hidden_text", .severity = GUARD_LOW},
};

/* Shortest run worth decoding: 24 base64 chars = 18 bytes, 32 hex = 16 bytes. */
#define MIN_B64 24
#define MIN_HEX 32

static int b64val(unsigned char c) /* decoding only; is_b64 below for scanning */
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

static int hexdig(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Length of the well-formed UTF-8 sequence at s[0..n) (2 to 4 bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t k = s[0] >= 0xC2 && s[0] <= 0xDF   ? 2
               : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
               : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
                                              : 0;
    if (k == 0 || k > n)
        return 0;
    for (size_t j = 1; j < k; j++)
        if ((s[j] & 0xC0) != 0x80)
            return 0;
    return k;
}

/* Share of printable ASCII / whitespace / well-formed UTF-8 bytes; encoded binary fails.
 * (Stray bytes >= 0x80 do not count: a path or identifier that happens to be a base64
 * run decodes to about half of them, and is no payload.) */
static bool mostly_printable(const unsigned char *s, size_t n)
{
    size_t ok = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c < 0x80) {
            ok += (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\r' || c == '\t';
            i++;
            continue;
        }
        size_t k = utf8_seq(s + i, n - i);
        ok += k;
        i += k ? k : 1;
    }
    return n > 0 && ok * 100 >= n * 95;
}

static size_t decode_b64(const unsigned char *s, size_t n, char *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n && o < cap; i++) {
        int v = b64val(s[i]);
        if (v < 0)
            break;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    return o;
}

static size_t decode_hex(const unsigned char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i + 1 < n && o < cap; i += 2)
        out[o++] = (char)(hexdig(s[i]) * 16 + hexdig(s[i + 1]));
    return o;
}

/* Base64 alphabet (standard and URL-safe) as a table: the skip loop tests one byte. */
static const unsigned char is_b64[256] = {
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1,
    ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1,
    ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['+'] = 1, ['/'] = 1,
    ['-'] = 1, ['_'] = 1,
};

size_t guard_next_encoded(const char *text, size_t len, size_t from, size_t *start, size_t *end,
                          char *out, size_t outcap)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t i = from;
    /* Runs shorter than MIN_B64 are never decoded. Window [i, i + MIN_B64): when its
     * last byte is outside the alphabet, or some byte before it is, no run of interest
     * starts before that byte, so the next window starts right after it (a Horspool-like
     * skip: prose moves about a word length per test). */
    while (i + MIN_B64 <= len) {
        size_t last = i + MIN_B64 - 1;
        if (!is_b64[t[last]]) {
            i = last + 1;
            continue;
        }
        size_t p = last;
        while (p > i && is_b64[t[p - 1]])
            p--;
        if (p > i) {
            i = p;
            continue;
        }
        /* t[i .. i + MIN_B64) is all alphabet: one run holds it */
        size_t s = i;
        while (s > 0 && is_b64[t[s - 1]])
            s--; /* only when i == from: a run that began before `from` was already judged */
        size_t e = i + MIN_B64;
        while (e < len && is_b64[t[e]])
            e++;
        i = e;
        if (s < from)
            continue;
        size_t letters = 0, digits = 0, hexonly = 1;
        for (size_t k = s; k < e; k++) {
            if (hexdig(t[k]) < 0)
                hexonly = 0;
            if ((t[k] | 0x20) >= 'a' && (t[k] | 0x20) <= 'z')
                letters++;
            else if (t[k] >= '0' && t[k] <= '9')
                digits++;
        }
        while (i < len && t[i] == '=')
            i++;
        size_t n = e - s;
        size_t got = 0;
        if (hexonly && n >= MIN_HEX && n % 2 == 0)
            got = decode_hex(t + s, n, out, outcap);
        else if (letters > 0 && digits + letters > n / 2)
            got = decode_b64(t + s, n, out, outcap);
        if (got && mostly_printable((const unsigned char *)out, got)) {
            *start = s;
            *end = i;
            return got;
        }
    }
    return 0;
}

/* Length of the zero-width character at t[i] (U+200B..U+200F, U+2060..U+2064, U+FEFF,
 * U+00AD), or 0. */
static size_t zero_width_at(const unsigned char *t, size_t len, size_t i)
{
    if (i + 1 < len && t[i] == 0xC2 && t[i + 1] == 0xAD)
        return 2;
    if (i + 2 >= len)
        return 0;
    if (t[i] == 0xE2 && t[i + 1] == 0x80 && t[i + 2] >= 0x8B && t[i + 2] <= 0x8F)
        return 3;
    if (t[i] == 0xE2 && t[i + 1] == 0x81 && t[i + 2] >= 0xA0 && t[i + 2] <= 0xA4)
        return 3;
    if (t[i] == 0xEF && t[i + 1] == 0xBB && t[i + 2] == 0xBF)
        return 3;
    return 0;
}

void guard_find_hidden(const char *text, size_t len, guard_span_fn fn, void *ctx)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        /* skip ASCII eight bytes at a time */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, t + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        while (i < len && t[i] < 0x80)
            i++;
        if (i >= len)
            break;
        unsigned char c = t[i];
        if (c != 0xC2 && c != 0xE2 && c != 0xEF && c != 0xF3) {
            i++;
            continue;
        }
        /* U+E0000..U+E007F: F3 A0 80|81 xx */
        if (c == 0xF3 && i + 3 < len && t[i + 1] == 0xA0 &&
            (t[i + 2] == 0x80 || t[i + 2] == 0x81) && t[i + 3] >= 0x80 && t[i + 3] <= 0xBF) {
            fn(ctx, GUARD_H_UNICODE_TAGS, i, i + 4);
            i += 4;
            continue;
        }
        /* U+202A..U+202E, U+2066..U+2069 */
        if (c == 0xE2 && i + 2 < len &&
            ((t[i + 1] == 0x80 && t[i + 2] >= 0xAA && t[i + 2] <= 0xAE) ||
             (t[i + 1] == 0x81 && t[i + 2] >= 0xA6 && t[i + 2] <= 0xA9))) {
            fn(ctx, GUARD_H_BIDI, i, i + 3);
            i += 3;
            continue;
        }
        size_t s = i, n = 0, k;
        while ((k = zero_width_at(t, len, i)) > 0) {
            i += k;
            n++;
        }
        if (n >= 3)
            fn(ctx, GUARD_H_ZW_RUN, s, i);
        else if (n > 0) {
            /* a lone BOM or soft hyphen is ordinary; U+200B..U+2064 inside text is not */
            for (size_t p = s; p < i; p += zero_width_at(t, len, p))
                if (t[p] == 0xE2 && !(t[p + 1] == 0x80 && (t[p + 2] == 0x8C || t[p + 2] == 0x8D)))
                    fn(ctx, GUARD_H_ZW, p, p + 3);
        } else
            i++;
    }
}

bool guard_looks_instructive(const char *s, size_t n)
{
    static const char *const words[] = {
        "ignore",  "disregard", "instruction", "system prompt", "assistant", "password",
        "api key", "secret",    "forward",     "send ",         "exfiltrat", "you must",
        "you are", "respond",   "reply",       "previous",      "execute",   "curl ",
        "http://", "https://",  "your answer", "your response", "do not",    "token",
    };
    char low[512];
    size_t m = n < sizeof(low) ? n : sizeof(low);
    for (size_t i = 0; i < m; i++)
        low[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] | 0x20) : s[i];
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++)
        if (memmem(low, m, words[w], strlen(words[w])))
            return true;
    return false;
}
