// SPDX-License-Identifier: Apache-2.0
// Unit tests for a2a/rpc.c: reading A2A JSON-RPC requests in both dialects
// (1.0 SendMessage and 0.3 message/send), every refusal with its code, the
// skill named in metadata, error bodies, and the agent card rewrite for 1.0
// (supportedInterfaces) and 0.3 (url, additionalInterfaces) cards.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "a2a/internal.h"

static int parse(const char *body, struct a2a_rpc *r, char *msg, size_t n)
{
    return a2a_rpc_parse(body, strlen(body), r, msg, n);
}

static void reads_a_10_send_with_its_skill(void **state)
{
    (void)state;
    struct a2a_rpc r;
    char msg[256];
    const char *b = "{\"jsonrpc\":\"2.0\",\"id\":\"a-1\",\"method\":\"SendMessage\",\"params\":"
                    "{\"message\":{\"role\":\"ROLE_USER\",\"parts\":[{\"text\":\"hi\"}],"
                    "\"metadata\":{\"skill\":\"summarise\"}}}}";
    assert_int_equal(parse(b, &r, msg, sizeof msg), 0);
    assert_string_equal(r.method, "SendMessage");
    assert_int_equal(r.kind, A2A_M_SEND);
    assert_string_equal(json_string_value(r.id), "a-1");
    assert_string_equal(r.skill, "summarise");
    a2a_rpc_clear(&r);
}

static void reads_03_methods_and_kinds(void **state)
{
    (void)state;
    struct a2a_rpc r;
    char msg[256];
    assert_int_equal(
        parse("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"message/stream\","
              "\"params\":{\"message\":{\"parts\":[]},\"metadata\":{\"skill\":\"x\"}}}",
              &r, msg, sizeof msg),
        0);
    assert_int_equal(r.kind, A2A_M_STREAM);
    assert_int_equal(json_integer_value(r.id), 5);
    assert_string_equal(r.skill, "x");
    a2a_rpc_clear(&r);
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"tasks/get\","
                           "\"params\":{\"id\":\"t\"}}",
                           &r, msg, sizeof msg),
                     0);
    assert_int_equal(r.kind, A2A_M_OTHER);
    assert_null(r.skill);
    assert_true(json_is_null(r.id));
    a2a_rpc_clear(&r);
    assert_int_equal(a2a_method_kind("tasks/resubscribe"), A2A_M_SUBSCRIBE);
    assert_int_equal(a2a_method_kind("SubscribeToTask"), A2A_M_SUBSCRIBE);
    assert_int_equal(a2a_method_kind("SendStreamingMessage"), A2A_M_STREAM);
    assert_int_equal(a2a_method_kind("sendmessage"), A2A_M_OTHER);
}

static void refuses_bad_requests_with_the_right_code(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int code;
    } cases[] = {
        {"", A2A_PARSE_ERROR},
        {"{", A2A_PARSE_ERROR},
        {"{\"a\":1}x", A2A_PARSE_ERROR},
        {"\"\\ud800\"", A2A_PARSE_ERROR},
        {"[{\"jsonrpc\":\"2.0\"}]", A2A_INVALID_REQUEST},
        {"42", A2A_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"method\":\"SendMessage\",\"params\":{\"message\":{}}}",
         A2A_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.1\",\"id\":1,\"method\":\"SendMessage\"}", A2A_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"SendMessage\"}", A2A_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"SendMessage\"}", A2A_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\"}", A2A_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a b\"}", A2A_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}", A2A_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tasks/get\",\"method\":\"SendMessage\"}",
         A2A_INVALID_REQUEST},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendMessage\",\"params\":[1]}",
         A2A_INVALID_PARAMS},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"SendMessage\",\"params\":{}}",
         A2A_INVALID_PARAMS},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message/stream\"}", A2A_INVALID_PARAMS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct a2a_rpc r;
        char msg[256] = "";
        int code = parse(cases[i].body, &r, msg, sizeof msg);
        if (code != cases[i].code)
            fail_msg("case %zu (%s): got %d (%s)", i, cases[i].body, code, msg);
        assert_true(msg[0] != '\0');
        a2a_rpc_clear(&r);
    }
}

static void keeps_the_id_of_a_request_it_refuses(void **state)
{
    (void)state;
    struct a2a_rpc r;
    char msg[256];
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":\"x9\",\"method\":\"SendMessage\"}", &r,
                           msg, sizeof msg),
                     A2A_INVALID_PARAMS);
    assert_string_equal(json_string_value(r.id), "x9");
    char *e = a2a_rpc_error(r.id, A2A_INVALID_PARAMS, msg, NULL);
    assert_non_null(strstr(e, "\"id\":\"x9\""));
    assert_non_null(strstr(e, "-32602"));
    free(e);
    a2a_rpc_clear(&r);
}

static void error_bodies_are_jsonrpc(void **state)
{
    (void)state;
    char *e = a2a_rpc_error(NULL, A2A_PERMISSION_DENIED, "no \"way\"", "policy_denied");
    json_t *j = json_loads(e, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "jsonrpc")), "2.0");
    assert_true(json_is_null(json_object_get(j, "id")));
    json_t *err = json_object_get(j, "error");
    assert_int_equal(json_integer_value(json_object_get(err, "code")), -32050);
    assert_string_equal(json_string_value(json_object_get(err, "message")), "no \"way\"");
    assert_string_equal(json_string_value(json_object_get(json_object_get(err, "data"), "reason")),
                        "policy_denied");
    json_decref(j);
    free(e);
}

static void rewrites_a_10_card(void **state)
{
    (void)state;
    const char *card =
        "{\"name\":\"echo\",\"supportedInterfaces\":["
        "{\"url\":\"http://10.0.0.5:9000/\",\"protocolBinding\":\"JSONRPC\",\"protocolVersion\":"
        "\"1.0\"},"
        "{\"url\":\"10.0.0.5:9001\",\"protocolBinding\":\"GRPC\"},"
        "{\"url\":\"http://10.0.0.5:9000/rest\",\"protocolBinding\":\"HTTP+JSON\"}],"
        "\"skills\":[{\"id\":\"s\"}],\"signatures\":[{\"protected\":\"x\",\"signature\":\"y\"}]}";
    char msg[200];
    char *out =
        a2a_card_rewrite(card, strlen(card), "https://gw.example/a2a/echo", msg, sizeof msg);
    assert_non_null(out);
    json_t *j = json_loads(out, 0, NULL);
    json_t *ifs = json_object_get(j, "supportedInterfaces");
    assert_int_equal(json_array_size(ifs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ifs, 0), "url")),
                        "https://gw.example/a2a/echo");
    assert_null(json_object_get(j, "signatures"));
    assert_null(strstr(out, "10.0.0.5"));
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "skills"), 0), "id")),
        "s");
    json_decref(j);
    free(out);
}

static void rewrites_a_03_card(void **state)
{
    (void)state;
    const char *card = "{\"name\":\"old\",\"url\":\"http://up:1/rpc\",\"preferredTransport\":"
                       "\"GRPC\",\"additionalInterfaces\":[{\"url\":\"http://up:1/rpc\","
                       "\"transport\":\"JSONRPC\"},{\"url\":\"up:2\",\"transport\":\"GRPC\"}]}";
    char msg[200];
    char *out = a2a_card_rewrite(card, strlen(card), "http://gw/a2a/old", msg, sizeof msg);
    assert_non_null(out);
    json_t *j = json_loads(out, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "url")), "http://gw/a2a/old");
    assert_string_equal(json_string_value(json_object_get(j, "preferredTransport")), "JSONRPC");
    assert_int_equal(json_array_size(json_object_get(j, "additionalInterfaces")), 1);
    json_decref(j);
    free(out);
}

static void refuses_cards_that_are_not_objects(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "[]", "\"card\"", "{\"a\":1,\"a\":2}", "{"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char msg[200] = "";
        char *out = a2a_card_rewrite(bad[i], strlen(bad[i]), "http://gw/a2a/x", msg, sizeof msg);
        if (out != NULL)
            fail_msg("card %zu accepted: %s", i, out);
        assert_true(msg[0] != '\0');
    }
}

static void extended_card_results_are_rewritten_in_place(void **state)
{
    (void)state;
    assert_true(a2a_method_returns_card("GetExtendedAgentCard"));
    assert_true(a2a_method_returns_card("agent/getAuthenticatedExtendedCard"));
    assert_false(a2a_method_returns_card("GetTask"));
    assert_false(a2a_method_returns_card(NULL));
    json_t *card = json_loads("{\"url\":\"http://up/\",\"supportedInterfaces\":[{\"url\":"
                              "\"http://up/\",\"protocolBinding\":\"jsonrpc\"}]}",
                              0, NULL);
    a2a_card_rewrite_json(card, "http://gw/a2a/x");
    char *s = json_dumps(card, JSON_COMPACT);
    assert_null(strstr(s, "http://up/"));
    free(s);
    json_decref(card);
    json_t *notcard = json_string("x");
    a2a_card_rewrite_json(notcard, "http://gw/a2a/x"); /* left alone */
    assert_string_equal(json_string_value(notcard), "x");
    json_decref(notcard);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_a_10_send_with_its_skill),
        cmocka_unit_test(reads_03_methods_and_kinds),
        cmocka_unit_test(refuses_bad_requests_with_the_right_code),
        cmocka_unit_test(keeps_the_id_of_a_request_it_refuses),
        cmocka_unit_test(error_bodies_are_jsonrpc),
        cmocka_unit_test(rewrites_a_10_card),
        cmocka_unit_test(rewrites_a_03_card),
        cmocka_unit_test(refuses_cards_that_are_not_objects),
        cmocka_unit_test(extended_card_results_are_rewritten_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
