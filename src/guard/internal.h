// SPDX-License-Identifier: Apache-2.0
// guard internals shared by rules.c, scan.c and heuristics.c; not for other modules.
#ifndef PORTCULLIS_GUARD_INTERNAL_H
#define PORTCULLIS_GUARD_INTERNAL_H

#include <hs/hs.h>

#include "guard/guard.h"

#define GUARD_MAX_EXAMPLES 8

struct guard_example {
    char *text; /* owned, NUL-terminated, may hold NUL bytes before len */
    size_t len;
};

struct guard_rule {
    char *id;             /* owned */
    const char *category; /* static string */
    char *description;    /* owned, may be NULL */
    char *regex;          /* owned */
    enum guard_severity severity;
    size_t nexamples;
    struct guard_example examples[GUARD_MAX_EXAMPLES];
};

struct guard {
    hs_database_t *db;
    size_t nrules;
    struct guard_rule rules[GUARD_MAX_RULES];
};

/* The static category string for s[0..n), or NULL when unknown. */
const char *guard_category_name(const char *s, size_t n);

/* Heuristic decoder: finds the next base64 or hex run at or after `from` in
 * text[0..len) that decodes to mostly printable text. Writes the run's span to
 * *start and *end and up to outcap decoded bytes to out; returns the decoded length,
 * or 0 when there is no further run. */
size_t guard_next_encoded(const char *text, size_t len, size_t from, size_t *start, size_t *end,
                          char *out, size_t outcap);
/* Whether decoded text reads like an instruction to a model (keyword test). */
bool guard_looks_instructive(const char *s, size_t n);

#endif
