// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the MCP transports' framing (mcp/transport_frame.h):
// stdio line splitting, the SSE parser and JSON-RPC batch splitting. Input:
// one flags byte (limits), eight bytes seeding the split points, then the
// bytes a server sent. Checks: the messages, events and errors do not depend
// on how the bytes are cut; every line, event and message respects its
// limit; each split message is itself one JSON value that splits to itself.
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/transport_frame.h"

struct out {
    buf_t items; /* each item: 8-byte length, bytes */
    int rc;
    size_t max;
};

static int add(struct out *o, const char *p, size_t n)
{
    uint64_t len = n;
    if (buf_append(&o->items, &len, sizeof(len)) || buf_append(&o->items, p, n))
        abort(); /* the buffer is sized for the input */
    return 0;
}

struct again {
    const char *p;
    size_t n;
    int count;
    int same;
};

static int count_message(void *ctx, const char *p, size_t n)
{
    struct again *a = ctx;
    a->count++;
    a->same = p == a->p && n == a->n;
    return 0;
}

static int on_message(void *ctx, const char *p, size_t n)
{
    if (!n)
        abort();
    /* a split message is one value: splitting a non-batch again gives it back */
    struct again a = {.p = p, .n = n};
    int rc = mcp_json_split(p, n, count_message, &a);
    if (rc != 0 || (p[0] != '[' && (a.count != 1 || !a.same)))
        abort();
    struct mcp_json_info info;
    (void)mcp_json_info(p, n, &info);
    if (info.id && (info.id < p || info.id + info.id_len > p + n))
        abort();
    return add(ctx, p, n);
}

static int on_line(void *ctx, const char *p, size_t n)
{
    struct out *o = ctx;
    if (!n || n > o->max || memchr(p, '\n', n))
        abort();
    add(o, p, n);
    int rc = mcp_json_split(p, n, on_message, o);
    if (rc && rc != -EINVAL)
        abort();
    return 0;
}

static int on_event(void *ctx, const struct mcp_sse_event *ev)
{
    struct out *o = ctx;
    if (!ev->data_len || ev->data_len > o->max || ev->data[ev->data_len] != '\0')
        abort();
    add(o, ev->type, strlen(ev->type));
    add(o, ev->id, strlen(ev->id));
    add(o, ev->data, ev->data_len);
    int rc = mcp_json_split(ev->data, ev->data_len, on_message, o);
    if (rc && rc != -EINVAL)
        abort();
    return 0;
}

static uint64_t next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* seed 0: one feed; else pieces of 0..2*avg bytes (avg 0: one byte each). */
static struct out run(int sse, int truncate, size_t max, const uint8_t *in, size_t n, uint64_t seed,
                      unsigned avg)
{
    struct out o = {.max = max};
    buf_init(&o.items, 48 * n + 8192);
    struct mcp_lines l;
    struct mcp_sse s;
    if (sse)
        mcp_sse_init(&s, max);
    else
        mcp_lines_init(&l, max, truncate);
    size_t pos = 0;
    while (!o.rc && pos < n) {
        size_t piece = !seed ? n : !avg ? 1 : (size_t)(next(&seed) % (2 * avg + 1));
        if (piece > n - pos)
            piece = n - pos;
        o.rc = sse ? mcp_sse_feed(&s, (const char *)in + pos, piece, on_event, &o)
                   : mcp_lines_feed(&l, (const char *)in + pos, piece, on_line, &o);
        pos += piece;
    }
    if (sse) {
        mcp_sse_free(&s);
    } else {
        if (!o.rc)
            o.rc = mcp_lines_finish(&l, on_line, &o);
        mcp_lines_free(&l);
    }
    return o;
}

static int same(const struct out *a, const struct out *b)
{
    return a->rc == b->rc && a->items.len == b->items.len &&
           (!a->items.len || !memcmp(a->items.data, b->items.data, a->items.len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t limits[4] = {8, 64, 4096, 1u << 20};
    if (size < 9)
        return 0;
    int sse = data[0] & 1;
    int truncate = (data[0] >> 1) & 1;
    size_t max = limits[(data[0] >> 2) & 3];
    unsigned avg = 1u + ((data[0] >> 4) & 15) * 4;
    uint64_t seed;
    memcpy(&seed, data + 1, 8);
    seed |= 1;
    const uint8_t *in = data + 9;
    size_t n = size - 9;

    struct out whole = run(sse, truncate, max, in, n, 0, 0);
    struct out split = run(sse, truncate, max, in, n, seed, avg);
    struct out bytes = run(sse, truncate, max, in, n, seed, 0);
    if (whole.rc && whole.rc != -E2BIG)
        abort();
    /* also on -E2BIG: what came before the oversized line was delivered */
    if (!same(&whole, &split) || !same(&whole, &bytes))
        abort();
    buf_free(&whole.items);
    buf_free(&split.items);
    buf_free(&bytes.items);
    return 0;
}
