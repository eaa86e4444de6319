// SPDX-License-Identifier: Apache-2.0
// A2A JSON-RPC on the gateway's side of the wire: reading a client's request
// (method, id, the skill it names), writing JSON-RPC errors, and rewriting an
// agent card so its interfaces point at the gateway. Pure; no I/O.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "a2a/internal.h"
#include "core/json.h"

#define MAX_METHOD 128

static const struct {
    const char *name;
    enum a2a_method_kind kind;
} methods[] = {
    /* A2A 1.0 (gRPC-style names) */
    {"SendMessage", A2A_M_SEND},
    {"SendStreamingMessage", A2A_M_STREAM},
    {"SubscribeToTask", A2A_M_SUBSCRIBE},
    /* A2A 0.3 */
    {"message/send", A2A_M_SEND},
    {"message/stream", A2A_M_STREAM},
    {"tasks/resubscribe", A2A_M_SUBSCRIBE},
};

enum a2a_method_kind a2a_method_kind(const char *method)
{
    for (size_t i = 0; method != NULL && i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(method, methods[i].name) == 0)
            return methods[i].kind;
    return A2A_M_OTHER;
}

void a2a_rpc_clear(struct a2a_rpc *r)
{
    json_decref(r->root);
    memset(r, 0, sizeof *r);
}

static int method_ok(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > MAX_METHOD)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)m[i] <= ' ' || m[i] == 127 || m[i] == '"' || m[i] == '\\')
            return 0;
    return 1;
}

static const char *skill_of(json_t *params)
{
    json_t *s =
        json_object_get(json_object_get(json_object_get(params, "message"), "metadata"), "skill");
    if (!json_is_string(s))
        s = json_object_get(json_object_get(params, "metadata"), "skill");
    return json_is_string(s) && json_string_length(s) > 0 && json_string_length(s) <= 128
               ? json_string_value(s)
               : NULL;
}

int a2a_rpc_parse(const char *body, size_t len, struct a2a_rpc *out, char *msg, size_t msglen)
{
    struct json_span root;
    struct json_error jerr;
    memset(out, 0, sizeof *out);
    if (len == 0) {
        snprintf(msg, msglen, "parse error: the body is empty (expected a JSON-RPC request)");
        return A2A_PARSE_ERROR;
    }
    if (json_validate(body, len, &root, &jerr) != 0) {
        snprintf(msg, msglen, "parse error: %s at line %u, column %u", jerr.msg, jerr.line,
                 jerr.column);
        return A2A_PARSE_ERROR;
    }
    if (root.kind == JS_ARRAY) {
        snprintf(msg, msglen, "invalid request: batch requests are not supported by A2A");
        return A2A_INVALID_REQUEST;
    }
    if (root.kind != JS_OBJECT) {
        snprintf(msg, msglen, "invalid request: expected a JSON-RPC request object");
        return A2A_INVALID_REQUEST;
    }
    json_error_t e;
    out->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (out->root == NULL) {
        /* valid JSON that jansson refuses: a duplicate key, or a number it cannot hold */
        snprintf(msg, msglen, "invalid request: %.120s", e.text);
        return A2A_INVALID_REQUEST;
    }
    json_t *id = json_object_get(out->root, "id");
    if (id != NULL && (json_is_string(id) || json_is_integer(id) || json_is_null(id)))
        out->id = id;
    json_t *ver = json_object_get(out->root, "jsonrpc");
    if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0) {
        snprintf(msg, msglen, "invalid request: \"jsonrpc\" must be \"2.0\"");
        return A2A_INVALID_REQUEST;
    }
    if (id == NULL) {
        snprintf(msg, msglen, "invalid request: \"id\" is required (A2A has no notifications)");
        return A2A_INVALID_REQUEST;
    }
    if (out->id == NULL) {
        snprintf(msg, msglen, "invalid request: \"id\" must be a string, an integer or null");
        return A2A_INVALID_REQUEST;
    }
    json_t *m = json_object_get(out->root, "method");
    if (!json_is_string(m) || !method_ok(json_string_value(m))) {
        snprintf(msg, msglen,
                 "invalid request: \"method\" must be a string of 1-%d printable characters",
                 MAX_METHOD);
        return A2A_INVALID_REQUEST;
    }
    out->method = json_string_value(m);
    out->kind = a2a_method_kind(out->method);
    json_t *params = json_object_get(out->root, "params");
    if (params != NULL && !json_is_object(params)) {
        snprintf(msg, msglen, "invalid params: \"params\" must be an object");
        return A2A_INVALID_PARAMS;
    }
    if ((out->kind == A2A_M_SEND || out->kind == A2A_M_STREAM) &&
        !json_is_object(json_object_get(params, "message"))) {
        snprintf(msg, msglen, "invalid params: %s needs params.message (an object)", out->method);
        return A2A_INVALID_PARAMS;
    }
    out->skill = skill_of(params);
    return 0;
}

char *a2a_rpc_error(const json_t *id, int code, const char *message, const char *reason)
{
    json_t *err = json_pack("{s:i, s:s}", "code", code, "message", message ? message : "error");
    if (err != NULL && reason != NULL)
        json_object_set_new(err, "data", json_pack("{s:s}", "reason", reason));
    json_t *r = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id",
                          id ? (json_t *)id : json_null(), "error", err);
    if (r == NULL)
        return NULL;
    char *s = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (t == NULL) {
        free(s);
        return NULL;
    }
    t[n] = '\n';
    t[n + 1] = '\0';
    return t;
}

/* ---- agent card ------------------------------------------------------------ */

/* Keeps the JSON-RPC entries of an interface list (transport key names the
 * binding), each pointed at rpc_url; the others are dropped. */
static void rewrite_interfaces(json_t *list, const char *transport_key, const char *rpc_url)
{
    if (!json_is_array(list))
        return;
    for (size_t i = json_array_size(list); i-- > 0;) {
        json_t *it = json_array_get(list, i);
        json_t *t = json_object_get(it, transport_key);
        if (!json_is_object(it) || !json_is_string(t) ||
            strcasecmp(json_string_value(t), "JSONRPC") != 0) {
            json_array_remove(list, i);
            continue;
        }
        json_object_set_new(it, "url", json_string(rpc_url));
    }
}

void a2a_card_rewrite_json(json_t *card, const char *rpc_url)
{
    if (!json_is_object(card))
        return;
    if (json_object_get(card, "url") != NULL)
        json_object_set_new(card, "url", json_string(rpc_url));
    if (json_object_get(card, "preferredTransport") != NULL)
        json_object_set_new(card, "preferredTransport", json_string("JSONRPC"));
    rewrite_interfaces(json_object_get(card, "additionalInterfaces"), "transport", rpc_url);
    rewrite_interfaces(json_object_get(card, "supportedInterfaces"), "protocolBinding", rpc_url);
    json_object_del(card, "signatures");
}

int a2a_method_returns_card(const char *method)
{
    return method != NULL && (strcmp(method, "GetExtendedAgentCard") == 0 ||
                              strcmp(method, "agent/getAuthenticatedExtendedCard") == 0);
}

char *a2a_card_rewrite(const char *in, size_t len, const char *rpc_url, char *msg, size_t msglen)
{
    struct json_span root;
    struct json_error jerr;
    if (json_validate(in, len, &root, &jerr) != 0) {
        snprintf(msg, msglen, "the agent card is not JSON (%s at line %u, column %u)", jerr.msg,
                 jerr.line, jerr.column);
        return NULL;
    }
    json_error_t e;
    json_t *card = json_loadb(in, len, JSON_REJECT_DUPLICATES, &e);
    if (!json_is_object(card)) {
        json_decref(card);
        snprintf(msg, msglen, "the agent card is not a JSON object");
        return NULL;
    }
    a2a_card_rewrite_json(card, rpc_url);
    char *s = json_dumps(card, JSON_COMPACT);
    json_decref(card);
    if (s == NULL)
        snprintf(msg, msglen, "out of memory");
    return s;
}
