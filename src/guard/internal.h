// SPDX-License-Identifier: Apache-2.0
// guard internals shared by rules.c, scan.c and heuristics.c; not for other modules.
#ifndef PORTCULLIS_GUARD_INTERNAL_H
#define PORTCULLIS_GUARD_INTERNAL_H

#include <hs/hs.h>
#include <pthread.h>
#include <stdatomic.h>

#include "guard/guard.h"

#define GUARD_MAX_EXAMPLES 8

struct guard_example {
    char *text; /* owned, NUL-terminated, may hold NUL bytes before len */
    size_t len;
};

struct guard_rule {
    char *id;             /* owned (static for heuristics) */
    const char *category; /* static string */
    char *description;    /* owned, may be NULL */
    char *regex;          /* owned */
    char *unless;         /* owned: " word word " (lowercase); a match holding one of
                           * these words does not count. NULL for none */
    enum guard_severity severity;
    size_t width;   /* longest match in bytes, capped at GUARD_WINDOW_MAX */
    size_t at_most; /* more separate matches than this in one text: the text is built
                     * that way (a FAQ full of questions), not injected; 0 = no limit */
    size_t nexamples;
    struct guard_example examples[GUARD_MAX_EXAMPLES];
};

/* Longest window re-scanned for the start of a match the fast pass ended. */
#define GUARD_WINDOW_MAX 1024

struct guard {
    hs_database_t *db; /* fast pass: no start-of-match tracking */
    /* spans: leftmost start of match, one database per rule (som[i] for rules[i]), run
     * over windows only and only for the rules the fast pass saw: a rule's own database
     * scans a window several times faster than one of the whole pack. Compiled by a
     * thread that guard_new starts (or loaded from the cache); som_ready says it finished
     * (som_ok: every rule compiled). Until then scans compile the few rules they hit. */
    hs_database_t *som[GUARD_MAX_RULES];
    int som_ok;
    atomic_int som_ready;
    pthread_t som_thread;
    int som_thread_started;
    unsigned long gen; /* unique per guard: a thread's scratch fits the last gen it saw */
    /* compiled-database cache (cache.c): where, under which key, and whether this guard's
     * databases came from it */
    char *cache_dir; /* owned; NULL: no cache */
    unsigned char cache_key[32];
    enum guard_cache cache_state;
    size_t nrules;
    struct guard_rule rules[GUARD_MAX_RULES];
};

/* Whether text[0..len) holds one of rule r's `unless` words (whole word, any case). */
bool guard_rule_excluded(const struct guard_rule *r, const char *text, size_t len);

/* Whether the per-rule start-of-match databases are there (false while their background
 * compile runs, or when it failed). Never waits: a worker's loop must not stall on it. */
bool guard_som_ready(const struct guard *g);
/* Meanwhile: a start-of-match database of just the rules with only[i] set (the few a scan
 * hit), compiled now in milliseconds. Caller frees (hs_free_database); NULL on failure. */
hs_database_t *guard_som_subset(const struct guard *g, const unsigned char *only);

/* ---- compiled-database cache (cache.c) ---- */

#define GUARD_CACHE_KEY 32
/* Largest cache file read or written. */
#define GUARD_CACHE_MAX (64u << 20)

/* SHA-256 over the Vectorscan version, the platform, the compile scheme and the pack
 * text: what decides the compiled bytes. All zero if hashing failed (never cached). */
void guard_cache_key(const char *pack, size_t len, unsigned char key[GUARD_CACHE_KEY]);
/* dir/guard-<first 16 key bytes in hex>.hsdb into out; 0 or -1 (no dir, zero key, too long). */
int guard_cache_path(const char *dir, const unsigned char key[GUARD_CACHE_KEY], char *out,
                     size_t cap);
/* The ndbs databases (the fast one, then each rule's start-of-match one) from a cache
 * file image buf[0..n): 0 with dbs[0..ndbs) set (caller frees each) when the magic, key,
 * layout and SHA-256 trailer all check out and Vectorscan accepts every section; else -1
 * with nothing allocated (dbs all NULL). buf is untrusted. */
int guard_cache_parse(const unsigned char *buf, size_t n, const unsigned char key[GUARD_CACHE_KEY],
                      hs_database_t **dbs, size_t ndbs);
/* A cache file image of dbs[0..ndbs) under key; caller frees *out. 0 or -1. */
int guard_cache_image(const unsigned char key[GUARD_CACHE_KEY], hs_database_t *const *dbs,
                      size_t ndbs, unsigned char **out, size_t *outlen);
/* Reads and parses dir's file for key into dbs[0..ndbs): 0, or -1 when absent or not usable. */
int guard_cache_load(const char *dir, const unsigned char key[GUARD_CACHE_KEY], hs_database_t **dbs,
                     size_t ndbs);
/* Writes dir's file for key (dir created 0700 if missing), atomically by rename. 0 or -1;
 * best effort: a cache that cannot be written only costs the next load its compile. */
int guard_cache_store(const char *dir, const unsigned char key[GUARD_CACHE_KEY],
                      hs_database_t *const *dbs, size_t ndbs);
/* $PORTCULLIS_GUARD_CACHE ("off" or empty: none), else $XDG_CACHE_HOME/portcullis, else
 * $HOME/.cache/portcullis. 0, or -1 when there is none. */
int guard_cache_default_dir(char *out, size_t cap);

/* Heuristic findings (rule ids outside the pack), indexes into guard_heuristics. */
enum {
    GUARD_H_ENCODED,      /* base64 / hex run that decodes to instructions */
    GUARD_H_UNICODE_TAGS, /* U+E0000..U+E007F: invisible ASCII */
    GUARD_H_BIDI,         /* bidi overrides and isolates */
    GUARD_H_ZW_RUN,       /* three or more zero-width characters in a row */
    GUARD_H_ZW,           /* a lone zero-width character */
    GUARD_NHEURISTICS
};
extern const struct guard_rule guard_heuristics[GUARD_NHEURISTICS];

/* Receives one hidden-Unicode span; ctx is the caller's. */
typedef void (*guard_span_fn)(void *ctx, int heuristic, size_t start, size_t end);
/* Finds hidden Unicode (tag characters, bidi controls, zero-width characters) in one
 * pass; ASCII text costs one word-at-a-time test per 8 bytes. */
void guard_find_hidden(const char *text, size_t len, guard_span_fn fn, void *ctx);

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
