// SPDX-License-Identifier: Apache-2.0
// Internal to src/budget: the counters behind a tree (the ledger), which
// budget.c updates on the workers' threads and store.c persists and alerts
// from its own thread.
#ifndef PORTCULLIS_BUDGET_INTERNAL_H
#define PORTCULLIS_BUDGET_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "budget/budget.h"

/* The counters of one node id. They live in the ledger, not in the tree, so
 * that the tree of a reloaded config can take over the spend of the old one
 * (budget_tree_adopt) while calls that began under the old one settle.
 * Never freed before the ledger, so pointers to them stay valid. */
struct counters {
    char *id;
    int64_t spent[BUDGET_NPERIODS];
    int64_t reserved[BUDGET_NPERIODS];
    int64_t key[BUDGET_NPERIODS];     /* the period spent/reserved belong to */
    int64_t alerted[BUDGET_NPERIODS]; /* period key the soft-limit alert fired in, or -1 */
    int dirty;                        /* spent changed since the store last wrote it */
};

/* A settlement waiting for the store's writer. */
struct journal_entry {
    int64_t ts_ms;
    int64_t micro_usd;
    char request_id[64];
    char *chain; /* JSON array of the node ids charged; owned */
};

/* A soft-limit alert waiting for the store's thread. */
struct alert_entry {
    char *node; /* owned */
    enum budget_period period;
    int64_t key, cap, spent;
};

#define JOURNAL_MAX 65536 /* settlements queued for the writer */
/* The writer waits up to JOURNAL_GATHER_MS for JOURNAL_GATHER_MIN settlements
 * before a transaction. */
#define JOURNAL_GATHER_MIN 64
#define JOURNAL_GATHER_MS 2
#define ALERTS_MAX 1024

/* What the store attaches to a ledger: the queues its thread drains. All
 * guarded by the ledger's lock; the store's thread waits on `wake`. */
struct journal {
    pthread_cond_t wake;
    struct journal_entry *q; /* grows up to JOURNAL_MAX */
    size_t n, cap;
    uint64_t dropped; /* settlements not queued (queue full); totals still count them */
    struct alert_entry alerts[ALERTS_MAX];
    size_t nalerts;
    int any_dirty;
    int stop;
};

/* A reservation not settled yet, oldest first: expired ones are released by
 * the next reserve. Owned by the reservation; once expired it is unlinked
 * and freed by budget_settle (or leaks with a call that never settles). */
struct live_res {
    struct live_res *prev, *next;
    time_t deadline;
    int expired;
    int64_t micro_usd;
    int64_t period_key[BUDGET_NPERIODS];
    size_t n;
    struct counters *c[]; /* n of them */
};

/* Counters by id, and the one mutex every tree sharing them takes.
 * Reference-counted: each tree (and the store) holds one. */
struct ledger {
    atomic_int refs;
    pthread_mutex_t lock;
    struct counters **items;
    size_t n, cap;
    struct live_res *live_head, *live_tail;
    uint64_t expired; /* reservations released by expiry, ever */
    double soft_limit; /* fraction of a cap that raises an alert; 0 = off */
    struct journal *j; /* NULL when nothing persists or alerts */
};

struct ledger *budget_ledger_new(void);
void budget_ledger_ref(struct ledger *lg);
void budget_ledger_unref(struct ledger *lg);
/* The counters of ID, created when absent. Caller holds lg->lock. */
struct counters *budget_ledger_get(struct ledger *lg, const char *id);

struct state_budget_total;
/* state_budget_totals_each callback (store.c): a stored total into the ledger arg. */
int budget_ledger_load_total(const struct state_budget_total *t, void *arg);
/* The store's ledger (every attached tree counts on it), or NULL. */
struct ledger *budget_store_ledger(struct budget_store *s);
/* The tree's ledger (for the store). */
struct ledger *budget_tree_ledger(struct budget_tree *t);
/* Makes T use LG (T not shared yet). 0 or -1 on OOM. */
int budget_tree_use_ledger(struct budget_tree *t, struct ledger *lg);

#endif
