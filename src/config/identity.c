// SPDX-License-Identifier: Apache-2.0
// identity:, agents: and audit: sections. The shape of each top-level node is
// checked by load.c; these builders read the keys inside. The agents tree is
// flattened parents-first, ids are unique across the whole tree.
#include "config/loader.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_AGENTS 100000
#define MAX_AGENT_DEPTH 32
#define MAX_DELEGATION_DEPTH 32

static const char *const known_algs[] = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                         "ES256", "ES384", "ES512", "HS256", "HS384", "HS512"};

void cfg_identity_defaults(struct cfg_ctx *c)
{
    struct config *cfg = c->cfg;
    cfg->identity.api_keys = 1;
    cfg->identity.issuer = cfg_xstrdup(c, "portcullis");
    cfg->identity.max_depth = 4;
    cfg->identity.delegation_ttl_ms = 15 * 60 * 1000;
    cfg->audit.enabled = 1;
    cfg->audit.buffer = 4096;
}

static int read_bool(struct cfg_ctx *c, yaml_node_t *n, const char *path, int *out)
{
    const char *s = cfg_str(c, n, path);
    if (s == NULL)
        return -1;
    if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "on") == 0) {
        *out = 1;
        return 0;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "off") == 0) {
        *out = 0;
        return 0;
    }
    cfg_error(c, n, "%s: expected true or false, got '%.60s'", path, s);
    return -1;
}

/* A string or a list of strings into a NULL-free array. */
static void read_strings(struct cfg_ctx *c, yaml_node_t *n, const char *path, char ***out,
                         size_t *count)
{
    char p[96];
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = cfg_str(c, n, path);
        if (s == NULL)
            return;
        *out = calloc(1, sizeof **out);
        if (*out == NULL) {
            c->oom = 1;
            return;
        }
        (*out)[0] = cfg_xstrdup(c, s);
        *count = 1;
        return;
    }
    long len = cfg_seq(c, n, path);
    if (len <= 0)
        return;
    *out = calloc((size_t)len, sizeof **out);
    if (*out == NULL) {
        c->oom = 1;
        return;
    }
    for (long i = 0; i < len; i++) {
        cfg_path_index(p, sizeof p, path, i);
        const char *s = cfg_str(c, cfg_seq_item(c, n, i), p);
        if (s != NULL)
            (*out)[(*count)++] = cfg_xstrdup(c, s);
    }
}

static void build_jwks(struct cfg_ctx *c, yaml_node_t *n, struct config_jwks *j)
{
    static const char *const keys[] = {"file", "url", "refresh", "min_refetch_interval"};
    yaml_node_t *f[4];
    if (cfg_map(c, n, "identity.jwt.jwks", keys, 4, f) < 0)
        return;
    if ((f[0] == NULL) == (f[1] == NULL)) {
        cfg_error(c, n, "identity.jwt.jwks: set exactly one of file or url");
        return;
    }
    if (f[0] != NULL) {
        const char *s = cfg_str(c, f[0], "identity.jwt.jwks.file");
        if (s != NULL && s[0] == '\0')
            cfg_error(c, f[0], "identity.jwt.jwks.file: must not be empty");
        else if (s != NULL)
            j->file = cfg_resolve_path(c, s);
    }
    if (f[1] != NULL) {
        const char *s = cfg_str(c, f[1], "identity.jwt.jwks.url");
        if (s != NULL && strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
            cfg_error(c, f[1], "identity.jwt.jwks.url: expected an http:// or https:// URL");
        else if (s != NULL)
            j->url = cfg_xstrdup(c, s);
    }
    if (f[2] != NULL)
        cfg_duration(c, f[2], "identity.jwt.jwks.refresh", 1000, &j->refresh_ms);
    if (f[3] != NULL)
        cfg_duration(c, f[3], "identity.jwt.jwks.min_refetch_interval", 0, &j->min_refetch_ms);
}

static void build_jwt(struct cfg_ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"issuer",      "audiences", "algorithms",
                                       "agent_claim", "leeway",    "jwks"};
    yaml_node_t *f[6];
    struct config_jwt *j = &c->cfg->identity.jwt;
    if (cfg_map(c, n, "identity.jwt", keys, 6, f) < 0 || cfg_is_null(n))
        return;
    c->cfg->identity.has_jwt = 1;
    j->leeway_ms = 60000;
    j->jwks.refresh_ms = 3600 * 1000;
    j->jwks.min_refetch_ms = 30000;
    if (f[0] == NULL)
        cfg_error(c, n, "identity.jwt: issuer is required (the \"iss\" tokens must carry)");
    else
        cfg_strdup(c, f[0], "identity.jwt.issuer", &j->issuer);
    if (f[1] != NULL)
        read_strings(c, f[1], "identity.jwt.audiences", &j->audiences, &j->naudiences);
    if (f[2] != NULL) {
        read_strings(c, f[2], "identity.jwt.algorithms", &j->algorithms, &j->nalgorithms);
        for (size_t i = 0; i < j->nalgorithms; i++) {
            int ok = 0;
            for (size_t k = 0; k < sizeof known_algs / sizeof known_algs[0]; k++)
                ok |= j->algorithms[i] != NULL && strcmp(j->algorithms[i], known_algs[k]) == 0;
            if (!ok)
                cfg_error(c, f[2],
                          "identity.jwt.algorithms: '%.40s' is not supported (RS256..512, "
                          "PS256..512, ES256..512, HS256..512; never none)",
                          j->algorithms[i] ? j->algorithms[i] : "");
        }
    } else {
        static const char *const defaults[] = {"RS256", "PS256", "ES256"};
        j->algorithms = calloc(3, sizeof *j->algorithms);
        if (j->algorithms == NULL) {
            c->oom = 1;
        } else {
            for (size_t i = 0; i < 3; i++)
                j->algorithms[i] = cfg_xstrdup(c, defaults[i]);
            j->nalgorithms = 3;
        }
    }
    if (f[3] != NULL)
        cfg_strdup(c, f[3], "identity.jwt.agent_claim", &j->agent_claim);
    else
        j->agent_claim = cfg_xstrdup(c, "sub");
    if (f[4] != NULL)
        cfg_duration(c, f[4], "identity.jwt.leeway", 0, &j->leeway_ms);
    if (f[5] != NULL)
        build_jwks(c, f[5], &j->jwks);
}

static void build_delegation(struct cfg_ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"max_depth", "ttl"};
    yaml_node_t *f[2];
    uint64_t v;
    if (cfg_map(c, n, "identity.delegation", keys, 2, f) < 0)
        return;
    if (f[0] != NULL &&
        cfg_uint(c, f[0], "identity.delegation.max_depth", 0, MAX_DELEGATION_DEPTH, &v) == 0)
        c->cfg->identity.max_depth = (uint32_t)v;
    if (f[1] != NULL)
        cfg_duration(c, f[1], "identity.delegation.ttl", 1000, &c->cfg->identity.delegation_ttl_ms);
}

void cfg_build_identity(struct cfg_ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"required", "api_keys", "jwt", "delegation", "issuer"};
    yaml_node_t *f[5];
    struct config_identity *id = &c->cfg->identity;
    if (cfg_map(c, n, "identity", keys, 5, f) < 0)
        return;
    id->present = 1;
    /* An identity: section means callers are to be known: a request with no
     * credential is a 401 unless required: false says otherwise. */
    id->required = 1;
    if (f[0] != NULL)
        read_bool(c, f[0], "identity.required", &id->required);
    if (f[1] != NULL)
        read_bool(c, f[1], "identity.api_keys", &id->api_keys);
    if (f[2] != NULL)
        build_jwt(c, f[2]);
    if (f[3] != NULL)
        build_delegation(c, f[3]);
    if (f[4] != NULL) {
        const char *s = cfg_str(c, f[4], "identity.issuer");
        if (s != NULL && s[0] == '\0')
            cfg_error(c, f[4], "identity.issuer: must not be empty");
        else if (s != NULL)
            cfg_strdup(c, f[4], "identity.issuer", &id->issuer);
    }
}

/* ---- agents ---------------------------------------------------------- */

static int agent_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return 0;
    return 1;
}

struct agent_walk {
    size_t cap;
};

static void build_agent_list(struct cfg_ctx *c, struct agent_walk *w, yaml_node_t *seq,
                             const char *path, const char *parent, unsigned depth)
{
    static const char *const keys[] = {"id",     "description", "children",
                                       "budget", "breaker",     "rate_limit"};
    char p[256], pk[256];
    long n = cfg_seq(c, seq, path);
    if (depth > MAX_AGENT_DEPTH) {
        cfg_error(c, seq, "%s: the agents tree is deeper than %d levels", path, MAX_AGENT_DEPTH);
        return;
    }
    for (long i = 0; i < n && !c->stop; i++) {
        yaml_node_t *item = cfg_seq_item(c, seq, i), *f[6];
        cfg_path_index(p, sizeof p, path, i);
        if (item == NULL || item->type != YAML_MAPPING_NODE) {
            cfg_error(c, item, "%s: expected a mapping like {id: research}", p);
            continue;
        }
        if (cfg_map(c, item, p, keys, 6, f) < 0)
            continue;
        if (f[0] == NULL) {
            cfg_error(c, item, "%s: id is required", p);
            continue;
        }
        const char *id = cfg_str(c, f[0], cfg_path(pk, sizeof pk, p, "id"));
        if (id == NULL)
            continue;
        if (!agent_id_ok(id)) {
            cfg_error(c, f[0], "%s.id: '%.60s' must be 1-64 of A-Z a-z 0-9 . _ -", p, id);
            continue;
        }
        struct config *cfg = c->cfg;
        const struct config_agent *dup = config_find_agent(cfg, id);
        if (dup != NULL) {
            cfg_error(c, f[0], "%s.id: duplicate agent '%.60s'", p, id);
            continue;
        }
        if (cfg->nagents >= MAX_AGENTS) {
            cfg_error(c, item, "%s: more than %d agents", p, MAX_AGENTS);
            return;
        }
        if (cfg->nagents == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 8;
            struct config_agent *a = realloc(cfg->agents, cap * sizeof *a);
            if (a == NULL) {
                c->oom = 1;
                return;
            }
            cfg->agents = a;
            w->cap = cap;
        }
        struct config_agent *a = &cfg->agents[cfg->nagents++];
        memset(a, 0, sizeof *a);
        a->id = cfg_xstrdup(c, id);
        a->parent = parent != NULL ? cfg_xstrdup(c, parent) : NULL;
        a->depth = depth;
        if (f[1] != NULL)
            cfg_strdup(c, f[1], cfg_path(pk, sizeof pk, p, "description"), &a->description);
        if (f[3] != NULL && !cfg_is_null(f[3]))
            cfg_build_agent_budget(c, f[3], cfg_path(pk, sizeof pk, p, "budget"), a);
        if (f[4] != NULL && !cfg_is_null(f[4]))
            cfg_build_breaker(c, f[4], cfg_path(pk, sizeof pk, p, "breaker"), &a->breaker);
        if (f[5] != NULL && !cfg_is_null(f[5]))
            cfg_build_agent_rate_limit(c, f[5], cfg_path(pk, sizeof pk, p, "rate_limit"), a);
        if (f[2] != NULL && a->id != NULL) {
            char *self = strdup(a->id); /* the array may move while recursing */
            if (self == NULL) {
                c->oom = 1;
                return;
            }
            build_agent_list(c, w, f[2], cfg_path(pk, sizeof pk, p, "children"), self, depth + 1);
            free(self);
        }
    }
}

void cfg_build_agents(struct cfg_ctx *c, yaml_node_t *n)
{
    struct agent_walk w = {0};
    build_agent_list(c, &w, n, "agents", NULL, 0);
    cfg_build_budget_tree(c);
}

const struct config_agent *config_find_agent(const struct config *c, const char *id)
{
    if (c == NULL || id == NULL)
        return NULL;
    /* Agent trees are small and looked up off the hot path (token exchange,
     * key creation): a scan is enough. */
    for (size_t i = 0; i < c->nagents; i++)
        if (c->agents[i].id != NULL && strcmp(c->agents[i].id, id) == 0)
            return &c->agents[i];
    return NULL;
}

/* ---- audit ----------------------------------------------------------- */

void cfg_build_audit(struct cfg_ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"enabled", "jsonl", "buffer"};
    yaml_node_t *f[3];
    uint64_t v;
    struct config_audit *a = &c->cfg->audit;
    if (cfg_map(c, n, "audit", keys, 3, f) < 0)
        return;
    if (f[0] != NULL)
        read_bool(c, f[0], "audit.enabled", &a->enabled);
    if (f[1] != NULL && !cfg_is_null(f[1])) {
        const char *s = cfg_str(c, f[1], "audit.jsonl");
        if (s != NULL && s[0] == '\0')
            cfg_error(c, f[1], "audit.jsonl: must not be empty");
        else if (s != NULL)
            a->jsonl_path = cfg_resolve_path(c, s);
    }
    if (f[2] != NULL && cfg_uint(c, f[2], "audit.buffer", 16, 1u << 20, &v) == 0)
        a->buffer = (uint32_t)v;
}

void cfg_free_identity(struct config *cfg)
{
    struct config_identity *id = &cfg->identity;
    struct config_jwt *j = &id->jwt;
    free(j->issuer);
    for (size_t i = 0; i < j->naudiences; i++)
        free(j->audiences[i]);
    free(j->audiences);
    for (size_t i = 0; i < j->nalgorithms; i++)
        free(j->algorithms[i]);
    free(j->algorithms);
    free(j->agent_claim);
    free(j->jwks.file);
    free(j->jwks.url);
    free(id->issuer);
    for (size_t i = 0; i < cfg->nagents; i++) {
        free(cfg->agents[i].id);
        free(cfg->agents[i].parent);
        free(cfg->agents[i].description);
    }
    free(cfg->agents);
    cfg_free_budget(cfg);
    free(cfg->audit.jsonl_path);
}
