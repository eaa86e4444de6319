// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for breaker_rl_redis_reply (the Redis rate-limit
// script's reply). Input: 8-byte integers, the reply's elements, against a
// fixed chain of three buckets. Checks: no crash; a grant or a refusal only
// for a well-formed reply, a refusal names one of the chain's buckets, and
// no view claims more room than its limit.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "breaker/breaker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct rl_bucket_ref refs[] = {
        {"bot", 1, 100}, {"team", 0, 10}, {"team", 1, 1000000}};
    long long v[64];
    size_t n = size / 8 < 64 ? size / 8 : 64;
    memcpy(v, data, n * 8);
    struct rl_admission adm = {.tokens = 7};
    struct rl_refusal why = {0};
    int rc = breaker_rl_redis_reply(refs, 3, v, n, &adm, &why);
    if (rc != -1 && n != 6)
        abort();
    if (rc == 1 && (why.node == NULL || (strcmp(why.node, "bot") && strcmp(why.node, "team"))))
        abort();
    if (rc >= 0 && (adm.requests.remaining > adm.requests.limit ||
                    adm.tokens_view.remaining > adm.tokens_view.limit || adm.tokens != 7))
        abort();
    return 0;
}
