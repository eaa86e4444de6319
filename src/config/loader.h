// SPDX-License-Identifier: Apache-2.0
// Internal to src/config/: the state of one load (YAML document -> struct
// config) and the typed node readers every section builder uses. Errors are
// collected in the context, never returned early.
#ifndef PORTCULLIS_CONFIG_LOADER_H
#define PORTCULLIS_CONFIG_LOADER_H

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "config/config.h"

#define CONFIG_MAX_ERRORS 100
/* Deepest nesting of lists and mappings accepted in a document. */
#define CONFIG_MAX_DEPTH 128
/* Work cap on nodes visited, so aliases cannot blow up a walk. */
#define CONFIG_MAX_VISITS 1000000L

struct cfg_ctx {
    const char *file; /* as given to config_load_string */
    char *dir;        /* directory of file, NULL = cwd; owned */
    yaml_document_t *doc;
    struct config *cfg; /* being built */
    struct config_errors *errs;
    size_t nerrors; /* reported, including dropped ones */
    long visits_left;
    int stop; /* stop walking: too many errors or visits */
    int oom;
    void *provider_ix; /* providers sorted by name (providers.c); owned */
    size_t nprovider_ix;
};

/* Records "file:line: message" (line from `n`, 0 when n is NULL). */
void cfg_error(struct cfg_ctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same with an explicit line. */
void cfg_error_at(struct cfg_ctx *c, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An error in another file (a policy file): "file:line:col: message"; col 0
 * prints as "file:line: message". */
void cfg_error_file(struct cfg_ctx *c, const char *file, unsigned line, unsigned col,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Child node by id, NULL when out of range. */
yaml_node_t *cfg_node(struct cfg_ctx *c, yaml_node_item_t id);

int cfg_is_null(const yaml_node_t *n);

/* Looks up each key of mapping `map` in keys[0..nkeys) and stores its value
 * node in found[i] (NULL when absent). Reports unknown keys (with a "did you
 * mean"), duplicate keys and non-string keys; follows YAML merge keys (<<).
 * A null node counts as an empty mapping. Returns -1 (error reported) when
 * `map` is neither. `path` prefixes messages ("" for the top level). */
int cfg_map(struct cfg_ctx *c, yaml_node_t *map, const char *path, const char *const *keys,
            size_t nkeys, yaml_node_t **found);

/* Number of items of a list, 0 for null; -1 (error reported) otherwise. */
long cfg_seq(struct cfg_ctx *c, yaml_node_t *n, const char *path);
yaml_node_t *cfg_seq_item(struct cfg_ctx *c, yaml_node_t *seq, long i);

/* Scalar text of n, or NULL with an error ("missing value", "expected a
 * string, got a list", NUL bytes). The string belongs to the document. */
const char *cfg_str(struct cfg_ctx *c, yaml_node_t *n, const char *path);

/* strdup of cfg_str into *out (freeing the old value); -1 on error. */
int cfg_strdup(struct cfg_ctx *c, yaml_node_t *n, const char *path, char **out);
char *cfg_xstrdup(struct cfg_ctx *c, const char *s);
/* "dir/name" with dir the config file's directory, or a copy of name when it
 * is absolute or the config came from memory; malloc'd (c->oom on failure). */
char *cfg_resolve_path(struct cfg_ctx *c, const char *name);

/* Typed readers; on error *out is left alone and -1 returned. */
int cfg_uint(struct cfg_ctx *c, yaml_node_t *n, const char *path, uint64_t min, uint64_t max,
             uint64_t *out);
int cfg_u32(struct cfg_ctx *c, yaml_node_t *n, const char *path, uint32_t min, uint32_t *out);
int cfg_size(struct cfg_ctx *c, yaml_node_t *n, const char *path, uint64_t min, uint64_t max,
             uint64_t *out);
int cfg_duration(struct cfg_ctx *c, yaml_node_t *n, const char *path, uint32_t min, uint32_t *out);
int cfg_number(struct cfg_ctx *c, yaml_node_t *n, const char *path, double min, double max,
               double *out);

/* Writes "base.key" (or "key" when base is empty) into buf. */
const char *cfg_path(char *buf, size_t len, const char *base, const char *key);
/* Writes "base[i]" into buf. */
const char *cfg_path_index(char *buf, size_t len, const char *base, long i);

/* Closest of cands to word within a small edit distance, or NULL. */
const char *cfg_suggest(const char *word, const char *const *cands, size_t n);

/* Section builders (providers.c). */
void cfg_build_providers(struct cfg_ctx *c, yaml_node_t *n);
void cfg_build_models(struct cfg_ctx *c, yaml_node_t *n);

/* identity:, agents:, audit: (identity.c). Defaults first, then builders
 * for nodes whose shape load.c has checked. */
void cfg_identity_defaults(struct cfg_ctx *c);
void cfg_build_identity(struct cfg_ctx *c, yaml_node_t *n);
void cfg_build_agents(struct cfg_ctx *c, yaml_node_t *n);
void cfg_build_audit(struct cfg_ctx *c, yaml_node_t *n);
void cfg_free_identity(struct config *cfg);
/* budget: inside an agent (src/config/budget.c), and the tree built from
 * every agent once the list is complete. */
void cfg_build_agent_budget(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                            struct config_agent *a);
void cfg_build_budget_tree(struct cfg_ctx *c);
void cfg_free_budget(struct config *cfg);
/* budget: at the top level (budget.c): defaults first, then the section. */
void cfg_budget_defaults(struct cfg_ctx *c);
void cfg_build_budget_section(struct cfg_ctx *c, yaml_node_t *n);

/* admin: "host:port" or {listen, token_env} (admin.c). */
void cfg_build_admin(struct cfg_ctx *c, yaml_node_t *n);
void cfg_free_admin(struct config *cfg);

/* rate_limit: and breaker: (breaker.c): readers for one node, then the
 * breaker set built once agents and providers are read. */
void cfg_build_breaker(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                       struct breaker_params **out);
void cfg_build_agent_rate_limit(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                                struct config_agent *a);
void cfg_build_breakers(struct cfg_ctx *c);
/* mcp.servers[].rate_limit: {calls_per_minute} (breaker: as above); then, once mcp: is read,
 * those limits added to the breaker set. */
void cfg_build_mcp_rate_limit(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                              uint64_t *calls_per_minute);
void cfg_build_mcp_limits(struct cfg_ctx *c);
void cfg_free_breakers(struct config *cfg);

/* policy: (policy.c). Loads the policy files and builds the entities from
 * agents: and models:, so it runs after both. */
void cfg_build_policy(struct cfg_ctx *c, yaml_node_t *n);
/* guard: (guard.c) */
void cfg_build_guard(struct cfg_ctx *c, yaml_node_t *n);
void cfg_free_guard(struct config *cfg);
/* After guard: and mcp: are built: mcp.servers[].guard needs a guard: section. */
void cfg_check_guard_users(struct cfg_ctx *c);
void cfg_free_policy(struct config *cfg);

/* mcp: (mcp.c). */
void cfg_mcp_defaults(struct cfg_ctx *c);
void cfg_build_mcp(struct cfg_ctx *c, yaml_node_t *n);
void cfg_free_mcp(struct config *cfg);

/* a2a: (a2a.c). */
void cfg_build_a2a(struct cfg_ctx *c, yaml_node_t *n);
void cfg_free_a2a(struct config *cfg);

/* Whole document -> c->cfg (load.c). */
void cfg_build(struct cfg_ctx *c, yaml_node_t *root);

/* Frees a snapshot whatever its state of construction (config.c). */
void config_free(struct config *cfg);

#endif
