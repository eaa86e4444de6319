// SPDX-License-Identifier: Apache-2.0
// Public face of the config module: read the file, parse it with libyaml,
// hand the document to the builders (load.c, providers.c), and own the
// snapshot's lifetime (reference counting, free) and the error list.
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "config/loader.h"

#define CONFIG_MAX_BYTES (4u * 1024 * 1024)

static void free_provider(struct config_provider *p)
{
    free(p->name);
    free(p->base_url);
    free(p->api_key_env);
    if (p->api_key != NULL) {
        /* A secret: do not leave it in freed memory. */
        explicit_bzero(p->api_key, strlen(p->api_key));
        free(p->api_key);
    }
    free(p->anthropic_version);
    free(p->query);
    free(p->auth_header);
}

static void free_model(struct config_model *m)
{
    free(m->name);
    for (size_t i = 0; i < m->ntargets; i++)
        free(m->targets[i].model);
    free(m->targets);
}

void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    free(cfg->listen.host);
    free(cfg->admin.host);
    free(cfg->state);
    free(cfg->state_redis);
    free(cfg->state_postgres);
    free(cfg->state_path);
    free(cfg->log_level);
    free(cfg->tls.cert_file);
    free(cfg->tls.key_file);
    cfg_free_breakers(cfg);
    for (size_t i = 0; i < cfg->nproviders; i++)
        free_provider(&cfg->providers[i]);
    free(cfg->providers);
    for (size_t i = 0; i < cfg->nmodels; i++)
        free_model(&cfg->models[i]);
    free(cfg->models);
    free(cfg->providers_by_name);
    free(cfg->models_by_name);
    cfg_free_identity(cfg);
    cfg_free_policy(cfg);
    cfg_free_guard(cfg);
    cfg_free_admin(cfg);
    cfg_free_mcp(cfg);
    cfg_free_a2a(cfg);
    free(cfg);
}

struct config *config_ref(struct config *c)
{
    if (c != NULL)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void config_unref(struct config *c)
{
    if (c != NULL && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        config_free(c);
}

void config_errors_print(const struct config_errors *errs, FILE *out)
{
    if (errs == NULL)
        return;
    for (size_t i = 0; i < errs->count; i++) {
        const struct config_error *e = &errs->items[i];
        if (e->col > 0)
            fprintf(out, "%s:%u:%u: %s\n", e->file, e->line, e->col, e->message);
        else
            fprintf(out, "%s:%u: %s\n", e->file, e->line, e->message);
    }
}

void config_errors_free(struct config_errors *errs)
{
    if (errs == NULL)
        return;
    for (size_t i = 0; i < errs->count; i++) {
        free(errs->items[i].file);
        free(errs->items[i].message);
    }
    free(errs->items);
    errs->items = NULL;
    errs->count = 0;
}

/* Both index element types start with `char *name`. */
static int by_name_cmp(const void *a, const void *b)
{
    return strcmp(**(char *const *const *)a, **(char *const *const *)b);
}

static int by_name_find(const void *key, const void *elem)
{
    return strcmp(key, **(char *const *const *)elem);
}

/* Sorted pointer indexes for the lookups; -1 when out of memory. */
static int build_indexes(struct config *cfg)
{
    if (cfg->nproviders > 0) {
        cfg->providers_by_name = malloc(cfg->nproviders * sizeof *cfg->providers_by_name);
        if (cfg->providers_by_name == NULL)
            return -1;
        for (size_t i = 0; i < cfg->nproviders; i++)
            cfg->providers_by_name[i] = &cfg->providers[i];
        qsort(cfg->providers_by_name, cfg->nproviders, sizeof *cfg->providers_by_name, by_name_cmp);
    }
    if (cfg->nmodels > 0) {
        cfg->models_by_name = malloc(cfg->nmodels * sizeof *cfg->models_by_name);
        if (cfg->models_by_name == NULL)
            return -1;
        for (size_t i = 0; i < cfg->nmodels; i++)
            cfg->models_by_name[i] = &cfg->models[i];
        qsort(cfg->models_by_name, cfg->nmodels, sizeof *cfg->models_by_name, by_name_cmp);
    }
    return 0;
}

const struct config_model *config_find_model(const struct config *c, const char *name)
{
    if (c == NULL || name == NULL)
        return NULL;
    if (c->models_by_name == NULL) {
        /* A snapshot assembled by hand (tests): no index, scan. */
        for (size_t i = 0; i < c->nmodels; i++)
            if (c->models[i].name != NULL && strcmp(c->models[i].name, name) == 0)
                return &c->models[i];
        return NULL;
    }
    struct config_model **hit =
        bsearch(name, c->models_by_name, c->nmodels, sizeof *c->models_by_name, by_name_find);
    return hit != NULL ? *hit : NULL;
}

const struct config_provider *config_find_provider(const struct config *c, const char *name)
{
    if (c == NULL || name == NULL)
        return NULL;
    if (c->providers_by_name == NULL) {
        for (size_t i = 0; i < c->nproviders; i++)
            if (c->providers[i].name != NULL && strcmp(c->providers[i].name, name) == 0)
                return &c->providers[i];
        return NULL;
    }
    struct config_provider **hit = bsearch(name, c->providers_by_name, c->nproviders,
                                           sizeof *c->providers_by_name, by_name_find);
    return hit != NULL ? *hit : NULL;
}

const char *config_provider_kind_name(enum provider_kind kind)
{
    switch (kind) {
    case PROVIDER_OPENAI:
        return "openai";
    case PROVIDER_ANTHROPIC:
        return "anthropic";
    case PROVIDER_MOCK:
        return "mock";
    }
    return "?";
}

/* Stable sort by line (insertion: there are at most CONFIG_MAX_ERRORS). */
static void sort_errors(struct config_errors *errs)
{
    for (size_t i = 1; i < errs->count; i++) {
        struct config_error e = errs->items[i];
        size_t j = i;
        while (j > 0 && errs->items[j - 1].line > e.line) {
            errs->items[j] = errs->items[j - 1];
            j--;
        }
        errs->items[j] = e;
    }
}

/* libyaml's own error, with the line it points at. */
static void syntax_error(struct cfg_ctx *c, const yaml_parser_t *parser, const char *yaml,
                         size_t len)
{
    unsigned line = (unsigned)parser->problem_mark.line + 1;
    const char *problem = parser->problem != NULL ? parser->problem : "unknown error";

    switch (parser->error) {
    case YAML_MEMORY_ERROR:
        c->oom = 1;
        return;
    case YAML_READER_ERROR:
        /* The reader reports a byte offset, not a mark. */
        line = 1;
        for (size_t i = 0; i < parser->problem_offset && i < len; i++)
            line += yaml[i] == '\n';
        cfg_error_at(c, line, "invalid YAML: %s", problem);
        return;
    default:
        break;
    }
    if (parser->context != NULL)
        cfg_error_at(c, line, "invalid YAML: %s (%s at line %u)", problem, parser->context,
                     (unsigned)parser->context_mark.line + 1);
    else
        cfg_error_at(c, line, "invalid YAML: %s", problem);
}

/* Streams the events once before loading: reports syntax errors, and refuses
 * deep nesting before libyaml's scanner (quadratic in the flow depth) and the
 * document loader spend time and memory on it. */
static int check_events(struct cfg_ctx *c, const char *yaml, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    int depth = 0, rc = 0;

    if (!yaml_parser_initialize(&parser)) {
        c->oom = 1;
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    for (;;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            syntax_error(c, &parser, yaml, len);
            rc = -1;
            break;
        }
        yaml_event_type_t type = ev.type;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
            if (++depth > CONFIG_MAX_DEPTH) {
                cfg_error_at(c, (unsigned)ev.start_mark.line + 1, "nested deeper than %d levels",
                             CONFIG_MAX_DEPTH);
                rc = -1;
            }
        } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        yaml_event_delete(&ev);
        if (rc < 0 || type == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* Parses the one document in yaml and builds c->cfg from it. */
static void parse_and_build(struct cfg_ctx *c, const char *yaml, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;

    if (check_events(c, yaml, len) < 0)
        return;
    if (!yaml_parser_initialize(&parser)) {
        c->oom = 1;
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(c, &parser, yaml, len);
        yaml_parser_delete(&parser);
        return;
    }
    c->doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        cfg_error_at(c, 0, "the configuration is empty");
    } else if (!yaml_parser_load(&parser, &extra)) {
        syntax_error(c, &parser, yaml, len);
    } else {
        yaml_node_t *second = yaml_document_get_root_node(&extra);
        if (second != NULL)
            cfg_error(c, second, "only one YAML document is allowed (found a second '---')");
        yaml_document_delete(&extra);
        cfg_build(c, root);
    }
    c->doc = NULL;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

struct config *config_load_string(const char *name, const char *yaml, size_t len,
                                  struct config_errors *errs)
{
    struct cfg_ctx ctx = {0};
    struct cfg_ctx *c = &ctx;

    if (errs != NULL) {
        errs->items = NULL;
        errs->count = 0;
    }
    c->file = name != NULL ? name : "<config>";
    c->errs = errs;
    c->visits_left = CONFIG_MAX_VISITS;

    const char *slash = strrchr(c->file, '/');
    if (slash != NULL) {
        c->dir = slash == c->file ? strdup("/") : strndup(c->file, (size_t)(slash - c->file));
        if (c->dir == NULL)
            c->oom = 1;
    }
    c->cfg = calloc(1, sizeof *c->cfg);
    if (c->cfg == NULL)
        c->oom = 1;

    if (c->oom) {
        /* nothing more to try */
    } else if (yaml == NULL) {
        cfg_error_at(c, 0, "no configuration given");
    } else if (len > CONFIG_MAX_BYTES) {
        cfg_error_at(c, 0, "the configuration is larger than 4 MiB");
    } else {
        parse_and_build(c, yaml, len);
    }

    if (c->oom)
        cfg_error_at(c, 0, "out of memory while loading the configuration");
    if (errs != NULL)
        sort_errors(errs);
    if (c->nerrors > CONFIG_MAX_ERRORS && errs != NULL) {
        c->nerrors = 0; /* let this last one through */
        cfg_error_at(c, 0, "too many errors, stopped after %d", CONFIG_MAX_ERRORS);
    }

    free(c->provider_ix);
    free(c->dir);
    if (c->nerrors == 0 && !c->oom && build_indexes(c->cfg) < 0) {
        c->oom = 1;
        cfg_error_at(c, 0, "out of memory while loading the configuration");
    }
    if (c->nerrors > 0 || c->oom) {
        config_free(c->cfg);
        return NULL;
    }
    atomic_init(&c->cfg->refs, 1);
    return c->cfg;
}

struct config *config_load(const char *path, struct config_errors *errs)
{
    struct config_errors local;
    char *buf = NULL;
    size_t len = 0;
    int err = 0;
    struct stat st;

    if (errs == NULL)
        errs = &local;
    errs->items = NULL;
    errs->count = 0;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        err = errno;
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        err = EISDIR;
        goto fail;
    }
    /* Read up to one byte past the cap to detect files that are too big, even
     * when st_size is not meaningful (pipes, /proc). */
    buf = malloc(CONFIG_MAX_BYTES + 1);
    if (buf == NULL) {
        err = ENOMEM;
        goto fail;
    }
    while (len <= CONFIG_MAX_BYTES) {
        ssize_t r = read(fd, buf + len, CONFIG_MAX_BYTES + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = errno;
            goto fail;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    fd = -1;

    struct config *cfg = config_load_string(path, buf, len, errs);
    free(buf);
    if (errs == &local)
        config_errors_free(&local);
    return cfg;

fail:
    if (fd >= 0)
        close(fd);
    free(buf);
    {
        struct config_error *e = calloc(1, sizeof *e);
        char msg[256];
        snprintf(msg, sizeof msg, "cannot read: %s", strerror(err));
        if (e != NULL) {
            e->file = strdup(path);
            e->message = strdup(msg);
            if (e->file != NULL && e->message != NULL) {
                errs->items = e;
                errs->count = 1;
                e = NULL;
            }
        }
        if (e != NULL) {
            free(e->file);
            free(e->message);
            free(e);
        }
    }
    if (errs == &local)
        config_errors_free(&local);
    return NULL;
}
