// SPDX-License-Identifier: Apache-2.0
// Prometheus metrics, recording side (see metrics.h): one shard per worker,
// label strings interned per shard into small ids, counters in fixed tables
// updated with single-writer relaxed atomics. Rendering is metrics_render.c.
#include "telemetry/metrics.h"
#include "telemetry/metrics_shard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *const metrics_outcome_names[NOUTCOMES] = {"ok",         "error",      "timeout",
                                                      "status_5xx", "status_429", "other"};

/* Histogram bucket upper bounds in nanoseconds (printed in metrics_render.c). */
static const uint64_t bucket_ns[NBUCKETS] = {
    500000ull,     1000000ull,     2500000ull,     5000000ull,     10000000ull,    25000000ull,
    50000000ull,   100000000ull,   250000000ull,   500000000ull,   1000000000ull,  2500000000ull,
    5000000000ull, 10000000000ull, 20000000000ull, 30000000000ull, 60000000000ull,
};

static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        /* overlong forms, surrogates, past U+10FFFF */
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return false;
        i += k + 1;
    }
    return true;
}

/* Word-at-a-time string hash: label values are short, and this runs on
 * every request for the route and model. */
static uint32_t label_hash(const char *s, size_t n)
{
    const uint64_t k = 0xFF51AFD7ED558CCDull;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n, w;
    size_t i = 0;
    for (; n - i > 8; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * k;
        h ^= h >> 32;
    }
    /* Tail as whole loads (overlapping is fine, n is mixed in): byte copies
     * into a word would stall store forwarding. */
    if (n >= 8) {
        memcpy(&w, s + n - 8, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        w = (uint64_t)a << 32 | b;
    } else {
        w = (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[n / 2] << 8 |
            (uint64_t)(unsigned char)s[n - 1] << 16;
    }
    h = (h ^ w) * k;
    h ^= h >> 29;
    return (uint32_t)h;
}

static unsigned intern_id(struct intern *t, const char *s)
{
    if (!s || !*s)
        return t->cap + 1;
    size_t n = strnlen(s, METRICS_LABEL_MAX + 1);
    if (n > METRICS_LABEL_MAX)
        return t->cap; /* too long: count as "other" without reading further */
    uint32_t h = label_hash(s, n);
    unsigned i = h & (INTERN_SLOTS - 1);
    for (uint8_t e; (e = t->index[i]) != 0; i = (i + 1) & (INTERN_SLOTS - 1)) {
        unsigned id = e - 1u;
        if (t->hash[id] == h && t->len[id] == n && memcmp(t->names[id], s, n) == 0)
            return id;
    }
    if (t->used >= t->cap || !utf8_valid((const unsigned char *)s, n))
        return t->cap;
    unsigned id = t->used++;
    memcpy(t->names[id], s, n);
    t->names[id][n] = '\0';
    t->hash[id] = h;
    t->len[id] = (uint8_t)n;
    t->index[i] = (uint8_t)(id + 1);
    atomic_store_explicit(&t->n, t->used, memory_order_release);
    return id;
}

struct metrics *metrics_new(unsigned nworkers)
{
    if (nworkers == 0)
        return NULL;
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->shards = calloc(nworkers, sizeof(*m->shards));
    if (!m->shards)
        goto fail;
    m->nworkers = nworkers;
    size_t sz = (sizeof(struct shard) + 63) & ~(size_t)63;
    for (unsigned i = 0; i < nworkers; i++) {
        struct shard *s = aligned_alloc(64, sz);
        if (!s)
            goto fail;
        memset(s, 0, sz);
        s->routes.cap = METRICS_MAX_ROUTES;
        s->models.cap = METRICS_MAX_MODELS;
        s->providers.cap = METRICS_MAX_PROVIDERS;
        m->shards[i] = s;
    }
    return m;
fail:
    metrics_free(m);
    return NULL;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    if (m->shards)
        for (unsigned i = 0; i < m->nworkers; i++)
            free(m->shards[i]);
    free(m->shards);
    free(m);
}

/* ---- hot path ----------------------------------------------------------- */

static counter_t *req_find(struct shard *s, uint32_t key, unsigned limit)
{
    unsigned i = (key * 0x9E3779B1u) >> (32 - 12);
    for (;;) {
        uint32_t k = atomic_load_explicit(&s->req[i].key, memory_order_relaxed);
        if (k == key)
            return &s->req[i].count;
        if (k == 0)
            break;
        i = (i + 1) & (REQ_SLOTS - 1);
    }
    if (s->nreq >= limit)
        return NULL;
    s->nreq++;
    atomic_store_explicit(&s->req[i].key, key, memory_order_release);
    return &s->req[i].count;
}

static uint64_t seconds_to_ns(double x)
{
    if (!(x > 0)) /* negative, zero or NaN */
        return 0;
    if (x >= 1e9)
        return 1000000000000000000ull;
    return (uint64_t)(x * 1e9 + 0.5);
}

static void hist_observe(struct hist *h, uint64_t ns)
{
    unsigned b = 0;
    while (b < NBUCKETS && ns > bucket_ns[b])
        b++;
    counter_add(&h->bucket[b], 1);
    counter_add(&h->sum_ns, ns);
}

void metrics_request_done(struct metrics *m, unsigned w, const char *route, int status,
                          const char *model, double total_seconds, double upstream_seconds,
                          uint64_t tokens_in, uint64_t tokens_out)
{
    if (!m || w >= m->nworkers)
        return;
    struct shard *s = m->shards[w];
    unsigned r = intern_id(&s->routes, route);
    unsigned md = intern_id(&s->models, model);
    unsigned st = (status >= 0 && status < 1000) ? (unsigned)status : 0;

    bool other = md == s->models.cap;
    counter_t *c = req_find(s, req_key(r, md, st), other ? REQ_HARD : REQ_SOFT);
    if (!c && !other)
        c = req_find(s, req_key(r, s->models.cap, st), REQ_HARD);
    counter_add(c ? c : &s->req_overflow[r], 1);

    hist_observe(&s->hist[HIST_TOTAL][r], seconds_to_ns(total_seconds));
    if (upstream_seconds >= 0)
        hist_observe(&s->hist[HIST_UPSTREAM][r], seconds_to_ns(upstream_seconds));
    if (tokens_in)
        counter_add(&s->tokens[md][0], tokens_in);
    if (tokens_out)
        counter_add(&s->tokens[md][1], tokens_out);
}

void metrics_inflight(struct metrics *m, unsigned w, int delta)
{
    if (m && w < m->nworkers)
        gauge_add(&m->shards[w]->inflight, delta);
}

void metrics_connections(struct metrics *m, unsigned w, int delta)
{
    if (m && w < m->nworkers)
        gauge_add(&m->shards[w]->connections, delta);
}

static unsigned outcome_id(const char *o)
{
    if (!o)
        return OUT_OTHER;
    for (unsigned i = 0; i < OUT_OTHER; i++)
        if (o[0] == metrics_outcome_names[i][0] && strcmp(o, metrics_outcome_names[i]) == 0)
            return i;
    return OUT_OTHER;
}

void metrics_upstream_attempt(struct metrics *m, unsigned w, const char *provider,
                              const char *outcome)
{
    if (!m || w >= m->nworkers)
        return;
    struct shard *s = m->shards[w];
    unsigned p = intern_id(&s->providers, provider);
    counter_add(&s->upstream[p][outcome_id(outcome)], 1);
}
