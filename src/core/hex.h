// SPDX-License-Identifier: Apache-2.0
// One hex digit's value, for every parser that decodes %XX, \uXXXX or hex.
#ifndef PORTCULLIS_CORE_HEX_H
#define PORTCULLIS_CORE_HEX_H

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

#endif
