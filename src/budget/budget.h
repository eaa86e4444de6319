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

#include "core/buf.h"

#define BUDGET_NO_CAP (-1)
#define BUDGET_MAX_CHAIN 64

enum budget_period { BUDGET_DAY, BUDGET_MONTH, BUDGET_TOTAL, BUDGET_NPERIODS };

struct budget_caps {
    int64_t micro_usd[BUDGET_NPERIODS]; /* BUDGET_NO_CAP = no cap for that period */
};

struct budget_tree;

struct live_res;
struct budget_node_view;
struct budget_redis;
struct uv_loop_s;

/* One reservation: which nodes carry it, how much, and in which periods.
 * The caller keeps it (stack or arena) until budget_settle, which must come
 * once for every reservation budget_reserve granted. */
struct budget_reservation {
    struct budget_tree *tree;
    struct live_res *live;  /* the tree's record of it (expiry); budget_settle frees it */
    const char *request_id; /* optional, for the ledger: set after budget_reserve and keep
                             * it alive until budget_settle */
    struct budget_redis *redis; /* taken in Redis (budget_redis_reserve): settled there */
    char redis_id[48];
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

/* How long a reservation may stay unsettled before the tree releases it
 * itself (a call that never settles must not hold a cap for ever), and the
 * fraction of a cap whose crossing raises the soft-limit alert (0 = off).
 * Defaults 30 minutes and 0.8. Before the tree is shared. */
void budget_tree_set_options(struct budget_tree *t, uint32_t reservation_ttl_ms,
                             double soft_limit);

/* Reserves MICRO_USD on every node of the chain and every ancestor of each
 * (ids not in the tree are skipped), all or nothing, at time NOW (unix
 * seconds). 0 on success (res filled), 1 when refused (why filled), -1 when
 * the chain is too long. Thread-safe. */
int budget_reserve(struct budget_tree *t, const char *const *chain, size_t n, int64_t micro_usd,
                   time_t now, struct budget_reservation *res, struct budget_refusal *why)
    __attribute__((warn_unused_result));

/* Turns the reservation into ACTUAL micro-dollars of spend and releases the
 * rest. ACTUAL is charged in full even when it exceeds the reservation (the
 * provider bills it): a cap can then be passed by that excess, once; a
 * negative ACTUAL counts as 0. Spend lands in the periods of NOW; the
 * reservation is released from the periods it was taken in. A reservation
 * that expired is not released twice. Settling twice is a no-op. With a
 * store attached, the settlement is queued for the ledger (budget_store).
 * Thread-safe. */
void budget_settle(struct budget_reservation *res, int64_t actual_micro_usd, time_t now);

/* Fills RES for the chain (nodes, amount, period keys) without reserving
 * anything: the first half of a reservation for another backend. 0, or -1
 * when the chain is too long. */
int budget_reservation_prepare(struct budget_tree *t, const char *const *chain, size_t n,
                               int64_t micro_usd, time_t now, struct budget_reservation *res)
    __attribute__((warn_unused_result));

/* Node I of the tree (0 <= I < budget_tree_size): id, parent, depth and caps;
 * spend and reservations are left 0. */
void budget_tree_node_view(const struct budget_tree *t, int i, struct budget_node_view *v);

/* The reservation TTL in seconds. */
long budget_tree_ttl(const struct budget_tree *t);

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

/* The soft-limit fraction set with budget_tree_set_options. */
double budget_tree_soft_limit(const struct budget_tree *t);

/* ---- the embedded store (src/budget/store.c) ---------------------------- */

/* Settled spend in the SQLite state file: a ledger row per settled call and
 * each node's spend per period, written by the store's thread in batches
 * (one transaction per batch, the next batch as soon as one commits), never
 * on a worker's loop. What a kill -9 can lose: the settlements of calls that
 * finished while the batch before them was committing (the queue holds up
 * to 65536; past that a settlement is counted in the totals but gets no
 * ledger row). Reservations are never written: they live in memory and
 * expire. Also sends soft-limit alerts (log line, metric, webhook POST). */
struct budget_store;

/* Opens the ledger in the state file PATH, loads the spend of the current
 * periods, starts the store's threads. NULL with a message in err. Caller
 * owns it; close with budget_store_close. */
struct budget_store *budget_store_open(const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Makes T (a tree not yet shared; may be NULL) count on the store's ledger,
 * and WEBHOOK (may be NULL) receive alerts from now on. 0, or -1 on OOM. */
int budget_store_attach(struct budget_store *s, struct budget_tree *t, const char *webhook)
    __attribute__((warn_unused_result));

/* Writes what is still queued, stops the threads, closes the file. */
void budget_store_close(struct budget_store *s);

/* Appends the store's Prometheus series (spend per node and period, alerts,
 * ledger writes, expired reservations) to B. 0 or -1. */
int budget_store_metrics(struct budget_store *s, buf_t *b) __attribute__((warn_unused_result));

/* ---- the Redis backend (src/budget/redis.c) ----------------------------- */

/* One connection per worker, on its loop: reserve and settle are Lua
 * scripts (EVALSHA, loaded at connect; EVAL after a NOSCRIPT) that check
 * and update every capped node-period of a chain in one step (spend is
 * counted in every period), so gateways sharing the server share the caps.
 * A chain without any cap reserves nothing and needs no round trip (CB runs
 * before budget_redis_reserve returns 2). Reconnects by itself; while the
 * server is unreachable reservations fail (the caller refuses the call) and
 * settlements are lost (their reservations expire in Redis). */
struct budget_redis *budget_redis_new(struct uv_loop_s *loop, const char *url, char *err,
                                      size_t errlen) __attribute__((warn_unused_result));
/* Splits redis://[:password@]host[:port][/db] (port default 6379, db 0).
 * 0, or -1 when it is not such a URL. *host and *password are malloc'ed (or
 * NULL) even on failure: the caller frees both. */
int budget_redis_parse_url(const char *url, char **host, int *port, char **password, int *db)
    __attribute__((warn_unused_result));

/* Disconnects and closes its handles (on the loop's thread); freed when the
 * loop has run their close callbacks. */
void budget_redis_free(struct budget_redis *r);

/* Called on the loop with the result of a pending reservation: rc 0 granted,
 * 1 refused (why filled), -2 Redis failed. */
typedef void (*budget_reserve_cb)(void *arg, int rc, const struct budget_refusal *why);

/* Starts a reservation in Redis. Returns 2 when pending (CB runs on this
 * loop, later or, for a chain without caps, at once; RES must stay alive until then and, when granted, until
 * budget_settle), 0 when there is nothing to reserve (CB is not called),
 * -1 chain too long, -2 Redis unavailable. */
int budget_redis_reserve(struct budget_redis *r, struct budget_tree *t, const char *const *chain,
                         size_t n, int64_t micro_usd, time_t now,
                         struct budget_reservation *res, budget_reserve_cb cb, void *arg)
    __attribute__((warn_unused_result));
/* budget_settle of a Redis reservation (sends the script; does not wait). */
void budget_redis_settle(struct budget_reservation *res, int64_t actual, time_t now);

/* Soft-limit crossings the settle script reports go to FN (on the loop). */
void budget_redis_on_alert(struct budget_redis *r,
                           void (*fn)(void *arg, const char *node, enum budget_period p,
                                      int64_t key, int64_t cap, int64_t spent),
                           void *arg);

/* Queues an alert for the store's alert thread (log, metric, webhook);
 * thread-safe. Matches budget_redis_on_alert's FN. */
void budget_store_alert(void *store, const char *node, enum budget_period p, int64_t key,
                        int64_t cap, int64_t spent);

/* Runs SCRIPT (a string that lives as long as the process; EVALSHA with its
 * SHA1 cached per connection, EVAL after a NOSCRIPT) on this worker's Redis
 * connection, the one budgets use: ARGS are what follows the script in
 * EVAL (numkeys, keys, argv), copied. CB runs on the loop with the reply, or
 * with NULL when the connection failed before one came. 0 sent; -1 when
 * Redis is unreachable now (CB is not called). Rate limits use this. */
struct redisReply;
typedef void (*budget_redis_reply_cb)(void *arg, struct redisReply *reply);
int budget_redis_eval(struct budget_redis *r, const char *script, int nargs,
                      const char *const *args, const size_t *lens, budget_redis_reply_cb cb,
                      void *arg) __attribute__((warn_unused_result));

/* `portcullis budget show [ID] -c FILE [--json]` (src/budget/cli.c);
 * argv[0] is "budget". Returns the exit code. */
int budget_cli_main(int argc, char **argv);

/* Reads the spend of T's nodes at NOW from the Redis server at URL into T's
 * counters (for `budget show`; blocking). 0, or -1 with err filled. */
int budget_redis_load_tree(const char *url, struct budget_tree *t, time_t now, char *err,
                           size_t errlen);

/* With state.redis the spend is in Redis: a thread copies every node's
 * spend and reservations of the current periods from the server at URL into
 * S's ledger every INTERVAL_MS (default 1000), so /metrics shows what all
 * instances share. NULL with err filled. Stop (and free) with
 * budget_redis_mirror_stop before closing S. */
struct budget_redis_mirror;
struct budget_redis_mirror *budget_redis_mirror_start(const char *url, struct budget_store *s,
                                                      unsigned interval_ms, char *err,
                                                      size_t errlen)
    __attribute__((warn_unused_result));
void budget_redis_mirror_stop(struct budget_redis_mirror *m);

/* "day" | "month" | "total" */
const char *budget_period_name(enum budget_period p);

/* Micro-dollars for TOKENS at PRICE_PER_MTOK USD per million tokens, rounded up. */
int64_t budget_cost(uint64_t tokens, double price_per_mtok);

#endif
