// SPDX-License-Identifier: Apache-2.0
// admin: the admin listener's address and the token that guards it. Either
// "host:port" or {listen: "host:port", token_env: NAME}; the token is read
// from the environment at load, like providers' api_key_env.
#include "config/loader.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config/values.h"

#define ADMIN_TOKEN_ENV_DEFAULT "PORTCULLIS_ADMIN_TOKEN"

static int env_name_ok(const char *s)
{
    if (!isalpha((unsigned char)*s) && *s != '_')
        return 0;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

static void admin_listen(struct cfg_ctx *c, yaml_node_t *n, const char *path)
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
    free(c->cfg->admin.host);
    c->cfg->admin.host = host;
    c->cfg->admin.port = port;
    c->cfg->has_admin = 1;
}

/* Resolves the token variable (set or defaulted) into cfg->admin_token. */
static void admin_token(struct cfg_ctx *c)
{
    struct config *cfg = c->cfg;
    if (cfg->admin_token_env == NULL)
        cfg->admin_token_env = cfg_xstrdup(c, ADMIN_TOKEN_ENV_DEFAULT);
    const char *v = cfg->admin_token_env ? getenv(cfg->admin_token_env) : NULL;
    if (v != NULL && v[0] != '\0')
        cfg->admin_token = cfg_xstrdup(c, v);
}

void cfg_build_admin(struct cfg_ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"listen", "token_env"};
    yaml_node_t *f[2];
    if (n->type == YAML_SCALAR_NODE) {
        admin_listen(c, n, "admin");
        admin_token(c);
        return;
    }
    if (n->type != YAML_MAPPING_NODE) {
        cfg_error(c, n, "admin: expected \"host:port\" or a mapping {listen: \"host:port\", "
                        "token_env: NAME}");
        return;
    }
    if (cfg_map(c, n, "admin", keys, 2, f) < 0)
        return;
    if (f[0] == NULL)
        cfg_error(c, n, "admin: missing required key 'listen'");
    else
        admin_listen(c, f[0], "admin.listen");
    if (f[1] != NULL && cfg_strdup(c, f[1], "admin.token_env", &c->cfg->admin_token_env) == 0 &&
        !env_name_ok(c->cfg->admin_token_env))
        cfg_error(c, f[1],
                  "admin.token_env: expected an environment variable name like "
                  "PORTCULLIS_ADMIN_TOKEN, got '%.60s'",
                  c->cfg->admin_token_env);
    admin_token(c);
}

void cfg_free_admin(struct config *cfg)
{
    free(cfg->admin_token_env);
    cfg->admin_token_env = NULL;
    if (cfg->admin_token != NULL) {
        explicit_bzero(cfg->admin_token, strlen(cfg->admin_token));
        free(cfg->admin_token);
        cfg->admin_token = NULL;
    }
}
