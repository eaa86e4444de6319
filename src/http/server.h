// SPDX-License-Identifier: Apache-2.0
// HTTP/1.1 server side on a worker's loop: accepts connections, enforces the
// limits and timeouts, parses requests (parser.h), hands each one to the
// handler as an exchange, and writes responses: whole, or streamed chunked.
#ifndef PORTCULLIS_HTTP_SERVER_H
#define PORTCULLIS_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/arena.h"
#include "http/parser.h"

struct worker;
struct http_conn;
struct http_exchange;
struct tls_ctx;
struct identity_principal;

/* Called once per complete request. The handler must eventually answer with
 * http_respond or http_stream_start..http_stream_end (possibly later, from
 * the loop), unless the exchange is aborted first. */
typedef void (*http_handler_fn)(struct http_exchange *ex);

struct http_extra_header {
    struct http_extra_header *next;
    const char *name;
    const char *value;
};

/* One request/response on a connection. Reference-counted: the server holds
 * one ref until the response ends or the client goes away; a handler that
 * keeps async work pending takes its own (http_exchange_ref) and drops it
 * when that work is finished. Memory comes from ex->arena. */
struct http_exchange {
    struct worker *worker;
    struct http_conn *conn;         /* NULL once the connection is gone */
    struct http_request *req;       /* valid until the response ends */
    struct config *cfg;             /* snapshot this request runs under (ref held) */
    arena_t arena;
    int refs;
    char request_id[64];
    uint64_t start_ns;

    /* response state */
    int status;
    int head_sent;
    int ended;
    int aborted;                    /* client went away before the end */
    int close_after;                /* send Connection: close, then close */
    struct http_extra_header *headers;
    uint64_t bytes_out;

    /* what the handler tells the access log and metrics */
    const char *route;              /* static string: "chat", "models", ... */
    const char *model;
    const char *provider;
    uint64_t tokens_in, tokens_out;
    double upstream_seconds;        /* < 0 when no upstream call */
    int attempts;
    const char *error_type;         /* for errors answered by the gateway */

    /* identity and audit (src/identity, src/audit): who called, and what the
     * audit record says about the decision. Strings are static or from the
     * arena; NULL fields are derived (action from route, resource from model,
     * decision from status). */
    const struct identity_principal *principal; /* NULL = anonymous */
    const char *action;
    const char *resource;
    const char *decision;        /* "allow" | "deny" | "error" */
    const char *decision_reason; /* the check or rule that decided */
    const char *policy_ids;      /* determining Cedar policies, comma-separated, or NULL */
    const char *guard;           /* audit "guard": JSON array of findings, or NULL for [] */
    double cost_usd;
    int cache_hit;
    /* Runs once when the exchange is accounted for (response ended or client
     * gone), after metrics and the access log; must not block. */
    void (*on_finish)(struct http_exchange *ex);

    int stage_waits;             /* times a stage parked this exchange (see redispatch) */

    /* handler hooks */
    void *handler_data;
    void (*on_abort)(struct http_exchange *ex);  /* client went away mid-exchange */
    void (*on_drain)(struct http_exchange *ex);  /* output queue drained below low water */
};

/* Creates the server for one worker: binds (SO_REUSEPORT) and listens.
 * tls may be NULL. Returns 0 or a negative libuv error. */
int http_server_start(struct worker *w, struct tls_ctx *tls, http_handler_fn handler,
                      const char *host, uint16_t port);

/* Stops accepting and closes idle connections; in-flight exchanges finish and
 * their connections close afterwards. on_idle runs once no connection is left. */
void http_server_drain(struct worker *w, void (*on_idle)(struct worker *w));
/* Closes every connection now (aborting exchanges). */
void http_server_close_all(struct worker *w);
/* Frees the server once its handles are closed (call after drain/close_all). */
void http_server_free(struct worker *w);
unsigned http_server_connections(struct worker *w);

/* Backpressure from a stage behind the event loop (the audit writer): while
 * held, the worker starts no new request. Exchanges in flight go on and
 * answer; a connection that is between requests stops reading (its bytes
 * stay in the kernel). Every HTTP_HOLD_POLL_MS the worker asks still_held(arg)
 * and, once it returns 0, resumes every connection it stopped. Holding a held
 * worker again does nothing. */
#define HTTP_HOLD_POLL_MS 1
void http_server_hold(struct worker *w, int (*still_held)(void *arg), void *arg);
int http_server_held(struct worker *w);

/* Adds a response header (copied into the arena); before the head is sent. */
void http_add_header(struct http_exchange *ex, const char *name, const char *value);

/* A complete response with Content-Length. body is copied or sent before
 * return; the exchange ends. */
void http_respond(struct http_exchange *ex, int status, const char *content_type,
                  const char *body, size_t len);

/* Streamed response with chunked transfer encoding. */
void http_stream_start(struct http_exchange *ex, int status, const char *content_type);
/* Returns the bytes still queued for the socket after this write (the caller
 * may pause its producer above a high-water mark and wait for on_drain), or
 * a negative value when the client is gone. */
long http_stream_write(struct http_exchange *ex, const char *data, size_t len);
void http_stream_end(struct http_exchange *ex);
/* Ends a streamed response that broke: no terminating chunk, and the
 * connection is closed, so the client cannot take it for a whole answer. */
void http_stream_abort(struct http_exchange *ex);

/* Runs the server's handler again for an exchange a pipeline stage parked
 * before anything was answered (e.g. identity waiting for a JWKS refetch).
 * On the exchange's own loop; does nothing once the client is gone. */
void http_exchange_redispatch(struct http_exchange *ex);

void http_exchange_ref(struct http_exchange *ex);
void http_exchange_unref(struct http_exchange *ex);

/* High-water mark for queued output per connection (bytes). */
#define HTTP_OUT_HIGH_WATER (256 * 1024)

#endif
