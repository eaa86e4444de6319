// SPDX-License-Identifier: Apache-2.0
// The MCP endpoint on a worker's loop (Streamable HTTP, server side): Host
// and Origin checks against DNS rebinding, the identity stage, method and
// media-type checks; then the request goes to the hub thread, and what the
// hub answers comes back through a ticket and is written here.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "core/log.h"
#include "core/worker.h"
#include "http/server.h"
#include "identity/identity.h"
#include "mcp/internal.h"
#include "mcp/mcp.h"
#include "telemetry/trace.h"

int mcp_route_match(const struct http_exchange *ex)
{
    const struct config_mcp *m = &ex->cfg->mcp;
    const struct http_request *r = ex->req;
    if (!m->present || m->path == NULL)
        return 0;
    size_t n = strlen(m->path);
    return r->path_len == n && memcmp(r->path, m->path, n) == 0;
}

/* A JSON-RPC error answered by the worker itself (id null). */
static void rpc_fail(struct http_exchange *ex, int status, int code, const char *msg)
{
    char *body = mcp_rpc_error(NULL, code, msg, NULL);
    ex->error_type = "mcp_error";
    if (ex->decision == NULL)
        ex->decision = status == 403 ? "deny" : "error";
    ex->decision_reason = arena_strdup(&ex->arena, msg);
    if (body != NULL) {
        http_respond(ex, status, "application/json", body, strlen(body));
        free(body);
    } else {
        http_respond(ex, 500, "application/json", "{}", 2);
    }
}

/* ---- Host and Origin ----------------------------------------------------- */

/* The host part of a Host header or an authority: "[::1]:8080" -> "[::1]",
 * "Example.com:80" -> "Example.com". */
static size_t host_part(const char *v, size_t n)
{
    if (n > 0 && v[0] == '[') {
        const char *e = memchr(v, ']', n);
        return e ? (size_t)(e - v) + 1 : n;
    }
    const char *colon = memchr(v, ':', n);
    return colon ? (size_t)(colon - v) : n;
}

/* The rest after the host must be empty or ":digits". */
static int port_ok(const char *p, size_t n)
{
    if (n == 0)
        return 1;
    if (p[0] != ':' || n == 1 || n > 6)
        return 0;
    for (size_t i = 1; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

static int host_allowed(const struct config_mcp *m, const char *v, size_t n)
{
    size_t h = host_part(v, n);
    if (h == 0 || !port_ok(v + h, n - h))
        return 0;
    for (size_t i = 0; i < m->nallowed_hosts; i++)
        if (strlen(m->allowed_hosts[i]) == h && strncasecmp(m->allowed_hosts[i], v, h) == 0)
            return 1;
    return 0;
}

static int origin_allowed(const struct config_mcp *m, const char *v, size_t n)
{
    for (size_t i = 0; i < m->nallowed_origins; i++)
        if (strlen(m->allowed_origins[i]) == n && strncasecmp(m->allowed_origins[i], v, n) == 0)
            return 1;
    size_t skip = n >= 7 && strncasecmp(v, "http://", 7) == 0    ? 7
                  : n >= 8 && strncasecmp(v, "https://", 8) == 0 ? 8
                                                                 : 0;
    if (skip == 0)
        return 0;
    return host_allowed(m, v + skip, n - skip);
}

/* ---- Accept and Content-Type ----------------------------------------- */

/* Whether a media range list (Accept) admits type ("text/event-stream"). */
static int accepts(const struct http_header *h, const char *type)
{
    if (h == NULL)
        return 0;
    const char *slash = strchr(type, '/');
    const char *p = h->value, *end = h->value + h->value_len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',' && *p != ';')
            p++;
        size_t n = (size_t)(p - s);
        while (n > 0 && s[n - 1] == ' ')
            n--;
        if ((n == strlen(type) && strncasecmp(s, type, n) == 0) ||
            (n == 3 && !memcmp(s, "*/*", 3)) ||
            (n == (size_t)(slash - type) + 2 && strncasecmp(s, type, n - 1) == 0 &&
             s[n - 1] == '*'))
            return 1;
        while (p < end && *p != ',')
            p++; /* parameters (q=...) are not weighed */
    }
    return 0;
}

static int content_type_json(const struct http_header *h)
{
    if (h == NULL)
        return 0;
    size_t n = 0;
    while (n < h->value_len && h->value[n] != ';' && h->value[n] != ' ')
        n++;
    return n == 16 && strncasecmp(h->value, "application/json", 16) == 0;
}

/* Whether the event stream comes before application/json in Accept (the
 * client's order of preference; q-values are not weighed). */
static int prefers_sse(const struct http_header *h)
{
    if (h == NULL)
        return 0;
    const char *sse = strcasestr(h->value, "text/event-stream");
    const char *json = strcasestr(h->value, "application/json");
    return sse != NULL && (json == NULL || sse < json);
}

/* ---- tickets on the worker side ---------------------------------------- */

static void ticket_closed(uv_handle_t *h)
{
    struct mcp_ticket *t = h->data;
    struct http_exchange *ex = t->ex;
    t->ex = NULL;
    if (ex != NULL)
        http_exchange_unref(ex);
    mcp_ticket_unref(t);
}

/* The worker is done with the ticket (answer ended, or client gone). */
static void ticket_close(struct mcp_ticket *t)
{
    uv_mutex_lock(&t->lock);
    int was = t->closed;
    t->closed = 1;
    uv_mutex_unlock(&t->lock);
    if (was)
        return;
    if (t->ex != NULL) {
        t->ex->handler_data = NULL;
        t->ex->on_abort = NULL;
    }
    uv_close((uv_handle_t *)&t->async, ticket_closed);
}

static void on_abort(struct http_exchange *ex)
{
    struct mcp_ticket *t = ex->handler_data;
    if (t != NULL)
        ticket_close(t);
}

static const char *adup(struct http_exchange *ex, const char *s)
{
    return s ? arena_strdup(&ex->arena, s) : NULL;
}

/* The hub wrote something: pass it on to the exchange. */
static void on_ticket(uv_async_t *a)
{
    struct mcp_ticket *t = a->data;
    struct http_exchange *ex = t->ex;
    buf_t out;
    int status, stream, end;
    char session[80];

    uv_mutex_lock(&t->lock);
    if (t->closed || ex == NULL) {
        uv_mutex_unlock(&t->lock);
        return;
    }
    status = t->status;
    stream = t->stream;
    end = t->end;
    out = t->out;
    buf_init(&t->out, out.max);
    memcpy(session, t->session_id, sizeof session);
    if (end || !t->head_sent) {
        /* audit and metrics read these when the exchange finishes */
        if (t->action)
            ex->action = adup(ex, t->action);
        if (t->resource)
            ex->resource = adup(ex, t->resource);
        if (t->decision)
            ex->decision = adup(ex, t->decision);
        if (t->reason)
            ex->decision_reason = adup(ex, t->reason);
        if (t->policy_ids)
            ex->policy_ids = adup(ex, t->policy_ids);
        if (t->guard)
            ex->guard = adup(ex, t->guard);
        if (t->method) {
            /* metrics and the access log label requests by method (their
             * "model" column); the audit record names the method as action */
            ex->model = adup(ex, t->method);
            if (ex->action == NULL)
                ex->action = ex->model;
            if (ex->resource == NULL)
                ex->resource = "mcp";
        }
    }
    uv_mutex_unlock(&t->lock);

    if (status == 0) {
        buf_free(&out);
        return;
    }
    if (!t->head_sent) {
        t->head_sent = 1;
        if (session[0])
            http_add_header(ex, "Mcp-Session-Id", session);
        if (!stream) {
            if (status >= 400)
                ex->error_type = "mcp_error";
            http_respond(ex, status, out.len ? "application/json" : NULL, out.data ? out.data : "",
                         out.len);
            buf_free(&out);
            ticket_close(t);
            return;
        }
        http_add_header(ex, "Cache-Control", "no-cache");
        http_stream_start(ex, status, "text/event-stream");
    }
    if (out.len > 0 && http_stream_write(ex, out.data, out.len) < 0)
        end = 1;
    buf_free(&out);
    if (end) {
        if (!ex->ended)
            http_stream_end(ex);
        ticket_close(t);
    }
}

/* ---- the endpoint ------------------------------------------------------- */

static void copy_header(const struct http_request *r, const char *name, char *out, size_t cap,
                        int *too_long)
{
    const struct http_header *h = http_request_header(r, name);
    out[0] = '\0';
    if (h == NULL)
        return;
    if (h->value_len >= cap) {
        if (too_long)
            *too_long = 1;
        return;
    }
    memcpy(out, h->value, h->value_len);
    out[h->value_len] = '\0';
}

static struct mcp_msg *msg_from(struct http_exchange *ex, enum mcp_http_method method)
{
    const struct http_request *r = ex->req;
    const struct identity_principal *p = ex->principal;
    struct mcp_msg *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->method = method;
    copy_header(r, "mcp-session-id", m->session, sizeof m->session, &m->session_bad);
    copy_header(r, "mcp-protocol-version", m->version, sizeof m->version, NULL);
    int long_id = 0;
    copy_header(r, "last-event-id", m->last_event_id, sizeof m->last_event_id, &long_id);
    if (long_id)
        strcpy(m->last_event_id, "?"); /* not one of ours: refused */
    if (m->version[0] == '\0' && http_request_header(r, "mcp-protocol-version") != NULL)
        strcpy(m->version, "?"); /* present but too long: unsupported */
    m->accept_sse = accepts(http_request_header(r, "accept"), "text/event-stream");
    m->agent = strdup(p && p->agent ? p->agent : "anonymous");
    if (p != NULL && p->chain_len > 0) {
        m->chain = calloc(p->chain_len, sizeof *m->chain);
        for (size_t i = 0; m->chain != NULL && i < p->chain_len; i++, m->chain_len++)
            m->chain[i] = strdup(p->chain[i] ? p->chain[i] : "");
    }
    /* a session belongs to the agent and the chain it was created under */
    buf_t o;
    buf_init(&o, 1 << 16);
    int rc = buf_appendf(&o, "%s", m->agent ? m->agent : "");
    for (size_t i = 0; i < m->chain_len; i++)
        rc |= buf_appendf(&o, "\n%s", m->chain[i] ? m->chain[i] : "");
    m->owner = rc == 0 && o.data ? strdup(o.data) : NULL;
    buf_free(&o);
    snprintf(m->request_id, sizeof m->request_id, "%s", ex->request_id);
    trace_outbound(ex, m->traceparent);
    if (p != NULL) {
#define DUP(f) m->f = p->f ? strdup(p->f) : NULL
        DUP(auth);
        DUP(scope);
        DUP(credential_id);
        DUP(parent_request_id);
        DUP(root_request_id);
        DUP(root_key_id);
        DUP(taint_private);
        DUP(taint_untrusted);
#undef DUP
        m->taint = p->taint;
        m->budget_usd = p->budget_usd;
        m->expires = p->expires;
    }
    if (method == MCP_POST && r->body.len > 0) {
        m->body = malloc(r->body.len);
        if (m->body != NULL) {
            memcpy(m->body, r->body.data, r->body.len);
            m->len = r->body.len;
        }
    }
    m->cfg = config_ref(ex->cfg);
    if (m->agent == NULL || m->owner == NULL || (p && p->chain_len && !m->chain) ||
        (method == MCP_POST && r->body.len > 0 && m->body == NULL)) {
        mcp_msg_free(m);
        return NULL;
    }
    return m;
}

void mcp_endpoint(struct mcp_hub *hub, struct identity *id, struct http_exchange *ex)
{
    const struct http_request *r = ex->req;
    const struct config_mcp *m = &ex->cfg->mcp;
    ex->route = "mcp";

    /* DNS rebinding: a page on an attacker's domain resolving to 127.0.0.1
     * sends its own Host and Origin; refuse both before anything else. */
    const struct http_header *host = http_request_header(r, "host");
    if (host == NULL || !host_allowed(m, host->value, host->value_len)) {
        ex->decision = "deny";
        rpc_fail(ex, 403, JSONRPC_INVALID_REQUEST, "Forbidden: the Host header is not allowed");
        return;
    }
    const struct http_header *origin = http_request_header(r, "origin");
    if (origin != NULL && !origin_allowed(m, origin->value, origin->value_len)) {
        ex->decision = "deny";
        rpc_fail(ex, 403, JSONRPC_INVALID_REQUEST, "Forbidden: the Origin is not allowed");
        return;
    }
    if (identity_authenticate(id, ex) != 0)
        return;

    enum mcp_http_method method;
    if (strcmp(r->method, "POST") == 0) {
        method = MCP_POST;
        if (!content_type_json(http_request_header(r, "content-type"))) {
            rpc_fail(ex, 415, JSONRPC_INVALID_REQUEST,
                     "Unsupported Media Type: Content-Type must be application/json");
            return;
        }
        const struct http_header *acc = http_request_header(r, "accept");
        if (!accepts(acc, "application/json") || !accepts(acc, "text/event-stream")) {
            rpc_fail(ex, 406, JSONRPC_INVALID_REQUEST,
                     "Not Acceptable: Accept must list application/json and text/event-stream");
            return;
        }
    } else if (strcmp(r->method, "GET") == 0) {
        method = MCP_GET;
        if (!accepts(http_request_header(r, "accept"), "text/event-stream")) {
            rpc_fail(ex, 406, JSONRPC_INVALID_REQUEST,
                     "Not Acceptable: the GET stream needs Accept: text/event-stream");
            return;
        }
    } else if (strcmp(r->method, "DELETE") == 0) {
        method = MCP_DELETE;
    } else {
        http_add_header(ex, "Allow", "GET, POST, DELETE");
        rpc_fail(ex, 405, JSONRPC_INVALID_REQUEST, "Method Not Allowed");
        return;
    }
    if (hub == NULL) {
        rpc_fail(ex, 503, JSONRPC_INTERNAL_ERROR, "the MCP gateway is not running");
        return;
    }
    struct mcp_msg *msg = msg_from(ex, method);
    struct mcp_ticket *t = msg ? mcp_ticket_new() : NULL;
    if (t == NULL || uv_async_init(&ex->worker->loop, &t->async, on_ticket) != 0) {
        mcp_ticket_unref(t);
        mcp_msg_free(msg);
        rpc_fail(ex, 500, JSONRPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    t->async.data = t;
    t->has_async = 1;
    t->prefer_sse = method == MCP_POST && prefers_sse(http_request_header(r, "accept"));
    t->ex = ex;
    http_exchange_ref(ex); /* dropped when the async handle is closed */
    ex->handler_data = t;
    ex->on_abort = on_abort;
    mcp_ticket_ref(t); /* the hub's */
    msg->t = t;
    mcp_hub_submit(hub, msg);
}
