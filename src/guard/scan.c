// SPDX-License-Identifier: Apache-2.0
// guard_scan: one Vectorscan pass over the text, spans merged per rule, then the
// encoded-payload heuristic; the score combines the distinct rules that hit.
#include <limits.h>
#include <math.h>
#include <string.h>

#include "guard/internal.h"

/* Vectorscan scratch is per thread: grown with hs_alloc_scratch to fit any
 * guard this thread scans with, freed never (one per worker thread). */
static __thread hs_scratch_t *tls_scratch;

static const struct guard_rule heuristic_encoded = {
    .id = "heuristic.encoded_instructions",
    .category = "encoded_payload",
    .severity = GUARD_HIGH,
};

struct scan_ctx {
    const struct guard *g;
    struct guard_result *out;
    unsigned char hit[GUARD_MAX_RULES + 1]; /* last slot: the heuristic */
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
    out->findings[out->nfindings++] = (struct guard_finding){
        .rule = r->id, .category = r->category, .severity = r->severity, .start = from, .end = to};
}

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *ctx)
{
    struct scan_ctx *c = ctx;
    if (id >= c->g->nrules)
        return 0;
    c->hit[id] = 1;
    add_finding(c, &c->g->rules[id], (size_t)from, (size_t)to);
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
            c->hit[GUARD_MAX_RULES] = 1;
            add_finding(c, &heuristic_encoded, start, end);
            found++;
        }
    }
}

int guard_scan(const struct guard *g, const char *text, size_t len, struct guard_result *out)
{
    memset(out, 0, sizeof(*out));
    if (!g || (!text && len))
        return -1;
    if (hs_alloc_scratch(g->db, &tls_scratch) != HS_SUCCESS)
        return -2;
    struct scan_ctx c = {.g = g, .out = out};
    /* hs_scan takes an unsigned length; tool outputs are far smaller */
    if (len > UINT_MAX)
        return -4;
    if (hs_scan(g->db, text ? text : "", (unsigned)len, 0, tls_scratch, on_match, &c) !=
        HS_SUCCESS) {
        memset(out, 0, sizeof(*out));
        return -3;
    }
    scan_encoded(&c, text, len);

    double keep = 1.0;
    for (size_t i = 0; i < g->nrules; i++)
        if (c.hit[i])
            keep *= 1.0 - weight(g->rules[i].severity);
    if (c.hit[GUARD_MAX_RULES])
        keep *= 1.0 - weight(heuristic_encoded.severity);
    out->score = round((1.0 - keep) * 10000.0) / 10000.0;
    out->injection = out->score >= GUARD_INJECTION_THRESHOLD;
    return 0;
}
