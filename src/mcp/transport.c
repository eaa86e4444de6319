// SPDX-License-Identifier: Apache-2.0
// The hub's handle on one upstream MCP server (see transport.h): picks the
// Streamable HTTP client (url) or the stdio child process (argv) and
// forwards each call to it.
#include "mcp/transport_impl.h"

#include "core/log.h"

struct mcp_upstream *mcp_upstream_open(uv_loop_t *loop, const struct mcp_upstream_spec *spec,
                                       const struct mcp_upstream_events *ev, void *ctx)
{
    const char *name = spec && spec->name ? spec->name : "?";
    if (!spec || !ev || (!ev->on_message && !ev->on_message_via) || !ev->on_state) {
        log_msg(LOG_ERROR, NULL, "mcp server %s: incomplete transport setup", name);
        return NULL;
    }
    int has_argv = spec->argv && spec->argv[0];
    if ((spec->url != NULL) == has_argv) {
        log_msg(LOG_ERROR, NULL, "mcp server %s: needs exactly one of url and command", name);
        return NULL;
    }
    return spec->url ? mcp_http_open(loop, spec, ev, ctx) : mcp_stdio_open(loop, spec, ev, ctx);
}

int mcp_upstream_send(struct mcp_upstream *u, const char *json, size_t len,
                      const struct mcp_send_opts *opts)
{
    if (!u || !json)
        return -1;
    if (u->kind == MCP_TRANSPORT_STDIO)
        return mcp_stdio_send(u, json, len);
    static const struct mcp_send_opts none = {0};
    return mcp_http_send(u, json, len, opts ? opts : &none);
}

void mcp_upstream_initialized(struct mcp_upstream *u, const char *protocol_version)
{
    if (u && u->kind == MCP_TRANSPORT_HTTP)
        mcp_http_initialized(u, protocol_version);
}

int mcp_upstream_pid(const struct mcp_upstream *u)
{
    return u && u->kind == MCP_TRANSPORT_STDIO ? mcp_stdio_pid(u) : 0;
}

void mcp_upstream_close(struct mcp_upstream *u)
{
    if (!u)
        return;
    if (u->kind == MCP_TRANSPORT_STDIO)
        mcp_stdio_close(u);
    else
        mcp_http_close(u);
}
