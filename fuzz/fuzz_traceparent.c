// SPDX-License-Identifier: Apache-2.0
// Fuzz target for the W3C traceparent parser (telemetry/trace.c): arbitrary
// bytes as a header value. It must never read past len, and whatever it
// accepts must be a well-formed id pair it can send back out unchanged.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = malloc(size ? size : 1); /* exact size: ASan sees any overread */
    if (v == NULL)
        return 0;
    memcpy(v, data, size);
    char trace[33], parent[17];
    if (traceparent_parse(v, size, trace, parent)) {
        if (strlen(trace) != 32 || strlen(parent) != 16 || strspn(trace, "0") == 32 ||
            strspn(parent, "0") == 16 || strspn(trace, "0123456789abcdef") != 32 ||
            strspn(parent, "0123456789abcdef") != 16)
            abort();
    }
    free(v);
    return 0;
}
