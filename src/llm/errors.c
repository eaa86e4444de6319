// SPDX-License-Identifier: Apache-2.0
// OpenAI-shaped error answers for every /v1/* route.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/log.h"
#include "http/server.h"
#include "llm/llm.h"

void llm_error(struct http_exchange *ex, int status, const char *type, const char *code,
               const char *param, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    buf_t b;
    buf_init(&b, 16 * 1024);
    int rc = buf_append_lit(&b, "{\"error\":{\"message\":");
    rc |= buf_append_json_string(&b, msg, strlen(msg));
    rc |= buf_append_lit(&b, ",\"type\":");
    rc |= buf_append_json_string(&b, type, strlen(type));
    rc |= buf_append_lit(&b, ",\"code\":");
    rc |= code ? buf_append_json_string(&b, code, strlen(code)) : buf_append_lit(&b, "null");
    rc |= buf_append_lit(&b, ",\"param\":");
    rc |= param ? buf_append_json_string(&b, param, strlen(param)) : buf_append_lit(&b, "null");
    rc |= buf_append_lit(&b, "}}\n");
    ex->error_type = code ? code : type;
    int has_retry_after = 0;
    for (const struct http_extra_header *h = ex->headers; h; h = h->next)
        has_retry_after |= strcasecmp(h->name, "Retry-After") == 0;
    /* a budget refusal sets its own (the period boundary), or none for a
     * total cap */
    if ((status == 429 || status == 503) && !has_retry_after &&
        !(code && strcmp(code, "budget_exceeded") == 0))
        http_add_header(ex, "Retry-After", "1");
    if (rc == 0)
        http_respond(ex, status, "application/json", b.data, b.len);
    else
        http_respond(ex, 500, "application/json", "{\"error\":{\"message\":\"out of memory\","
                     "\"type\":\"server_error\",\"code\":null,\"param\":null}}\n", 85);
    buf_free(&b);
}
