// SPDX-License-Identifier: Apache-2.0
// The admin listener: JSON answers about the running gateway (budgets,
// breakers, ...) on its own address (config `admin:`), its own thread and
// loop, behind the admin token. Never reachable from the public listener.
#ifndef PORTCULLIS_ADMIN_ADMIN_H
#define PORTCULLIS_ADMIN_ADMIN_H

#include <stddef.h>

#include <jansson.h>

struct config;
struct metrics;
struct http_exchange;
struct admin;

/* ---- the listener (src/admin/server.c) ------------------------------- */

/* Starts the admin listener of CFG (which must have has_admin) on a thread
 * of its own; requests are recorded in metrics shard SHARD. NULL with a
 * message in err when it cannot listen. Caller owns the result and stops
 * it with admin_stop. */
struct admin *admin_start(struct config *cfg, struct metrics *m, unsigned shard, char *err,
                          size_t errlen) __attribute__((warn_unused_result));

/* Hands a reloaded snapshot to the listener (takes a reference of its own). */
void admin_reload(struct admin *a, struct config *next);

/* Closes the listener and every connection, joins the thread, frees A. */
void admin_stop(struct admin *a);

/* ---- routes (src/admin/routes.c) ------------------------------------- */

#define ADMIN_MAX_ARGS 4

/* What a route handler gets: the exchange (answer it with admin_json or
 * admin_error) and the path segments that matched '*' in its pattern,
 * NUL-terminated, in the exchange's arena. */
struct admin_req {
    struct http_exchange *ex;
    const char *args[ADMIN_MAX_ARGS];
    size_t nargs;
};

/* One line of the route table: METHOD and a PATTERN of '/'-separated
 * segments where '*' matches any one non-empty segment. */
struct admin_route {
    const char *method;
    const char *pattern;
    void (*handler)(const struct admin_req *r);
};

/* Answers with BODY as JSON (steals the reference). */
void admin_json(struct http_exchange *ex, int status, json_t *body);
/* Answers {"error": {"code": CODE, "message": ...}} with STATUS. */
void admin_error(struct http_exchange *ex, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Every request of the admin listener: the token check, then the table. */
void admin_route(struct http_exchange *ex);

/* ---- handlers ----------------------------------------------------------- */

/* GET /admin/breakers[/ID], POST /admin/breakers/ID/reset (src/admin/breakers.c) */
void admin_breakers_get(const struct admin_req *r);
void admin_breaker_get(const struct admin_req *r);
void admin_breakers_reset(const struct admin_req *r);

/* GET /admin/budgets and /admin/budgets/ID (src/admin/budgets.c) */
void admin_budgets_get(const struct admin_req *r);
struct budget_node_view;
/* One node as JSON (also what `portcullis budget show --json` prints). NULL on OOM. */
json_t *admin_budget_node_json(const struct budget_node_view *v);

#endif
