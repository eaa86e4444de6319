// SPDX-License-Identifier: Apache-2.0
// Internal to the llm module: one client call and its attempts across the
// model's targets. proxy.c drives it; mock.c is the in-process provider.
#ifndef PORTCULLIS_LLM_CALL_H
#define PORTCULLIS_LLM_CALL_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "budget/budget.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/json.h"
#include "llm/limits.h"

struct http_exchange;
struct upstream_req;
struct sse_filter;

enum llm_api { LLM_CHAT, LLM_EMBEDDINGS, LLM_MESSAGES };

#define LLM_MAX_TARGETS 16

struct llm_call {
    struct http_exchange *ex;
    enum llm_api api;
    const struct config_model *model;
    struct json_span root;          /* the client's body (validated), in ex->req->body */
    struct json_span jmodel;        /* "model" value */
    struct json_span jstream_options; /* "stream_options" value, kind JS_NONE if absent */
    int64_t max_tokens;             /* max_completion_tokens, else max_tokens; -1 = none */
    struct json_span jinclude_usage;  /* stream_options.include_usage, if present */
    json_t *body;                   /* DOM of the body, only when a mock needs it */
    int stream;                     /* client asked for SSE */
    int client_wants_usage;         /* stream_options.include_usage */
    int order[LLM_MAX_TARGETS];     /* target indexes, in attempt order */
    int ntargets;
    int next;                       /* index into order */
    int retries_left;
    const struct config_target *target;  /* current attempt */

    /* current attempt */
    struct upstream_req *ureq;
    uv_timer_t *timer;              /* mock provider's timer, if any */
    uint64_t attempt_start_ns;
    long status;
    int committed;                  /* answer chosen: the client gets this one */
    int streaming;                  /* committed as an SSE stream */
    int in_callback;                /* inside an upstream callback */
    int client_gone;
    int paused;
    char content_type[128];
    buf_t resp;                     /* buffered answer (non-streamed / failed) */
    buf_t out;                      /* scratch for filtered stream bytes */
    struct sse_filter *sse;

    /* the last failure, for the final answer when every target fails */
    int fail_kind;                  /* 0 none, 1 status, 2 transport */
    int fail_timeout;
    const char *fail_msg;

    /* budget (src/budget): the worst case reserved on the caller's chain */
    int has_reservation;
    struct budget_reservation reservation;

    /* rate limits and breakers (src/llm/limits.c) */
    struct llm_limits lim;

    /* mock streaming state */
    uint32_t mock_sent;
};

/* Starts the current target on the in-process mock provider. */
void llm_mock_start(struct llm_call *call);
/* Stops a mock attempt early (client gone). */
void llm_mock_stop(struct llm_call *call);

/* Called by attempts (upstream or mock) when they finish. ok=1 when the
 * attempt produced the client's answer; otherwise the call falls back. */
void llm_call_attempt_failed(struct llm_call *call, int kind, int timeout, const char *msg);
/* Past rate limits and breakers: the first attempt (proxy.c). */
void llm_call_admitted(struct llm_call *call);
/* Releases the call's hold on the exchange: the last thing an attempt does. */
void llm_call_release(struct llm_call *call);

/* Estimated prompt tokens for the mock provider and budgets (bytes / 4). */
uint64_t llm_estimate_prompt_tokens(const json_t *body);
/* The body as a jansson DOM, parsed on first use (NULL on OOM). */
json_t *llm_call_body(struct llm_call *call);

#endif
