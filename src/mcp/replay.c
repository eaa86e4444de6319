// SPDX-License-Identifier: Apache-2.0
// Resumable SSE streams of the gateway's own endpoint: every event a session
// is sent on an SSE stream (its GET stream, or the answer stream of one of
// its POSTs) gets an id "<stream>-<seq>" (seq increasing across the session)
// and is kept in the session's bounded replay log, so a GET carrying
// Last-Event-ID gets what followed on that same stream. Hub thread only,
// except the reference count (tickets are released by workers too).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/internal.h"

struct entry {
    uint64_t seq;
    uint32_t stream;
    char *json;
    size_t len;
};

struct mcp_evlog {
    atomic_int refs;
    uint64_t next_seq;
    struct entry ring[MCP_REPLAY_EVENTS];
    size_t head, n; /* oldest at head */
    size_t bytes;
};

struct mcp_evlog *mcp_evlog_new(void)
{
    struct mcp_evlog *l = calloc(1, sizeof *l);
    if (l != NULL)
        atomic_init(&l->refs, 1);
    return l;
}

void mcp_evlog_ref(struct mcp_evlog *l)
{
    atomic_fetch_add(&l->refs, 1);
}

void mcp_evlog_unref(struct mcp_evlog *l)
{
    if (l == NULL || atomic_fetch_sub(&l->refs, 1) != 1)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->ring[(l->head + i) % MCP_REPLAY_EVENTS].json);
    free(l);
}

static void drop_oldest(struct mcp_evlog *l)
{
    struct entry *e = &l->ring[l->head];
    l->bytes -= e->len;
    free(e->json);
    e->json = NULL;
    l->head = (l->head + 1) % MCP_REPLAY_EVENTS;
    l->n--;
}

uint64_t mcp_evlog_add(struct mcp_evlog *l, uint32_t stream, const char *json, size_t len)
{
    uint64_t seq = ++l->next_seq;
    if (len > MCP_REPLAY_BYTES)
        return seq; /* too big to keep: it has an id, but cannot be replayed */
    while (l->n > 0 && (l->n == MCP_REPLAY_EVENTS || l->bytes + len > MCP_REPLAY_BYTES))
        drop_oldest(l);
    char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return seq;
    memcpy(copy, json, len);
    struct entry *e = &l->ring[(l->head + l->n) % MCP_REPLAY_EVENTS];
    *e = (struct entry){.seq = seq, .stream = stream, .json = copy, .len = len};
    l->n++;
    l->bytes += len;
    return seq;
}

uint64_t mcp_evlog_last(const struct mcp_evlog *l)
{
    return l->next_seq;
}

int mcp_evlog_replay(const struct mcp_evlog *l, uint32_t stream, uint64_t after,
                     int (*emit)(void *ctx, uint64_t seq, const char *json, size_t len), void *ctx)
{
    if (after > l->next_seq)
        return -1; /* an id this session never sent */
    uint64_t oldest = l->n ? l->ring[l->head].seq : l->next_seq + 1;
    int complete = after + 1 >= oldest;
    for (size_t i = 0; i < l->n; i++) {
        const struct entry *e = &l->ring[(l->head + i) % MCP_REPLAY_EVENTS];
        if (e->stream == stream && e->seq > after && emit(ctx, e->seq, e->json, e->len) != 0)
            break;
    }
    return complete;
}

int mcp_event_id_parse(const char *s, uint32_t *stream, uint64_t *seq)
{
    uint64_t v[2] = {0, 0};
    int part = 0, digits = 0;
    for (; *s; s++) {
        if (*s == '-' && part == 0 && digits > 0) {
            part = 1;
            digits = 0;
        } else if (*s >= '0' && *s <= '9' && digits < 19) {
            v[part] = v[part] * 10 + (uint64_t)(*s - '0');
            digits++;
        } else {
            return -1;
        }
    }
    if (part != 1 || digits == 0 || v[0] > UINT32_MAX)
        return -1;
    *stream = (uint32_t)v[0];
    *seq = v[1];
    return 0;
}
