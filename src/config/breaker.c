// SPDX-License-Identifier: Apache-2.0
// rate_limit: on agents ({requests_per_minute, tokens_per_minute}) and
// breaker: on agents and providers ({consecutive_errors, pause, latency_p90,
// window, error_rate, alert_window, min_calls, webhook}), then the snapshot's
// breaker set (src/breaker) built from both once every section is read.
#include "breaker/breaker.h"
#include "config/loader.h"

#include <stdlib.h>
#include <string.h>

enum {
    B_CONSECUTIVE,
    B_PAUSE,
    B_LATENCY,
    B_WINDOW,
    B_ERROR_RATE,
    B_ALERT_WINDOW,
    B_MIN_CALLS,
    B_WEBHOOK,
    B_COUNT
};
static const char *const breaker_keys[B_COUNT] = {
    "consecutive_errors", "pause",        "latency_p90", "window",
    "error_rate",         "alert_window", "min_calls",   "webhook",
};

#define MAX_COUNT 1000000000ULL

static void build_webhook(struct cfg_ctx *c, yaml_node_t *n, const char *path, char **out)
{
    const char *s = cfg_str(c, n, path);
    if (s == NULL)
        return;
    if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
        cfg_error(c, n, "%s: must start with http:// or https://, got '%.60s'", path, s);
        return;
    }
    for (const char *q = s; *q; q++) {
        if ((unsigned char)*q <= ' ' || *q == 0x7f) {
            cfg_error(c, n, "%s: must not contain spaces or control characters", path);
            return;
        }
    }
    size_t skip = s[4] == 's' ? 8 : 7;
    if (s[skip] == '\0' || s[skip] == '/') {
        cfg_error(c, n, "%s: missing host in '%.60s'", path, s);
        return;
    }
    char *d = cfg_xstrdup(c, s);
    if (d != NULL) {
        free(*out);
        *out = d;
    }
}

void cfg_build_breaker(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                       struct breaker_params **out)
{
    yaml_node_t *f[B_COUNT];
    char pk[300];
    uint64_t v;
    if (n->type != YAML_MAPPING_NODE && !cfg_is_null(n)) {
        cfg_error(c, n, "%s: expected a mapping like {consecutive_errors: 10, pause: 60s}", path);
        return;
    }
    if (cfg_map(c, n, path, breaker_keys, B_COUNT, f) < 0)
        return;
    struct breaker_params *p = calloc(1, sizeof *p);
    if (p == NULL) {
        c->oom = 1;
        return;
    }
    breaker_params_default(p);
    if (f[B_CONSECUTIVE] != NULL &&
        cfg_uint(c, f[B_CONSECUTIVE], cfg_path(pk, sizeof pk, path, breaker_keys[B_CONSECUTIVE]), 0,
                 MAX_COUNT, &v) == 0)
        p->consecutive_errors = (uint32_t)v;
    if (f[B_PAUSE] != NULL)
        cfg_duration(c, f[B_PAUSE], cfg_path(pk, sizeof pk, path, "pause"), 1, &p->pause_ms);
    if (f[B_LATENCY] != NULL)
        cfg_duration(c, f[B_LATENCY], cfg_path(pk, sizeof pk, path, "latency_p90"), 1,
                     &p->latency_p90_ms);
    if (f[B_WINDOW] != NULL)
        cfg_duration(c, f[B_WINDOW], cfg_path(pk, sizeof pk, path, "window"), BREAKER_SLOTS,
                     &p->window_ms);
    if (f[B_ERROR_RATE] != NULL)
        cfg_number(c, f[B_ERROR_RATE], cfg_path(pk, sizeof pk, path, "error_rate"), 0, 1,
                   &p->error_rate);
    if (f[B_ALERT_WINDOW] != NULL)
        cfg_duration(c, f[B_ALERT_WINDOW], cfg_path(pk, sizeof pk, path, "alert_window"),
                     BREAKER_SLOTS, &p->alert_window_ms);
    if (f[B_MIN_CALLS] != NULL &&
        cfg_uint(c, f[B_MIN_CALLS], cfg_path(pk, sizeof pk, path, "min_calls"), 1, MAX_COUNT, &v) ==
            0)
        p->min_calls = (uint32_t)v;
    if (f[B_WEBHOOK] != NULL && !cfg_is_null(f[B_WEBHOOK]))
        build_webhook(c, f[B_WEBHOOK], cfg_path(pk, sizeof pk, path, "webhook"), &p->webhook);
    if (*out != NULL) {
        free((*out)->webhook);
        free(*out);
    }
    *out = p;
}

void cfg_build_agent_rate_limit(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                                struct config_agent *a)
{
    static const char *const keys[] = {"requests_per_minute", "tokens_per_minute",
                                       "tool_calls_per_minute"};
    yaml_node_t *f[3];
    char pk[300];
    if (n->type != YAML_MAPPING_NODE) {
        cfg_error(c, n, "%s: expected a mapping like {requests_per_minute: 60}", path);
        return;
    }
    if (cfg_map(c, n, path, keys, 3, f) < 0)
        return;
    if (f[0] == NULL && f[1] == NULL && f[2] == NULL) {
        if (n->data.mapping.pairs.top != n->data.mapping.pairs.start)
            return; /* only unknown keys: reported already */
        cfg_error(c, n, "%s: needs requests_per_minute, tokens_per_minute or tool_calls_per_minute",
                  path);
        return;
    }
    uint64_t v;
    if (f[0] != NULL &&
        cfg_uint(c, f[0], cfg_path(pk, sizeof pk, path, keys[0]), 1, MAX_COUNT, &v) == 0)
        a->requests_per_minute = v;
    if (f[1] != NULL &&
        cfg_uint(c, f[1], cfg_path(pk, sizeof pk, path, keys[1]), 1, MAX_COUNT * 1000, &v) == 0)
        a->tokens_per_minute = v;
    if (f[2] != NULL &&
        cfg_uint(c, f[2], cfg_path(pk, sizeof pk, path, keys[2]), 1, MAX_COUNT, &v) == 0)
        a->tool_calls_per_minute = v;
}

void cfg_build_mcp_rate_limit(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                              uint64_t *calls_per_minute)
{
    static const char *const keys[] = {"calls_per_minute"};
    yaml_node_t *f[1];
    char pk[300];
    uint64_t v;
    if (n->type != YAML_MAPPING_NODE) {
        cfg_error(c, n, "%s: expected a mapping like {calls_per_minute: 60}", path);
        return;
    }
    if (cfg_map(c, n, path, keys, 1, f) < 0)
        return;
    if (f[0] == NULL) {
        if (n->data.mapping.pairs.top == n->data.mapping.pairs.start)
            cfg_error(c, n, "%s: needs calls_per_minute", path);
        return;
    }
    if (cfg_uint(c, f[0], cfg_path(pk, sizeof pk, path, keys[0]), 1, MAX_COUNT, &v) == 0)
        *calls_per_minute = v;
}

void cfg_build_mcp_limits(struct cfg_ctx *c)
{
    struct config *cfg = c->cfg;
    int any = 0;
    for (size_t i = 0; i < cfg->mcp.nservers; i++)
        any |= cfg->mcp.servers[i].calls_per_minute > 0 || cfg->mcp.servers[i].breaker != NULL;
    if (c->stop || !any)
        return;
    if (cfg->breakers == NULL && (cfg->breakers = breaker_set_new()) == NULL) {
        c->oom = 1;
        return;
    }
    for (size_t i = 0; i < cfg->mcp.nservers; i++) {
        const struct config_mcp_server *sv = &cfg->mcp.servers[i];
        if ((sv->calls_per_minute == 0 && sv->breaker == NULL) || sv->name == NULL)
            continue;
        if (breaker_set_add_mcp_server(cfg->breakers, sv->name, sv->calls_per_minute, sv->breaker) <
            0) {
            cfg_error(c, NULL, "mcp.servers: could not build the limits of '%.60s'", sv->name);
            return;
        }
    }
}

void cfg_build_breakers(struct cfg_ctx *c)
{
    struct config *cfg = c->cfg;
    if (c->stop || cfg->breakers != NULL)
        return;
    struct breaker_set *s = breaker_set_new();
    if (s == NULL) {
        c->oom = 1;
        return;
    }
    /* the agents list is parents first */
    for (size_t i = 0; i < cfg->nagents; i++) {
        const struct config_agent *a = &cfg->agents[i];
        struct rl_limits lim = {a->requests_per_minute, a->tokens_per_minute,
                                a->tool_calls_per_minute};
        if (a->id == NULL || breaker_set_add_agent(s, a->id, a->parent, &lim, a->breaker) < 0) {
            cfg_error(c, NULL, "agents: could not build the rate limits at '%.60s'",
                      a->id ? a->id : "?");
            breaker_set_free(s);
            return;
        }
    }
    for (size_t i = 0; i < cfg->nproviders; i++) {
        const struct config_provider *p = &cfg->providers[i];
        if (p->breaker == NULL || p->name == NULL)
            continue;
        if (breaker_set_add_provider(s, i, p->name, p->breaker) < 0) {
            c->oom = 1;
            breaker_set_free(s);
            return;
        }
    }
    if (!breaker_set_active(s)) {
        breaker_set_free(s);
        return;
    }
    cfg->breakers = s;
}

static void free_params(struct breaker_params *p)
{
    if (p != NULL) {
        free(p->webhook);
        free(p);
    }
}

void cfg_free_breakers(struct config *cfg)
{
    for (size_t i = 0; i < cfg->nagents; i++) {
        free_params(cfg->agents[i].breaker);
        cfg->agents[i].breaker = NULL;
    }
    for (size_t i = 0; i < cfg->nproviders; i++) {
        free_params(cfg->providers[i].breaker);
        cfg->providers[i].breaker = NULL;
    }
    for (size_t i = 0; i < cfg->mcp.nservers; i++) {
        free_params(cfg->mcp.servers[i].breaker);
        cfg->mcp.servers[i].breaker = NULL;
    }
    breaker_set_free(cfg->breakers);
    cfg->breakers = NULL;
}
