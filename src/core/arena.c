// SPDX-License-Identifier: Apache-2.0
// Bump allocator behind every request (see arena.h).
#include "core/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
    struct arena_block *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char data[];
};

void arena_init(arena_t *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : 4096;
    a->total = 0;
}

static struct arena_block *block_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(struct arena_block))
        return NULL;
    struct arena_block *b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

void *arena_alloc(arena_t *a, size_t n)
{
    if (n == 0)
        n = 1;
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n)
        return NULL;
    struct arena_block *b = a->head;
    if (!b || b->size - b->used < need) {
        if (need > a->block_size / 2) {
            /* a big allocation gets its own block, placed behind the head so
             * the head's free space is not wasted */
            struct arena_block *big = block_new(need);
            if (!big)
                return NULL;
            big->used = need;
            if (b) {
                big->next = b->next;
                b->next = big;
            } else {
                a->head = big;
            }
            a->total += need;
            return big->data;
        }
        b = block_new(a->block_size);
        if (!b)
            return NULL;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->total += need;
    return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t len)
{
    char *p = arena_alloc(a, len + 1);
    if (!p)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *arena_strdup(arena_t *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_concat(arena_t *a, ...)
{
    va_list ap;
    size_t total = 0;
    va_start(ap, a);
    for (const char *s; (s = va_arg(ap, const char *));)
        total += strlen(s);
    va_end(ap);
    char *p = arena_alloc(a, total + 1);
    if (!p)
        return NULL;
    char *o = p;
    va_start(ap, a);
    for (const char *s; (s = va_arg(ap, const char *));) {
        size_t n = strlen(s);
        memcpy(o, s, n);
        o += n;
    }
    va_end(ap);
    *o = '\0';
    return p;
}

char *arena_printf(arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void arena_free(arena_t *a)
{
    struct arena_block *b = a->head;
    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}
