// SPDX-License-Identifier: Apache-2.0
// The budget store (embedded backend): settled spend written to the SQLite
// state file by a thread of its own, so no worker ever waits on the disk,
// and loaded back at start. Also sends soft-limit alerts (log, metric,
// webhook) from a second thread, so a slow webhook never delays the ledger.
#include "budget/budget.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget/internal.h"
#include "core/log.h"
#include "state/state.h"

#define RETRY_MS 200

/* Soft-limit alerts fired per node and period (for /metrics). */
struct alert_count {
    char *node;
    int period;
    uint64_t n;
};

/* An alert handed to the alert thread. */
struct alert_msg {
    struct alert_msg *next;
    struct alert_entry a;
    double soft_limit;
};

struct budget_store {
    struct state *st;
    struct ledger *lg;   /* the counters every attached tree uses (one ref) */
    struct journal j;    /* lg->j points here */
    pthread_t writer;
    double soft_limit;   /* of the last attached tree, for alert messages */

    /* alert thread: its queue, the webhook URL and the counts */
    pthread_mutex_t amu;
    pthread_cond_t awake;
    pthread_t alerter;
    struct alert_msg *ahead, *atail;
    int astop;
    char *webhook;
    struct alert_count *counts;
    size_t ncounts;

    /* written by the writer thread, read by /metrics */
    _Atomic uint64_t written, write_errors;
};

/* A state_budget_totals_each callback: one stored total into the ledger arg
 * (spend and the alert already sent; nothing reserved). */
int budget_ledger_load_total(const struct state_budget_total *t, void *arg)
{
    struct ledger *lg = arg;
    if (t->period < 0 || t->period >= BUDGET_NPERIODS)
        return 0;
    struct counters *c = budget_ledger_get(lg, t->node);
    if (c == NULL)
        return -1;
    c->key[t->period] = t->key;
    c->spent[t->period] = t->spent;
    c->reserved[t->period] = 0;
    c->alerted[t->period] = t->alerted ? t->key : -1;
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- the writer thread -------------------------------------------------- */

/* Writes one batch, retrying while the file is busy or full; gives up only
 * when stopping (the batch is then lost, and logged). */
static void write_batch(struct budget_store *s, const struct state_budget_settlement *rows,
                        size_t nrows, const struct state_budget_total *tot, size_t ntot, int stopping)
{
    for (int attempt = 0;; attempt++) {
        if (state_budget_write(s->st, rows, nrows, tot, ntot) == 0) {
            atomic_fetch_add(&s->written, nrows);
            return;
        }
        atomic_fetch_add(&s->write_errors, 1);
        if (attempt == 0 || attempt % 50 == 0)
            log_msg(LOG_ERROR, NULL, "budget ledger: %s (retrying)", state_errmsg(s->st));
        if (stopping && attempt >= 10) {
            log_msg(LOG_ERROR, NULL, "budget ledger: giving up on %zu settlements at exit", nrows);
            return;
        }
        sleep_ms(RETRY_MS);
    }
}

static void queue_alerts(struct budget_store *s, struct alert_entry *a, size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&s->amu);
    for (size_t i = 0; i < n; i++) {
        struct alert_msg *m = calloc(1, sizeof *m);
        if (m == NULL) {
            free(a[i].node);
            continue;
        }
        m->a = a[i];
        m->soft_limit = s->soft_limit;
        if (s->atail)
            s->atail->next = m;
        else
            s->ahead = m;
        s->atail = m;
    }
    pthread_cond_signal(&s->awake);
    pthread_mutex_unlock(&s->amu);
}

static void *writer_main(void *arg)
{
    struct budget_store *s = arg;
    struct ledger *lg = s->lg;
    struct journal *j = &s->j;
    struct state_budget_total *tot = NULL;
    size_t totcap = 0;
    struct alert_entry alerts[ALERTS_MAX];
    pthread_mutex_lock(&lg->lock);
    for (;;) {
        while (j->n == 0 && !j->any_dirty && j->nalerts == 0 && !j->stop)
            pthread_cond_wait(&j->wake, &lg->lock);
        /* A few settlements: give the workers up to JOURNAL_GATHER_MS to add
         * more, so one transaction writes the totals once for all of them
         * (settlers wake the writer at the first and the JOURNAL_GATHER_MIN-th). */
        if (j->n < JOURNAL_GATHER_MIN && !j->stop) {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_nsec += JOURNAL_GATHER_MS * 1000000L;
            if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
            }
            while (j->n < JOURNAL_GATHER_MIN && !j->stop)
                if (pthread_cond_timedwait(&j->wake, &lg->lock, &dl) == ETIMEDOUT)
                    break;
        }
        int stopping = j->stop;
        /* take the queued settlements and a snapshot of every dirty total:
         * written in one transaction, the ledger and the totals agree */
        struct journal_entry *q = j->q;
        size_t nq = j->n;
        j->q = NULL;
        j->n = j->cap = 0;
        size_t nalerts = j->nalerts;
        memcpy(alerts, j->alerts, nalerts * sizeof alerts[0]);
        j->nalerts = 0;
        j->any_dirty = 0;
        size_t ntot = 0;
        int oom = 0;
        for (size_t i = 0; i < lg->n; i++) {
            struct counters *c = lg->items[i];
            if (!c->dirty)
                continue;
            if (ntot + BUDGET_NPERIODS > totcap) {
                size_t cap = totcap ? totcap * 2 : 64;
                struct state_budget_total *nt = realloc(tot, cap * sizeof *nt);
                if (nt == NULL) {
                    oom = 1; /* stays dirty: written next time */
                    break;
                }
                tot = nt;
                totcap = cap;
            }
            c->dirty = 0;
            for (int p = 0; p < BUDGET_NPERIODS; p++) {
                if (c->key[p] < 0)
                    continue;
                tot[ntot++] = (struct state_budget_total){
                    .node = c->id, /* counters outlive the store's ref */
                    .period = p,
                    .key = c->key[p],
                    .spent = c->spent[p],
                    .alerted = c->alerted[p] == c->key[p],
                };
            }
        }
        if (oom)
            j->any_dirty = 1;
        pthread_mutex_unlock(&lg->lock);

        struct state_budget_settlement *rows = nq ? calloc(nq, sizeof *rows) : NULL;
        for (size_t i = 0; i < nq && rows != NULL; i++)
            rows[i] = (struct state_budget_settlement){q[i].ts_ms, q[i].request_id, q[i].chain,
                                                       q[i].micro_usd};
        if (nq > 0 && rows == NULL)
            log_msg(LOG_ERROR, NULL, "budget ledger: out of memory; %zu settlements not logged "
                                     "(totals still written)", nq);
        if (ntot > 0 || (rows != NULL && nq > 0))
            write_batch(s, rows, rows ? nq : 0, tot, ntot, stopping);
        free(rows);
        for (size_t i = 0; i < nq; i++)
            free(q[i].chain);
        free(q);
        queue_alerts(s, alerts, nalerts);
        if (oom)
            sleep_ms(RETRY_MS);

        pthread_mutex_lock(&lg->lock);
        if (stopping && j->n == 0 && !j->any_dirty && j->nalerts == 0)
            break;
    }
    pthread_mutex_unlock(&lg->lock);
    free(tot);
    return NULL;
}

/* ---- the alert thread ---------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static void post_webhook(const char *url, const char *body)
{
    CURL *c = curl_easy_init();
    if (c == NULL)
        return;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    long status = 0;
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status < 200 || status >= 300)
        log_msg(LOG_WARN, NULL, "budget soft-limit webhook: %s",
                rc != CURLE_OK ? curl_easy_strerror(rc) : "non-2xx answer");
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static const char *period_label(enum budget_period p)
{
    return p == BUDGET_DAY ? "per-day" : p == BUDGET_MONTH ? "per-month" : "total";
}

/* "2026-11-25", "2026-11" or "total": the period an alert is about. */
static void period_text(enum budget_period p, int64_t key, char *out, size_t len)
{
    time_t t = (time_t)key * 86400;
    struct tm tm;
    if (p == BUDGET_DAY) {
        gmtime_r(&t, &tm);
        strftime(out, len, "%Y-%m-%d", &tm);
    } else if (p == BUDGET_MONTH)
        snprintf(out, len, "%04lld-%02lld", (long long)(1970 + key / 12), (long long)(key % 12 + 1));
    else
        snprintf(out, len, "total");
}

static void count_alert(struct budget_store *s, const struct alert_entry *a)
{
    for (size_t i = 0; i < s->ncounts; i++)
        if (s->counts[i].period == (int)a->period && strcmp(s->counts[i].node, a->node) == 0) {
            s->counts[i].n++;
            return;
        }
    struct alert_count *nc = realloc(s->counts, (s->ncounts + 1) * sizeof *nc);
    if (nc == NULL)
        return;
    s->counts = nc;
    if ((nc[s->ncounts].node = strdup(a->node)) == NULL)
        return;
    nc[s->ncounts].period = (int)a->period;
    nc[s->ncounts].n = 1;
    s->ncounts++;
}

static void send_alert(struct budget_store *s, struct alert_msg *m, const char *webhook)
{
    const struct alert_entry *a = &m->a;
    char period[32];
    period_text(a->period, a->key, period, sizeof period);
    double frac = a->cap > 0 ? (double)a->spent / (double)a->cap : 0;
    log_msg(LOG_WARN, NULL,
            "budget soft limit: agent '%s' has spent $%.6f of its %s cap of $%.6f (%.0f%%, "
            "alert at %.0f%%) in period %s",
            a->node, (double)a->spent / 1e6, period_label(a->period), (double)a->cap / 1e6,
            frac * 100, m->soft_limit * 100, period);
    if (webhook == NULL)
        return;
    json_t *body = json_pack("{s:s,s:s,s:s,s:s,s:f,s:f,s:I,s:I,s:f,s:f}", "event",
                             "budget.soft_limit", "node", a->node, "period",
                             budget_period_name(a->period), "period_start", period, "cap_usd",
                             (double)a->cap / 1e6, "spent_usd", (double)a->spent / 1e6,
                             "cap_micro_usd", (json_int_t)a->cap, "spent_micro_usd",
                             (json_int_t)a->spent, "fraction", frac, "soft_limit", m->soft_limit);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text != NULL)
        post_webhook(webhook, text);
    free(text);
}

static void *alerter_main(void *arg)
{
    struct budget_store *s = arg;
    pthread_mutex_lock(&s->amu);
    for (;;) {
        while (s->ahead == NULL && !s->astop)
            pthread_cond_wait(&s->awake, &s->amu);
        if (s->ahead == NULL)
            break;
        struct alert_msg *m = s->ahead;
        s->ahead = m->next;
        if (s->ahead == NULL)
            s->atail = NULL;
        count_alert(s, &m->a);
        char *webhook = s->webhook ? strdup(s->webhook) : NULL;
        pthread_mutex_unlock(&s->amu);
        send_alert(s, m, webhook);
        free(webhook);
        free(m->a.node);
        free(m);
        pthread_mutex_lock(&s->amu);
    }
    pthread_mutex_unlock(&s->amu);
    return NULL;
}

void budget_store_alert(void *store, const char *node, enum budget_period p, int64_t key,
                        int64_t cap, int64_t spent)
{
    struct budget_store *s = store;
    struct alert_entry a = {.node = strdup(node), .period = p, .key = key, .cap = cap,
                            .spent = spent};
    if (s == NULL || a.node == NULL) {
        free(a.node);
        return;
    }
    queue_alerts(s, &a, 1);
}

/* ---- public --------------------------------------------------------------- */

struct budget_store *budget_store_open(const char *path, char *err, size_t errlen)
{
    struct budget_store *s = calloc(1, sizeof *s);
    if (s == NULL || (s->lg = budget_ledger_new()) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->soft_limit = 0.8;
    pthread_mutex_init(&s->amu, NULL);
    pthread_cond_init(&s->awake, NULL);
    pthread_cond_init(&s->j.wake, NULL);
    char why[300];
    if ((s->st = state_open(path, why, sizeof why)) == NULL) {
        snprintf(err, errlen, "%s", why);
        goto fail;
    }
    time_t now = time(NULL);
    if (state_budget_totals_each(s->st, budget_period_key(BUDGET_DAY, now),
                                 budget_period_key(BUDGET_MONTH, now), budget_ledger_load_total, s->lg) < 0) {
        snprintf(err, errlen, "loading budget totals: %s", state_errmsg(s->st));
        goto fail;
    }
    s->lg->j = &s->j;
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        s->lg->j = NULL;
        snprintf(err, errlen, "cannot start the budget ledger thread");
        goto fail;
    }
    if (pthread_create(&s->alerter, NULL, alerter_main, s) != 0) {
        snprintf(err, errlen, "cannot start the budget alert thread");
        budget_store_close(s);
        return NULL;
    }
    return s;
fail:
    state_close(s->st);
    budget_ledger_unref(s->lg);
    pthread_cond_destroy(&s->j.wake);
    pthread_cond_destroy(&s->awake);
    pthread_mutex_destroy(&s->amu);
    free(s);
    return NULL;
}

int budget_store_attach(struct budget_store *s, struct budget_tree *t, const char *webhook)
{
    if (s == NULL)
        return 0;
    pthread_mutex_lock(&s->amu);
    char *w = webhook ? strdup(webhook) : NULL;
    free(s->webhook);
    s->webhook = w;
    pthread_mutex_unlock(&s->amu);
    if (t == NULL)
        return 0;
    s->soft_limit = budget_tree_soft_limit(t);
    return budget_tree_use_ledger(t, s->lg);
}

void budget_store_close(struct budget_store *s)
{
    if (s == NULL)
        return;
    struct ledger *lg = s->lg;
    pthread_mutex_lock(&lg->lock);
    s->j.stop = 1;
    pthread_cond_signal(&s->j.wake);
    pthread_mutex_unlock(&lg->lock);
    pthread_join(s->writer, NULL);
    pthread_mutex_lock(&lg->lock);
    lg->j = NULL;
    for (size_t i = 0; i < s->j.n; i++)
        free(s->j.q[i].chain);
    free(s->j.q);
    for (size_t i = 0; i < s->j.nalerts; i++)
        free(s->j.alerts[i].node);
    pthread_mutex_unlock(&lg->lock);
    pthread_mutex_lock(&s->amu);
    s->astop = 1;
    pthread_cond_signal(&s->awake);
    pthread_mutex_unlock(&s->amu);
    if (s->alerter)
        pthread_join(s->alerter, NULL);
    for (size_t i = 0; i < s->ncounts; i++)
        free(s->counts[i].node);
    free(s->counts);
    free(s->webhook);
    state_close(s->st);
    budget_ledger_unref(lg);
    pthread_cond_destroy(&s->j.wake);
    pthread_cond_destroy(&s->awake);
    pthread_mutex_destroy(&s->amu);
    free(s);
}

/* Appends a Prometheus label value, escaped. */
static int label(buf_t *b, const char *v)
{
    for (; *v; v++) {
        const char *e = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
        if (buf_append(b, e ? e : v, e ? strlen(e) : 1) < 0)
            return -1;
    }
    return 0;
}

struct ledger *budget_store_ledger(struct budget_store *s)
{
    return s ? s->lg : NULL;
}

int budget_store_metrics(struct budget_store *s, buf_t *b)
{
    if (s == NULL)
        return 0;
    int rc = 0;
    struct ledger *lg = s->lg;
    time_t now = time(NULL);
    rc |= buf_appendf(b, "# HELP portcullis_budget_spent_usd Settled spend per agent and period "
                         "(current period; with state.redis, every instance's spend as read "
                         "from Redis at most a second ago).\n"
                         "# TYPE portcullis_budget_spent_usd gauge\n");
    pthread_mutex_lock(&lg->lock);
    for (size_t i = 0; i < lg->n && rc == 0; i++) {
        const struct counters *c = lg->items[i];
        for (int p = 0; p < BUDGET_NPERIODS && rc == 0; p++) {
            int64_t spent = c->key[p] == budget_period_key((enum budget_period)p, now) ? c->spent[p]
                                                                                       : 0;
            rc |= buf_appendf(b, "portcullis_budget_spent_usd{node=\"");
            rc |= label(b, c->id);
            rc |= buf_appendf(b, "\",period=\"%s\"} %.6f\n",
                              budget_period_name((enum budget_period)p), (double)spent / 1e6);
        }
    }
    uint64_t expired = lg->expired, dropped = s->j.dropped;
    pthread_mutex_unlock(&lg->lock);
    rc |= buf_appendf(b, "# HELP portcullis_budget_soft_limit_alerts_total Soft-limit alerts fired "
                         "(once per agent and period).\n"
                         "# TYPE portcullis_budget_soft_limit_alerts_total counter\n");
    pthread_mutex_lock(&s->amu);
    for (size_t i = 0; i < s->ncounts && rc == 0; i++) {
        rc |= buf_appendf(b, "portcullis_budget_soft_limit_alerts_total{node=\"");
        rc |= label(b, s->counts[i].node);
        rc |= buf_appendf(b, "\",period=\"%s\"} %llu\n",
                          budget_period_name((enum budget_period)s->counts[i].period),
                          (unsigned long long)s->counts[i].n);
    }
    pthread_mutex_unlock(&s->amu);
    rc |= buf_appendf(b,
                      "# HELP portcullis_budget_ledger_settlements_total Settlements written to "
                      "the ledger.\n# TYPE portcullis_budget_ledger_settlements_total counter\n"
                      "portcullis_budget_ledger_settlements_total %llu\n"
                      "# HELP portcullis_budget_ledger_dropped_total Settlements not logged "
                      "(queue full); their spend is still in the totals.\n"
                      "# TYPE portcullis_budget_ledger_dropped_total counter\n"
                      "portcullis_budget_ledger_dropped_total %llu\n"
                      "# HELP portcullis_budget_ledger_write_errors_total Failed ledger "
                      "transactions (retried).\n"
                      "# TYPE portcullis_budget_ledger_write_errors_total counter\n"
                      "portcullis_budget_ledger_write_errors_total %llu\n"
                      "# HELP portcullis_budget_reservations_expired_total Reservations released "
                      "unsettled after reservation_ttl.\n"
                      "# TYPE portcullis_budget_reservations_expired_total counter\n"
                      "portcullis_budget_reservations_expired_total %llu\n",
                      (unsigned long long)atomic_load(&s->written), (unsigned long long)dropped,
                      (unsigned long long)atomic_load(&s->write_errors),
                      (unsigned long long)expired);
    return rc < 0 ? -1 : 0;
}
