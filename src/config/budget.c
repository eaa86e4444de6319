// SPDX-License-Identifier: Apache-2.0
// budget: inside an agent of agents: ({usd_per_day, usd_per_month,
// usd_total}, in USD), turned into micro-dollar caps, and the budget tree
// (src/budget) built from the whole agents list once it is read.
#include "budget/budget.h"
#include "config/loader.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cfg_build_agent_budget(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                            struct config_agent *a)
{
    static const char *const keys[] = {"usd_per_day", "usd_per_month", "usd_total"};
    yaml_node_t *f[3];
    char pk[300];
    for (int k = 0; k < 3; k++)
        a->budget_micro_usd[k] = BUDGET_NO_CAP;
    if (n->type != YAML_MAPPING_NODE) {
        cfg_error(c, n, "%s: expected a mapping like {usd_per_day: 20}", path);
        return;
    }
    if (cfg_map(c, n, path, keys, 3, f) < 0)
        return;
    for (int k = 0; k < 3; k++) {
        double usd;
        if (f[k] == NULL ||
            cfg_number(c, f[k], cfg_path(pk, sizeof pk, path, keys[k]), 0, 1e9, &usd) < 0)
            continue;
        a->budget_micro_usd[k] = (int64_t)llround(usd * 1e6);
        a->has_budget = 1;
    }
}

void cfg_build_budget_tree(struct cfg_ctx *c)
{
    struct config *cfg = c->cfg;
    int any = 0;
    for (size_t i = 0; i < cfg->nagents; i++)
        any |= cfg->agents[i].has_budget;
    if (!any || c->stop)
        return;
    cfg->budget = budget_tree_new();
    if (cfg->budget == NULL) {
        c->oom = 1;
        return;
    }
    /* the list is parents first, so every parent is in the tree already */
    for (size_t i = 0; i < cfg->nagents; i++) {
        const struct config_agent *a = &cfg->agents[i];
        struct budget_caps caps;
        for (int k = 0; k < 3; k++)
            caps.micro_usd[k] = a->has_budget ? a->budget_micro_usd[k] : BUDGET_NO_CAP;
        if (a->id == NULL || budget_tree_add(cfg->budget, a->id, a->parent, &caps) < 0) {
            cfg_error(c, NULL, "agents: could not build the budget tree at '%.60s'",
                      a->id ? a->id : "?");
            return;
        }
    }
}

void cfg_budget_defaults(struct cfg_ctx *c)
{
    c->cfg->budget_opts.soft_limit = 0.8;
    c->cfg->budget_opts.reservation_ttl_ms = 30u * 60 * 1000;
}

/* budget: {soft_limit: 0.8, webhook: URL, reservation_ttl: 30m} */
void cfg_build_budget_section(struct cfg_ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"soft_limit", "webhook", "reservation_ttl"};
    struct config_budget *b = &c->cfg->budget_opts;
    yaml_node_t *f[3];
    if (cfg_map(c, n, "budget", keys, 3, f) < 0)
        return;
    if (f[0] != NULL)
        cfg_number(c, f[0], "budget.soft_limit", 0, 1, &b->soft_limit);
    if (f[1] != NULL && cfg_strdup(c, f[1], "budget.webhook", &b->webhook) == 0 &&
        strncmp(b->webhook, "http://", 7) != 0 && strncmp(b->webhook, "https://", 8) != 0)
        cfg_error(c, f[1], "budget.webhook: expected an http:// or https:// URL, got '%.60s'",
                  b->webhook);
    if (f[2] != NULL)
        cfg_duration(c, f[2], "budget.reservation_ttl", 1000, &b->reservation_ttl_ms);
    /* the tree (built with agents:, before this section) takes the options */
    budget_tree_set_options(c->cfg->budget, b->reservation_ttl_ms, b->soft_limit);
}

void cfg_free_budget(struct config *cfg)
{
    budget_tree_free(cfg->budget);
    cfg->budget = NULL;
    free(cfg->budget_opts.webhook);
    cfg->budget_opts.webhook = NULL;
}
