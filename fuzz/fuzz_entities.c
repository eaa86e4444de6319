// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the Cedar entities loader (and, with the same bytes,
// the request context reader): any bytes in, a store or an error out; a
// store that loads is queried by a fixed policy set touching attributes,
// tags and the hierarchy. Never a crash, a hang or a leak.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/policy.h"

static const char policies[] =
    "permit(principal in Group::\"g\", action, resource) when { principal.age > 3 };\n"
    "forbid(principal, action, resource) when { principal has rec && principal.rec.k == 1 };\n"
    "permit(principal, action, resource) when { principal.hasTag(\"t\") && "
    "principal.getTag(\"t\") like \"*v*\" };\n"
    "permit(principal, action, resource) when { context.a.contains(principal) || "
    "resource in principal };\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static policy_set_t *set;
    if (!set) {
        struct policy_diags diags = {0};
        set = policy_set_new(0);
        if (!set || policy_set_add_text(set, "f.cedar", policies, sizeof(policies) - 1, &diags))
            __builtin_trap();
    }
    char err[512];
    policy_entities_t *es = policy_entities_load_text((const char *)data, size, err, sizeof(err));
    if (!es && err[0] == '\0')
        __builtin_trap(); /* a refusal always says why */
    struct policy_request req = {
        .principal = policy_uid_make("User", "alice"),
        .action = policy_uid_make("Action", "read"),
        .resource = policy_uid_make("Group", "g"),
        .context_json = (const char *)data,
        .context_json_len = size,
    };
    struct policy_decision d;
    (void)policy_decide(set, es, &req, &d); /* bytes as context: usually refused */
    policy_decision_free(&d);
    req.context_json = NULL;
    req.context_json_len = 0;
    if (policy_decide(set, es, &req, &d) != 0)
        __builtin_trap();
    policy_decision_free(&d);
    policy_entities_free(es);
    return 0;
}
