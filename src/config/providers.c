// SPDX-License-Identifier: Apache-2.0
// providers: and models: sections. Providers are built first so that model
// targets can point into the final providers array; names are checked for
// duplicates through a sorted index (no quadratic scans on big configs).
#include "config/loader.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

enum {
    P_NAME,
    P_KIND,
    P_BASE_URL,
    P_API_KEY_ENV,
    P_TIMEOUT,
    P_CONNECT_TIMEOUT,
    P_ANTHROPIC_VERSION,
    P_MOCK,
    P_QUERY,
    P_AUTH_HEADER,
    P_BREAKER,
    P_COUNT
};
static const char *const provider_keys[P_COUNT] = {
    "name", "kind", "base_url", "api_key_env", "timeout", "connect_timeout", "anthropic_version",
    "mock", "query", "auth_header", "breaker",
};

enum { MK_LATENCY, MK_CHUNK_DELAY, MK_TOKENS, MK_FAILURE_RATE, MK_COUNT };
static const char *const mock_keys[MK_COUNT] = {"latency", "chunk_delay", "tokens", "failure_rate"};

enum { M_NAME, M_TARGETS, M_PRICE, M_COUNT };
static const char *const model_keys[M_COUNT] = {"name", "targets", "price"};

enum { T_PROVIDER, T_MODEL, T_WEIGHT, T_COUNT };
static const char *const target_keys[T_COUNT] = {"provider", "model", "weight"};

enum { PR_INPUT, PR_OUTPUT, PR_CACHED, PR_COUNT };
static const char *const price_keys[PR_COUNT] = {"input_per_mtok", "output_per_mtok",
                                                 "cached_input_per_mtok"};

#define MAX_WEIGHT 1000000
#define MAX_PRICE 1e9

/* A name with the line it was defined on, for duplicate detection. */
struct name_ix {
    const char *name;
    size_t index;
    unsigned line;
};

static int name_ix_cmp(const void *a, const void *b)
{
    const struct name_ix *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    if (r != 0)
        return r;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Sorts ix and reports every name after the first of a run as duplicate. */
static void report_duplicates(struct cfg_ctx *c, struct name_ix *ix, size_t n, const char *what)
{
    size_t first = 0;
    qsort(ix, n, sizeof *ix, name_ix_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(ix[first].name, ix[i].name) != 0) {
            first = i;
            continue;
        }
        cfg_error_at(c, ix[i].line, "%s[%zu].name: duplicate %s '%.60s' (first defined at line %u)",
                     what, ix[i].index, what[0] == 'p' ? "provider" : "model", ix[i].name,
                     ix[first].line);
    }
}

static int provider_name_ok(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return 0;
    return 1;
}

static int env_name_ok(const char *s)
{
    if (!isalpha((unsigned char)*s) && *s != '_')
        return 0;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

static void build_base_url(struct cfg_ctx *c, yaml_node_t *n, const char *path,
                           struct config_provider *p)
{
    const char *s = cfg_str(c, n, path);
    if (s == NULL)
        return;
    size_t skip = strncmp(s, "http://", 7) == 0 ? 7 : strncmp(s, "https://", 8) == 0 ? 8 : 0;
    if (skip == 0) {
        cfg_error(c, n, "%s: must start with http:// or https://, got '%.60s'", path, s);
        return;
    }
    for (const char *q = s; *q != '\0'; q++) {
        if ((unsigned char)*q <= ' ' || *q == 0x7f) {
            cfg_error(c, n, "%s: must not contain spaces or control characters", path);
            return;
        }
    }
    size_t len = strlen(s);
    while (len > skip && s[len - 1] == '/')
        len--;
    if (len == skip || s[skip] == '/') {
        cfg_error(c, n, "%s: missing host in '%.60s'", path, s);
        return;
    }
    free(p->base_url);
    p->base_url = strndup(s, len);
    if (p->base_url == NULL)
        c->oom = 1;
}

static void build_mock(struct cfg_ctx *c, yaml_node_t *n, const char *base, struct config_mock *m)
{
    yaml_node_t *found[MK_COUNT];
    char path[96];
    if (cfg_map(c, n, base, mock_keys, MK_COUNT, found) < 0)
        return;
    if (found[MK_LATENCY] != NULL)
        cfg_duration(c, found[MK_LATENCY], cfg_path(path, sizeof path, base, "latency"), 0,
                     &m->latency_ms);
    if (found[MK_CHUNK_DELAY] != NULL)
        cfg_duration(c, found[MK_CHUNK_DELAY], cfg_path(path, sizeof path, base, "chunk_delay"), 0,
                     &m->chunk_delay_ms);
    if (found[MK_TOKENS] != NULL)
        cfg_u32(c, found[MK_TOKENS], cfg_path(path, sizeof path, base, "tokens"), 0, &m->tokens);
    if (found[MK_FAILURE_RATE] != NULL)
        cfg_number(c, found[MK_FAILURE_RATE], cfg_path(path, sizeof path, base, "failure_rate"), 0,
                   1, &m->failure_rate);
}

static void build_provider(struct cfg_ctx *c, yaml_node_t *n, const char *base,
                           struct config_provider *p)
{
    yaml_node_t *f[P_COUNT];
    char path[96];

    p->enabled = 1;
    p->timeout_ms = 600000;
    p->connect_timeout_ms = 5000;
    p->mock.tokens = 16;
    p->anthropic_version = cfg_xstrdup(c, "2023-06-01");

    if (n == NULL || n->type != YAML_MAPPING_NODE) {
        cfg_error(c, n, "%s: expected a mapping like {name: x, kind: mock}", base);
        return;
    }
    if (cfg_map(c, n, base, provider_keys, P_COUNT, f) < 0)
        return;

    if (f[P_NAME] == NULL) {
        cfg_error(c, n, "%s: missing required key 'name'", base);
    } else if (cfg_strdup(c, f[P_NAME], cfg_path(path, sizeof path, base, "name"), &p->name) == 0 &&
               !provider_name_ok(p->name)) {
        cfg_error(c, f[P_NAME], "%s: must be letters, digits, '-', '_' or '.', got '%.60s'", path,
                  p->name);
    }

    if (f[P_KIND] == NULL) {
        cfg_error(c, n, "%s: missing required key 'kind' (openai, anthropic or mock)", base);
    } else {
        const char *k = cfg_str(c, f[P_KIND], cfg_path(path, sizeof path, base, "kind"));
        if (k != NULL && strcmp(k, "openai") == 0)
            p->kind = PROVIDER_OPENAI;
        else if (k != NULL && strcmp(k, "anthropic") == 0)
            p->kind = PROVIDER_ANTHROPIC;
        else if (k != NULL && strcmp(k, "mock") == 0)
            p->kind = PROVIDER_MOCK;
        else if (k != NULL)
            cfg_error(c, f[P_KIND], "%s: expected openai, anthropic or mock, got '%.60s'", path, k);
    }

    cfg_path(path, sizeof path, base, "base_url");
    if (p->kind == PROVIDER_MOCK && f[P_BASE_URL] != NULL)
        cfg_error(c, f[P_BASE_URL], "%s: not allowed for kind mock", path);
    else if (f[P_BASE_URL] != NULL)
        build_base_url(c, f[P_BASE_URL], path, p);
    else if (p->kind == PROVIDER_OPENAI || p->kind == PROVIDER_ANTHROPIC)
        cfg_error(c, n, "%s: missing required key 'base_url' for kind %s", base,
                  config_provider_kind_name(p->kind));

    if (f[P_API_KEY_ENV] != NULL &&
        cfg_strdup(c, f[P_API_KEY_ENV], cfg_path(path, sizeof path, base, "api_key_env"),
                   &p->api_key_env) == 0) {
        if (!env_name_ok(p->api_key_env)) {
            cfg_error(c, f[P_API_KEY_ENV],
                      "%s: expected an environment variable name like OPENAI_API_KEY, got "
                      "'%.60s'",
                      path, p->api_key_env);
        } else {
            const char *key = getenv(p->api_key_env);
            p->enabled = key != NULL && key[0] != '\0';
            if (p->enabled)
                p->api_key = cfg_xstrdup(c, key);
        }
    }

    if (f[P_TIMEOUT] != NULL)
        cfg_duration(c, f[P_TIMEOUT], cfg_path(path, sizeof path, base, "timeout"), 1,
                     &p->timeout_ms);
    if (f[P_CONNECT_TIMEOUT] != NULL)
        cfg_duration(c, f[P_CONNECT_TIMEOUT], cfg_path(path, sizeof path, base, "connect_timeout"),
                     1, &p->connect_timeout_ms);

    cfg_path(path, sizeof path, base, "anthropic_version");
    if (f[P_ANTHROPIC_VERSION] != NULL && p->kind != 0 && p->kind != PROVIDER_ANTHROPIC)
        cfg_error(c, f[P_ANTHROPIC_VERSION], "%s: only applies to kind anthropic", path);
    else if (f[P_ANTHROPIC_VERSION] != NULL &&
             cfg_strdup(c, f[P_ANTHROPIC_VERSION], path, &p->anthropic_version) == 0 &&
             p->anthropic_version[0] == '\0')
        cfg_error(c, f[P_ANTHROPIC_VERSION], "%s: must not be empty", path);

    cfg_path(path, sizeof path, base, "query");
    if (f[P_QUERY] != NULL && p->kind == PROVIDER_MOCK)
        cfg_error(c, f[P_QUERY], "%s: not allowed for kind mock", path);
    else if (f[P_QUERY] != NULL && cfg_strdup(c, f[P_QUERY], path, &p->query) == 0) {
        for (const char *q = p->query; *q; q++) {
            if ((unsigned char)*q <= ' ' || *q == 0x7f || *q == '#' || *q == '?') {
                cfg_error(c, f[P_QUERY],
                          "%s: expected a query string like api-version=2024-10-21 (no spaces, "
                          "'?' or '#')",
                          path);
                break;
            }
        }
    }

    cfg_path(path, sizeof path, base, "auth_header");
    if (f[P_AUTH_HEADER] != NULL && p->kind == PROVIDER_MOCK)
        cfg_error(c, f[P_AUTH_HEADER], "%s: not allowed for kind mock", path);
    else if (f[P_AUTH_HEADER] != NULL &&
             cfg_strdup(c, f[P_AUTH_HEADER], path, &p->auth_header) == 0) {
        int ok = p->auth_header[0] != '\0';
        for (const char *q = p->auth_header; *q; q++)
            if (!isalnum((unsigned char)*q) && *q != '-' && *q != '_')
                ok = 0;
        if (!ok)
            cfg_error(c, f[P_AUTH_HEADER], "%s: expected a header name like api-key", path);
    }

    if (f[P_BREAKER] != NULL && !cfg_is_null(f[P_BREAKER]))
        cfg_build_breaker(c, f[P_BREAKER], cfg_path(path, sizeof path, base, "breaker"),
                          &p->breaker);

    cfg_path(path, sizeof path, base, "mock");
    if (f[P_MOCK] != NULL && p->kind != 0 && p->kind != PROVIDER_MOCK)
        cfg_error(c, f[P_MOCK], "%s: only applies to kind mock", path);
    else if (f[P_MOCK] != NULL)
        build_mock(c, f[P_MOCK], path, &p->mock);
}

void cfg_build_providers(struct cfg_ctx *c, yaml_node_t *n)
{
    struct config *cfg = c->cfg;
    char base[48];
    long count = cfg_seq(c, n, "providers");
    if (count <= 0)
        return;
    if (count > c->visits_left) {
        cfg_error(c, n, "providers: too many entries (%ld)", count);
        return;
    }
    cfg->providers = calloc((size_t)count, sizeof *cfg->providers);
    struct name_ix *ix = calloc((size_t)count, sizeof *ix);
    if (cfg->providers == NULL || ix == NULL) {
        free(ix);
        c->oom = 1;
        return;
    }
    cfg->nproviders = (size_t)count;

    size_t nix = 0;
    for (long i = 0; i < count && !c->stop; i++) {
        yaml_node_t *item = cfg_seq_item(c, n, i);
        if (item == NULL)
            break;
        struct config_provider *p = &cfg->providers[i];
        build_provider(c, item, cfg_path_index(base, sizeof base, "providers", i), p);
        if (p->name != NULL)
            ix[nix++] = (struct name_ix){p->name, (size_t)i, (unsigned)item->start_mark.line + 1};
    }
    report_duplicates(c, ix, nix, "providers");
    c->provider_ix = ix; /* sorted by name now; freed with the context */
    c->nprovider_ix = nix;
}

static int name_ix_find(const void *key, const void *elem)
{
    return strcmp(key, ((const struct name_ix *)elem)->name);
}

/* Provider named `name` through the index cfg_build_providers left, or NULL. */
static struct config_provider *find_provider(struct cfg_ctx *c, const char *name)
{
    const struct name_ix *hit =
        c->provider_ix != NULL
            ? bsearch(name, c->provider_ix, c->nprovider_ix, sizeof(struct name_ix), name_ix_find)
            : NULL;
    return hit != NULL ? &c->cfg->providers[hit->index] : NULL;
}

static void unknown_provider(struct cfg_ctx *c, yaml_node_t *n, const char *path, const char *name)
{
    const char *cands[64];
    size_t nc = 0;
    struct config *cfg = c->cfg;
    for (size_t i = 0; i < cfg->nproviders && nc < 64; i++)
        if (cfg->providers[i].name != NULL)
            cands[nc++] = cfg->providers[i].name;
    const char *hint = cfg->nproviders <= 64 ? cfg_suggest(name, cands, nc) : NULL;
    cfg_error(c, n, "%s: unknown provider '%.60s'%s%s%s", path, name,
              hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
}

static void build_target(struct cfg_ctx *c, yaml_node_t *n, const char *base,
                         struct config_model *m, struct config_target *t)
{
    yaml_node_t *f[T_COUNT];
    char path[128];

    t->weight = 1;
    if (n != NULL && n->type == YAML_SCALAR_NODE && !cfg_is_null(n)) {
        /* Shorthand: "- openai" is {provider: openai}. */
        f[T_PROVIDER] = n;
        f[T_MODEL] = f[T_WEIGHT] = NULL;
        cfg_path(path, sizeof path, base, "provider");
    } else {
        if (n == NULL || n->type != YAML_MAPPING_NODE) {
            cfg_error(c, n, "%s: expected a provider name or {provider: NAME, model: ...}", base);
            return;
        }
        if (cfg_map(c, n, base, target_keys, T_COUNT, f) < 0)
            return;
        if (f[T_PROVIDER] == NULL) {
            cfg_error(c, n, "%s: missing required key 'provider'", base);
            return;
        }
        cfg_path(path, sizeof path, base, "provider");
    }

    const char *name = cfg_str(c, f[T_PROVIDER], path);
    if (name != NULL) {
        t->provider = find_provider(c, name);
        if (t->provider == NULL)
            unknown_provider(c, f[T_PROVIDER], path, name);
    }
    if (f[T_MODEL] != NULL) {
        cfg_path(path, sizeof path, base, "model");
        if (cfg_strdup(c, f[T_MODEL], path, &t->model) == 0 && t->model[0] == '\0')
            cfg_error(c, f[T_MODEL], "%s: must not be empty", path);
    } else if (m->name != NULL) {
        t->model = cfg_xstrdup(c, m->name);
    }
    if (f[T_WEIGHT] != NULL) {
        uint64_t w;
        if (cfg_uint(c, f[T_WEIGHT], cfg_path(path, sizeof path, base, "weight"), 0, MAX_WEIGHT,
                     &w) == 0)
            t->weight = (uint32_t)w;
    }
}

static void build_price(struct cfg_ctx *c, yaml_node_t *n, const char *base, struct config_model *m)
{
    yaml_node_t *f[PR_COUNT];
    char path[96];
    if (cfg_map(c, n, base, price_keys, PR_COUNT, f) < 0 || cfg_is_null(n))
        return;
    if (f[PR_INPUT] == NULL || f[PR_OUTPUT] == NULL) {
        cfg_error(c, n, "%s: input_per_mtok and output_per_mtok are both required", base);
        return;
    }
    int bad = 0;
    bad |= cfg_number(c, f[PR_INPUT], cfg_path(path, sizeof path, base, "input_per_mtok"), 0,
                      MAX_PRICE, &m->price.input_per_mtok);
    bad |= cfg_number(c, f[PR_OUTPUT], cfg_path(path, sizeof path, base, "output_per_mtok"), 0,
                      MAX_PRICE, &m->price.output_per_mtok);
    /* Unpriced cached input is charged as plain input: never undercharge. */
    m->price.cached_input_per_mtok = m->price.input_per_mtok;
    if (f[PR_CACHED] != NULL)
        bad |=
            cfg_number(c, f[PR_CACHED], cfg_path(path, sizeof path, base, "cached_input_per_mtok"),
                       0, MAX_PRICE, &m->price.cached_input_per_mtok);
    m->has_price = bad == 0;
}

static int model_name_ok(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return 0;
    return 1;
}

static void build_model(struct cfg_ctx *c, yaml_node_t *n, const char *base, struct config_model *m)
{
    yaml_node_t *f[M_COUNT];
    char path[64], tbase[96];

    if (n == NULL || n->type != YAML_MAPPING_NODE) {
        cfg_error(c, n, "%s: expected a mapping like {name: x, targets: [provider]}", base);
        return;
    }
    if (cfg_map(c, n, base, model_keys, M_COUNT, f) < 0)
        return;

    if (f[M_NAME] == NULL) {
        cfg_error(c, n, "%s: missing required key 'name'", base);
    } else if (cfg_strdup(c, f[M_NAME], cfg_path(path, sizeof path, base, "name"), &m->name) == 0 &&
               !model_name_ok(m->name)) {
        cfg_error(c, f[M_NAME], "%s: must be non-empty, without spaces or control characters",
                  path);
    }

    cfg_path(path, sizeof path, base, "targets");
    long count = f[M_TARGETS] != NULL ? cfg_seq(c, f[M_TARGETS], path) : 0;
    if (f[M_TARGETS] == NULL) {
        cfg_error(c, n, "%s: missing required key 'targets'", base);
    } else if (count == 0) {
        cfg_error(c, f[M_TARGETS], "%s: needs at least one target (a provider name)", path);
    } else if (count > 0 && count <= c->visits_left) {
        m->targets = calloc((size_t)count, sizeof *m->targets);
        if (m->targets == NULL) {
            c->oom = 1;
            return;
        }
        m->ntargets = (size_t)count;
        for (long i = 0; i < count && !c->stop; i++) {
            yaml_node_t *item = cfg_seq_item(c, f[M_TARGETS], i);
            build_target(c, item, cfg_path_index(tbase, sizeof tbase, path, i), m, &m->targets[i]);
        }
    }

    if (f[M_PRICE] != NULL)
        build_price(c, f[M_PRICE], cfg_path(path, sizeof path, base, "price"), m);
}

void cfg_build_models(struct cfg_ctx *c, yaml_node_t *n)
{
    struct config *cfg = c->cfg;
    char base[48];
    long count = cfg_seq(c, n, "models");
    if (count <= 0)
        return;
    if (count > c->visits_left) {
        cfg_error(c, n, "models: too many entries (%ld)", count);
        return;
    }
    cfg->models = calloc((size_t)count, sizeof *cfg->models);
    struct name_ix *ix = calloc((size_t)count, sizeof *ix);
    if (cfg->models == NULL || ix == NULL) {
        free(ix);
        c->oom = 1;
        return;
    }
    cfg->nmodels = (size_t)count;

    size_t nix = 0;
    for (long i = 0; i < count && !c->stop; i++) {
        yaml_node_t *item = cfg_seq_item(c, n, i);
        if (item == NULL)
            break;
        struct config_model *m = &cfg->models[i];
        build_model(c, item, cfg_path_index(base, sizeof base, "models", i), m);
        if (m->name != NULL)
            ix[nix++] = (struct name_ix){m->name, (size_t)i, (unsigned)item->start_mark.line + 1};
    }
    report_duplicates(c, ix, nix, "models");
    free(ix);
}
