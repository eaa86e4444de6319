// SPDX-License-Identifier: Apache-2.0
// Framing shared by the MCP transports (see transport_frame.h): newline
// lines, Server-Sent Events, JSON-RPC batch splitting and a shallow scan of
// a message's top-level keys. Pure functions over bytes, no I/O.
#include "mcp/transport_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define JSON_DEPTH_MAX 512

/* ---- newline-delimited lines --------------------------------------------- */

void mcp_lines_init(struct mcp_lines *l, size_t max, int truncate)
{
    buf_init(&l->held, max);
    l->max = max;
    l->truncate = truncate;
}

void mcp_lines_free(struct mcp_lines *l)
{
    buf_free(&l->held);
}

/* Hands one line over without its \r; empty lines are skipped. */
static int deliver_line(const char *line, size_t len, mcp_line_fn fn, void *ctx)
{
    if (len && line[len - 1] == '\r')
        len--;
    if (!len)
        return 0;
    return fn(ctx, line, len);
}

/* Delivers the held bytes as one line and empties the holder. The bytes
 * move to a local buffer first: a callback that stops the feed may free l. */
static int deliver_held(struct mcp_lines *l, mcp_line_fn fn, void *ctx)
{
    buf_t line = l->held;
    buf_init(&l->held, l->max);
    int rc = deliver_line(line.data, line.len, fn, ctx);
    if (rc) {
        buf_free(&line);
        return rc;
    }
    buf_free(&l->held);
    line.len = 0; /* keep the capacity for the next partial line */
    l->held = line;
    return 0;
}

/* Appends n bytes of a line to the holder; in truncate mode a line that
 * grows past max goes out in pieces of max bytes. */
static int hold(struct mcp_lines *l, const char *p, size_t n, mcp_line_fn fn, void *ctx)
{
    while (l->held.len + n > l->max) {
        if (!l->truncate) {
            buf_reset(&l->held);
            return -E2BIG;
        }
        size_t take = l->max - l->held.len;
        if (buf_append(&l->held, p, take))
            return -ENOMEM;
        p += take;
        n -= take;
        int rc = deliver_held(l, fn, ctx);
        if (rc)
            return rc;
    }
    if (buf_append(&l->held, p, n))
        return -ENOMEM;
    return 0;
}

int mcp_lines_feed(struct mcp_lines *l, const char *data, size_t len, mcp_line_fn fn, void *ctx)
{
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        int rc;
        if (!nl)
            return hold(l, p, n, fn, ctx);
        if (l->held.len || n > l->max) {
            rc = hold(l, p, n, fn, ctx);
            if (!rc)
                rc = deliver_held(l, fn, ctx);
        } else {
            rc = deliver_line(p, n, fn, ctx);
        }
        if (rc)
            return rc;
        p = nl + 1;
    }
    return 0;
}

int mcp_lines_finish(struct mcp_lines *l, mcp_line_fn fn, void *ctx)
{
    if (!l->held.len)
        return 0;
    if (!l->truncate) {
        buf_reset(&l->held);
        return 0;
    }
    return deliver_held(l, fn, ctx);
}

/* ---- Server-Sent Events -------------------------------------------------- */

void mcp_sse_init(struct mcp_sse *s, size_t max)
{
    memset(s, 0, sizeof(*s));
    buf_init(&s->line, max);
    buf_init(&s->data, max);
    buf_init(&s->type, 256);
    s->retry_ms = -1;
    s->max = max;
}

void mcp_sse_free(struct mcp_sse *s)
{
    buf_free(&s->line);
    buf_free(&s->data);
    buf_free(&s->type);
}

static int sse_dispatch(struct mcp_sse *s, mcp_sse_fn fn, void *ctx)
{
    if (!s->data.len) {
        buf_reset(&s->type);
        return 0;
    }
    s->data.len--; /* the \n after the last data line */
    s->data.data[s->data.len] = '\0';
    if (!s->data.len) { /* e.g. a priming event that only carries an id */
        buf_reset(&s->type);
        return 0;
    }
    struct mcp_sse_event ev = {
        .type = s->type.len ? s->type.data : "message",
        .data = s->data.data,
        .data_len = s->data.len,
        .id = s->id,
    };
    int rc = fn(ctx, &ev);
    if (rc)
        return rc; /* s may be gone */
    buf_reset(&s->data);
    buf_reset(&s->type);
    return 0;
}

/* One complete line, held in s->line. */
static int sse_line(struct mcp_sse *s, mcp_sse_fn fn, void *ctx)
{
    const char *line = s->line.len ? s->line.data : "";
    size_t len = s->line.len;
    if (!s->started) {
        s->started = 1;
        if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
            line += 3, len -= 3;
    }
    int rc = 0;
    if (!len) {
        rc = sse_dispatch(s, fn, ctx);
        if (rc)
            return rc;
    } else if (line[0] != ':') {
        const char *colon = memchr(line, ':', len);
        size_t flen = colon ? (size_t)(colon - line) : len;
        const char *v = colon ? colon + 1 : line + len;
        size_t vlen = (size_t)(line + len - v);
        if (vlen && *v == ' ')
            v++, vlen--;
        if (flen == 4 && memcmp(line, "data", 4) == 0) {
            rc = buf_append(&s->data, v, vlen);
            if (!rc)
                rc = buf_append(&s->data, "\n", 1);
        } else if (flen == 5 && memcmp(line, "event", 5) == 0) {
            buf_reset(&s->type);
            if (buf_append(&s->type, v, vlen))
                buf_reset(&s->type); /* an absurd type name: treated as none */
        } else if (flen == 2 && memcmp(line, "id", 2) == 0) {
            if (!memchr(v, '\0', vlen) && vlen < sizeof(s->id)) {
                memcpy(s->id, v, vlen);
                s->id[vlen] = '\0';
            }
        } else if (flen == 5 && memcmp(line, "retry", 5) == 0) {
            int64_t ms = 0;
            size_t i = 0;
            for (; i < vlen && v[i] >= '0' && v[i] <= '9' && ms < 100000000; i++)
                ms = ms * 10 + (v[i] - '0');
            if (vlen && i == vlen)
                s->retry_ms = ms;
        }
    }
    buf_reset(&s->line);
    return rc;
}

int mcp_sse_feed(struct mcp_sse *s, const char *in, size_t len, mcp_sse_fn fn, void *ctx)
{
    if (s->failed)
        return s->failed;
    size_t i = 0;
    while (i < len) {
        if (s->after_cr) {
            s->after_cr = 0;
            if (in[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t j = i;
        while (j < len && in[j] != '\n' && in[j] != '\r')
            j++;
        int rc = buf_append(&s->line, in + i, j - i);
        if (rc) {
            s->failed = rc;
            return rc;
        }
        if (j == len)
            break;
        s->after_cr = in[j] == '\r';
        i = j + 1;
        rc = sse_line(s, fn, ctx);
        if (rc) {
            if (rc == -E2BIG || rc == -ENOMEM)
                s->failed = rc;
            return rc;
        }
    }
    return 0;
}

/* ---- JSON scanning --------------------------------------------------------- */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at the opening quote; returns past the closing one, or NULL. */
static const char *scan_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c == '\\') {
            if (++p >= end)
                return NULL;
        } else if (c < 0x20) {
            return NULL;
        }
    }
    return NULL;
}

static int scalar_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
           c == 'E';
}

/* One value starting at p (no leading whitespace); returns past it, or NULL.
 * Containers are matched with a stack of their closers. */
static const char *scan_value(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"')
        return scan_string(p, end);
    if (*p != '{' && *p != '[') {
        const char *s = p;
        while (p < end && scalar_char(*p))
            p++;
        return p > s ? p : NULL;
    }
    char stack[JSON_DEPTH_MAX];
    int depth = 0;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            p = scan_string(p, end);
            if (!p)
                return NULL;
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth == JSON_DEPTH_MAX)
                return NULL;
            stack[depth++] = c == '{' ? '}' : ']';
        } else if (c == '}' || c == ']') {
            if (!depth || stack[depth - 1] != c)
                return NULL;
            if (--depth == 0)
                return p + 1;
        } else if (!scalar_char(c) && c != ',' && c != ':' && c != ' ' && c != '\t' && c != '\n' &&
                   c != '\r') {
            return NULL;
        }
        p++;
    }
    return NULL;
}

/* Walks a batch's elements; fn NULL only checks. */
static int split_array(const char *p, const char *end, mcp_line_fn fn, void *ctx)
{
    p = skip_ws(p + 1, end);
    if (p < end && *p == ']')
        return -EINVAL; /* an empty batch */
    for (;;) {
        const char *s = p;
        p = scan_value(p, end);
        if (!p)
            return -EINVAL;
        if (fn) {
            int rc = fn(ctx, s, (size_t)(p - s));
            if (rc)
                return rc;
        }
        p = skip_ws(p, end);
        if (p < end && *p == ']')
            return 0;
        if (p >= end || *p != ',')
            return -EINVAL;
        p = skip_ws(p + 1, end);
    }
}

int mcp_json_split(const char *json, size_t len, mcp_line_fn fn, void *ctx)
{
    const char *end = json + len;
    const char *p = skip_ws(json, end);
    const char *v_end = scan_value(p, end);
    if (!v_end || skip_ws(v_end, end) != end)
        return -EINVAL;
    if (*p != '[')
        return fn(ctx, p, (size_t)(v_end - p));
    int rc = split_array(p, v_end, NULL, NULL);
    if (rc)
        return rc;
    return split_array(p, v_end, fn, ctx);
}

int mcp_json_info(const char *json, size_t len, struct mcp_json_info *info)
{
    memset(info, 0, sizeof(*info));
    const char *end = json + len;
    const char *p = skip_ws(json, end);
    if (p >= end || *p != '{')
        return -EINVAL;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return skip_ws(p + 1, end) == end ? 0 : -EINVAL;
    for (;;) {
        if (p >= end || *p != '"')
            return -EINVAL;
        const char *k = p + 1;
        p = scan_string(p, end);
        if (!p)
            return -EINVAL;
        size_t klen = (size_t)(p - 1 - k);
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return -EINVAL;
        p = skip_ws(p + 1, end);
        const char *v = p;
        p = scan_value(p, end);
        if (!p)
            return -EINVAL;
        size_t vlen = (size_t)(p - v);
        if (klen == 2 && memcmp(k, "id", 2) == 0) {
            info->id = v;
            info->id_len = vlen;
        } else if (klen == 6 && memcmp(k, "method", 6) == 0) {
            info->method = v;
            info->method_len = vlen;
        } else if ((klen == 6 && memcmp(k, "result", 6) == 0) ||
                   (klen == 5 && memcmp(k, "error", 5) == 0)) {
            info->has_result = 1;
        }
        p = skip_ws(p, end);
        if (p < end && *p == '}')
            return skip_ws(p + 1, end) == end ? 0 : -EINVAL;
        if (p >= end || *p != ',')
            return -EINVAL;
        p = skip_ws(p + 1, end);
    }
}

int mcp_json_is_response_to(const struct mcp_json_info *info, const char *want, size_t want_len)
{
    return info->has_result && !info->method && info->id && info->id_len == want_len &&
           memcmp(info->id, want, want_len) == 0;
}
