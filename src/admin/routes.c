// SPDX-License-Identifier: Apache-2.0
// The admin listener's route table and what every admin request goes
// through first: the bearer token (constant-time compare), then a match on
// method and path. To add a route, add one line to `routes` below.
#include "admin/admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "config/config.h"
#include "http/server.h"

static const struct admin_route routes[] = {
    {"GET", "/admin/budgets", admin_budgets_get},
    {"GET", "/admin/budgets/*", admin_budgets_get},
    {"GET", "/admin/breakers", admin_breakers_get},
    {"GET", "/admin/breakers/*", admin_breaker_get},
    {"POST", "/admin/breakers/*/reset", admin_breakers_reset},
};

void admin_json(struct http_exchange *ex, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        static const char oom[] = "{\"error\":{\"code\":\"server_error\",\"message\":\"out of "
                                  "memory\"}}\n";
        http_respond(ex, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    size_t n = strlen(text);
    http_respond(ex, status, "application/json", text, n);
    free(text);
}

void admin_error(struct http_exchange *ex, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ex->error_type = code;
    admin_json(ex, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

/* The request carries "Authorization: Bearer <admin token>". */
static int authorized(struct http_exchange *ex)
{
    const char *token = ex->cfg->admin_token;
    const struct http_header *h = http_request_header(ex->req, "authorization");
    if (token == NULL || h == NULL || h->value_len < 7 || strncasecmp(h->value, "Bearer ", 7) != 0)
        return 0;
    size_t n = strlen(token);
    return h->value_len - 7 == n && CRYPTO_memcmp(h->value + 7, token, n) == 0;
}

/* Matches PATTERN against the request path; fills r->args for each '*'. */
static int match(const char *pattern, struct http_exchange *ex, struct admin_req *r)
{
    const char *p = pattern, *s = ex->req->path, *end = s + ex->req->path_len;
    r->nargs = 0;
    while (*p != '\0' && s < end) {
        if (*p == '*') {
            const char *seg = s;
            while (s < end && *s != '/')
                s++;
            if (s == seg || r->nargs >= ADMIN_MAX_ARGS)
                return 0;
            r->args[r->nargs++] = arena_strndup(&ex->arena, seg, (size_t)(s - seg));
            p++;
        } else if (*p++ != *s++)
            return 0;
    }
    return *p == '\0' && s == end;
}

void admin_route(struct http_exchange *ex)
{
    ex->route = "admin";
    ex->action = "admin";
    if (!authorized(ex)) {
        http_add_header(ex, "WWW-Authenticate", "Bearer realm=\"portcullis-admin\"");
        if (ex->cfg->admin_token == NULL)
            admin_error(ex, 401, "unauthorized",
                        "the admin token is not set: export %s before starting the gateway",
                        ex->cfg->admin_token_env ? ex->cfg->admin_token_env : "?");
        else
            admin_error(ex, 401, "unauthorized",
                        "missing or wrong admin token (Authorization: Bearer $%s)",
                        ex->cfg->admin_token_env ? ex->cfg->admin_token_env : "?");
        return;
    }
    int path_known = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        struct admin_req r = {.ex = ex};
        if (!match(routes[i].pattern, ex, &r))
            continue;
        path_known = 1;
        if (strcmp(ex->req->method, routes[i].method) == 0) {
            routes[i].handler(&r);
            return;
        }
    }
    if (path_known)
        admin_error(ex, 405, "method_not_allowed", "%s is not allowed on %.200s", ex->req->method,
                    ex->req->path);
    else
        admin_error(ex, 404, "not_found", "no admin route for %s %.200s", ex->req->method,
                    ex->req->path);
}
