// SPDX-License-Identifier: Apache-2.0
// GET /admin/breakers[/ID] and POST /admin/breakers/ID/reset: every circuit
// breaker's state and counters as the running gateway sees them
// (src/breaker), and a manual close for one of them.
#include "admin/admin.h"

#include <string.h>

#include "breaker/breaker.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/clock.h"
#include "http/server.h"

void admin_breakers_get(const struct admin_req *r)
{
    struct http_exchange *ex = r->ex;
    buf_t b;
    buf_init(&b, 16 << 20);
    if (breaker_set_render_json(ex->cfg->breakers, clock_mono_ns() / 1000000u, &b) == 0)
        http_respond(ex, 200, "application/json", b.data, b.len);
    else
        admin_error(ex, 500, "server_error", "could not render the breakers");
    buf_free(&b);
}

void admin_breaker_get(const struct admin_req *r)
{
    struct http_exchange *ex = r->ex;
    struct breaker *b = breaker_set_find(ex->cfg->breakers, r->args[0]);
    if (b == NULL) {
        admin_error(ex, 404, "not_found",
                    "no breaker '%.200s' (ids look like agent:ID or provider:NAME)", r->args[0]);
        return;
    }
    buf_t out;
    buf_init(&out, 1 << 20);
    if (breaker_render_json(b, clock_mono_ns() / 1000000u, &out) == 0)
        http_respond(ex, 200, "application/json", out.data, out.len);
    else
        admin_error(ex, 500, "server_error", "could not render the breaker");
    buf_free(&out);
}

void admin_breakers_reset(const struct admin_req *r)
{
    struct http_exchange *ex = r->ex;
    const char *id = r->args[0];
    struct breaker *b = breaker_set_find(ex->cfg->breakers, id);
    if (b == NULL) {
        admin_error(ex, 404, "not_found",
                    "no breaker '%.200s' (ids look like agent:ID or provider:NAME)", id);
        return;
    }
    breaker_reset(b);
    admin_json(ex, 200, json_pack("{s:s,s:s}", "id", breaker_id(b), "state", "closed"));
}
