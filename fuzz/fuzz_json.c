// SPDX-License-Identifier: Apache-2.0
// Fuzz target for core/json: the scanner never reads out of bounds, agrees
// with jansson on what is valid JSON (within the shared limits), and its
// lookups return spans inside the input.
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    struct json_span root;
    struct json_error err;
    int ok = json_validate(s, size, &root, &err) == 0;
    /* jansson: same grammar; it refuses NUL escapes, integers past int64 and
     * deeper nesting, which we accept or bound differently, so only check
     * the direction that must hold: what jansson accepts, we accept. */
    /* jansson stops at a raw NUL byte; compare only inputs without one */
    json_t *j = memchr(s, 0, size) ? NULL : json_loadb(s, size, JSON_DECODE_ANY, NULL);
    if (j) {
        int depth_ok = 1;
        int d = 0;
        for (size_t i = 0; i < size; i++) {
            if (s[i] == '[' || s[i] == '{')
                d++;
            if (d >= JSON_MAX_DEPTH)
                depth_ok = 0;
        }
        if (depth_ok && !ok)
            abort();
        json_decref(j);
    }
    /* the one-pass form must agree with validate-then-lookup */
    {
        const char *k2[] = {"model", "stream"};
        struct json_span r2, v2[2], v1[2];
        size_t d2 = 0, d1 = 0;
        int one = json_validate_lookup(s, size, &r2, k2, 2, v2, &d2, NULL);
        if ((one != -1) != ok)
            abort();
        if (ok && root.kind == JS_OBJECT) {
            int two = json_lookup(&root, k2, 2, v1, &d1);
            if ((one == -2) != (two == -1))
                abort();
            if (one == 0)
                for (int i = 0; i < 2; i++)
                    if (v1[i].kind != v2[i].kind ||
                        (v1[i].kind != JS_NONE && (v1[i].p != v2[i].p || v1[i].len != v2[i].len)))
                        abort();
        }
    }
    if (ok && root.kind == JS_OBJECT) {
        const char *keys[] = {"model", "stream", "usage", ""};
        struct json_span v[4];
        size_t dup;
        if (json_lookup(&root, keys, 4, v, &dup) == 0) {
            for (int i = 0; i < 4; i++) {
                if (v[i].kind == JS_NONE)
                    continue;
                if (v[i].p < s || v[i].p + v[i].len > s + size)
                    abort();
                char out[64];
                int64_t n;
                (void)json_string_decode(&v[i], out, sizeof(out), NULL);
                (void)json_int(&v[i], &n);
            }
        }
    }
    free(s);
    return 0;
}
