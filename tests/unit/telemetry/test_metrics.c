// SPDX-License-Identifier: Apache-2.0
// Unit tests for telemetry/metrics: sharded counters summed across real
// threads, histogram shape, label escaping, cardinality caps, and a line-by-
// line check that the rendered text is valid Prometheus exposition 0.0.4.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/metrics.h"

/* ---- helpers ------------------------------------------------------------ */

static char *render(struct metrics *m)
{
    buf_t b;
    buf_init(&b, 64u << 20);
    assert_int_equal(metrics_render(m, &b), 0);
    assert_non_null(b.data);
    return b.data; /* caller frees */
}

/* Value of the sample whose name and labels are exactly `series`, or -1. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static int count_lines_with(const char *text, const char *prefix)
{
    int c = 0;
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, n) == 0)
            c++;
    return c;
}

/* ---- exposition format validator --------------------------------------- */

static int is_name_start(int c)
{
    return isalpha(c) || c == '_' || c == ':';
}

static int is_name_char(int c)
{
    return isalnum(c) || c == '_' || c == ':';
}

static const char *parse_name(const char *p, char *dst, size_t cap)
{
    size_t n = 0;
    if (!is_name_start((unsigned char)*p))
        return NULL;
    while (is_name_char((unsigned char)*p)) {
        if (n + 1 < cap)
            dst[n++] = *p;
        p++;
    }
    dst[n] = '\0';
    return p;
}

struct family {
    char name[128];
    char type[16];
    int have_help, have_type, have_samples;
};

struct hist_state {
    char key[700]; /* family + labels without le */
    double last_bucket;
    int saw_inf;
    double inf_value;
};

/* Returns NULL if valid, else a static message naming the broken line. */
static const char *validate_exposition(const char *text)
{
    static char err[1200];
    struct family fams[32];
    int nfam = 0;
    struct hist_state hs = {0};
    const char *line = text;
    int lineno = 0;

    if (!*text)
        return "empty";
    if (text[strlen(text) - 1] != '\n')
        return "does not end with a newline";
    while (*line) {
        const char *eol = strchr(line, '\n');
        char l[1024];
        size_t len = (size_t)(eol - line);
        lineno++;
        if (len >= sizeof(l))
            return "line too long for the validator";
        memcpy(l, line, len);
        l[len] = '\0';
        line = eol + 1;
#define BAD(msg)                                                                                   \
    do {                                                                                           \
        snprintf(err, sizeof(err), "line %d: %s: %.1024s", lineno, msg, l);                        \
        return err;                                                                                \
    } while (0)
        if (len == 0)
            BAD("empty line");
        if (strchr(l, '\r'))
            BAD("carriage return");
        if (l[0] == '#') {
            char name[128];
            const char *p;
            int is_help = strncmp(l, "# HELP ", 7) == 0;
            int is_type = strncmp(l, "# TYPE ", 7) == 0;
            if (!is_help && !is_type)
                continue; /* plain comment */
            p = parse_name(l + 7, name, sizeof(name));
            if (!p || *p != ' ')
                BAD("bad metric name in HELP/TYPE");
            struct family *f = NULL;
            for (int i = 0; i < nfam; i++)
                if (strcmp(fams[i].name, name) == 0)
                    f = &fams[i];
            if (!f) {
                if (nfam == 32)
                    BAD("too many families");
                f = &fams[nfam++];
                memset(f, 0, sizeof(*f));
                snprintf(f->name, sizeof(f->name), "%s", name);
            }
            if (f->have_samples)
                BAD("HELP/TYPE after samples");
            if (is_help) {
                if (f->have_help++)
                    BAD("second HELP");
                for (const char *q = p + 1; *q; q++)
                    if (*q == '\\' && q[1] != '\\' && q[1] != 'n')
                        BAD("bad escape in HELP");
            } else {
                if (f->have_type++)
                    BAD("second TYPE");
                p++;
                if (strcmp(p, "counter") && strcmp(p, "gauge") && strcmp(p, "histogram") &&
                    strcmp(p, "summary") && strcmp(p, "untyped"))
                    BAD("bad TYPE");
                snprintf(f->type, sizeof(f->type), "%s", p);
            }
            continue;
        }

        /* sample: name [{labels}] value */
        char name[128], labels_wo_le[512] = "", le[256] = "";
        const char *p = parse_name(l, name, sizeof(name));
        if (!p)
            BAD("bad sample name");
        if (*p == '{') {
            char lname[128], seen[16][128];
            int nseen = 0;
            p++;
            while (*p != '}') {
                char val[256];
                size_t vn = 0;
                p = parse_name(p, lname, sizeof(lname));
                if (!p || *p != '=' || p[1] != '"')
                    BAD("bad label");
                for (int i = 0; i < nseen; i++)
                    if (strcmp(seen[i], lname) == 0)
                        BAD("duplicate label");
                snprintf(seen[nseen++ % 16], 128, "%s", lname);
                p += 2;
                while (*p != '"') {
                    if (!*p)
                        BAD("unterminated label value");
                    if (*p == '\\') {
                        if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                            BAD("bad escape in label value");
                        p++;
                    }
                    if (vn + 1 < sizeof(val))
                        val[vn++] = *p;
                    p++;
                }
                val[vn] = '\0';
                p++;
                if (strcmp(lname, "le") == 0) {
                    snprintf(le, sizeof(le), "%s", val);
                } else {
                    size_t k = strlen(labels_wo_le);
                    snprintf(labels_wo_le + k, sizeof(labels_wo_le) - k, "%s=%s;", lname, val);
                }
                if (*p == ',')
                    p++;
                else if (*p != '}')
                    BAD("expected , or }");
            }
            p++;
        }
        if (*p != ' ')
            BAD("no space before value");
        p++;
        char *end;
        double v = strtod(p, &end);
        if (end == p || (*end && *end != ' '))
            BAD("bad value");
        if (*end == ' ') { /* optional timestamp */
            const char *q = end + 1;
            if (!*q)
                BAD("trailing space");
            for (; *q; q++)
                if (!isdigit((unsigned char)*q) && *q != '-')
                    BAD("bad timestamp");
        }

        /* which family does it belong to? */
        struct family *f = NULL;
        const char *suffix = "";
        for (int i = 0; i < nfam; i++) {
            size_t fl = strlen(fams[i].name);
            if (strcmp(fams[i].name, name) == 0) {
                f = &fams[i];
                suffix = "";
                break;
            }
            if (strncmp(fams[i].name, name, fl) == 0 && strcmp(fams[i].type, "histogram") == 0 &&
                (!strcmp(name + fl, "_bucket") || !strcmp(name + fl, "_sum") ||
                 !strcmp(name + fl, "_count"))) {
                f = &fams[i];
                suffix = name + fl;
            }
        }
        if (!f || !f->have_type)
            BAD("sample without a TYPE line");
        if (f != &fams[nfam - 1])
            BAD("family not contiguous");
        f->have_samples = 1;
        if (strcmp(f->type, "counter") == 0 && (v < 0 || isnan(v)))
            BAD("negative counter");
        if (strcmp(f->type, "histogram") == 0) {
            char key[700];
            snprintf(key, sizeof(key), "%s|%s", f->name, labels_wo_le);
            if (strcmp(suffix, "_bucket") == 0) {
                double bound;
                if (!*le)
                    BAD("bucket without le");
                bound = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, &end);
                if (strcmp(le, "+Inf") && *end)
                    BAD("bad le");
                if (strcmp(hs.key, key) != 0) {
                    if (hs.key[0] && !hs.saw_inf)
                        BAD("previous histogram lacks +Inf");
                    snprintf(hs.key, sizeof(hs.key), "%s", key);
                    hs.last_bucket = -1;
                    hs.saw_inf = 0;
                } else if (v < hs.last_bucket) {
                    BAD("buckets not cumulative");
                }
                hs.last_bucket = v;
                if (isinf(bound)) {
                    hs.saw_inf = 1;
                    hs.inf_value = v;
                }
            } else if (*le) {
                BAD("le on a non-bucket sample");
            } else if (strcmp(suffix, "_count") == 0) {
                if (strcmp(hs.key, key) != 0 || !hs.saw_inf)
                    BAD("_count without buckets");
                if (v != hs.inf_value)
                    BAD("_count differs from the +Inf bucket");
            } else if (strcmp(suffix, "_sum") != 0) {
                BAD("bare sample in a histogram family");
            }
        }
#undef BAD
    }
    for (int i = 0; i < nfam; i++)
        if (!fams[i].have_help || !fams[i].have_type) {
            snprintf(err, sizeof(err), "family %s lacks HELP or TYPE", fams[i].name);
            return err;
        }
    return NULL;
}

static void assert_valid(const char *text)
{
    const char *e = validate_exposition(text);
    if (e) {
        fprintf(stderr, "%s\n---\n%s---\n", e, text);
        fail_msg("invalid exposition: %s", e);
    }
}

/* ---- tests -------------------------------------------------------------- */

static void test_new_zero_workers_is_null_and_free_null_is_safe(void **state)
{
    (void)state;
    assert_null(metrics_new(0));
    metrics_free(NULL);
}

static void test_empty_render_is_valid_and_has_every_family(void **state)
{
    struct metrics *m = metrics_new(2);
    assert_non_null(m);
    char *t = render(m);
    assert_valid(t);
    const char *fams[] = {"portcullis_requests_total",
                          "portcullis_request_duration_seconds",
                          "portcullis_upstream_duration_seconds",
                          "portcullis_requests_in_flight",
                          "portcullis_connections_open",
                          "portcullis_tokens_total",
                          "portcullis_upstream_attempts_total"};
    for (size_t i = 0; i < sizeof(fams) / sizeof(*fams); i++) {
        char h[160];
        snprintf(h, sizeof(h), "# TYPE %s ", fams[i]);
        assert_non_null(strstr(t, h));
        snprintf(h, sizeof(h), "# HELP %s ", fams[i]);
        assert_non_null(strstr(t, h));
    }
    assert_true(sample(t, "portcullis_requests_in_flight") == 0);
    free(t);
    metrics_free(m);
}

#define NTHREADS 4
#define PER_THREAD 20000

struct worker_arg {
    struct metrics *m;
    unsigned w;
};

static const char *routes[] = {"chat", "embeddings", "models", "messages"};
static const int statuses[] = {200, 400, 429, 502};
static const char *models[] = {"gpt-4o-mini", "claude-3-5-haiku", NULL};

static void *worker_main(void *p)
{
    struct worker_arg *a = p;
    for (unsigned i = 0; i < PER_THREAD; i++) {
        metrics_connections(a->m, a->w, +1);
        metrics_inflight(a->m, a->w, +1);
        metrics_upstream_attempt(a->m, a->w, i % 2 ? "openai" : "anthropic",
                                 i % 5 ? "ok" : "timeout");
        metrics_request_done(a->m, a->w, routes[i % 4], statuses[(i / 4) % 4], models[i % 3],
                             0.001 * (i % 100), i % 2 ? 0.0005 : -1, 10, 3);
        metrics_inflight(a->m, a->w, -1);
        if (i % 2)
            metrics_connections(a->m, a->w, -1);
    }
    return NULL;
}

static atomic_int stop_render;

static void *render_main(void *p)
{
    struct metrics *m = p;
    int renders = 0;
    while (!atomic_load(&stop_render) || renders < 3) {
        char *t = render(m);
        const char *e = validate_exposition(t);
        if (e) {
            fprintf(stderr, "concurrent render invalid: %s\n", e);
            abort();
        }
        free(t);
        renders++;
    }
    return NULL;
}

static void test_threads_counts_sum_across_shards(void **state)
{
    struct metrics *m = metrics_new(NTHREADS);
    assert_non_null(m);
    pthread_t th[NTHREADS], rt;
    struct worker_arg args[NTHREADS];
    atomic_store(&stop_render, 0);
    assert_int_equal(pthread_create(&rt, NULL, render_main, m), 0);
    for (unsigned i = 0; i < NTHREADS; i++) {
        args[i] = (struct worker_arg){m, i};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &args[i]), 0);
    }
    for (unsigned i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&stop_render, 1);
    pthread_join(rt, NULL);

    /* Expected per-(route,status,model) count, computed the same way. */
    double expect[4][4][3] = {{{0}}};
    for (unsigned i = 0; i < PER_THREAD; i++)
        expect[i % 4][(i / 4) % 4][i % 3] += NTHREADS;

    char *t = render(m);
    assert_valid(t);
    double total = 0;
    for (int r = 0; r < 4; r++)
        for (int s = 0; s < 4; s++)
            for (int md = 0; md < 3; md++) {
                char series[256];
                snprintf(series, sizeof(series),
                         "portcullis_requests_total{route=\"%s\",status=\"%d\",model=\"%s\"}",
                         routes[r], statuses[s], models[md] ? models[md] : "");
                double v = sample(t, series);
                if (expect[r][s][md] == 0) {
                    assert_true(v == -1);
                } else {
                    if (v != expect[r][s][md])
                        fail_msg("%s = %g, want %g", series, v, expect[r][s][md]);
                }
                total += v > 0 ? v : 0;
            }
    assert_true(total == (double)NTHREADS * PER_THREAD);
    assert_int_equal(count_lines_with(t, "portcullis_requests_total{"), 48);

    /* histograms: one per route, count = all requests on that route */
    for (int r = 0; r < 4; r++) {
        char series[160];
        snprintf(series, sizeof(series), "portcullis_request_duration_seconds_count{route=\"%s\"}",
                 routes[r]);
        assert_true(sample(t, series) == (double)NTHREADS * PER_THREAD / 4);
        /* odd i made an upstream call; routes 1 and 3 are exactly the odd i */
        snprintf(series, sizeof(series), "portcullis_upstream_duration_seconds_count{route=\"%s\"}",
                 routes[r]);
        double want = r % 2 ? (double)NTHREADS * PER_THREAD / 4 : -1;
        assert_true(sample(t, series) == want);
    }

    /* tokens: model NULL renders as model="" */
    double tin = 0, tout = 0;
    for (int md = 0; md < 3; md++) {
        char series[160];
        snprintf(series, sizeof(series), "portcullis_tokens_total{direction=\"in\",model=\"%s\"}",
                 models[md] ? models[md] : "");
        tin += sample(t, series);
        snprintf(series, sizeof(series), "portcullis_tokens_total{direction=\"out\",model=\"%s\"}",
                 models[md] ? models[md] : "");
        tout += sample(t, series);
    }
    assert_true(tin == 10.0 * NTHREADS * PER_THREAD);
    assert_true(tout == 3.0 * NTHREADS * PER_THREAD);

    /* gauges: in-flight back to zero, half the connections still open */
    assert_true(sample(t, "portcullis_requests_in_flight") == 0);
    assert_true(sample(t, "portcullis_connections_open") == (double)NTHREADS * PER_THREAD / 2);

    /* upstream attempts */
    double ok =
        sample(t, "portcullis_upstream_attempts_total{provider=\"openai\",outcome=\"ok\"}") +
        sample(t, "portcullis_upstream_attempts_total{provider=\"anthropic\",outcome=\"ok\"}");
    double to =
        sample(t, "portcullis_upstream_attempts_total{provider=\"openai\",outcome=\"timeout\"}") +
        sample(t, "portcullis_upstream_attempts_total{provider=\"anthropic\",outcome=\"timeout\"}");
    assert_true(ok == (double)NTHREADS * PER_THREAD * 4 / 5);
    assert_true(to == (double)NTHREADS * PER_THREAD / 5);
    free(t);
    (void)state;
    metrics_free(m);
}

static void test_histogram_buckets_cumulative_and_count_matches(void **state)
{
    struct metrics *m = metrics_new(3);
    assert_non_null(m);
    /* Observations spread over workers, including bucket edges, sub-bucket,
     * beyond the last bucket, negative and NaN (counted as 0). */
    const double obs[] = {0.0001, 0.0005, 0.0007, 0.001, 0.003,  0.2,  0.25, 0.9, 1.0,
                          4.0,    59.0,   60.0,   61.0,  3600.0, -1.0, NAN,  0.0, 1e300};
    size_t n = sizeof(obs) / sizeof(*obs);
    for (size_t i = 0; i < n; i++)
        metrics_request_done(m, (unsigned)(i % 3), "chat", 200, "x", obs[i], obs[i], 0, 0);
    char *t = render(m);
    assert_valid(t);

    const char *les[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
                         "0.05",   "0.1",   "0.25",   "0.5",   "1",    "2.5",
                         "5",      "10",    "20",     "30",    "60",   "+Inf"};
    const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                             0.5,    1,     2.5,    5,     10,   20,    30,   60,  INFINITY};
    double prev = -1;
    for (size_t b = 0; b < sizeof(les) / sizeof(*les); b++) {
        char series[160];
        snprintf(series, sizeof(series),
                 "portcullis_request_duration_seconds_bucket{route=\"chat\",le=\"%s\"}", les[b]);
        double v = sample(t, series);
        /* expected: observations <= bound, with negative/NaN as 0 */
        double want = 0;
        for (size_t i = 0; i < n; i++) {
            double x = (obs[i] > 0) ? obs[i] : 0;
            if (x <= bounds[b])
                want++;
        }
        if (v != want)
            fail_msg("le=%s: %g, want %g", les[b], v, want);
        assert_true(v >= prev);
        prev = v;
    }
    assert_true(sample(t, "portcullis_request_duration_seconds_count{route=\"chat\"}") ==
                (double)n);
    /* the upstream histogram skips the negative and NaN observation */
    assert_true(sample(t, "portcullis_upstream_duration_seconds_count{route=\"chat\"}") ==
                (double)n - 2);
    double sum = sample(t, "portcullis_request_duration_seconds_sum{route=\"chat\"}");
    assert_true(sum > 1e9 - 1 && sum < 1e9 + 4000); /* 1e300 is clamped to 1e9 s */
    free(t);

    metrics_free(m);
    m = metrics_new(1);
    metrics_request_done(m, 0, "embeddings", 200, NULL, 0.0123, -1, 0, 0);
    metrics_request_done(m, 0, "embeddings", 200, NULL, 0.0002, -1, 0, 0);
    t = render(m);
    assert_valid(t);
    assert_non_null(
        strstr(t, "portcullis_request_duration_seconds_sum{route=\"embeddings\"} 0.012500000\n"));
    assert_true(sample(t, "portcullis_request_duration_seconds_bucket{route=\"embeddings\",le="
                          "\"0.0005\"}") == 1);
    assert_true(
        sample(t, "portcullis_request_duration_seconds_bucket{route=\"embeddings\",le=\"0.01\"}") ==
        1);
    assert_true(sample(t, "portcullis_request_duration_seconds_bucket{route=\"embeddings\",le="
                          "\"0.025\"}") == 2);
    assert_null(strstr(t, "portcullis_upstream_duration_seconds_count"));
    free(t);
    (void)state;
    metrics_free(m);
}

static void test_label_values_escape_quote_backslash_newline(void **state)
{
    struct metrics *m = metrics_new(1);
    assert_non_null(m);
    metrics_request_done(m, 0, "chat", 200, "evil\"} 1\nportcullis_fake 9\\", 0.01, -1, 5, 0);
    metrics_upstream_attempt(m, 0, "we\"ird\\name", "ok");
    char *t = render(m);
    assert_valid(t);
    assert_non_null(strstr(t, "portcullis_requests_total{route=\"chat\",status=\"200\",model="
                              "\"evil\\\"} 1\\nportcullis_fake 9\\\\\"} 1\n"));
    assert_non_null(strstr(
        t,
        "portcullis_tokens_total{direction=\"in\",model=\"evil\\\"} 1\\nportcullis_fake 9\\\\\"} "
        "5\n"));
    assert_non_null(strstr(
        t,
        "portcullis_upstream_attempts_total{provider=\"we\\\"ird\\\\name\",outcome=\"ok\"} 1\n"));
    assert_int_equal(count_lines_with(t, "portcullis_fake"), 0);
    free(t);
    (void)state;
    metrics_free(m);
}

static void test_model_cardinality_capped_at_64_per_shard(void **state)
{
    struct metrics *m = metrics_new(2);
    assert_non_null(m);
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "model-%03d", i);
        metrics_request_done(m, 0, "chat", 200, name, 0.01, 0.01, 1, 1);
        metrics_request_done(m, 0, "chat", 200, name, 0.01, 0.01, 1, 1); /* seen twice */
    }
    /* the second shard has its own 64 */
    for (int i = 90; i < 100; i++) {
        snprintf(name, sizeof(name), "model-%03d", i);
        metrics_request_done(m, 1, "chat", 200, name, 0.01, 0.01, 1, 1);
    }
    /* too long, and not UTF-8: "other" even with room left */
    char longname[METRICS_LABEL_MAX + 50];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    metrics_request_done(m, 1, "chat", 200, longname, 0.01, 0.01, 1, 1);
    metrics_request_done(m, 1, "chat", 200, "bad\xff\xfe", 0.01, 0.01, 1, 1);
    metrics_request_done(m, 1, "chat", 200, "\xc0\xaf", 0.01, 0.01, 1, 1);    /* overlong '/' */
    metrics_request_done(m, 1, "chat", 200, "caf\xc3\xa9", 0.01, 0.01, 1, 1); /* valid */

    char *t = render(m);
    assert_valid(t);
    /* model-000..063 from shard 0, model-090..099 from shard 1, café, other */
    assert_int_equal(count_lines_with(t, "portcullis_requests_total{"), 64 + 10 + 1 + 1);
    assert_true(sample(t, "portcullis_requests_total{route=\"chat\",status=\"200\",model=\"model-"
                          "063\"}") == 2);
    assert_true(sample(t, "portcullis_requests_total{route=\"chat\",status=\"200\",model=\"model-"
                          "064\"}") == -1);
    assert_true(sample(t, "portcullis_requests_total{route=\"chat\",status=\"200\",model=\"model-"
                          "095\"}") == 1);
    /* shard 0: models 64..99 twice = 72; shard 1: long + 2 bad = 3 */
    assert_true(sample(t, "portcullis_requests_total{route=\"chat\",status=\"200\",model="
                          "\"other\"}") == 75);
    assert_true(sample(t, "portcullis_tokens_total{direction=\"out\",model=\"other\"}") == 75);
    assert_true(sample(t, "portcullis_requests_total{route=\"chat\",status=\"200\",model="
                          "\"caf\xc3\xa9\"}") == 1);
    assert_int_equal(count_lines_with(t, "portcullis_tokens_total{direction=\"in\""), 76);
    free(t);
    (void)state;
    metrics_free(m);
}

static void test_route_and_provider_caps_and_unknown_outcome(void **state)
{
    struct metrics *m = metrics_new(1);
    assert_non_null(m);
    char name[32];
    for (int i = 0; i < METRICS_MAX_ROUTES + 5; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        metrics_request_done(m, 0, name, 200, NULL, 0.01, -1, 0, 0);
    }
    for (int i = 0; i < METRICS_MAX_PROVIDERS + 3; i++) {
        snprintf(name, sizeof(name), "p%02d", i);
        metrics_upstream_attempt(m, 0, name, "status_429");
    }
    metrics_upstream_attempt(m, 0, "p00", "exploded");
    metrics_upstream_attempt(m, 0, "p00", NULL);
    metrics_upstream_attempt(m, 0, NULL, "status_5xx");
    char *t = render(m);
    assert_valid(t);
    assert_int_equal(count_lines_with(t, "portcullis_request_duration_seconds_count{"),
                     METRICS_MAX_ROUTES + 1);
    assert_true(sample(t, "portcullis_request_duration_seconds_count{route=\"other\"}") == 5);
    assert_true(sample(t, "portcullis_requests_total{route=\"other\",status=\"200\",model=\"\"}") ==
                5);
    assert_true(sample(t, "portcullis_upstream_attempts_total{provider=\"other\",outcome="
                          "\"status_429\"}") == 3);
    assert_true(sample(t, "portcullis_upstream_attempts_total{provider=\"p00\",outcome="
                          "\"other\"}") == 2);
    assert_true(sample(t, "portcullis_upstream_attempts_total{provider=\"\",outcome="
                          "\"status_5xx\"}") == 1);
    free(t);
    (void)state;
    metrics_free(m);
}

static void test_status_range_and_key_table_overflow(void **state)
{
    struct metrics *m = metrics_new(1);
    assert_non_null(m);
    metrics_request_done(m, 0, "chat", -5, NULL, 0.01, -1, 0, 0);
    metrics_request_done(m, 0, "chat", 1000, NULL, 0.01, -1, 0, 0);
    metrics_request_done(m, 0, "chat", 499, NULL, 0.01, -1, 0, 0);
    /* 16 routes x 1000 statuses is far past the key table: every request
     * must still be counted somewhere. */
    char name[32];
    uint64_t n = 0;
    for (int r = 0; r < 16; r++) {
        snprintf(name, sizeof(name), "r%d", r);
        for (int st = 0; st < 1000; st++, n++)
            metrics_request_done(m, 0, r ? name : "chat", st, "gpt", 0.01, -1, 0, 0);
    }
    char *t = render(m);
    assert_valid(t);
    assert_true(sample(t, "portcullis_requests_total{route=\"chat\",status=\"0\",model=\"\"}") ==
                2);
    assert_true(sample(t, "portcullis_requests_total{route=\"chat\",status=\"499\",model=\"\"}") ==
                1);
    double total = 0;
    for (const char *p = t; (p = strstr(p, "\nportcullis_requests_total{")); p++)
        total += strtod(strchr(p, '}') + 2, NULL);
    assert_true(total == (double)n + 3);
    assert_non_null(strstr(t, ",status=\"other\",model=\"other\"} "));
    assert_non_null(strstr(t, "{route=\"r3\",status=\"500\",model=\"other\"} 1\n"));
    free(t);
    (void)state;
    metrics_free(m);
}

static void test_bad_worker_index_ignored_and_render_error_leaves_buffer(void **state)
{
    struct metrics *m = metrics_new(2);
    assert_non_null(m);
    metrics_request_done(m, 2, "chat", 200, NULL, 0.01, -1, 0, 0);
    metrics_inflight(m, 99, 1);
    metrics_connections(m, 2, 1);
    metrics_upstream_attempt(m, 7, "x", "ok");
    metrics_inflight(m, 1, 1);
    metrics_inflight(m, 0, 1);
    metrics_inflight(m, 0, 1);
    metrics_connections(m, 1, -1); /* negative per shard, summed anyway */
    char *t = render(m);
    assert_valid(t);
    assert_int_equal(count_lines_with(t, "portcullis_requests_total{"), 0);
    assert_true(sample(t, "portcullis_requests_in_flight") == 3);
    assert_non_null(strstr(t, "\nportcullis_connections_open -1\n"));
    free(t);

    buf_t b;
    buf_init(&b, 100);
    assert_int_equal(buf_append(&b, "keep", 4), 0);
    assert_int_equal(metrics_render(m, &b), -E2BIG);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");
    buf_free(&b);
    (void)state;
    metrics_free(m);
}

static void test_validator_rejects_broken_exposition(void **state)
{
    (void)state;
    assert_non_null(validate_exposition("x 1\n"));
    assert_non_null(validate_exposition("# HELP x h\n# TYPE x counter\nx{a=\"b\\q\"} 1\n"));
    assert_non_null(validate_exposition("# HELP x h\n# TYPE x counter\nx{a=\"b} 1\n"));
    assert_non_null(validate_exposition("# HELP x h\n# TYPE x counter\nx 1"));
    assert_non_null(validate_exposition("# HELP h h\n# TYPE h histogram\n"
                                        "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"));
    assert_non_null(validate_exposition("# HELP h h\n# TYPE h histogram\n"
                                        "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
                                        "h_sum 1\nh_count 3\n"));
    assert_null(validate_exposition("# HELP h h\n# TYPE h histogram\n"
                                    "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
                                    "h_sum 1\nh_count 2\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_zero_workers_is_null_and_free_null_is_safe),
        cmocka_unit_test(test_empty_render_is_valid_and_has_every_family),
        cmocka_unit_test(test_threads_counts_sum_across_shards),
        cmocka_unit_test(test_histogram_buckets_cumulative_and_count_matches),
        cmocka_unit_test(test_label_values_escape_quote_backslash_newline),
        cmocka_unit_test(test_model_cardinality_capped_at_64_per_shard),
        cmocka_unit_test(test_route_and_provider_caps_and_unknown_outcome),
        cmocka_unit_test(test_status_range_and_key_table_overflow),
        cmocka_unit_test(test_bad_worker_index_ignored_and_render_error_leaves_buffer),
        cmocka_unit_test(test_validator_rejects_broken_exposition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
