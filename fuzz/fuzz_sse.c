// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for llm/sse. Input: one flags byte (dialect, strip, event
// limit), eight bytes seeding the split points, then the upstream stream.
// Checks: a stream cut into random pieces gives the same bytes, usage and
// errors as the whole stream; without stripping the output is the input;
// filtering the output again changes nothing.
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm/sse.h"

struct run {
    buf_t out;
    int rc;
    struct sse_usage usage;
    int done;
};

static uint64_t next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* seed 0: one feed; avg 0: one byte at a time; else pieces of 0..2*avg bytes. */
static struct run run(enum sse_dialect d, int strip, size_t max, const uint8_t *in, size_t n,
                      uint64_t seed, unsigned avg)
{
    struct run r = {.rc = 0};
    struct sse_filter *f = sse_filter_new(d, strip, max);
    if (!f)
        abort();
    buf_init(&r.out, n + 16);
    size_t pos = 0;
    while (!r.rc && pos < n) {
        size_t piece = !seed ? n : !avg ? 1 : (size_t)(next(&seed) % (2 * avg + 1));
        if (piece > n - pos)
            piece = n - pos;
        size_t before = r.out.len;
        r.rc = sse_filter_feed(f, (const char *)in + pos, piece, &r.out);
        pos += piece;
        if (r.out.len < before || r.out.len > pos)
            abort(); /* never more out than in */
    }
    if (!r.rc)
        r.rc = sse_filter_finish(f, &r.out);
    sse_filter_usage_detail(f, &r.usage);
    r.done = sse_filter_saw_done(f);
    sse_filter_free(f);
    return r;
}

static int same(const struct run *a, const struct run *b)
{
    if (a->rc != b->rc)
        return 0;
    if (a->rc)
        return 1;
    return a->out.len == b->out.len &&
           (!a->out.len || !memcmp(a->out.data, b->out.data, a->out.len)) &&
           !memcmp(&a->usage, &b->usage, sizeof(a->usage)) && a->done == b->done;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t limits[4] = {16, 100, 4096, 1u << 20};
    if (size < 9)
        return 0;
    enum sse_dialect d = data[0] & 1 ? SSE_ANTHROPIC : SSE_OPENAI;
    int strip = (data[0] >> 1) & 1;
    size_t max = limits[(data[0] >> 2) & 3];
    unsigned avg = 1u + ((data[0] >> 4) & 15) * 4;
    uint64_t seed;
    memcpy(&seed, data + 1, 8);
    seed |= 1;
    const uint8_t *in = data + 9;
    size_t n = size - 9;

    struct run whole = run(d, strip, max, in, n, 0, 0);
    struct run split = run(d, strip, max, in, n, seed, avg);
    struct run bytes = run(d, strip, max, in, n, seed, 0);
    if (!same(&whole, &split) || !same(&whole, &bytes))
        abort();
    if (whole.rc && whole.rc != -E2BIG)
        abort();
    if (!whole.rc && !strip && (whole.out.len != n || (n && memcmp(whole.out.data, in, n))))
        abort();
    if (!whole.rc && strip) {
        struct run again = run(d, strip, max, (const uint8_t *)whole.out.data, whole.out.len, 0, 0);
        if (again.rc || again.out.len != whole.out.len ||
            (again.out.len && memcmp(again.out.data, whole.out.data, again.out.len)))
            abort();
        buf_free(&again.out);
    }
    buf_free(&whole.out);
    buf_free(&split.out);
    buf_free(&bytes.out);
    return 0;
}
