// SPDX-License-Identifier: Apache-2.0
// Internal to the MCP transports: the byte-level framing they share, kept
// free of I/O so it can be unit-tested and fuzzed alone. Newline-delimited
// lines (stdio stdout/stderr), Server-Sent Events (Streamable HTTP answers
// and the GET stream), splitting a JSON-RPC batch into its messages, and a
// shallow look at a message's top-level "id" / "method" / "result".
#ifndef PORTCULLIS_MCP_TRANSPORT_FRAME_H
#define PORTCULLIS_MCP_TRANSPORT_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* ---- newline-delimited lines --------------------------------------------- */

/* A line callback returns 0 to go on; anything else stops the feed, which
 * returns that value (the callback may have freed what owns the splitter). */
typedef int (*mcp_line_fn)(void *ctx, const char *line, size_t len);

struct mcp_lines {
    buf_t held;   /* the partial line waiting for its newline */
    size_t max;   /* longest line accepted */
    int truncate; /* 1: a longer line is delivered in pieces of max bytes;
                     0: it is an error (-E2BIG) */
};

void mcp_lines_init(struct mcp_lines *l, size_t max, int truncate);
/* Delivers every complete line in data (ended by \n; a \r before it is
 * dropped; empty lines are skipped). Lines inside data are handed over
 * without a copy. Returns 0, -E2BIG (a line passed max: the held bytes are
 * dropped and the rest of data is not looked at), -ENOMEM, or the
 * callback's non-zero return. */
int mcp_lines_feed(struct mcp_lines *l, const char *data, size_t len, mcp_line_fn fn, void *ctx)
    __attribute__((warn_unused_result));
/* End of stream: delivers a held partial line (truncate mode) or drops it. */
int mcp_lines_finish(struct mcp_lines *l, mcp_line_fn fn, void *ctx);
void mcp_lines_free(struct mcp_lines *l);

/* ---- Server-Sent Events -------------------------------------------------- */

struct mcp_sse_event {
    const char *type; /* "message" when the event named none; NUL-terminated */
    const char *data; /* the data lines joined with \n; NUL-terminated */
    size_t data_len;
    const char *id; /* the last event id seen on the stream (may be "") */
};

/* Returns 0 to go on; anything else stops the feed, which returns it. */
typedef int (*mcp_sse_fn)(void *ctx, const struct mcp_sse_event *ev);

struct mcp_sse {
    buf_t line;       /* the line being read */
    buf_t data;       /* data of the event being read */
    buf_t type;       /* its event type */
    char id[256];     /* last event id (longer ids are ignored) */
    int64_t retry_ms; /* the last "retry:" value, -1 if none */
    size_t max;       /* bound on one line and on one event's data */
    int after_cr;     /* the previous byte ended a line with \r */
    int started;      /* past a leading BOM */
    int failed;       /* a previous feed returned an error */
};

void mcp_sse_init(struct mcp_sse *s, size_t max);
/* Parses bytes of an event stream (lines end with \r\n, \n or \r; "data",
 * "event", "id" and "retry" fields; ':' comments) and calls fn for each
 * event whose data is not empty, once its blank line arrives. The result
 * does not depend on how the stream is cut. Returns 0, -E2BIG (a line or an
 * event's data passed max), -ENOMEM, or the callback's non-zero return;
 * after -E2BIG / -ENOMEM every later call fails the same way. */
int mcp_sse_feed(struct mcp_sse *s, const char *in, size_t len, mcp_sse_fn fn, void *ctx)
    __attribute__((warn_unused_result));
void mcp_sse_free(struct mcp_sse *s);

/* ---- JSON-RPC messages --------------------------------------------------- */

/* Calls fn for each message in json: the element of a top-level array (a
 * batch), or the whole value, without surrounding whitespace. The whole
 * text is checked before the first call: -EINVAL when it is not one JSON
 * value (strings, nesting, the batch's separators are checked; scalars and
 * objects' insides only loosely), nesting deeper than 512, or an empty
 * batch. Otherwise 0, or fn's non-zero return. */
int mcp_json_split(const char *json, size_t len, mcp_line_fn fn, void *ctx)
    __attribute__((warn_unused_result));

/* What the transports need to know about one message, from its top level. */
struct mcp_json_info {
    const char *id; /* the raw "id" value (a number or a quoted string), or NULL */
    size_t id_len;
    const char *method; /* the raw "method" value, quotes included, or NULL */
    size_t method_len;
    int has_result; /* "result" or "error" present */
};

/* 0 and fills *info when json is an object; -EINVAL otherwise. */
int mcp_json_info(const char *json, size_t len, struct mcp_json_info *info);

/* 1 when info describes a response (result or error, no method) whose raw
 * id token is byte for byte want. */
int mcp_json_is_response_to(const struct mcp_json_info *info, const char *want, size_t want_len);

#endif
