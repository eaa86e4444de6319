// SPDX-License-Identifier: Apache-2.0
// Conformance runner for Cedar integration-test JSON files: every request's
// decision, reason set and error set must match. Folders are walked; a
// .tar.gz met on the way is unpacked into a temporary folder and run too.
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "policy/internal.h"

extern char **environ;

struct pathlist {
    char **v;
    size_t n, cap;
};

static int pathlist_add(struct pathlist *l, const char *path)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(path)))
        return -1;
    l->n++;
    return 0;
}

static void pathlist_free(struct pathlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Test files under dir (recursively), and archives to unpack. */
static int walk(const char *dir, struct pathlist *tests, struct pathlist *archives)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path))
            continue;
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc = walk(path, tests, archives);
        else if (ends_with(path, ".tar.gz"))
            rc = pathlist_add(archives, path);
        else if (ends_with(path, ".json") && !ends_with(path, "entities.json"))
            rc = pathlist_add(tests, path);
    }
    closedir(d);
    return rc;
}

static int run_tar(const char *archive, const char *into)
{
    char *argv[] = {"tar", "xzf", (char *)archive, "-C", (char *)into, NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "tar", NULL, NULL, argv, environ) != 0)
        return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Resolves a path from a test file: relative to the first ancestor folder
 * of the test under which it exists. */
static int resolve(const char *test, const char *rel, char *out, size_t cap)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s", test) >= (int)sizeof(dir))
        return -1;
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash)
            break;
        *slash = '\0';
        if (snprintf(out, cap, "%s/%s", dir[0] ? dir : "", rel) >= (int)cap)
            continue;
        if (access(out, R_OK) == 0)
            return 0;
    }
    snprintf(out, cap, "%s", rel);
    return access(out, R_OK) == 0 ? 0 : -1;
}

static int json_uid(const struct pjnode *j, struct policy_uid *u)
{
    const struct pjnode *inner = pj_get(j, "__entity");
    if (inner)
        j = inner;
    const struct pjnode *t = pj_get(j, "type"), *i = pj_get(j, "id");
    if (!t || t->type != PJ_STRING || !i || i->type != PJ_STRING)
        return -1;
    u->type = t->s.s;
    u->type_len = t->s.len;
    u->id = i->s.s;
    u->id_len = i->s.len;
    return 0;
}

static const char *jstr(const struct pjnode *j)
{
    return j && j->type == PJ_STRING ? j->s.s : NULL;
}

/* Expected ids (a JSON array of strings) equal the got ids, as sets. */
static bool same_ids(const struct pjnode *want, const char *const *got, size_t ngot)
{
    if (!want || want->type != PJ_ARRAY)
        return ngot == 0;
    for (size_t i = 0; i < want->n; i++) {
        const char *w = jstr(want->items[i]);
        bool found = false;
        for (size_t k = 0; w && k < ngot && !found; k++)
            found = strcmp(w, got[k]) == 0;
        if (!found)
            return false;
    }
    for (size_t k = 0; k < ngot; k++) {
        bool found = false;
        for (size_t i = 0; i < want->n && !found; i++) {
            const char *w = jstr(want->items[i]);
            found = w && strcmp(w, got[k]) == 0;
        }
        if (!found)
            return false;
    }
    return true;
}

static void print_ids(FILE *log, const struct pjnode *ids)
{
    for (uint32_t i = 0; ids && ids->type == PJ_ARRAY && i < ids->n; i++)
        fprintf(log, "%s%s", i ? "," : "", jstr(ids->items[i]) ? jstr(ids->items[i]) : "?");
}

static void log_failure(FILE *log, const char *test, size_t i, const struct pjnode *req,
                        const struct policy_decision *d)
{
    if (!log)
        return;
    fprintf(log, "FAIL %s request %zu: got %s [", test, i, d->allow ? "allow" : "deny");
    for (size_t k = 0; k < d->nreasons; k++)
        fprintf(log, "%s%s", k ? "," : "", d->reasons[k]);
    fprintf(log, "] errors [");
    for (size_t k = 0; k < d->nerrors; k++)
        fprintf(log, "%s%s (%s)", k ? ", " : "",
                d->errors[k].policy_id ? d->errors[k].policy_id : "request", d->errors[k].message);
    const char *dec = jstr(pj_get(req, "decision"));
    fprintf(log, "]\n  expected %s [", dec ? dec : "?");
    print_ids(log, pj_get(req, "reason"));
    fprintf(log, "] errors [");
    print_ids(log, pj_get(req, "errors"));
    fprintf(log, "]\n");
}

/* A portcullis extension of the test format (the reference's tests have no
 * templates): "links": [{"template": ID, "id": NEW_ID, "values":
 * {"?principal": UID, "?resource": UID}}], applied in order. */
static int apply_links(policy_set_t *set, const struct pjnode *links, char *err, size_t err_len)
{
    if (!links)
        return 0;
    if (links->type != PJ_ARRAY) {
        snprintf(err, err_len, "expected an array");
        return -1;
    }
    for (uint32_t i = 0; i < links->n; i++) {
        const struct pjnode *l = links->items[i], *values = pj_get(l, "values");
        const char *tmpl = jstr(pj_get(l, "template")), *id = jstr(pj_get(l, "id"));
        const struct pjnode *pv = pj_get(values, "?principal"), *rv = pj_get(values, "?resource");
        struct policy_uid pu, ru;
        if (!tmpl || !id || (pv && json_uid(pv, &pu)) || (rv && json_uid(rv, &ru))) {
            snprintf(err, err_len, "link %u: expected template, id and values", i);
            return -1;
        }
        if (policy_set_link(set, tmpl, id, pv ? &pu : NULL, rv ? &ru : NULL, err, err_len))
            return -1;
    }
    return 0;
}

/* Runs one test file; returns -1 when it could not be run at all. */
static int run_test(const char *path, FILE *log, struct policy_corpus_result *res)
{
    char file[PATH_MAX], err[1024];
    buf_t text;
    if (pread_file(path, &text, (size_t)1 << 30, err, sizeof(err))) {
        if (log)
            fprintf(log, "FAIL %s\n", err);
        return -1;
    }
    arena_t arena;
    arena_init(&arena, 65536);
    const struct pjnode *t = NULL;
    if (pj_parse(&arena, text.data ? text.data : "", text.len, &t, err, sizeof(err))) {
        if (log)
            fprintf(log, "FAIL %s: %s\n", path, err);
        buf_free(&text);
        arena_free(&arena);
        return -1;
    }
    buf_free(&text);
    const struct pjnode *reqs = pj_get(t, "requests");
    const char *pol = jstr(pj_get(t, "policies")), *ents = jstr(pj_get(t, "entities"));
    const char *schema_path = jstr(pj_get(t, "schema"));
    if (!reqs || reqs->type != PJ_ARRAY || !pol) {
        arena_free(&arena); /* not a test file */
        return 0;
    }
    res->files++;
    size_t nreq = reqs->n;
    policy_set_t *set = policy_set_new(POLICY_SET_POSITIONAL_IDS);
    policy_entities_t *es = NULL;
    policy_schema_t *schema = NULL;
    struct policy_diags diags = {0};
    int rc = -1;
    if (!set)
        goto fail;
    if (schema_path) {
        /* schema-based parsing of entities and contexts, as the reference
         * harness does; validation itself is not checked */
        if (resolve(path, schema_path, file, sizeof(file)) ||
            !(schema = policy_schema_load_file(file, &diags))) {
            if (log) {
                fprintf(log, "FAIL %s: schema %s does not load\n", path, schema_path);
                policy_diags_print(&diags, log);
            }
            goto fail;
        }
    }
    if (resolve(path, pol, file, sizeof(file)) || policy_set_add_file(set, file, &diags)) {
        if (log) {
            fprintf(log, "FAIL %s: policies %s do not load\n", path, pol);
            policy_diags_print(&diags, log);
        }
        goto fail;
    }
    if (apply_links(set, pj_get(t, "links"), err, sizeof(err))) {
        if (log)
            fprintf(log, "FAIL %s: links: %s\n", path, err);
        goto fail;
    }
    if (ents) {
        if (resolve(path, ents, file, sizeof(file)) ||
            !(es = policy_entities_load_file_schema(file, schema, err, sizeof(err)))) {
            if (log)
                fprintf(log, "FAIL %s: entities %s do not load: %s\n", path, ents, err);
            goto fail;
        }
    }
    for (size_t i = 0; i < nreq; i++) {
        const struct pjnode *r = reqs->items[i];
        struct policy_request q = {.schema = schema};
        struct policy_decision d;
        if (json_uid(pj_get(r, "principal"), &q.principal) ||
            json_uid(pj_get(r, "action"), &q.action) ||
            json_uid(pj_get(r, "resource"), &q.resource)) {
            res->failed++;
            if (log)
                fprintf(log, "FAIL %s request %zu: unreadable principal/action/resource\n", path,
                        i);
            continue;
        }
        int drc = pdecide_node(set, es, &q, pj_get(r, "context"), &d);
        const char *want = jstr(pj_get(r, "decision"));
        const char **errids = d.nerrors ? arena_alloc(&d.arena, d.nerrors * sizeof(char *)) : NULL;
        for (size_t k = 0; errids && k < d.nerrors; k++)
            errids[k] = d.errors[k].policy_id ? d.errors[k].policy_id : "";
        bool ok = drc == 0 && want && strcmp(want, d.allow ? "allow" : "deny") == 0 &&
                  same_ids(pj_get(r, "reason"), d.reasons, d.nreasons) &&
                  (d.nerrors == 0 || errids) && same_ids(pj_get(r, "errors"), errids, d.nerrors);
        if (ok) {
            res->passed++;
        } else {
            res->failed++;
            log_failure(log, path, i, r, &d);
        }
        policy_decision_free(&d);
    }
    rc = 0;
    goto out;
fail:
    res->failed += nreq;
out:
    policy_diags_free(&diags);
    policy_entities_free(es);
    policy_schema_free(schema);
    policy_set_free(set);
    arena_free(&arena);
    return rc;
}

int policy_corpus_run(const char *const *paths, size_t npaths, FILE *log,
                      struct policy_corpus_result *res)
{
    memset(res, 0, sizeof(*res));
    struct pathlist tests = {0}, archives = {0}, tmpdirs = {0};
    int rc = 0;
    for (size_t i = 0; i < npaths && rc == 0; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            if (log)
                fprintf(log, "FAIL %s: %s\n", paths[i], strerror(errno));
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk(paths[i], &tests, &archives);
        } else if (ends_with(paths[i], ".tar.gz")) {
            rc = pathlist_add(&archives, paths[i]);
        } else {
            rc = pathlist_add(&tests, paths[i]);
        }
    }
    for (size_t i = 0; i < archives.n && rc == 0; i++) {
        char tmpl[] = "/tmp/portcullis-cedar-XXXXXX";
        char *dir = mkdtemp(tmpl);
        if (!dir || pathlist_add(&tmpdirs, dir) || run_tar(archives.v[i], dir) ||
            walk(dir, &tests, &archives)) {
            if (log)
                fprintf(log, "FAIL %s: cannot unpack\n", archives.v[i]);
            rc = -1;
        }
    }
    if (tests.n > 1)
        qsort(tests.v, tests.n, sizeof(*tests.v), cmp_str);
    for (size_t i = 0; i < tests.n; i++)
        if (run_test(tests.v[i], log, res))
            rc = -1;
    for (size_t i = 0; i < tmpdirs.n; i++)
        nftw(tmpdirs.v[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    pathlist_free(&tests);
    pathlist_free(&archives);
    pathlist_free(&tmpdirs);
    if (res->failed)
        rc = -1;
    return rc;
}
