// SPDX-License-Identifier: Apache-2.0
// Cedar policy engine: policy sets parsed from Cedar text, entity stores
// loaded from Cedar's entities JSON, and policy_decide(), the one call the
// gateway makes at every "may it?" point (model, tool, agent, delegation).
#ifndef PORTCULLIS_POLICY_POLICY_H
#define PORTCULLIS_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "core/arena.h"

typedef struct policy_set policy_set_t;
typedef struct policy_entities policy_entities_t;
typedef struct policy_schema policy_schema_t;

/* ---- diagnostics ------------------------------------------------------- */

struct policy_diag {
    char *file;         /* owned; "<string>" when loaded from memory */
    unsigned line, col; /* 1-based; col counts characters */
    char *message;      /* owned */
};

struct policy_diags {
    struct policy_diag *v; /* owned */
    size_t count, cap;
};

/* Prints one "file:line:col: message" line per diagnostic. */
void policy_diags_print(const struct policy_diags *d, FILE *out);
void policy_diags_free(struct policy_diags *d);

/* ---- policy sets ------------------------------------------------------- */

enum {
    /* Policy ids are positional ("policy0", "policy1", … in load order)
     * even when a policy carries @id("…"). Without it, @id names the
     * policy. The Cedar integration corpus uses positional ids. */
    POLICY_SET_POSITIONAL_IDS = 1 << 0,
};

/* An empty set; caller owns it (policy_set_free). NULL on out of memory. */
policy_set_t *policy_set_new(unsigned flags);
void policy_set_free(policy_set_t *s);

/* Parses Cedar text (any number of policies and templates) and adds them to
 * the set. file names the source in diagnostics (may be NULL). On any error
 * nothing is added, every error found is appended to diags (file:line:col)
 * and -1 is returned; 0 on success. */
int policy_set_add_text(policy_set_t *s, const char *file, const char *text, size_t len,
                        struct policy_diags *diags) __attribute__((warn_unused_result));

/* Reads and adds a file; same contract. */
int policy_set_add_file(policy_set_t *s, const char *path, struct policy_diags *diags)
    __attribute__((warn_unused_result));

/* Number of policies (static and linked) and templates in the set. */
size_t policy_set_count(const policy_set_t *s);
size_t policy_set_template_count(const policy_set_t *s);

/* Annotation `key` of policy `id`, NUL-terminated and owned by the set;
 * NULL when the policy or the annotation does not exist. */
const char *policy_set_annotation(const policy_set_t *s, const char *id, const char *key);

/* ---- entity uids ------------------------------------------------------- */

/* An entity uid given by the caller; type and id need not be NUL-terminated
 * (Cedar ids may contain NUL bytes). type may carry a namespace: "NS::User". */
struct policy_uid {
    const char *type;
    size_t type_len;
    const char *id;
    size_t id_len;
};

/* From NUL-terminated strings. */
struct policy_uid policy_uid_make(const char *type, const char *id);

/* Parses `Type::"id"` (Cedar syntax, escapes allowed) into *out, whose
 * strings point into arena. 0, or -1 with a static message in *err. */
int policy_uid_parse(arena_t *arena, const char *text, struct policy_uid *out, const char **err);

/* ---- templates --------------------------------------------------------- */

/* Links template `template_id` into a new policy `new_id`, filling
 * ?principal and ?resource (pass NULL for a slot the template lacks).
 * 0, or -1 with a message in err (err_len bytes at most). */
int policy_set_link(policy_set_t *s, const char *template_id, const char *new_id,
                    const struct policy_uid *principal, const struct policy_uid *resource,
                    char *err, size_t err_len) __attribute__((warn_unused_result));

/* ---- schemas ----------------------------------------------------------- */

/* A Cedar schema (.cedarschema text), used for schema-based parsing of
 * entities and contexts: attributes the schema types as entities or
 * extension values may then be written without the __entity / __extn
 * escapes, and actions declared `in` groups become entities with those
 * parents. Policies are not validated against it. NULL on error, with
 * file:line:col diagnostics in diags. Caller owns the result. */
policy_schema_t *policy_schema_load_text(const char *file, const char *text, size_t len,
                                         struct policy_diags *diags);
policy_schema_t *policy_schema_load_file(const char *path, struct policy_diags *diags);
void policy_schema_free(policy_schema_t *s);

/* ---- entities ---------------------------------------------------------- */

/* Loads Cedar entities JSON (an array of {uid, attrs, parents, tags}), and
 * computes the transitive closure of `parents`. As strict as the reference:
 * attrs and parents are required, a uid appears once, the hierarchy has no
 * cycle, actions have only action parents, floats and null are refused.
 * Caller owns the result (policy_entities_free). NULL on error with a
 * message in err. */
policy_entities_t *policy_entities_load_json(const json_t *array, char *err, size_t err_len);
policy_entities_t *policy_entities_load_text(const char *text, size_t len, char *err,
                                             size_t err_len);
policy_entities_t *policy_entities_load_file(const char *path, char *err, size_t err_len);
/* The same with schema-based parsing (schema may be NULL). */
policy_entities_t *policy_entities_load_file_schema(const char *path, const policy_schema_t *schema,
                                                    char *err, size_t err_len);
/* An empty store (NULL on out of memory). */
policy_entities_t *policy_entities_new_empty(void);
size_t policy_entities_count(const policy_entities_t *es);
void policy_entities_free(policy_entities_t *es);

/* ---- decisions --------------------------------------------------------- */

struct policy_request {
    struct policy_uid principal, action, resource;
    /* The context record, a JSON object in Cedar's format, given either as
     * a jansson value (borrowed) or as JSON text; neither means {}. */
    const json_t *context;
    const char *context_json;
    size_t context_json_len;
    /* Optional: read the context by the schema's type for the action. */
    const policy_schema_t *schema;
};

struct policy_eval_error {
    const char *policy_id; /* owned by the set */
    const char *message;   /* owned by the decision */
};

/* The ids in a decision belong to the policy set: free the decision before
 * the set (a gateway holds its config snapshot for the request anyway). */
struct policy_decision {
    bool allow;
    size_t nreasons;
    const char **reasons; /* ids of the determining policies, in set order */
    size_t nerrors;
    struct policy_eval_error *errors; /* policies skipped because they erred */
    arena_t arena;                    /* everything above that the decision owns */
};

/* Decides a request: forbid overrides permit, no satisfied permit means
 * deny, a policy whose evaluation errs is skipped and listed in errors.
 * `entities` may be NULL (no entities). Fills *out, which the caller
 * releases with policy_decision_free even on failure. Returns 0, or -1
 * when the request itself is malformed (context not a record in Cedar's
 * JSON format); the message is then in out->errors[0] with a NULL id. */
int policy_decide(const policy_set_t *s, const policy_entities_t *entities,
                  const struct policy_request *req, struct policy_decision *out)
    __attribute__((warn_unused_result));
void policy_decision_free(struct policy_decision *d);

/* ---- the gateway's questions -------------------------------------------- */

/* {"chain": [chain...], "depth": depth}: the context every "may it?" of the
 * gateway starts from; callers add their own keys. NULL when out of memory. */
json_t *policy_chain_context(const char *const *chain, size_t n, size_t depth);

/* The determining policies of d, ", "-separated, into out (truncated to
 * cap; "" when none). Returns the length written. */
size_t policy_ids_join(const struct policy_decision *d, char *out, size_t cap);
/* The same (at most 4 KiB) copied into a; NULL when d has no determining
 * policy or a is out of memory. */
const char *policy_ids_dup(const struct policy_decision *d, arena_t *a);

/* Whether d refuses the call under a config's default: with default deny,
 * anything not permitted; with default allow, only what a forbid decided. */
static inline int policy_denies(const struct policy_decision *d, int default_allow)
{
    return !d->allow && (!default_allow || d->nreasons > 0);
}

/* ---- conformance and command line ------------------------------------- */

struct policy_corpus_result {
    size_t passed, failed, files;
};

/* Runs Cedar integration-test JSON files (a file, or every test file under a
 * folder). Failures are described on `log` (may be NULL). 0 when every
 * request passed, -1 otherwise (including unreadable tests). */
int policy_corpus_run(const char *const *paths, size_t npaths, FILE *log,
                      struct policy_corpus_result *res);

/* `portcullis policy …`; argv[0] is "policy". */
int policy_cli_main(int argc, char **argv);

#endif
