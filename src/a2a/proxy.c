// SPDX-License-Identifier: Apache-2.0
// The A2A stage of the pipeline, on a worker's loop: /a2a/<name> JSON-RPC and
// /a2a/<name>/.well-known/agent-card.json. identity -> agent -> Cedar
// (Action::"send_message" on Agent::"<name>") -> upstream (identity token,
// traceparent) -> reply scanned by the guard -> client; streams go through
// event by event. JSON-RPC errors are answered with HTTP 200, as A2A agents
// answer them, except 401 (no identity) and 404 (no such agent).
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <uv.h>

#include "a2a/a2a.h"
#include "a2a/internal.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/worker.h"
#include "guard/guard.h"
#include "http/server.h"
#include "identity/identity.h"
#include "policy/policy.h"
#include "telemetry/trace.h"
#include "upstream/upstream.h"

#define CARD_PATH "/.well-known/agent-card.json"
#define MAX_CARD (1u << 20)
#define TOKEN_TTL_S 300
#define MAX_HEADERS 80

/* ---- answers ------------------------------------------------------------------- */

/* A JSON-RPC error answer; decision and reason go on the exchange for the
 * audit record. */
static void rpc_fail(struct http_exchange *ex, int status, const json_t *id, int code,
                     const char *decision, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static void rpc_fail(struct http_exchange *ex, int status, const json_t *id, int code,
                     const char *decision, const char *reason, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ex->error_type = "a2a_error";
    ex->decision = decision;
    ex->decision_reason = arena_strdup(&ex->arena, reason ? reason : msg);
    char *body = a2a_rpc_error(id, code, msg, reason);
    if (body != NULL) {
        http_respond(ex, status, "application/json", body, strlen(body));
        free(body);
    } else {
        http_respond(ex, 500, "application/json", "{}\n", 3);
    }
}

static const char *gateway_url(struct http_exchange *ex, const char *name);

/* ---- one call -------------------------------------------------------------------- */

struct call {
    struct http_exchange *ex;
    struct a2a *a2a;
    const struct config_a2a_agent *agent; /* in ex->cfg, which the exchange holds */
    struct upstream_req *ureq;
    struct a2a_rpc rpc;
    int is_card;
    const char *rpc_url; /* the gateway's URL for this agent (card rewrite) */
    char *token;         /* gateway-signed identity token, malloc'd */
    long status;
    int streaming;
    int ended; /* the answer to the client is complete */
    int client_gone;
    int in_callback;
    int paused;
    int over_water;
    int guard_on;         /* guard.scan has a2a_replies */
    int tainted;          /* the caller's MCP session was given the untrusted flag */
    struct identity *id;
    uint64_t up_start_ns; /* when the upstream call started */
    buf_t resp;           /* the whole answer (not streamed) */
    struct a2a_sse sse;
    buf_t data; /* scratch: one event's data */
    struct a2a_scan scan;
};

/* The guard findings so far into the audit record (before the answer ends:
 * the record is built then). */
static void audit_guard(struct call *c)
{
    struct http_exchange *ex = c->ex;
    if (c->scan.findings.len > 0)
        ex->guard =
            arena_printf(&ex->arena, "[%.*s]", (int)c->scan.findings.len, c->scan.findings.data);
}

static void call_release(struct call *c)
{
    struct http_exchange *ex = c->ex;
    free(c->token);
    c->token = NULL;
    a2a_rpc_clear(&c->rpc);
    buf_free(&c->resp);
    buf_free(&c->data);
    a2a_sse_free(&c->sse);
    a2a_scan_free(&c->scan);
    ex->on_abort = NULL;
    ex->on_drain = NULL;
    ex->handler_data = NULL;
    http_exchange_unref(ex); /* may free c (it lives in ex's arena) */
}

static const char *guard_action_name(const struct config_guard *g)
{
    return g->action == CONFIG_GUARD_BLOCK      ? "block"
           : g->action == CONFIG_GUARD_SANITIZE ? "sanitize"
                                                : "flag";
}

/* Containment: the reply the client now holds read as an injection (sanitized or
 * flagged) or came from a `trust: untrusted` agent, so the caller's MCP session named
 * by Mcp-Session-Id (only one of its own: same agent and chain) gets the untrusted
 * flag; the hub reads it before its trifecta check. */
static void taint_session(struct call *c)
{
    struct http_exchange *ex = c->ex;
    if (c->tainted || c->id == NULL || ex->principal == NULL ||
        (c->scan.nhits == 0 && !c->agent->untrusted))
        return;
    const struct http_header *sh = http_request_header(ex->req, "mcp-session-id");
    if (sh == NULL)
        return;
    c->tainted = 1;
    const struct identity_principal *p = ex->principal;
    buf_t owner;
    buf_init(&owner, 1 << 16);
    int rc = buf_appendf(&owner, "%s", p->agent ? p->agent : "");
    for (size_t i = 0; i < p->chain_len; i++)
        rc |= buf_appendf(&owner, "\n%s", p->chain[i] ? p->chain[i] : "");
    char src[160];
    if (c->scan.nhits > 0)
        snprintf(src, sizeof src, "a2a:%.64s (guard: %.80s)", c->agent->name, c->scan.rules);
    else
        snprintf(src, sizeof src, "a2a:%.64s (untrusted agent)", c->agent->name);
    if (rc == 0 && owner.data != NULL)
        identity_session_taint_add(c->id, sh->value, owner.data, GUARD_TAINT_UNTRUSTED, NULL, src);
    buf_free(&owner);
}

static void note_guard(struct call *c)
{
    struct http_exchange *ex = c->ex;
    audit_guard(c);
    taint_session(c);
    if (c->scan.nhits == 0 || ex->head_sent)
        return;
    const struct config_guard *g = &ex->cfg->guard;
    if (g->action == CONFIG_GUARD_SANITIZE)
        http_add_header(ex, "x-portcullis-guard",
                        arena_printf(&ex->arena, "sanitized; rules=%s", c->scan.rules));
    else if (g->action == CONFIG_GUARD_FLAG)
        http_add_header(ex, "x-portcullis-guard",
                        arena_printf(&ex->arena, "flagged; rules=%s", c->scan.rules));
}

/* Notes the tasks a reply to a message send starts, with the caller. */
static void note_tasks(struct call *c, json_t *result)
{
    const char *ids[8];
    if (c->rpc.kind != A2A_M_SEND && c->rpc.kind != A2A_M_STREAM)
        return;
    size_t n = a2a_reply_task_ids(result, ids, 8);
    for (size_t i = 0; i < n; i++)
        a2a_tasks_note(a2a_tasks_of(c->a2a), ids[i], c->ex->principal->agent);
}

/* Scans one reply value; returns 1 when the guard blocks it, 0 to pass it on
 * (rewritten in place with sanitize), -1 when it could not be scanned. */
static int scan_value(struct call *c, json_t *v)
{
    const struct config_guard *g = &c->ex->cfg->guard;
    size_t before = c->scan.nhits;
    char source[96];
    snprintf(source, sizeof source, "a2a:%s", c->agent->name);
    if (a2a_reply_scan(v, g->guard, g->action == CONFIG_GUARD_SANITIZE, source,
                       guard_action_name(g), &c->scan) < 0)
        return -1;
    if (c->scan.nhits > before && g->action == CONFIG_GUARD_BLOCK)
        return 1;
    if (c->streaming)
        taint_session(c); /* this event goes out now, before the stream ends */
    return 0;
}

static const char *withheld_reason(struct call *c)
{
    audit_guard(c);
    return arena_printf(&c->ex->arena, "guard: reply withheld (rules %s)", c->scan.rules);
}

/* The whole (non-streamed) answer is in: check it, scan it, pass it on. */
static void finish_whole(struct call *c)
{
    struct http_exchange *ex = c->ex;
    const json_t *id = c->rpc.id;
    const char *name = c->agent->name;
    json_error_t e;
    json_t *doc = c->resp.len ? json_loadb(c->resp.data, c->resp.len, 0, &e) : NULL;
    if (c->is_card) {
        char msg[200];
        char *card = NULL;
        if (c->status == 200)
            card = a2a_card_rewrite(c->resp.data ? c->resp.data : "", c->resp.len, c->rpc_url, msg,
                                    sizeof msg);
        else
            snprintf(msg, sizeof msg, "it answered HTTP %ld", c->status);
        json_decref(doc);
        if (card == NULL) {
            rpc_fail(ex, 502, NULL, A2A_INVALID_AGENT_RESPONSE, "error", NULL,
                     "could not get the agent card of A2A agent '%s': %s", name, msg);
            return;
        }
        a2a_card_put(c->a2a, c->agent->card_url, c->resp.data, c->resp.len);
        ex->decision = "allow";
        http_respond(ex, 200, "application/json", card, strlen(card));
        free(card);
        return;
    }
    if (!json_is_object(doc) ||
        (json_object_get(doc, "result") == NULL && json_object_get(doc, "error") == NULL)) {
        json_decref(doc);
        rpc_fail(ex, 200, id, A2A_INVALID_AGENT_RESPONSE, "error", NULL,
                 "A2A agent '%s' answered HTTP %ld without a JSON-RPC response", name, c->status);
        return;
    }
    int changed = 0;
    json_t *result = json_object_get(doc, "result");
    note_tasks(c, result);
    if (json_is_object(result) && a2a_method_returns_card(c->rpc.method)) {
        /* an extended card must not lead the client around the gateway either */
        a2a_card_rewrite_json(result, gateway_url(ex, c->agent->name));
        changed = 1;
    }
    if (c->guard_on && result != NULL) {
        int rc = scan_value(c, result);
        if (rc < 0) {
            json_decref(doc);
            rpc_fail(ex, 200, id, A2A_INVALID_AGENT_RESPONSE, "error", NULL,
                     "the reply of A2A agent '%s' could not be scanned (nested too deep?)", name);
            return;
        }
        if (rc == 1) {
            json_decref(doc);
            rpc_fail(ex, 200, id, A2A_REPLY_WITHHELD, "deny", withheld_reason(c),
                     "the reply of A2A agent '%s' was withheld: it reads as a prompt injection "
                     "(score %.2f; guard rules %s)",
                     name, c->scan.score, c->scan.rules);
            return;
        }
        changed |= c->scan.changed;
    }
    note_guard(c);
    if (json_object_get(doc, "error") != NULL) {
        ex->decision = "error";
        ex->decision_reason =
            arena_printf(&ex->arena, "A2A agent answered a JSON-RPC error (HTTP %ld)", c->status);
    } else {
        ex->decision = "allow";
    }
    if (changed) {
        char *s = json_dumps(doc, JSON_COMPACT);
        if (s != NULL) {
            http_respond(ex, 200, "application/json", s, strlen(s));
            free(s);
        } else {
            rpc_fail(ex, 200, id, A2A_INTERNAL_ERROR, "error", NULL, "out of memory");
        }
    } else {
        http_respond(ex, 200, "application/json", c->resp.data, c->resp.len);
    }
    json_decref(doc);
}

/* Writes to the stream; -1 when the client is gone. */
static int stream_write(struct call *c, const char *p, size_t n)
{
    c->in_callback++;
    long q = http_stream_write(c->ex, p, n);
    c->in_callback--;
    if (q < 0 || c->client_gone)
        return -1;
    if (q > HTTP_OUT_HIGH_WATER)
        c->over_water = 1;
    return 0;
}

/* Ends the stream with a JSON-RPC error event. */
static void stream_error(struct call *c, int code, const char *msg, const char *reason)
{
    char *body = a2a_rpc_error(c->rpc.id, code, msg, reason);
    if (body != NULL) {
        size_t n = strlen(body);
        while (n > 0 && body[n - 1] == '\n')
            body[--n] = '\0';
        buf_t b;
        buf_init(&b, n + 64);
        if (buf_append_lit(&b, "event: error\ndata: ") == 0 && buf_append(&b, body, n) == 0 &&
            buf_append_lit(&b, "\n\n") == 0)
            (void)stream_write(c, b.data, b.len);
        buf_free(&b);
        free(body);
    }
    if (!c->client_gone)
        http_stream_end(c->ex);
    c->ended = 1;
}

static int on_event(void *ud, const char *ev, size_t len)
{
    struct call *c = ud;
    if (c->ended)
        return -1;
    if (c->agent->untrusted)
        taint_session(c); /* whatever it streams is untrusted content */
    int starts_tasks = c->rpc.kind == A2A_M_SEND || c->rpc.kind == A2A_M_STREAM;
    if (!c->guard_on && !starts_tasks)
        return stream_write(c, ev, len);
    char name[64];
    buf_reset(&c->data);
    if (a2a_sse_event_data(ev, len, &c->data, name, sizeof name) <= 0)
        return stream_write(c, ev, len); /* comments, keep-alives, ids only */
    json_error_t e;
    json_t *doc = json_loadb(c->data.data, c->data.len, 0, &e);
    json_t *result = json_object_get(doc, "result");
    if (result == NULL) {
        json_decref(doc);
        return stream_write(c, ev, len);
    }
    note_tasks(c, result);
    if (!c->guard_on) {
        json_decref(doc);
        return stream_write(c, ev, len);
    }
    int rc = scan_value(c, result);
    if (rc != 0) {
        json_decref(doc);
        struct http_exchange *ex = c->ex;
        if (rc < 0) {
            ex->decision = "error";
            ex->decision_reason = "an event of the agent's stream could not be scanned";
            stream_error(c, A2A_INVALID_AGENT_RESPONSE,
                         "an event from the A2A agent could not be scanned", NULL);
        } else {
            ex->decision = "deny";
            ex->decision_reason = withheld_reason(c);
            char msg[512];
            snprintf(msg, sizeof msg,
                     "the stream of A2A agent '%s' was cut: an event was withheld, it reads as a "
                     "prompt injection "
                     "(score %.2f; guard rules %s)",
                     c->agent->name, c->scan.score, c->scan.rules);
            stream_error(c, A2A_REPLY_WITHHELD, msg, ex->decision_reason);
        }
        return -1;
    }
    int out;
    if (c->scan.changed) {
        c->scan.changed = 0;
        char *s = json_dumps(doc, JSON_COMPACT);
        buf_t b;
        buf_init(&b, A2A_MAX_EVENT * 2);
        /* the event's name is kept (data is one line of compact JSON) */
        int rc = s == NULL || (name[0] != '\0' && buf_appendf(&b, "event: %s\n", name) != 0) ||
                 buf_append_lit(&b, "data: ") != 0 || buf_append(&b, s, strlen(s)) != 0 ||
                 buf_append_lit(&b, "\n\n") != 0;
        out = rc == 0 ? stream_write(c, b.data, b.len) : -1;
        buf_free(&b);
        free(s);
    } else {
        out = stream_write(c, ev, len);
    }
    json_decref(doc);
    return out;
}

static void on_drain(struct http_exchange *ex)
{
    struct call *c = ex->handler_data;
    if (c != NULL && c->paused && c->ureq) {
        c->paused = 0;
        ex->on_drain = NULL;
        c->in_callback++;
        upstream_resume(c->ureq);
        c->in_callback--;
    }
}

static int up_headers(void *ud, long status, const char *ctype)
{
    struct call *c = ud;
    struct http_exchange *ex = c->ex;
    if (c->client_gone)
        return -1;
    c->status = status;
    if (!c->is_card && status == 200 && ctype != NULL &&
        strncasecmp(ctype, "text/event-stream", 17) == 0) {
        c->streaming = 1;
        a2a_sse_init(&c->sse, A2A_MAX_EVENT);
        buf_init(&c->data, A2A_MAX_EVENT);
        ex->decision = "allow";
        http_add_header(ex, "Cache-Control", "no-cache");
        http_stream_start(ex, 200, "text/event-stream");
    }
    return 0;
}

static int up_data(void *ud, const char *data, size_t len)
{
    struct call *c = ud;
    if (c->client_gone || c->ended)
        return -1;
    if (!c->streaming)
        return buf_append(&c->resp, data, len) == 0 ? 0 : -1;
    c->over_water = 0;
    int rc = a2a_sse_feed(&c->sse, data, len, on_event, c);
    if (rc < 0) {
        if (!c->ended && !c->client_gone) {
            c->ex->decision = "error";
            c->ex->decision_reason = "an event of the agent's stream was too large";
            stream_error(c, A2A_INVALID_AGENT_RESPONSE,
                         "an event from the A2A agent was larger than the gateway accepts", NULL);
        }
        return -1;
    }
    if (c->over_water) {
        c->paused = 1;
        c->ex->on_drain = on_drain;
        return 1;
    }
    return 0;
}

static void up_done(void *ud, enum upstream_result result, const char *errmsg)
{
    struct call *c = ud;
    struct http_exchange *ex = c->ex;
    c->ureq = NULL;
    ex->upstream_seconds = (double)(clock_mono_ns() - c->up_start_ns) / 1e9;
    if (c->client_gone) {
        call_release(c);
        return;
    }
    const char *name = c->agent->name;
    if (c->streaming) {
        if (!c->ended && result == UPSTREAM_OK && a2a_sse_finish(&c->sse, on_event, c) == 0 &&
            !c->ended) {
            note_guard(c);
            http_stream_end(ex);
            c->ended = 1;
        } else if (!c->ended) {
            char msg[300];
            snprintf(msg, sizeof msg, "the stream from A2A agent '%s' broke: %s", name,
                     errmsg ? errmsg : "bad event");
            ex->decision = "error";
            ex->decision_reason = arena_strdup(&ex->arena, msg);
            stream_error(c, A2A_UPSTREAM_UNAVAILABLE, msg, NULL);
        }
        call_release(c);
        return;
    }
    if (result != UPSTREAM_OK) {
        int timeout = result == UPSTREAM_ETIMEDOUT;
        const char *what = result == UPSTREAM_ECANCELED ? "its reply was larger than the gateway "
                                                          "accepts"
                           : errmsg                     ? errmsg
                                                        : "upstream error";
        char reason[300];
        snprintf(reason, sizeof reason, "upstream: %s", what);
        rpc_fail(ex, c->is_card ? 502 : 200, c->rpc.id,
                 timeout ? A2A_UPSTREAM_TIMEOUT : A2A_UPSTREAM_UNAVAILABLE, "error", reason,
                 "A2A agent '%s' is unavailable: %s", name, what);
        call_release(c);
        return;
    }
    finish_whole(c);
    call_release(c);
}

static const struct upstream_callbacks up_cb = {
    .on_headers = up_headers,
    .on_data = up_data,
    .on_done = up_done,
};

static void on_abort(struct http_exchange *ex)
{
    struct call *c = ex->handler_data;
    if (c == NULL)
        return;
    c->client_gone = 1;
    if (c->in_callback)
        return; /* the upstream callback returns -1 and up_done releases */
    if (c->ureq) {
        upstream_cancel(c->ureq);
        c->ureq = NULL;
        call_release(c);
    }
}

/* Copies the client's header `name` into the outbound list when present. */
static void pass_header(struct http_exchange *ex, struct upstream_header *h, size_t *n,
                        const char *name)
{
    const struct http_header *v = http_request_header(ex->req, name);
    if (v != NULL && *n < MAX_HEADERS)
        h[(*n)++] =
            (struct upstream_header){name, arena_strndup(&ex->arena, v->value, v->value_len)};
}

static void forward(struct call *c, struct identity *id)
{
    c->id = id;
    struct http_exchange *ex = c->ex;
    const struct config_a2a_agent *ag = c->agent;
    /* c lives in the exchange's arena: hold the exchange until call_release,
     * whatever answers it first */
    buf_init(&c->resp, c->is_card ? MAX_CARD : A2A_MAX_REPLY);
    a2a_scan_init(&c->scan);
    ex->handler_data = c;
    ex->on_abort = on_abort;
    http_exchange_ref(ex);
    c->token = identity_outbound_token(id, ex->cfg->identity.issuer, ex->principal, ag->name,
                                       ex->request_id, TOKEN_TTL_S);
    if (c->token == NULL) {
        rpc_fail(ex, c->is_card ? 500 : 200, c->rpc.id, A2A_INTERNAL_ERROR, "error",
                 "no identity token", "the gateway could not sign an identity token for the call");
        call_release(c);
        return;
    }
    struct upstream_header *h = arena_alloc(&ex->arena, MAX_HEADERS * sizeof *h);
    char *tp = arena_alloc(&ex->arena, TRACEPARENT_LEN + 1);
    if (h == NULL || tp == NULL) {
        rpc_fail(ex, 500, c->rpc.id, A2A_INTERNAL_ERROR, "error", NULL, "out of memory");
        call_release(c);
        return;
    }
    size_t n = 0;
    trace_outbound(ex, tp);
    if (!c->is_card)
        h[n++] = (struct upstream_header){"Content-Type", "application/json"};
    const struct http_header *acc = http_request_header(ex->req, "accept");
    h[n++] = (struct upstream_header){"Accept",
                                      acc ? arena_strndup(&ex->arena, acc->value, acc->value_len)
                                      : c->is_card ? "application/json"
                                                   : "application/json, text/event-stream"};
    pass_header(ex, h, &n, "A2A-Version");
    pass_header(ex, h, &n, "A2A-Extensions");
    pass_header(ex, h, &n, "X-A2A-Extensions");
    h[n++] = (struct upstream_header){"traceparent", tp};
    for (size_t i = 0; i < ag->nheaders && n < MAX_HEADERS - 1; i++)
        h[n++] = (struct upstream_header){ag->headers[i].name, ag->headers[i].value};
    int bearer = strcasecmp(ag->identity_header, "Authorization") == 0;
    h[n++] = (struct upstream_header){ag->identity_header,
                                      bearer ? arena_concat(&ex->arena, "Bearer ", c->token, NULL)
                                             : c->token};
    struct upstream_opts o = {
        .method = c->is_card ? "GET" : "POST",
        .url = c->is_card ? ag->card_url : ag->url,
        .headers = h,
        .nheaders = n,
        .body = c->is_card ? NULL : ex->req->body.data,
        .body_len = c->is_card ? 0 : ex->req->body.len,
        .timeout_ms = c->is_card ? 30000 : ag->timeout_ms,
        .connect_timeout_ms = 5000,
    };
    c->up_start_ns = clock_mono_ns();
    c->ureq = upstream_start(ex->worker->upstream, &o, &up_cb, c);
    if (c->ureq == NULL) {
        rpc_fail(ex, c->is_card ? 502 : 200, c->rpc.id, A2A_UPSTREAM_UNAVAILABLE, "error",
                 "upstream: could not start the request",
                 "A2A agent '%s' is unavailable: the request could not be started", ag->name);
        call_release(c);
    }
}

/* ---- policy ------------------------------------------------------------------- */

/* Action::"send_message" on Agent::"<name>". 0 when allowed; -1 when it has
 * answered. context: chain, depth, method, and skill when the message names
 * one. */
static int decide(struct http_exchange *ex, const struct config_a2a_agent *ag, const json_t *id,
                  const char *method, const char *skill)
{
    const struct config_policy *pol = &ex->cfg->policy;
    if (pol->set == NULL)
        return 0;
    const struct identity_principal *p = ex->principal;
    const char *agent = p && p->agent ? p->agent : "anonymous";
    json_t *ctx = policy_chain_context(p ? p->chain : NULL, p ? p->chain_len : 0,
                                       p && p->chain_len > 0 ? p->chain_len - 1 : 0);
    if (ctx != NULL)
        json_object_set_new(ctx, "method", json_string(method));
    if (ctx != NULL && skill != NULL)
        json_object_set_new(ctx, "skill", json_string(skill));
    struct policy_request req = {
        .principal = policy_uid_make("Agent", agent),
        .action = policy_uid_make("Action", "send_message"),
        .resource = policy_uid_make("Agent", ag->name),
        .context = ctx,
    };
    struct policy_decision d;
    int rc = ctx ? policy_decide(pol->set, pol->entities, &req, &d) : -1;
    json_decref(ctx);
    if (rc < 0) {
        if (ctx)
            policy_decision_free(&d);
        rpc_fail(ex, 200, id, A2A_INTERNAL_ERROR, "error", "policy evaluation failed",
                 "the policy decision for this call failed");
        return -1;
    }
    int deny = policy_denies(&d, pol->default_allow);
    ex->policy_ids = policy_ids_dup(&d, &ex->arena);
    policy_decision_free(&d);
    if (!deny)
        return 0;
    if (ex->policy_ids)
        rpc_fail(ex, 200, id, A2A_PERMISSION_DENIED, "deny",
                 arena_printf(&ex->arena, "policy_denied: forbid %s", ex->policy_ids),
                 "permission denied: Action::\"send_message\" on Agent::\"%s\" for "
                 "Agent::\"%.200s\" is forbidden by policy %s",
                 ag->name, agent, ex->policy_ids);
    else
        rpc_fail(ex, 200, id, A2A_PERMISSION_DENIED, "deny", "policy_denied: no permit",
                 "permission denied: no policy permits Action::\"send_message\" on "
                 "Agent::\"%s\" for Agent::\"%.200s\"",
                 ag->name, agent);
    return -1;
}

/* ---- the route ------------------------------------------------------------------ */

int a2a_route_match(const struct http_exchange *ex)
{
    const struct http_request *r = ex->req;
    return (r->path_len == 4 || (r->path_len > 4 && r->path[4] == '/')) &&
           memcmp(r->path, "/a2a", 4) == 0;
}

/* Whether p is owner, or acts for it (owner is in p's delegation chain). */
static int acts_for(const struct identity_principal *p, const char *owner)
{
    for (size_t i = 0; p != NULL && i < p->chain_len; i++)
        if (strcmp(p->chain[i], owner) == 0)
            return 1;
    return p != NULL && p->agent != NULL && strcmp(p->agent, owner) == 0;
}

/* Host header fit to build a URL from: host[:port], nothing else. */
static int host_ok(const char *v, size_t n)
{
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']'))
            return 0;
    }
    return 1;
}

/* The URL clients reach this agent at through the gateway. */
static const char *gateway_url(struct http_exchange *ex, const char *name)
{
    const struct config *cfg = ex->cfg;
    if (cfg->a2a.public_url != NULL)
        return arena_printf(&ex->arena, "%s/a2a/%s", cfg->a2a.public_url, name);
    const char *scheme = cfg->tls.cert_file ? "https" : "http";
    const struct http_header *h = http_request_header(ex->req, "host");
    if (h != NULL && host_ok(h->value, h->value_len))
        return arena_printf(&ex->arena, "%s://%.*s/a2a/%s", scheme, (int)h->value_len, h->value,
                            name);
    return arena_printf(&ex->arena, "%s://%s:%u/a2a/%s", scheme, cfg->listen.host, cfg->listen.port,
                        name);
}

void a2a_endpoint(struct a2a *a, struct identity *id, struct http_exchange *ex)
{
    const struct http_request *r = ex->req;
    ex->route = "a2a";
    /* /a2a/<name> or /a2a/<name>/.well-known/agent-card.json */
    const char *name = r->path_len > 5 ? r->path + 5 : "";
    size_t nlen = strcspn(name, "/");
    const char *rest = name + nlen;
    int card = strcmp(rest, CARD_PATH) == 0;
    if (nlen == 0 || nlen > 64 || (!card && rest[0] != '\0')) {
        int rc = identity_authenticate(id, ex);
        if (rc == 0)
            rpc_fail(ex, 404, NULL, A2A_METHOD_NOT_FOUND, "error", "unknown_route",
                     "no A2A route here: use /a2a/<agent> (JSON-RPC) or "
                     "/a2a/<agent>" CARD_PATH);
        return;
    }
    int rc = identity_authenticate(id, ex);
    if (rc != 0)
        return; /* answered (401/403), or parked for a JWKS refetch */
    if (ex->principal == NULL) {
        http_add_header(ex, "WWW-Authenticate", "Bearer realm=\"portcullis\"");
        rpc_fail(ex, 401, NULL, A2A_UNAUTHENTICATED, "deny", "identity: missing credential",
                 "A2A routes need an identity: send a portcullis API key or a bearer token in "
                 "Authorization");
        return;
    }
    char *aname = arena_strndup(&ex->arena, name, nlen);
    const struct config_a2a_agent *ag = aname ? config_find_a2a_agent(ex->cfg, aname) : NULL;
    if (ag == NULL) {
        rpc_fail(ex, 404, NULL, A2A_METHOD_NOT_FOUND, "error", "unknown agent",
                 "no A2A agent named '%.64s' at this gateway", aname ? aname : "?");
        return;
    }
    ex->resource = arena_printf(&ex->arena, "Agent::\"%s\"", ag->name);
    ex->model = ag->name; /* the metrics' model label: one per configured agent */
    const char *item = arena_printf(&ex->arena, "agent:%s", ag->name);
    if (item == NULL || !identity_scope_allows(ex->principal, item)) {
        rpc_fail(ex, 200, NULL, A2A_PERMISSION_DENIED, "deny", "scope_denied",
                 "agent %.64s may not call A2A agent %s (scope: %.100s)", ex->principal->agent,
                 ag->name, ex->principal->scope ? ex->principal->scope : "");
        return;
    }
    struct call *c = arena_alloc(&ex->arena, sizeof *c);
    if (c == NULL) {
        rpc_fail(ex, 500, NULL, A2A_INTERNAL_ERROR, "error", NULL, "out of memory");
        return;
    }
    memset(c, 0, sizeof *c);
    c->ex = ex;
    c->a2a = a;
    c->agent = ag;
    c->guard_on = ex->cfg->guard.guard != NULL && (ex->cfg->guard.scan & CONFIG_GUARD_A2A_REPLIES);
    if (card) {
        ex->action = "agent_card";
        if (strcmp(r->method, "GET") != 0) {
            http_add_header(ex, "Allow", "GET");
            rpc_fail(ex, 405, NULL, A2A_INVALID_REQUEST, "error", NULL,
                     "the agent card is read with GET");
            return;
        }
        if (decide(ex, ag, NULL, "agent_card", NULL) < 0)
            return;
        c->is_card = 1;
        c->rpc_url = gateway_url(ex, ag->name);
        size_t len = 0;
        char *cached = a2a_card_get(a, ag->card_url, ex->cfg->a2a.card_ttl_ms, &len);
        if (cached != NULL) {
            char msg[200];
            char *out = a2a_card_rewrite(cached, len, c->rpc_url, msg, sizeof msg);
            free(cached);
            if (out != NULL) {
                ex->decision = "allow";
                ex->decision_reason = "agent card from the cache";
                http_respond(ex, 200, "application/json", out, strlen(out));
                free(out);
                return;
            }
        }
        forward(c, id);
        return;
    }
    if (strcmp(r->method, "POST") != 0) {
        http_add_header(ex, "Allow", "POST");
        rpc_fail(ex, 405, NULL, A2A_INVALID_REQUEST, "error", NULL,
                 "A2A JSON-RPC calls are POSTed to /a2a/%s", ag->name);
        return;
    }
    char msg[300];
    struct a2a_rpc rpc; /* on the stack until the call holds the exchange */
    int code = a2a_rpc_parse(r->body.data ? r->body.data : "", r->body.len, &rpc, msg, sizeof msg);
    if (code != 0) {
        rpc_fail(ex, 200, rpc.id, code, "error", NULL, "%s", msg); /* frees c with the arena */
        a2a_rpc_clear(&rpc);
        return;
    }
    ex->action = arena_strdup(&ex->arena, rpc.method);
    if (decide(ex, ag, rpc.id, rpc.method, rpc.skill) < 0) {
        a2a_rpc_clear(&rpc);
        return;
    }
    const char *task = a2a_rpc_task_ref(rpc.root);
    char owner[80];
    if (task != NULL && a2a_tasks_owner(a2a_tasks_of(a), task, owner, sizeof owner) &&
        !acts_for(ex->principal, owner)) {
        /* "not found", as the agent would say: whose it is goes to the audit only */
        ex->error_type = "a2a_error";
        ex->decision = "deny";
        ex->decision_reason =
            arena_printf(&ex->arena, "task %.100s was started by Agent::\"%s\"", task, owner);
        char *body = a2a_rpc_error(rpc.id, A2A_TASK_NOT_FOUND, "task not found", NULL);
        if (body != NULL)
            http_respond(ex, 200, "application/json", body, strlen(body));
        else
            http_respond(ex, 500, "application/json", "{}\n", 3);
        free(body);
        a2a_rpc_clear(&rpc);
        return;
    }
    c->rpc = rpc;
    forward(c, id);
}
