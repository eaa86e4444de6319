// SPDX-License-Identifier: Apache-2.0
// The embedded budget tree: nodes in an array (parents first); their counters
// in a ledger guarded by one mutex. Reservations check and update the whole chain under the lock,
// so two workers can never both pass a cap that only one of them fits under.
#include "budget/budget.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES 100000

/* The counters of one node id. They live in the ledger, not in the tree, so
 * that the tree of a reloaded config can take over the spend of the old one
 * (budget_tree_adopt) while calls that began under the old one settle. */
struct counters {
    char *id;
    int64_t spent[BUDGET_NPERIODS];
    int64_t reserved[BUDGET_NPERIODS];
    int64_t key[BUDGET_NPERIODS]; /* the period spent/reserved belong to */
};

/* Counters by id, and the one mutex every tree sharing them takes.
 * Reference-counted: each tree holds one. */
struct ledger {
    atomic_int refs;
    pthread_mutex_t lock;
    struct counters **items;
    size_t n, cap;
};

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
};

static struct ledger *ledger_new(void)
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

static void ledger_unref(struct ledger *lg)
{
    if (lg == NULL || atomic_fetch_sub(&lg->refs, 1) != 1)
        return;
    for (size_t i = 0; i < lg->n; i++) {
        free(lg->items[i]->id);
        free(lg->items[i]);
    }
    free(lg->items);
    pthread_mutex_destroy(&lg->lock);
    free(lg);
}

/* The counters of ID, created when absent. Caller holds lg->lock. */
static struct counters *ledger_get(struct ledger *lg, const char *id)
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
        c->key[p] = -1;
    lg->items[lg->n++] = c;
    return c;
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

/* Days since the epoch, months since 1970-01, 0: the period index of NOW. */
static int64_t period_key(enum budget_period p, time_t now)
{
    if (p == BUDGET_DAY)
        return (int64_t)now / 86400;
    if (p == BUDGET_MONTH) {
        struct tm tm;
        gmtime_r(&now, &tm);
        return (int64_t)(tm.tm_year - 70) * 12 + tm.tm_mon;
    }
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
    if ((t->lg = ledger_new()) == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

void budget_tree_free(struct budget_tree *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->nodes[i].id);
    free(t->nodes);
    ledger_unref(t->lg);
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
    b->c = ledger_get(t->lg, id);
    pthread_mutex_unlock(&t->lg->lock);
    if (b->c == NULL) {
        free(b->id);
        return -1;
    }
    t->n++;
    return 0;
}

int budget_tree_adopt(struct budget_tree *t, struct budget_tree *prev)
{
    if (t == NULL || prev == NULL || t->lg == prev->lg)
        return 0;
    struct ledger *lg = prev->lg;
    struct counters **found = calloc(t->n ? t->n : 1, sizeof *found);
    int rc = found == NULL ? -1 : 0;
    if (rc == 0)
        pthread_mutex_lock(&lg->lock);
    for (size_t i = 0; i < t->n && found != NULL && rc == 0; i++)
        if ((found[i] = ledger_get(lg, t->nodes[i].id)) == NULL)
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
    atomic_fetch_add(&lg->refs, 1);
    ledger_unref(t->lg);
    t->lg = lg;
    return 0;
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

int budget_reserve(struct budget_tree *t, const char *const *chain, size_t n, int64_t micro_usd,
                   time_t now, struct budget_reservation *res, struct budget_refusal *why)
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
    pthread_mutex_lock(&t->lg->lock);
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
            res->settled = 1;
            return 1;
        }
    }
    for (size_t j = 0; j < res->nnodes; j++) {
        struct counters *b = t->nodes[res->nodes[j]].c;
        for (int p = 0; p < BUDGET_NPERIODS; p++)
            b->reserved[p] += res->micro_usd;
    }
    pthread_mutex_unlock(&t->lg->lock);
    return 0;
}

void budget_settle(struct budget_reservation *res, int64_t actual, time_t now)
{
    struct budget_tree *t = res->tree;
    if (res->settled || t == NULL) {
        res->settled = 1;
        return;
    }
    res->settled = 1;
    if (actual < 0)
        actual = 0;
    pthread_mutex_lock(&t->lg->lock);
    for (size_t j = 0; j < res->nnodes; j++) {
        struct counters *b = t->nodes[res->nodes[j]].c;
        /* release in the period it was taken in (a rolled period was reset) */
        for (int p = 0; p < BUDGET_NPERIODS; p++)
            if (b->key[p] == res->period_key[p]) {
                b->reserved[p] -= res->micro_usd;
                if (b->reserved[p] < 0)
                    b->reserved[p] = 0;
            }
        roll(b, now);
        for (int p = 0; p < BUDGET_NPERIODS; p++)
            b->spent[p] += actual;
    }
    pthread_mutex_unlock(&t->lg->lock);
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
    roll(t->nodes[i].c, now);
    *spent = t->nodes[i].c->spent[period];
    *reserved = t->nodes[i].c->reserved[period];
    pthread_mutex_unlock(&t->lg->lock);
    return 0;
}
