// SPDX-License-Identifier: Apache-2.0
// portcullis command line: serve | check | version | help.
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "budget/budget.h"
#include "cli/serve.h"
#include "config/config.h"
#include "guard/guard.h"
#include "identity/identity.h"
#include "policy/policy.h"

#define PORTCULLIS_VERSION "0.1.0"

static void usage(FILE *out)
{
    fprintf(out,
            "portcullis %s — an AI agent gateway\n\n"
            "usage:\n"
            "  portcullis serve -c FILE     run the gateway with the config in FILE\n"
            "  portcullis check FILE        validate a config; prints file:line: message per error\n"
            "  portcullis policy …          check, eval or run the Cedar corpus (policy help)\n"
            "  portcullis guard scan < FILE prompt-injection verdict for stdin as JSON (guard help)\n"
            "  portcullis keys …            API keys and signing keys (keys help)\n"
            "  portcullis trace -c FILE ID  the call graph a request belongs to\n"
            "  portcullis audit tail -c FILE [--agent ID] [--denied]   follow the audit log\n"
            "  portcullis budget show [ID] -c FILE   budget tree: spend and caps per period\n"
            "  portcullis version           print the version\n"
            "  portcullis help              this text\n\n"
            "signals: SIGHUP reloads the config, SIGTERM drains in-flight requests and exits\n",
            PORTCULLIS_VERSION);
}

/* Finds the config path: "-c FILE", "--config FILE", "--config=FILE" or a
 * bare FILE. NULL when absent. */
static const char *config_arg(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0)
            return argv[i] + 9;
        if (argv[i][0] != '-')
            return argv[i];
    }
    return NULL;
}

static int cmd_check(const char *path)
{
    struct config_errors errs = {0};
    struct config *c = config_load(path, &errs);
    if (!c) {
        config_errors_print(&errs, stderr);
        fprintf(stderr, "%s: %zu error%s\n", path, errs.count, errs.count == 1 ? "" : "s");
        config_errors_free(&errs);
        return 1;
    }
    printf("%s: ok (%zu providers, %zu models)\n", path, c->nproviders, c->nmodels);
    config_unref(c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("portcullis %s\n", PORTCULLIS_VERSION);
        return 0;
    }
    if (strcmp(cmd, "policy") == 0)
        return policy_cli_main(argc - 1, argv + 1);
    if (strcmp(cmd, "guard") == 0)
        return guard_cli_main(argc - 1, argv + 1);
    if (strcmp(cmd, "keys") == 0)
        return identity_keys_cli(argc - 1, argv + 1);
    if (strcmp(cmd, "trace") == 0)
        return audit_trace_cli(argc - 1, argv + 1);
    if (strcmp(cmd, "audit") == 0)
        return audit_cli(argc - 1, argv + 1);
    if (strcmp(cmd, "budget") == 0)
        return budget_cli_main(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "check") == 0) {
        const char *path = config_arg(argc, argv);
        if (!path) {
            fprintf(stderr, "portcullis %s: missing config file (-c FILE)\n", cmd);
            return 2;
        }
        return strcmp(cmd, "serve") == 0 ? serve_main(path) : cmd_check(path);
    }
    fprintf(stderr, "portcullis: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
