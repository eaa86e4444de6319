// SPDX-License-Identifier: Apache-2.0
// GET /v1/models: the models this gateway serves, in OpenAI's list format.
#include <string.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "http/server.h"
#include "llm/llm.h"
#include "core/hex.h"

static int only_get(struct http_exchange *ex)
{
    ex->route = "models";
    if (strcmp(ex->req->method, "GET") == 0 || strcmp(ex->req->method, "HEAD") == 0)
        return 1;
    http_add_header(ex, "Allow", "GET");
    llm_error(ex, 405, "invalid_request_error", "method_not_allowed", NULL,
              "use GET for /v1/models");
    return 0;
}

static int append_model(buf_t *b, const char *name)
{
    int rc = buf_append_lit(b, "{\"id\":");
    rc |= buf_append_json_string(b, name, strlen(name));
    rc |= buf_append_lit(b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"portcullis\"}");
    return rc;
}

void llm_model_retrieve(struct http_exchange *ex, const char *id)
{
    if (!only_get(ex))
        return;
    char name[256];
    size_t n = 0;
    for (const char *p = id; *p; p++) {
        char c = *p;
        if (c == '%' && hex_value(p[1]) >= 0 && hex_value(p[2]) >= 0) {
            c = (char)(hex_value(p[1]) << 4 | hex_value(p[2]));
            p += 2;
        }
        if (c == '\0' || n + 1 >= sizeof(name)) {
            n = 0;
            break;
        }
        name[n++] = c;
    }
    name[n] = '\0';
    const struct config_model *m = n ? config_find_model(ex->cfg, name) : NULL;
    if (!m) {
        llm_error(ex, 404, "invalid_request_error", "model_not_found", "model",
                  "the model '%.200s' does not exist or is not served by this gateway", name);
        return;
    }
    ex->model = m->name;
    buf_t b;
    buf_init(&b, 4096);
    if (append_model(&b, m->name) == 0)
        http_respond(ex, 200, "application/json", b.data, b.len);
    else
        llm_error(ex, 500, "server_error", NULL, NULL, "out of memory");
    buf_free(&b);
}

void llm_models(struct http_exchange *ex)
{
    if (!only_get(ex))
        return;
    const struct config *c = ex->cfg;
    buf_t b;
    buf_init(&b, 16 << 20);
    int rc = buf_append_lit(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < c->nmodels; i++) {
        if (i)
            rc |= buf_append_lit(&b, ",");
        rc |= append_model(&b, c->models[i].name);
    }
    rc |= buf_append_lit(&b, "]}");
    if (rc == 0)
        http_respond(ex, 200, "application/json", b.data, b.len);
    else
        llm_error(ex, 500, "server_error", NULL, NULL, "out of memory");
    buf_free(&b);
}
