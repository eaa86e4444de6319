// SPDX-License-Identifier: Apache-2.0
// mcp: section. The MCP endpoint on the main listener (path, tool-name
// separator, session idle time, Host/Origin allow-lists) and the upstream
// servers the hub federates: Streamable HTTP (url) or stdio (command).
#include "config/loader.h"

#include <ctype.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define MAX_MCP_SERVERS 256
#define MAX_MCP_LIST 1024

void cfg_mcp_defaults(struct cfg_ctx *c)
{
    static const char *const hosts[] = {"127.0.0.1", "localhost", "[::1]"};
    struct config_mcp *m = &c->cfg->mcp;
    m->path = cfg_xstrdup(c, "/mcp");
    m->separator = cfg_xstrdup(c, "__");
    m->session_idle_ms = 30 * 60 * 1000;
    m->allowed_hosts = calloc(3, sizeof *m->allowed_hosts);
    if (m->allowed_hosts == NULL) {
        c->oom = 1;
        return;
    }
    for (size_t i = 0; i < 3; i++)
        m->allowed_hosts[i] = cfg_xstrdup(c, hosts[i]);
    m->nallowed_hosts = 3;
}

static void free_strings(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* A list of non-empty strings (a lone string counts as a list of one). With
 * nul_end the array gets a NULL after the last item. */
static int read_list(struct cfg_ctx *c, yaml_node_t *n, const char *path, int nul_end, char ***out,
                     size_t *count)
{
    char p[160];
    long len = 1;
    int scalar = n->type == YAML_SCALAR_NODE && !cfg_is_null(n);
    if (!scalar && (len = cfg_seq(c, n, path)) < 0)
        return -1;
    if (len > MAX_MCP_LIST) {
        cfg_error(c, n, "%s: more than %d items", path, MAX_MCP_LIST);
        return -1;
    }
    char **v = calloc((size_t)len + 1, sizeof *v);
    if (v == NULL) {
        c->oom = 1;
        return -1;
    }
    size_t k = 0;
    for (long i = 0; i < len; i++) {
        yaml_node_t *item = scalar ? n : cfg_seq_item(c, n, i);
        const char *ip = scalar ? path : cfg_path_index(p, sizeof p, path, i);
        const char *s = item ? cfg_str(c, item, ip) : NULL;
        if (s == NULL)
            continue;
        if (s[0] == '\0') {
            cfg_error(c, item, "%s: must not be empty", ip);
            continue;
        }
        v[k++] = cfg_xstrdup(c, s);
    }
    free_strings(*out, *count);
    *out = v;
    *count = k;
    (void)nul_end; /* the array always has room for the NULL */
    return 0;
}

/* A mapping of string -> string ({KEY: value}). */
static int read_pairs(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                      struct config_mcp_pair **out, size_t *count)
{
    char p[200];
    if (cfg_is_null(n))
        return 0;
    if (n->type != YAML_MAPPING_NODE) {
        cfg_error(c, n, "%s: expected a mapping like {NAME: value}", path);
        return -1;
    }
    size_t len = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (len > MAX_MCP_LIST) {
        cfg_error(c, n, "%s: more than %d entries", path, MAX_MCP_LIST);
        return -1;
    }
    struct config_mcp_pair *v = calloc(len + 1, sizeof *v);
    if (v == NULL) {
        c->oom = 1;
        return -1;
    }
    size_t k = 0;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = cfg_node(c, pr->key), *vn = cfg_node(c, pr->value);
        if (kn == NULL || vn == NULL)
            continue;
        const char *key = cfg_str(c, kn, path);
        if (key == NULL)
            continue;
        if (key[0] == '\0') {
            cfg_error(c, kn, "%s: names must not be empty", path);
            continue;
        }
        const char *val = cfg_str(c, vn, cfg_path(p, sizeof p, path, key));
        if (val == NULL)
            continue;
        for (size_t j = 0; j < k; j++)
            if (strcmp(v[j].name, key) == 0)
                cfg_error(c, kn, "%s: '%.60s' is given twice", path, key);
        v[k].name = cfg_xstrdup(c, key);
        v[k].value = cfg_xstrdup(c, val);
        k++;
    }
    *out = v;
    *count = k;
    return 0;
}

static int name_ok(const char *s)
{
    if (s[0] == '\0' || strlen(s) > 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return 0;
    return 1;
}

static int token_ok(const char *s)
{
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p >= 127 || *p == ':')
            return 0;
    return s[0] != '\0';
}

static void build_tools(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                        struct config_mcp_server *s)
{
    char p[200];
    if (cfg_is_null(n))
        return;
    if (n->type != YAML_MAPPING_NODE) {
        cfg_error(c, n,
                  "%s: expected a mapping of tool name to labels, like "
                  "{read_file: [private_data]}",
                  path);
        return;
    }
    size_t len = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    s->tools = calloc(len + 1, sizeof *s->tools);
    if (s->tools == NULL) {
        c->oom = 1;
        return;
    }
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = cfg_node(c, pr->key), *vn = cfg_node(c, pr->value);
        const char *key = kn ? cfg_str(c, kn, path) : NULL;
        if (key == NULL || vn == NULL)
            continue;
        if (key[0] == '\0') {
            cfg_error(c, kn, "%s: tool names must not be empty", path);
            continue;
        }
        for (size_t j = 0; j < s->ntools; j++)
            if (strcmp(s->tools[j].name, key) == 0)
                cfg_error(c, kn, "%s: tool '%.60s' is given twice", path, key);
        struct config_mcp_tool *t = &s->tools[s->ntools++];
        t->name = cfg_xstrdup(c, key);
        if (!cfg_is_null(vn))
            read_list(c, vn, cfg_path(p, sizeof p, path, key), 0, &t->labels, &t->nlabels);
    }
}

enum {
    S_NAME,
    S_URL,
    S_HEADERS,
    S_IDENTITY_HEADER,
    S_TIMEOUT,
    S_COMMAND,
    S_ENV,
    S_CWD,
    S_TOOLS,
    S_TRUST,
    S_RATE_LIMIT,
    S_BREAKER,
    S_RESTART_MIN,
    S_RESTART_MAX,
    S_STOP_GRACE,
    S_GUARD,
    S_COUNT
};

static void build_server(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                         struct config_mcp_server *s)
{
    static const char *const keys[S_COUNT] = {
        "name",        "url",         "headers",    "identity_header",
        "timeout",     "command",     "env",        "cwd",
        "tools",       "trust",       "rate_limit", "breaker",
        "restart_min", "restart_max", "stop_grace", "guard"};
    yaml_node_t *f[S_COUNT];
    char p[200];
    s->line = (unsigned)n->start_mark.line + 1;
    s->timeout_ms = 60000;
    if (n->type != YAML_MAPPING_NODE) {
        cfg_error(c, n, "%s: expected a mapping with name and url or command", path);
        return;
    }
    if (cfg_map(c, n, path, keys, S_COUNT, f) < 0)
        return;
    if (f[S_NAME] == NULL) {
        cfg_error(c, n, "%s: missing name", path);
    } else if (cfg_strdup(c, f[S_NAME], cfg_path(p, sizeof p, path, "name"), &s->name) == 0 &&
               !name_ok(s->name)) {
        cfg_error(c, f[S_NAME], "%s.name: '%.60s' must be 1-64 letters, digits, '-', '_' or '.'",
                  path, s->name);
    }
    if ((f[S_URL] == NULL) == (f[S_COMMAND] == NULL)) {
        cfg_error(c, n, "%s: set exactly one of url (Streamable HTTP) and command (stdio)", path);
    }
    if (f[S_URL] != NULL &&
        cfg_strdup(c, f[S_URL], cfg_path(p, sizeof p, path, "url"), &s->url) == 0 &&
        strncmp(s->url, "http://", 7) != 0 && strncmp(s->url, "https://", 8) != 0)
        cfg_error(c, f[S_URL], "%s.url: expected an http:// or https:// URL, got '%.100s'", path,
                  s->url);
    if (f[S_COMMAND] != NULL) {
        cfg_path(p, sizeof p, path, "command");
        if (read_list(c, f[S_COMMAND], p, 1, &s->argv, &s->argc) == 0 && s->argc == 0)
            cfg_error(c, f[S_COMMAND], "%s: must name the program to run", p);
    }
    if (f[S_HEADERS] != NULL) {
        cfg_path(p, sizeof p, path, "headers");
        if (f[S_URL] == NULL && f[S_COMMAND] != NULL)
            cfg_error(c, f[S_HEADERS], "%s: only for url servers", p);
        else if (read_pairs(c, f[S_HEADERS], p, &s->headers, &s->nheaders) == 0)
            for (size_t i = 0; i < s->nheaders; i++)
                if (!token_ok(s->headers[i].name))
                    cfg_error(c, f[S_HEADERS], "%s: '%.60s' is not a header name", p,
                              s->headers[i].name);
    }
    if (f[S_IDENTITY_HEADER] != NULL) {
        cfg_path(p, sizeof p, path, "identity_header");
        if (f[S_URL] == NULL && f[S_COMMAND] != NULL)
            cfg_error(c, f[S_IDENTITY_HEADER], "%s: only for url servers", p);
        else if (cfg_strdup(c, f[S_IDENTITY_HEADER], p, &s->identity_header) == 0 &&
                 !token_ok(s->identity_header))
            cfg_error(c, f[S_IDENTITY_HEADER], "%s: '%.60s' is not a header name", p,
                      s->identity_header);
    }
    if (f[S_TIMEOUT] != NULL)
        cfg_duration(c, f[S_TIMEOUT], cfg_path(p, sizeof p, path, "timeout"), 1, &s->timeout_ms);
    /* how a command server is restarted and stopped */
    static const int stdio_keys[] = {S_RESTART_MIN, S_RESTART_MAX, S_STOP_GRACE};
    uint32_t *stdio_vals[] = {&s->restart_min_ms, &s->restart_max_ms, &s->stop_grace_ms};
    for (size_t i = 0; i < 3; i++) {
        yaml_node_t *v = f[stdio_keys[i]];
        if (v == NULL)
            continue;
        cfg_path(p, sizeof p, path, keys[stdio_keys[i]]);
        if (f[S_COMMAND] == NULL && f[S_URL] != NULL)
            cfg_error(c, v, "%s: only for command servers", p);
        else
            cfg_duration(c, v, p, 1, stdio_vals[i]);
    }
    if (s->restart_min_ms && s->restart_max_ms && s->restart_max_ms < s->restart_min_ms)
        cfg_error(c, f[S_RESTART_MAX], "%s.restart_max: must not be below restart_min", path);
    if (f[S_ENV] != NULL) {
        struct config_mcp_pair *pairs = NULL;
        size_t np = 0;
        cfg_path(p, sizeof p, path, "env");
        if (f[S_COMMAND] == NULL && f[S_URL] != NULL)
            cfg_error(c, f[S_ENV], "%s: only for command servers", p);
        else if (read_pairs(c, f[S_ENV], p, &pairs, &np) == 0) {
            s->env = calloc(np + 1, sizeof *s->env);
            if (s->env == NULL)
                c->oom = 1;
            for (size_t i = 0; s->env != NULL && i < np; i++) {
                if (strchr(pairs[i].name, '=') != NULL)
                    cfg_error(c, f[S_ENV], "%s: '%.60s' must not contain '='", p, pairs[i].name);
                size_t len = strlen(pairs[i].name) + strlen(pairs[i].value) + 2;
                s->env[i] = malloc(len);
                if (s->env[i] == NULL) {
                    c->oom = 1;
                    break;
                }
                snprintf(s->env[i], len, "%s=%s", pairs[i].name, pairs[i].value);
                s->nenv = i + 1;
            }
        }
        for (size_t i = 0; i < np; i++) {
            free(pairs[i].name);
            free(pairs[i].value);
        }
        free(pairs);
    }
    if (f[S_CWD] != NULL) {
        cfg_path(p, sizeof p, path, "cwd");
        const char *d = cfg_str(c, f[S_CWD], p);
        if (f[S_COMMAND] == NULL && f[S_URL] != NULL)
            cfg_error(c, f[S_CWD], "%s: only for command servers", p);
        else if (d != NULL && d[0] == '\0')
            cfg_error(c, f[S_CWD], "%s: must not be empty", p);
        else if (d != NULL)
            s->cwd = cfg_resolve_path(c, d);
    } else if (f[S_COMMAND] != NULL && c->dir != NULL) {
        s->cwd =
            cfg_xstrdup(c, c->dir); /* relative paths in command: read from the config's folder */
    }
    if (f[S_TOOLS] != NULL)
        build_tools(c, f[S_TOOLS], cfg_path(p, sizeof p, path, "tools"), s);
    if (f[S_TRUST] != NULL) {
        const char *t = cfg_str(c, f[S_TRUST], cfg_path(p, sizeof p, path, "trust"));
        if (t != NULL && strcmp(t, "untrusted") == 0)
            s->untrusted = 1;
        else if (t != NULL && strcmp(t, "trusted") != 0)
            cfg_error(c, f[S_TRUST], "%s: expected trusted or untrusted, got '%.60s'", p, t);
    }
    if (f[S_RATE_LIMIT] != NULL)
        cfg_build_mcp_rate_limit(c, f[S_RATE_LIMIT], cfg_path(p, sizeof p, path, "rate_limit"),
                                 &s->calls_per_minute);
    if (f[S_BREAKER] != NULL)
        cfg_build_breaker(c, f[S_BREAKER], cfg_path(p, sizeof p, path, "breaker"), &s->breaker);
    if (f[S_GUARD] != NULL) {
        /* what the guard does with this server's tool outputs (guard: section's action
         * otherwise); needs the guard: section for the rule pack (checked there) */
        const char *g = cfg_str(c, f[S_GUARD], cfg_path(p, sizeof p, path, "guard"));
        if (g == NULL)
            ;
        else if (strcmp(g, "off") == 0)
            s->guard_action = -1;
        else if (strcmp(g, "flag") == 0)
            s->guard_action = CONFIG_GUARD_FLAG;
        else if (strcmp(g, "sanitize") == 0)
            s->guard_action = CONFIG_GUARD_SANITIZE;
        else if (strcmp(g, "block") == 0)
            s->guard_action = CONFIG_GUARD_BLOCK;
        else
            cfg_error(c, f[S_GUARD], "%s: expected block, sanitize, flag or off, got '%.60s'", p,
                      g);
    }
}

enum {
    M_PATH,
    M_SEPARATOR,
    M_SESSION_IDLE,
    M_ALLOWED_HOSTS,
    M_ALLOWED_ORIGINS,
    M_SERVERS,
    M_COUNT
};

void cfg_build_mcp(struct cfg_ctx *c, yaml_node_t *n)
{
    static const char *const keys[M_COUNT] = {"path",          "separator",       "session_idle",
                                              "allowed_hosts", "allowed_origins", "servers"};
    yaml_node_t *f[M_COUNT];
    char p[64];
    struct config_mcp *m = &c->cfg->mcp;
    if (cfg_map(c, n, "mcp", keys, M_COUNT, f) < 0)
        return;
    m->present = 1;
    if (f[M_PATH] != NULL && cfg_strdup(c, f[M_PATH], "mcp.path", &m->path) == 0) {
        if (m->path[0] != '/' || strchr(m->path, '?') != NULL || strchr(m->path, ' ') != NULL)
            cfg_error(c, f[M_PATH], "mcp.path: expected a path like /mcp, got '%.100s'", m->path);
        else if (strncmp(m->path, "/v1/", 4) == 0 || strcmp(m->path, "/metrics") == 0 ||
                 strcmp(m->path, "/healthz") == 0 || strcmp(m->path, "/oauth/token") == 0)
            cfg_error(c, f[M_PATH], "mcp.path: '%.100s' is taken by another route", m->path);
    }
    if (f[M_SEPARATOR] != NULL &&
        cfg_strdup(c, f[M_SEPARATOR], "mcp.separator", &m->separator) == 0) {
        size_t len = strlen(m->separator);
        int ok = len > 0 && len <= 8;
        for (size_t i = 0; ok && i < len; i++)
            ok = isgraph((unsigned char)m->separator[i]) && m->separator[i] != '"';
        if (!ok)
            cfg_error(c, f[M_SEPARATOR],
                      "mcp.separator: expected 1-8 printable characters, got '%.60s'",
                      m->separator);
    }
    if (f[M_SESSION_IDLE] != NULL)
        cfg_duration(c, f[M_SESSION_IDLE], "mcp.session_idle", 1000, &m->session_idle_ms);
    if (f[M_ALLOWED_HOSTS] != NULL)
        read_list(c, f[M_ALLOWED_HOSTS], "mcp.allowed_hosts", 0, &m->allowed_hosts,
                  &m->nallowed_hosts);
    if (f[M_ALLOWED_ORIGINS] != NULL)
        read_list(c, f[M_ALLOWED_ORIGINS], "mcp.allowed_origins", 0, &m->allowed_origins,
                  &m->nallowed_origins);
    if (f[M_SERVERS] == NULL || cfg_is_null(f[M_SERVERS]))
        return;
    long len = cfg_seq(c, f[M_SERVERS], "mcp.servers");
    if (len > MAX_MCP_SERVERS) {
        cfg_error(c, f[M_SERVERS], "mcp.servers: more than %d servers", MAX_MCP_SERVERS);
        return;
    }
    if (len <= 0)
        return;
    m->servers = calloc((size_t)len, sizeof *m->servers);
    if (m->servers == NULL) {
        c->oom = 1;
        return;
    }
    for (long i = 0; i < len && !c->stop; i++) {
        yaml_node_t *item = cfg_seq_item(c, f[M_SERVERS], i);
        if (item == NULL)
            continue;
        struct config_mcp_server *s = &m->servers[m->nservers++];
        build_server(c, item, cfg_path_index(p, sizeof p, "mcp.servers", i), s);
        if (s->name == NULL)
            continue;
        for (size_t j = 0; j + 1 < m->nservers; j++)
            if (m->servers[j].name != NULL && strcmp(m->servers[j].name, s->name) == 0)
                cfg_error(c, item, "%s: server name '%.60s' is already used on line %u", p, s->name,
                          m->servers[j].line);
        if (m->separator != NULL && m->separator[0] != '\0' &&
            strstr(s->name, m->separator) != NULL)
            cfg_error(c, item, "%s: server name '%.60s' contains the separator '%s'", p, s->name,
                      m->separator);
    }
}

const struct config_mcp_server *config_find_mcp_server(const struct config *c, const char *name)
{
    for (size_t i = 0; c != NULL && name != NULL && i < c->mcp.nservers; i++)
        if (c->mcp.servers[i].name != NULL && strcmp(c->mcp.servers[i].name, name) == 0)
            return &c->mcp.servers[i];
    return NULL;
}

void cfg_free_mcp(struct config *cfg)
{
    struct config_mcp *m = &cfg->mcp;
    free(m->path);
    free(m->separator);
    free_strings(m->allowed_hosts, m->nallowed_hosts);
    free_strings(m->allowed_origins, m->nallowed_origins);
    for (size_t i = 0; i < m->nservers; i++) {
        struct config_mcp_server *s = &m->servers[i];
        free(s->name);
        free(s->url);
        for (size_t j = 0; j < s->nheaders; j++) {
            free(s->headers[j].name);
            free(s->headers[j].value);
        }
        free(s->headers);
        free(s->identity_header);
        free_strings(s->argv, s->argc);
        free_strings(s->env, s->nenv);
        free(s->cwd);
        for (size_t j = 0; j < s->ntools; j++)
            free_strings(s->tools[j].labels, s->tools[j].nlabels);
        for (size_t j = 0; j < s->ntools; j++)
            free(s->tools[j].name);
        free(s->tools);
    }
    free(m->servers);
}
