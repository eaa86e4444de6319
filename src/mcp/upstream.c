// SPDX-License-Identifier: Apache-2.0
// The hub's side of each upstream server: the connection (transport.h), the
// initialize exchange after every READY, capability and list caches (every
// page fetched, refreshed on list_changed), and what servers send: answers
// routed back by id, progress and log notifications, cancellations, and
// requests to clients (sampling, elicitation, roots).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "identity/identity.h"
#include "mcp/core.h"

const char *const hub_list_method[L_COUNT] = {"tools/list", "prompts/list", "resources/list",
                                              "resources/templates/list"};
const char *const hub_list_key[L_COUNT] = {"tools", "prompts", "resources", "resourceTemplates"};
const char *const hub_list_cap[L_COUNT] = {"tools", "prompts", "resources", "resources"};
const char *const hub_list_note[L_COUNT] = {
    "notifications/tools/list_changed", "notifications/prompts/list_changed",
    "notifications/resources/list_changed", "notifications/resources/list_changed"};

/* The W3C trace context of the client's exchange in params._meta.traceparent
 * (SEP-414: how MCP carries it where there are no HTTP headers, stdio; HTTP
 * servers get it both there and as the traceparent header). A client's own
 * _meta.traceparent is replaced: the gateway is the next hop in its trace. */
static void set_meta_trace(json_t *msg, const char *traceparent)
{
    if (json_object_get(msg, "method") == NULL)
        return; /* a response */
    json_t *params = json_object_get(msg, "params");
    if (params == NULL) {
        params = json_object();
        json_object_set_new(msg, "params", params);
    }
    json_t *meta = json_object_get(params, "_meta");
    if (json_is_object(params) && meta == NULL) {
        meta = json_object();
        json_object_set_new(params, "_meta", meta);
    }
    if (json_is_object(meta))
        json_object_set_new(meta, "traceparent", json_string(traceparent));
}

/* Sends msg (consumed). With m, a client's request: it carries the client's
 * trace context (traceparent), and servers configured with identity_header
 * get a gateway-signed token for the caller in it. */
int hub_send_as(struct up *u, json_t *msg, uint64_t cookie, int expects, const struct mcp_msg *m)
{
    struct mcp_core *c = u->core;
    if (m != NULL && m->traceparent[0])
        set_meta_trace(msg, m->traceparent);
    char *s = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (s == NULL || u->conn == NULL || c->ops->send == NULL) {
        free(s);
        return -1;
    }
    struct mcp_send_opts o = {.cookie = cookie, .expects_response = expects};
    struct mcp_header h[2];
    char *token = NULL;
    if (m != NULL && m->traceparent[0]) {
        h[o.nheaders].name = "traceparent";
        h[o.nheaders++].value = m->traceparent;
    }
    if (m != NULL && u->conf->identity_header != NULL && c->identity != NULL) {
        const char *chain1[1] = {m->agent};
        struct identity_principal p = {
            .agent = m->agent,
            .auth = m->auth,
            .chain = m->chain_len ? (const char **)m->chain : chain1,
            .chain_len = m->chain_len ? m->chain_len : 1,
            .scope = m->scope,
            .budget_usd = m->budget_usd,
            .credential_id = m->credential_id,
            .parent_request_id = m->parent_request_id,
            .root_request_id = m->root_request_id,
            .expires = m->expires,
            .root_key_id = m->root_key_id,
        };
        int anon = m->auth == NULL;
        token = identity_outbound_token(c->identity, m->cfg->identity.issuer, anon ? NULL : &p,
                                        u->conf->name, m->request_id, 300);
        if (token != NULL) {
            h[o.nheaders].name = u->conf->identity_header;
            h[o.nheaders++].value = token;
        }
    }
    o.headers = o.nheaders ? h : NULL;
    int rc = c->ops->send(u->conn, s, strlen(s), &o);
    free(s);
    free(token);
    return rc;
}

int hub_send(struct up *u, json_t *msg, uint64_t cookie, int expects)
{
    return hub_send_as(u, msg, cookie, expects, NULL);
}

void hub_up_error(struct up *u, char *out, size_t len, const char *what)
{
    const char *st = u->state == UP_DOWN     ? "is down"
                     : u->state == UP_FAILED ? "failed to start"
                                             : "is not ready";
    snprintf(out, len, "MCP server '%s' %s%s%s%s%s", u->conf->name, st, u->why[0] ? " (" : "",
             u->why, u->why[0] ? ")" : "", what ? what : "");
}

/* ---- upstream lists ------------------------------------------------------- */

static void fetch_list(struct up *u, int kind, const char *cursor, json_t *acc, int pages,
                       int notify)
{
    struct mcp_core *c = u->core;
    struct pending *p = hub_pending_new(c, u, P_LIST);
    if (p == NULL) {
        json_decref(acc);
        return;
    }
    p->list = kind;
    p->acc = acc ? acc : json_array();
    p->pages = pages;
    p->notify = notify;
    json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : json_object();
    json_t *msg = json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", (json_int_t)p->id,
                            "method", hub_list_method[kind], "params", params);
    if (hub_send(u, msg, p->id, 1) < 0) {
        if (u->listing > 0 && !notify)
            u->listing--;
        hub_pending_free(c, p);
    }
}

void hub_settle_listing(struct up *u)
{
    if (u->state == UP_LISTING && u->listing <= 0) {
        u->state = UP_READY;
        log_msg(LOG_INFO, NULL, "mcp: server %s ready (%zu tools)", u->conf->name,
                json_array_size(u->lists[L_TOOLS]));
        hub_unpark(u->core);
    }
}

/* Whether the session may see any tool of list (list_tool). */
static int sees_any(struct mcp_core *c, struct session *s, struct up *u, const json_t *list)
{
    size_t i;
    json_t *it;
    if (s->who == NULL || s->who->agent == NULL)
        return 1; /* unknown (out of memory): tell rather than hide */
    json_array_foreach(list, i, it)
    {
        const char *name = json_string_value(json_object_get(it, "name"));
        struct verdict v;
        if (name == NULL)
            continue;
        hub_decide(c, s->who, "list_tool", u, name, &v);
        if (v.allow == 1)
            return 1;
    }
    return 0;
}

/* notifications/tools/list_changed to the sessions that could see one of
 * u's tools before or can now: a change elsewhere is none of their business. */
static void notify_tools_changed(struct mcp_core *c, struct up *u, const json_t *old)
{
    for (struct session *s = c->sessions; s; s = s->next)
        if (sees_any(c, s, u, old) || sees_any(c, s, u, u->lists[L_TOOLS]))
            hub_list_changed(s, L_TOOLS);
}

static void on_list_answer(struct mcp_core *c, struct pending *p, json_t *root)
{
    struct up *u = p->up;
    json_t *res = json_object_get(root, "result");
    json_t *items = json_object_get(res, hub_list_key[p->list]);
    json_t *next = json_object_get(res, "nextCursor");
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        if (json_is_object(it))
            json_array_append(p->acc, it);
    }
    if (json_is_string(next) && json_string_length(next) > 0 && p->pages < MAX_LIST_PAGES &&
        res != NULL) {
        json_t *acc = json_incref(p->acc);
        fetch_list(u, p->list, json_string_value(next), acc, p->pages + 1, p->notify);
        hub_pending_free(c, p);
        return;
    }
    json_t *old = NULL;
    if (res != NULL) {
        old = u->lists[p->list];
        u->lists[p->list] = json_incref(p->acc);
        if (p->list == L_TOOLS)
            c->tools_gen++;
    }
    int notify = p->notify, kind = p->list;
    hub_pending_free(c, p);
    if (notify && old != NULL && json_equal(old, u->lists[kind]))
        ; /* the server said so, but nothing changed: no need to wake clients */
    else if (notify && kind == L_TOOLS)
        notify_tools_changed(c, u, old);
    else if (notify)
        for (struct session *s = c->sessions; s; s = s->next)
            hub_list_changed(s, kind);
    json_decref(old);
    if (!notify && u->listing > 0) {
        u->listing--;
        hub_settle_listing(u);
    }
}

/* ---- upstream lifecycle ----------------------------------------------------- */

static void send_initialize(struct up *u)
{
    struct mcp_core *c = u->core;
    struct pending *p = hub_pending_new(c, u, P_INIT);
    if (p == NULL)
        return;
    json_t *msg = json_pack("{s:s, s:I, s:s, s:{s:s, s:{s:{s:b}, s:{}, s:{}}, s:{s:s, s:s}}}",
                            "jsonrpc", "2.0", "id", (json_int_t)p->id, "method", "initialize",
                            "params", "protocolVersion", mcp_versions[0], "capabilities", "roots",
                            "listChanged", 1, "sampling", "elicitation", "clientInfo", "name",
                            "portcullis", "version", GATEWAY_VERSION);
    u->state = UP_INIT;
    u->opened_ms = hub_now(c); /* requests park while it initializes */
    if (hub_send(u, msg, p->id, 1) < 0) {
        hub_pending_free(c, p);
        u->state = UP_FAILED;
        snprintf(u->why, sizeof u->why, "could not send initialize");
        hub_unpark(c);
    }
}

static void on_init_answer(struct mcp_core *c, struct pending *p, json_t *root)
{
    struct up *u = p->up;
    hub_pending_free(c, p);
    json_t *res = json_object_get(root, "result");
    if (!json_is_object(res)) {
        const char *m =
            json_string_value(json_object_get(json_object_get(root, "error"), "message"));
        u->state = UP_FAILED;
        snprintf(u->why, sizeof u->why, "initialize failed: %.120s", m ? m : "no result");
        log_msg(LOG_WARN, NULL, "mcp: server %s: %s", u->conf->name, u->why);
        hub_unpark(c);
        return;
    }
    const char *ver = json_string_value(json_object_get(res, "protocolVersion"));
    if (!mcp_version_supported(ver))
        log_msg(LOG_WARN, NULL, "mcp: server %s speaks protocol version %.40s", u->conf->name,
                ver ? ver : "(none)");
    json_decref(u->caps);
    json_decref(u->info);
    free(u->instructions);
    u->caps = json_incref(json_object_get(res, "capabilities"));
    u->info = json_incref(json_object_get(res, "serverInfo"));
    const char *ins = json_string_value(json_object_get(res, "instructions"));
    u->instructions = ins ? strdup(ins) : NULL;
    hub_send(u, json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", "notifications/initialized"), 0,
             0);
    if (c->ops->initialized && u->conn)
        c->ops->initialized(u->conn, ver ? ver : mcp_versions[0]);
    u->state = UP_LISTING;
    u->why[0] = '\0';
    u->listing = 0;
    for (int k = 0; k < L_COUNT; k++)
        if (json_object_get(u->caps, hub_list_cap[k]))
            u->listing++;
    int n = u->listing;
    for (int k = 0; k < L_COUNT; k++)
        if (json_object_get(u->caps, hub_list_cap[k]))
            fetch_list(u, k, NULL, NULL, 0, 0);
    (void)n;
    hub_settle_listing(u);
}

static void up_fail_pendings(struct mcp_core *c, struct up *u, const char *why)
{
    char msg[300];
    hub_up_error(u, msg, sizeof msg, NULL);
    (void)why;
    for (size_t b = 0; b < PEND_BUCKETS; b++) {
        struct pending *p = c->pend[b];
        while (p) {
            struct pending *next = p->next;
            if (p->up == u)
                hub_pending_fail(c, p, msg);
            p = next;
        }
    }
    for (struct s2c **q = &c->s2c; *q;) {
        struct s2c *e = *q;
        if (e->up == u) {
            *q = e->next;
            json_decref(e->up_id);
            free(e);
        } else {
            q = &e->next;
        }
    }
    u->listing = 0;
}

static void ev_state(void *ctx, enum mcp_upstream_state st, const char *why)
{
    struct up *u = ctx;
    struct mcp_core *c = u->core;
    if (st == MCP_UPSTREAM_READY) {
        if (u->state == UP_CONNECTING || u->state == UP_DOWN || u->state == UP_FAILED)
            send_initialize(u);
        return;
    }
    u->state = UP_DOWN;
    snprintf(u->why, sizeof u->why, "%s", why ? why : "connection lost");
    log_msg(LOG_WARN, NULL, "mcp: server %s is down: %s", u->conf->name, u->why);
    up_fail_pendings(c, u, u->why);
    hub_unpark(c);
}

static void ev_send_error(void *ctx, uint64_t cookie, const char *why)
{
    struct up *u = ctx;
    struct mcp_core *c = u->core;
    struct pending *p = hub_pending_find(c, cookie);
    if (p == NULL)
        return;
    if (p->kind == P_INIT) {
        hub_pending_free(c, p);
        u->state = UP_FAILED;
        snprintf(u->why, sizeof u->why, "%s", why ? why : "initialize failed");
        hub_unpark(c);
    } else if (p->kind == P_LIST) {
        int first = !p->notify;
        hub_pending_free(c, p);
        if (first && u->listing > 0) {
            u->listing--;
            hub_settle_listing(u);
        }
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "MCP server '%s' failed: %s", u->conf->name,
                 why ? why : "no answer");
        hub_pending_fail(c, p, msg);
    }
}

/* ---- messages from upstreams ---------------------------------------------- */

static void up_reply(struct up *u, json_t *id, json_t *result, int code, const char *msg)
{
    json_t *m = result ? json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result)
                       : json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error",
                                   "code", code, "message", msg);
    hub_send(u, m, 0, 0);
}

/* Why a server's request reaches no client, for its error answer. */
static const char *unrouted(struct mcp_core *c, enum attribution how)
{
    switch (how) {
    case ATTR_AMBIGUOUS:
        return "refused: several client sessions have calls in flight on this server and the "
               "request does not say which call it belongs to (send it on that call's answer "
               "stream, or name the call in _meta \"" HUB_RELATED_REQUEST "\")";
    case ATTR_GONE:
        return "refused: the call it belongs to is over";
    default:
        return c->nsessions == 0 ? "no client session of the gateway is connected"
                                 : "refused: no call is in flight on this server and several "
                                   "client sessions are connected, so none can be chosen";
    }
}

/* A request from an upstream to a client (sampling, elicitation, roots):
 * to the client whose call it belongs to (hub_call_of), never a guess. */
static void up_request(struct mcp_core *c, struct up *u, json_t *root, const char *method,
                       uint64_t cookie)
{
    json_t *id = json_object_get(root, "id");
    if (strcmp(method, "ping") == 0) {
        up_reply(u, id, json_object(), 0, NULL);
        return;
    }
    enum attribution how;
    struct pending *p = hub_call_of(c, u, cookie, json_object_get(root, "params"), &how);
    struct session *s = p ? hub_session_find(c, p->session) : NULL;
    if (p == NULL && how == ATTR_NONE && c->nsessions == 1)
        s = c->sessions; /* nothing in flight, one client: it is that client's */
    if (s == NULL) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s: %s", method, unrouted(c, how));
        if (how == ATTR_AMBIGUOUS)
            log_msg(LOG_WARN, NULL, "mcp: server %s: %s", u->conf->name, msg);
        up_reply(u, id, NULL, JSONRPC_INVALID_REQUEST, msg);
        return;
    }
    const char *cap = strcmp(method, "sampling/createMessage") == 0 ? "sampling"
                      : strcmp(method, "elicitation/create") == 0   ? "elicitation"
                      : strcmp(method, "roots/list") == 0           ? "roots"
                                                                    : NULL;
    if (cap == NULL || !json_object_get(s->client_caps, cap)) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s: the client session does not support it", method);
        up_reply(u, id, NULL, JSONRPC_METHOD_NOT_FOUND, msg);
        return;
    }
    struct s2c *e = calloc(1, sizeof *e);
    if (e == NULL) {
        up_reply(u, id, NULL, JSONRPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    e->n = ++c->next_s2c;
    e->up = u;
    e->up_id = json_incref(id);
    snprintf(e->session, sizeof e->session, "%s", s->id);
    e->next = c->s2c;
    c->s2c = e;
    char gid[48];
    snprintf(gid, sizeof gid, "pcl-s2c-%llu", (unsigned long long)e->n);
    json_object_set_new(root, "id", json_string(gid));
    if (hub_to_client(c, s->id, p, root) < 0) {
        c->s2c = e->next;
        json_decref(e->up_id);
        free(e);
        up_reply(u, id, NULL, JSONRPC_INTERNAL_ERROR,
                 "the client session has no open stream to take the request");
    }
}

uint64_t hub_token_id(const json_t *tok, const char *prefix)
{
    const char *s = json_string_value(tok);
    size_t n = strlen(prefix);
    if (s == NULL || strncmp(s, prefix, n) != 0)
        return 0;
    return strtoull(s + n, NULL, 10);
}

static void up_notification(struct mcp_core *c, struct up *u, json_t *root, const char *method,
                            uint64_t cookie)
{
    json_t *params = json_object_get(root, "params");
    for (int k = 0; k < L_COUNT; k++) {
        if (strcmp(method, hub_list_note[k]) == 0) {
            if (k == L_RESOURCES && json_object_get(u->caps, "resources"))
                fetch_list(u, L_TEMPLATES, NULL, NULL, 0, 0 /* quietly */);
            fetch_list(u, k, NULL, NULL, 0, 1);
            return;
        }
    }
    if (strcmp(method, "notifications/progress") == 0) {
        struct pending *p =
            hub_pending_find(c, hub_token_id(json_object_get(params, "progressToken"), "pcl-p-"));
        if (p == NULL || p->kind != P_CLIENT || p->progress_token == NULL)
            return;
        json_object_set(params, "progressToken", p->progress_token);
        hub_to_client(c, p->session, p, root);
    } else if (strcmp(method, "notifications/cancelled") == 0) {
        json_t *rid = json_object_get(params, "requestId");
        for (struct s2c **q = &c->s2c; *q; q = &(*q)->next) {
            struct s2c *e = *q;
            if (e->up == u && json_equal(e->up_id, rid)) {
                char gid[48];
                snprintf(gid, sizeof gid, "pcl-s2c-%llu", (unsigned long long)e->n);
                json_object_set_new(params, "requestId", json_string(gid));
                hub_to_client(c, e->session, NULL, root);
                *q = e->next;
                json_decref(e->up_id);
                free(e);
                return;
            }
        }
    } else if (strcmp(method, "notifications/resources/updated") == 0) {
        json_t *uri = json_object_get(params, "uri");
        char *s = json_dumps(root, JSON_COMPACT);
        for (struct session *ss = c->sessions; s && ss; ss = ss->next) {
            size_t i;
            json_t *v;
            json_array_foreach(ss->subs, i, v)
            {
                if (json_equal(v, uri) && ss->get) {
                    mcp_ticket_event(ss->get, s, strlen(s));
                    break;
                }
            }
        }
        free(s);
    } else if (strcmp(method, "notifications/message") == 0) {
        enum attribution how;
        struct pending *p = hub_call_of(c, u, cookie, params, &how);
        if (p != NULL) {
            hub_to_client(c, p->session, p, root);
        } else if (how == ATTR_NONE) {
            char *s = json_dumps(root, JSON_COMPACT);
            /* not tied to a call: only to sessions that asked for logs
             * (one that belongs to a call another session made goes nowhere) */
            for (struct session *ss = c->sessions; s && ss; ss = ss->next)
                if (ss->get && ss->logging)
                    mcp_ticket_event(ss->get, s, strlen(s));
            free(s);
        }
    }
}

static void on_client_answer(struct mcp_core *c, struct pending *p, json_t *root)
{
    /* the server answered: a failure for its breaker only when it says it failed */
    json_t *err = json_object_get(root, "error");
    hub_pending_breaker(p,
                        json_integer_value(json_object_get(err, "code")) == JSONRPC_INTERNAL_ERROR
                            ? BREAKER_ERROR
                            : BREAKER_OK);
    if (p->tool != NULL)
        hub_guard_answer(c, p, root); /* tools/call: scan, act, taint (guard.c) */
    json_object_set(root, "id", p->client_id);
    char *s = json_dumps(root, JSON_COMPACT);
    if (s == NULL) {
        hub_pending_fail(c, p, "out of memory");
        return;
    }
    if (p->sse) {
        mcp_ticket_event(p->t, s, strlen(s));
        mcp_ticket_finish(p->t);
    } else {
        mcp_ticket_respond(p->t, 200, s, strlen(s));
    }
    free(s);
    hub_pending_free(c, p);
}

static void ev_message(void *ctx, const char *json, size_t len, uint64_t cookie)
{
    struct up *u = ctx;
    struct mcp_core *c = u->core;
    json_t *root = json_loadb(json, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        log_msg(LOG_WARN, NULL, "mcp: server %s sent a message that is not a JSON object",
                u->conf->name);
        return;
    }
    const char *method = json_string_value(json_object_get(root, "method"));
    json_t *id = json_object_get(root, "id");
    if (method != NULL && id != NULL) {
        up_request(c, u, root, method, cookie);
    } else if (method != NULL) {
        up_notification(c, u, root, method, cookie);
    } else if (json_is_integer(id)) {
        struct pending *p = hub_pending_find(c, (uint64_t)json_integer_value(id));
        if (p == NULL || p->up != u) {
            /* late answer to something that timed out or was cancelled */
        } else if (p->kind == P_INIT) {
            on_init_answer(c, p, root);
        } else if (p->kind == P_LIST) {
            on_list_answer(c, p, root);
        } else if (p->kind == P_CLIENT) {
            on_client_answer(c, p, root);
        } else {
            hub_pending_free(c, p);
        }
    }
    json_decref(root);
}

/* ---- opening and closing upstreams ------------------------------------------ */

static const struct mcp_upstream_events events = {
    .on_message_via = ev_message,
    .on_state = ev_state,
    .on_send_error = ev_send_error,
};

static void up_open(struct mcp_core *c, struct up *u)
{
    const struct config_mcp_server *s = u->conf;
    struct mcp_header *hdrs = calloc(s->nheaders + 1, sizeof *hdrs);
    for (size_t i = 0; hdrs && i < s->nheaders; i++) {
        hdrs[i].name = s->headers[i].name;
        hdrs[i].value = s->headers[i].value;
    }
    struct mcp_upstream_spec spec = {
        .name = s->name,
        .url = s->url,
        .headers = hdrs,
        .nheaders = hdrs ? s->nheaders : 0,
        .argv = (const char *const *)s->argv,
        .env = (const char *const *)s->env,
        .cwd = s->cwd,
        .request_timeout_ms = s->timeout_ms,
        .restart_min_ms = s->restart_min_ms,
        .restart_max_ms = s->restart_max_ms,
        .stop_grace_ms = s->stop_grace_ms,
    };
    u->state = UP_CONNECTING;
    u->opened_ms = hub_now(c);
    u->conn = c->ops->open ? c->ops->open(c->loop, &spec, &events, u) : NULL;
    free(hdrs);
    if (u->conn == NULL) {
        u->state = UP_FAILED;
        snprintf(u->why, sizeof u->why, "%s",
                 c->ops->open ? "could not be started" : "this build has no MCP transports");
        log_msg(LOG_ERROR, NULL, "mcp: server %s %s", s->name, u->why);
    }
}

static void up_close(struct mcp_core *c, struct up *u)
{
    u->state = UP_DOWN;
    snprintf(u->why, sizeof u->why, "closed");
    up_fail_pendings(c, u, "closed");
    if (u->conn && c->ops->close)
        c->ops->close(u->conn);
    u->conn = NULL;
    json_decref(u->caps);
    json_decref(u->info);
    free(u->instructions);
    for (int k = 0; k < L_COUNT; k++)
        json_decref(u->lists[k]);
    memset(u, 0, sizeof *u);
}

void hub_reopen(struct mcp_core *c, struct up *u, const struct config_mcp_server *conf)
{
    size_t index = u->index;
    up_close(c, u);
    u->core = c;
    u->index = index;
    u->conf = conf;
    up_open(c, u);
}

void hub_open_all(struct mcp_core *c)
{
    c->nups = c->cfg->mcp.nservers;
    c->ups = c->nups ? calloc(c->nups, sizeof *c->ups) : NULL;
    if (c->ups == NULL)
        c->nups = 0;
    for (size_t i = 0; i < c->nups; i++) {
        c->ups[i].core = c;
        c->ups[i].index = i;
        c->ups[i].conf = &c->cfg->mcp.servers[i];
    }
    for (size_t i = 0; i < c->nups; i++)
        up_open(c, &c->ups[i]);
}

void hub_close_all(struct mcp_core *c)
{
    for (size_t i = 0; i < c->nups; i++)
        up_close(c, &c->ups[i]);
    free(c->ups);
    c->ups = NULL;
    c->nups = 0;
    c->tools_gen++;
}
