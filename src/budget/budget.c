// SPDX-License-Identifier: Apache-2.0
// The embedded budget tree: nodes in an array (parents first); their counters
// in a ledger guarded by one mutex. Reservations check and update the whole chain under the lock,
// so two workers can never both pass a cap that only one of them fits under.
#include "budget/budget.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget/internal.h"
#include "core/str.h"

#define MAX_NODES 100000

struct bnode {
    char *id;
    int parent; /* index, -1 for a root */
    int64_t cap[BUDGET_NPERIODS];
    struct counters *c; /* in the tree's ledger */
};

struct budget_tree {
    struct ledger *lg;
    struct bnode *nodes;
    size_t n, cap;
    time_t ttl;        /* reservations unsettled this long are released */
    double soft_limit; /* fraction of a cap that raises the alert; 0 = off */
};

struct ledger *budget_ledger_new(void)
{
    struct ledger *lg = calloc(1, sizeof *lg);
    if (lg == NULL)
        return NULL;
    if (pthread_mutex_init(&lg->lock, NULL) != 0) {
        free(lg);
        return NULL;
    }
    atomic_init(&lg->refs, 1);
    return lg;
}

void budget_ledger_ref(struct ledger *lg)
{
    atomic_fetch_add(&lg->refs, 1);
}

void budget_ledger_unref(struct ledger *lg)
{
    if (lg == NULL || atomic_fetch_sub(&lg->refs, 1) != 1)
        return;
    for (size_t i = 0; i < lg->n; i++) {
        free(lg->items[i]->id);
        free(lg->items[i]);
    }
    free(lg->items);
    /* reservations of calls that never settled (none in a clean run) */
    for (struct live_res *l = lg->live_head, *next; l != NULL; l = next) {
        next = l->next;
        free(l);
    }
    pthread_mutex_destroy(&lg->lock);
    free(lg);
}

struct counters *budget_ledger_get(struct ledger *lg, const char *id)
{
    for (size_t i = 0; i < lg->n; i++)
        if (strcmp(lg->items[i]->id, id) == 0)
            return lg->items[i];
    if (lg->n == lg->cap) {
        size_t cap = lg->cap ? lg->cap * 2 : 16;
        struct counters **ni = realloc(lg->items, cap * sizeof *ni);
        if (ni == NULL)
            return NULL;
        lg->items = ni;
        lg->cap = cap;
    }
    struct counters *c = calloc(1, sizeof *c);
    if (c == NULL || (c->id = strdup(id)) == NULL) {
        free(c);
        return NULL;
    }
    for (int p = 0; p < BUDGET_NPERIODS; p++)
        c->key[p] = c->alerted[p] = -1;
    lg->items[lg->n++] = c;
    return c;
}

struct ledger *budget_tree_ledger(struct budget_tree *t)
{
    return t ? t->lg : NULL;
}

const char *budget_period_name(enum budget_period p)
{
    return p == BUDGET_DAY ? "day" : p == BUDGET_MONTH ? "month" : "total";
}

int64_t budget_cost(uint64_t tokens, double price_per_mtok)
{
    if (tokens == 0 || !(price_per_mtok > 0))
        return 0;
    /* USD per million tokens is micro-USD per token */
    double v = ceil((double)tokens * price_per_mtok);
    return v >= 9e18 ? INT64_MAX / 4 : (int64_t)v;
}

/* Months since 1970-01 of the UTC day `days` since the epoch: the proleptic
 * Gregorian calendar in integer arithmetic (days to year and month as in
 * H. Hinnant's civil_from_days), so the hot path needs no gmtime_r. */
static int64_t month_of_day(int64_t days)
{
    int64_t z = days + 719468; /* days since 0000-03-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                       /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* March = 0 */
    int64_t month = mp < 10 ? mp + 2 : mp - 10;                          /* January = 0 */
    int64_t year = yoe + era * 400 + (month < 2);
    return (year - 1970) * 12 + month;
}

/* Days since the epoch, months since 1970-01, 0: the period index of NOW. */
static int64_t period_key(enum budget_period p, time_t now)
{
    int64_t days = (int64_t)now / 86400 - ((int64_t)now % 86400 < 0);
    if (p == BUDGET_DAY)
        return (int64_t)now / 86400;
    if (p == BUDGET_MONTH)
        return month_of_day(days);
    return 0;
}

static int64_t seconds_to_boundary(enum budget_period p, time_t now)
{
    if (p == BUDGET_DAY)
        return 86400 - (int64_t)now % 86400;
    if (p == BUDGET_MONTH) {
        struct tm tm;
        gmtime_r(&now, &tm);
        tm.tm_mday = 1;
        tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        tm.tm_mon += 1;
        return (int64_t)(timegm(&tm) - now);
    }
    return -1;
}

/* Starts a new period's counters when NOW has moved past the stored one.
 * Reservations made in an old period are released against that period only
 * (see budget_settle), so the new one starts clean. */
static void roll(struct counters *b, time_t now)
{
    for (int p = 0; p < BUDGET_NPERIODS; p++) {
        int64_t k = period_key((enum budget_period)p, now);
        if (k != b->key[p]) {
            b->key[p] = k;
            b->spent[p] = 0;
            b->reserved[p] = 0;
        }
    }
}

struct budget_tree *budget_tree_new(void)
{
    struct budget_tree *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    if ((t->lg = budget_ledger_new()) == NULL) {
        free(t);
        return NULL;
    }
    t->ttl = 30 * 60;
    t->soft_limit = 0.8;
    return t;
}

void budget_tree_free(struct budget_tree *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->nodes[i].id);
    free(t->nodes);
    budget_ledger_unref(t->lg);
    free(t);
}

static int find(const struct budget_tree *t, const char *id)
{
    /* Trees are small; a scan per chain element is cheaper than the call. */
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->nodes[i].id, id) == 0)
            return (int)i;
    return -1;
}

size_t budget_tree_size(const struct budget_tree *t)
{
    return t ? t->n : 0;
}

int budget_tree_add(struct budget_tree *t, const char *id, const char *parent,
                    const struct budget_caps *caps)
{
    if (t == NULL || id == NULL || find(t, id) >= 0 || t->n >= MAX_NODES)
        return -1;
    int pi = -1;
    if (parent != NULL && (pi = find(t, parent)) < 0)
        return -1;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct bnode *nb = realloc(t->nodes, cap * sizeof *nb);
        if (nb == NULL)
            return -1;
        t->nodes = nb;
        t->cap = cap;
    }
    struct bnode *b = &t->nodes[t->n];
    memset(b, 0, sizeof *b);
    b->id = strdup(id);
    if (b->id == NULL)
        return -1;
    b->parent = pi;
    for (int p = 0; p < BUDGET_NPERIODS; p++)
        b->cap[p] = caps ? caps->micro_usd[p] : BUDGET_NO_CAP;
    pthread_mutex_lock(&t->lg->lock);
    b->c = budget_ledger_get(t->lg, id);
    pthread_mutex_unlock(&t->lg->lock);
    if (b->c == NULL) {
        free(b->id);
        return -1;
    }
    t->n++;
    return 0;
}

int budget_tree_use_ledger(struct budget_tree *t, struct ledger *lg)
{
    if (t == NULL || lg == NULL || t->lg == lg)
        return 0;
    struct counters **found = calloc(t->n ? t->n : 1, sizeof *found);
    int rc = found == NULL ? -1 : 0;
    if (rc == 0)
        pthread_mutex_lock(&lg->lock);
    for (size_t i = 0; i < t->n && found != NULL && rc == 0; i++)
        if ((found[i] = budget_ledger_get(lg, t->nodes[i].id)) == NULL)
            rc = -1;
    if (found != NULL)
        pthread_mutex_unlock(&lg->lock);
    if (rc < 0) {
        free(found);
        return -1; /* t keeps its own ledger; counters added to lg stay unused */
    }
    for (size_t i = 0; i < t->n; i++)
        t->nodes[i].c = found[i];
    free(found);
    budget_ledger_ref(lg);
    budget_ledger_unref(t->lg);
    t->lg = lg;
    return 0;
}

double budget_tree_soft_limit(const struct budget_tree *t)
{
    return t ? t->soft_limit : 0;
}

int budget_tree_adopt(struct budget_tree *t, struct budget_tree *prev)
{
    if (t == NULL || prev == NULL)
        return 0;
    return budget_tree_use_ledger(t, prev->lg);
}

void budget_tree_set_options(struct budget_tree *t, uint32_t reservation_ttl_ms, double soft_limit)
{
    if (t == NULL)
        return;
    t->ttl = reservation_ttl_ms / 1000 > 0 ? (time_t)(reservation_ttl_ms / 1000) : 1;
    t->soft_limit = soft_limit;
}

/* Adds node I and its ancestors to the set, without duplicates. */
static int collect(const struct budget_tree *t, int i, struct budget_reservation *res)
{
    for (; i >= 0; i = t->nodes[i].parent) {
        int seen = 0;
        for (size_t k = 0; k < res->nnodes && !seen; k++)
            seen = res->nodes[k] == i;
        if (seen)
            continue;
        if (res->nnodes >= BUDGET_MAX_CHAIN)
            return -1;
        res->nodes[res->nnodes++] = i;
    }
    return 0;
}

/* Releases MICRO_USD reserved in the periods KEY of counters C[0..n). */
static void release(struct counters *const *c, size_t n, const int64_t *key, int64_t micro_usd)
{
    for (size_t j = 0; j < n; j++)
        for (int p = 0; p < BUDGET_NPERIODS; p++)
            if (c[j]->key[p] == key[p]) { /* a rolled period was reset */
                c[j]->reserved[p] -= micro_usd;
                if (c[j]->reserved[p] < 0)
                    c[j]->reserved[p] = 0;
            }
}

static void live_unlink(struct ledger *lg, struct live_res *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        lg->live_head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        lg->live_tail = l->prev;
    l->prev = l->next = NULL;
}

/* Releases reservations whose deadline has passed (a call that never
 * settled). They stay allocated, marked expired, for budget_settle to free.
 * Caller holds lg->lock. */
static void expire(struct ledger *lg, time_t now)
{
    while (lg->live_head != NULL && lg->live_head->deadline <= now) {
        struct live_res *l = lg->live_head;
        release(l->c, l->n, l->period_key, l->micro_usd);
        live_unlink(lg, l);
        l->expired = 1;
        lg->expired++;
    }
}

int budget_reservation_prepare(struct budget_tree *t, const char *const *chain, size_t n,
                               int64_t micro_usd, time_t now, struct budget_reservation *res)
{
    memset(res, 0, sizeof *res);
    res->tree = t;
    res->micro_usd = micro_usd < 0 ? 0 : micro_usd;
    for (int p = 0; p < BUDGET_NPERIODS; p++)
        res->period_key[p] = period_key((enum budget_period)p, now);
    if (t == NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int k = chain[i] ? find(t, chain[i]) : -1;
        if (k >= 0 && collect(t, k, res) < 0)
            return -1;
    }
    return 0;
}

void budget_tree_node_view(const struct budget_tree *t, int i, struct budget_node_view *v)
{
    const struct bnode *n = &t->nodes[i];
    memset(v, 0, sizeof *v);
    v->id = n->id;
    v->parent = n->parent >= 0 ? t->nodes[n->parent].id : NULL;
    for (int k = n->parent; k >= 0; k = t->nodes[k].parent)
        v->depth++;
    for (int p = 0; p < BUDGET_NPERIODS; p++)
        v->cap[p] = n->cap[p];
}

long budget_tree_ttl(const struct budget_tree *t)
{
    return (long)t->ttl;
}

int budget_reserve(struct budget_tree *t, const char *const *chain, size_t n, int64_t micro_usd,
                   time_t now, struct budget_reservation *res, struct budget_refusal *why)
{
    if (budget_reservation_prepare(t, chain, n, micro_usd, now, res) < 0)
        return -1;
    if (t == NULL)
        return 0;
    struct live_res *l = calloc(1, sizeof *l + res->nnodes * sizeof l->c[0]);
    if (l == NULL)
        return -1;
    pthread_mutex_lock(&t->lg->lock);
    expire(t->lg, now);
    /* check everything first (root side first, so the message names the
     * widest node that refused), then take: all or nothing */
    for (size_t j = res->nnodes; j-- > 0;) {
        struct bnode *n = &t->nodes[res->nodes[j]];
        struct counters *b = n->c;
        roll(b, now);
        for (int p = 0; p < BUDGET_NPERIODS; p++) {
            if (n->cap[p] < 0 || b->spent[p] + b->reserved[p] + res->micro_usd <= n->cap[p])
                continue;
            if (why != NULL) {
                why->node = n->id;
                why->period = (enum budget_period)p;
                why->cap = n->cap[p];
                why->spent = b->spent[p];
                why->reserved = b->reserved[p];
                why->retry_after = seconds_to_boundary((enum budget_period)p, now);
            }
            pthread_mutex_unlock(&t->lg->lock);
            free(l);
            res->settled = 1;
            return 1;
        }
    }
    for (size_t j = 0; j < res->nnodes; j++) {
        struct counters *b = t->nodes[res->nodes[j]].c;
        for (int p = 0; p < BUDGET_NPERIODS; p++)
            b->reserved[p] += res->micro_usd;
        l->c[j] = b;
    }
    l->n = res->nnodes;
    l->micro_usd = res->micro_usd;
    memcpy(l->period_key, res->period_key, sizeof l->period_key);
    l->deadline = now + t->ttl;
    l->prev = t->lg->live_tail;
    if (l->prev)
        l->prev->next = l;
    else
        t->lg->live_head = l;
    t->lg->live_tail = l;
    res->live = l;
    pthread_mutex_unlock(&t->lg->lock);
    return 0;
}

/* '["a","b"]' for the nodes of RES, JSON-escaped. NULL on OOM. */
static char *chain_json(const struct budget_tree *t, const struct budget_reservation *res)
{
    size_t cap = 3;
    for (size_t j = 0; j < res->nnodes; j++)
        cap += strlen(t->nodes[res->nodes[j]].id) * 6 + 3;
    char *s = malloc(cap), *o = s;
    if (s == NULL)
        return NULL;
    *o++ = '[';
    for (size_t j = 0; j < res->nnodes; j++) {
        if (j > 0)
            *o++ = ',';
        *o++ = '"';
        for (const unsigned char *c = (const unsigned char *)t->nodes[res->nodes[j]].id; *c; c++) {
            if (*c == '"' || *c == '\\') {
                *o++ = '\\';
                *o++ = (char)*c;
            } else if (*c < 0x20) {
                o += sprintf(o, "\\u%04x", *c);
            } else
                *o++ = (char)*c;
        }
        *o++ = '"';
    }
    *o++ = ']';
    *o = '\0';
    return s;
}

/* Spend crossed the soft limit of a capped period: flag it once per period
 * and queue the alert for the store's thread. Caller holds lg->lock. */
static void soft_limit_check(struct ledger *lg, double soft, const struct bnode *n)
{
    struct counters *b = n->c;
    for (int p = 0; p < BUDGET_NPERIODS; p++) {
        if (n->cap[p] <= 0 || soft <= 0 || b->alerted[p] == b->key[p] ||
            (double)b->spent[p] < soft * (double)n->cap[p])
            continue;
        b->alerted[p] = b->key[p];
        b->dirty = 1;
        struct journal *j = lg->j;
        if (j == NULL || j->nalerts >= ALERTS_MAX)
            continue;
        struct alert_entry *a = &j->alerts[j->nalerts];
        if ((a->node = strdup(n->id)) == NULL)
            continue;
        a->period = (enum budget_period)p;
        a->key = b->key[p];
        a->cap = n->cap[p];
        a->spent = b->spent[p];
        j->nalerts++;
    }
}

void budget_settle(struct budget_reservation *res, int64_t actual, time_t now)
{
    struct budget_tree *t = res->tree;
    if (res->settled || t == NULL) {
        res->settled = 1;
        return;
    }
    res->settled = 1;
    if (res->redis != NULL) {
        budget_redis_settle(res, actual, now);
        return;
    }
    struct ledger *lg = t->lg;
    if (actual < 0)
        actual = 0;
    struct journal_entry e = {0};
    if (lg->j != NULL && actual > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        e.ts_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        e.micro_usd = actual;
        str_copy(e.request_id, sizeof e.request_id, res->request_id ? res->request_id : "");
        e.chain = chain_json(t, res);
    }
    pthread_mutex_lock(&lg->lock);
    struct live_res *l = res->live;
    res->live = NULL;
    if (l != NULL && !l->expired) {
        release(l->c, l->n, l->period_key, l->micro_usd);
        live_unlink(lg, l);
    } else if (l == NULL) {
        for (size_t j = 0; j < res->nnodes; j++) {
            struct counters *b = t->nodes[res->nodes[j]].c;
            release(&b, 1, res->period_key, res->micro_usd);
        }
    }
    for (size_t j = 0; j < res->nnodes && actual > 0; j++) {
        const struct bnode *n = &t->nodes[res->nodes[j]];
        roll(n->c, now);
        for (int p = 0; p < BUDGET_NPERIODS; p++)
            n->c->spent[p] += actual;
        n->c->dirty = 1;
        soft_limit_check(lg, t->soft_limit, n);
    }
    struct journal *j = lg->j;
    if (j != NULL && actual > 0) {
        j->any_dirty = 1;
        if (e.chain != NULL && j->n == j->cap && j->cap < JOURNAL_MAX) {
            size_t cap = j->cap ? j->cap * 2 : 256;
            struct journal_entry *nq = realloc(j->q, cap * sizeof *nq);
            if (nq != NULL) {
                j->q = nq;
                j->cap = cap;
            }
        }
        int wake = 1;
        if (e.chain != NULL && j->n < j->cap) {
            j->q[j->n++] = e;
            e.chain = NULL;
            /* the writer gathers a batch: wake it at its start and when full */
            wake = j->n == 1 || j->n == JOURNAL_GATHER_MIN;
        } else
            j->dropped++;
        if (wake)
            pthread_cond_signal(&j->wake);
    }
    pthread_mutex_unlock(&lg->lock);
    free(l);
    free(e.chain);
}

int64_t budget_period_remaining(enum budget_period p, time_t now)
{
    return seconds_to_boundary(p, now);
}

int64_t budget_period_key(enum budget_period p, time_t now)
{
    return period_key(p, now);
}

int budget_tree_each(struct budget_tree *t, time_t now,
                     int (*cb)(const struct budget_node_view *v, void *arg), void *arg)
{
    if (t == NULL)
        return 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct bnode *n = &t->nodes[i];
        struct budget_node_view v = {.id = n->id};
        v.parent = n->parent >= 0 ? t->nodes[n->parent].id : NULL;
        for (int k = n->parent; k >= 0; k = t->nodes[k].parent)
            v.depth++;
        pthread_mutex_lock(&t->lg->lock);
        expire(t->lg, now);
        roll(n->c, now);
        for (int p = 0; p < BUDGET_NPERIODS; p++) {
            v.cap[p] = n->cap[p];
            v.spent[p] = n->c->spent[p];
            v.reserved[p] = n->c->reserved[p];
            v.resets_in[p] = seconds_to_boundary((enum budget_period)p, now);
        }
        pthread_mutex_unlock(&t->lg->lock);
        int rc = cb(&v, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int budget_node_usage(struct budget_tree *t, const char *id, enum budget_period period, time_t now,
                      int64_t *spent, int64_t *reserved)
{
    if (t == NULL || id == NULL || period >= BUDGET_NPERIODS)
        return -1;
    int i = find(t, id);
    if (i < 0)
        return -1;
    pthread_mutex_lock(&t->lg->lock);
    expire(t->lg, now);
    roll(t->nodes[i].c, now);
    *spent = t->nodes[i].c->spent[period];
    *reserved = t->nodes[i].c->reserved[period];
    pthread_mutex_unlock(&t->lg->lock);
    return 0;
}
