// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the inbound HTTP/1.1 request parser. The first input
// bytes choose the limits and the split points; the rest is the byte stream.
// Oracle: the same stream fed whole, in the chosen pieces, and one byte at a
// time must give the same sequence of outcomes, and every outcome must keep
// the limits.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"

#define MAX_OUTCOMES 64

struct outcome {
    int kind; /* 1 done, 2 error, 3 incomplete */
    int status;
    uint64_t digest;
};

struct trace {
    struct outcome o[MAX_OUTCOMES];
    int n;
};

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h ^ n;
}

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "invariant failed: %s\n", what);
        abort();
    }
}

static void check_field(const struct http_header *h)
{
    check(h->name_len > 0 && strlen(h->name) == h->name_len, "header name NUL-terminated");
    check(strlen(h->value) == h->value_len, "header value NUL-terminated");
    check(h->value_len == 0 || (h->value[0] != ' ' && h->value[h->value_len - 1] != ' '),
          "header value OWS stripped");
}

static void record(struct trace *t, const struct http_limits *lim, struct http_reqparser *p,
                   int kind)
{
    struct outcome o = {.kind = kind, .status = 0, .digest = 0xcbf29ce484222325ull};
    if (kind == 2) {
        o.status = http_reqparser_error_status(p);
        check(o.status >= 400 && o.status <= 505, "error status in range");
        check(strlen(http_reqparser_error_reason(p)) > 0, "error has a reason");
    } else if (kind == 1) {
        const struct http_request *r = http_reqparser_request(p);
        check(r->body.len <= lim->max_body_bytes, "body within limit");
        check(r->nheaders + r->ntrailers <= lim->max_headers, "fields within limit");
        check(r->target_len > 0 && strlen(r->target) == r->target_len, "target");
        check(strlen(r->path) == r->path_len && r->path_len <= r->target_len, "path");
        check(r->http_major == 1 && r->http_minor <= 1, "version");
        if (!r->chunked)
            check(r->content_length < 0 ? r->body.len == 0
                                        : (uint64_t)r->content_length == r->body.len,
                  "body length matches Content-Length");
        for (size_t i = 0; i < r->nheaders; i++)
            check_field(&r->headers[i]);
        for (size_t i = 0; i < r->ntrailers; i++)
            check_field(&r->trailers[i]);
        o.digest = mix(o.digest, r->method, strlen(r->method));
        o.digest = mix(o.digest, r->target, r->target_len);
        o.digest = mix(o.digest, r->query, strlen(r->query));
        o.digest = mix(o.digest, r->body.data ? r->body.data : "", r->body.len);
        int flags[4] = {r->keep_alive, r->expect_continue, r->chunked, (int)r->nheaders};
        o.digest = mix(o.digest, flags, sizeof(flags));
        for (size_t i = 0; i < r->nheaders; i++) {
            o.digest = mix(o.digest, r->headers[i].name, r->headers[i].name_len);
            o.digest = mix(o.digest, r->headers[i].value, r->headers[i].value_len);
        }
    }
    if (t->n < MAX_OUTCOMES)
        t->o[t->n++] = o;
}

/* Feeds data in pieces of the sizes in split[] (cycled; 0 entries = whole). */
static void run(const struct http_limits *lim, const uint8_t *data, size_t len,
                const uint8_t *split, size_t nsplit, struct trace *t)
{
    struct http_reqparser *p = http_reqparser_new(lim);
    if (!p)
        abort();
    uint8_t *pending = malloc(len + 1);
    size_t plen = 0, off = 0, k = 0;
    int stopped = 0, headers = 0;
    t->n = 0;
    while (!stopped && off < len && t->n < MAX_OUTCOMES) {
        size_t n = nsplit ? (size_t)split[k++ % nsplit] + 1 : len;
        if (n > len - off)
            n = len - off;
        memcpy(pending + plen, data + off, n);
        plen += n;
        off += n;
        while (t->n < MAX_OUTCOMES) {
            size_t used = 0;
            enum http_parse_status st = http_reqparser_feed(p, (char *)pending, plen, &used);
            check(used <= plen, "consumed <= len");
            memset(pending, 0xEE, used);
            memmove(pending, pending + used, plen - used);
            plen -= used;
            if (st == HTTP_PARSE_AGAIN) {
                check(plen == 0, "AGAIN consumes everything");
                break;
            }
            if (st == HTTP_PARSE_HEADERS) {
                check(!headers, "HEADERS once");
                check(http_reqparser_request(p)->body.len == 0, "no body before HEADERS");
                headers = 1;
                continue;
            }
            if (st == HTTP_PARSE_ERROR) {
                record(t, lim, p, 2);
                stopped = 1;
                break;
            }
            check(st == HTTP_PARSE_DONE && headers, "DONE after HEADERS");
            record(t, lim, p, 1);
            http_reqparser_reset(p);
            headers = 0;
            if (plen == 0)
                break;
        }
    }
    if (!stopped && t->n < MAX_OUTCOMES && http_reqparser_started(p))
        record(t, lim, p, 3);
    free(pending);
    http_reqparser_free(p);
}

static int same(const struct trace *a, const struct trace *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++)
        if (a->o[i].kind != b->o[i].kind || a->o[i].status != b->o[i].status ||
            a->o[i].digest != b->o[i].digest)
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct http_limits limits[4] = {
        {.max_header_bytes = 256, .max_headers = 8, .max_body_bytes = 64},
        {.max_header_bytes = 1024, .max_headers = 16, .max_body_bytes = 512},
        {.max_header_bytes = 64, .max_headers = 2, .max_body_bytes = 8},
        {.max_header_bytes = 4096, .max_headers = 32, .max_body_bytes = 4096},
    };
    if (size < 2)
        return 0;
    const struct http_limits *lim = &limits[data[0] & 3];
    size_t nsplit = data[1] & 15;
    if (size < 2 + nsplit)
        return 0;
    const uint8_t *split = data + 2;
    const uint8_t *body = data + 2 + nsplit;
    size_t len = size - 2 - nsplit;

    static struct trace whole, pieces, bytes;
    static const uint8_t one[1] = {0};
    run(lim, body, len, NULL, 0, &whole);
    run(lim, body, len, split, nsplit, &pieces);
    run(lim, body, len, one, 1, &bytes);
    check(same(&whole, &pieces), "whole == pieces");
    check(same(&whole, &bytes), "whole == byte by byte");
    return 0;
}
