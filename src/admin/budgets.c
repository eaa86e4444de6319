// SPDX-License-Identifier: Apache-2.0
// GET /admin/budgets[/ID]: the budget tree with caps, spend and reservations
// per period, as the running gateway counts them (src/budget).
#include "admin/admin.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget/budget.h"
#include "config/config.h"
#include "http/server.h"

struct walk {
    json_t *nodes;
    const char *only; /* subtree root, or NULL for all */
    const char **in;  /* ids of the subtree found so far */
    size_t nin, capin;
};

static json_t *money(int64_t micro)
{
    return json_real((double)micro / 1e6);
}

/* {"cap_usd", "spent_usd", "reserved_usd", "*_micro_usd", "resets_in_s"} */
static json_t *period_json(const struct budget_node_view *v, int p)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int capped = v->cap[p] >= 0;
    json_object_set_new(o, "cap_usd", capped ? money(v->cap[p]) : json_null());
    json_object_set_new(o, "spent_usd", money(v->spent[p]));
    json_object_set_new(o, "reserved_usd", money(v->reserved[p]));
    json_object_set_new(o, "cap_micro_usd", capped ? json_integer(v->cap[p]) : json_null());
    json_object_set_new(o, "spent_micro_usd", json_integer(v->spent[p]));
    json_object_set_new(o, "reserved_micro_usd", json_integer(v->reserved[p]));
    json_object_set_new(o, "resets_in_s",
                        v->resets_in[p] >= 0 ? json_integer(v->resets_in[p]) : json_null());
    return o;
}

json_t *admin_budget_node_json(const struct budget_node_view *v)
{
    json_t *n = json_object(), *periods = json_object();
    if (n == NULL || periods == NULL) {
        json_decref(n);
        json_decref(periods);
        return NULL;
    }
    json_object_set_new(n, "id", json_string(v->id));
    json_object_set_new(n, "parent", v->parent ? json_string(v->parent) : json_null());
    json_object_set_new(n, "depth", json_integer(v->depth));
    for (int p = 0; p < BUDGET_NPERIODS; p++)
        json_object_set_new(periods, budget_period_name((enum budget_period)p), period_json(v, p));
    json_object_set_new(n, "periods", periods);
    return n;
}

static int in_subtree(struct walk *w, const struct budget_node_view *v)
{
    if (w->only == NULL)
        return 1;
    int yes = strcmp(v->id, w->only) == 0;
    for (size_t i = 0; i < w->nin && !yes && v->parent; i++)
        yes = strcmp(w->in[i], v->parent) == 0;
    if (!yes)
        return 0;
    if (w->nin == w->capin) {
        size_t cap = w->capin ? w->capin * 2 : 16;
        const char **ni = realloc(w->in, cap * sizeof *ni);
        if (ni == NULL)
            return -1;
        w->in = ni;
        w->capin = cap;
    }
    w->in[w->nin++] = v->id; /* parents come first, so descendants follow */
    return 1;
}

static int add_node(const struct budget_node_view *v, void *arg)
{
    struct walk *w = arg;
    int in = in_subtree(w, v);
    if (in <= 0)
        return in < 0 ? -1 : 0;
    json_t *n = admin_budget_node_json(v);
    return n == NULL || json_array_append_new(w->nodes, n) < 0 ? -1 : 0;
}

void admin_budgets_get(const struct admin_req *r)
{
    struct http_exchange *ex = r->ex;
    ex->resource = "budgets";
    struct budget_tree *t = ex->cfg->budget;
    struct walk w = {.nodes = json_array(), .only = r->nargs > 0 ? r->args[0] : NULL};
    if (w.nodes == NULL) {
        admin_error(ex, 500, "server_error", "out of memory");
        return;
    }
    char err[256];
    if (t != NULL && ex->cfg->state_redis != NULL &&
        budget_redis_load_tree(ex->cfg->state_redis, t, time(NULL), err, sizeof err) < 0) {
        json_decref(w.nodes);
        admin_error(ex, 503, "budget_store_unavailable", "%s", err);
        return;
    }
    int rc = budget_tree_each(t, time(NULL), add_node, &w);
    free(w.in);
    if (rc != 0) {
        json_decref(w.nodes);
        admin_error(ex, 500, "server_error", "out of memory");
        return;
    }
    if (w.only != NULL && json_array_size(w.nodes) == 0) {
        json_decref(w.nodes);
        admin_error(ex, 404, "not_found", "no budget node '%.200s'", w.only);
        return;
    }
    json_t *body = json_object();
    json_object_set_new(body, "backend", json_string(ex->cfg->state_redis ? "redis" : "embedded"));
    json_object_set_new(body, "now", json_integer((json_int_t)time(NULL)));
    json_object_set_new(body, "nodes", w.nodes);
    admin_json(ex, 200, body);
}
