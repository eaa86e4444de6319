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

static size_t occurrences(const char *hay, size_t n, const char *needle, size_t m)
{
    size_t k = 0;
    for (const char *p = hay; (p = memmem(p, n - (size_t)(p - hay), needle, m)); p++)
        k++;
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g) {
        char err[256];
        g = guard_new_builtin(err, sizeof(err));
        if (!g)
            abort();
        guard_wait_ready(g); /* steady state: spans from the full SOM database */
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
    /* every high-severity span was cut: its bytes occur fewer times in the output than
     * in the input plus the bare wrapper (the same bytes may also sit, unflagged,
     * elsewhere in the input) */
    buf_t wrap;
    buf_init(&wrap, 65536);
    if (guard_sanitize("", 0, &r, "fuzz", &wrap) != 0)
        abort();
    for (size_t i = 0; i < r.nfindings; i++) {
        const struct guard_finding *f = &r.findings[i];
        size_t n = f->end - f->start;
        if (f->severity != GUARD_HIGH || n <= 8)
            continue;
        const char *needle = s + f->start;
        if (occurrences(out.data, out.len, needle, n) >=
            occurrences(s, size, needle, n) + occurrences(wrap.data, wrap.len, needle, n))
            abort();
    }
    buf_free(&wrap);
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
