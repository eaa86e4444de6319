// SPDX-License-Identifier: Apache-2.0
// Growable byte buffer with a hard maximum. Used for request bodies, response
// staging and anything else that accumulates bytes from the network.
#ifndef PORTCULLIS_CORE_BUF_H
#define PORTCULLIS_CORE_BUF_H

#include <stddef.h>

typedef struct buf {
    char *data;     /* owned; NUL-terminated past len when len > 0 */
    size_t len;
    size_t cap;
    size_t max;     /* appends that would pass this fail with -E2BIG */
} buf_t;

void buf_init(buf_t *b, size_t max);

/* 0, or -ENOMEM / -E2BIG; on failure the buffer is unchanged. */
int buf_append(buf_t *b, const void *data, size_t len) __attribute__((warn_unused_result));
int buf_appendf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3), warn_unused_result));
int buf_reserve(buf_t *b, size_t extra) __attribute__((warn_unused_result));

/* Drops the first n bytes (n <= len). */
/* Appends a string literal without counting it by hand. */
#define buf_append_lit(b, lit) buf_append((b), "" lit, sizeof(lit) - 1)

/* Appends s as a JSON string literal (quotes included), escaping as needed. */
int buf_append_json_string(buf_t *b, const char *s, size_t len) __attribute__((warn_unused_result));

void buf_consume(buf_t *b, size_t n);
void buf_reset(buf_t *b);
void buf_free(buf_t *b);

#endif
