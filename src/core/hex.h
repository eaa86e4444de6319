// SPDX-License-Identifier: Apache-2.0
// One hex digit's value, for every parser that decodes %XX, \uXXXX or hex,
// and bytes to lowercase hex.
#ifndef PORTCULLIS_CORE_HEX_H
#define PORTCULLIS_CORE_HEX_H

#include <stddef.h>

/* 0..15 for [0-9a-fA-F], else -1 (a negative char too). */
static inline int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Lowercase hex of n bytes into out (2n digits and a NUL). */
static inline void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

#endif
