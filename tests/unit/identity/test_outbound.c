// SPDX-License-Identifier: Apache-2.0
// What an upstream (MCP server, A2A agent) receives about its caller: the
// gateway-signed identity token, verified with the gateway's own published
// keys, and the W3C traceparent the gateway propagates.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "http/server.h"
#include "identity/identity.h"
#include "identity/internal.h"
#include "telemetry/trace.h"

struct fixture {
    char dir[64];
    struct config *cfg;
    struct identity *id;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof f->dir, "/tmp/pcl-outbound-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char name[128];
    snprintf(name, sizeof name, "%s/gw.yaml", f->dir);
    const char *yaml = "listen: 127.0.0.1:1\nidentity: {issuer: gw.example}\n";
    struct config_errors errs;
    f->cfg = config_load_string(name, yaml, strlen(yaml), &errs);
    assert_non_null(f->cfg);
    char err[256];
    f->id = identity_new(f->cfg, err, sizeof err);
    if (f->id == NULL)
        fail_msg("identity_new: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    identity_free(f->id);
    config_unref(f->cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static json_t *verify(struct fixture *f, const char *tok, const char *aud, enum jwt_result want)
{
    struct identity_keys *k = identity_keys_get(f->id);
    static const char *const algs[] = {"ES256"};
    const char *auds[] = {aud};
    struct jwt_rules rules = {.issuer = "gw.example", .audiences = auds, .naudiences = 1,
                              .algs = algs, .nalgs = 1, .now = (int64_t)time(NULL),
                              .leeway_s = 5, .require_exp = 1};
    json_t *claims = NULL;
    char why[256];
    enum jwt_result r = jwt_verify(tok, strlen(tok), k->gateway_pub, &rules, &claims, why, sizeof why);
    identity_keys_put(k);
    if (r != want)
        fail_msg("verify: got %s (%s), want %s", jwt_result_text(r), why, jwt_result_text(want));
    return claims;
}

static void test_token_names_the_agent_and_its_chain(void **state)
{
    struct fixture *f = *state;
    const char *chain[] = {"alice-agent", "planner", "coder"};
    struct identity_principal p = {.agent = "coder", .auth = "delegation", .chain = chain,
                                   .chain_len = 3, .scope = "mcp:files",
                                   .root_request_id = "root-1"};
    char *tok = identity_outbound_token(f->id, "gw.example", &p, "mcp:files", "req-9", 60);
    assert_non_null(tok);
    json_t *c = verify(f, tok, "mcp:files", JWT_OK);
    assert_string_equal(json_string_value(json_object_get(c, "sub")), "coder");
    assert_string_equal(json_string_value(json_object_get(c, "scope")), "mcp:files");
    json_t *act = json_object_get(c, "act");
    assert_string_equal(json_string_value(json_object_get(act, "sub")), "planner");
    act = json_object_get(act, "act");
    assert_string_equal(json_string_value(json_object_get(act, "sub")), "alice-agent");
    assert_null(json_object_get(act, "act"));
    json_t *pcl = json_object_get(c, "pcl");
    assert_string_equal(json_string_value(json_object_get(pcl, "rid")), "req-9");
    assert_string_equal(json_string_value(json_object_get(pcl, "root")), "root-1");
    json_int_t exp = json_integer_value(json_object_get(c, "exp"));
    json_int_t iat = json_integer_value(json_object_get(c, "iat"));
    assert_int_equal(exp - iat, 60);
    json_decref(c);
    /* another upstream does not accept it */
    verify(f, tok, "mcp:mail", JWT_AUDIENCE);
    /* a flipped payload byte breaks the signature */
    char *dot = strchr(tok, '.');
    dot[5] = dot[5] == 'A' ? 'B' : 'A';
    verify(f, tok, "mcp:files", JWT_SIGNATURE);
    free(tok);
}

static void test_anonymous_and_single_agent_have_no_act(void **state)
{
    struct fixture *f = *state;
    char *tok = identity_outbound_token(f->id, "gw.example", NULL, "a2a:x", "req-1", 30);
    json_t *c = verify(f, tok, "a2a:x", JWT_OK);
    assert_string_equal(json_string_value(json_object_get(c, "sub")), "anonymous");
    assert_null(json_object_get(c, "act"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "pcl"), "root")),
                        "req-1");
    json_decref(c);
    free(tok);
    const char *chain[] = {"solo"};
    struct identity_principal p = {.agent = "solo", .chain = chain, .chain_len = 1,
                                   .expires = (int64_t)time(NULL) + 10};
    tok = identity_outbound_token(f->id, "gw.example", &p, "a2a:x", "req-2", 600);
    c = verify(f, tok, "a2a:x", JWT_OK);
    assert_null(json_object_get(c, "act"));
    /* never outlives the caller's own credential */
    assert_true(json_integer_value(json_object_get(c, "exp")) <= p.expires);
    json_decref(c);
    free(tok);
    assert_null(identity_outbound_token(f->id, "gw.example", &p, "a2a:x", "req-2", 0));
}

static void test_traceparent_parse(void **state)
{
    (void)state;
    char t[33], s[17];
    const char *ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_true(traceparent_parse(ok, strlen(ok), t, s));
    assert_string_equal(t, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(s, "00f067aa0ba902b7");
    const char *later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra";
    assert_true(traceparent_parse(later, strlen(later), t, NULL));
    static const char *const bad[] = {
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* 00 is exactly 55 */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (traceparent_parse(bad[i], strlen(bad[i]), t, s))
            fail_msg("accepted %s", bad[i]);
}

static void test_outbound_traceparent_keeps_the_trace(void **state)
{
    (void)state;
    struct http_exchange ex = {0};
    snprintf(ex.request_id, sizeof ex.request_id, "req-a");
    char a[TRACEPARENT_LEN + 1], b[TRACEPARENT_LEN + 1], t[33], s[17], t2[33];
    trace_outbound(&ex, a);
    assert_int_equal(strlen(a), TRACEPARENT_LEN);
    assert_true(traceparent_parse(a, strlen(a), t, s));
    trace_id_of_exchange(&ex, t2);
    assert_string_equal(t, t2);
    /* a later call of the same delegation chain shares the trace, not the span */
    const char *chain[] = {"a", "b"};
    struct identity_principal p = {.agent = "b", .chain = chain, .chain_len = 2,
                                   .root_request_id = "req-a"};
    struct http_exchange ex2 = {.principal = &p};
    snprintf(ex2.request_id, sizeof ex2.request_id, "req-b");
    trace_outbound(&ex2, b);
    assert_memory_equal(a + 3, b + 3, 32);
    assert_memory_not_equal(a + 36, b + 36, 16);
}

/* A request that comes back with a span the gateway sent upstream is the
 * child of the request that sent it (and shares its root); an unknown span,
 * or none, links nothing. */
static void test_inbound_traceparent_links_to_the_sending_request(void **state)
{
    (void)state;
    const char *chain[] = {"root-agent", "agent"};
    struct identity_principal p = {.agent = "agent", .chain = chain, .chain_len = 2,
                                   .root_request_id = "req-root"};
    struct http_exchange parent = {.principal = &p};
    snprintf(parent.request_id, sizeof parent.request_id, "req-parent");
    char tp[TRACEPARENT_LEN + 1], got_parent[64], got_root[64];
    trace_outbound(&parent, tp);

    struct http_header h = {.name = "traceparent", .name_len = 11, .value = tp,
                            .value_len = strlen(tp)};
    struct http_request req = {.headers = &h, .nheaders = 1};
    struct http_exchange child = {.req = &req};
    snprintf(child.request_id, sizeof child.request_id, "req-child");
    assert_int_equal(trace_parent_of_exchange(&child, got_parent, got_root), 1);
    assert_string_equal(got_parent, "req-parent");
    assert_string_equal(got_root, "req-root");
    /* the child's trace is the parent's */
    char t1[33], t2[33];
    trace_id_of_exchange(&parent, t1);
    trace_id_of_exchange(&child, t2);
    assert_string_equal(t1, t2);

    /* a span nobody here sent */
    char other[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    h.value = other;
    h.value_len = strlen(other);
    assert_int_equal(trace_parent_of_exchange(&child, got_parent, got_root), 0);
    /* a malformed header, and no header */
    h.value = "00-zz";
    h.value_len = 5;
    assert_int_equal(trace_parent_of_exchange(&child, got_parent, got_root), 0);
    req.nheaders = 0;
    assert_int_equal(trace_parent_of_exchange(&child, got_parent, got_root), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_token_names_the_agent_and_its_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anonymous_and_single_agent_have_no_act, setup,
                                        teardown),
        cmocka_unit_test(test_traceparent_parse),
        cmocka_unit_test(test_outbound_traceparent_keeps_the_trace),
        cmocka_unit_test(test_inbound_traceparent_links_to_the_sending_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
