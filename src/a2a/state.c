// SPDX-License-Identifier: Apache-2.0
// The A2A proxy's process-wide state, shared by the workers: the agent card
// cache (the upstream's card as fetched, per card URL, reused for card_ttl)
// and the task owners (tasks.c).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "a2a/a2a.h"
#include "a2a/internal.h"
#include "core/clock.h"

#define MAX_CARDS 1024

struct card_entry {
    char *url;  /* card_url it was fetched from */
    char *text; /* the upstream's card, as fetched */
    size_t len;
    uint64_t fetched_ms; /* monotonic */
};

struct a2a {
    struct a2a_tasks *tasks; /* who started which task */
    uv_mutex_t lock;
    struct card_entry cards[MAX_CARDS];
    size_t ncards;
};

struct a2a *a2a_new(void)
{
    struct a2a *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    if ((a->tasks = a2a_tasks_new()) == NULL || uv_mutex_init(&a->lock) != 0) {
        a2a_tasks_free(a->tasks);
        free(a);
        return NULL;
    }
    return a;
}

void a2a_free(struct a2a *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->ncards; i++) {
        free(a->cards[i].url);
        free(a->cards[i].text);
    }
    uv_mutex_destroy(&a->lock);
    a2a_tasks_free(a->tasks);
    free(a);
}

static uint64_t now_ms(void)
{
    return clock_mono_ns() / 1000000u;
}

char *a2a_card_get(struct a2a *a, const char *url, uint32_t ttl_ms, size_t *len)
{
    char *copy = NULL;
    uv_mutex_lock(&a->lock);
    for (size_t i = 0; i < a->ncards; i++) {
        struct card_entry *e = &a->cards[i];
        if (strcmp(e->url, url) != 0)
            continue;
        if (now_ms() - e->fetched_ms < ttl_ms && (copy = malloc(e->len + 1)) != NULL) {
            memcpy(copy, e->text, e->len + 1);
            *len = e->len;
        }
        break;
    }
    uv_mutex_unlock(&a->lock);
    return copy;
}

void a2a_card_put(struct a2a *a, const char *url, const char *text, size_t len)
{
    char *t = malloc(len + 1), *u = strdup(url);
    if (t == NULL || u == NULL) {
        free(t);
        free(u);
        return;
    }
    memcpy(t, text, len);
    t[len] = '\0';
    uv_mutex_lock(&a->lock);
    struct card_entry *e = NULL;
    for (size_t i = 0; i < a->ncards && e == NULL; i++)
        if (strcmp(a->cards[i].url, url) == 0)
            e = &a->cards[i];
    if (e == NULL && a->ncards < MAX_CARDS)
        e = &a->cards[a->ncards++];
    else if (e == NULL)
        e = &a->cards[now_ms() % MAX_CARDS]; /* full: evict one */
    free(e->url);
    free(e->text);
    e->url = u;
    e->text = t;
    e->len = len;
    e->fetched_ms = now_ms();
    uv_mutex_unlock(&a->lock);
}

struct a2a_tasks *a2a_tasks_of(struct a2a *a)
{
    return a->tasks;
}
