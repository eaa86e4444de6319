// SPDX-License-Identifier: Apache-2.0
// The MCP gateway: one Streamable HTTP endpoint (POST / GET / DELETE on
// mcp.path) in front of every upstream server of mcp.servers. Workers check
// the HTTP side and the caller's identity, then hand the request to the hub,
// a thread with its own loop that owns the client sessions and the upstream
// connections (federation, policy, id rewriting). See docs/mcp.md.
#ifndef PORTCULLIS_MCP_MCP_H
#define PORTCULLIS_MCP_MCP_H

#include <stddef.h>

struct config;
struct http_exchange;
struct identity;
struct mcp_hub;

/* Starts the hub thread for cfg (which it references) and opens a connection
 * to every server of cfg->mcp.servers. id (may be NULL) signs the identity
 * tokens sent to servers with identity_header. NULL with a message in err.
 * Caller owns the result (mcp_hub_free). */
struct mcp_hub *mcp_hub_new(struct config *cfg, struct identity *id, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* A new snapshot (SIGHUP): when mcp.servers changed (added, removed, or a
 * command, URL, header or timeout edited) every connection is reopened and
 * calls in flight fail; otherwise labels, trust and policies just take
 * effect. Sessions stay either way. Thread-safe. */
void mcp_hub_reload(struct mcp_hub *hub, struct config *cfg);

/* Graceful stop (SIGTERM): ends every open GET stream so the workers can
 * drain. Thread-safe. */
void mcp_hub_drain(struct mcp_hub *hub);

/* Stops the thread, closes the upstreams (stdio children are stopped) and
 * frees everything. Call after the workers have stopped. NULL is fine. */
void mcp_hub_free(struct mcp_hub *hub);

/* Whether the request is for the MCP endpoint of its snapshot. */
int mcp_route_match(const struct http_exchange *ex);

/* The endpoint, on a worker's loop: Host/Origin checks (DNS-rebinding
 * protection), identity, HTTP method and media types, then the hub. Always
 * answers, now or later from the loop. hub may be NULL (answers 503). */
void mcp_endpoint(struct mcp_hub *hub, struct identity *id, struct http_exchange *ex);

#endif
