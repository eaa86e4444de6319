// SPDX-License-Identifier: Apache-2.0
// guard: section. What is scanned (tool_messages on LLM routes; tool_outputs and
// a2a_replies for MCP and A2A), what a finding does (block | sanitize | flag), whether
// the lethal trifecta is enforced, and the rule pack, compiled once with the snapshot.
#include "config/loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard/guard.h"

static const char *const scan_names[] = {"tool_messages", "tool_outputs", "a2a_replies"};
static const char *const action_names[] = {"flag", "sanitize", "block"};

/* Index of s in names[0..n), or -1 with an error naming the choices. */
static int choose(struct cfg_ctx *c, yaml_node_t *n, const char *path, const char *const *names,
                  size_t count)
{
    const char *s = cfg_str(c, n, path);
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < count; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    const char *hint = cfg_suggest(s, names, count);
    cfg_error(c, n, "%s: unknown value '%.60s'%s%s%s (one of %s%s%s%s%s)", path, s,
              hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "", names[0],
              count > 1 ? ", " : "", count > 1 ? names[1] : "", count > 2 ? ", " : "",
              count > 2 ? names[2] : "");
    return -1;
}

void cfg_build_guard(struct cfg_ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"scan", "action", "trifecta", "rules"};
    yaml_node_t *f[4];
    struct config_guard *g = &c->cfg->guard;
    if (cfg_map(c, n, "guard", keys, 4, f) < 0 || cfg_is_null(n))
        return;
    g->present = 1;
    g->action = CONFIG_GUARD_SANITIZE;
    if (f[0] != NULL) {
        long count = cfg_seq(c, f[0], "guard.scan");
        for (long i = 0; i < count; i++) {
            int k = choose(c, cfg_seq_item(c, f[0], i), "guard.scan", scan_names, 3);
            if (k >= 0)
                g->scan |= 1u << k;
        }
    }
    if (f[1] != NULL) {
        int k = choose(c, f[1], "guard.action", action_names, 3);
        if (k >= 0)
            g->action = (enum config_guard_action)(k + 1);
    }
    if (f[2] != NULL) {
        static const char *const modes[] = {"off", "warn", "enforce"};
        int k = choose(c, f[2], "guard.trifecta", modes, 3);
        if (k >= 0) {
            g->trifecta_warn = k == 1;
            g->trifecta_enforce = k == 2;
        }
    }
    const char *rules = NULL;
    if (f[3] != NULL && (rules = cfg_str(c, f[3], "guard.rules")) != NULL && rules[0] == '\0') {
        cfg_error(c, f[3], "guard.rules: must not be empty");
        return;
    }
    if (c->stop || c->nerrors)
        return; /* compiling takes a while; not for a config that fails anyway */
    char err[512] = "";
    if (rules != NULL) {
        /* relative to the config file's directory */
        char path[4096];
        if (rules[0] == '/' || c->dir == NULL)
            snprintf(path, sizeof(path), "%s", rules);
        else
            snprintf(path, sizeof(path), "%s/%s", c->dir, rules);
        g->guard = guard_load(path, err, sizeof(err));
    } else {
        g->guard = guard_new_builtin(err, sizeof(err));
    }
    if (g->guard == NULL)
        cfg_error(c, f[3] ? f[3] : n, "guard.rules: %s", err);
}

void cfg_check_guard_users(struct cfg_ctx *c)
{
    const struct config_mcp *m = &c->cfg->mcp;
    if (c->cfg->guard.present)
        return;
    for (size_t i = 0; i < m->nservers; i++)
        if (m->servers[i].guard_action > 0)
            cfg_error_at(c, m->servers[i].line,
                         "mcp.servers[%zu].guard: needs a guard: section (the rule pack it "
                         "scans with), e.g. guard: {scan: [tool_outputs]}",
                         i);
}

void cfg_free_guard(struct config *cfg)
{
    guard_free(cfg->guard.guard);
    cfg->guard.guard = NULL;
}
