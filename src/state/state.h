// SPDX-License-Identifier: Apache-2.0
// Durable state behind one interface: API keys (keyed hashes only), the
// gateway's signing keys, the per-install secret and the audit trail. The
// embedded backend is one SQLite file in WAL mode. Nothing here runs on an
// event loop's hot path: identity reads keys into memory snapshots and audit
// writes from its own thread.
#ifndef PORTCULLIS_STATE_STATE_H
#define PORTCULLIS_STATE_STATE_H

#include <stddef.h>
#include <stdint.h>

/* Schema version this build writes (PRAGMA user_version). A file with a
 * newer version is refused rather than misread. */
#define STATE_SCHEMA_VERSION 2

/* One connection to the store. Every call takes the handle's mutex, so a
 * handle may be shared by threads, but the intended use is one handle per
 * thread that needs the store (the audit writer, the key refresher, a CLI
 * command): SQLite serialises writers across connections with its own
 * locks and busy timeout. */
struct state;

/* Opens (creating when absent) the store at path and brings its schema to
 * STATE_SCHEMA_VERSION. NULL on failure with a message in err. Caller owns
 * the handle; free with state_close. */
struct state *state_open(const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void state_close(struct state *st);

/* The last error message of this handle (static until the next call). */
const char *state_errmsg(struct state *st);

/* A per-install random secret of 32 bytes named `name`, created on first
 * use and kept in the store (never logged). 0 or -1. */
int state_secret(struct state *st, const char *name, unsigned char out[32])
    __attribute__((warn_unused_result));

/* A counter bumped by every change to API keys or signing keys, from any
 * process: readers poll it to know when to reload their snapshots. */
int state_keys_generation(struct state *st, int64_t *out) __attribute__((warn_unused_result));

/* ---- API keys --------------------------------------------------------- */

struct state_api_key {
    char id[40];            /* public key id, shown by `keys list` */
    unsigned char hash[32]; /* HMAC-SHA256(install secret, whole key) */
    const char *agent;      /* agent the key authenticates as */
    const char *scope;      /* space-separated scope, NULL = unrestricted */
    int64_t created;        /* unix seconds */
    int64_t expires;        /* unix seconds, 0 = never */
    int64_t revoked;        /* unix seconds, 0 = not revoked */
};

int state_key_insert(struct state *st, const struct state_api_key *k)
    __attribute__((warn_unused_result));
/* 0 revoked, 1 no such key (or already revoked), -1 error. */
int state_key_revoke(struct state *st, const char *id, int64_t now)
    __attribute__((warn_unused_result));
/* Calls cb for every key, oldest first; the strings live until cb returns.
 * cb returning non-zero stops the walk. 0 or -1. */
int state_keys_each(struct state *st, int (*cb)(const struct state_api_key *k, void *arg),
                    void *arg) __attribute__((warn_unused_result));

/* ---- gateway signing keys -------------------------------------------- */

struct state_signing_key {
    const char *kid;
    const char *jwk; /* private JWK as JSON text. SECRET: never log */
    int64_t created;
    int64_t retired; /* 0 = the active key */
};

/* Inserts a new active key and retires every other active key at `now`,
 * in one transaction. */
int state_signing_rotate(struct state *st, const char *kid, const char *jwk, int64_t now)
    __attribute__((warn_unused_result));
/* Newest first. Same callback rules as state_keys_each. */
int state_signing_each(struct state *st, int (*cb)(const struct state_signing_key *k, void *arg),
                       void *arg) __attribute__((warn_unused_result));

/* ---- audit records ---------------------------------------------------- */

/* One audit record as stored. Strings may be NULL. chain and guard are JSON
 * text (an array of agent ids; an array of findings). */
struct state_audit_row {
    int64_t id;    /* assigned by the store; ignored on insert */
    int64_t ts_ms; /* wall clock, ms since the epoch */
    const char *request_id;
    const char *parent_request_id;
    const char *root_request_id;
    const char *trace_id;
    const char *protocol; /* llm | mcp | a2a | oauth | gateway */
    const char *method;
    const char *path;
    const char *agent;    /* principal; NULL when anonymous */
    const char *auth;     /* api_key | jwt | delegation | none */
    const char *chain;    /* JSON array, root caller first */
    const char *action;   /* chat | embeddings | token_exchange | ... */
    const char *resource; /* "model:gpt-4o", "agent:research", ... */
    const char *decision; /* allow | deny | error */
    const char *reason;
    int status;
    double latency_ms;
    int64_t tokens_in, tokens_out;
    double cost_usd;
    int cache_hit;
    const char *guard; /* JSON array */
};

/* Appends rows in one transaction. 0 or -1 (nothing written). */
int state_audit_append(struct state *st, const struct state_audit_row *rows, size_t n)
    __attribute__((warn_unused_result));

struct state_audit_filter {
    const char *request_id;      /* exact */
    const char *root_request_id; /* exact */
    const char *agent;           /* principal or anywhere in the chain */
    int denied_only;             /* decision = 'deny' */
    int64_t after_id;            /* id > after_id */
    unsigned limit;              /* 0 = no limit; with newest_first picks the last N */
    int newest_first;
};

/* Rows matching f, oldest first (or newest first). Callback as above. */
int state_audit_each(struct state *st, const struct state_audit_filter *f,
                     int (*cb)(const struct state_audit_row *r, void *arg), void *arg)
    __attribute__((warn_unused_result));

/* ---- budget ledger (version 2) ---------------------------------------- */

/* One settled call: what was charged, to which nodes (JSON array). */
struct state_budget_settlement {
    int64_t ts_ms;
    const char *request_id; /* may be NULL */
    const char *chain;      /* JSON array of node ids, the caller first */
    int64_t micro_usd;
};

/* A node's spend in one period (period: 0 day, 1 month, 2 total; key: days
 * since the epoch, months since 1970-01, 0). alerted: the soft-limit alert
 * fired in this period. */
struct state_budget_total {
    const char *node;
    int period;
    int64_t key;
    int64_t spent;
    int alerted;
};

/* Appends settlements and writes totals (absolute values, upserted by node,
 * period and key) in one transaction: all or nothing. 0 or -1. */
int state_budget_write(struct state *st, const struct state_budget_settlement *s, size_t ns,
                       const struct state_budget_total *t, size_t nt)
    __attribute__((warn_unused_result));

/* Totals of the periods that are current at DAY_KEY / MONTH_KEY (and every
 * total), for loading at start. Callback as for keys. */
int state_budget_totals_each(struct state *st, int64_t day_key, int64_t month_key,
                             int (*cb)(const struct state_budget_total *t, void *arg), void *arg)
    __attribute__((warn_unused_result));

/* Sum and count of the ledger's settlements. 0 or -1. */
int state_budget_ledger_sum(struct state *st, int64_t *micro_usd, int64_t *count)
    __attribute__((warn_unused_result));

#endif
