// SPDX-License-Identifier: Apache-2.0
// Budgets that roll up through the agent tree: every node has caps per UTC
// day, month and in total (integer micro-dollars). A call reserves its
// worst-case cost on its whole chain before it is forwarded and settles the
// real cost when it ends. Embedded backend: in-process, one mutex per tree.
#ifndef PORTCULLIS_BUDGET_BUDGET_H
#define PORTCULLIS_BUDGET_BUDGET_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define BUDGET_NO_CAP (-1)
#define BUDGET_MAX_CHAIN 64

enum budget_period { BUDGET_DAY, BUDGET_MONTH, BUDGET_TOTAL, BUDGET_NPERIODS };

struct budget_caps {
    int64_t micro_usd[BUDGET_NPERIODS]; /* BUDGET_NO_CAP = no cap for that period */
};

struct budget_tree;

/* One reservation: which nodes carry it, how much, and in which periods.
 * Plain data: the caller keeps it (stack or arena) until budget_settle. */
struct budget_reservation {
    struct budget_tree *tree;
    int nodes[BUDGET_MAX_CHAIN];
    size_t nnodes;
    int64_t micro_usd;
    int64_t period_key[BUDGET_NPERIODS]; /* day / month index the amount was reserved in */
    int settled;
};

/* Why budget_reserve refused: the first node (root side first) and period
 * that could not cover the amount. node points into the tree. */
struct budget_refusal {
    const char *node;
    enum budget_period period;
    int64_t cap, spent, reserved;
    int64_t retry_after; /* seconds to the period boundary; -1 for the total cap */
};

/* An empty tree. Caller owns it; free with budget_tree_free. NULL on OOM. */
struct budget_tree *budget_tree_new(void) __attribute__((warn_unused_result));
void budget_tree_free(struct budget_tree *t);

/* Adds node ID under PARENT (NULL for a root; the parent must already be in
 * the tree). Not thread-safe: build the tree before sharing it. 0, or -1 on
 * OOM, duplicate id or unknown parent. */
int budget_tree_add(struct budget_tree *t, const char *id, const char *parent,
                    const struct budget_caps *caps) __attribute__((warn_unused_result));
size_t budget_tree_size(const struct budget_tree *t);

/* Makes T (a tree built for a reloaded config, not yet shared) use the
 * counters of PREV: spend and reservations carry over by node id, and calls
 * still running under PREV settle where T sees them. 0, or -1 on OOM (T then
 * keeps counters of its own). */
int budget_tree_adopt(struct budget_tree *t, struct budget_tree *prev)
    __attribute__((warn_unused_result));

/* Reserves MICRO_USD on every node of the chain and every ancestor of each
 * (ids not in the tree are skipped), all or nothing, at time NOW (unix
 * seconds). 0 on success (res filled), 1 when refused (why filled), -1 when
 * the chain is too long. Thread-safe. */
int budget_reserve(struct budget_tree *t, const char *const *chain, size_t n, int64_t micro_usd,
                   time_t now, struct budget_reservation *res, struct budget_refusal *why)
    __attribute__((warn_unused_result));

/* Turns the reservation into ACTUAL micro-dollars of spend and releases the
 * rest. Settling twice is a no-op. Thread-safe. */
void budget_settle(struct budget_reservation *res, int64_t actual_micro_usd, time_t now);

/* Spend and reservations of node ID in PERIOD at NOW; -1 when unknown. */
int budget_node_usage(struct budget_tree *t, const char *id, enum budget_period period, time_t now,
                      int64_t *spent, int64_t *reserved);

/* One node as the admin API and `budget show` print it. */
struct budget_node_view {
    const char *id;     /* into the tree */
    const char *parent; /* NULL for a root */
    unsigned depth;
    int64_t cap[BUDGET_NPERIODS]; /* BUDGET_NO_CAP when none */
    int64_t spent[BUDGET_NPERIODS];
    int64_t reserved[BUDGET_NPERIODS];
    int64_t resets_in[BUDGET_NPERIODS]; /* seconds to the period boundary; -1 for total */
};

/* Calls CB for every node, parents first, with its usage at NOW. CB
 * returning non-zero stops the walk. Thread-safe. 0, or CB's value. */
int budget_tree_each(struct budget_tree *t, time_t now,
                     int (*cb)(const struct budget_node_view *v, void *arg), void *arg);

/* Seconds from NOW to the next boundary of PERIOD (UTC); -1 for the total. */
int64_t budget_period_remaining(enum budget_period p, time_t now);

/* The index of PERIOD that NOW falls in: days since the epoch, months since
 * 1970-01, 0 for the total. */
int64_t budget_period_key(enum budget_period p, time_t now);

/* "day" | "month" | "total" */
const char *budget_period_name(enum budget_period p);

/* Micro-dollars for TOKENS at PRICE_PER_MTOK USD per million tokens, rounded up. */
int64_t budget_cost(uint64_t tokens, double price_per_mtok);

#endif
