// SPDX-License-Identifier: Apache-2.0
// Typed readers over libyaml document nodes for the config loader: mapping
// walks with unknown-key detection, scalars, numbers, sizes, durations, and
// the error collector that stamps each message with file and line.
#include "config/loader.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/values.h"

#define MERGE_MAX_DEPTH 8

static unsigned node_line(const yaml_node_t *n)
{
    return n != NULL ? (unsigned)n->start_mark.line + 1 : 0;
}

static void add_error(struct cfg_ctx *c, const char *file, unsigned line, unsigned col,
                      const char *fmt, va_list ap)
{
    c->nerrors++;
    if (c->errs == NULL || c->nerrors > CONFIG_MAX_ERRORS) {
        c->stop = c->nerrors > CONFIG_MAX_ERRORS;
        return;
    }
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    /* One error, one line: no control characters from user values. */
    for (char *p = buf; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';

    struct config_error *items =
        realloc(c->errs->items, (c->errs->count + 1) * sizeof(struct config_error));
    if (items == NULL) {
        c->oom = 1;
        return;
    }
    c->errs->items = items;
    struct config_error *e = &items[c->errs->count];
    e->file = strdup(file != NULL ? file : c->file);
    e->message = strdup(buf);
    e->line = line;
    e->col = col;
    if (e->file == NULL || e->message == NULL) {
        free(e->file);
        free(e->message);
        c->oom = 1;
        return;
    }
    c->errs->count++;
}

void cfg_error(struct cfg_ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error(c, NULL, node_line(n), 0, fmt, ap);
    va_end(ap);
}

void cfg_error_at(struct cfg_ctx *c, unsigned line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error(c, NULL, line, 0, fmt, ap);
    va_end(ap);
}

void cfg_error_file(struct cfg_ctx *c, const char *file, unsigned line, unsigned col,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error(c, file, line, col, fmt, ap);
    va_end(ap);
}

yaml_node_t *cfg_node(struct cfg_ctx *c, yaml_node_item_t id)
{
    return yaml_document_get_node(c->doc, id);
}

int cfg_is_null(const yaml_node_t *n)
{
    if (n == NULL)
        return 1;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)n->data.scalar.value;
    return strcmp(v, "") == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* "a list", "a mapping", "nothing", or the scalar itself quoted. */
static const char *describe(const yaml_node_t *n, char *buf, size_t len)
{
    if (cfg_is_null(n))
        return "nothing";
    switch (n->type) {
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SCALAR_NODE:
        snprintf(buf, len, "'%.60s'", (const char *)n->data.scalar.value);
        return buf;
    default:
        return "an empty node";
    }
}

static int spend(struct cfg_ctx *c)
{
    if (c->stop)
        return -1;
    if (--c->visits_left < 0) {
        cfg_error_at(c, 0, "configuration too large or too deeply aliased (over %ld nodes)",
                     CONFIG_MAX_VISITS);
        c->stop = 1;
        return -1;
    }
    return 0;
}

static int is_merge_key(const yaml_node_t *k)
{
    return k->type == YAML_SCALAR_NODE && k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           strcmp((const char *)k->data.scalar.value, "<<") == 0;
}

/* The mappings being merged, outermost first, to refuse cycles (an anchor
 * can be merged into itself) and to report a bad merge once. */
struct merge_chain {
    const yaml_node_t *maps[MERGE_MAX_DEPTH + 1];
    int failed;
};

static void map_merge(struct cfg_ctx *c, yaml_node_t *map, const char *path,
                      const char *const *keys, size_t nkeys, yaml_node_t **found, int depth,
                      struct merge_chain *chain);

/* One mapping's pairs into found[]; in a merge source (depth > 0) keys that
 * are already set keep their value, as YAML merge keys specify. */
static void map_pairs(struct cfg_ctx *c, yaml_node_t *map, const char *path,
                      const char *const *keys, size_t nkeys, yaml_node_t **found, int depth,
                      struct merge_chain *chain)
{
    char desc[80];
    yaml_node_pair_t *p;

    for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        if (spend(c) < 0)
            return;
        yaml_node_t *k = cfg_node(c, p->key);
        yaml_node_t *v = cfg_node(c, p->value);
        if (k == NULL || v == NULL)
            continue;
        if (k->type != YAML_SCALAR_NODE) {
            cfg_error(c, k, "%s%sexpected a string key, got %s", path, *path ? ": " : "",
                      describe(k, desc, sizeof desc));
            continue;
        }
        if (is_merge_key(k))
            continue; /* after the explicit keys, below */
        const char *name = (const char *)k->data.scalar.value;
        size_t i;
        for (i = 0; i < nkeys; i++)
            if (strcmp(name, keys[i]) == 0)
                break;
        if (i == nkeys) {
            if (*path == '\0' && strncmp(name, "x-", 2) == 0)
                continue; /* top-level extension field, e.g. a home for anchors */
            if (c->nerrors >= CONFIG_MAX_ERRORS) {
                cfg_error(c, k, "unknown key");
                continue;
            }
            const char *hint = cfg_suggest(name, keys, nkeys);
            if (*path == '\0')
                cfg_error(c, k, "unknown top-level key '%.60s'%s%s%s", name,
                          hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
            else
                cfg_error(c, k, "%s: unknown key '%.60s'%s%s%s", path, name,
                          hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
            continue;
        }
        if (found[i] != NULL) {
            if (depth == 0)
                cfg_error(c, k, "%s%sduplicate key '%s'", path, *path ? ": " : "", name);
            continue;
        }
        found[i] = v;
    }
    chain->maps[depth] = map;
    map_merge(c, map, path, keys, nkeys, found, depth, chain);
}

/* Merges one source mapping unless that would loop or nest too deep. */
static void merge_source(struct cfg_ctx *c, yaml_node_t *k, yaml_node_t *src, const char *path,
                         const char *const *keys, size_t nkeys, yaml_node_t **found, int depth,
                         struct merge_chain *chain)
{
    if (chain->failed)
        return;
    for (int i = 0; i <= depth; i++) {
        if (chain->maps[i] == src) {
            cfg_error(c, k, "%s%smerge key (<<) refers to a mapping that contains it", path,
                      *path ? ": " : "");
            chain->failed = 1;
            return;
        }
    }
    if (depth >= MERGE_MAX_DEPTH) {
        cfg_error(c, k, "%s%smerge keys (<<) nested too deep", path, *path ? ": " : "");
        chain->failed = 1;
        return;
    }
    map_pairs(c, src, path, keys, nkeys, found, depth + 1, chain);
}

static void map_merge(struct cfg_ctx *c, yaml_node_t *map, const char *path,
                      const char *const *keys, size_t nkeys, yaml_node_t **found, int depth,
                      struct merge_chain *chain)
{
    char desc[80];
    yaml_node_pair_t *p;

    for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = cfg_node(c, p->key);
        yaml_node_t *v = cfg_node(c, p->value);
        if (c->stop || k == NULL || v == NULL || !is_merge_key(k))
            continue;
        if (v->type == YAML_MAPPING_NODE) {
            merge_source(c, k, v, path, keys, nkeys, found, depth, chain);
            continue;
        }
        if (v->type == YAML_SEQUENCE_NODE) {
            yaml_node_item_t *it;
            for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
                yaml_node_t *src = cfg_node(c, *it);
                if (spend(c) < 0)
                    return;
                if (src != NULL && src->type == YAML_MAPPING_NODE) {
                    merge_source(c, k, src, path, keys, nkeys, found, depth, chain);
                } else {
                    cfg_error(c, src, "%s%smerge key (<<) expects mappings, got %s", path,
                              *path ? ": " : "", describe(src, desc, sizeof desc));
                }
            }
            continue;
        }
        cfg_error(c, v, "%s%smerge key (<<) expects a mapping, got %s", path, *path ? ": " : "",
                  describe(v, desc, sizeof desc));
    }
}

int cfg_map(struct cfg_ctx *c, yaml_node_t *map, const char *path, const char *const *keys,
            size_t nkeys, yaml_node_t **found)
{
    char desc[80];
    for (size_t i = 0; i < nkeys; i++)
        found[i] = NULL;
    if (cfg_is_null(map))
        return 0;
    if (map->type != YAML_MAPPING_NODE) {
        cfg_error(c, map, "%s%sexpected a mapping, got %s", path, *path ? ": " : "",
                  describe(map, desc, sizeof desc));
        return -1;
    }
    struct merge_chain chain = {.failed = 0};
    map_pairs(c, map, path, keys, nkeys, found, 0, &chain);
    return 0;
}

long cfg_seq(struct cfg_ctx *c, yaml_node_t *n, const char *path)
{
    char desc[80];
    if (cfg_is_null(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE) {
        cfg_error(c, n, "%s: expected a list, got %s", path, describe(n, desc, sizeof desc));
        return -1;
    }
    return (long)(n->data.sequence.items.top - n->data.sequence.items.start);
}

yaml_node_t *cfg_seq_item(struct cfg_ctx *c, yaml_node_t *seq, long i)
{
    if (spend(c) < 0)
        return NULL;
    return cfg_node(c, seq->data.sequence.items.start[i]);
}

const char *cfg_str(struct cfg_ctx *c, yaml_node_t *n, const char *path)
{
    char desc[80];
    if (cfg_is_null(n)) {
        cfg_error(c, n, "%s: missing value", path);
        return NULL;
    }
    if (n->type != YAML_SCALAR_NODE) {
        cfg_error(c, n, "%s: expected a single value, got %s", path,
                  describe(n, desc, sizeof desc));
        return NULL;
    }
    const char *s = (const char *)n->data.scalar.value;
    if (strlen(s) != n->data.scalar.length) {
        cfg_error(c, n, "%s: contains a NUL character", path);
        return NULL;
    }
    return s;
}

char *cfg_xstrdup(struct cfg_ctx *c, const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        c->oom = 1;
    return d;
}

int cfg_strdup(struct cfg_ctx *c, yaml_node_t *n, const char *path, char **out)
{
    const char *s = cfg_str(c, n, path);
    if (s == NULL)
        return -1;
    char *d = cfg_xstrdup(c, s);
    if (d == NULL)
        return -1;
    free(*out);
    *out = d;
    return 0;
}

typedef int (*scalar_parser)(const char *s, uint64_t max, uint64_t *out, char *why, size_t whylen);

/* Reads a scalar with `parse`, then checks it against min; the error names
 * min in the value's own unit ("" for counts, " bytes", "ms"). */
static int cfg_bounded(struct cfg_ctx *c, yaml_node_t *n, const char *path, scalar_parser parse,
                       uint64_t min, uint64_t max, const char *unit, uint64_t *out)
{
    char why[160];
    uint64_t v;
    const char *s = cfg_str(c, n, path);
    if (s == NULL)
        return -1;
    if (parse(s, max, &v, why, sizeof why) < 0) {
        cfg_error(c, n, "%s: %s", path, why);
        return -1;
    }
    if (v < min) {
        cfg_error(c, n, "%s: must be at least %llu%s", path, (unsigned long long)min, unit);
        return -1;
    }
    *out = v;
    return 0;
}

int cfg_uint(struct cfg_ctx *c, yaml_node_t *n, const char *path, uint64_t min, uint64_t max,
             uint64_t *out)
{
    return cfg_bounded(c, n, path, config_parse_uint, min, max, "", out);
}

int cfg_u32(struct cfg_ctx *c, yaml_node_t *n, const char *path, uint32_t min, uint32_t *out)
{
    uint64_t v;
    if (cfg_uint(c, n, path, min, UINT32_MAX, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int cfg_size(struct cfg_ctx *c, yaml_node_t *n, const char *path, uint64_t min, uint64_t max,
             uint64_t *out)
{
    return cfg_bounded(c, n, path, config_parse_size, min, max, " bytes", out);
}

int cfg_duration(struct cfg_ctx *c, yaml_node_t *n, const char *path, uint32_t min, uint32_t *out)
{
    uint64_t v;
    if (cfg_bounded(c, n, path, config_parse_duration_ms, min, UINT32_MAX, "ms", &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int cfg_number(struct cfg_ctx *c, yaml_node_t *n, const char *path, double min, double max,
               double *out)
{
    char why[160];
    double v;
    const char *s = cfg_str(c, n, path);
    if (s == NULL)
        return -1;
    if (config_parse_number(s, &v, why, sizeof why) < 0) {
        cfg_error(c, n, "%s: %s", path, why);
        return -1;
    }
    if (v < min || v > max) {
        cfg_error(c, n, "%s: must be between %g and %g, got %.60s", path, min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

const char *cfg_path(char *buf, size_t len, const char *base, const char *key)
{
    int r = *base ? snprintf(buf, len, "%s.%s", base, key) : snprintf(buf, len, "%s", key);
    if (r < 0 && len > 0)
        buf[0] = '\0';
    return buf;
}

const char *cfg_path_index(char *buf, size_t len, const char *base, long i)
{
    int r = snprintf(buf, len, "%s[%ld]", base, i);
    if (r < 0 && len > 0)
        buf[0] = '\0';
    return buf;
}

/* Levenshtein distance, both strings at most 64 bytes. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *cfg_suggest(const char *word, const char *const *cands, size_t n)
{
    size_t lw = strlen(word);
    const char *best = NULL;
    size_t bestd = 3; /* suggest only within 2 edits */
    if (lw == 0 || lw > 64)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (cands[i] == NULL || strlen(cands[i]) > 64)
            continue;
        size_t d = distance(word, cands[i]);
        if (d < bestd && d < strlen(cands[i])) {
            bestd = d;
            best = cands[i];
        }
    }
    return best;
}
