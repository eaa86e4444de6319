// SPDX-License-Identifier: Apache-2.0
// Rate limits and circuit breakers (the guard-in stage of the pipeline):
// token buckets per agent-tree node shared by every worker, and breakers per
// agent and per upstream provider (consecutive errors -> open -> half-open
// probe, latency backoff, error-rate alerts). Times are injected (ns or ms on
// a monotonic clock) so the state machines are testable without sleeping.
#ifndef PORTCULLIS_BREAKER_BREAKER_H
#define PORTCULLIS_BREAKER_BREAKER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* ---- token buckets ------------------------------------------------------ */

/* A bucket of LIMIT units per minute with a burst of LIMIT, kept as one
 * atomic "theoretical arrival time" (GCRA): admission is a CAS loop, so every
 * worker shares one exact total. Plain data: zero-initialise, then set limit. */
struct rl_bucket {
    uint64_t limit;          /* units per minute; 0 = unlimited */
    _Atomic uint64_t tat_ns; /* when the bucket is full again */
};

/* What a bucket looks like after an admission (or a refusal). */
struct rl_view {
    uint64_t limit;
    uint64_t remaining;      /* units that could be taken now */
    uint64_t reset_ns;       /* until the bucket is full again */
    uint64_t retry_after_ns; /* refusals: until COST would fit */
};

/* Takes COST units at NOW_NS (a cost above the limit counts as the limit: it
 * passes only from a full bucket). 0 when taken, 1 when refused; view may be
 * NULL. Thread-safe. */
int rl_take(struct rl_bucket *b, uint64_t cost, uint64_t now_ns, struct rl_view *view);
/* Gives COST units back (a refusal further up the chain, or usage below the
 * estimate). Thread-safe. */
void rl_give(struct rl_bucket *b, uint64_t cost);
/* Charges COST more units without checking (usage above the estimate): the
 * bucket may go into debt and refuse until it has refilled. Thread-safe. */
void rl_charge(struct rl_bucket *b, uint64_t cost, uint64_t now_ns);
void rl_peek(struct rl_bucket *b, uint64_t now_ns, struct rl_view *view);
/* The view of a bucket of LIMIT per minute whose time is AHEAD_NS past now. */
void rl_view_fill(uint64_t limit, uint64_t ahead_ns, struct rl_view *v);
/* Keeps in *BEST the view with the least remaining (*HAS: BEST is set). */
void rl_view_keep_tighter(struct rl_view *best, int *has, const struct rl_view *v);

/* ---- circuit breakers --------------------------------------------------- */

enum breaker_state { BREAKER_CLOSED = 0, BREAKER_OPEN = 1, BREAKER_HALF_OPEN = 2 };

struct breaker_params {
    uint32_t consecutive_errors; /* errors in a row that open it; 0 = never; default 10 */
    uint32_t pause_ms;           /* open -> half-open after this; default 60s */
    uint32_t latency_p90_ms;     /* backoff when p90 is above this; 0 = off */
    uint32_t window_ms;          /* latency window; default 30s */
    double error_rate;           /* alert above this rate (0..1]; 0 = off; default 0.5 */
    uint32_t alert_window_ms;    /* error-rate window, one alert per window; default 5m */
    uint32_t min_calls;          /* least calls in a window to judge it; default 10 */
    char *webhook;               /* http(s) URL the alert is POSTed to, or NULL */
};

/* Fills the defaults above. */
void breaker_params_default(struct breaker_params *p);

#define BREAKER_SLOTS 10

struct breaker;

/* A caller's admission through one breaker, handed back to breaker_done. */
struct breaker_ticket {
    struct breaker *b;
    int probe; /* this call is the half-open probe */
};

enum breaker_refusal { BREAKER_REFUSED_OPEN = 1, BREAKER_REFUSED_PROBING, BREAKER_REFUSED_BACKOFF };

struct breaker_why {
    enum breaker_refusal reason;
    uint64_t retry_after_ms;
    uint32_t errors;      /* consecutive errors that opened it */
    uint32_t concurrency; /* backoff: the reduced concurrency limit */
};

enum breaker_outcome { BREAKER_OK, BREAKER_ERROR, BREAKER_ABANDON };

/* What breaker_done saw happen, for the caller to log and alert. */
enum {
    BREAKER_EV_OPENED = 1,    /* tripped (closed -> open, or the probe failed) */
    BREAKER_EV_CLOSED = 2,    /* the probe succeeded */
    BREAKER_EV_ALERT = 4,     /* error rate above the threshold: alert now */
    BREAKER_EV_BACKOFF = 8,   /* concurrency limit lowered */
    BREAKER_EV_RECOVERED = 16 /* concurrency limit raised or lifted */
};

/* A breaker named ID (copied). Caller owns it (refcount 1); NULL on OOM. */
struct breaker *breaker_new(const char *id, const struct breaker_params *p)
    __attribute__((warn_unused_result));
struct breaker *breaker_ref(struct breaker *b);
void breaker_unref(struct breaker *b);
const char *breaker_id(const struct breaker *b);
const struct breaker_params *breaker_params(const struct breaker *b);

/* May a call go through at NOW_MS? 0 with *t filled (the call must end with
 * breaker_done), 1 refused with *why filled. Counts the call in flight. */
int breaker_admit(struct breaker *b, uint64_t now_ms, struct breaker_ticket *t,
                  struct breaker_why *why) __attribute__((warn_unused_result));
/* Ends an admitted call: its outcome and latency (time to the answer's
 * headers). ABANDON (the client left) leaves the counters alone and frees
 * the probe slot. Returns BREAKER_EV_* bits. */
int breaker_done(struct breaker_ticket *t, enum breaker_outcome o, uint64_t latency_ms,
                 uint64_t now_ms);
/* Back to closed with clean counters (admin reset). */
void breaker_reset(struct breaker *b);

struct breaker_status {
    enum breaker_state state;
    uint32_t consecutive;       /* current run of errors */
    uint64_t retry_after_ms;    /* open: until half-open */
    uint32_t concurrency_limit; /* 0 = no backoff */
    uint32_t inflight;
    uint64_t calls, errors;          /* in the error-rate window */
    uint64_t slow, timed;            /* in the latency window: above latency_p90, measured */
    uint64_t trips, alerts, refused; /* since start */
};
void breaker_status(struct breaker *b, uint64_t now_ms, struct breaker_status *st);

const char *breaker_state_name(enum breaker_state s);

/* ---- the set a config snapshot carries ---------------------------------- */

/* Per agent-tree node: its rate limits (tokens and requests per minute) and
 * its breaker; per provider: a breaker. Built once, then read-only apart
 * from the atomics and breaker locks inside. */
struct breaker_set;

struct rl_limits {
    uint64_t requests_per_minute;   /* 0 = none */
    uint64_t tokens_per_minute;     /* 0 = none */
    uint64_t tool_calls_per_minute; /* MCP tools/call; 0 = none */
};

/* Caller owns the result; free with breaker_set_free. NULL on OOM. */
struct breaker_set *breaker_set_new(void) __attribute__((warn_unused_result));
void breaker_set_free(struct breaker_set *s);

/* Adds agent ID under PARENT (NULL for a root; the parent must be added
 * first). limits and breaker may be NULL. Not thread-safe: build, then share.
 * 0, or -1 on OOM / duplicate / unknown parent. */
int breaker_set_add_agent(struct breaker_set *s, const char *id, const char *parent,
                          const struct rl_limits *limits, const struct breaker_params *breaker)
    __attribute__((warn_unused_result));
/* Adds the breaker of provider number INDEX (as in the config's providers
 * array) named NAME. 0 or -1. */
int breaker_set_add_provider(struct breaker_set *s, size_t index, const char *name,
                             const struct breaker_params *breaker)
    __attribute__((warn_unused_result));
/* Adds the limits of MCP server NAME: CALLS_PER_MINUTE tools/call routed to
 * it, from every caller together (0 = none), and a breaker "mcp:NAME" on
 * those calls when BREAKER is not NULL. 0, or -1 on OOM / duplicate. */
int breaker_set_add_mcp_server(struct breaker_set *s, const char *name, uint64_t calls_per_minute,
                               const struct breaker_params *breaker)
    __attribute__((warn_unused_result));
/* The breaker of MCP server NAME, or NULL. */
struct breaker *breaker_set_mcp_server(struct breaker_set *s, const char *name);
/* 1 when any agent has a rate limit or a breaker, any provider a breaker, or
 * any MCP server a rate limit. */
int breaker_set_active(const struct breaker_set *s);

/* Makes S (built for a reloaded config, not yet shared) keep the state of
 * PREV: buckets and breakers carry over by id (with S's parameters). */
void breaker_set_adopt(struct breaker_set *s, struct breaker_set *prev);

/* The breaker of provider INDEX, or NULL. */
struct breaker *breaker_set_provider(struct breaker_set *s, size_t index);
/* A breaker by id ("agent:ID", "provider:NAME" or "mcp:NAME"), or NULL. */
struct breaker *breaker_set_find(struct breaker_set *s, const char *id);

#define BREAKER_MAX_NODES 64

/* The nodes a call is charged to: every id of the chain and all their
 * ancestors, each once (ids not in the set are skipped). */
struct breaker_chain {
    int nodes[BREAKER_MAX_NODES];
    size_t n;
};
/* -1 when the chain is longer than BREAKER_MAX_NODES. */
int breaker_chain_resolve(struct breaker_set *s, const char *const *ids, size_t nids,
                          struct breaker_chain *out);

/* Which limits the chain's nodes have: 1 requests per minute, 2 tokens. */
int breaker_chain_limits(const struct breaker_set *s, const struct breaker_chain *c);

/* Rate limits over a chain. */
struct rl_admission {
    uint64_t tokens; /* reserved on every tokens bucket of the chain */
    int has_requests, has_tokens;
    struct rl_view requests; /* the most constrained node's view */
    struct rl_view tokens_view;
};
struct rl_refusal {
    const char *node; /* points into the set (an agent id, or an MCP server's name) */
    int tokens;       /* which limit: 0 requests per minute, 1 tokens per minute,
                       * 2 the agent's tool calls per minute, 3 the MCP server's calls */
    uint64_t limit;
    uint64_t retry_after_ns;
};
/* One request and TOKENS tokens on every node of the chain, all or nothing.
 * 0 taken (adm filled), 1 refused (why filled; adm still has the views of the
 * nodes that were checked). */
int breaker_rl_admit(struct breaker_set *s, const struct breaker_chain *c, uint64_t tokens,
                     uint64_t now_ns, struct rl_admission *adm, struct rl_refusal *why)
    __attribute__((warn_unused_result));
/* One MCP tools/call by the chain IDS (and their ancestors) to SERVER: a
 * unit from every tool-calls bucket of the chain and from the server's
 * bucket, all or nothing (in this process; not shared through Redis).
 * 0 taken (VIEW, if not NULL, is the tightest bucket's), 1 refused (why
 * filled), -1 chain too long. */
int breaker_tool_admit(struct breaker_set *s, const char *const *ids, size_t nids,
                       const char *server, uint64_t now_ns, struct rl_view *view,
                       struct rl_refusal *why) __attribute__((warn_unused_result));
/* Corrects the tokens reserved with the real usage. */
void breaker_rl_settle(struct breaker_set *s, const struct breaker_chain *c,
                       struct rl_admission *adm, uint64_t actual_tokens, uint64_t now_ns);
/* The breaker of node i of a chain, or NULL. */
struct breaker *breaker_chain_breaker(struct breaker_set *s, const struct breaker_chain *c,
                                      size_t i);
void breaker_count_rate_limited(struct breaker_set *s, const char *node);

/* The buckets a chain's rate limits check, in the order breaker_rl_admit
 * takes them (per node: requests, then tokens). */
struct rl_bucket_ref {
    const char *node; /* points into the set */
    int tokens;       /* 0 requests per minute, 1 tokens per minute */
    uint64_t limit;
};
#define BREAKER_MAX_BUCKETS (2 * BREAKER_MAX_NODES)
/* Fills OUT (room for BREAKER_MAX_BUCKETS) and returns how many. */
size_t breaker_chain_buckets(const struct breaker_set *s, const struct breaker_chain *c,
                             struct rl_bucket_ref *out);

/* ---- rate limits in Redis (src/breaker/redis.c) --------------------------
 * With state: {redis: URL}, every bucket is one Redis key (pc:rl:NODE:req,
 * pc:rl:NODE:tok) holding its GCRA time in microseconds of the Redis
 * server's clock, so gateways sharing the server share one exact total. A
 * Lua script checks the caller's and every ancestor's buckets and takes
 * them all or none; a key expires once its bucket would be full again. */
struct budget_redis;

/* Called on the loop: rc 0 taken (adm filled), 1 refused (why filled, and
 * adm with the views of every bucket), -2 Redis failed. */
typedef void (*breaker_rl_cb)(void *arg, int rc);

/* Starts breaker_rl_admit in Redis over connection R. ADM and WHY must stay
 * alive until CB. Returns 2 pending (CB runs later), 0 when the chain has no
 * rate limit (CB is not called, adm zeroed), -2 when Redis is unavailable. */
int breaker_rl_admit_redis(struct budget_redis *r, struct breaker_set *s,
                           const struct breaker_chain *c, uint64_t tokens, struct rl_admission *adm,
                           struct rl_refusal *why, breaker_rl_cb cb, void *arg)
    __attribute__((warn_unused_result));
/* breaker_rl_settle in Redis: corrects the tokens buckets with the real
 * usage (sent, not waited for; lost when Redis is down). */
void breaker_rl_settle_redis(struct budget_redis *r, struct breaker_set *s,
                             const struct breaker_chain *c, struct rl_admission *adm,
                             uint64_t actual);

/* Parses the admit script's reply, given as integers (V, N of them), for the
 * buckets REFS: 0 taken, 1 refused, -1 malformed. Exposed for unit tests. */
int breaker_rl_redis_reply(const struct rl_bucket_ref *refs, size_t nrefs, const long long *v,
                           size_t n, struct rl_admission *adm, struct rl_refusal *why);

/* Appends Prometheus text for every breaker and rate-limited node. 0 or -1. */
int breaker_set_render_metrics(struct breaker_set *s, uint64_t now_ms, buf_t *out);
/* Appends one breaker as a JSON object (state, counters, settings). 0 or -1. */
int breaker_render_json(struct breaker *b, uint64_t now_ms, buf_t *out);
/* Appends {"breakers":[…]} JSON. 0 or -1. */
int breaker_set_render_json(struct breaker_set *s, uint64_t now_ms, buf_t *out);

/* "1.5s", "6m0s", "20ms": a duration the way OpenAI's x-ratelimit-reset-*
 * headers write it. */
void breaker_format_duration(uint64_t ns, char *out, size_t len);

#endif
