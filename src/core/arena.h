// SPDX-License-Identifier: Apache-2.0
// Per-request bump allocator: everything a request allocates dies with it in
// one arena_free(). Not thread-safe; a request lives on one worker.
#ifndef PORTCULLIS_CORE_ARENA_H
#define PORTCULLIS_CORE_ARENA_H

#include <stddef.h>

struct arena_block;

typedef struct arena {
    struct arena_block *head;   /* newest block; older ones chained behind */
    size_t block_size;          /* size of ordinary blocks */
    size_t total;               /* bytes handed out, for limits and metrics */
} arena_t;

/* Prepares an empty arena; no memory is taken until the first alloc. */
void arena_init(arena_t *a, size_t block_size);

/* Returns 16-byte aligned memory owned by the arena, or NULL when out of
 * memory. Large requests get a block of their own. */
void *arena_alloc(arena_t *a, size_t n) __attribute__((warn_unused_result));

/* Copies len bytes and a terminating NUL into the arena. */
char *arena_strndup(arena_t *a, const char *s, size_t len);
char *arena_strdup(arena_t *a, const char *s);

/* Concatenates the NUL-terminated strings up to a NULL into the arena (no
 * printf on hot paths); NULL on failure. */
char *arena_concat(arena_t *a, ...) __attribute__((sentinel));

/* printf into the arena; NULL on failure. */
char *arena_printf(arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees every block; the arena can be reused after arena_init. */
void arena_free(arena_t *a);

#endif
