// SPDX-License-Identifier: Apache-2.0
// Small string helpers for the hot path, where snprintf("%s") costs a
// formatter run per copy.
#ifndef PORTCULLIS_CORE_STR_H
#define PORTCULLIS_CORE_STR_H

#include <stddef.h>
#include <string.h>

/* Copies src into dst (cap bytes, cap > 0), cut to cap-1 bytes, always
 * NUL-terminated; what snprintf(dst, cap, "%s", src) does. Returns the length
 * copied. */
static inline size_t str_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

/* dst = a followed by b, cut as str_copy; the length copied. */
static inline size_t str_concat(char *dst, size_t cap, const char *a, const char *b)
{
    size_t n = str_copy(dst, cap, a);
    return n + str_copy(dst + n, cap - n, b);
}

#endif
