// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the Cedar policy parser and evaluator: any bytes are
// parsed as a policy file; whatever parses is then decided against a fixed
// request and entity store, so the evaluator sees every shape the parser
// accepts. Never a crash, a hang or a leak.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"

static const char entities_json[] =
    "[{\"uid\": {\"type\": \"User\", \"id\": \"alice\"},"
    "  \"attrs\": {\"age\": 30, \"name\": \"a\", \"tags\": [\"x\"], \"rec\": {\"k\": 1},"
    "             \"ip\": {\"__extn\": {\"fn\": \"ip\", \"arg\": \"10.0.0.1\"}}},"
    "  \"parents\": [{\"type\": \"Group\", \"id\": \"g\"}], \"tags\": {\"t\": \"v\"}},"
    " {\"uid\": {\"type\": \"Group\", \"id\": \"g\"}, \"attrs\": {},"
    "  \"parents\": [{\"type\": \"Group\", \"id\": \"h\"}]},"
    " {\"uid\": {\"type\": \"Action\", \"id\": \"read\"}, \"attrs\": {}, \"parents\": []}]";

static const char context_json[] =
    "{\"n\": 7, \"s\": \"str\", \"b\": true, \"set\": [1, 2], \"when\": "
    "{\"__extn\": {\"fn\": \"datetime\", \"arg\": \"2024-10-15T11:35:00Z\"}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static policy_entities_t *es;
    if (!es) {
        char err[256];
        es = policy_entities_load_text(entities_json, sizeof(entities_json) - 1, err, sizeof(err));
        if (!es)
            __builtin_trap();
    }
    policy_set_t *s = policy_set_new(0);
    if (!s)
        return 0;
    struct policy_diags diags = {0};
    if (policy_set_add_text(s, "fuzz.cedar", (const char *)data, size, &diags) == 0) {
        if (diags.count != 0)
            __builtin_trap();
        struct policy_request req = {
            .principal = policy_uid_make("User", "alice"),
            .action = policy_uid_make("Action", "read"),
            .resource = policy_uid_make("Group", "g"),
            .context_json = context_json,
            .context_json_len = sizeof(context_json) - 1,
        };
        struct policy_decision d;
        if (policy_decide(s, es, &req, &d) != 0)
            __builtin_trap();
        /* the determining policies and the erring ones never overlap */
        for (size_t i = 0; i < d.nreasons; i++)
            for (size_t k = 0; k < d.nerrors; k++)
                if (strcmp(d.reasons[i], d.errors[k].policy_id) == 0)
                    __builtin_trap();
        policy_decision_free(&d);
    } else {
        if (diags.count == 0)
            __builtin_trap(); /* a refusal always says why */
        FILE *devnull = fopen("/dev/null", "w");
        if (devnull) {
            policy_diags_print(&diags, devnull);
            fclose(devnull);
        }
    }
    policy_diags_free(&diags);
    policy_set_free(s);
    return 0;
}
