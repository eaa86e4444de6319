// SPDX-License-Identifier: Apache-2.0
// YAML config -> immutable, reference-counted snapshot. Workers take a
// reference per request (config_ref) so SIGHUP can swap snapshots while
// in-flight requests keep the one they started with.
#ifndef PORTCULLIS_CONFIG_CONFIG_H
#define PORTCULLIS_CONFIG_CONFIG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct breaker_params;
struct breaker_set;

enum provider_kind {
    PROVIDER_OPENAI = 1, /* any OpenAI-compatible base URL */
    PROVIDER_ANTHROPIC,  /* native /v1/messages */
    PROVIDER_MOCK,       /* built in, answers in-process */
};

struct config_mock {
    uint32_t latency_ms;     /* before the first byte; default 0 */
    uint32_t chunk_delay_ms; /* between streamed chunks; default 0 */
    uint32_t tokens;         /* completion tokens per answer; default 16 */
    double failure_rate;     /* 0..1, answers 500 this often; default 0 */
};

struct config_provider {
    char *name;
    enum provider_kind kind;
    char *base_url;              /* no trailing slash; NULL for mock */
    char *api_key_env;           /* variable name as written, or NULL */
    char *api_key;               /* resolved at load; NULL when unset. SECRET: never log */
    int enabled;                 /* 0 when api_key_env names an unset variable */
    uint32_t timeout_ms;         /* whole upstream call; default 600000 */
    uint32_t connect_timeout_ms; /* default 5000 */
    char *anthropic_version;     /* anthropic-version header; default "2023-06-01" */
    char *query;                 /* appended to every upstream URL after '?', e.g. Azure's
                                  * "api-version=2024-10-21"; NULL for none */
    char *auth_header;           /* send the key raw in this header (Azure: "api-key")
                                  * instead of Authorization: Bearer; NULL for the default */
    struct config_mock mock;
    struct breaker_params *breaker; /* breaker: (src/config/breaker.c), or NULL */
};

struct config_target {
    struct config_provider *provider; /* points into config.providers */
    char *model;                      /* upstream model name; defaults to the route's name */
    uint32_t weight;                  /* default 1; 0 never picked first */
};

struct config_price {
    double input_per_mtok; /* USD per million input tokens */
    double output_per_mtok;
    double cached_input_per_mtok;
};

struct config_model {
    char *name;                    /* what clients send as "model" */
    struct config_target *targets; /* fallback order */
    size_t ntargets;
    struct config_price price;
    int has_price;
};

struct config_limits {
    uint32_t max_header_bytes;  /* request line + headers; default 16384 -> 431 */
    uint32_t max_headers;       /* header count; default 100 -> 431 */
    uint64_t max_body_bytes;    /* default 8 MiB -> 413 */
    uint32_t header_timeout_ms; /* first byte to end of headers; default 10000 */
    uint32_t body_timeout_ms;   /* end of headers to end of body; default 30000 */
    uint32_t idle_timeout_ms;   /* keep-alive idle; default 60000 */
    uint32_t max_connections;   /* per process; default 10000 -> 503 and close */
    uint32_t drain_timeout_ms;  /* SIGTERM grace; default 10000 */
    uint32_t max_retries;       /* extra upstream attempts per request; default 2 */
};

struct config_listen {
    char *host; /* "127.0.0.1" */
    uint16_t port;
};

struct config_tls {
    char *cert_file; /* PEM; both set -> TLS on the main listener */
    char *key_file;
};


/* identity: (src/config/identity.c). Who may call, and how they prove it. */
struct config_jwks {
    char *file;              /* resolved path, or NULL */
    char *url;               /* http(s) URL, or NULL; exactly one of file/url */
    uint32_t refresh_ms;     /* periodic refetch of a URL; default 1h */
    uint32_t min_refetch_ms; /* least time between refetches on an unknown kid; default 30s */
};

struct config_jwt {
    char *issuer;            /* required "iss" */
    char **audiences;        /* the token's "aud" must contain one of these */
    size_t naudiences;
    char **algorithms;       /* allow-list; default RS256, PS256, ES256. Never "none" */
    size_t nalgorithms;
    char *agent_claim;       /* claim naming the agent; default "sub" */
    uint32_t leeway_ms;      /* on exp/nbf/iat; default 60s */
    struct config_jwks jwks;
};

struct config_identity {
    int present;             /* an identity: section was written */
    int required;            /* 0: requests without a credential run as anonymous
                              * (default for now); 1: they get 401 */
    int api_keys;            /* accept portcullis API keys; default 1 */
    int has_jwt;
    struct config_jwt jwt;
    char *issuer;            /* iss/aud of the tokens the gateway mints; default "portcullis" */
    uint32_t max_depth;      /* delegation.max_depth; default 4 */
    uint32_t delegation_ttl_ms; /* delegation.ttl; default 15m */
};

/* agents: the hierarchy, flattened in document order (parents first). */
struct config_agent {
    char *id;
    char *parent;            /* id of the parent, NULL for a root */
    char *description;
    unsigned depth;          /* 0 for a root */
    int has_budget;          /* a budget: with at least one cap */
    int64_t budget_micro_usd[3]; /* usd_per_day, usd_per_month, usd_total in
                                  * micro-dollars; -1 = no cap (src/config/budget.c) */
    uint64_t requests_per_minute, tokens_per_minute; /* rate_limit:; 0 = none */
    uint64_t tool_calls_per_minute;                  /* rate_limit: MCP tools/call; 0 = none */
    struct breaker_params *breaker; /* breaker:, or NULL (src/config/breaker.c) */
};

/* budget: at the top level (src/config/budget.c): soft limits and the
 * embedded store's knobs. Caps are per agent (config_agent). */
struct config_budget {
    double soft_limit;           /* fraction of a cap that fires the alert; default 0.8, 0 = off */
    char *webhook;               /* http(s) URL POSTed on each alert, or NULL */
    uint32_t reservation_ttl_ms; /* a reservation never settled is released after this;
                                  * default 30m */
};

/* audit: (src/config/identity.c) */
struct config_audit {
    int enabled;             /* default 1 */
    char *jsonl_path;        /* also append JSON lines here; NULL = off */
    uint32_t buffer;         /* records queued for the writer thread; default 4096 */
};

/* policy: (src/config/policy.c). Cedar policies loaded with the snapshot,
 * so a reload that fails to parse them keeps the old set. */
struct budget_tree;
struct policy_set;
struct policy_entities;
struct config_policy {
    int present;                       /* a policy: section was written */
    int default_allow;                 /* default: allow -> only a forbid denies */
    char **files;                      /* resolved paths, in load order */
    size_t nfiles;
    struct policy_set *set;            /* NULL when no policy: section */
    struct policy_entities *entities;  /* Agent:: (with parents) and Model:: */
};

/* mcp: (src/config/mcp.c). The MCP endpoint and the upstream servers it
 * federates. */
struct config_mcp_pair {
    char *name;
    char *value;
};

struct config_mcp_tool {
    char *name;              /* the upstream's own tool name */
    char **labels;           /* private_data, exfiltration, ... */
    size_t nlabels;
};

struct config_mcp_server {
    char *name;
    unsigned line;                  /* in the config file, for messages */
    char *url;                      /* Streamable HTTP, or NULL */
    struct config_mcp_pair *headers; /* static headers (url only). May hold secrets */
    size_t nheaders;
    char *identity_header;          /* send the caller's identity token here, or NULL */
    char **argv;                    /* stdio command, NULL-terminated, or NULL */
    size_t argc;
    char **env;                     /* "K=V", NULL-terminated, or NULL */
    size_t nenv;
    char *cwd;                      /* resolved, or NULL */
    struct config_mcp_tool *tools;  /* labels per tool */
    size_t ntools;
    int untrusted;                  /* trust: untrusted */
    int guard_action;               /* guard: 0 = guard.action, -1 = off, else a
                                     * config_guard_action for this server's tool outputs */
    uint32_t timeout_ms;            /* per request; default 60s */
    uint64_t calls_per_minute;      /* rate_limit: tools/call to it; 0 = none */
    struct breaker_params *breaker; /* breaker: on its tools/call, or NULL (config/breaker.c) */
    uint32_t restart_min_ms;        /* command: first restart delay; 0 = default (250ms) */
    uint32_t restart_max_ms;        /* command: restart backoff ceiling; 0 = default (30s) */
    uint32_t stop_grace_ms;         /* command: stdin closed -> SIGTERM -> SIGKILL; 0 = 2s */
};

struct config_mcp {
    int present;                    /* an mcp: section was written */
    char *path;                     /* endpoint path; default "/mcp" */
    char *separator;                /* "<server><sep><tool>"; default "__" */
    uint32_t session_idle_ms;       /* default 30m */
    char **allowed_hosts;           /* Host header names (any port) */
    size_t nallowed_hosts;
    char **allowed_origins;         /* extra Origin values allowed */
    size_t nallowed_origins;
    struct config_mcp_server *servers;
    size_t nservers;
};

/* guard: (src/config/guard.c). Scanning untrusted text and the lethal trifecta. */
struct guard;
enum config_guard_scan {
    CONFIG_GUARD_TOOL_MESSAGES = 1u << 0, /* LLM routes: "tool" role messages */
    CONFIG_GUARD_TOOL_OUTPUTS = 1u << 1,  /* MCP tools/call results */
    CONFIG_GUARD_A2A_REPLIES = 1u << 2,
};
enum config_guard_action { CONFIG_GUARD_FLAG = 1, CONFIG_GUARD_SANITIZE, CONFIG_GUARD_BLOCK };
struct config_guard {
    int present;
    unsigned scan;                   /* config_guard_scan bits; 0 = scan nothing */
    enum config_guard_action action; /* default sanitize */
    int trifecta_enforce;            /* trifecta: enforce (default off) */
    int trifecta_warn;               /* trifecta: warn (log and audit, refuse nothing) */
    struct guard *guard;             /* the compiled rule pack; NULL without guard: */
};

/* a2a: (src/config/a2a.c). A2A agents the gateway fronts at /a2a/<name>. */
struct config_a2a_agent {
    char *name;
    unsigned line;                  /* in the config file, for messages */
    char *url;                      /* the agent's JSON-RPC endpoint */
    char *card_url;                 /* its agent card; default <origin of url>/.well-known/agent-card.json */
    struct config_mcp_pair *headers; /* static headers. May hold secrets */
    size_t nheaders;
    char *identity_header;          /* gets the gateway-signed token for the caller; default
                                     * "Authorization" (sent as "Bearer <token>") */
    int untrusted;                  /* trust: untrusted */
    uint32_t timeout_ms;            /* per call (streams included); default 5m */
};

struct config_a2a {
    int present;                    /* an a2a: section was written */
    char *public_url;               /* base URL clients reach the gateway at (agent cards point
                                     * there); NULL = from the request's Host header */
    uint32_t card_ttl_ms;           /* how long a fetched agent card is reused; default 60s */
    struct config_a2a_agent *agents;
    size_t nagents;
};

struct config {
    atomic_int refs;
    char *path; /* file it was loaded from */
    struct config_listen listen;
    struct config_listen admin; /* port 0 = no admin listener */
    int has_admin;
    char *admin_token_env; /* admin.token_env; default PORTCULLIS_ADMIN_TOKEN (src/config/admin.c) */
    char *admin_token;     /* its value at load; NULL when unset. SECRET: never log */
    unsigned workers;     /* "auto" -> number of cores */
    char *state;          /* "embedded", or "external" for state: {redis, postgres} */
    char *state_redis;    /* state.redis as written, or NULL. May hold a password */
    char *state_postgres; /* state.postgres as written, or NULL. May hold a password */
    char *state_path;     /* SQLite file; default "portcullis.db" beside the config.
                           * Relative paths here and in tls are resolved against the
                           * config file's directory. */
    char *log_level;      /* debug | info | warn | error; default info */
    struct config_tls tls;
    struct config_limits limits;
    struct config_provider *providers;
    size_t nproviders;
    struct config_model *models;
    size_t nmodels;
    /* Private to src/config: the same entries sorted by name, so that
     * config_find_* are binary searches. Use the lookups, not these. A
     * snapshot built by hand (tests) may leave them NULL: lookups then scan. */
    struct config_provider **providers_by_name;
    struct config_model **models_by_name;
    struct config_identity identity;
    struct config_agent *agents;
    size_t nagents;
    /* The budget tree built from agents: (src/budget), or NULL when no agent
     * has a budget. Lives with the snapshot: a reload starts new counters. */
    struct budget_tree *budget;
    struct config_budget budget_opts; /* the top-level budget: section */
    /* Rate limits and circuit breakers (src/breaker) of agents and providers,
     * or NULL when none is configured. */
    struct breaker_set *breakers;
    struct config_audit audit;
    struct config_policy policy;
    struct config_guard guard;
    struct config_mcp mcp;
    struct config_a2a a2a;
};

/* One validation error; errors are collected, not stopped at. */
struct config_error {
    char *file;
    unsigned line; /* 1-based; 0 when not tied to a line */
    unsigned col;  /* 1-based column (policy files); 0 when not known */
    char *message;
};

struct config_errors {
    struct config_error *items;
    size_t count;
};

/* Loads and validates FILE (at most 4 MiB). On success returns a snapshot
 * with refs == 1 and leaves errs empty; on failure returns NULL and fills errs
 * (caller frees with config_errors_free), sorted by line, at most 100 of them.
 * errs is overwritten, not appended to; it may be NULL. Environment variables
 * named by api_key_env are read here. Top-level keys starting with "x-" are
 * ignored (a place for YAML anchors); YAML merge keys (<<) work everywhere. */
struct config *config_load(const char *path, struct config_errors *errs)
    __attribute__((warn_unused_result));

/* Same, from a memory buffer; `name` is used in error messages. */
struct config *config_load_string(const char *name, const char *yaml, size_t len,
                                  struct config_errors *errs) __attribute__((warn_unused_result));

/* Prints each error as "file:line: message\n" ("file:line:col: message\n"
 * when the column is known). */
void config_errors_print(const struct config_errors *errs, FILE *out);
void config_errors_free(struct config_errors *errs);

struct config *config_ref(struct config *c);
void config_unref(struct config *c);

/* Lookups; NULL when absent. */
const struct config_model *config_find_model(const struct config *c, const char *name);
const struct config_provider *config_find_provider(const struct config *c, const char *name);

/* An agent of the agents: tree by id; NULL when absent. */
const struct config_agent *config_find_agent(const struct config *c, const char *id);

/* The Cedar entities of the snapshot (agents with their parents,
 * Agent::"anonymous", models) as a JSON array the caller owns (jansson
 * json_t *, declared void here to keep jansson out of this header). */
void *config_policy_entities_json(const struct config *cfg);

/* A server of mcp.servers by name; NULL when absent. */
const struct config_mcp_server *config_find_mcp_server(const struct config *c, const char *name);

/* An agent of a2a.agents by name; NULL when absent. */
const struct config_a2a_agent *config_find_a2a_agent(const struct config *c, const char *name);

/* "openai", "anthropic", "mock" ("?" for anything else). */
const char *config_provider_kind_name(enum provider_kind kind);

#endif
