// SPDX-License-Identifier: Apache-2.0
// Fuzz target for Last-Event-ID values (mcp_event_id_parse) and the replay
// log they index: any bytes parse or are refused, and replaying after any
// parsed id stays inside the log.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/internal.h"

static int count(void *ctx, uint64_t seq, const char *json, size_t len)
{
    (*(size_t *)ctx)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char id[64];
    size_t n = size < sizeof id - 1 ? size : sizeof id - 1;
    memcpy(id, data, n);
    id[n] = '\0';
    uint32_t stream;
    uint64_t seq;
    if (mcp_event_id_parse(id, &stream, &seq) != 0)
        return 0;
    struct mcp_evlog *l = mcp_evlog_new();
    for (size_t i = 0; i < size % 300; i++)
        mcp_evlog_add(l, (uint32_t)(i % 3), (const char *)data, size);
    size_t got = 0;
    mcp_evlog_replay(l, stream, seq, count, &got);
    if (got > MCP_REPLAY_EVENTS)
        abort();
    mcp_evlog_unref(l);
    return 0;
}
