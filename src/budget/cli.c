// SPDX-License-Identifier: Apache-2.0
// `portcullis budget show [ID] -c FILE [--json]`: the budget tree of the
// config with each node's settled spend as the state store has it (the
// embedded SQLite file, or Redis when state.redis is set), against its caps.
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget/budget.h"
#include "budget/internal.h"
#include "config/config.h"
#include "state/state.h"

struct show {
    const char *only; /* subtree root or NULL */
    const char **in;
    size_t nin;
    int json;
    json_t *nodes;
    int found;
};

static int in_subtree(struct show *s, const struct budget_node_view *v)
{
    if (s->only == NULL)
        return 1;
    int yes = strcmp(v->id, s->only) == 0;
    for (size_t i = 0; i < s->nin && !yes && v->parent; i++)
        yes = strcmp(s->in[i], v->parent) == 0;
    if (yes) {
        const char **ni = realloc(s->in, (s->nin + 1) * sizeof *ni);
        if (ni == NULL)
            return -1;
        s->in = ni;
        s->in[s->nin++] = v->id;
    }
    return yes;
}

static void money(char *out, size_t len, int64_t micro)
{
    snprintf(out, len, "$%.6f", (double)micro / 1e6);
}

static int print_node(const struct budget_node_view *v, void *arg)
{
    struct show *s = arg;
    int in = in_subtree(s, v);
    if (in <= 0)
        return in;
    s->found++;
    if (s->json) {
        json_t *periods = json_object();
        for (int p = 0; p < BUDGET_NPERIODS; p++)
            json_object_set_new(
                periods, budget_period_name((enum budget_period)p),
                json_pack("{s:o,s:I}", "cap_micro_usd",
                          v->cap[p] >= 0 ? json_integer(v->cap[p]) : json_null(),
                          "spent_micro_usd", (json_int_t)v->spent[p]));
        json_array_append_new(s->nodes,
                              json_pack("{s:s,s:o,s:o}", "id", v->id, "parent",
                                        v->parent ? json_string(v->parent) : json_null(),
                                        "periods", periods));
        return 0;
    }
    char name[64];
    snprintf(name, sizeof name, "%*s%s", (int)v->depth * 2, "", v->id);
    printf("%-24s", name);
    for (int p = 0; p < BUDGET_NPERIODS; p++) {
        char spent[32], cap[32], cell[80];
        money(spent, sizeof spent, v->spent[p]);
        if (v->cap[p] >= 0) {
            money(cap, sizeof cap, v->cap[p]);
            snprintf(cell, sizeof cell, "%s / %s (%.0f%%)", spent, cap,
                     v->cap[p] > 0 ? 100.0 * (double)v->spent[p] / (double)v->cap[p] : 100.0);
        } else
            snprintf(cell, sizeof cell, "%s", spent);
        printf("  %-34s", cell);
    }
    printf("\n");
    return 0;
}

static int is_node(const struct budget_node_view *v, void *arg)
{
    return strcmp(v->id, arg) == 0;
}

static int has_node(struct budget_tree *t, time_t now, const char *id)
{
    return budget_tree_each(t, now, is_node, (void *)id) == 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: portcullis budget show [ID] -c FILE [--json]\n"
                    "  the budget tree with each agent's settled spend per UTC day, month and "
                    "in total,\n  from the state store; reservations in flight: GET "
                    "/admin/budgets on the admin listener\n");
    return 2;
}

int budget_cli_main(int argc, char **argv)
{
    const char *config = NULL;
    struct show s = {0};
    int show = 0;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            config = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config = argv[i] + 9;
        else if (strcmp(argv[i], "--json") == 0)
            s.json = 1;
        else if (argv[i][0] != '-' && !show && strcmp(argv[i], "show") == 0)
            show = 1;
        else if (argv[i][0] != '-' && show && s.only == NULL)
            s.only = argv[i];
        else
            return usage();
    }
    if (config == NULL || !show)
        return usage();
    struct config_errors errs = {0};
    struct config *cfg = config_load(config, &errs);
    if (cfg == NULL) {
        config_errors_print(&errs, stderr);
        config_errors_free(&errs);
        return 1;
    }
    int rc = 1;
    char err[512];
    time_t now = time(NULL);
    struct state *st = NULL;
    if (cfg->budget == NULL) {
        fprintf(stderr, "portcullis budget: no agent in %s has a budget\n", config);
        goto out;
    }
    if (cfg->state_redis != NULL) {
        if (budget_redis_load_tree(cfg->state_redis, cfg->budget, now, err, sizeof err) < 0) {
            fprintf(stderr, "portcullis budget: %s\n", err);
            goto out;
        }
    } else {
        if ((st = state_open(cfg->state_path, err, sizeof err)) == NULL) {
            fprintf(stderr, "portcullis budget: %s\n", err);
            goto out;
        }
        if (state_budget_totals_each(st, budget_period_key(BUDGET_DAY, now),
                                     budget_period_key(BUDGET_MONTH, now), budget_ledger_load_total,
                                     budget_tree_ledger(cfg->budget)) < 0) {
            fprintf(stderr, "portcullis budget: %s\n", state_errmsg(st));
            goto out;
        }
    }
    if (s.only != NULL && !has_node(cfg->budget, now, s.only)) {
        fprintf(stderr, "portcullis budget: no agent '%s' in %s\n", s.only, config);
        goto out;
    }
    if (s.json)
        s.nodes = json_array();
    else
        printf("%-24s  %-34s  %-34s  %-34s\n", "agent", "day (UTC)", "month (UTC)", "total");
    if (budget_tree_each(cfg->budget, now, print_node, &s) != 0) {
        fprintf(stderr, "portcullis budget: out of memory\n");
        goto out;
    }
    if (s.only != NULL && s.found == 0) {
        fprintf(stderr, "portcullis budget: no agent '%s' in %s\n", s.only, config);
        goto out;
    }
    if (s.json) {
        json_t *body = json_pack("{s:s,s:I,s:O}", "backend", cfg->state_redis ? "redis" : "embedded",
                                 "now", (json_int_t)now, "nodes", s.nodes);
        char *text = json_dumps(body, JSON_COMPACT);
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(body);
    }
    rc = 0;
out:
    json_decref(s.nodes);
    free(s.in);
    state_close(st);
    config_unref(cfg);
    return rc;
}
