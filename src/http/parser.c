// SPDX-License-Identifier: Apache-2.0
// Inbound HTTP/1.1 request parser (see parser.h). A strict byte-level gate
// checks the framing (request line, header lines, chunk lines, trailers) and
// owns the message boundaries; http-parser then parses what the gate let
// through and decodes the body. Pipeline stage: accept -> [http] -> route.
#include "http/parser.h"
#include "core/hex.h"

#include <errno.h>
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A chunk-size line (size, extensions, CRLF) may not be longer than this. */
#define CHUNK_LINE_MAX 4096
/* Bodies bigger than this are released on reset instead of kept. */
#define BODY_KEEP_MAX (64 * 1024)

enum phase {
    PH_HEAD,       /* request line + header fields, copied into p->head */
    PH_BODY_CL,    /* Content-Length body: p->remaining raw bytes */
    PH_CHUNK_LINE, /* chunk-size [; ext] CRLF */
    PH_CHUNK_DATA, /* chunk payload: p->remaining raw bytes */
    PH_CHUNK_END,  /* the CRLF after a chunk payload */
    PH_TRAILERS,   /* trailer section after the last chunk, copied into p->trl */
    PH_MSG_END,    /* the gate saw the last byte; http-parser must agree */
    PH_COMPLETE,   /* HEADERS returned for a body-less request; next feed says DONE */
    PH_DONE,
    PH_ERROR,
};

/* Lexer states for a header section (also used for the trailer section). */
enum lex {
    LX_START, /* before the request line; empty lines (CRLF) are skipped */
    LX_START_CR,
    LX_METHOD,
    LX_TARGET0,
    LX_TARGET,
    LX_VERSION,
    LX_RL_CR,
    LX_LINE, /* start of a field line, or the final CRLF */
    LX_NAME,
    LX_OWS, /* whitespace after the colon */
    LX_VALUE,
    LX_FIELD_CR,
    LX_END_CR,
};

/* Chunk-size line states. */
enum chunk_lex {
    CK_SIZE0, /* first hex digit */
    CK_SIZE,
    CK_BWS, /* whitespace after the size, before ';' */
    CK_EXT,
    CK_CR,
};

struct span {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
};

/* One header or trailer section: the raw bytes as received, plus where each
 * field sits in them (offsets, because the buffer may move while growing). */
struct section {
    buf_t raw;
    enum lex st;
    struct span *spans;
    uint32_t nspans, cap;
    struct http_header *out; /* built when the section ends */
    uint32_t out_cap;
};

struct http_reqparser {
    struct http_limits limits;
    http_parser hp;
    enum phase phase;
    int started;
    int err_status;
    const char *err_reason;
    int cb_status; /* set by a callback that failed */
    const char *cb_reason;
    int hp_headers_done;
    int hp_msg_done;

    struct section head;
    struct section trl;
    uint32_t section_bytes; /* header + trailer bytes so far, vs max_header_bytes */
    uint32_t fields;        /* header + trailer fields so far, vs max_headers */

    /* request line, offsets into head.raw */
    uint32_t method_off, method_len, target_off, target_len;
    char ver[9];
    uint32_t ver_len;

    /* body framing */
    uint64_t remaining;     /* raw bytes left in a CL body or a chunk */
    uint64_t body_declared; /* sum of chunk sizes so far */
    enum chunk_lex ck;
    uint64_t ck_size;
    uint32_t ck_line;
    int ck_end; /* 0: expect CR after chunk data, 1: expect LF */

    struct http_request req;
};

/* ---- character classes ------------------------------------------------ */

/* tchar: ALPHA DIGIT and !#$%&'*+-.^_`|~ as a bitmap over ASCII */
static inline int is_tchar(unsigned char c)
{
    static const uint64_t lo = 0x3ff6cfa00000000ull, hi = 0x57ffffffc7fffffeull;
    return c < 64 ? (int)((lo >> c) & 1) : c < 128 ? (int)((hi >> (c - 64)) & 1) : 0;
}

/* field-vchar: VCHAR or obs-text */
static inline int is_field_vchar(unsigned char c)
{
    return (c > 0x20 && c < 0x7f) || c >= 0x80;
}

/* ---- errors ------------------------------------------------------------ */

static int fail(struct http_reqparser *p, int status, const char *reason)
{
    p->err_status = status;
    p->err_reason = reason;
    return -1;
}

static int fail_from_hp(struct http_reqparser *p)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
    if (p->cb_status)
        return fail(p, p->cb_status, p->cb_reason);
    switch (e) {
    case HPE_HEADER_OVERFLOW:
        return fail(p, 431, "header section too large");
    case HPE_INVALID_METHOD:
        return fail(p, 501, "method not implemented");
    case HPE_INVALID_VERSION:
        return fail(p, 505, "HTTP version not supported");
    case HPE_INVALID_CONTENT_LENGTH:
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        return fail(p, 400, "invalid Content-Length");
    case HPE_INVALID_CHUNK_SIZE:
        return fail(p, 400, "invalid chunk size");
    case HPE_INVALID_TRANSFER_ENCODING:
        return fail(p, 501, "unsupported Transfer-Encoding");
    case HPE_UNKNOWN:
        return fail(p, 400, "malformed request");
    case HPE_INVALID_URL:
    case HPE_INVALID_HOST:
    case HPE_INVALID_PORT:
    case HPE_INVALID_PATH:
    case HPE_INVALID_QUERY_STRING:
    case HPE_INVALID_FRAGMENT:
        return fail(p, 400, "invalid request target");
    default:
        return fail(p, 400, http_errno_description(e));
    }
}

/* ---- http-parser glue -------------------------------------------------- */

static int on_headers_complete(http_parser *hp)
{
    struct http_reqparser *p = hp->data;
    p->hp_headers_done = 1;
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    struct http_reqparser *p = hp->data;
    int rc = buf_append(&p->req.body, at, len);
    if (rc == -E2BIG) {
        p->cb_status = 413;
        p->cb_reason = "request body too large";
        return -1;
    }
    if (rc) {
        p->cb_status = 500;
        p->cb_reason = "out of memory";
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    struct http_reqparser *p = hp->data;
    p->hp_msg_done = 1;
    /* Never let http-parser run into the next pipelined request. */
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings hp_settings = {
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Runs http-parser over bytes the gate has accepted. The gate decides where
 * the message ends, so http-parser must take every byte, and may only finish
 * the message on the last byte of the gate's message. */
static int hp_exec(struct http_reqparser *p, const char *d, size_t n)
{
    if (n == 0)
        return 0;
    if (p->hp_msg_done)
        return fail(p, 400, "request framing mismatch");
    size_t got = http_parser_execute(&p->hp, &hp_settings, d, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
    if (e != HPE_OK && e != HPE_PAUSED)
        return fail_from_hp(p);
    if (got != n)
        return fail(p, 400, "request framing mismatch");
    return 0;
}

/* ---- header / trailer sections ---------------------------------------- */

static int section_add_field(struct http_reqparser *p, struct section *s, uint32_t off)
{
    if (p->fields >= p->limits.max_headers)
        return fail(p, 431, "too many header fields");
    if (s->nspans == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 16;
        if (cap > p->limits.max_headers)
            cap = p->limits.max_headers;
        struct span *ns = realloc(s->spans, cap * sizeof(*ns));
        if (!ns)
            return fail(p, 500, "out of memory");
        s->spans = ns;
        s->cap = cap;
    }
    struct span *sp = &s->spans[s->nspans++];
    sp->name_off = off;
    sp->name_len = 0;
    sp->value_off = 0;
    sp->value_len = 0;
    p->fields++;
    return 0;
}

/* Checks one byte of a header or trailer section at offset off within the
 * section. Returns 0 to go on, 1 when the byte ended the section, -1 on error. */
static int lex_byte(struct http_reqparser *p, struct section *s, unsigned char c, uint32_t off)
{
    struct span *sp = s->nspans ? &s->spans[s->nspans - 1] : NULL;

    switch (s->st) {
    case LX_START:
        if (c == '\r') {
            s->st = LX_START_CR;
            return 0;
        }
        if (c == '\n')
            return fail(p, 400, "bare LF line ending");
        if (!is_tchar(c))
            return fail(p, 400, "invalid character in method");
        p->method_off = off;
        s->st = LX_METHOD;
        return 0;
    case LX_START_CR:
        if (c != '\n')
            return fail(p, 400, "bare CR");
        s->st = LX_START;
        return 0;
    case LX_METHOD:
        if (c == ' ') {
            p->method_len = off - p->method_off;
            s->st = LX_TARGET0;
            return 0;
        }
        if (!is_tchar(c))
            return fail(p, 400, "invalid character in method");
        return 0;
    case LX_TARGET0:
        if (c == ' ')
            return fail(p, 400, "extra whitespace in request line");
        p->target_off = off;
        s->st = LX_TARGET;
        /* fall through */
    case LX_TARGET:
        if (c == ' ') {
            p->target_len = off - p->target_off;
            p->ver_len = 0;
            s->st = LX_VERSION;
            return 0;
        }
        if (c == '\r' || c == '\n')
            return fail(p, 400, "missing HTTP version in request line");
        if (c == '#')
            return fail(p, 400, "fragment in request target");
        if (c <= 0x20 || c >= 0x7f)
            return fail(p, 400, "invalid character in request target");
        return 0;
    case LX_VERSION:
        if (c == '\r') {
            const char *v = p->ver;
            if (p->ver_len != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
                v[6] != '.' || v[7] < '0' || v[7] > '9')
                return fail(p, 400, "malformed HTTP version");
            if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
                return fail(p, 505, "HTTP version not supported");
            s->st = LX_RL_CR;
            return 0;
        }
        if (c == '\n')
            return fail(p, 400, "bare LF line ending");
        if (p->ver_len >= 8)
            return fail(p, 400, "malformed HTTP version");
        p->ver[p->ver_len++] = (char)c;
        return 0;
    case LX_RL_CR:
        if (c != '\n')
            return fail(p, 400, "bare CR");
        s->st = LX_LINE;
        return 0;
    case LX_LINE:
        if (c == '\r') {
            s->st = LX_END_CR;
            return 0;
        }
        if (c == '\n')
            return fail(p, 400, "bare LF line ending");
        if (c == ' ' || c == '\t')
            return fail(p, 400, "obsolete line folding (line starts with whitespace)");
        if (c == ':')
            return fail(p, 400, "empty header name");
        if (!is_tchar(c))
            return fail(p, 400, "invalid character in header name");
        if (section_add_field(p, s, off) < 0)
            return -1;
        s->st = LX_NAME;
        return 0;
    case LX_NAME:
        if (c == ':') {
            sp->name_len = off - sp->name_off;
            s->st = LX_OWS;
            return 0;
        }
        if (c == ' ' || c == '\t')
            return fail(p, 400, "whitespace between header name and colon");
        if (c == '\r' || c == '\n')
            return fail(p, 400, "header line without colon");
        if (!is_tchar(c))
            return fail(p, 400, "invalid character in header name");
        return 0;
    case LX_OWS:
        if (c == ' ' || c == '\t')
            return 0;
        sp->value_off = off;
        sp->value_len = 0;
        if (c == '\r') {
            s->st = LX_FIELD_CR;
            return 0;
        }
        if (c == '\n')
            return fail(p, 400, "bare LF line ending");
        if (!is_field_vchar(c))
            return fail(p, 400, "control character in header value");
        sp->value_len = 1;
        s->st = LX_VALUE;
        return 0;
    case LX_VALUE:
        if (c == '\r') {
            s->st = LX_FIELD_CR;
            return 0;
        }
        if (c == '\n')
            return fail(p, 400, "bare LF line ending");
        if (c == ' ' || c == '\t')
            return 0;
        if (!is_field_vchar(c))
            return fail(p, 400, "control character in header value");
        sp->value_len = off + 1 - sp->value_off;
        return 0;
    case LX_FIELD_CR:
        if (c != '\n')
            return fail(p, 400, "bare CR");
        s->st = LX_LINE;
        return 0;
    case LX_END_CR:
        if (c != '\n')
            return fail(p, 400, "bare CR");
        return 1;
    }
    return fail(p, 500, "parser state corrupt");
}

/* Skips, without the per-byte state machine, the run of ordinary bytes
 * inside a name, target or value that lex_byte would accept without changing
 * state. pos is at section offset off; returns where the run ends (< end). */
static size_t lex_fast(struct section *s, const unsigned char *in, size_t pos, size_t end,
                       uint32_t off)
{
    size_t q = pos;
    switch (s->st) {
    case LX_NAME:
        while (q < end && is_tchar(in[q]))
            q++;
        break;
    case LX_TARGET:
        while (q < end && in[q] > 0x20 && in[q] < 0x7f && in[q] != '#')
            q++;
        break;
    case LX_VALUE: {
        size_t last = SIZE_MAX;
        for (; q < end; q++) {
            unsigned char c = in[q];
            if (c == ' ' || c == '\t')
                continue;
            if (!is_field_vchar(c))
                break;
            last = q;
        }
        if (last != SIZE_MAX) {
            struct span *sp = &s->spans[s->nspans - 1];
            sp->value_len = off + (uint32_t)(last - pos) + 1 - sp->value_off;
        }
        break;
    }
    default:
        break;
    }
    return q;
}

/* Builds s->out from the spans; NUL-terminates names and values in place
 * (the colon after a name and the byte after a value are no longer needed). */
static int section_build(struct http_reqparser *p, struct section *s)
{
    if (s->nspans > s->out_cap) {
        struct http_header *o = realloc(s->out, s->nspans * sizeof(*o));
        if (!o)
            return fail(p, 500, "out of memory");
        s->out = o;
        s->out_cap = s->nspans;
    }
    char *raw = s->raw.data;
    for (uint32_t i = 0; i < s->nspans; i++) {
        const struct span *sp = &s->spans[i];
        raw[sp->name_off + sp->name_len] = '\0';
        raw[sp->value_off + sp->value_len] = '\0';
        s->out[i].name = raw + sp->name_off;
        s->out[i].name_len = sp->name_len;
        s->out[i].value = raw + sp->value_off;
        s->out[i].value_len = sp->value_len;
    }
    return 0;
}

static void section_reset(struct section *s, enum lex st)
{
    buf_reset(&s->raw);
    s->st = st;
    s->nspans = 0;
}

static void section_free(struct section *s)
{
    buf_free(&s->raw);
    free(s->spans);
    free(s->out);
}

static int span_is(const struct section *s, const struct span *sp, const char *name)
{
    size_t n = strlen(name);
    return sp->name_len == n && strncasecmp(s->raw.data + sp->name_off, name, n) == 0;
}

static int value_is(const struct section *s, const struct span *sp, const char *v)
{
    size_t n = strlen(v);
    return sp->value_len == n && strncasecmp(s->raw.data + sp->value_off, v, n) == 0;
}

/* Content-Length must be 1*DIGIT. Values past UINT64_MAX saturate (and are
 * then over any body limit). */
static int parse_content_length(const char *s, size_t n, uint64_t *out)
{
    if (n == 0)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            v = UINT64_MAX;
        else
            v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* The request line and header fields are all in: check what needs the whole
 * section, run http-parser over it, and fill in p->req. */
static int finish_head(struct http_reqparser *p)
{
    struct section *s = &p->head;
    struct http_request *r = &p->req;
    const struct span *cl = NULL, *te = NULL;
    int ncl = 0, nte = 0, nhost = 0, expect = 0;
    int http11 = p->ver[7] == '1';
    uint64_t clen = 0;

    for (uint32_t i = 0; i < s->nspans; i++) {
        const struct span *sp = &s->spans[i];
        if (span_is(s, sp, "content-length")) {
            ncl++;
            cl = sp;
        } else if (span_is(s, sp, "transfer-encoding")) {
            nte++;
            te = sp;
        } else if (span_is(s, sp, "host")) {
            nhost++;
        } else if (span_is(s, sp, "expect")) {
            if (value_is(s, sp, "100-continue"))
                expect = 1;
        }
    }
    if (p->method_len == 7 && memcmp(s->raw.data + p->method_off, "CONNECT", 7) == 0)
        return fail(p, 501, "CONNECT not supported");
    if (nhost > 1)
        return fail(p, 400, "more than one Host header");
    if (nhost == 0 && http11)
        return fail(p, 400, "missing Host header");
    if (ncl && nte)
        return fail(p, 400, "both Content-Length and Transfer-Encoding");
    if (ncl > 1)
        return fail(p, 400, "more than one Content-Length");
    if (nte > 1)
        return fail(p, 400, "more than one Transfer-Encoding");
    if (nte) {
        if (!http11)
            return fail(p, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (te->value_len == 0)
            return fail(p, 400, "empty Transfer-Encoding");
        if (!value_is(s, te, "chunked"))
            return fail(p, 501, "Transfer-Encoding other than chunked");
    }
    if (ncl) {
        if (parse_content_length(s->raw.data + cl->value_off, cl->value_len, &clen) < 0)
            return fail(p, 400, "Content-Length is not a decimal number");
        if (clen > p->limits.max_body_bytes)
            return fail(p, 413, "request body too large");
    }

    if (hp_exec(p, s->raw.data, s->raw.len) < 0)
        return -1;
    if (!p->hp_headers_done)
        return fail(p, 400, "request framing mismatch");
    int hp_chunked = (p->hp.flags & F_CHUNKED) != 0;
    if (hp_chunked != (nte != 0) || (ncl && p->hp.content_length != clen))
        return fail(p, 400, "request framing mismatch");

    /* Terminate method and target in place (the SP after each), copy the path
     * after the section (offsets only until the buffer stops growing). */
    uint32_t q = p->target_len;
    const char *qm = memchr(s->raw.data + p->target_off, '?', p->target_len);
    if (qm)
        q = (uint32_t)(qm - (s->raw.data + p->target_off));
    size_t path_off = s->raw.len;
    /* reserve first: the copy's source lives in the same buffer */
    if (buf_reserve(&s->raw, (size_t)q + 1) < 0)
        return fail(p, 500, "out of memory");
    memcpy(s->raw.data + path_off, s->raw.data + p->target_off, q);
    s->raw.data[path_off + q] = '\0';
    s->raw.len += (size_t)q + 1;
    s->raw.data[s->raw.len] = '\0';
    if (section_build(p, s) < 0)
        return -1;
    char *raw = s->raw.data;
    raw[p->method_off + p->method_len] = '\0';
    raw[p->target_off + p->target_len] = '\0';

    r->method = raw + p->method_off;
    r->target = raw + p->target_off;
    r->target_len = p->target_len;
    r->path = raw + path_off;
    r->path_len = q;
    r->query = qm ? r->target + q + 1 : "";
    r->http_major = 1;
    r->http_minor = http11 ? 1 : 0;
    r->headers = s->out;
    r->nheaders = s->nspans;
    r->keep_alive = http_should_keep_alive(&p->hp) != 0;
    r->expect_continue = expect && http11;
    r->chunked = nte != 0;
    r->content_length = ncl ? (int64_t)clen : -1;

    if (r->chunked) {
        p->phase = PH_CHUNK_LINE;
        p->ck = CK_SIZE0;
        p->ck_size = 0;
        p->ck_line = 0;
    } else if (clen > 0) {
        p->phase = PH_BODY_CL;
        p->remaining = clen;
        /* grow with the data, not with the claim */
        size_t pre = clen < BODY_KEEP_MAX ? (size_t)clen : BODY_KEEP_MAX;
        if (buf_reserve(&r->body, pre) < 0)
            return fail(p, 500, "out of memory");
    } else {
        if (!p->hp_msg_done)
            return fail(p, 400, "request framing mismatch");
        p->phase = PH_COMPLETE;
    }
    return 0;
}

/* ---- chunked framing --------------------------------------------------- */

static int chunk_size_done(struct http_reqparser *p)
{
    if (p->ck_size > p->limits.max_body_bytes - p->body_declared)
        return fail(p, 413, "request body too large");
    p->body_declared += p->ck_size;
    return 0;
}

/* One framing byte of a chunked body (size line, CRLF after data, trailers).
 * Returns 0 to stay in framing, 1 when the byte moved the gate out of it
 * (into chunk data or the end of the message), -1 on error. */
static int framing_byte(struct http_reqparser *p, unsigned char c)
{
    if (p->phase == PH_CHUNK_END) {
        if (p->ck_end == 0) {
            if (c != '\r')
                return fail(p, 400, "missing CRLF after chunk data");
            p->ck_end = 1;
            return 0;
        }
        if (c != '\n')
            return fail(p, 400, "missing CRLF after chunk data");
        p->phase = PH_CHUNK_LINE;
        p->ck = CK_SIZE0;
        p->ck_size = 0;
        p->ck_line = 0;
        return 0;
    }

    if (p->phase == PH_TRAILERS) {
        struct section *s = &p->trl;
        if (p->section_bytes >= p->limits.max_header_bytes)
            return fail(p, 431, "trailer section too large");
        int r = lex_byte(p, s, c, (uint32_t)s->raw.len);
        if (r < 0)
            return -1;
        if (buf_append(&s->raw, &c, 1) < 0)
            return fail(p, 500, "out of memory");
        p->section_bytes++;
        if (r == 1) {
            p->phase = PH_MSG_END;
            return 1;
        }
        return 0;
    }

    /* PH_CHUNK_LINE */
    if (++p->ck_line > CHUNK_LINE_MAX)
        return fail(p, 400, "chunk size line too long");
    int h;
    switch (p->ck) {
    case CK_SIZE0:
        if ((h = hex_value(c)) < 0)
            return fail(p, 400, "invalid chunk size");
        p->ck_size = (uint64_t)h;
        p->ck = CK_SIZE;
        return 0;
    case CK_SIZE:
        if ((h = hex_value(c)) >= 0) {
            if (p->ck_size > (uint64_t)INT64_MAX >> 4)
                return fail(p, 400, "chunk size overflow");
            p->ck_size = p->ck_size << 4 | (uint64_t)h;
            return 0;
        }
        if (c == '\n')
            return fail(p, 400, "bare LF line ending");
        if (c != ';' && c != ' ' && c != '\t' && c != '\r')
            return fail(p, 400, "invalid chunk size");
        if (chunk_size_done(p) < 0)
            return -1;
        p->ck = c == ';' ? CK_EXT : c == '\r' ? CK_CR : CK_BWS;
        return 0;
    case CK_BWS:
        if (c == ' ' || c == '\t')
            return 0;
        if (c != ';')
            return fail(p, 400, "invalid chunk size");
        p->ck = CK_EXT;
        return 0;
    case CK_EXT:
        if (c == '\r') {
            p->ck = CK_CR;
            return 0;
        }
        if (c == '\n')
            return fail(p, 400, "bare LF line ending");
        if (c != ' ' && c != '\t' && !is_field_vchar(c))
            return fail(p, 400, "control character in chunk extension");
        return 0;
    case CK_CR:
        if (c != '\n')
            return fail(p, 400, "bare CR");
        if (p->ck_size == 0) {
            p->phase = PH_TRAILERS;
            section_reset(&p->trl, LX_LINE);
            return 0;
        }
        p->phase = PH_CHUNK_DATA;
        p->remaining = p->ck_size;
        return 1;
    }
    return fail(p, 500, "parser state corrupt");
}

static int finish_message(struct http_reqparser *p)
{
    if (!p->hp_msg_done)
        return fail(p, 400, "request framing mismatch");
    p->phase = PH_DONE;
    return 0;
}

/* ---- public API -------------------------------------------------------- */

struct http_reqparser *http_reqparser_new(const struct http_limits *limits)
{
    if (!limits)
        return NULL;
    struct http_reqparser *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->limits = *limits;
    /* the header copy also holds a NUL-terminated copy of the path */
    buf_init(&p->head.raw, (size_t)limits->max_header_bytes * 2 + 2);
    buf_init(&p->trl.raw, limits->max_header_bytes);
    buf_init(&p->req.body, limits->max_body_bytes);
    http_reqparser_reset(p);
    return p;
}

void http_reqparser_free(struct http_reqparser *p)
{
    if (!p)
        return;
    section_free(&p->head);
    section_free(&p->trl);
    buf_free(&p->req.body);
    free(p);
}

void http_reqparser_reset(struct http_reqparser *p)
{
    http_parser_init(&p->hp, HTTP_REQUEST);
    p->hp.data = p;
    p->phase = PH_HEAD;
    p->started = 0;
    p->err_status = 0;
    p->err_reason = NULL;
    p->cb_status = 0;
    p->cb_reason = NULL;
    p->hp_headers_done = 0;
    p->hp_msg_done = 0;
    section_reset(&p->head, LX_START);
    section_reset(&p->trl, LX_LINE);
    p->section_bytes = 0;
    p->fields = 0;
    p->method_off = p->method_len = p->target_off = p->target_len = 0;
    p->ver_len = 0;
    memset(p->ver, 0, sizeof(p->ver));
    p->remaining = 0;
    p->body_declared = 0;

    buf_t body = p->req.body;
    if (body.cap > BODY_KEEP_MAX)
        buf_free(&body);
    buf_reset(&body);
    memset(&p->req, 0, sizeof(p->req));
    p->req.body = body;
    p->req.method = p->req.target = p->req.path = p->req.query = "";
    p->req.content_length = -1;
}

enum http_parse_status http_reqparser_feed(struct http_reqparser *p, const char *data, size_t len,
                                           size_t *consumed)
{
    const unsigned char *in = (const unsigned char *)data;
    size_t pos = 0;

    *consumed = 0;
    switch (p->phase) {
    case PH_ERROR:
        return HTTP_PARSE_ERROR;
    case PH_DONE:
        return HTTP_PARSE_DONE;
    case PH_COMPLETE:
        p->phase = PH_DONE;
        return HTTP_PARSE_DONE;
    default:
        break;
    }
    if (len)
        p->started = 1;

    while (pos < len) {
        switch (p->phase) {
        case PH_HEAD: {
            struct section *s = &p->head;
            size_t start = pos;
            int r = 0;
            while (pos < len) {
                uint32_t room = p->limits.max_header_bytes - p->section_bytes;
                if (room == 0) {
                    r = fail(p, 431, "request header section too large");
                    break;
                }
                size_t end = len - pos < room ? len : pos + room;
                size_t q = lex_fast(s, in, pos, end, (uint32_t)(s->raw.len + (pos - start)));
                p->section_bytes += (uint32_t)(q - pos);
                pos = q;
                if (pos == end)
                    continue;
                r = lex_byte(p, s, in[pos], (uint32_t)(s->raw.len + (pos - start)));
                if (r < 0)
                    break;
                pos++;
                p->section_bytes++;
                if (r == 1)
                    break;
            }
            if (r < 0)
                goto fail;
            if (buf_append(&s->raw, data + start, pos - start) < 0) {
                fail(p, 500, "out of memory");
                goto fail;
            }
            if (r == 1) {
                if (finish_head(p) < 0)
                    goto fail;
                *consumed = pos;
                return HTTP_PARSE_HEADERS;
            }
            break;
        }
        case PH_BODY_CL:
        case PH_CHUNK_DATA: {
            size_t n = len - pos;
            if (n > p->remaining)
                n = (size_t)p->remaining;
            if (hp_exec(p, data + pos, n) < 0)
                goto fail;
            pos += n;
            p->remaining -= n;
            if (p->remaining == 0) {
                if (p->phase == PH_BODY_CL) {
                    if (finish_message(p) < 0)
                        goto fail;
                    *consumed = pos;
                    return HTTP_PARSE_DONE;
                }
                p->phase = PH_CHUNK_END;
                p->ck_end = 0;
            }
            break;
        }
        case PH_CHUNK_LINE:
        case PH_CHUNK_END:
        case PH_TRAILERS: {
            size_t start = pos;
            int r = 0;
            while (pos < len) {
                r = framing_byte(p, in[pos]);
                if (r < 0)
                    break;
                pos++;
                if (r == 1)
                    break;
            }
            /* http-parser sees what the gate accepted; an error it finds
             * there comes first (it is earlier in the stream). */
            if (hp_exec(p, data + start, pos - start) < 0 || r < 0)
                goto fail;
            if (p->phase == PH_MSG_END) {
                if (section_build(p, &p->trl) < 0 || finish_message(p) < 0)
                    goto fail;
                p->req.trailers = p->trl.out;
                p->req.ntrailers = p->trl.nspans;
                *consumed = pos;
                return HTTP_PARSE_DONE;
            }
            break;
        }
        default:
            fail(p, 500, "parser state corrupt");
            goto fail;
        }
    }
    *consumed = pos;
    return HTTP_PARSE_AGAIN;

fail:
    p->phase = PH_ERROR;
    *consumed = pos;
    return HTTP_PARSE_ERROR;
}

struct http_request *http_reqparser_request(struct http_reqparser *p)
{
    return &p->req;
}

int http_reqparser_error_status(const struct http_reqparser *p)
{
    return p->phase == PH_ERROR ? p->err_status : 0;
}

const char *http_reqparser_error_reason(const struct http_reqparser *p)
{
    return p->phase == PH_ERROR && p->err_reason ? p->err_reason : "";
}

int http_reqparser_started(const struct http_reqparser *p)
{
    return p->started;
}

const struct http_header *http_request_header(const struct http_request *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct http_header *h = &r->headers[i];
        if (h->name_len == n && strncasecmp(h->name, name, n) == 0)
            return h;
    }
    return NULL;
}
