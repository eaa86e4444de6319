// SPDX-License-Identifier: Apache-2.0
// Shared by the policy unit tests: evaluate one Cedar expression as the
// condition of `permit(principal, action, resource) when { … };` and get
// back true, false, an evaluation error or a parse error.
#ifndef PORTCULLIS_TESTS_POLICY_HELPERS_H
#define PORTCULLIS_TESTS_POLICY_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/buf.h"
#include "policy/policy.h"

enum { EV_FALSE = 0, EV_TRUE = 1, EV_ERROR = -1, EV_PARSE = -2 };

/* Entities most expression tests share: a small photo-sharing hierarchy. */
static const char *const test_entities_json =
    "["
    " {\"uid\": {\"type\": \"User\", \"id\": \"alice\"},"
    "  \"attrs\": {\"age\": 30, \"name\": \"Alice\", \"tags\": [\"a\", \"b\"],"
    "             \"addr\": {\"city\": \"Paris\", \"zip\": \"75001\"},"
    "             \"manager\": {\"__entity\": {\"type\": \"User\", \"id\": \"bob\"}},"
    "             \"ip\": {\"__extn\": {\"fn\": \"ip\", \"arg\": \"10.0.0.7\"}}},"
    "  \"parents\": [{\"type\": \"Group\", \"id\": \"staff\"}],"
    "  \"tags\": {\"team\": \"red\", \"level\": 3}},"
    " {\"uid\": {\"type\": \"User\", \"id\": \"bob\"}, \"attrs\": {}, \"parents\": []},"
    " {\"uid\": {\"type\": \"Group\", \"id\": \"staff\"}, \"attrs\": {},"
    "  \"parents\": [{\"type\": \"Group\", \"id\": \"everyone\"}]},"
    " {\"uid\": {\"type\": \"Group\", \"id\": \"everyone\"}, \"attrs\": {}, \"parents\": []},"
    " {\"uid\": {\"type\": \"Action\", \"id\": \"read\"}, \"attrs\": {},"
    "  \"parents\": [{\"type\": \"Action\", \"id\": \"readonly\"}]},"
    " {\"uid\": {\"type\": \"Photo\", \"id\": \"p1\"}, \"attrs\": {\"owner\": "
    "   {\"__entity\": {\"type\": \"User\", \"id\": \"alice\"}}},"
    "  \"parents\": [{\"type\": \"Album\", \"id\": \"trip\"}]}"
    "]";

static inline policy_entities_t *test_entities(void)
{
    char err[256];
    policy_entities_t *es =
        policy_entities_load_text(test_entities_json, strlen(test_entities_json), err, sizeof(err));
    if (!es)
        fail_msg("entities: %s", err);
    return es;
}

/* Decides the request User::"alice" / Action::"read" / Photo::"p1" with
 * the given context (JSON text, may be NULL) against policy text. The
 * decision's ids belong to the set: it is freed by decision_done(). */
static policy_set_t *decided_set;

static inline void decision_done(struct policy_decision *d)
{
    policy_decision_free(d);
    policy_set_free(decided_set);
    decided_set = NULL;
}

static inline int decide_text(const char *policies, const policy_entities_t *es,
                              const char *context, struct policy_decision *d)
{
    struct policy_diags diags = {0};
    policy_set_t *s = policy_set_new(POLICY_SET_POSITIONAL_IDS);
    assert_non_null(s);
    if (policy_set_add_text(s, "t.cedar", policies, strlen(policies), &diags)) {
        policy_diags_free(&diags);
        policy_set_free(s);
        return EV_PARSE;
    }
    struct policy_request req = {
        .principal = policy_uid_make("User", "alice"),
        .action = policy_uid_make("Action", "read"),
        .resource = policy_uid_make("Photo", "p1"),
        .context_json = context,
        .context_json_len = context ? strlen(context) : 0,
    };
    int rc = policy_decide(s, es, &req, d);
    policy_set_free(decided_set);
    decided_set = s;
    return rc;
}

/* EV_TRUE / EV_FALSE / EV_ERROR / EV_PARSE for one expression. */
static inline int eval_ctx(const char *expr, const char *context)
{
    char text[4096];
    snprintf(text, sizeof(text), "permit(principal, action, resource) when { %s };", expr);
    policy_entities_t *es = test_entities();
    struct policy_decision d;
    int rc = decide_text(text, es, context, &d);
    policy_entities_free(es);
    if (rc == EV_PARSE)
        return EV_PARSE;
    assert_int_equal(rc, 0);
    int r = d.nerrors ? EV_ERROR : d.allow ? EV_TRUE : EV_FALSE;
    decision_done(&d);
    return r;
}

static inline int eval(const char *expr)
{
    return eval_ctx(expr, NULL);
}

#define assert_true_expr(e) assert_int_equal(eval(e), EV_TRUE)
#define assert_false_expr(e) assert_int_equal(eval(e), EV_FALSE)
#define assert_error_expr(e) assert_int_equal(eval(e), EV_ERROR)
#define assert_parse_error(e) assert_int_equal(eval(e), EV_PARSE)

/* Parse errors of a policy text, as `file:line:col: message` lines. */
static inline char *parse_errors(const char *policies)
{
    struct policy_diags diags = {0};
    policy_set_t *s = policy_set_new(0);
    assert_non_null(s);
    int rc = policy_set_add_text(s, "t.cedar", policies, strlen(policies), &diags);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    policy_diags_print(&diags, f);
    fclose(f);
    policy_diags_free(&diags);
    policy_set_free(s);
    if (rc == 0) {
        free(text);
        return NULL;
    }
    return text;
}

#endif
