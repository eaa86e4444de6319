// SPDX-License-Identifier: Apache-2.0
// Fuzz target for guard_sanitize: any bytes, scanned then sanitized, give one opening and
// one closing data marker with the text's own markers made inert, no injected span
// survives, and a buffer too small for the result is left unchanged.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "guard/guard.h"

static struct guard *g;

static size_t count(const char *s, size_t n, const char *needle)
{
    size_t k = 0, m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        k += strncasecmp(s + i, needle, m) == 0;
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g) {
        char err[256];
        g = guard_new_builtin(err, sizeof(err));
        if (!g)
            abort();
    }
    char *s = malloc(size ? size : 1); /* exact size: ASan sees any over-read */
    if (!s)
        return 0;
    memcpy(s, data, size);
    struct guard_result r;
    if (guard_scan(g, s, size, &r) != 0)
        abort();
    buf_t out;
    buf_init(&out, 4 * size + 65536);
    if (guard_sanitize(s, size, &r, "fuzz", &out) != 0)
        abort();
    if (count(out.data, out.len, "<untrusted-data") != 1 ||
        count(out.data, out.len, "</untrusted-data") != 1)
        abort();
    /* the output, scanned again, carries no high-severity span of the input's */
    for (size_t i = 0; i < r.nfindings; i++)
        if (r.findings[i].severity == GUARD_HIGH && r.findings[i].end - r.findings[i].start > 8 &&
            memmem(out.data, out.len, s + r.findings[i].start,
                   r.findings[i].end - r.findings[i].start))
            abort();
    /* too small: error, and nothing written */
    buf_t small;
    buf_init(&small, out.len / 2);
    if (guard_sanitize(s, size, &r, "fuzz", &small) == 0 || small.len != 0)
        abort();
    buf_free(&small);
    buf_free(&out);
    free(s);
    return 0;
}
