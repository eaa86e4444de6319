// SPDX-License-Identifier: Apache-2.0
// guard heuristics the rule pack cannot express: base64 / hex runs decoded and
// checked for printable, instruction-like text (encoded payloads).
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "guard/internal.h"

/* Shortest run worth decoding: 24 base64 chars = 18 bytes, 32 hex = 16 bytes. */
#define MIN_B64 24
#define MIN_HEX 32

static int b64val(unsigned char c)
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

/* Share of printable ASCII / whitespace / UTF-8 bytes; encoded binary fails. */
static bool mostly_printable(const unsigned char *s, size_t n)
{
    size_t ok = 0;
    for (size_t i = 0; i < n; i++)
        if ((s[i] >= 0x20 && s[i] < 0x7f) || s[i] == '\n' || s[i] == '\r' || s[i] == '\t' ||
            s[i] >= 0x80)
            ok++;
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

size_t guard_next_encoded(const char *text, size_t len, size_t from, size_t *start, size_t *end,
                          char *out, size_t outcap)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t i = from;
    while (i < len) {
        if (b64val(t[i]) < 0) {
            i++;
            continue;
        }
        size_t s = i, letters = 0, digits = 0, hexonly = 1;
        while (i < len && b64val(t[i]) >= 0) {
            if (hexdig(t[i]) < 0)
                hexonly = 0;
            if ((t[i] | 0x20) >= 'a' && (t[i] | 0x20) <= 'z')
                letters++;
            else if (t[i] >= '0' && t[i] <= '9')
                digits++;
            i++;
        }
        size_t e = i;
        while (i < len && t[i] == '=')
            i++;
        size_t n = e - s;
        size_t got = 0;
        if (hexonly && n >= MIN_HEX && n % 2 == 0)
            got = decode_hex(t + s, n, out, outcap);
        else if (n >= MIN_B64 && letters > 0 && digits + letters > n / 2)
            got = decode_b64(t + s, n, out, outcap);
        (void)digits;
        if (got && mostly_printable((const unsigned char *)out, got)) {
            *start = s;
            *end = i;
            return got;
        }
    }
    return 0;
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
