// SPDX-License-Identifier: Apache-2.0
// W3C trace context (traceparent) in and out. A request's trace id is the
// one its traceparent header carries; without one it is derived from the
// root request id of its delegation chain, so every call an agent tree makes
// shares one trace even when the agents propagate nothing. Calls the gateway
// makes upstream on behalf of a request (MCP, A2A) carry a traceparent with
// that trace id and a span id derived from the request id.
#ifndef PORTCULLIS_TELEMETRY_TRACE_H
#define PORTCULLIS_TELEMETRY_TRACE_H

#include <stddef.h>

struct http_exchange;

#define TRACEPARENT_LEN 55 /* "00-" 32 hex "-" 16 hex "-" 2 hex */

/* The 32 lowercase hex digits of a valid traceparent value (version 00,
 * non-zero trace and parent ids), copied to out; 0 when the value is not
 * one. */
int traceparent_parse(const char *v, size_t len, char trace_id[33], char parent_id[17]);

/* The trace id of ex (see above); always a valid non-zero id. */
void trace_id_of_exchange(const struct http_exchange *ex, char out[33]);

/* The traceparent to send upstream on behalf of ex, NUL-terminated. The
 * span id it carries is remembered (bounded, newest wins) with ex's request
 * id and root, so a later request that comes back with it — an upstream tool
 * or agent calling the gateway while it serves ex — is recorded as ex's
 * child. */
void trace_outbound(const struct http_exchange *ex, char out[TRACEPARENT_LEN + 1]);

/* The request that ex was made on behalf of, by its traceparent: when the
 * parent span id is one this process sent upstream (trace_outbound), copies
 * that request's id and root request id and returns 1; else 0. */
int trace_parent_of_exchange(const struct http_exchange *ex, char parent[64], char root[64]);

/* How many spans trace_outbound remembers (older ones are forgotten). */
#define TRACE_SPANS_REMEMBERED 16384

#endif
