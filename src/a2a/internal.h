// SPDX-License-Identifier: Apache-2.0
// Internal to src/a2a: the pure parts of the A2A proxy, testable without a
// loop — the JSON-RPC request reader, JSON-RPC error bodies, the agent card
// rewrite, the reply scan (guard) and the Server-Sent-Events splitter.
#ifndef PORTCULLIS_A2A_INTERNAL_H
#define PORTCULLIS_A2A_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "core/buf.h"

struct guard;

/* JSON-RPC 2.0 codes, and the gateway's own (in the server-error range, clear
 * of the -32001..-32009 that A2A assigns). */
#define A2A_PARSE_ERROR (-32700)
#define A2A_INVALID_REQUEST (-32600)
#define A2A_METHOD_NOT_FOUND (-32601)
#define A2A_INVALID_PARAMS (-32602)
#define A2A_INTERNAL_ERROR (-32603)
#define A2A_TASK_NOT_FOUND (-32001)         /* A2A's TaskNotFoundError */
#define A2A_INVALID_AGENT_RESPONSE (-32006) /* A2A's InvalidAgentResponseError */
#define A2A_PERMISSION_DENIED (-32050)      /* a Cedar policy refused the call */
#define A2A_UPSTREAM_UNAVAILABLE (-32051)   /* the agent could not be reached */
#define A2A_UPSTREAM_TIMEOUT (-32052)
#define A2A_REPLY_WITHHELD (-32053) /* guard: action block */
#define A2A_UNAUTHENTICATED (-32054)

/* Most bytes of one upstream reply the gateway holds (a whole JSON answer,
 * or one streamed event). */
#define A2A_MAX_REPLY (16u << 20)
#define A2A_MAX_EVENT (4u << 20)
/* Deepest nesting the reply scan walks; deeper replies are refused. */
#define A2A_MAX_DEPTH 128

enum a2a_method_kind {
    A2A_M_OTHER = 0, /* tasks/get, GetTask, push configs, ... */
    A2A_M_SEND,      /* message/send, SendMessage */
    A2A_M_STREAM,    /* message/stream, SendStreamingMessage */
    A2A_M_SUBSCRIBE, /* tasks/resubscribe, SubscribeToTask */
};

/* One JSON-RPC request as the client sent it. */
struct a2a_rpc {
    json_t *root;       /* owned: the parsed body */
    json_t *id;         /* borrowed from root: string, integer or null */
    const char *method; /* borrowed from root */
    enum a2a_method_kind kind;
    const char *skill; /* params.message.metadata.skill or params.metadata.skill, or NULL */
};

/* Reads body[0..len) as one A2A JSON-RPC request. Returns 0 and fills *out
 * (release with a2a_rpc_clear), or a JSON-RPC error code (A2A_PARSE_ERROR,
 * A2A_INVALID_REQUEST, A2A_INVALID_PARAMS) with a message in msg that never
 * quotes more than a short piece of the input. out->id is kept when the body
 * parsed far enough to have one. Duplicate keys are refused, so the gateway
 * and the agent cannot read two different methods out of one body. */
int a2a_rpc_parse(const char *body, size_t len, struct a2a_rpc *out, char *msg, size_t msglen)
    __attribute__((warn_unused_result));
void a2a_rpc_clear(struct a2a_rpc *r);

enum a2a_method_kind a2a_method_kind(const char *method);

/* A JSON-RPC error response body ("...\n"), malloc'd; NULL on out of memory.
 * id may be NULL (written as null); reason (may be NULL) goes to
 * error.data.reason. */
char *a2a_rpc_error(const json_t *id, int code, const char *message, const char *reason);

/* The agent card text in[0..len), rewritten so that a client keeps talking
 * through the gateway: url, every JSON-RPC interface (additionalInterfaces,
 * supportedInterfaces) points at rpc_url, interfaces of other transports
 * are dropped (the gateway proxies JSON-RPC only), preferredTransport becomes
 * JSONRPC, and signatures (which no longer verify) are removed. Returns a
 * malloc'd string, or NULL with a message in msg (not a JSON object, out of
 * memory). */
char *a2a_card_rewrite(const char *in, size_t len, const char *rpc_url, char *msg, size_t msglen);

/* The same on a parsed card, in place (a non-object is left alone): for the
 * result of GetExtendedAgentCard / agent/getAuthenticatedExtendedCard. */
void a2a_card_rewrite_json(json_t *card, const char *rpc_url);
/* 1 for the JSON-RPC methods whose result is an agent card. */
int a2a_method_returns_card(const char *method);

/* What the reply scan found. */
struct a2a_scan {
    size_t ntexts;   /* text parts scanned */
    size_t nhits;    /* of them, read as an injection */
    double score;    /* highest score of a hit */
    int changed;     /* sanitize rewrote at least one part */
    char rules[256]; /* distinct rule ids of the hits, comma-separated */
    buf_t findings;  /* JSON array entries (no brackets) for the audit record */
};

void a2a_scan_init(struct a2a_scan *s);
void a2a_scan_free(struct a2a_scan *s);

/* Scans every text part (an object with a string "text" inside a "parts"
 * array: messages, task status messages, history, artifacts, both the A2A
 * 0.3 and 1.0 shapes) of the JSON value v with guard g. With sanitize, each
 * part read as an injection is replaced in v by guard_sanitize's wrapped
 * copy (source names the agent). action names what is done, for the audit
 * entries. Returns 0, or -1 when scanning failed or v nests deeper than
 * A2A_MAX_DEPTH. */
int a2a_reply_scan(json_t *v, const struct guard *g, int sanitize, const char *source,
                   const char *action, struct a2a_scan *s) __attribute__((warn_unused_result));

/* ---- task owners (tasks.c) --------------------------------------------------- */

/* A bounded, thread-safe map task id -> the agent that started it. */
struct a2a_tasks;
struct a2a_tasks *a2a_tasks_new(void) __attribute__((warn_unused_result));
void a2a_tasks_free(struct a2a_tasks *t);
/* Notes owner for task unless the task has one already. */
void a2a_tasks_note(struct a2a_tasks *t, const char *task, const char *owner);
/* 1 and the owner copied (cut to len - 1) when the task is known; else 0. */
int a2a_tasks_owner(struct a2a_tasks *t, const char *task, char *owner, size_t len);

/* The task a request names (params.message.taskId, params.taskId, or
 * params.id of a method other than a message send), borrowed from root; NULL
 * when none. */
const char *a2a_rpc_task_ref(const json_t *root);
/* The task ids a reply's result (or one streamed event's) carries, in both
 * dialects; up to max, borrowed from result. */
size_t a2a_reply_task_ids(json_t *result, const char **ids, size_t max);

/* ---- process-wide state (state.c) -------------------------------------------- */

struct a2a;
/* The task owners of the proxy. */
struct a2a_tasks *a2a_tasks_of(struct a2a *a);
/* A copy of the card fetched from url when younger than ttl_ms, its length in
 * *len; NULL otherwise. Caller frees. Thread-safe. */
char *a2a_card_get(struct a2a *a, const char *url, uint32_t ttl_ms, size_t *len);
/* Keeps text[0..len) as the card of url (copied); at most 1024 cards, one
 * evicted when full. Thread-safe. */
void a2a_card_put(struct a2a *a, const char *url, const char *text, size_t len);

/* ---- Server-Sent Events ---------------------------------------------------- */

/* Splits a byte stream into events (each ended by a blank line; lines end
 * with \n, \r\n or \r), byte for byte, whatever the chunking. */
struct a2a_sse {
    buf_t held;        /* bytes of the event not yet complete */
    size_t pos;        /* scanned up to here */
    size_t line_start; /* start of the line being scanned */
};

typedef int (*a2a_sse_event_fn)(void *ud, const char *ev, size_t len);

void a2a_sse_init(struct a2a_sse *s, size_t max_event);
void a2a_sse_free(struct a2a_sse *s);
/* Calls fn for each complete event in held + in[0..len) (the event's bytes,
 * blank line included). Returns 0, -E2BIG when an event passes max_event
 * bytes, -ENOMEM, or fn's negative return (which stops the feed). */
int a2a_sse_feed(struct a2a_sse *s, const char *in, size_t len, a2a_sse_event_fn fn, void *ud)
    __attribute__((warn_unused_result));
/* End of stream: an incomplete event still held is handed to fn as it is
 * (len 0: nothing held, fn not called). Same returns. */
int a2a_sse_finish(struct a2a_sse *s, a2a_sse_event_fn fn, void *ud)
    __attribute__((warn_unused_result));

/* The data of one event: its "data:" lines joined with "\n" (one optional
 * space after the colon removed), appended to data; the "event:" name, if
 * any, copied to name (cut to namelen - 1). Returns the number of data lines,
 * or -1 when data is full. */
int a2a_sse_event_data(const char *ev, size_t len, buf_t *data, char *name, size_t namelen);

#endif
