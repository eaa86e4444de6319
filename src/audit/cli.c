// SPDX-License-Identifier: Apache-2.0
// `portcullis trace -c FILE REQUEST_ID` rebuilds the call graph a request
// belongs to from the audit records (root request, the agents of each
// delegation, the models and tools called) and prints it as a tree;
// `portcullis audit tail -c FILE [--agent ID] [--denied]` follows the log.
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "config/config.h"
#include "state/state.h"

#define TRACE_MAX 10000

struct opts {
    const char *config, *agent, *id;
    int denied, follow, json;
    unsigned n;
};

static int parse_opts(const char *cmd, int argc, char **argv, int first, struct opts *o)
{
    o->follow = 1;
    o->n = 20;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc)
            o->config = argv[++i];
        else if (strncmp(a, "--config=", 9) == 0)
            o->config = a + 9;
        else if (strcmp(a, "--agent") == 0 && i + 1 < argc)
            o->agent = argv[++i];
        else if (strcmp(a, "--denied") == 0)
            o->denied = 1;
        else if (strcmp(a, "--no-follow") == 0)
            o->follow = 0;
        else if (strcmp(a, "--json") == 0)
            o->json = 1;
        else if (strcmp(a, "-n") == 0 && i + 1 < argc)
            o->n = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (a[0] != '-' && o->id == NULL)
            o->id = a;
        else {
            fprintf(stderr, "portcullis %s: unknown or incomplete option '%s'\n", cmd, a);
            return -1;
        }
    }
    if (o->config == NULL) {
        fprintf(stderr, "portcullis %s: missing config file (-c FILE)\n", cmd);
        return -1;
    }
    return 0;
}

static struct state *open_store(const char *cmd, const char *config_path)
{
    struct config_errors errs = {0};
    struct config *cfg = config_load(config_path, &errs);
    if (cfg == NULL) {
        config_errors_print(&errs, stderr);
        config_errors_free(&errs);
        return NULL;
    }
    char err[512];
    struct state *st = state_open(cfg->state_path, err, sizeof err);
    if (st == NULL)
        fprintf(stderr, "portcullis %s: %s\n", cmd, err);
    config_unref(cfg);
    return st;
}

/* ---- rows kept in memory ---------------------------------------------------- */

struct row {
    int64_t id, ts_ms;
    char *request_id, *parent, *root, *agent, *chain, *action, *resource, *decision, *reason;
    int status;
    double latency_ms, cost;
    int64_t tin, tout;
    int printed;
};

struct rows {
    struct row *v;
    size_t n, cap;
};

static char *dup0(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int keep_row(const struct state_audit_row *r, void *arg)
{
    struct rows *rs = arg;
    if (rs->n == TRACE_MAX)
        return 1;
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 16;
        struct row *v = realloc(rs->v, cap * sizeof *v);
        if (v == NULL)
            return 1;
        rs->v = v;
        rs->cap = cap;
    }
    rs->v[rs->n++] = (struct row){
        .id = r->id,
        .ts_ms = r->ts_ms,
        .request_id = dup0(r->request_id),
        .parent = dup0(r->parent_request_id),
        .root = dup0(r->root_request_id),
        .agent = dup0(r->agent),
        .chain = dup0(r->chain),
        .action = dup0(r->action),
        .resource = dup0(r->resource),
        .decision = dup0(r->decision),
        .reason = dup0(r->reason),
        .status = r->status,
        .latency_ms = r->latency_ms,
        .cost = r->cost_usd,
        .tin = r->tokens_in,
        .tout = r->tokens_out,
    };
    return 0;
}

static void rows_free(struct rows *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        struct row *r = &rs->v[i];
        free(r->request_id), free(r->parent), free(r->root), free(r->agent), free(r->chain);
        free(r->action), free(r->resource), free(r->decision), free(r->reason);
    }
    free(rs->v);
}

/* "A → B → C" from a JSON chain; "anonymous" when there is none. */
static void chain_text(const char *chain, char *out, size_t n)
{
    json_t *c = chain ? json_loads(chain, 0, NULL) : NULL;
    size_t i, off = 0;
    json_t *v;
    out[0] = '\0';
    json_array_foreach(c, i, v)
    {
        const char *s = json_string_value(v);
        int w = snprintf(out + off, n - off, "%s%s", i ? " → " : "", s ? s : "?");
        if (w < 0 || (size_t)w >= n - off)
            break;
        off += (size_t)w;
    }
    if (off == 0)
        snprintf(out, n, "anonymous");
    json_decref(c);
}

/* "model:gpt-4o" -> "model gpt-4o". */
static void resource_text(const char *res, char *out, size_t n)
{
    const char *colon = res ? strchr(res, ':') : NULL;
    if (res == NULL)
        snprintf(out, n, "-");
    else if (colon != NULL)
        snprintf(out, n, "%.*s %s", (int)(colon - res), res, colon + 1);
    else
        snprintf(out, n, "%s", res);
}

static void fmt_ts(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t k = strftime(out, n, "%H:%M:%S", &tm);
    snprintf(out + k, n - k, ".%03lld", (long long)(ms % 1000));
}

static void print_node(const struct row *r, const char *prefix, const char *branch)
{
    char chain[1024], res[300], ts[32];
    chain_text(r->chain, chain, sizeof chain);
    resource_text(r->resource, res, sizeof res);
    fmt_ts(r->ts_ms, ts, sizeof ts);
    printf("%s%srequest %s  %s  %s: %s → %s  %s %d  %.1f ms", prefix, branch,
           r->request_id ? r->request_id : "?", ts, chain, r->action ? r->action : "-", res,
           r->decision ? r->decision : "-", r->status, r->latency_ms);
    if (r->tin || r->tout)
        printf("  tokens %lld+%lld", (long long)r->tin, (long long)r->tout);
    if (r->cost > 0)
        printf("  $%.6f", r->cost);
    if (r->decision && strcmp(r->decision, "allow") != 0 && r->reason)
        printf("  (%s)", r->reason);
    printf("\n");
}

static void print_children(struct rows *rs, const char *parent, const char *prefix, int depth)
{
    size_t last = SIZE_MAX;
    for (size_t i = 0; i < rs->n; i++)
        if (!rs->v[i].printed && rs->v[i].parent && strcmp(rs->v[i].parent, parent) == 0)
            last = i;
    if (depth > 64)
        return;
    for (size_t i = 0; i < rs->n && last != SIZE_MAX; i++) {
        struct row *r = &rs->v[i];
        if (r->printed || r->parent == NULL || strcmp(r->parent, parent) != 0)
            continue;
        r->printed = 1;
        print_node(r, prefix, i == last ? "└─ " : "├─ ");
        char next[512];
        const char *bar = i == last ? "   " : "│  ";
        size_t pl = strlen(prefix), bl = strlen(bar);
        if (pl + bl >= sizeof next)
            continue; /* depth is capped well below this */
        memcpy(next, prefix, pl);
        memcpy(next + pl, bar, bl + 1);
        if (r->request_id)
            print_children(rs, r->request_id, next, depth + 1);
    }
}

int audit_trace_cli(int argc, char **argv)
{
    struct opts o = {0};
    if (parse_opts("trace", argc, argv, 1, &o) < 0)
        return 2;
    if (o.id == NULL) {
        fprintf(stderr, "usage: portcullis trace -c FILE REQUEST_ID\n");
        return 2;
    }
    struct state *st = open_store("trace", o.config);
    if (st == NULL)
        return 1;
    struct rows self = {0}, all = {0};
    struct state_audit_filter f = {.request_id = o.id};
    int rc = 1;
    if (state_audit_each(st, &f, keep_row, &self) < 0 || self.n == 0) {
        fprintf(stderr, "portcullis trace: no audit record for request %s\n", o.id);
        goto out;
    }
    const struct row *me = &self.v[self.n - 1];
    const char *root = me->root ? me->root : me->request_id;
    f = (struct state_audit_filter){.root_request_id = root};
    if (state_audit_each(st, &f, keep_row, &all) < 0) {
        fprintf(stderr, "portcullis trace: %s\n", state_errmsg(st));
        goto out;
    }
    printf("trace of request %s (root %s, %zu request%s)\n", o.id, root, all.n,
           all.n == 1 ? "" : "s");
    /* Roots: the root request itself, and records whose parent is absent. */
    for (size_t i = 0; i < all.n; i++) {
        struct row *r = &all.v[i];
        int orphan = r->parent == NULL;
        if (!orphan) {
            orphan = 1;
            for (size_t k = 0; k < all.n; k++)
                if (all.v[k].request_id && strcmp(all.v[k].request_id, r->parent) == 0)
                    orphan = 0;
        }
        if (r->printed || !orphan)
            continue;
        r->printed = 1;
        print_node(r, "", "");
        if (r->request_id)
            print_children(&all, r->request_id, "", 0);
    }
    /* The path of the asked-for request: the whole chain, then what it called. */
    char chain[1024], res[300];
    chain_text(me->chain, chain, sizeof chain);
    resource_text(me->resource, res, sizeof res);
    printf("path: %s → %s\n", chain, res);
    rc = 0;
out:
    rows_free(&self);
    rows_free(&all);
    state_close(st);
    return rc;
}

/* ---- audit tail -------------------------------------------------------------- */

struct tail_ctx {
    int json;
    int64_t last;
};

static int print_line(const struct state_audit_row *r, void *arg)
{
    struct tail_ctx *t = arg;
    char ts[40], chain[1024];
    time_t sec = (time_t)(r->ts_ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t k = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + k, sizeof ts - k, ".%03lldZ", (long long)(r->ts_ms % 1000));
    if (r->id > t->last)
        t->last = r->id;
    if (t->json) {
        json_t *o = json_pack("{s:I,s:s,s:s?,s:s?,s:s?,s:s?,s:s?,s:s?,s:s?,s:s?,s:i,s:f,s:I,s:I,"
                              "s:f}",
                              "id", (json_int_t)r->id, "ts", ts, "request_id", r->request_id,
                              "root_request_id", r->root_request_id, "agent", r->agent, "auth",
                              r->auth, "action", r->action, "resource", r->resource, "decision",
                              r->decision, "reason", r->reason, "status", r->status, "latency_ms",
                              r->latency_ms, "tokens_in", (json_int_t)r->tokens_in, "tokens_out",
                              (json_int_t)r->tokens_out, "cost_usd", r->cost_usd);
        json_t *c = r->chain ? json_loads(r->chain, 0, NULL) : NULL;
        json_object_set_new(o, "chain", c ? c : json_null());
        char *s = json_dumps(o, JSON_COMPACT);
        if (s != NULL)
            printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        chain_text(r->chain, chain, sizeof chain);
        printf("%s  %s  %-5s %3d  %s  %s %s  %.1f ms%s%s\n", ts,
               r->request_id ? r->request_id : "-", r->decision ? r->decision : "-", r->status,
               chain, r->action ? r->action : "-", r->resource ? r->resource : "-", r->latency_ms,
               r->reason && r->decision && strcmp(r->decision, "allow") ? "  " : "",
               r->reason && r->decision && strcmp(r->decision, "allow") ? r->reason : "");
    }
    return 0;
}

static volatile sig_atomic_t tail_stop;

static void on_sigint(int sig)
{
    (void)sig;
    tail_stop = 1;
}

int audit_cli(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "tail") != 0) {
        fprintf(stderr, "usage: portcullis audit tail -c FILE [--agent ID] [--denied] [-n N] "
                        "[--no-follow] [--json]\n");
        return 2;
    }
    struct opts o = {0};
    if (parse_opts("audit tail", argc, argv, 2, &o) < 0)
        return 2;
    struct state *st = open_store("audit tail", o.config);
    if (st == NULL)
        return 1;
    struct tail_ctx t = {.json = o.json};
    /* The last n records, oldest first: find where they start, then walk up. */
    struct state_audit_filter f = {
        .agent = o.agent, .denied_only = o.denied, .limit = o.n ? o.n : 1, .newest_first = 1};
    struct rows last = {0};
    int rc = 0;
    if (state_audit_each(st, &f, keep_row, &last) < 0) {
        fprintf(stderr, "portcullis audit tail: %s\n", state_errmsg(st));
        rc = 1;
        goto out;
    }
    t.last = last.n ? last.v[last.n - 1].id - 1 : 0;
    if (o.n == 0 && last.n > 0)
        t.last = last.v[0].id;
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    do {
        f = (struct state_audit_filter){
            .agent = o.agent, .denied_only = o.denied, .after_id = t.last};
        if (state_audit_each(st, &f, print_line, &t) < 0) {
            fprintf(stderr, "portcullis audit tail: %s\n", state_errmsg(st));
            rc = 1;
            break;
        }
        fflush(stdout);
        if (o.follow && !tail_stop)
            usleep(250000);
    } while (o.follow && !tail_stop);
out:
    rows_free(&last);
    state_close(st);
    return rc;
}
