// SPDX-License-Identifier: Apache-2.0
// Internal to telemetry/: the per-worker shard layout shared by the hot path
// (metrics.c) and the renderer (metrics_render.c). Nothing outside this folder
// includes it.
#ifndef PORTCULLIS_TELEMETRY_METRICS_SHARD_H
#define PORTCULLIS_TELEMETRY_METRICS_SHARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "telemetry/metrics.h"

/* ---- single-writer counters -------------------------------------------- */

/* Only the owning worker writes a shard, so an increment needs no locked
 * read-modify-write: a relaxed load and a relaxed store compile to plain
 * moves, and a concurrent render still reads whole values (no tearing). */
typedef _Atomic uint64_t counter_t;

static inline void counter_add(counter_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t counter_get(counter_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

typedef _Atomic int64_t gauge_t;

static inline void gauge_add(gauge_t *g, int64_t d)
{
    atomic_store_explicit(g, atomic_load_explicit(g, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

/* ---- label interning ---------------------------------------------------- */

/* A shard maps each distinct label string to a small id the first time it
 * sees it. Ids 0..cap-1 are interned strings, cap is "other" (over the limit,
 * too long, not UTF-8), cap+1 is "" (NULL or empty). Only the owning worker
 * writes; render reads names[0..n) after an acquire load of n. */
#define INTERN_MAX 64
#define INTERN_SLOTS 128 /* power of two, >= 2 * INTERN_MAX */

struct intern {
    unsigned cap;
    unsigned used;      /* worker's copy of n */
    _Atomic unsigned n; /* published entries */
    uint32_t hash[INTERN_MAX];
    uint8_t len[INTERN_MAX];
    uint8_t index[INTERN_SLOTS]; /* 0 = empty, else id + 1 */
    char names[INTERN_MAX][METRICS_LABEL_MAX + 1];
};

_Static_assert(METRICS_LABEL_MAX < 256, "label length must fit the uint8_t len");
_Static_assert(METRICS_MAX_MODELS <= INTERN_MAX && METRICS_MAX_ROUTES <= INTERN_MAX &&
                   METRICS_MAX_PROVIDERS <= INTERN_MAX,
               "intern table too small");

/* Render side. The caller has synchronised with the publication of id (an
 * acquire load of n, or of a key stored after the id was interned). */
static inline const char *intern_name(const struct intern *t, unsigned id)
{
    if (id < t->cap)
        return t->names[id];
    return id == t->cap ? "other" : "";
}

/* ---- shard layout ------------------------------------------------------- */

#define NROUTE_IDS (METRICS_MAX_ROUTES + 2)
#define NMODEL_IDS (METRICS_MAX_MODELS + 2)
#define NPROV_IDS (METRICS_MAX_PROVIDERS + 2)

/* Histogram buckets; the bounds are in metrics.c (ns) and metrics_render.c (text). */
#define NBUCKETS 17

struct hist {
    counter_t bucket[NBUCKETS + 1]; /* per bucket, not cumulative; last is +Inf */
    counter_t sum_ns;
};

enum { HIST_TOTAL, HIST_UPSTREAM, NHIST };

enum { OUT_OK, OUT_ERROR, OUT_TIMEOUT, OUT_5XX, OUT_429, OUT_OTHER, NOUTCOMES };
extern const char *const metrics_outcome_names[NOUTCOMES];

/* (route, status, model) counters: open addressing on a packed key. The
 * soft limit leaves room so "other"-model keys can still be added once
 * ordinary keys fill up; past the hard limit a per-route overflow counter
 * (rendered status="other", model="other") takes the request. */
#define REQ_SLOTS 4096 /* power of two */
#define REQ_SOFT 3072
#define REQ_HARD 3840
#define STATUS_OTHER 1000

struct req_slot {
    _Atomic uint32_t key; /* 0 = empty; set once with release */
    counter_t count;
};

static inline uint32_t req_key(unsigned route, unsigned model, unsigned status)
{
    return 0x80000000u | (route << 17) | (model << 10) | status;
}

_Static_assert(NROUTE_IDS <= 32 && NMODEL_IDS <= 128, "ids must fit the packed key");

struct shard {
    struct req_slot req[REQ_SLOTS];
    unsigned nreq; /* worker only */
    counter_t req_overflow[NROUTE_IDS];
    struct hist hist[NHIST][NROUTE_IDS];
    counter_t tokens[NMODEL_IDS][2];
    counter_t upstream[NPROV_IDS][NOUTCOMES];
    gauge_t inflight;
    gauge_t connections;
    struct intern routes, models, providers;
} __attribute__((aligned(64)));

struct metrics {
    unsigned nworkers;
    struct shard **shards;
};

#endif
