// SPDX-License-Identifier: Apache-2.0
// Token buckets as GCRA: one atomic "theoretical arrival time" per bucket,
// so admission is a compare-and-swap and every worker sees one exact total
// (no per-worker split that would let N times the limit through).
#include <stdio.h>
#include <string.h>

#include "breaker/breaker.h"

#define MINUTE_NS 60000000000ULL
/* Costs are clamped here so cost * MINUTE_NS cannot overflow. */
#define MAX_COST (1ULL << 32)

/* Nanoseconds of bucket time COST units stand for (rounded up). */
static uint64_t span(const struct rl_bucket *b, uint64_t cost)
{
    if (cost > MAX_COST)
        cost = MAX_COST;
    return (cost * MINUTE_NS + b->limit - 1) / b->limit;
}

void rl_view_fill(uint64_t limit, uint64_t ahead_ns, struct rl_view *v)
{
    v->limit = limit;
    v->reset_ns = ahead_ns;
    /* free room is MINUTE_NS - ahead of bucket time, limit units per minute */
    if (ahead_ns >= MINUTE_NS)
        v->remaining = 0;
    else if (limit > UINT64_MAX / MINUTE_NS) /* no overflow: round down per ns */
        v->remaining = (uint64_t)((double)(MINUTE_NS - ahead_ns) * (double)limit / MINUTE_NS);
    else
        v->remaining = (MINUTE_NS - ahead_ns) * limit / MINUTE_NS;
    if (v->remaining > limit)
        v->remaining = limit;
    v->retry_after_ns = 0;
}

static void fill_view(const struct rl_bucket *b, uint64_t tat, uint64_t now_ns, struct rl_view *v)
{
    rl_view_fill(b->limit, tat > now_ns ? tat - now_ns : 0, v);
}

int rl_take(struct rl_bucket *b, uint64_t cost, uint64_t now_ns, struct rl_view *view)
{
    struct rl_view scratch;
    if (view == NULL)
        view = &scratch;
    if (b->limit == 0) {
        *view = (struct rl_view){0};
        return 0;
    }
    if (cost > b->limit)
        cost = b->limit;
    uint64_t inc = span(b, cost);
    uint64_t tat = atomic_load_explicit(&b->tat_ns, memory_order_relaxed);
    for (;;) {
        uint64_t base = tat > now_ns ? tat : now_ns;
        uint64_t next = base + inc;
        if (next - now_ns > MINUTE_NS) {
            fill_view(b, tat, now_ns, view);
            view->retry_after_ns = next - now_ns - MINUTE_NS;
            return 1;
        }
        if (atomic_compare_exchange_weak_explicit(&b->tat_ns, &tat, next, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            fill_view(b, next, now_ns, view);
            return 0;
        }
    }
}

void rl_give(struct rl_bucket *b, uint64_t cost)
{
    if (b->limit == 0 || cost == 0)
        return;
    uint64_t inc = span(b, cost);
    uint64_t tat = atomic_load_explicit(&b->tat_ns, memory_order_relaxed);
    uint64_t next;
    do {
        next = tat > inc ? tat - inc : 0;
    } while (!atomic_compare_exchange_weak_explicit(&b->tat_ns, &tat, next, memory_order_acq_rel,
                                                    memory_order_relaxed));
}

void rl_charge(struct rl_bucket *b, uint64_t cost, uint64_t now_ns)
{
    if (b->limit == 0 || cost == 0)
        return;
    uint64_t inc = span(b, cost);
    uint64_t tat = atomic_load_explicit(&b->tat_ns, memory_order_relaxed);
    uint64_t next;
    do {
        next = (tat > now_ns ? tat : now_ns) + inc;
    } while (!atomic_compare_exchange_weak_explicit(&b->tat_ns, &tat, next, memory_order_acq_rel,
                                                    memory_order_relaxed));
}

void rl_peek(struct rl_bucket *b, uint64_t now_ns, struct rl_view *view)
{
    if (b->limit == 0) {
        *view = (struct rl_view){0};
        return;
    }
    fill_view(b, atomic_load_explicit(&b->tat_ns, memory_order_relaxed), now_ns, view);
}

void breaker_format_duration(uint64_t ns, char *out, size_t len)
{
    uint64_t ms = (ns + 999999) / 1000000;
    if (ms < 1000 && len >= 6) { /* the common case, on every answer: no printf */
        char *o = out;
        if (ms >= 100)
            *o++ = (char)('0' + ms / 100);
        if (ms >= 10)
            *o++ = (char)('0' + ms / 10 % 10);
        *o++ = (char)('0' + ms % 10);
        memcpy(o, "ms", 3);
        return;
    }
    if (ms < 1000) {
        snprintf(out, len, "%llums", (unsigned long long)ms);
        return;
    }
    uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
    char sec[32];
    if (frac == 0)
        snprintf(sec, sizeof sec, "%llus", (unsigned long long)s);
    else {
        snprintf(sec, sizeof sec, "%llu.%03llu", (unsigned long long)s, (unsigned long long)frac);
        size_t n = 0;
        while (sec[n])
            n++;
        while (n > 0 && sec[n - 1] == '0')
            sec[--n] = '\0';
        snprintf(sec + n, sizeof sec - n, "s");
    }
    if (h > 0)
        snprintf(out, len, "%lluh%llum%s", (unsigned long long)h, (unsigned long long)m, sec);
    else if (m > 0)
        snprintf(out, len, "%llum%s", (unsigned long long)m, sec);
    else
        snprintf(out, len, "%s", sec);
}
