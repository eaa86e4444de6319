// SPDX-License-Identifier: Apache-2.0
// The Redis budget backend (state.redis).
#include "budget/budget.h"

#include <stdio.h>

int budget_redis_load_tree(const char *url, struct budget_tree *t, time_t now, char *err,
                           size_t errlen)
{
    (void)url;
    (void)t;
    (void)now;
    snprintf(err, errlen, "the Redis budget backend is not built yet");
    return -1;
}
