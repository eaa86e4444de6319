// SPDX-License-Identifier: Apache-2.0
// `portcullis keys create|list|revoke|rotate-signing -c FILE`: API keys and
// the gateway's signing key, managed in the state store the config names.
// A running gateway sees the change within a second (identity refresher).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "config/config.h"
#include "identity/internal.h"
#include "state/state.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage:\n"
        "  portcullis keys create -c FILE --agent ID [--expires 30d] [--scope \"model:x ...\"]\n"
        "      prints a new API key once; the store keeps only its keyed hash\n"
        "  portcullis keys list -c FILE          id, agent, created, expires, status\n"
        "  portcullis keys revoke -c FILE KEY_ID\n"
        "  portcullis keys rotate-signing -c FILE\n"
        "      new ES256 key for delegation tokens; the old one verifies for 24h more\n");
}

struct opts {
    const char *config, *agent, *expires, *scope, *id;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0)
            slot = &o->config;
        else if (strcmp(a, "--agent") == 0)
            slot = &o->agent;
        else if (strcmp(a, "--expires") == 0)
            slot = &o->expires;
        else if (strcmp(a, "--scope") == 0)
            slot = &o->scope;
        else if (a[0] != '-' && o->id == NULL) {
            o->id = a;
            continue;
        } else {
            fprintf(stderr, "portcullis keys: unknown option '%s'\n", a);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "portcullis keys: %s needs a value\n", a);
            return -1;
        }
        *slot = argv[++i];
    }
    if (o->config == NULL) {
        fprintf(stderr, "portcullis keys: missing config file (-c FILE)\n");
        return -1;
    }
    return 0;
}

static struct config *load(const char *path)
{
    struct config_errors errs = {0};
    struct config *c = config_load(path, &errs);
    if (c == NULL) {
        config_errors_print(&errs, stderr);
        config_errors_free(&errs);
    }
    return c;
}

static void fmt_time(int64_t t, char *out, size_t n)
{
    if (t == 0) {
        snprintf(out, n, "never");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int cmd_create(struct config *cfg, struct state *st, const struct opts *o)
{
    if (o->agent == NULL) {
        fprintf(stderr, "portcullis keys create: --agent ID is required\n");
        return 2;
    }
    if (cfg->nagents > 0 && config_find_agent(cfg, o->agent) == NULL) {
        fprintf(stderr, "portcullis keys create: unknown agent '%s'; agents: declares:", o->agent);
        for (size_t i = 0; i < cfg->nagents; i++)
            fprintf(stderr, " %s", cfg->agents[i].id);
        fprintf(stderr, "\n");
        return 2;
    }
    if (o->scope != NULL && !scope_valid(o->scope)) {
        fprintf(stderr, "portcullis keys create: malformed --scope\n");
        return 2;
    }
    int64_t now = (int64_t)time(NULL), ttl = 0;
    if (o->expires != NULL && (ttl = identity_parse_ttl(o->expires)) < 0) {
        fprintf(stderr, "portcullis keys create: --expires takes 30d, 12h, 90m, 2w\n");
        return 2;
    }
    unsigned char secret[32];
    char key[96], id[APIKEY_ID_LEN + 1];
    if (state_secret(st, "api_keys", secret) < 0 || apikey_generate(key, sizeof key, id) < 0) {
        fprintf(stderr, "portcullis keys create: %s\n", state_errmsg(st));
        return 1;
    }
    struct state_api_key k = {
        .agent = o->agent, .scope = o->scope, .created = now, .expires = ttl ? now + ttl : 0};
    snprintf(k.id, sizeof k.id, "%s", id);
    apikey_hash(secret, key, strlen(key), k.hash);
    OPENSSL_cleanse(secret, sizeof secret);
    if (state_key_insert(st, &k) < 0) {
        OPENSSL_cleanse(key, sizeof key);
        fprintf(stderr, "portcullis keys create: %s\n", state_errmsg(st));
        return 1;
    }
    char exp[32];
    fmt_time(k.expires, exp, sizeof exp);
    printf("%s\n", key);
    fprintf(stderr, "created key %s for agent %s (expires %s). It is shown only once.\n", id,
            o->agent, exp);
    OPENSSL_cleanse(key, sizeof key);
    return 0;
}

static int print_key(const struct state_api_key *k, void *arg)
{
    char created[32], expires[32];
    int64_t now = *(int64_t *)arg;
    fmt_time(k->created, created, sizeof created);
    fmt_time(k->expires, expires, sizeof expires);
    const char *status = k->revoked                             ? "revoked"
                         : k->expires != 0 && now >= k->expires ? "expired"
                                                                : "active";
    printf("%-14s %-20s %-21s %-21s %-8s %s\n", k->id, k->agent, created, expires, status,
           k->scope ? k->scope : "*");
    return 0;
}

static int cmd_list(struct state *st)
{
    int64_t now = (int64_t)time(NULL);
    printf("%-14s %-20s %-21s %-21s %-8s %s\n", "ID", "AGENT", "CREATED", "EXPIRES", "STATUS",
           "SCOPE");
    if (state_keys_each(st, print_key, &now) < 0) {
        fprintf(stderr, "portcullis keys list: %s\n", state_errmsg(st));
        return 1;
    }
    return 0;
}

static int cmd_revoke(struct state *st, const struct opts *o)
{
    if (o->id == NULL) {
        fprintf(stderr, "portcullis keys revoke: which key? (KEY_ID from keys list)\n");
        return 2;
    }
    int rc = state_key_revoke(st, o->id, (int64_t)time(NULL));
    if (rc < 0) {
        fprintf(stderr, "portcullis keys revoke: %s\n", state_errmsg(st));
        return 1;
    }
    if (rc == 1) {
        fprintf(stderr, "portcullis keys revoke: no active key %s\n", o->id);
        return 1;
    }
    printf("revoked %s\n", o->id);
    return 0;
}

int identity_keys_cli(int argc, char **argv)
{
    struct opts o = {0};
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "revoke") != 0 &&
        strcmp(sub, "rotate-signing") != 0) {
        fprintf(stderr, "portcullis keys: unknown command '%s'\n", sub);
        usage(stderr);
        return 2;
    }
    if (parse_opts(argc, argv, &o) < 0)
        return 2;
    struct config *cfg = load(o.config);
    if (cfg == NULL)
        return 2;
    char err[512];
    struct state *st = state_open(cfg->state_path, err, sizeof err);
    int rc = 1;
    if (st == NULL) {
        fprintf(stderr, "portcullis keys: %s\n", err);
    } else if (strcmp(sub, "create") == 0) {
        rc = cmd_create(cfg, st, &o);
    } else if (strcmp(sub, "list") == 0) {
        rc = cmd_list(st);
    } else if (strcmp(sub, "revoke") == 0) {
        rc = cmd_revoke(st, &o);
    } else {
        char kid[128];
        if (identity_signing_rotate(st, kid, sizeof kid) < 0) {
            fprintf(stderr, "portcullis keys rotate-signing: %s\n", state_errmsg(st));
        } else {
            printf("new signing key %s\n", kid);
            rc = 0;
        }
    }
    state_close(st);
    config_unref(cfg);
    return rc;
}
