// SPDX-License-Identifier: Apache-2.0
// Inbound HTTP/1.1 request parser: wraps http-parser (so llhttp can replace it)
// and adds what http-parser lets through: bare LF / bare CR line endings,
// obs-fold, whitespace before the header colon, and the size limits.
// Pure: bytes in, a request (or an error status) out; no I/O.
#ifndef PORTCULLIS_HTTP_PARSER_H
#define PORTCULLIS_HTTP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct http_limits {
    uint32_t max_header_bytes;  /* request line + headers incl. CRLFs; over -> 431 */
    uint32_t max_headers;       /* header field count; over -> 431 */
    uint64_t max_body_bytes;    /* decoded body; over -> 413 (checked against
                                 * Content-Length as soon as headers end) */
};

struct http_header {
    const char *name;           /* as received (not NUL-terminated beyond name_len... but is NUL-terminated) */
    size_t name_len;
    const char *value;          /* leading/trailing OWS stripped; NUL-terminated */
    size_t value_len;
};

struct http_request {
    const char *method;         /* "GET", "POST", ... NUL-terminated */
    const char *target;         /* request-target as sent, NUL-terminated */
    size_t target_len;
    const char *path;           /* target up to '?' or end, NUL-terminated copy */
    size_t path_len;
    const char *query;          /* after '?', NUL-terminated; "" if none */
    unsigned http_major, http_minor;
    struct http_header *headers;
    size_t nheaders;
    int keep_alive;             /* per HTTP version and Connection header */
    int expect_continue;        /* "Expect: 100-continue" was sent */
    int chunked;                /* body came chunked */
    int64_t content_length;     /* -1 when absent */
    buf_t body;                 /* decoded body (de-chunked); max = max_body_bytes.
                                 * Owned by the parser; to keep it past reset,
                                 * move the buf_t out and buf_init() this one
                                 * again with the same max. */
    /* Added: trailer fields of a chunked body (never merged into headers);
     * same storage rules as headers. Set at HTTP_PARSE_DONE. */
    struct http_header *trailers;
    size_t ntrailers;
};

/* Results of http_reqparser_feed. Negative values are errors. */
enum http_parse_status {
    HTTP_PARSE_ERROR = -1,      /* see http_reqparser_error_*; close after replying */
    HTTP_PARSE_AGAIN = 0,       /* all input consumed, need more */
    HTTP_PARSE_HEADERS = 1,     /* headers complete (returned once per request,
                                 * before any body byte is consumed); call feed
                                 * again with the rest -- also when no bytes
                                 * are left (len 0): a request without a body
                                 * then returns HTTP_PARSE_DONE at once */
    HTTP_PARSE_DONE = 2,        /* request complete; *consumed tells where the
                                 * next (pipelined) request starts */
};

struct http_reqparser;          /* opaque */

/* Allocates a parser; the limits are copied. NULL on OOM. Free with
 * http_reqparser_free. */
struct http_reqparser *http_reqparser_new(const struct http_limits *limits);
void http_reqparser_free(struct http_reqparser *p);

/* Feeds bytes. *consumed is set to how many of them were used. Bytes not
 * consumed after HTTP_PARSE_DONE belong to the next request; the caller feeds
 * them after http_reqparser_reset. */
enum http_parse_status http_reqparser_feed(struct http_reqparser *p, const char *data,
                                           size_t len, size_t *consumed);

/* Valid after HTTP_PARSE_HEADERS / HTTP_PARSE_DONE until the next reset.
 * Owned by the parser. */
struct http_request *http_reqparser_request(struct http_reqparser *p);

/* After HTTP_PARSE_ERROR: the status to answer with (400, 413, 431, 501, 505)
 * and a short human-readable reason (static string, safe to send).
 * 400: bad framing or syntax (bare LF/CR, obs-fold, space before a colon, bad
 *      header name/value bytes, CL+TE, repeated CL/TE/Host, non-decimal CL,
 *      bad chunk size line, missing CRLF after chunk data, TE in HTTP/1.0,
 *      missing Host in HTTP/1.1, fragment or non-ASCII in the target).
 * 413: Content-Length or the sum of chunk sizes over max_body_bytes (decided
 *      from the header / chunk-size line, before the body bytes arrive).
 * 431: header (+ trailer) section over max_header_bytes, or more than
 *      max_headers fields (headers and trailers together). http-parser's own
 *      80 KiB header cap also yields 431.
 * 501: unknown method, CONNECT, Transfer-Encoding other than exactly "chunked".
 * 505: HTTP version other than 1.0 and 1.1. 500: out of memory. */
int http_reqparser_error_status(const struct http_reqparser *p);
const char *http_reqparser_error_reason(const struct http_reqparser *p);

/* True once any byte of the current request has been seen (for telling an
 * idle keep-alive connection from a slow request). */
int http_reqparser_started(const struct http_reqparser *p);

/* Prepares for the next request on the same connection; keeps buffers. */
void http_reqparser_reset(struct http_reqparser *p);

/* Case-insensitive header lookup; first match or NULL. */
const struct http_header *http_request_header(const struct http_request *r, const char *name);

#endif
