// SPDX-License-Identifier: Apache-2.0
// Cedar decisions for the MCP hub: Action::"list_tool" and Action::"call_tool"
// on Tool::"<server>/<tool>" (attributes server, labels, trust), over the
// snapshot's entities plus one Tool:: entity per known tool; the context has
// the chain, the server and the session's taint (session.private_data/untrusted).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "mcp/core.h"

/* ---- policy ---------------------------------------------------------------- */

const struct config_mcp_tool *hub_tool_conf(const struct config_mcp_server *s, const char *t)
{
    for (size_t i = 0; i < s->ntools; i++)
        if (strcmp(s->tools[i].name, t) == 0)
            return &s->tools[i];
    return NULL;
}

static json_t *tool_entity(const struct config_mcp_server *s, const char *tool)
{
    const struct config_mcp_tool *tc = hub_tool_conf(s, tool);
    json_t *labels = json_array();
    for (size_t i = 0; tc && i < tc->nlabels; i++)
        json_array_append_new(labels, json_string(tc->labels[i]));
    char id[512];
    snprintf(id, sizeof id, "%s/%s", s->name, tool);
    return json_pack("{s:{s:s, s:s}, s:{s:s, s:o, s:s}, s:[]}", "uid", "type", "Tool", "id", id,
                     "attrs", "server", s->name, "labels", labels, "trust",
                     s->untrusted ? "untrusted" : "trusted", "parents");
}

/* The entity store for decisions: the snapshot's agents and models plus a
 * Tool:: entity for every tool known (configured or listed upstream). */
static const policy_entities_t *entities(struct mcp_core *c, const struct config *cfg)
{
    if (c->ents && c->ents_cfg == cfg && c->ents_gen == c->tools_gen)
        return c->ents;
    json_t *arr = config_policy_entities_json(cfg);
    json_t *seen = json_object();
    if (arr == NULL || seen == NULL) {
        json_decref(arr);
        json_decref(seen);
        return c->ents;
    }
    for (size_t i = 0; i < c->nups; i++) {
        struct up *u = &c->ups[i];
        const struct config_mcp_server *s = config_find_mcp_server(cfg, u->conf->name);
        if (s == NULL)
            s = u->conf;
        for (size_t k = 0; k < s->ntools; k++) {
            char id[512];
            snprintf(id, sizeof id, "%s/%s", s->name, s->tools[k].name);
            if (!json_object_get(seen, id)) {
                json_object_set_new(seen, id, json_true());
                json_array_append_new(arr, tool_entity(s, s->tools[k].name));
            }
        }
        size_t j;
        json_t *t;
        json_array_foreach(u->lists[L_TOOLS], j, t)
        {
            const char *name = json_string_value(json_object_get(t, "name"));
            char id[512];
            if (name == NULL)
                continue;
            snprintf(id, sizeof id, "%s/%s", s->name, name);
            if (!json_object_get(seen, id)) {
                json_object_set_new(seen, id, json_true());
                json_array_append_new(arr, tool_entity(s, name));
            }
        }
    }
    char err[256];
    policy_entities_t *e = policy_entities_load_json(arr, err, sizeof err);
    json_decref(arr);
    json_decref(seen);
    if (e == NULL) {
        log_msg(LOG_ERROR, NULL, "mcp: cannot build the policy entities: %s", err);
        return c->ents;
    }
    policy_entities_free(c->ents);
    c->ents = e;
    c->ents_cfg = cfg;
    c->ents_gen = c->tools_gen;
    return e;
}

void hub_decide(struct mcp_core *c, const struct mcp_msg *m, const char *action, struct up *u,
                const char *tool, struct verdict *v)
{
    hub_decide_session(c, m, NULL, action, u, tool, v);
}

/* Whether one of the policies that permitted d says @trifecta("allow"). */
static int trifecta_allowed(const policy_set_t *set, const struct policy_decision *d)
{
    for (size_t i = 0; d->allow && i < d->nreasons; i++) {
        const char *a = policy_set_annotation(set, d->reasons[i], "trifecta");
        if (a != NULL && strcmp(a, "allow") == 0)
            return 1;
    }
    return 0;
}

void hub_decide_session(struct mcp_core *c, const struct mcp_msg *m, const struct session *s,
                        const char *action, struct up *u, const char *tool, struct verdict *v)
{
    const struct config *cfg = m->cfg ? m->cfg : c->cfg;
    const struct config_policy *pol = &cfg->policy;
    v->allow = 1;
    v->ids[0] = '\0';
    v->trifecta_allow = 0;
    if (pol->set == NULL)
        return;
    unsigned flags = s ? s->taint.flags : 0;
    json_t *ctx = policy_chain_context((const char *const *)m->chain, m->chain_len,
                                       m->chain_len > 0 ? m->chain_len - 1 : 0);
    if (ctx != NULL) {
        json_object_set_new(ctx, "server", json_string(u->conf->name));
        json_object_set_new(ctx, "session",
                            json_pack("{s:b, s:b}", "private_data",
                                      (flags & GUARD_TAINT_PRIVATE_DATA) != 0, "untrusted",
                                      (flags & GUARD_TAINT_UNTRUSTED) != 0));
    }
    char rid[512];
    snprintf(rid, sizeof rid, "%s/%s", u->conf->name, tool);
    struct policy_request req = {
        .principal = policy_uid_make("Agent", m->agent),
        .action = policy_uid_make("Action", action),
        .resource = policy_uid_make("Tool", rid),
        .context = ctx,
    };
    struct policy_decision d;
    int rc = ctx ? policy_decide(pol->set, entities(c, cfg), &req, &d) : -1;
    json_decref(ctx);
    if (rc < 0) {
        if (ctx)
            policy_decision_free(&d);
        v->allow = -1;
        return;
    }
    policy_ids_join(&d, v->ids, sizeof v->ids);
    v->allow = !policy_denies(&d, pol->default_allow);
    v->trifecta_allow = trifecta_allowed(pol->set, &d);
    policy_decision_free(&d);
}
