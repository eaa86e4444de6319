// SPDX-License-Identifier: Apache-2.0
// JSON-RPC 2.0 as MCP uses it: one message per POST body (or a batch of them,
// protocol 2025-03-26 only), each classified as a
// request, a notification or a response, with the error codes the spec
// assigns to each way it can be wrong. Runs on the hub thread (jansson DOM:
// the hub rewrites ids, names and tokens in what it forwards).
#include <stdio.h>
#include <string.h>

#include "mcp/internal.h"

const char *const mcp_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26"};
const size_t mcp_nversions = sizeof mcp_versions / sizeof mcp_versions[0];

int mcp_version_supported(const char *v)
{
    for (size_t i = 0; v != NULL && i < mcp_nversions; i++)
        if (strcmp(v, mcp_versions[i]) == 0)
            return 1;
    return 0;
}

static int id_ok(const json_t *id)
{
    /* MCP: a string or an integer, never null (JSON-RPC allows more). */
    return json_is_string(id) || json_is_integer(id);
}

int mcp_rpc_parse(const char *s, size_t len, struct mcp_rpc *out, json_t **id, char *why,
                  size_t whylen)
{
    json_error_t jerr;
    memset(out, 0, sizeof *out);
    *id = NULL;
    json_t *root = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(why, whylen, "Parse error: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        return JSONRPC_PARSE_ERROR;
    }
    if (json_is_array(root)) {
        json_decref(root);
        snprintf(why, whylen, "Invalid Request: a batch inside a batch");
        return JSONRPC_INVALID_REQUEST;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        snprintf(why, whylen, "Invalid Request: a JSON-RPC message is an object");
        return JSONRPC_INVALID_REQUEST;
    }
    json_t *jv = json_object_get(root, "jsonrpc");
    json_t *jid = json_object_get(root, "id");
    json_t *jm = json_object_get(root, "method");
    json_t *jp = json_object_get(root, "params");
    json_t *jr = json_object_get(root, "result");
    json_t *je = json_object_get(root, "error");
    if (jid != NULL && id_ok(jid))
        *id = json_incref(jid);
    const char *bad = NULL;
    if (!json_is_string(jv) || strcmp(json_string_value(jv), "2.0") != 0)
        bad = "\"jsonrpc\" must be \"2.0\"";
    else if (jid != NULL && !id_ok(jid))
        bad = "\"id\" must be a string or an integer";
    else if (jm != NULL) {
        if (!json_is_string(jm) || json_string_length(jm) == 0)
            bad = "\"method\" must be a non-empty string";
        else if (jr != NULL || je != NULL)
            bad = "a request has no \"result\" or \"error\"";
        else if (jp != NULL && !json_is_object(jp)) {
            snprintf(why, whylen, "Invalid params: \"params\" must be an object");
            json_decref(root);
            return JSONRPC_INVALID_PARAMS;
        }
    } else if (jr != NULL || je != NULL) {
        if (jid == NULL)
            bad = "a response needs an \"id\"";
        else if (jr != NULL && je != NULL)
            bad = "a response has \"result\" or \"error\", not both";
        else if (je != NULL && !json_is_object(je))
            bad = "\"error\" must be an object";
    } else {
        bad = "a message needs \"method\" (request, notification) or \"result\"/\"error\" "
              "(response)";
    }
    if (bad != NULL) {
        snprintf(why, whylen, "Invalid Request: %s", bad);
        json_decref(root);
        return JSONRPC_INVALID_REQUEST;
    }
    out->root = root;
    out->id = jid;
    out->method = jm ? json_string_value(jm) : NULL;
    out->params = jp;
    out->kind = jm == NULL ? MCP_RESPONSE : jid != NULL ? MCP_REQUEST : MCP_NOTIFICATION;
    return 0;
}

int mcp_rpc_batch(const char *s, size_t len, json_t **elems, char *why, size_t whylen)
{
    size_t i = 0;
    *elems = NULL;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    if (i == len || s[i] != '[')
        return 0;
    json_error_t jerr;
    json_t *root = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(why, whylen, "Parse error: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        return JSONRPC_PARSE_ERROR;
    }
    size_t n = json_array_size(root);
    if (n == 0 || n > MCP_BATCH_MAX) {
        json_decref(root);
        if (n == 0)
            snprintf(why, whylen, "Invalid Request: an empty batch");
        else
            snprintf(why, whylen,
                     "Invalid Request: a batch carries at most %d messages, this one %zu",
                     MCP_BATCH_MAX, n);
        return JSONRPC_INVALID_REQUEST;
    }
    *elems = root;
    return 1;
}

void mcp_rpc_free(struct mcp_rpc *r)
{
    if (r->root)
        json_decref(r->root);
    memset(r, 0, sizeof *r);
}

static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

char *mcp_rpc_error(const json_t *id, int code, const char *msg, const json_t *data)
{
    json_t *err = json_pack("{s:i, s:s}", "code", code, "message", msg);
    if (err != NULL && data != NULL)
        json_object_set(err, "data", (json_t *)data);
    return dump(json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id",
                          id ? (json_t *)id : json_null(), "error", err));
}

char *mcp_rpc_result(const json_t *id, const json_t *result)
{
    return dump(json_pack("{s:s, s:O, s:O}", "jsonrpc", "2.0", "id", (json_t *)id, "result",
                          (json_t *)result));
}
