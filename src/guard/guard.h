// SPDX-License-Identifier: Apache-2.0
// guard: prompt-injection scanner for untrusted text (tool results, A2A replies).
// A rule pack (rules/guard.rules, built into the binary) is compiled once into one
// Vectorscan block-mode database; guard_scan matches it in one pass plus C heuristics.
#ifndef PORTCULLIS_GUARD_H
#define PORTCULLIS_GUARD_H

#include <stdbool.h>
#include <stddef.h>

/* Most findings one scan reports; further ones only set `truncated`. */
#define GUARD_MAX_FINDINGS 32
/* Most rules one pack may hold. */
#define GUARD_MAX_RULES 256
/* A scan with score >= this is reported as an injection. */
#define GUARD_INJECTION_THRESHOLD 0.5

enum guard_severity { GUARD_LOW = 1, GUARD_MEDIUM = 2, GUARD_HIGH = 3 };

struct guard;

struct guard_finding {
    const char *rule;     /* rule id, owned by the guard */
    const char *category; /* owned by the guard */
    enum guard_severity severity;
    size_t start, end; /* byte span [start, end) in the scanned text */
};

struct guard_result {
    double score;   /* in [0, 1]: 1 - prod(1 - weight) over distinct rules hit */
    bool injection; /* score >= GUARD_INJECTION_THRESHOLD */
    bool truncated; /* more than GUARD_MAX_FINDINGS spans matched */
    size_t nfindings;
    struct guard_finding findings[GUARD_MAX_FINDINGS];
};

/* Compiles a rule pack given as text. Returns NULL with a message in err
 * (file:line style) on failure. Caller owns the result (guard_free). */
__attribute__((warn_unused_result)) struct guard *guard_new(const char *pack, size_t len, char *err,
                                                            size_t errlen);
/* The rule pack built into the binary (rules/guard.rules). */
__attribute__((warn_unused_result)) struct guard *guard_new_builtin(char *err, size_t errlen);
/* Reads and compiles the rule pack at path. */
__attribute__((warn_unused_result)) struct guard *guard_load(const char *path, char *err,
                                                             size_t errlen);
void guard_free(struct guard *g);

/* Scans text[0..len). Thread-safe for one guard across threads (each thread
 * keeps its own Vectorscan scratch). Returns 0, or a negative code when
 * scanning failed (out is then zeroed with injection = false). */
__attribute__((warn_unused_result)) int guard_scan(const struct guard *g, const char *text,
                                                   size_t len, struct guard_result *out);

/* Rule pack introspection (tests, `guard rules`). */
size_t guard_rule_count(const struct guard *g);
const char *guard_rule_id(const struct guard *g, size_t i);
const char *guard_rule_category(const struct guard *g, size_t i);
size_t guard_rule_nexamples(const struct guard *g, size_t i);
/* Example j of rule i (escapes already decoded); length in *len. */
const char *guard_rule_example(const struct guard *g, size_t i, size_t j, size_t *len);

/* `portcullis guard …` */
int guard_cli_main(int argc, char **argv);

#endif
