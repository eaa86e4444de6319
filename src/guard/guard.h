// SPDX-License-Identifier: Apache-2.0
// guard: untrusted text (tool results, A2A replies, tool messages) before it reaches a
// model. Three parts, each usable on its own and safe from any thread:
//   scan      guard_scan: rule pack (rules/guard.rules, built in) matched by Vectorscan in
//             one fast pass, spans only where it hit, plus one-pass C heuristics;
//   sanitize  guard_sanitize: found spans cut out, the text wrapped in data markers;
//   taint     struct guard_taint per session and guard_trifecta before an exfiltration tool.
#ifndef PORTCULLIS_GUARD_H
#define PORTCULLIS_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

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

/* Compiled-database cache. Compiling a pack takes about a second for the fast database
 * and a few more (in the background) for the span one; the compiled bytes are kept in a
 * file keyed by a SHA-256 of the pack, the Vectorscan version and the platform, and
 * the next guard for the same pack loads them in milliseconds. A file that is corrupt,
 * truncated or for another key is ignored and rewritten. guard_new, guard_new_builtin
 * and guard_load use the default directory: $PORTCULLIS_GUARD_CACHE ("off" disables),
 * else $XDG_CACHE_HOME/portcullis, else ~/.cache/portcullis. */
enum guard_cache {
    GUARD_CACHE_OFF,  /* no cache directory */
    GUARD_CACHE_MISS, /* compiled; the cache file is written once the span database is */
    GUARD_CACHE_HIT,  /* both databases loaded from the cache file */
};
/* guard_new with databases cached in cache_dir (NULL: no cache). */
__attribute__((warn_unused_result)) struct guard *
guard_new_cached(const char *pack, size_t len, const char *cache_dir, char *err, size_t errlen);
/* guard_load with databases cached in cache_dir (NULL: no cache). */
__attribute__((warn_unused_result)) struct guard *
guard_load_cached(const char *path, const char *cache_dir, char *err, size_t errlen);
/* Whether g's databases came from the cache. */
enum guard_cache guard_cache_state(const struct guard *g);

/* guard_new returns once the fast database is compiled (or both are loaded from the
 * cache); the per-rule ones that give exact spans compile on a thread of its own for about
 * a second more (until then a scan that hits compiles the rules it needs, tens of
 * milliseconds), and then the cache file is written. This waits for it: for benchmarks,
 * tests and tools that want steady-state speed. */
void guard_wait_ready(const struct guard *g);

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

/* ---- sanitize ------------------------------------------------------------------------ */

/* Appends to out a copy of text[0..len) fit to hand to a model:
 *   <untrusted-data source="SOURCE" guard="injection|suspicious|clean">
 *   (one line telling the model the content is data, not instructions)
 *   the text, with each medium/high finding of r (and any hidden-text finding) replaced
 *   by "[removed by guard: RULE-ID]"
 *   </untrusted-data>
 * r is guard_scan's result for the same bytes. Any "<untrusted-data" or
 * "</untrusted-data" inside the text has its '<' written as "&lt;", so the data cannot
 * close its wrapper. source (a tool or server name; NULL means "tool") is reduced to
 * [A-Za-z0-9_.:/@[]-]. Returns 0, or -EINVAL / -ENOMEM / -E2BIG (out's maximum) with out
 * unchanged. Pure: no state, any thread. */
__attribute__((warn_unused_result)) int guard_sanitize(const char *text, size_t len,
                                                       const struct guard_result *r,
                                                       const char *source, buf_t *out);

/* ---- taint and the lethal trifecta ----------------------------------------------------- */

/* Tool labels from the config (tools: {name: [private_data, exfiltration]}). */
enum guard_label { GUARD_LABEL_PRIVATE_DATA = 1u << 0, GUARD_LABEL_EXFILTRATION = 1u << 1 };
/* Session flags; also what a Cedar policy sees in its context. */
enum guard_taint_flag { GUARD_TAINT_PRIVATE_DATA = 1u << 0, GUARD_TAINT_UNTRUSTED = 1u << 1 };

/* One session's taint, owned by the session (the MCP hub's). Plain data: one session
 * is updated by one thread at a time (the hub's); sessions are independent. */
struct guard_taint {
    unsigned flags;             /* guard_taint_flag bits */
    char private_source[96];    /* the tool that first read private data */
    char untrusted_source[160]; /* the tool/server that first brought untrusted content */
};

void guard_taint_init(struct guard_taint *t);
/* Records that the session read the result of `tool` (e.g. "files.read_file"):
 * labels are the tool's guard_label bits, untrusted says its server is marked
 * `trust: untrusted`; a scan that found an injection marks the content untrusted too
 * (scan may be NULL). The first tool to set each flag is kept to name it later. */
void guard_taint_note(struct guard_taint *t, const char *tool, unsigned labels, bool untrusted,
                      const struct guard_result *scan);
/* Containment: a delegated token or a flagged A2A reply carries the flags over. */
void guard_taint_merge(struct guard_taint *t, const struct guard_taint *from);
/* Before calling `tool` with these labels: true when the call would complete the lethal
 * trifecta (private data read + untrusted content read + an exfiltration tool); reason
 * then names the three legs, e.g. "lethal trifecta: this session read private data
 * (files.read_file), read untrusted content (web.fetch (guard: override.ignore_previous)),
 * and mail.send_email can send data out (exfiltration)". The caller refuses the call
 * unless a Cedar policy explicitly permits it (flags in the policy context). */
bool guard_trifecta(const struct guard_taint *t, const char *tool, unsigned labels, char *reason,
                    size_t cap);

/* `portcullis guard …` */
int guard_cli_main(int argc, char **argv);

#endif
