// SPDX-License-Identifier: Apache-2.0
// `portcullis policy …`: check policy files, evaluate one request against
// them (for debugging a policy set), and run the Cedar conformance corpus.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "policy/policy.h"

static void usage(FILE *out)
{
    fprintf(out, "usage:\n"
                 "  portcullis policy check POLICYFILE...\n"
                 "      parse policy files; prints file:line:col: message per error\n"
                 "  portcullis policy eval --principal UID --action UID --resource UID\n"
                 "                         [--context JSON] [--entities FILE] POLICYFILE...\n"
                 "  portcullis policy eval -c CONFIG --principal UID --action UID --resource UID\n"
                 "                         [--context JSON]\n"
                 "      decide one request; UID is Cedar syntax, e.g. 'Agent::\"researcher\"'.\n"
                 "      With -c: the policy set and the entities (agent tree, models) the\n"
                 "      gateway builds from that config, exactly as it decides.\n"
                 "      Exit status: 0 allow, 1 deny, 2 bad input\n"
                 "  portcullis policy corpus PATH...\n"
                 "      run Cedar integration tests (files, folders, .tar.gz archives);\n"
                 "      prints 'N passed, M failed' last, exit status 1 if any failed\n");
}

static int load_policies(policy_set_t *set, char **files, int n)
{
    int rc = 0;
    for (int i = 0; i < n; i++) {
        struct policy_diags diags = {0};
        if (policy_set_add_file(set, files[i], &diags)) {
            policy_diags_print(&diags, stderr);
            rc = -1;
        }
        policy_diags_free(&diags);
    }
    return rc;
}

static int cmd_check(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    policy_set_t *set = policy_set_new(0);
    if (!set)
        return 2;
    int rc = load_policies(set, argv + 1, argc - 1);
    if (rc == 0)
        printf("ok: %zu policies, %zu templates\n", policy_set_count(set),
               policy_set_template_count(set));
    policy_set_free(set);
    return rc ? 1 : 0;
}

static int cmd_eval(int argc, char **argv)
{
    const char *uid_text[3] = {NULL, NULL, NULL};
    const char *context = NULL, *entities = NULL, *config_path = NULL;
    static const char *const names[3] = {"--principal", "--action", "--resource"};
    int first_file = argc;
    for (int i = 1; i < argc; i++) {
        bool matched = false;
        for (int k = 0; k < 3; k++)
            if (strcmp(argv[i], names[k]) == 0 && i + 1 < argc) {
                uid_text[k] = argv[++i];
                matched = true;
            }
        if (matched)
            continue;
        if (strcmp(argv[i], "--context") == 0 && i + 1 < argc) {
            context = argv[++i];
        } else if (strcmp(argv[i], "--entities") == 0 && i + 1 < argc) {
            entities = argv[++i];
        } else if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
                   i + 1 < argc) {
            config_path = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "portcullis policy eval: unknown option %s\n", argv[i]);
            return 2;
        } else {
            first_file = i;
            break;
        }
    }
    if (!uid_text[0] || !uid_text[1] || !uid_text[2] ||
        (config_path ? first_file < argc || entities : first_file >= argc)) {
        if (config_path && (first_file < argc || entities))
            fprintf(stderr, "portcullis policy eval: -c takes the policies and entities from "
                            "the config; drop the policy files and --entities\n");
        usage(stderr);
        return 2;
    }
    int rc = 2;
    arena_t arena;
    arena_init(&arena, 4096);
    policy_set_t *set = policy_set_new(0);
    policy_entities_t *es = NULL;
    struct config *cfg = NULL;
    struct policy_request req = {0};
    struct policy_uid *uids[3] = {&req.principal, &req.action, &req.resource};
    char err[1024];
    if (!set)
        goto out;
    for (int k = 0; k < 3; k++) {
        const char *msg;
        if (policy_uid_parse(&arena, uid_text[k], uids[k], &msg)) {
            fprintf(stderr, "%s %s: %s\n", names[k], uid_text[k], msg);
            goto out;
        }
    }
    if (context) {
        req.context_json = context; /* read by the engine: NUL bytes in keys are fine */
        req.context_json_len = strlen(context);
    }
    if (entities && !(es = policy_entities_load_file(entities, err, sizeof(err)))) {
        fprintf(stderr, "--entities: %s\n", err);
        goto out;
    }
    const policy_set_t *use_set = set;
    const policy_entities_t *use_es = es;
    if (config_path) {
        struct config_errors errs = {0};
        if (!(cfg = config_load(config_path, &errs))) {
            config_errors_print(&errs, stderr);
            config_errors_free(&errs);
            goto out;
        }
        if (!cfg->policy.present) {
            fprintf(stderr, "%s: no policy: section; the gateway decides nothing by policy\n",
                    config_path);
            goto out;
        }
        use_set = cfg->policy.set;
        use_es = cfg->policy.entities;
    } else if (load_policies(set, argv + first_file, argc - first_file)) {
        goto out;
    }
    struct policy_decision d;
    if (policy_decide(use_set, use_es, &req, &d)) {
        fprintf(stderr, "%s\n", d.nerrors ? d.errors[0].message : "request rejected");
        policy_decision_free(&d);
        goto out;
    }
    int allow = d.allow;
    if (cfg && !allow && cfg->policy.default_allow && d.nreasons == 0)
        allow = 1; /* default: allow refuses only what a forbid decided */
    printf("decision: %s\n", allow ? "allow" : "deny");
    if (cfg && allow != d.allow)
        printf("(no policy decided; the config's default: allow lets it through)\n");
    printf("determining policies:");
    for (size_t i = 0; i < d.nreasons; i++)
        printf(" %s", d.reasons[i]);
    printf("%s\n", d.nreasons ? "" : " (none)");
    printf("errors:%s\n", d.nerrors ? "" : " (none)");
    for (size_t i = 0; i < d.nerrors; i++)
        printf("  %s: %s\n", d.errors[i].policy_id, d.errors[i].message);
    rc = allow ? 0 : 1;
    policy_decision_free(&d);
out:
    if (cfg)
        config_unref(cfg);
    policy_entities_free(es);
    policy_set_free(set);
    arena_free(&arena);
    return rc;
}

static int cmd_corpus(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    struct policy_corpus_result res;
    int rc = policy_corpus_run((const char *const *)argv + 1, (size_t)argc - 1, stdout, &res);
    printf("%zu passed, %zu failed\n", res.passed, res.failed);
    return rc == 0 && res.failed == 0 ? 0 : 1;
}

int policy_cli_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    if (strcmp(argv[1], "eval") == 0)
        return cmd_eval(argc - 1, argv + 1);
    if (strcmp(argv[1], "corpus") == 0)
        return cmd_corpus(argc - 1, argv + 1);
    fprintf(stderr, "portcullis policy: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
