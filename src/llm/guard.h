// SPDX-License-Identifier: Apache-2.0
// Internal to the llm module: guard on the `tool` messages of a chat request
// (guard.scan: [tool_messages]); see src/llm/guard.c.
#ifndef PORTCULLIS_LLM_GUARD_H
#define PORTCULLIS_LLM_GUARD_H

struct http_exchange;
struct json_span;

/* Scans the tool messages of `messages` (a span into ex->req->body) when the config
 * asks for it. Returns 0 to go on — with *rewritten = 1 when the body was replaced by a
 * sanitized one (spans into the old body are then stale) — or -1 when it has answered
 * (block: 400 tool_output_withheld; 500). Sets ex->guard for the audit record and, for
 * flag and sanitize, the x-portcullis-guard response header. */
int llm_guard_tool_messages(struct http_exchange *ex, const struct json_span *messages,
                            int *rewritten);

#endif
