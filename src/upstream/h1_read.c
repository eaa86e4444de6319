// SPDX-License-Identifier: Apache-2.0
// The native HTTP/1.1 client reading an answer: http-parser (HTTP_RESPONSE)
// over the bytes of one connection, 1xx answers skipped, the head bounded,
// body bytes handed to on_data as they come, pauses honoured.
#include "upstream/h1_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct h1_req *req_of(http_parser *p)
{
    return ((struct h1_conn *)p->data)->req;
}

static int p_message_begin(http_parser *p)
{
    struct h1_req *r = req_of(p);
    r->head_bytes = 0;
    r->last_was_value = 1;
    r->field_is_ctype = 0;
    r->has_ctype = 0;
    r->ctype_len = 0;
    r->hdr_len = 0;
    r->hdr_name_len = 0;
    r->hdr_pending = 0;
    return 0;
}

/* cb.on_header only: collects a header's name and value pieces. */
static int hdr_append(struct h1_req *r, const char *at, size_t n)
{
    if (r->hdr_len + n > r->hdr_cap) {
        size_t cap = r->hdr_cap ? r->hdr_cap : 256;
        while (cap < r->hdr_len + n)
            cap *= 2;
        char *p = realloc(r->hdr, cap);
        if (!p) {
            r->fail_res = UPSTREAM_EIO;
            r->fail_msg = "out of memory";
            return -1;
        }
        r->hdr = p;
        r->hdr_cap = cap;
    }
    memcpy(r->hdr + r->hdr_len, at, n);
    r->hdr_len += n;
    return 0;
}

/* Hands the collected header to cb.on_header; -1 when the transfer must stop. */
static int hdr_flush(struct h1_conn *c)
{
    struct h1_req *r = c->req;
    if (!r->hdr_pending)
        return 0;
    r->hdr_pending = 0;
    size_t nl = r->hdr_name_len ? r->hdr_name_len : r->hdr_len;
    const char *v = r->hdr + nl;
    size_t vl = r->hdr_len - nl;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
    int rc = r->cb.on_header(r->ud, r->hdr, nl, v, vl);
    if (c->state == H1_CLOSING)
        return -1; /* cancelled (r is gone) or h1_free ran inside the callback */
    if (rc != 0) {
        r->aborted = 1;
        return -1;
    }
    return 0;
}

/* Counts head bytes (the parser hands over names, values and the reason
 * phrase; separators are added here). */
static int count_head(struct h1_req *r, size_t n)
{
    r->head_bytes += n;
    if (r->head_bytes > H1_HEAD_MAX) {
        r->fail_res = UPSTREAM_EIO;
        r->fail_msg = "upstream answer head too large";
        return -1;
    }
    return 0;
}

static int p_status(http_parser *p, const char *at, size_t n)
{
    return count_head(req_of(p), n + 15); /* "HTTP/1.1 200 " and CRLF */
}

static int p_header_field(http_parser *p, const char *at, size_t n)
{
    struct h1_req *r = req_of(p);
    size_t counted = n;
    if (r->cb.on_header && p->status_code >= 200 && !r->headers_done) { /* not trailers */
        if (r->last_was_value) {
            if (hdr_flush(p->data) < 0)
                return -1;
            r->hdr_len = 0;
            r->hdr_name_len = 0;
            r->hdr_pending = 1;
        }
        if (hdr_append(r, at, n) < 0)
            return -1;
    }
    if (r->last_was_value) { /* a new header; a name may come in pieces */
        r->last_was_value = 0;
        r->field_len = 0;
        counted += 4; /* ": " and CRLF */
    }
    if (count_head(r, counted) < 0)
        return -1;
    if (r->field_len < sizeof(r->field)) {
        size_t room = sizeof(r->field) - r->field_len;
        memcpy(r->field + r->field_len, at, n < room ? n : room);
    }
    r->field_len += n;
    if (r->field_len > sizeof(r->field)) /* too long for "content-type" */
        r->field_len = sizeof(r->field) + 1;
    return 0;
}

static int p_header_value(http_parser *p, const char *at, size_t n)
{
    struct h1_req *r = req_of(p);
    if (r->hdr_pending) {
        if (!r->last_was_value)
            r->hdr_name_len = r->hdr_len;
        if (hdr_append(r, at, n) < 0)
            return -1;
    }
    if (!r->last_was_value) {
        r->last_was_value = 1;
        r->field_is_ctype = r->field_len == 12 && strncasecmp(r->field, "content-type", 12) == 0;
        if (r->field_is_ctype) { /* the last one wins */
            r->has_ctype = 1;
            r->ctype_len = 0;
        }
    }
    if (count_head(r, n) < 0)
        return -1;
    if (r->field_is_ctype) {
        size_t room = H1_CTYPE_MAX - 1 - r->ctype_len;
        size_t take = n < room ? n : room;
        memcpy(r->ctype + r->ctype_len, at, take);
        r->ctype_len += take;
    }
    return 0;
}

static int p_headers_complete(http_parser *p)
{
    struct h1_conn *c = p->data;
    struct h1_req *r = c->req;
    if (p->status_code == 101) {
        r->fail_res = UPSTREAM_EIO;
        r->fail_msg = "upstream switched protocols";
        return -1;
    }
    if (p->status_code >= 100 && p->status_code < 200) {
        r->interim = 1; /* skipped: the final answer follows */
        return 0;
    }
    size_t s = 0, e = r->ctype_len;
    while (s < e && (r->ctype[s] == ' ' || r->ctype[s] == '\t'))
        s++;
    while (e > s && (r->ctype[e - 1] == ' ' || r->ctype[e - 1] == '\t'))
        e--;
    memmove(r->ctype, r->ctype + s, e - s);
    r->ctype[e - s] = '\0';
    if (r->hdr_pending && hdr_flush(c) < 0)
        return -1;
    r->headers_done = 1;
    int rc = r->cb.on_headers
                 ? r->cb.on_headers(r->ud, (long)p->status_code, r->has_ctype ? r->ctype : NULL)
                 : 0;
    if (c->state == H1_CLOSING)
        return -1; /* cancelled (r is gone) or h1_free ran inside the callback */
    if (rc != 0) {
        r->aborted = 1;
        return -1;
    }
    return 0;
}

static int p_body(http_parser *p, const char *at, size_t n)
{
    struct h1_conn *c = p->data;
    struct h1_req *r = c->req;
    if (r->paused) {
        /* keep the rest of this read for h1_resume */
        char *np = realloc(r->pending, r->pending_len + n);
        if (!np) {
            r->fail_res = UPSTREAM_EIO;
            r->fail_msg = "out of memory";
            return -1;
        }
        memcpy(np + r->pending_len, at, n);
        r->pending = np;
        r->pending_len += n;
        return 0;
    }
    int rc = r->cb.on_data ? r->cb.on_data(r->ud, at, n) : 0;
    if (c->state == H1_CLOSING)
        return -1; /* cancelled (r is gone) or h1_free ran inside the callback */
    if (rc < 0) {
        r->aborted = 1;
        return -1;
    }
    if (rc == 1)
        r->paused = 1; /* these bytes were taken; nothing more until h1_resume */
    return 0;
}

static int p_message_complete(http_parser *p)
{
    struct h1_conn *c = p->data;
    struct h1_req *r = c->req;
    if (r->interim) {
        r->interim = 0;
        return 0;
    }
    r->complete = 1;
    c->keep_alive = http_should_keep_alive(p);
    http_parser_pause(p, 1); /* what follows is not ours: the caller sees how much */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = p_message_begin,
    .on_status = p_status,
    .on_header_field = p_header_field,
    .on_header_value = p_header_value,
    .on_headers_complete = p_headers_complete,
    .on_body = p_body,
    .on_message_complete = p_message_complete,
};

void h1_parser_reset(struct h1_conn *c)
{
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
}

/* After the parser ran over len bytes (parsed of them) or over the EOF:
 * finish, fail, pause or wait for more. */
static void after_parse(struct h1_conn *c, size_t parsed, size_t len)
{
    struct h1_req *r = c->req;
    if (c->state == H1_CLOSING)
        return; /* h1_free ran inside a callback; r goes with c */
    if (r->aborted) {
        h1_req_fail(r, UPSTREAM_ECANCELED, "transfer stopped");
        return;
    }
    if (r->fail_msg) {
        h1_req_fail(r, r->fail_res, r->fail_msg);
        return;
    }
    if (r->complete) {
        if (parsed < len)
            c->extra = 1; /* never reuse a connection that said more */
        if (r->paused) {
            h1_stop_reading(c); /* h1_resume finishes */
            return;
        }
        h1_req_finish(r);
        return;
    }
    if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
        h1_req_fail(r, UPSTREAM_EIO,
                    r->headers_done ? "upstream sent a malformed answer body"
                                    : "upstream sent no valid answer");
        return;
    }
    if (r->paused)
        h1_stop_reading(c);
}

void h1_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct h1_conn *c = s->data;
    if (nread == 0)
        return;
    if (c->state != H1_ACTIVE || !c->req) {
        h1_conn_close(c); /* pooled: EOF, error or unsolicited bytes */
        return;
    }
    struct h1_req *r = c->req;
    if (nread < 0) {
        if (nread == UV_EOF && r->got) {
            /* the end of a close-delimited body, or a cut answer */
            http_parser_execute(&c->parser, &settings, NULL, 0);
            if (r->complete || r->aborted || r->fail_msg || c->state == H1_CLOSING) {
                c->keep_alive = 0;
                after_parse(c, 0, 0);
                return;
            }
        }
        h1_conn_broke(c);
        return;
    }
    r->got += (size_t)nread;
    size_t n = http_parser_execute(&c->parser, &settings, buf->base, (size_t)nread);
    after_parse(c, n, (size_t)nread);
}
