// SPDX-License-Identifier: Apache-2.0
// Shared by the config unit tests: load a YAML string and get back either the
// snapshot or the exact text `portcullis check` would print.
#ifndef PORTCULLIS_TESTS_CONFIG_HELPERS_H
#define PORTCULLIS_TESTS_CONFIG_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/config.h"

/* What config_errors_print writes; caller frees. */
static inline char *errors_text(const struct config_errors *errs)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    config_errors_print(errs, f);
    fclose(f);
    return text;
}

/* Loads yaml as "t.yaml"; the load must succeed. */
static inline struct config *load_ok(const char *yaml)
{
    struct config_errors errs;
    struct config *c = config_load_string("t.yaml", yaml, strlen(yaml), &errs);
    if (c == NULL) {
        char *text = errors_text(&errs);
        fail_msg("unexpected errors:\n%s", text);
        free(text);
    }
    assert_int_equal(errs.count, 0);
    return c;
}

/* Loads yaml as "t.yaml"; the load must fail with exactly `expected` printed. */
static inline void load_fails(const char *yaml, const char *expected)
{
    struct config_errors errs;
    struct config *c = config_load_string("t.yaml", yaml, strlen(yaml), &errs);
    char *text = errors_text(&errs);
    if (c != NULL)
        config_unref(c);
    assert_null(c);
    assert_string_equal(text, expected);
    free(text);
    config_errors_free(&errs);
}

#endif
