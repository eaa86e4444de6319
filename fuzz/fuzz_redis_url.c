// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for budget_redis_parse_url (state.redis). Input: the URL.
// Checks: no crash or leak; an accepted URL has a non-empty host without
// ':' or '/', a port in 1..65535 and a non-negative db, and parsing it again
// gives the same answer.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "budget/budget.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);
    if (url == NULL)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    char *host, *pw;
    int port, db;
    int rc = budget_redis_parse_url(url, &host, &port, &pw, &db);
    if (rc == 0) {
        if (host == NULL || host[0] == '\0' || strpbrk(host, ":/") != NULL || port < 1 ||
            port > 65535 || db < 0)
            abort();
        char *h2, *p2;
        int port2, db2;
        if (budget_redis_parse_url(url, &h2, &port2, &p2, &db2) != 0 || strcmp(h2, host) != 0 ||
            port2 != port || db2 != db)
            abort();
        free(h2);
        free(p2);
    }
    free(host);
    free(pw);
    free(url);
    return 0;
}
