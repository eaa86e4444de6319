// SPDX-License-Identifier: Apache-2.0
// Internal to src/mcp/: the reply channel between the hub thread and the
// worker that owns an exchange (ticket), the request the worker hands to the
// hub (msg), the hub core that unit tests drive on their own loop with a
// fake transport, and the JSON-RPC helpers.
#ifndef PORTCULLIS_MCP_INTERNAL_H
#define PORTCULLIS_MCP_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "core/buf.h"
#include "mcp/transport.h"
#include "telemetry/trace.h"

struct config;
struct http_exchange;

/* ---- ticket: hub -> worker ---------------------------------------------
 * One HTTP answer being produced by the hub for an exchange a worker owns.
 * The hub fills it under the lock and wakes the worker (async); the worker
 * takes what is there and writes it to the exchange. Reference-counted: the
 * worker holds one until its async handle is closed, the hub one while it may
 * still write. Without an async handle (unit tests) the hub just fills it. */
struct mcp_ticket {
    uv_mutex_t lock;
    atomic_int refs;
    /* worker side only */
    uv_async_t async;
    int has_async;
    struct http_exchange *ex;
    int head_sent;
    /* under lock */
    int closed;     /* the worker takes nothing more */
    int status;     /* 0 until the hub answers */
    int stream;     /* text/event-stream, chunked */
    int prefer_sse; /* Accept lists the event stream first: whole answers go out as one event */
    int end;        /* out is the last of it */
    buf_t out;
    char session_id[80]; /* Mcp-Session-Id to send, "" for none */
    char *action, *resource, *decision, *reason, *policy_ids; /* audit, malloc'ed */
    char *method; /* JSON-RPC method, for metrics and the access log */
    /* batches (hub thread only): an element's ticket forwards to its batch's */
    struct mcp_ticket *batch; /* the batch this element belongs to (ref held) */
    size_t batch_left;        /* a batch: elements (+1 until it is ended) not yet answered */
    buf_t batch_out;          /* a batch: "[answer,answer" collected so far */
    /* resumable streams (hub thread only): events get ids and are logged */
    struct mcp_evlog *evlog; /* the session's, or NULL (ref held) */
    uint32_t ev_stream;      /* this answer's stream in it */
    /* audit "guard": JSON array of guard findings, malloc'ed, or NULL */
    char *guard;
};

struct mcp_ticket *mcp_ticket_new(void);
void mcp_ticket_ref(struct mcp_ticket *t);
void mcp_ticket_unref(struct mcp_ticket *t);
/* Whether the worker still takes bytes. */
int mcp_ticket_open(struct mcp_ticket *t);
/* A whole answer (ends it). body may be NULL for none. -1 when closed. */
int mcp_ticket_respond(struct mcp_ticket *t, int status, const char *body, size_t len);
/* Starts an SSE answer (200 text/event-stream) if not started; appends one
 * event carrying json. -1 when closed. */
int mcp_ticket_event(struct mcp_ticket *t, const char *json, size_t len);
/* Ends a streamed answer. */
void mcp_ticket_finish(struct mcp_ticket *t);
void mcp_ticket_set_session(struct mcp_ticket *t, const char *id);
void mcp_ticket_set_audit(struct mcp_ticket *t, const char *action, const char *resource,
                          const char *decision, const char *reason, const char *policy_ids);
/* Changes only the decision and its reason (a permitted call that failed). */
void mcp_ticket_set_decision(struct mcp_ticket *t, const char *decision, const char *reason);
void mcp_ticket_set_method(struct mcp_ticket *t, const char *method);
/* From now on the events of t get ids of stream `stream` and are kept in
 * log (referenced) for replay, even after the client went away. */
void mcp_ticket_set_replay(struct mcp_ticket *t, struct mcp_evlog *log, uint32_t stream);
/* Replays log's events of stream after seq onto t (starting its SSE answer),
 * with their original ids. As mcp_evlog_replay. */
int mcp_ticket_replay(struct mcp_ticket *t, const struct mcp_evlog *log, uint32_t stream,
                      uint64_t after);
/* The audit record's guard findings (a JSON array as text; copied). */
void mcp_ticket_set_guard(struct mcp_ticket *t, const char *findings_json);

/* A JSON-RPC batch (protocol 2025-03-26) answered on batch t: each element
 * gets a ticket of its own from mcp_ticket_batch_element, and the hub handles
 * it like a lone message. Element tickets pass their answers (JSON-RPC
 * responses) into one JSON array for t, and whatever else they stream
 * (progress, server requests) onto t as SSE events; their audit fields are
 * t's. Once mcp_ticket_batch_end was called and every element is answered,
 * t gets the array (200), or 202 when no element was a request. Hub thread
 * only. mcp_ticket_batch_element returns NULL when out of memory. */
struct mcp_ticket *mcp_ticket_batch_element(struct mcp_ticket *t);
/* An answer the hub made for an element without handling it (refused). */
void mcp_ticket_batch_add(struct mcp_ticket *t, const char *json, size_t len);
void mcp_ticket_batch_end(struct mcp_ticket *t);

/* ---- replay (replay.c): resumable SSE streams of the gateway ------------
 * A session's log of the events it was sent on SSE streams, with their ids
 * "<stream>-<seq>": stream 0 is its GET stream, 1, 2, ... the answer streams
 * of its POSTs; seq increases across the session. Bounded: the newest
 * MCP_REPLAY_EVENTS events and at most MCP_REPLAY_BYTES of them. Reference-
 * counted (the session and every ticket writing into it); the rest is hub
 * thread only. */
#define MCP_REPLAY_EVENTS 256
#define MCP_REPLAY_BYTES (1u << 20)
struct mcp_evlog;
struct mcp_evlog *mcp_evlog_new(void);
void mcp_evlog_ref(struct mcp_evlog *l);
void mcp_evlog_unref(struct mcp_evlog *l);
/* Keeps json (copied) as the next event of stream; returns its seq. */
uint64_t mcp_evlog_add(struct mcp_evlog *l, uint32_t stream, const char *json, size_t len);
/* The seq of the newest event (0 before the first). */
uint64_t mcp_evlog_last(const struct mcp_evlog *l);
/* Calls emit for each kept event of stream after seq `after`, oldest first
 * (stops when emit returns non-zero). 1 when nothing after `after` was
 * dropped from the log, 0 when some was, -1 when `after` was never sent. */
int mcp_evlog_replay(const struct mcp_evlog *l, uint32_t stream, uint64_t after,
                     int (*emit)(void *ctx, uint64_t seq, const char *json, size_t len), void *ctx);
/* "<stream>-<seq>" (decimal) -> 0, else -1. */
int mcp_event_id_parse(const char *s, uint32_t *stream, uint64_t *seq);

/* ---- msg: worker -> hub ----------------------------------------------- */
enum mcp_http_method { MCP_POST = 1, MCP_GET, MCP_DELETE };

struct mcp_msg {
    struct mcp_msg *next;
    enum mcp_http_method method;
    struct mcp_ticket *t; /* the answer goes here (ref held) */
    struct config *cfg;   /* snapshot of the request (ref held) */
    char *body;           /* POST body, malloc'ed */
    size_t len;
    char session[80];       /* Mcp-Session-Id, "" when absent */
    int session_bad;        /* present but too long to be ours */
    char version[32];       /* MCP-Protocol-Version, "" when absent */
    char last_event_id[48]; /* GET: Last-Event-ID, "" when absent (or too long) */
    int accept_sse;         /* Accept allows text/event-stream */
    char *agent;            /* principal (Agent::"id"), "anonymous" when none */
    char **chain;           /* delegation chain, root first */
    size_t chain_len;
    char *owner; /* what binds a session to its creator */
    /* the rest of the principal, for identity tokens to upstreams */
    char *auth, *scope, *credential_id, *parent_request_id, *root_request_id, *root_key_id;
    double budget_usd;
    int64_t expires;
    /* containment: taint carried by a delegation token (identity_principal) */
    unsigned taint;
    char *taint_private, *taint_untrusted;
    char request_id[64];
    char traceparent[TRACEPARENT_LEN + 1]; /* for what the hub sends upstream for it */
};

void mcp_msg_free(struct mcp_msg *m);
/* A copy of m (the same principal and headers) carrying body (taken over)
 * and answered on t (ref taken); NULL when out of memory (body freed). */
struct mcp_msg *mcp_msg_copy(const struct mcp_msg *m, char *body, size_t len, struct mcp_ticket *t);

/* Queues m for the hub thread (takes ownership). Thread-safe. */
struct mcp_hub;
void mcp_hub_submit(struct mcp_hub *hub, struct mcp_msg *m);

/* ---- transport ops (the real ones, or a fake in unit tests) ------------ */
struct mcp_transport_ops {
    struct mcp_upstream *(*open)(uv_loop_t *loop, const struct mcp_upstream_spec *spec,
                                 const struct mcp_upstream_events *ev, void *ctx);
    int (*send)(struct mcp_upstream *u, const char *json, size_t len,
                const struct mcp_send_opts *opts);
    void (*initialized)(struct mcp_upstream *u, const char *protocol_version);
    void (*close)(struct mcp_upstream *u);
};

/* The transports of transport.h. */
extern const struct mcp_transport_ops mcp_transport_real;

/* ---- hub core (hub.c), on one loop ------------------------------------ */
struct mcp_core;

/* A core on loop for cfg (referenced); opens the upstreams with ops. */
struct mcp_core *mcp_core_new(uv_loop_t *loop, struct config *cfg,
                              const struct mcp_transport_ops *ops);
/* Handles one request (takes ownership of m). */
void mcp_core_handle(struct mcp_core *c, struct mcp_msg *m);
/* The identity that signs tokens for servers with identity_header. */
struct identity;
void mcp_core_set_identity(struct mcp_core *c, struct identity *id);
void mcp_core_reload(struct mcp_core *c, struct config *cfg);
void mcp_core_drain(struct mcp_core *c);
/* Closes upstreams, sessions and timers; frees once the handles are closed
 * (run the loop afterwards). */
void mcp_core_close(struct mcp_core *c);
/* Expires idle sessions and overdue requests as of now_ms (the sweep timer
 * calls it; tests call it with a chosen time). */
void mcp_core_sweep(struct mcp_core *c, uint64_t now_ms);
size_t mcp_core_session_count(const struct mcp_core *c);
/* Items per page of tools/list and the other lists (default MCP_PAGE_SIZE). */
#define MCP_PAGE_SIZE 1000
void mcp_core_set_page_size(struct mcp_core *c, size_t n);

/* ---- JSON-RPC (jsonrpc.c) ---------------------------------------------- */
#define JSONRPC_PARSE_ERROR -32700
#define JSONRPC_INVALID_REQUEST -32600
#define JSONRPC_METHOD_NOT_FOUND -32601
#define JSONRPC_INVALID_PARAMS -32602
#define JSONRPC_INTERNAL_ERROR -32603

enum mcp_kind { MCP_REQUEST = 1, MCP_NOTIFICATION, MCP_RESPONSE };

/* One JSON-RPC message, parsed. root owns everything. */
struct mcp_rpc {
    json_t *root;
    enum mcp_kind kind;
    json_t *id;         /* request/response id (borrowed) or NULL */
    const char *method; /* request/notification */
    json_t *params;     /* object or NULL */
};

/* Parses one message. 0, or a JSON-RPC error code with a message in why
 * (and *id set when the request's id could be read, for the error answer). */
int mcp_rpc_parse(const char *s, size_t len, struct mcp_rpc *out, json_t **id, char *why,
                  size_t whylen);
void mcp_rpc_free(struct mcp_rpc *r);

/* A POST body that is a JSON array: a batch (protocol 2025-03-26; later
 * versions removed them). 1 with *elems the array (caller frees; each element
 * is then checked by mcp_rpc_parse); 0 when the body is not an array (one
 * message); or a JSON-RPC error code with a message in why: unparseable,
 * empty, or more than MCP_BATCH_MAX elements. */
#define MCP_BATCH_MAX 100
int mcp_rpc_batch(const char *s, size_t len, json_t **elems, char *why, size_t whylen);

/* {"jsonrpc":"2.0","id":id,"error":{code,message[,data]}} as malloc'ed text.
 * id NULL means null; data is borrowed. */
char *mcp_rpc_error(const json_t *id, int code, const char *msg, const json_t *data);
/* {"jsonrpc":"2.0","id":id,"result":result}; result is borrowed. */
char *mcp_rpc_result(const json_t *id, const json_t *result);

/* Protocol versions the gateway speaks, newest first. */
extern const char *const mcp_versions[];
extern const size_t mcp_nversions;
int mcp_version_supported(const char *v);

#endif
