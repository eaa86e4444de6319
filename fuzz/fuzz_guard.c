// SPDX-License-Identifier: Apache-2.0
// Fuzz target for guard: scanning arbitrary bytes never fails or reads out of
// bounds; findings are bounded, spans lie inside the input, score is in [0, 1].
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard/guard.h"

static struct guard *g;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g) {
        char err[256];
        g = guard_new_builtin(err, sizeof(err));
        if (!g)
            abort();
        guard_wait_ready(g); /* steady state: spans from the full SOM database */
    }
    /* exact-size copy so ASan catches any read past the end */
    char *s = malloc(size ? size : 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    struct guard_result r;
    if (guard_scan(g, s, size, &r) != 0)
        abort();
    if (r.nfindings > GUARD_MAX_FINDINGS || r.score < 0.0 || r.score > 1.0)
        abort();
    if (r.injection != (r.score >= GUARD_INJECTION_THRESHOLD))
        abort();
    for (size_t i = 0; i < r.nfindings; i++)
        if (r.findings[i].start > r.findings[i].end || r.findings[i].end > size ||
            !r.findings[i].rule || !r.findings[i].category)
            abort();
    free(s);
    return 0;
}
