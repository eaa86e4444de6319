// SPDX-License-Identifier: Apache-2.0
// Streamable HTTP MCP servers (see transport.h). Not written yet.
#include "mcp/transport_impl.h"

#include "core/log.h"

struct mcp_upstream *mcp_http_open(uv_loop_t *loop, const struct mcp_upstream_spec *spec,
                                   const struct mcp_upstream_events *ev, void *ctx)
{
    log_msg(LOG_ERROR, NULL, "mcp server %s: Streamable HTTP upstreams are not supported yet",
            spec->name ? spec->name : "?");
    return NULL;
}

int mcp_http_send(struct mcp_upstream *u, const char *json, size_t len,
                  const struct mcp_send_opts *opts)
{
    return -1;
}

void mcp_http_initialized(struct mcp_upstream *u, const char *protocol_version)
{
}

void mcp_http_close(struct mcp_upstream *u)
{
}
