// SPDX-License-Identifier: Apache-2.0
// GET /v1/models: the models this gateway serves, in OpenAI's list format.
#include <string.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "http/server.h"
#include "llm/llm.h"

void llm_models(struct http_exchange *ex)
{
    ex->route = "models";
    if (strcmp(ex->req->method, "GET") != 0 && strcmp(ex->req->method, "HEAD") != 0) {
        http_add_header(ex, "Allow", "GET");
        llm_error(ex, 405, "invalid_request_error", "method_not_allowed", NULL,
                  "use GET for /v1/models");
        return;
    }
    const struct config *c = ex->cfg;
    buf_t b;
    buf_init(&b, 16 << 20);
    int rc = buf_append_lit(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < c->nmodels; i++) {
        rc |= buf_append(&b, i ? ",{\"id\":" : "{\"id\":", i ? 7 : 6);
        rc |= buf_append_json_string(&b, c->models[i].name, strlen(c->models[i].name));
        rc |= buf_append_lit(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"portcullis\"}");
    }
    rc |= buf_append_lit(&b, "]}");
    if (rc == 0)
        http_respond(ex, 200, "application/json", b.data, b.len);
    else
        llm_error(ex, 500, "server_error", NULL, NULL, "out of memory");
    buf_free(&b);
}
