// SPDX-License-Identifier: Apache-2.0
// guard_scan: a fast Vectorscan pass (match ends only) over the whole text; only when it
// hits, the start-of-match database re-scans short windows before each hit for byte spans.
// Then the one-pass heuristics (hidden Unicode, encoded payloads); the score combines the
// distinct rules that hit.
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "guard/internal.h"

/* Vectorscan scratch is per thread: grown with hs_alloc_scratch to fit any
 * guard this thread scans with, freed when the thread exits (scratch_key). */
static __thread hs_scratch_t *tls_scratch;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void free_scratch(void *s)
{
    hs_free_scratch(s);
}

static void make_key(void)
{
    pthread_key_create(&scratch_key, free_scratch);
}

/* Grows this thread's scratch for db; the key's destructor frees it at thread exit. */
static int grow_scratch(const hs_database_t *db)
{
    pthread_once(&scratch_once, make_key);
    if (hs_alloc_scratch(db, &tls_scratch) != HS_SUCCESS)
        return -1;
    pthread_setspecific(scratch_key, tls_scratch);
    return 0;
}
/* The guard (by gen) tls_scratch was last grown for: hs_alloc_scratch costs more than
 * scanning a few kilobytes, so it runs once per guard and thread, not per scan. */
static __thread unsigned long tls_scratch_gen, tls_scratch_som_gen;

/* Most distinct windows re-scanned for spans; further hits widen the last one. */
#define MAX_WINDOWS 32

struct window {
    size_t start, end;
};

struct scan_ctx {
    const struct guard *g;
    struct guard_result *out;
    unsigned char hit[GUARD_MAX_RULES];
    unsigned char seen[GUARD_MAX_RULES]; /* the fast pass matched (hit may wait on unless) */
    unsigned char hit_h[GUARD_NHEURISTICS];
    unsigned char spanned[GUARD_MAX_RULES];
    size_t first_end[GUARD_MAX_RULES]; /* valid where hit[] is set */
    size_t nwin;
    struct window win[MAX_WINDOWS];
    size_t rep_end[GUARD_MAX_FINDINGS]; /* the end offset each finding was first seen at */
    size_t base;                        /* offset of the window being re-scanned */
    const char *text;                   /* the scanned text */
};

static double weight(enum guard_severity s)
{
    return s == GUARD_HIGH ? 0.9 : s == GUARD_MEDIUM ? 0.6 : 0.25;
}

/* Records [from, to) for rule r, merging with an overlapping span of the same
 * rule (Vectorscan reports every end offset of a match). */
static void add_finding(struct scan_ctx *c, const struct guard_rule *r, size_t from, size_t to)
{
    struct guard_result *out = c->out;
    for (size_t i = out->nfindings; i-- > 0;) {
        struct guard_finding *f = &out->findings[i];
        if (f->rule == r->id && from <= f->end && to >= f->start) {
            if (from < f->start)
                f->start = from;
            if (to > f->end)
                f->end = to;
            return;
        }
    }
    if (out->nfindings == GUARD_MAX_FINDINGS) {
        out->truncated = true;
        return;
    }
    c->rep_end[out->nfindings] = to;
    out->findings[out->nfindings++] = (struct guard_finding){
        .rule = r->id, .category = r->category, .severity = r->severity, .start = from, .end = to};
}

static void add_window(struct scan_ctx *c, size_t start, size_t end)
{
    struct window *last = c->nwin ? &c->win[c->nwin - 1] : NULL;
    if (last && start <= last->end && end >= last->start) {
        if (start < last->start)
            last->start = start;
        if (end > last->end)
            last->end = end;
        return;
    }
    if (c->nwin == MAX_WINDOWS) {
        if (start < last->start)
            last->start = start;
        if (end > last->end)
            last->end = end;
        return;
    }
    c->win[c->nwin++] = (struct window){start, end};
}

/* Fast pass: which rules hit, and where their matches end. */
static int on_fast(unsigned int id, unsigned long long from, unsigned long long to,
                   unsigned int flags, void *ctx)
{
    (void)from;
    (void)flags;
    struct scan_ctx *c = ctx;
    if (id >= c->g->nrules)
        return 0;
    size_t end = (size_t)to, w = c->g->rules[id].width;
    if (!c->seen[id]) {
        c->seen[id] = 1;
        c->hit[id] = !c->g->rules[id].unless; /* else decided on the span */
        c->first_end[id] = end;
    }
    add_window(c, end > w ? end - w : 0, end);
    return 0;
}

/* Window pass: spans, for rules the fast pass saw hit (a window's first byte can
 * satisfy ^ or \b where the whole text does not). */
static int on_span(unsigned int id, unsigned long long from, unsigned long long to,
                   unsigned int flags, void *ctx)
{
    (void)flags;
    struct scan_ctx *c = ctx;
    if (id >= c->g->nrules || !c->seen[id])
        return 0;
    const struct guard_rule *r = &c->g->rules[id];
    size_t start = c->base + (size_t)from, end = c->base + (size_t)to;
    if (r->unless) {
        if (guard_rule_excluded(r, c->text + start, end - start))
            return 0;
        c->hit[id] = 1;
    }
    c->spanned[id] = 1;
    add_finding(c, r, start, end);
    return 0;
}

struct any_ctx {
    const struct guard *g;
    int hit;
};

/* For decoded payloads: does any medium or high rule match? */
static int on_match_any(unsigned int id, unsigned long long from, unsigned long long to,
                        unsigned int flags, void *ctx)
{
    (void)from;
    (void)to;
    (void)flags;
    struct any_ctx *a = ctx;
    if (id < a->g->nrules && a->g->rules[id].severity >= GUARD_MEDIUM) {
        a->hit = 1;
        return 1; /* stop */
    }
    return 0;
}

static void scan_encoded(struct scan_ctx *c, const char *text, size_t len)
{
    char buf[4096];
    size_t pos = 0, start, end, n, found = 0;
    while (found < GUARD_MAX_FINDINGS &&
           (n = guard_next_encoded(text, len, pos, &start, &end, buf, sizeof(buf))) > 0) {
        pos = end;
        struct any_ctx a = {.g = c->g};
        int r = hs_scan(c->g->db, buf, (unsigned)n, 0, tls_scratch, on_match_any, &a);
        if ((r == HS_SUCCESS || r == HS_SCAN_TERMINATED) &&
            (a.hit || guard_looks_instructive(buf, n))) {
            c->hit_h[GUARD_H_ENCODED] = 1;
            add_finding(c, &guard_heuristics[GUARD_H_ENCODED], start, end);
            found++;
        }
    }
}

static void on_hidden(void *ctx, int h, size_t start, size_t end)
{
    struct scan_ctx *c = ctx;
    c->hit_h[h] = 1;
    add_finding(c, &guard_heuristics[h], start, end);
}

/* Spans for the rules the fast pass saw: re-scan each window with the start-of-match
 * database of each such rule (or, while those compile, one of just these rules). */
static int find_spans(struct scan_ctx *c, const char *text)
{
    const struct guard *g = c->g;
    int rc = 0;
    if (guard_som_ready(g)) {
        if (tls_scratch_som_gen != g->gen) {
            for (size_t id = 0; id < g->nrules; id++)
                if (grow_scratch(g->som[id]) < 0)
                    return -2;
            tls_scratch_som_gen = g->gen;
        }
        for (size_t i = 0; i < c->nwin && rc == 0; i++) {
            c->base = c->win[i].start;
            for (size_t id = 0; id < g->nrules && rc == 0; id++)
                if (c->seen[id] &&
                    hs_scan(g->som[id], text + c->base, (unsigned)(c->win[i].end - c->base), 0,
                            tls_scratch, on_span, c) != HS_SUCCESS)
                    rc = -3;
        }
    } else {
        /* still compiling: one database of just the rules that hit */
        hs_scratch_t *own = NULL;
        hs_database_t *subset = guard_som_subset(g, c->seen);
        if (subset && hs_alloc_scratch(subset, &own) == HS_SUCCESS) {
            for (size_t i = 0; i < c->nwin && rc == 0; i++) {
                c->base = c->win[i].start;
                if (hs_scan(subset, text + c->base, (unsigned)(c->win[i].end - c->base), 0, own,
                            on_span, c) != HS_SUCCESS)
                    rc = -3;
            }
        }
        hs_free_scratch(own);
        hs_free_database(subset);
    }
    if (rc < 0)
        return rc;
    /* in the order one scan of the whole pack reports them: by end of first match (the
     * per-rule scans above report rule by rule) */
    struct guard_finding *f = c->out->findings;
    for (size_t i = 1; i < c->out->nfindings; i++) {
        struct guard_finding x = f[i];
        size_t e = c->rep_end[i], j = i;
        for (; j > 0 && c->rep_end[j - 1] > e; j--) {
            f[j] = f[j - 1];
            c->rep_end[j] = c->rep_end[j - 1];
        }
        f[j] = x;
        c->rep_end[j] = e;
    }
    /* at_most: drop a rule (and its findings) that matched in too many places */
    for (size_t id = 0; id < g->nrules; id++) {
        if (!c->hit[id] || !g->rules[id].at_most)
            continue;
        size_t n = 0;
        for (size_t i = 0; i < c->out->nfindings; i++)
            n += c->out->findings[i].rule == g->rules[id].id;
        if (n <= g->rules[id].at_most)
            continue;
        c->hit[id] = 0;
        c->spanned[id] = 1;
        size_t k = 0;
        for (size_t i = 0; i < c->out->nfindings; i++)
            if (c->out->findings[i].rule != g->rules[id].id)
                c->out->findings[k++] = c->out->findings[i];
        c->out->nfindings = k;
    }
    /* A rule whose start fell outside every window (longer than GUARD_WINDOW_MAX)
     * still gets a span: the window before its first end. */
    for (size_t id = 0; id < g->nrules; id++)
        if (c->hit[id] && !c->spanned[id]) {
            size_t e = c->first_end[id], w = g->rules[id].width;
            add_finding(c, &g->rules[id], e > w ? e - w : 0, e);
        }
    return 0;
}

int guard_scan(const struct guard *g, const char *text, size_t len, struct guard_result *out)
{
    memset(out, 0, sizeof(*out));
    if (!g || (!text && len))
        return -1;
    /* hs_scan takes an unsigned length; tool outputs are far smaller */
    if (len > UINT_MAX)
        return -4;
    if (tls_scratch_gen != g->gen) {
        if (grow_scratch(g->db) < 0)
            return -2;
        tls_scratch_gen = g->gen;
    }
    struct scan_ctx c;
    c.g = g;
    c.out = out;
    c.nwin = 0;
    memset(c.hit, 0, g->nrules);
    memset(c.seen, 0, g->nrules);
    memset(c.spanned, 0, g->nrules);
    memset(c.hit_h, 0, sizeof(c.hit_h));
    if (!text)
        text = "";
    c.text = text;
    if (hs_scan(g->db, text, (unsigned)len, 0, tls_scratch, on_fast, &c) != HS_SUCCESS ||
        (c.nwin && find_spans(&c, text) < 0)) {
        memset(out, 0, sizeof(*out));
        return -3;
    }
    guard_find_hidden(text, len, on_hidden, &c);
    scan_encoded(&c, text, len);

    double keep = 1.0;
    for (size_t i = 0; i < g->nrules; i++)
        if (c.hit[i])
            keep *= 1.0 - weight(g->rules[i].severity);
    for (size_t h = 0; h < GUARD_NHEURISTICS; h++)
        if (c.hit_h[h])
            keep *= 1.0 - weight(guard_heuristics[h].severity);
    out->score = round((1.0 - keep) * 10000.0) / 10000.0;
    out->injection = out->score >= GUARD_INJECTION_THRESHOLD;
    return 0;
}
