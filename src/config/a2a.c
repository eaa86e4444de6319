// SPDX-License-Identifier: Apache-2.0
// a2a: section. The A2A agents the gateway fronts: each is reached by clients
// at /a2a/<name> (JSON-RPC) and /a2a/<name>/.well-known/agent-card.json, and
// forwarded to its url with a gateway-signed identity token.
#include "config/loader.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_A2A_AGENTS 256
#define MAX_A2A_HEADERS 64

static int name_ok(const char *s)
{
    if (s[0] == '\0' || strlen(s) > 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return 0;
    return 1;
}

static int header_name_ok(const char *s)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    if (s[0] == '\0' || strlen(s) > 128)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr(tchar, *p) == NULL)
            return 0;
    return 1;
}

static int header_value_ok(const char *s)
{
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < ' ' && *p != '\t')
            return 0;
    return 1;
}

static int http_url(const char *s)
{
    return (strncmp(s, "http://", 7) == 0 && s[7] != '\0' && s[7] != '/') ||
           (strncmp(s, "https://", 8) == 0 && s[8] != '\0' && s[8] != '/');
}

static int blank_free(const char *s)
{
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 127)
            return 0;
    return 1;
}

/* headers: {Name: value}. */
static void read_headers(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                         struct config_a2a_agent *a)
{
    char p[200];
    if (cfg_is_null(n))
        return;
    if (n->type != YAML_MAPPING_NODE) {
        cfg_error(c, n, "%s: expected a mapping like {X-Api-Key: value}", path);
        return;
    }
    size_t len = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (len > MAX_A2A_HEADERS) {
        cfg_error(c, n, "%s: more than %d headers", path, MAX_A2A_HEADERS);
        return;
    }
    a->headers = calloc(len + 1, sizeof *a->headers);
    if (a->headers == NULL) {
        c->oom = 1;
        return;
    }
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = cfg_node(c, pr->key), *vn = cfg_node(c, pr->value);
        const char *key = kn ? cfg_str(c, kn, path) : NULL;
        if (key == NULL || vn == NULL)
            continue;
        if (!header_name_ok(key)) {
            cfg_error(c, kn, "%s: '%.60s' is not a header name", path, key);
            continue;
        }
        const char *val = cfg_str(c, vn, cfg_path(p, sizeof p, path, key));
        if (val == NULL)
            continue;
        if (!header_value_ok(val)) {
            /* never echo the value: it may be a secret */
            cfg_error(c, vn, "%s: the value must not contain control characters", p);
            continue;
        }
        for (size_t j = 0; j < a->nheaders; j++)
            if (strcasecmp(a->headers[j].name, key) == 0)
                cfg_error(c, kn, "%s: '%.60s' is given twice", path, key);
        a->headers[a->nheaders].name = cfg_xstrdup(c, key);
        a->headers[a->nheaders].value = cfg_xstrdup(c, val);
        a->nheaders++;
    }
}

enum { A_NAME, A_URL, A_CARD_URL, A_HEADERS, A_IDENTITY_HEADER, A_TRUST, A_TIMEOUT, A_COUNT };

static void build_agent(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                        struct config_a2a_agent *a)
{
    static const char *const keys[A_COUNT] = {
        "name", "url", "card_url", "headers", "identity_header", "trust", "timeout"};
    yaml_node_t *f[A_COUNT];
    char p[200];
    a->line = (unsigned)n->start_mark.line + 1;
    a->timeout_ms = 5 * 60 * 1000;
    if (n->type != YAML_MAPPING_NODE) {
        cfg_error(c, n, "%s: expected a mapping with name and url", path);
        return;
    }
    if (cfg_map(c, n, path, keys, A_COUNT, f) < 0)
        return;
    if (f[A_NAME] == NULL)
        cfg_error(c, n, "%s: missing name", path);
    else if (cfg_strdup(c, f[A_NAME], cfg_path(p, sizeof p, path, "name"), &a->name) == 0 &&
             !name_ok(a->name))
        cfg_error(c, f[A_NAME], "%s.name: '%.60s' must be 1-64 letters, digits, '-', '_' or '.'",
                  path, a->name);
    if (f[A_URL] == NULL)
        cfg_error(c, n, "%s: missing url (the agent's JSON-RPC endpoint)", path);
    else if (cfg_strdup(c, f[A_URL], cfg_path(p, sizeof p, path, "url"), &a->url) == 0 &&
             (!http_url(a->url) || !blank_free(a->url)))
        cfg_error(c, f[A_URL], "%s.url: expected an http:// or https:// URL, got '%.100s'", path,
                  a->url);
    if (f[A_CARD_URL] != NULL &&
        cfg_strdup(c, f[A_CARD_URL], cfg_path(p, sizeof p, path, "card_url"), &a->card_url) == 0 &&
        (!http_url(a->card_url) || !blank_free(a->card_url)))
        cfg_error(c, f[A_CARD_URL],
                  "%s.card_url: expected an http:// or https:// URL, got '%.100s'", path,
                  a->card_url);
    if (a->card_url == NULL && a->url != NULL && http_url(a->url)) {
        /* the well-known path at the url's origin */
        const char *host = strstr(a->url, "://") + 3;
        size_t origin = (size_t)(host - a->url) + strcspn(host, "/?#");
        static const char wk[] = "/.well-known/agent-card.json";
        a->card_url = malloc(origin + sizeof wk);
        if (a->card_url == NULL) {
            c->oom = 1;
        } else {
            memcpy(a->card_url, a->url, origin);
            memcpy(a->card_url + origin, wk, sizeof wk);
        }
    }
    if (f[A_HEADERS] != NULL)
        read_headers(c, f[A_HEADERS], cfg_path(p, sizeof p, path, "headers"), a);
    if (f[A_IDENTITY_HEADER] != NULL) {
        cfg_path(p, sizeof p, path, "identity_header");
        if (cfg_strdup(c, f[A_IDENTITY_HEADER], p, &a->identity_header) == 0 &&
            !header_name_ok(a->identity_header))
            cfg_error(c, f[A_IDENTITY_HEADER], "%s: '%.60s' is not a header name", p,
                      a->identity_header);
    } else {
        a->identity_header = cfg_xstrdup(c, "Authorization");
    }
    for (size_t i = 0; a->identity_header != NULL && i < a->nheaders; i++)
        if (strcasecmp(a->headers[i].name, a->identity_header) == 0)
            cfg_error(c, f[A_HEADERS],
                      "%s.headers: '%.60s' would be overwritten by the identity token; set "
                      "identity_header to another header name",
                      path, a->headers[i].name);
    if (f[A_TRUST] != NULL) {
        const char *t = cfg_str(c, f[A_TRUST], cfg_path(p, sizeof p, path, "trust"));
        if (t != NULL && strcmp(t, "untrusted") == 0)
            a->untrusted = 1;
        else if (t != NULL && strcmp(t, "trusted") != 0)
            cfg_error(c, f[A_TRUST], "%s: expected trusted or untrusted, got '%.60s'", p, t);
    }
    if (f[A_TIMEOUT] != NULL)
        cfg_duration(c, f[A_TIMEOUT], cfg_path(p, sizeof p, path, "timeout"), 1, &a->timeout_ms);
}

enum { K_AGENTS, K_PUBLIC_URL, K_CARD_TTL, K_COUNT };

void cfg_build_a2a(struct cfg_ctx *c, yaml_node_t *n)
{
    static const char *const keys[K_COUNT] = {"agents", "public_url", "card_ttl"};
    yaml_node_t *f[K_COUNT];
    char p[64];
    struct config_a2a *m = &c->cfg->a2a;
    m->card_ttl_ms = 60000;
    if (cfg_map(c, n, "a2a", keys, K_COUNT, f) < 0)
        return;
    m->present = 1;
    if (f[K_PUBLIC_URL] != NULL &&
        cfg_strdup(c, f[K_PUBLIC_URL], "a2a.public_url", &m->public_url) == 0) {
        size_t len = strlen(m->public_url);
        while (len > 0 && m->public_url[len - 1] == '/')
            m->public_url[--len] = '\0';
        if (!http_url(m->public_url) || !blank_free(m->public_url) ||
            strpbrk(m->public_url, "?#\"") != NULL)
            cfg_error(c, f[K_PUBLIC_URL],
                      "a2a.public_url: expected a base URL like https://gateway.example, got "
                      "'%.100s'",
                      m->public_url);
    }
    if (f[K_CARD_TTL] != NULL)
        cfg_duration(c, f[K_CARD_TTL], "a2a.card_ttl", 0, &m->card_ttl_ms);
    if (f[K_AGENTS] == NULL || cfg_is_null(f[K_AGENTS]))
        return;
    long len = cfg_seq(c, f[K_AGENTS], "a2a.agents");
    if (len > MAX_A2A_AGENTS) {
        cfg_error(c, f[K_AGENTS], "a2a.agents: more than %d agents", MAX_A2A_AGENTS);
        return;
    }
    if (len <= 0)
        return;
    m->agents = calloc((size_t)len, sizeof *m->agents);
    if (m->agents == NULL) {
        c->oom = 1;
        return;
    }
    for (long i = 0; i < len && !c->stop; i++) {
        yaml_node_t *item = cfg_seq_item(c, f[K_AGENTS], i);
        if (item == NULL)
            continue;
        struct config_a2a_agent *a = &m->agents[m->nagents++];
        build_agent(c, item, cfg_path_index(p, sizeof p, "a2a.agents", i), a);
        if (a->name == NULL)
            continue;
        for (size_t j = 0; j + 1 < m->nagents; j++)
            if (m->agents[j].name != NULL && strcmp(m->agents[j].name, a->name) == 0)
                cfg_error(c, item, "%s: agent name '%.60s' is already used on line %u", p, a->name,
                          m->agents[j].line);
    }
}

const struct config_a2a_agent *config_find_a2a_agent(const struct config *c, const char *name)
{
    for (size_t i = 0; c != NULL && name != NULL && i < c->a2a.nagents; i++)
        if (c->a2a.agents[i].name != NULL && strcmp(c->a2a.agents[i].name, name) == 0)
            return &c->a2a.agents[i];
    return NULL;
}

void cfg_free_a2a(struct config *cfg)
{
    struct config_a2a *m = &cfg->a2a;
    free(m->public_url);
    for (size_t i = 0; i < m->nagents; i++) {
        struct config_a2a_agent *a = &m->agents[i];
        free(a->name);
        free(a->url);
        free(a->card_url);
        for (size_t j = 0; j < a->nheaders; j++) {
            free(a->headers[j].name);
            free(a->headers[j].value);
        }
        free(a->headers);
        free(a->identity_header);
    }
    free(m->agents);
}
