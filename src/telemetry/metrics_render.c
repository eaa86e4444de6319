// SPDX-License-Identifier: Apache-2.0
// Prometheus metrics, render side: sums every worker's shard (racy but atomic
// reads), merges series by label text, and prints exposition format 0.0.4.
#include "telemetry/metrics.h"
#include "telemetry/metrics_shard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Histogram bucket upper bounds as printed; must match bucket_ns in metrics.c. */
static const char *const bucket_le[NBUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5",    "1",     "2.5",    "5",     "10",   "20",    "30",   "60",
};

/* ---- render: output helpers -------------------------------------------- */

/* Appends to a buf and remembers the first error, so the printing code reads
 * straight through and checks once at the end. */
struct out {
    buf_t *b;
    int err;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (!o->err)
        o->err = buf_append(o->b, s, n);
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_u64(struct out *o, uint64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, p, (size_t)(tmp + sizeof(tmp) - p));
}

static void put_i64(struct out *o, int64_t v)
{
    if (v < 0) {
        put(o, "-", 1);
        put_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(o, (uint64_t)v);
    }
}

/* Seconds with nanosecond precision, exactly. */
static void put_seconds(struct out *o, uint64_t ns)
{
    char frac[11];
    uint64_t f = ns % 1000000000ull;
    frac[0] = '.';
    for (int i = 9; i >= 1; i--, f /= 10)
        frac[i] = (char)('0' + f % 10);
    put_u64(o, ns / 1000000000ull);
    put(o, frac, 10);
}

/* Label value escaping per the text format: backslash, double quote and
 * line feed. */
static void put_label_value(struct out *o, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
        if (!esc)
            continue;
        put(o, run, (size_t)(s - run));
        put(o, esc, 2);
        run = s + 1;
    }
    put(o, run, (size_t)(s - run));
}

static void put_label(struct out *o, const char *name, const char *value, bool first)
{
    if (!first)
        put(o, ",", 1);
    puts_(o, name);
    put(o, "=\"", 2);
    put_label_value(o, value);
    put(o, "\"", 1);
}

static void put_header(struct out *o, const char *name, const char *type, const char *help)
{
    puts_(o, "# HELP ");
    puts_(o, name);
    put(o, " ", 1);
    puts_(o, help);
    puts_(o, "\n# TYPE ");
    puts_(o, name);
    put(o, " ", 1);
    puts_(o, type);
    put(o, "\n", 1);
}

/* ---- render: collecting series across shards --------------------------- */

/* A growable array of fixed-size records; render is off the hot path. */
struct vec {
    void *v;
    size_t n, cap, size;
};

static void *vec_push(struct vec *a)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        void *p = realloc(a->v, cap * a->size);
        if (!p)
            return NULL;
        a->v = p;
        a->cap = cap;
    }
    void *e = (char *)a->v + a->n++ * a->size;
    memset(e, 0, a->size);
    return e;
}

struct req_row {
    const char *route, *model;
    unsigned status;
    uint64_t count;
};

static int req_row_cmp(const void *pa, const void *pb)
{
    const struct req_row *a = pa, *b = pb;
    int c = strcmp(a->route, b->route);
    if (c)
        return c;
    if (a->status != b->status)
        return a->status < b->status ? -1 : 1;
    return strcmp(a->model, b->model);
}

struct hist_row {
    const char *route;
    uint64_t bucket[NBUCKETS + 1];
    uint64_t sum_ns;
};

static int hist_row_cmp(const void *pa, const void *pb)
{
    const struct hist_row *a = pa, *b = pb;
    return strcmp(a->route, b->route);
}

struct tok_row {
    const char *model;
    uint64_t in, out;
};

static int tok_row_cmp(const void *pa, const void *pb)
{
    const struct tok_row *a = pa, *b = pb;
    return strcmp(a->model, b->model);
}

struct up_row {
    const char *provider;
    unsigned outcome;
    uint64_t count;
};

static int up_row_cmp(const void *pa, const void *pb)
{
    const struct up_row *a = pa, *b = pb;
    int c = strcmp(a->provider, b->provider);
    if (c)
        return c;
    return a->outcome == b->outcome ? 0 : a->outcome < b->outcome ? -1 : 1;
}

/* Ids a render may look at: the published ones plus "other" and "". */
static bool published(struct intern *t, unsigned id)
{
    unsigned n = atomic_load_explicit(&t->n, memory_order_acquire);
    return id < n || id == t->cap || id == t->cap + 1;
}

static int collect_requests(struct metrics *m, struct vec *rows)
{
    for (unsigned w = 0; w < m->nworkers; w++) {
        struct shard *s = m->shards[w];
        for (unsigned i = 0; i < REQ_SLOTS; i++) {
            uint32_t k = atomic_load_explicit(&s->req[i].key, memory_order_acquire);
            if (!k)
                continue;
            struct req_row *r = vec_push(rows);
            if (!r)
                return -ENOMEM;
            r->route = intern_name(&s->routes, (k >> 17) & 31);
            r->model = intern_name(&s->models, (k >> 10) & 127);
            r->status = k & 1023;
            r->count = counter_get(&s->req[i].count);
        }
        for (unsigned id = 0; id < NROUTE_IDS; id++) {
            uint64_t c = counter_get(&s->req_overflow[id]);
            if (!c || !published(&s->routes, id))
                continue;
            struct req_row *r = vec_push(rows);
            if (!r)
                return -ENOMEM;
            r->route = intern_name(&s->routes, id);
            r->model = "other";
            r->status = STATUS_OTHER;
            r->count = c;
        }
    }
    return 0;
}

static int collect_hist(struct metrics *m, unsigned kind, struct vec *rows)
{
    for (unsigned w = 0; w < m->nworkers; w++) {
        struct shard *s = m->shards[w];
        for (unsigned id = 0; id < NROUTE_IDS; id++) {
            if (!published(&s->routes, id))
                continue;
            struct hist *h = &s->hist[kind][id];
            uint64_t b[NBUCKETS + 1], total = 0;
            for (unsigned j = 0; j <= NBUCKETS; j++)
                total += b[j] = counter_get(&h->bucket[j]);
            if (!total)
                continue;
            struct hist_row *r = vec_push(rows);
            if (!r)
                return -ENOMEM;
            r->route = intern_name(&s->routes, id);
            memcpy(r->bucket, b, sizeof(b));
            r->sum_ns = counter_get(&h->sum_ns);
        }
    }
    return 0;
}

static int collect_tokens(struct metrics *m, struct vec *rows)
{
    for (unsigned w = 0; w < m->nworkers; w++) {
        struct shard *s = m->shards[w];
        for (unsigned id = 0; id < NMODEL_IDS; id++) {
            if (!published(&s->models, id))
                continue;
            uint64_t in = counter_get(&s->tokens[id][0]);
            uint64_t out = counter_get(&s->tokens[id][1]);
            if (!in && !out)
                continue;
            struct tok_row *r = vec_push(rows);
            if (!r)
                return -ENOMEM;
            r->model = intern_name(&s->models, id);
            r->in = in;
            r->out = out;
        }
    }
    return 0;
}

static int collect_upstream(struct metrics *m, struct vec *rows)
{
    for (unsigned w = 0; w < m->nworkers; w++) {
        struct shard *s = m->shards[w];
        for (unsigned id = 0; id < NPROV_IDS; id++) {
            if (!published(&s->providers, id))
                continue;
            for (unsigned oc = 0; oc < NOUTCOMES; oc++) {
                uint64_t c = counter_get(&s->upstream[id][oc]);
                if (!c)
                    continue;
                struct up_row *r = vec_push(rows);
                if (!r)
                    return -ENOMEM;
                r->provider = intern_name(&s->providers, id);
                r->outcome = oc;
                r->count = c;
            }
        }
    }
    return 0;
}

/* ---- render: printing --------------------------------------------------- */

static void render_requests(struct out *o, struct vec *rows)
{
    struct req_row *r = rows->v;
    put_header(o, "portcullis_requests_total", "counter",
               "Requests served, by route, HTTP status and model.");
    if (rows->n)
        qsort(r, rows->n, sizeof(*r), req_row_cmp);
    for (size_t i = 0; i < rows->n;) {
        uint64_t sum = 0;
        size_t j = i;
        for (; j < rows->n && req_row_cmp(&r[i], &r[j]) == 0; j++)
            sum += r[j].count;
        puts_(o, "portcullis_requests_total{");
        put_label(o, "route", r[i].route, true);
        if (r[i].status == STATUS_OTHER) {
            put_label(o, "status", "other", false);
        } else {
            puts_(o, ",status=\"");
            put_u64(o, r[i].status);
            put(o, "\"", 1);
        }
        put_label(o, "model", r[i].model, false);
        put(o, "} ", 2);
        put_u64(o, sum);
        put(o, "\n", 1);
        i = j;
    }
}

static void render_hist(struct out *o, const char *name, const char *help, struct vec *rows)
{
    struct hist_row *r = rows->v;
    size_t nlen = strlen(name);
    put_header(o, name, "histogram", help);
    if (rows->n)
        qsort(r, rows->n, sizeof(*r), hist_row_cmp);
    for (size_t i = 0; i < rows->n;) {
        struct hist_row acc = r[i];
        size_t j = i + 1;
        for (; j < rows->n && hist_row_cmp(&r[i], &r[j]) == 0; j++) {
            for (unsigned b = 0; b <= NBUCKETS; b++)
                acc.bucket[b] += r[j].bucket[b];
            acc.sum_ns += r[j].sum_ns;
        }
        uint64_t cum = 0;
        for (unsigned b = 0; b <= NBUCKETS; b++) {
            cum += acc.bucket[b];
            put(o, name, nlen);
            puts_(o, "_bucket{");
            put_label(o, "route", acc.route, true);
            put_label(o, "le", b < NBUCKETS ? bucket_le[b] : "+Inf", false);
            put(o, "} ", 2);
            put_u64(o, cum);
            put(o, "\n", 1);
        }
        /* _count is the +Inf bucket, so the two always agree within one
         * render even while workers keep recording. */
        put(o, name, nlen);
        puts_(o, "_sum{");
        put_label(o, "route", acc.route, true);
        put(o, "} ", 2);
        put_seconds(o, acc.sum_ns);
        put(o, "\n", 1);
        put(o, name, nlen);
        puts_(o, "_count{");
        put_label(o, "route", acc.route, true);
        put(o, "} ", 2);
        put_u64(o, cum);
        put(o, "\n", 1);
        i = j;
    }
}

static void render_tokens(struct out *o, struct vec *rows)
{
    struct tok_row *r = rows->v;
    put_header(o, "portcullis_tokens_total", "counter",
               "LLM tokens, by direction (in = prompt, out = completion) and model.");
    if (rows->n)
        qsort(r, rows->n, sizeof(*r), tok_row_cmp);
    for (size_t i = 0; i < rows->n;) {
        uint64_t in = 0, out = 0;
        size_t j = i;
        for (; j < rows->n && tok_row_cmp(&r[i], &r[j]) == 0; j++)
            in += r[j].in, out += r[j].out;
        for (int d = 0; d < 2; d++) {
            puts_(o, d ? "portcullis_tokens_total{direction=\"out\""
                       : "portcullis_tokens_total{direction=\"in\"");
            put_label(o, "model", r[i].model, false);
            put(o, "} ", 2);
            put_u64(o, d ? out : in);
            put(o, "\n", 1);
        }
        i = j;
    }
}

static void render_upstream(struct out *o, struct vec *rows)
{
    struct up_row *r = rows->v;
    put_header(o, "portcullis_upstream_attempts_total", "counter",
               "Attempts to reach an upstream provider, by provider and outcome.");
    if (rows->n)
        qsort(r, rows->n, sizeof(*r), up_row_cmp);
    for (size_t i = 0; i < rows->n;) {
        uint64_t sum = 0;
        size_t j = i;
        for (; j < rows->n && up_row_cmp(&r[i], &r[j]) == 0; j++)
            sum += r[j].count;
        puts_(o, "portcullis_upstream_attempts_total{");
        put_label(o, "provider", r[i].provider, true);
        put_label(o, "outcome", metrics_outcome_names[r[i].outcome], false);
        put(o, "} ", 2);
        put_u64(o, sum);
        put(o, "\n", 1);
        i = j;
    }
}

static void render_gauge(struct out *o, const char *name, const char *help, int64_t v)
{
    put_header(o, name, "gauge", help);
    puts_(o, name);
    put(o, " ", 1);
    put_i64(o, v);
    put(o, "\n", 1);
}

int metrics_render(struct metrics *m, buf_t *out)
{
    if (!m || !out)
        return -EINVAL;
    struct vec req = {.size = sizeof(struct req_row)};
    struct vec hist[NHIST] = {{.size = sizeof(struct hist_row)}, {.size = sizeof(struct hist_row)}};
    struct vec tok = {.size = sizeof(struct tok_row)};
    struct vec up = {.size = sizeof(struct up_row)};
    struct out o = {.b = out, .err = 0};
    size_t start = out->len;
    int64_t inflight = 0, conns = 0;

    int rc = collect_requests(m, &req);
    for (unsigned k = 0; !rc && k < NHIST; k++)
        rc = collect_hist(m, k, &hist[k]);
    if (!rc)
        rc = collect_tokens(m, &tok);
    if (!rc)
        rc = collect_upstream(m, &up);
    if (rc)
        goto done;
    for (unsigned w = 0; w < m->nworkers; w++) {
        inflight += atomic_load_explicit(&m->shards[w]->inflight, memory_order_relaxed);
        conns += atomic_load_explicit(&m->shards[w]->connections, memory_order_relaxed);
    }

    render_requests(&o, &req);
    render_hist(&o, "portcullis_request_duration_seconds",
                "Time from the start of a request to its last response byte, by route.",
                &hist[HIST_TOTAL]);
    render_hist(&o, "portcullis_upstream_duration_seconds",
                "Time spent on upstream provider calls for a request, by route.",
                &hist[HIST_UPSTREAM]);
    render_gauge(&o, "portcullis_requests_in_flight", "Requests being served now.", inflight);
    render_gauge(&o, "portcullis_connections_open", "Client connections open now.", conns);
    render_tokens(&o, &tok);
    render_upstream(&o, &up);
    rc = o.err;

done:
    if (rc) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    free(req.v);
    free(hist[0].v);
    free(hist[1].v);
    free(tok.v);
    free(up.v);
    return rc;
}
