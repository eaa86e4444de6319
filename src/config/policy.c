// SPDX-License-Identifier: Apache-2.0
// policy: section. `files` (paths or globs, relative to the config file) are
// parsed into one Cedar policy set at load time, so a policy file that does
// not parse fails the load with file:line:col errors (and a SIGHUP reload
// keeps the old snapshot). The entities come from the config: every agent of
// the agents: tree is Agent::"id" with its parent, every model Model::"name",
// plus Agent::"anonymous" for requests without a credential.
#include "config/loader.h"

#include <glob.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "policy/policy.h"

#define MAX_POLICY_FILES 1024

static int add_file(struct cfg_ctx *c, const char *path)
{
    struct config_policy *pol = &c->cfg->policy;
    for (size_t i = 0; i < pol->nfiles; i++)
        if (strcmp(pol->files[i], path) == 0)
            return 0; /* matched twice: load once */
    if (pol->nfiles >= MAX_POLICY_FILES)
        return -1;
    char **v = realloc(pol->files, (pol->nfiles + 1) * sizeof *v);
    if (v == NULL) {
        c->oom = 1;
        return -1;
    }
    pol->files = v;
    v[pol->nfiles] = cfg_xstrdup(c, path);
    if (v[pol->nfiles] == NULL)
        return -1;
    pol->nfiles++;
    return 0;
}

/* One entry of files: a glob (sorted matches) or a plain path. */
static void expand(struct cfg_ctx *c, yaml_node_t *n, const char *path)
{
    const char *s = cfg_str(c, n, path);
    if (s == NULL)
        return;
    if (s[0] == '\0') {
        cfg_error(c, n, "%s: must not be empty", path);
        return;
    }
    char *full = cfg_resolve_path(c, s);
    if (full == NULL)
        return;
    glob_t g;
    int rc = glob(full, 0, NULL, &g);
    if (rc == GLOB_NOMATCH) {
        cfg_error(c, n, "%s: no policy file matches '%.200s'", path, full);
    } else if (rc != 0) {
        cfg_error(c, n, "%s: cannot read '%.200s'", path, full);
    } else {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            if (add_file(c, g.gl_pathv[i]) < 0) {
                if (!c->oom)
                    cfg_error(c, n, "%s: more than %d policy files", path, MAX_POLICY_FILES);
                break;
            }
        }
    }
    if (rc == 0 || rc == GLOB_NOMATCH)
        globfree(&g);
    free(full);
}

static json_t *uid_json(const char *type, const char *id)
{
    return json_pack("{s:s, s:s}", "type", type, "id", id);
}

/* Attributes of Agent::"id": for an agent of a2a.agents, {a2a: true, trust:
 * "trusted" | "untrusted"}; {} otherwise. */
static json_t *a2a_attrs(const struct config *cfg, const char *id)
{
    const struct config_a2a_agent *a = config_find_a2a_agent(cfg, id);
    if (a == NULL)
        return json_object();
    return json_pack("{s:b, s:s}", "a2a", 1, "trust", a->untrusted ? "untrusted" : "trusted");
}

/* Cedar entities JSON for the agents tree and the models (also the base the
 * MCP hub adds its Tool:: entities to). */
void *config_policy_entities_json(const struct config *cfg)
{
    json_t *arr = json_array();
    int anon = 0;
    if (arr == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->nagents; i++) {
        const struct config_agent *a = &cfg->agents[i];
        json_t *parents = json_array();
        if (a->parent != NULL)
            json_array_append_new(parents, uid_json("Agent", a->parent));
        json_array_append_new(arr, json_pack("{s:o, s:o, s:o}", "uid", uid_json("Agent", a->id),
                                             "attrs", a2a_attrs(cfg, a->id), "parents", parents));
        anon |= strcmp(a->id, "anonymous") == 0;
    }
    /* A2A agents not in the tree are entities of their own. */
    for (size_t i = 0; i < cfg->a2a.nagents; i++) {
        const char *name = cfg->a2a.agents[i].name;
        if (name != NULL && config_find_agent(cfg, name) == NULL)
            json_array_append_new(arr, json_pack("{s:o, s:o, s:[]}", "uid", uid_json("Agent", name),
                                                 "attrs", a2a_attrs(cfg, name), "parents"));
        anon |= name != NULL && strcmp(name, "anonymous") == 0;
    }
    if (!anon)
        json_array_append_new(arr, json_pack("{s:o, s:{}, s:[]}", "uid",
                                             uid_json("Agent", "anonymous"), "attrs", "parents"));
    for (size_t i = 0; i < cfg->nmodels; i++)
        json_array_append_new(arr, json_pack("{s:o, s:{}, s:[]}", "uid",
                                             uid_json("Model", cfg->models[i].name), "attrs",
                                             "parents"));
    return arr;
}

void cfg_build_policy(struct cfg_ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"files", "default"};
    yaml_node_t *f[2];
    char p[64];
    struct config_policy *pol = &c->cfg->policy;
    if (cfg_map(c, n, "policy", keys, 2, f) < 0)
        return;
    pol->present = 1;
    if (f[1] != NULL) {
        const char *s = cfg_str(c, f[1], "policy.default");
        if (s != NULL && strcmp(s, "allow") == 0)
            pol->default_allow = 1;
        else if (s != NULL && strcmp(s, "deny") != 0)
            cfg_error(c, f[1], "policy.default: expected deny or allow, got '%.60s'", s);
    }
    /* No files is an empty set: with default: deny every call is refused. */
    if (f[0] == NULL || cfg_is_null(f[0])) {
        /* nothing to load */
    } else if (f[0]->type == YAML_SCALAR_NODE) {
        expand(c, f[0], "policy.files");
    } else {
        long len = cfg_seq(c, f[0], "policy.files");
        for (long i = 0; i < len && !c->stop && !c->oom; i++)
            expand(c, cfg_seq_item(c, f[0], i), cfg_path_index(p, sizeof p, "policy.files", i));
    }
    if (c->nerrors > 0 || c->oom)
        return;

    pol->set = policy_set_new(0);
    if (pol->set == NULL) {
        c->oom = 1;
        return;
    }
    for (size_t i = 0; i < pol->nfiles; i++) {
        struct policy_diags d = {0};
        if (policy_set_add_file(pol->set, pol->files[i], &d) < 0) {
            for (size_t j = 0; j < d.count; j++)
                cfg_error_file(c, d.v[j].file != NULL ? d.v[j].file : pol->files[i],
                               d.v[j].line, d.v[j].col, "%s", d.v[j].message);
            if (d.count == 0)
                cfg_error_file(c, pol->files[i], 0, 0, "cannot load the policy file");
        }
        policy_diags_free(&d);
    }

    char err[256] = "";
    json_t *ents = config_policy_entities_json(c->cfg);
    if (ents == NULL) {
        c->oom = 1;
        return;
    }
    pol->entities = policy_entities_load_json(ents, err, sizeof err);
    json_decref(ents);
    if (pol->entities == NULL)
        cfg_error(c, n, "policy: cannot build the entities from agents: and models: (%s)", err);
}

void cfg_free_policy(struct config *cfg)
{
    struct config_policy *pol = &cfg->policy;
    for (size_t i = 0; i < pol->nfiles; i++)
        free(pol->files[i]);
    free(pol->files);
    policy_entities_free(pol->entities);
    policy_set_free(pol->set);
}
