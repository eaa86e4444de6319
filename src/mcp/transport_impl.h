// SPDX-License-Identifier: Apache-2.0
// Internal to the MCP transports: the common head every connection starts
// with, so transport.c can dispatch to the stdio or the Streamable HTTP
// implementation, and their entry points.
#ifndef PORTCULLIS_MCP_TRANSPORT_IMPL_H
#define PORTCULLIS_MCP_TRANSPORT_IMPL_H

#include "mcp/transport.h"

enum mcp_transport_kind { MCP_TRANSPORT_STDIO = 1, MCP_TRANSPORT_HTTP = 2 };

/* First member of both implementations' structs. */
struct mcp_upstream {
    enum mcp_transport_kind kind;
};

/* Largest message either transport takes from a server. */
#define MCP_MESSAGE_MAX (16u * 1024 * 1024)

struct mcp_upstream *mcp_stdio_open(uv_loop_t *loop, const struct mcp_upstream_spec *spec,
                                    const struct mcp_upstream_events *ev, void *ctx);
int mcp_stdio_send(struct mcp_upstream *u, const char *json, size_t len);
int mcp_stdio_pid(const struct mcp_upstream *u);
void mcp_stdio_close(struct mcp_upstream *u);

struct mcp_upstream *mcp_http_open(uv_loop_t *loop, const struct mcp_upstream_spec *spec,
                                   const struct mcp_upstream_events *ev, void *ctx);
int mcp_http_send(struct mcp_upstream *u, const char *json, size_t len,
                  const struct mcp_send_opts *opts);
void mcp_http_initialized(struct mcp_upstream *u, const char *protocol_version);
void mcp_http_close(struct mcp_upstream *u);

#endif
