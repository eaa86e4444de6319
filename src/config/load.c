// SPDX-License-Identifier: Apache-2.0
// Top level of the config document: listeners, workers, state, logging, TLS
// and limits; providers and models are in providers.c. Defaults are applied
// first, then each key present overrides them.
#include "config/loader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/values.h"

#define MAX_WORKERS 1024

enum top_key {
    K_LISTEN,
    K_ADMIN,
    K_WORKERS,
    K_STATE,
    K_STATE_PATH,
    K_LOG_LEVEL,
    K_TLS,
    K_LIMITS,
    K_PROVIDERS,
    K_MODELS,
    /* Sections later issues build; only their shape is checked for now. */
    K_IDENTITY,
    K_AGENTS,
    K_MCP,
    K_A2A,
    K_POLICY,
    K_GUARD,
    K_CACHE,
    K_TELEMETRY,
    K_BUDGET,
    K_BREAKERS,
    K_AUDIT,
    K_COUNT
};

static const char *const top_keys[K_COUNT] = {
    "listen", "admin",     "workers", "state",     "state_path", "log_level", "tls",
    "limits", "providers", "models",  "identity",  "agents",     "mcp",       "a2a",
    "policy", "guard",     "cache",   "telemetry", "budget",     "breakers",  "audit",
};

/* Expected node type of each section that is accepted but not yet built. */
static const struct {
    enum top_key key;
    yaml_node_type_t type;
} later_sections[] = {
    {K_IDENTITY, YAML_MAPPING_NODE}, {K_AGENTS, YAML_SEQUENCE_NODE},
    {K_MCP, YAML_MAPPING_NODE},      {K_A2A, YAML_MAPPING_NODE},
    {K_POLICY, YAML_MAPPING_NODE},   {K_GUARD, YAML_MAPPING_NODE},
    {K_CACHE, YAML_MAPPING_NODE},    {K_TELEMETRY, YAML_MAPPING_NODE},
    {K_BUDGET, YAML_MAPPING_NODE},   {K_BREAKERS, YAML_MAPPING_NODE},
    {K_AUDIT, YAML_MAPPING_NODE},
};

char *cfg_resolve_path(struct cfg_ctx *c, const char *name)
{
    if (name[0] == '/' || c->dir == NULL)
        return cfg_xstrdup(c, name);
    size_t ld = strlen(c->dir), ln = strlen(name);
    int slash = ld > 0 && c->dir[ld - 1] == '/' ? 0 : 1;
    char *p = malloc(ld + (size_t)slash + ln + 1);
    if (p == NULL) {
        c->oom = 1;
        return NULL;
    }
    memcpy(p, c->dir, ld);
    if (slash)
        p[ld] = '/';
    memcpy(p + ld + (size_t)slash, name, ln + 1);
    return p;
}

static int set_defaults(struct cfg_ctx *c)
{
    struct config *cfg = c->cfg;
    cfg->path = cfg_xstrdup(c, c->file);
    cfg->listen.host = cfg_xstrdup(c, "127.0.0.1");
    cfg->listen.port = 8080;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = cpus < 1 ? 1 : cpus > MAX_WORKERS ? MAX_WORKERS : (unsigned)cpus;
    cfg->state = cfg_xstrdup(c, "embedded");
    cfg->state_path = cfg_resolve_path(c, "portcullis.db");
    cfg->log_level = cfg_xstrdup(c, "info");
    cfg->limits = (struct config_limits){
        .max_header_bytes = 16384,
        .max_headers = 100,
        .max_body_bytes = 8ULL * 1024 * 1024,
        .header_timeout_ms = 10000,
        .body_timeout_ms = 30000,
        .idle_timeout_ms = 60000,
        .max_connections = 10000,
        .drain_timeout_ms = 10000,
        .max_retries = 2,
    };
    return c->oom ? -1 : 0;
}

static void build_listen(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                         struct config_listen *out)
{
    char why[160];
    char *host;
    uint16_t port;
    const char *s = cfg_str(c, n, path);
    if (s == NULL)
        return;
    if (config_parse_hostport(s, &host, &port, why, sizeof why) < 0) {
        cfg_error(c, n, "%s: %s", path, why);
        return;
    }
    free(out->host);
    out->host = host;
    out->port = port;
}

static void build_workers(struct cfg_ctx *c, yaml_node_t *n)
{
    uint64_t v;
    const char *s = cfg_str(c, n, "workers");
    if (s == NULL || strcmp(s, "auto") == 0)
        return; /* default is already "auto" */
    if (s[0] == '-') {
        cfg_error(c, n, "workers: must be a positive integer or 'auto', got '%.60s'", s);
        return;
    }
    if (cfg_uint(c, n, "workers", 1, MAX_WORKERS, &v) == 0)
        c->cfg->workers = (unsigned)v;
}

static void build_state(struct cfg_ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"redis", "postgres"};
    yaml_node_t *found[2];
    struct config *cfg = c->cfg;

    if (n->type == YAML_SCALAR_NODE && !cfg_is_null(n)) {
        const char *s = (const char *)n->data.scalar.value;
        if (strcmp(s, "embedded") != 0)
            cfg_error(c, n,
                      "state: expected 'embedded' or a mapping {redis: URL, postgres: URL}, "
                      "got '%.60s'",
                      s);
        return;
    }
    if (cfg_map(c, n, "state", keys, 2, found) < 0 || cfg_is_null(n))
        return;
    if (found[0] == NULL && found[1] == NULL) {
        cfg_error(c, n, "state: an external state mapping needs redis, postgres or both");
        return;
    }
    if (found[0] != NULL && cfg_strdup(c, found[0], "state.redis", &cfg->state_redis) == 0 &&
        cfg->state_redis[0] == '\0')
        cfg_error(c, found[0], "state.redis: must not be empty");
    if (found[1] != NULL && cfg_strdup(c, found[1], "state.postgres", &cfg->state_postgres) == 0 &&
        cfg->state_postgres[0] == '\0')
        cfg_error(c, found[1], "state.postgres: must not be empty");
    char *ext = cfg_xstrdup(c, "external");
    if (ext != NULL) {
        free(cfg->state);
        cfg->state = ext;
    }
}

static void build_state_path(struct cfg_ctx *c, yaml_node_t *n)
{
    const char *s = cfg_str(c, n, "state_path");
    if (s == NULL)
        return;
    if (s[0] == '\0') {
        cfg_error(c, n, "state_path: must not be empty");
        return;
    }
    char *p = cfg_resolve_path(c, s);
    if (p != NULL) {
        free(c->cfg->state_path);
        c->cfg->state_path = p;
    }
}

static void build_log_level(struct cfg_ctx *c, yaml_node_t *n)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    const char *s = cfg_str(c, n, "log_level");
    if (s == NULL)
        return;
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(s, levels[i]) == 0) {
            cfg_strdup(c, n, "log_level", &c->cfg->log_level);
            return;
        }
    }
    cfg_error(c, n, "log_level: expected debug, info, warn or error, got '%.60s'", s);
}

/* Resolves and checks that a TLS file exists, is a regular file and can be
 * read. Only stat/access: never open what might be a FIFO or a device. */
static void tls_file(struct cfg_ctx *c, yaml_node_t *n, const char *path, char **out)
{
    struct stat st;
    const char *s = cfg_str(c, n, path);
    if (s == NULL)
        return;
    if (s[0] == '\0') {
        cfg_error(c, n, "%s: must not be empty", path);
        return;
    }
    char *file = cfg_resolve_path(c, s);
    if (file == NULL)
        return;
    if (stat(file, &st) < 0)
        cfg_error(c, n, "%s: cannot read '%.200s': %s", path, file, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        cfg_error(c, n, "%s: '%.200s' is not a regular file", path, file);
    else if (access(file, R_OK) < 0)
        cfg_error(c, n, "%s: cannot read '%.200s': %s", path, file, strerror(errno));
    free(*out);
    *out = file;
}

static void build_tls(struct cfg_ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"cert", "key"};
    yaml_node_t *found[2];
    if (cfg_map(c, n, "tls", keys, 2, found) < 0 || cfg_is_null(n))
        return;
    if (found[0] == NULL || found[1] == NULL) {
        cfg_error(c, n, "tls: cert and key must be set together (missing %s)",
                  found[0] == NULL ? "cert" : "key");
        return;
    }
    tls_file(c, found[0], "tls.cert", &c->cfg->tls.cert_file);
    tls_file(c, found[1], "tls.key", &c->cfg->tls.key_file);
}

enum limit_kind { L_SIZE32, L_SIZE64, L_COUNT, L_DURATION };

static const struct {
    const char *key;
    enum limit_kind kind;
    uint32_t min;
    size_t offset;
} limit_fields[] = {
    {"max_header_bytes", L_SIZE32, 256, offsetof(struct config_limits, max_header_bytes)},
    {"max_headers", L_COUNT, 1, offsetof(struct config_limits, max_headers)},
    {"max_body_bytes", L_SIZE64, 0, offsetof(struct config_limits, max_body_bytes)},
    {"header_timeout", L_DURATION, 1, offsetof(struct config_limits, header_timeout_ms)},
    {"body_timeout", L_DURATION, 1, offsetof(struct config_limits, body_timeout_ms)},
    {"idle_timeout", L_DURATION, 1, offsetof(struct config_limits, idle_timeout_ms)},
    {"max_connections", L_COUNT, 1, offsetof(struct config_limits, max_connections)},
    {"drain_timeout", L_DURATION, 0, offsetof(struct config_limits, drain_timeout_ms)},
    {"max_retries", L_COUNT, 0, offsetof(struct config_limits, max_retries)},
};
#define NLIMITS (sizeof limit_fields / sizeof limit_fields[0])

static void build_limits(struct cfg_ctx *c, yaml_node_t *n)
{
    const char *keys[NLIMITS];
    yaml_node_t *found[NLIMITS];
    char path[64];
    for (size_t i = 0; i < NLIMITS; i++)
        keys[i] = limit_fields[i].key;
    if (cfg_map(c, n, "limits", keys, NLIMITS, found) < 0)
        return;

    char *base = (char *)&c->cfg->limits;
    for (size_t i = 0; i < NLIMITS && !c->stop; i++) {
        uint64_t v;
        if (found[i] == NULL)
            continue;
        cfg_path(path, sizeof path, "limits", keys[i]);
        void *field = base + limit_fields[i].offset;
        uint32_t min = limit_fields[i].min;
        switch (limit_fields[i].kind) {
        case L_SIZE32:
            if (cfg_size(c, found[i], path, min, UINT32_MAX, &v) == 0)
                *(uint32_t *)field = (uint32_t)v;
            break;
        case L_SIZE64:
            if (cfg_size(c, found[i], path, min, UINT64_MAX, &v) == 0)
                *(uint64_t *)field = v;
            break;
        case L_COUNT:
            cfg_u32(c, found[i], path, min, (uint32_t *)field);
            break;
        case L_DURATION:
            cfg_duration(c, found[i], path, min, (uint32_t *)field);
            break;
        }
    }
}

static void check_later_sections(struct cfg_ctx *c, yaml_node_t **found)
{
    char desc[80];
    for (size_t i = 0; i < sizeof later_sections / sizeof later_sections[0]; i++) {
        yaml_node_t *n = found[later_sections[i].key];
        if (n == NULL || cfg_is_null(n) || n->type == later_sections[i].type)
            continue;
        const char *got = n->type == YAML_MAPPING_NODE    ? "a mapping"
                          : n->type == YAML_SEQUENCE_NODE ? "a list"
                                                          : NULL;
        if (got == NULL) {
            snprintf(desc, sizeof desc, "'%.60s'", (const char *)n->data.scalar.value);
            got = desc;
        }
        cfg_error(c, n, "%s: expected %s, got %s", top_keys[later_sections[i].key],
                  later_sections[i].type == YAML_MAPPING_NODE ? "a mapping" : "a list", got);
    }
}

void cfg_build(struct cfg_ctx *c, yaml_node_t *root)
{
    yaml_node_t *found[K_COUNT];

    if (set_defaults(c) < 0)
        return;
    cfg_identity_defaults(c);
    cfg_budget_defaults(c);
    cfg_mcp_defaults(c);
    if (root->type != YAML_MAPPING_NODE) {
        cfg_error(c, root, "the top level must be a mapping of keys (listen:, providers:, ...)");
        return;
    }
    if (cfg_map(c, root, "", top_keys, K_COUNT, found) < 0)
        return;

    if (found[K_LISTEN] != NULL)
        build_listen(c, found[K_LISTEN], "listen", &c->cfg->listen);
    if (found[K_ADMIN] != NULL && !cfg_is_null(found[K_ADMIN]))
        cfg_build_admin(c, found[K_ADMIN]);
    if (found[K_WORKERS] != NULL)
        build_workers(c, found[K_WORKERS]);
    if (found[K_STATE] != NULL)
        build_state(c, found[K_STATE]);
    if (found[K_STATE_PATH] != NULL)
        build_state_path(c, found[K_STATE_PATH]);
    if (found[K_LOG_LEVEL] != NULL)
        build_log_level(c, found[K_LOG_LEVEL]);
    if (found[K_TLS] != NULL)
        build_tls(c, found[K_TLS]);
    if (found[K_LIMITS] != NULL)
        build_limits(c, found[K_LIMITS]);
    if (found[K_PROVIDERS] != NULL && !c->stop)
        cfg_build_providers(c, found[K_PROVIDERS]);
    if (found[K_MODELS] != NULL && !c->stop)
        cfg_build_models(c, found[K_MODELS]);
    check_later_sections(c, found);
    if (found[K_IDENTITY] != NULL && !c->stop && found[K_IDENTITY]->type == YAML_MAPPING_NODE)
        cfg_build_identity(c, found[K_IDENTITY]);
    if (found[K_AGENTS] != NULL && !c->stop && found[K_AGENTS]->type == YAML_SEQUENCE_NODE)
        cfg_build_agents(c, found[K_AGENTS]);
    cfg_build_breakers(c);
    if (found[K_AUDIT] != NULL && !c->stop && found[K_AUDIT]->type == YAML_MAPPING_NODE)
        cfg_build_audit(c, found[K_AUDIT]);
    if (found[K_BUDGET] != NULL && !c->stop && found[K_BUDGET]->type == YAML_MAPPING_NODE)
        cfg_build_budget_section(c, found[K_BUDGET]);
    if (found[K_MCP] != NULL && !c->stop && found[K_MCP]->type == YAML_MAPPING_NODE)
        cfg_build_mcp(c, found[K_MCP]);
    cfg_build_mcp_limits(c);
    if (found[K_GUARD] != NULL && !c->stop && found[K_GUARD]->type == YAML_MAPPING_NODE)
        cfg_build_guard(c, found[K_GUARD]);
    if (found[K_A2A] != NULL && !c->stop && found[K_A2A]->type == YAML_MAPPING_NODE)
        cfg_build_a2a(c, found[K_A2A]);
    cfg_check_guard_users(c);
    /* Last: the entities come from agents: and models:. */
    if (found[K_POLICY] != NULL && !c->stop && found[K_POLICY]->type == YAML_MAPPING_NODE)
        cfg_build_policy(c, found[K_POLICY]);
}
