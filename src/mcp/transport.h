// SPDX-License-Identifier: Apache-2.0
// One connection from the gateway to one upstream MCP server, whatever the
// wire: Streamable HTTP (url) or a child process speaking newline-delimited
// JSON-RPC on stdin/stdout (command). The transport moves whole JSON-RPC
// messages and knows nothing of their meaning: the hub (mcp/hub.c) does the
// protocol (initialize, id rewriting, federation). Everything here runs on
// the hub's loop; no call is thread-safe.
#ifndef PORTCULLIS_MCP_TRANSPORT_H
#define PORTCULLIS_MCP_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct mcp_upstream;

/* What the hub needs to open a connection. The transport copies every string
 * at open; the spec need not outlive mcp_upstream_open. Exactly one of url
 * and argv is set. */
struct mcp_header {
    const char *name;
    const char *value;
};

struct mcp_upstream_spec {
    const char *name; /* server name, for logs and errors */
    /* Streamable HTTP */
    const char *url;
    const struct mcp_header *headers; /* static headers sent on every request */
    size_t nheaders;
    /* stdio: argv[0] is looked up in PATH; NULL-terminated */
    const char *const *argv;
    const char *const *env;      /* extra "K=V" entries, NULL-terminated, or NULL */
    const char *cwd;             /* NULL = the gateway's */
    uint32_t request_timeout_ms; /* HTTP: whole POST; 0 = none */
    uint32_t restart_min_ms;     /* stdio: first restart delay (default 250) */
    uint32_t restart_max_ms;     /* stdio: backoff ceiling (default 30000) */
    uint32_t stop_grace_ms;      /* stdio: stdin closed -> SIGTERM -> SIGKILL, this long
                                    each (default 2000) */
};

enum mcp_upstream_state {
    MCP_UPSTREAM_READY = 1, /* stdio: process running; HTTP: usable (always, after open) */
    MCP_UPSTREAM_DOWN = 2,  /* stdio: process exited (a restart is scheduled) */
};

struct mcp_upstream_events {
    /* One JSON-RPC message from the server (response, request or
     * notification), exactly as received. A JSON array (batch) is delivered
     * element by element. Bytes are valid only during the call. */
    void (*on_message)(void *ctx, const char *json, size_t len);
    /* The connection went up or down. After DOWN then READY (a stdio
     * restart) the server is a new process: the hub must initialize again.
     * Requests in flight when DOWN is reported get no answer: the hub fails
     * them. why is a short static text, safe to show. */
    void (*on_state)(void *ctx, enum mcp_upstream_state st, const char *why);
    /* A message sent with expects_response did not get its answer through
     * this transport: HTTP connect/timeout/non-2xx, or the POST answer ended
     * without a JSON-RPC response carrying the message's id. (stdio reports
     * such failures through DOWN instead.) why is safe to show. */
    void (*on_send_error)(void *ctx, uint64_t cookie, const char *why);
    /* When set, called instead of on_message, with where the message came
     * from: cookie is the one of the request (sent with expects_response)
     * whose HTTP answer stream carried it, resumed or not; 0 when it came on
     * the GET stream, from a stdio server, or in answer to a notification.
     * The hub uses it to give a server's request made during a call to the
     * client that made the call. Either callback may be NULL, not both. */
    void (*on_message_via)(void *ctx, const char *json, size_t len, uint64_t cookie);
};

struct mcp_send_opts {
    uint64_t cookie;                  /* handed back in on_send_error */
    int expects_response;             /* the message is a request */
    const struct mcp_header *headers; /* per-message extra HTTP headers (identity
                                         token, traceparent); ignored by stdio */
    size_t nheaders;
};

/* Opens the connection (spawns the process for stdio). NULL on a spec that
 * cannot work (logged). on_state(READY) follows from the loop once usable. */
struct mcp_upstream *mcp_upstream_open(uv_loop_t *loop, const struct mcp_upstream_spec *spec,
                                       const struct mcp_upstream_events *ev, void *ctx);

/* Sends one JSON-RPC message (copied). 0, or -1 when the connection is down
 * (nothing sent, no callback). */
int mcp_upstream_send(struct mcp_upstream *u, const char *json, size_t len,
                      const struct mcp_send_opts *opts);

/* After the initialize exchange: the negotiated protocol version. HTTP sends
 * it as MCP-Protocol-Version from then on and opens the GET stream for
 * server-initiated messages (a 405 answer just means the server has none).
 * The HTTP transport keeps the Mcp-Session-Id the server returned to
 * initialize and sends it on every later request; on a 404 for a request
 * carrying it, it reports DOWN then READY so the hub initializes again.
 * When an initialize got no answer (on_send_error: unreachable, timeout,
 * HTTP error), the HTTP transport reports READY again after a backoff
 * (0.5 s doubling to 30 s) so the hub can retry a server that was not up. */
void mcp_upstream_initialized(struct mcp_upstream *u, const char *protocol_version);

/* Process id of a stdio server (0 when not running or HTTP). */
int mcp_upstream_pid(const struct mcp_upstream *u);

/* Closes: HTTP sends DELETE for its session, stdio closes stdin and kills
 * the child after a grace period. No callback runs afterwards; handles
 * finish closing on the loop. */
void mcp_upstream_close(struct mcp_upstream *u);

#endif
