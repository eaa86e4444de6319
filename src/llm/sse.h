// SPDX-License-Identifier: Apache-2.0
// Server-Sent-Events passthrough filter for streamed LLM answers: forwards
// upstream bytes to the client event by event, unchanged, while capturing
// token usage, and drops the usage-only chunk the gateway asked for itself.
#ifndef PORTCULLIS_LLM_SSE_H
#define PORTCULLIS_LLM_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum sse_dialect {
    SSE_OPENAI,    /* chat.completion.chunk events, "data: [DONE]"; also the
                      Responses API's response.completed usage */
    SSE_ANTHROPIC, /* message_start / message_delta usage; never stripped */
};

struct sse_filter;
typedef struct sse_filter sse_filter_t;

/* Token usage as the upstream reported it. */
struct sse_usage {
    uint64_t prompt_tokens;         /* OpenAI prompt_tokens, Anthropic input_tokens */
    uint64_t completion_tokens;     /* OpenAI completion_tokens, Anthropic output_tokens (last) */
    uint64_t cached_prompt_tokens;  /* prompt_tokens_details.cached_tokens or
                                       cache_read_input_tokens */
    uint64_t cache_creation_tokens; /* Anthropic cache_creation_input_tokens */
    int found;                      /* 0 until an event carried usage */
};

/*
 * strip_usage_chunk: when 1 (OpenAI only), an event whose JSON has a non-null
 * "usage" object and an empty "choices" array is removed from the output
 * (its usage is still recorded): the gateway added stream_options.include_usage
 * and the client did not ask for it. max_event_bytes bounds one event,
 * terminators included, and so the bytes held between feeds.
 * Returns NULL on OOM. Caller owns the result; free with sse_filter_free.
 */
struct sse_filter *sse_filter_new(enum sse_dialect dialect, int strip_usage_chunk,
                                  size_t max_event_bytes) __attribute__((warn_unused_result));
void sse_filter_free(struct sse_filter *f);

/*
 * Feeds upstream bytes; appends to out exactly the bytes to send to the client
 * now. Complete events (ended by a blank line; lines end with \n, \r\n or \r)
 * pass byte-for-byte unchanged except a dropped event; a trailing partial
 * event is held until its blank line arrives. The output does not depend on
 * how the stream is split across calls.
 * Returns 0, or -E2BIG when an event exceeds max_event_bytes, or -ENOMEM, or
 * out's own append error. After an error the filter stays failed (every later
 * call returns the same code) and the caller should abort the stream.
 */
int sse_filter_feed(struct sse_filter *f, const char *in, size_t len, buf_t *out)
    __attribute__((warn_unused_result));

/* End of stream: appends any held partial event unchanged (and records usage
 * it carries). 0 or a negative errno as for sse_filter_feed. */
int sse_filter_finish(struct sse_filter *f, buf_t *out) __attribute__((warn_unused_result));

/* Usage seen so far; *found = 0 (and zero counts) if none. Any pointer may be
 * NULL. */
void sse_filter_usage(const struct sse_filter *f, uint64_t *prompt_tokens,
                      uint64_t *completion_tokens, int *found);
void sse_filter_usage_detail(const struct sse_filter *f, struct sse_usage *u);

/* 1 once an OpenAI "data: [DONE]" event has been seen. */
int sse_filter_saw_done(const struct sse_filter *f);

#endif
