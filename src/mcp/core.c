// SPDX-License-Identifier: Apache-2.0
// The hub core, on the hub's loop: client sessions (bound to their principal,
// idle expiry, GET streams), the requests clients send (initialize, lists
// merged across servers, calls routed after Cedar says yes), parking while
// servers start, and the sweep that expires sessions and overdue calls.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/clock.h"
#include "core/log.h"
#include "mcp/core.h"

uint64_t hub_now(struct mcp_core *c)
{
    return uv_now(c->loop);
}

/* ---- small helpers -------------------------------------------------------- */

void hub_answer_json(struct mcp_ticket *t, int status, char *body)
{
    if (body == NULL)
        mcp_ticket_respond(t, 500, NULL, 0);
    else
        mcp_ticket_respond(t, status, body, strlen(body));
    free(body);
}

void hub_answer_error(struct mcp_ticket *t, int status, const json_t *id, int code, const char *msg)
{
    hub_answer_json(t, status, mcp_rpc_error(id, code, msg, NULL));
}

void hub_answer_result(struct mcp_ticket *t, const json_t *id, json_t *result)
{
    hub_answer_json(t, 200, mcp_rpc_result(id, result));
    json_decref(result);
}

void mcp_core_set_identity(struct mcp_core *c, struct identity *id)
{
    c->identity = id;
}

/* ---- pending requests ------------------------------------------------------ */

struct pending *hub_pending_new(struct mcp_core *c, struct up *u, enum pkind kind)
{
    struct pending *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->id = ++c->next_id;
    p->up = u;
    p->kind = kind;
    p->deadline_ms = hub_now(c) + (u->conf->timeout_ms ? u->conf->timeout_ms : 60000);
    size_t b = p->id % PEND_BUCKETS;
    p->next = c->pend[b];
    c->pend[b] = p;
    return p;
}

struct pending *hub_pending_find(struct mcp_core *c, uint64_t id)
{
    for (struct pending *p = c->pend[id % PEND_BUCKETS]; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

void hub_pending_breaker(struct pending *p, enum breaker_outcome o)
{
    struct breaker *b = p->br.b;
    if (b == NULL)
        return;
    uint64_t now = clock_mono_ns() / 1000000u;
    int ev = breaker_done(&p->br, o, now > p->br_start_ms ? now - p->br_start_ms : 0, now);
    if (ev & BREAKER_EV_OPENED)
        log_msg(LOG_WARN, NULL,
                "mcp: circuit breaker %s opened (tools/call to it are refused "
                "for %u ms)",
                breaker_id(b), breaker_params(b)->pause_ms);
    else if (ev & BREAKER_EV_CLOSED)
        log_msg(LOG_WARN, NULL, "mcp: circuit breaker %s closed", breaker_id(b));
    if (ev & BREAKER_EV_ALERT)
        log_msg(LOG_ERROR, NULL, "mcp: breaker error-rate alert for %s", breaker_id(b));
    breaker_unref(b);
}

void hub_pending_free(struct mcp_core *c, struct pending *p)
{
    hub_pending_breaker(p, BREAKER_ABANDON);
    struct pending **pp = &c->pend[p->id % PEND_BUCKETS];
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp)
        *pp = p->next;
    if (p->client_id)
        json_decref(p->client_id);
    if (p->progress_token)
        json_decref(p->progress_token);
    free(p->tool);
    if (p->acc)
        json_decref(p->acc);
    if (p->t)
        mcp_ticket_unref(p->t);
    free(p);
}

/* Answers a client's pending request with an error and forgets it. */
void hub_pending_fail(struct mcp_core *c, struct pending *p, const char *msg)
{
    hub_pending_breaker(p, BREAKER_ERROR);
    if (p->kind == P_CLIENT && p->t && p->tool) /* permitted, but it did not happen */
        mcp_ticket_set_decision(p->t, "error", msg);
    if (p->kind == P_CLIENT && p->t) {
        json_t *data = json_pack("{s:s}", "server", p->up->conf->name);
        char *body = mcp_rpc_error(p->client_id, JSONRPC_INTERNAL_ERROR, msg, data);
        json_decref(data);
        if (body && p->sse) {
            mcp_ticket_event(p->t, body, strlen(body));
            mcp_ticket_finish(p->t);
        } else if (body) {
            mcp_ticket_respond(p->t, 200, body, strlen(body));
        }
        if (body == NULL)
            mcp_ticket_respond(p->t, 500, NULL, 0);
        free(body);
    }
    hub_pending_free(c, p);
}

/* The newest client request in flight on u, preferring one whose answer is
 * still open (its stream can take what the server sends). */
static struct pending *newest_call(struct mcp_core *c, struct up *u)
{
    struct pending *best = NULL;
    for (size_t b = 0; b < PEND_BUCKETS; b++)
        for (struct pending *p = c->pend[b]; p; p = p->next) {
            if (p->kind != P_CLIENT || p->up != u)
                continue;
            int open = mcp_ticket_open(p->t), best_open = best && mcp_ticket_open(best->t);
            if (!best || open > best_open || (open == best_open && p->id > best->id))
                best = p;
        }
    return best;
}

/* A client call on u under the number the hub sent upstream for it. */
static struct pending *call_numbered(struct mcp_core *c, struct up *u, uint64_t n)
{
    struct pending *p = n ? hub_pending_find(c, n) : NULL;
    return p && p->kind == P_CLIENT && p->up == u ? p : NULL;
}

/* The same, named in a message: an integer, or a string of digits. */
static struct pending *call_named(struct mcp_core *c, struct up *u, const json_t *id)
{
    const char *s = json_string_value(id);
    char *end = NULL;
    if (json_is_integer(id) && json_integer_value(id) > 0)
        return call_numbered(c, u, (uint64_t)json_integer_value(id));
    if (s == NULL || *s < '0' || *s > '9')
        return NULL;
    uint64_t n = strtoull(s, &end, 10);
    return *end == '\0' ? call_numbered(c, u, n) : NULL;
}

struct pending *hub_call_of(struct mcp_core *c, struct up *u, uint64_t cookie, const json_t *params,
                            enum attribution *how)
{
    struct pending *p;
    if (cookie != 0) {
        /* on the answer stream of the request sent with that cookie */
        p = call_numbered(c, u, cookie);
        *how = p ? ATTR_STREAM : ATTR_GONE;
        return p;
    }
    const json_t *meta = json_object_get(params, "_meta");
    const json_t *rel = json_object_get(meta, HUB_RELATED_REQUEST);
    if (rel != NULL) {
        p = call_named(c, u, rel);
        *how = p ? ATTR_NAMED : ATTR_GONE;
        return p;
    }
    const json_t *tok = json_object_get(meta, "progressToken");
    if (tok != NULL && hub_token_id(tok, "pcl-p-") != 0) {
        p = call_numbered(c, u, hub_token_id(tok, "pcl-p-"));
        *how = p ? ATTR_NAMED : ATTR_GONE;
        return p;
    }
    /* nothing names the call: only safe when a single session is calling u */
    p = newest_call(c, u);
    for (size_t b = 0; p && b < PEND_BUCKETS; b++)
        for (struct pending *q = c->pend[b]; q; q = q->next)
            if (q->kind == P_CLIENT && q->up == u && strcmp(q->session, p->session) != 0) {
                *how = ATTR_AMBIGUOUS;
                return NULL;
            }
    *how = p ? ATTR_ONLY : ATTR_NONE;
    return p;
}

/* ---- sessions --------------------------------------------------------------- */

struct session *hub_session_find(struct mcp_core *c, const char *id)
{
    for (struct session *s = c->sessions; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static void session_free(struct mcp_core *c, struct session *s)
{
    struct session **pp = &c->sessions;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = s->next;
        c->nsessions--;
    }
    if (s->taint.flags)
        hub_guard_publish(c, s, 0); /* a token can no longer be delegated from it */
    if (s->get) {
        mcp_ticket_finish(s->get);
        mcp_ticket_unref(s->get);
    }
    for (struct s2c **q = &c->s2c; *q;) {
        struct s2c *e = *q;
        if (strcmp(e->session, s->id) == 0) {
            *q = e->next;
            json_decref(e->up_id);
            free(e);
        } else {
            q = &e->next;
        }
    }
    mcp_evlog_unref(s->events);
    mcp_msg_free(s->who);
    json_decref(s->client_caps);
    json_decref(s->subs);
    free(s->owner);
    free(s);
}

struct session *hub_session_new(struct mcp_core *c, const char *owner, const char *version)
{
    unsigned char rnd[24];
    if (c->nsessions >= MAX_SESSIONS)
        return NULL;
    struct session *s = calloc(1, sizeof *s);
    if (s == NULL || getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(s->id + 2 * i, 3, "%02x", rnd[i]);
    s->owner = strdup(owner);
    s->subs = json_array();
    s->events = mcp_evlog_new();
    snprintf(s->version, sizeof s->version, "%s", version);
    s->last_ms = hub_now(c);
    if (s->owner == NULL || s->subs == NULL || s->events == NULL) {
        free(s->owner);
        json_decref(s->subs);
        mcp_evlog_unref(s->events);
        free(s);
        return NULL;
    }
    s->next = c->sessions;
    c->sessions = s;
    c->nsessions++;
    return s;
}

void mcp_core_set_page_size(struct mcp_core *c, size_t n)
{
    c->page_size = n ? n : MCP_PAGE_SIZE;
}

size_t mcp_core_session_count(const struct mcp_core *c)
{
    size_t n = 0;
    for (const struct session *s = c->sessions; s; s = s->next)
        n++;
    return n;
}

/* Sends a message to a client session: on the stream of the request it
 * belongs to when the client accepts one, else on the session's GET stream.
 * -1 when neither is open. */
int hub_to_client(struct mcp_core *c, const char *session, struct pending *p, json_t *msg)
{
    char *s = json_dumps(msg, JSON_COMPACT);
    int rc = -1;
    if (s == NULL)
        return -1;
    if (p != NULL && p->t && p->accept_sse && mcp_ticket_event(p->t, s, strlen(s)) == 0) {
        p->sse = 1;
        rc = 0;
    } else {
        struct session *ss = hub_session_find(c, session);
        if (ss && ss->get && mcp_ticket_event(ss->get, s, strlen(s)) == 0)
            rc = 0;
    }
    free(s);
    return rc;
}

void hub_list_changed(struct session *s, int kind)
{
    char note[128];
    int n =
        snprintf(note, sizeof note, "{\"jsonrpc\":\"2.0\",\"method\":\"%s\"}", hub_list_note[kind]);
    if ((s->get == NULL || mcp_ticket_event(s->get, note, (size_t)n) < 0) && s->had_get)
        s->missed |= 1u << kind;
}

/* ---- parking: requests that need every upstream's lists -------------------- */

static int busy(struct mcp_core *c, const struct up *u)
{
    int starting = u->state == UP_CONNECTING || u->state == UP_INIT || u->state == UP_LISTING;
    return starting && hub_now(c) < u->opened_ms + PARK_MS;
}

/* Whether a request for upstream `up` (-1: for all of them) must wait. */
static int must_wait(struct mcp_core *c, long up)
{
    if (up >= 0 && (size_t)up < c->nups)
        return busy(c, &c->ups[up]);
    for (size_t i = 0; i < c->nups; i++)
        if (busy(c, &c->ups[i]))
            return 1;
    return 0;
}

static int park(struct mcp_core *c, struct mcp_msg *m, long up)
{
    if (!must_wait(c, up))
        return 0;
    struct parked *k = calloc(1, sizeof *k);
    if (k == NULL)
        return 0;
    k->m = m;
    k->up = up;
    struct parked **pp = &c->parked;
    while (*pp)
        pp = &(*pp)->next;
    *pp = k;
    return 1;
}

void hub_unpark(struct mcp_core *c)
{
    /* take out those whose upstreams are ready, then run them: running one
     * may park or unpark others */
    struct parked *ready = NULL, **rt = &ready;
    for (struct parked **pp = &c->parked; *pp;) {
        struct parked *k = *pp;
        if (must_wait(c, k->up)) {
            pp = &k->next;
            continue;
        }
        *pp = k->next;
        k->next = NULL;
        *rt = k;
        rt = &k->next;
    }
    while (ready) {
        struct parked *k = ready;
        ready = k->next;
        mcp_core_handle(c, k->m);
        free(k);
    }
}

/* The session a POST names, checked against its caller and protocol
 * version; NULL after answering why not (id: of the request, for that). */
static struct session *post_session(struct mcp_core *c, struct mcp_msg *m, const json_t *id)
{
    char why[128];
    if (m->session[0] == '\0' || m->session_bad) {
        hub_answer_error(m->t, 400, id, JSONRPC_INVALID_REQUEST,
                         m->session_bad ? "Bad Request: unknown Mcp-Session-Id"
                                        : "Bad Request: Mcp-Session-Id header is required");
        return NULL;
    }
    struct session *s = hub_session_find(c, m->session);
    if (s == NULL || strcmp(s->owner, m->owner) != 0) {
        hub_answer_error(m->t, 404, id, -32001, "Session not found");
        return NULL;
    }
    if (m->version[0] && !mcp_version_supported(m->version)) {
        snprintf(why, sizeof why, "Bad Request: unsupported MCP-Protocol-Version %.40s",
                 m->version);
        hub_answer_error(m->t, 400, id, JSONRPC_INVALID_REQUEST, why);
        return NULL;
    }
    s->last_ms = hub_now(c);
    return s;
}

/* A JSON-RPC batch (elems, consumed): only on a session that negotiated
 * 2025-03-26. Each element is handled as a message of its own (a copy of m
 * answered on an element ticket of m's); the answers come back as one JSON
 * array (mcp_ticket_batch_element). initialize cannot be batched; one
 * tools/call per batch, as each call is one audit record. */
static void handle_batch(struct mcp_core *c, struct mcp_msg *m, json_t *elems)
{
    struct session *s = post_session(c, m, NULL);
    if (s == NULL)
        goto done;
    if (strcmp(s->version, "2025-03-26") != 0) {
        char why[200];
        snprintf(why, sizeof why,
                 "Invalid Request: JSON-RPC batches were removed after protocol version "
                 "2025-03-26 and this session speaks %s: send one message per POST",
                 s->version);
        hub_answer_error(m->t, 400, NULL, JSONRPC_INVALID_REQUEST, why);
        goto done;
    }
    mcp_ticket_set_method(m->t, "batch");
    mcp_ticket_set_replay(m->t, s->events, ++s->streams);
    int calls = 0;
    size_t i;
    json_t *el;
    json_array_foreach(elems, i, el)
    {
        const char *meth = json_string_value(json_object_get(el, "method"));
        const char *refuse = NULL;
        if (json_is_array(el))
            refuse = "Invalid Request: a batch inside a batch";
        else if (!json_is_object(el))
            refuse = "Invalid Request: a JSON-RPC message is an object";
        else if (meth && strcmp(meth, "initialize") == 0)
            refuse = "Invalid Request: initialize cannot be part of a batch";
        else if (meth && strcmp(meth, "tools/call") == 0 && calls++ > 0)
            refuse = "Invalid Request: one tools/call per batch (each call is its own audit "
                     "record): send the others in POSTs of their own";
        if (refuse != NULL) {
            json_t *id = json_object_get(el, "id");
            char *body = mcp_rpc_error(json_is_string(id) || json_is_integer(id) ? id : NULL,
                                       JSONRPC_INVALID_REQUEST, refuse, NULL);
            if (body)
                mcp_ticket_batch_add(m->t, body, strlen(body));
            free(body);
            continue;
        }
        char *body = json_dumps(el, JSON_COMPACT | JSON_ENCODE_ANY);
        struct mcp_ticket *t = body ? mcp_ticket_batch_element(m->t) : NULL;
        struct mcp_msg *one = t ? mcp_msg_copy(m, body, strlen(body), t) : NULL;
        if (t == NULL)
            free(body);
        if (one != NULL)
            mcp_core_handle(c, one);
        else if (t != NULL)
            mcp_ticket_respond(t, 500, NULL, 0);
        if (t != NULL)
            mcp_ticket_unref(t);
    }
    mcp_ticket_batch_end(m->t);
done:
    json_decref(elems);
    mcp_msg_free(m);
}

static void handle_post(struct mcp_core *c, struct mcp_msg *m)
{
    struct mcp_rpc rpc;
    json_t *id = NULL;
    char why[300];
    json_t *elems = NULL;
    /* an element of a batch that is an array again is refused by the parse */
    int batch = m->body && m->t->batch == NULL
                    ? mcp_rpc_batch(m->body, m->len, &elems, why, sizeof why)
                    : 0;
    if (batch == 1) {
        handle_batch(c, m, elems);
        return;
    }
    int code = batch != 0 ? batch
               : m->body
                   ? mcp_rpc_parse(m->body, m->len, &rpc, &id, why, sizeof why)
                   : (snprintf(why, sizeof why, "Parse error: empty body"), JSONRPC_PARSE_ERROR);
    if (code != 0) {
        hub_answer_json(m->t, code == JSONRPC_INVALID_PARAMS ? 200 : 400,
                        mcp_rpc_error(id, code, why, NULL));
        json_decref(id);
        mcp_msg_free(m);
        return;
    }
    json_decref(id);
    if (rpc.method)
        mcp_ticket_set_method(m->t, rpc.method);
    int is_init = rpc.kind == MCP_REQUEST && strcmp(rpc.method, "initialize") == 0;
    struct session *s = NULL;
    if (!is_init && (s = post_session(c, m, rpc.id)) == NULL)
        goto done;
    if (s != NULL) /* its SSE answer, if it gets one, can be resumed */
        mcp_ticket_set_replay(m->t, s->events, ++s->streams);
    struct call k = {.c = c, .m = m, .s = s, .rpc = &rpc};
    if (rpc.kind == MCP_REQUEST) {
        /* lists and routing need the servers' lists: wait while the server
         * concerned (or, without one, any server) is starting */
        const char *meth = rpc.method;
        int needs_lists = is_init || strstr(meth, "/list") || strcmp(meth, "tools/call") == 0 ||
                          strcmp(meth, "prompts/get") == 0 ||
                          strncmp(meth, "resources/", 10) == 0 ||
                          strcmp(meth, "completion/complete") == 0;
        if (needs_lists && park(c, m, req_target(c, &rpc))) {
            mcp_rpc_free(&rpc);
            return; /* handled again once the servers have started */
        }
        if (is_init)
            req_initialize(&k);
        else
            req_request(&k);
    } else {
        if (rpc.kind == MCP_NOTIFICATION && is_init) {
            /* cannot happen: is_init needs a request */
        }
        if (s == NULL) {
            hub_answer_error(m->t, 400, NULL, JSONRPC_INVALID_REQUEST,
                             "Bad Request: Mcp-Session-Id header is required");
            goto done;
        }
        if (rpc.kind == MCP_NOTIFICATION)
            req_notification(&k);
        else
            req_response(&k);
        mcp_ticket_respond(m->t, 202, NULL, 0);
    }
done:
    mcp_rpc_free(&rpc);
    mcp_msg_free(m);
}

/* Starts t's SSE answer now: the client sees the head, events follow. */
static void open_stream(struct mcp_ticket *t)
{
    uv_mutex_lock(&t->lock);
    if (!t->closed && t->status == 0) {
        t->status = 200;
        t->stream = 1;
        if (t->has_async)
            uv_async_send(&t->async);
    }
    uv_mutex_unlock(&t->lock);
}

/* GET with the Last-Event-ID of a POST's answer stream: t replays what that
 * stream was sent after it and, while the call is still in flight, carries
 * the rest (the call's answer ends it). */
static void resume_answer(struct mcp_core *c, struct session *s, struct mcp_ticket *t,
                          uint32_t stream, uint64_t after)
{
    mcp_ticket_set_replay(t, s->events, stream);
    open_stream(t);
    mcp_ticket_replay(t, s->events, stream, after);
    for (size_t b = 0; b < PEND_BUCKETS; b++)
        for (struct pending *p = c->pend[b]; p; p = p->next)
            if (p->kind == P_CLIENT && p->t && p->t->evlog == s->events &&
                p->t->ev_stream == stream && strcmp(p->session, s->id) == 0) {
                mcp_ticket_unref(p->t);
                p->t = t;
                mcp_ticket_ref(t);
                p->accept_sse = 1;
                p->sse = 1;
                p->gone_ms = 0;
                return;
            }
    mcp_ticket_finish(t); /* the call is over: its stream ends after the replay */
}

static void handle_get_delete(struct mcp_core *c, struct mcp_msg *m)
{
    if (m->session[0] == '\0' || m->session_bad) {
        hub_answer_error(m->t, 400, NULL, JSONRPC_INVALID_REQUEST,
                         "Bad Request: Mcp-Session-Id header is required");
        goto done;
    }
    struct session *s = hub_session_find(c, m->session);
    if (s == NULL || strcmp(s->owner, m->owner) != 0) {
        hub_answer_error(m->t, 404, NULL, -32001, "Session not found");
        goto done;
    }
    s->last_ms = hub_now(c);
    mcp_ticket_set_method(m->t, m->method == MCP_GET ? "GET stream" : "DELETE session");
    if (m->method == MCP_DELETE) {
        session_free(c, s);
        mcp_ticket_respond(m->t, 200, NULL, 0);
        goto done;
    }
    if (c->draining) {
        hub_answer_error(m->t, 503, NULL, JSONRPC_INTERNAL_ERROR, "the gateway is shutting down");
        goto done;
    }
    uint32_t stream = 0;
    uint64_t after = 0;
    int resume = m->last_event_id[0] != '\0';
    if (resume && (mcp_event_id_parse(m->last_event_id, &stream, &after) != 0 ||
                   stream > s->streams || after > mcp_evlog_last(s->events))) {
        hub_answer_error(m->t, 400, NULL, JSONRPC_INVALID_REQUEST,
                         "Bad Request: Last-Event-ID names no event of this session");
        goto done;
    }
    if (stream != 0) {
        resume_answer(c, s, m->t, stream, after);
        goto done;
    }
    if (s->get && mcp_ticket_open(s->get)) {
        hub_answer_error(m->t, 409, NULL, JSONRPC_INVALID_REQUEST,
                         "Conflict: this session already has a GET stream open");
        goto done;
    }
    if (s->get)
        mcp_ticket_unref(s->get);
    s->get = m->t;
    mcp_ticket_ref(s->get);
    mcp_ticket_set_replay(s->get, s->events, 0);
    open_stream(s->get);
    s->had_get = 1;
    /* what it missed: replayed from the log when it says where it was (all
     * of it, or lists it should fetch again when the log lost some) */
    if (resume && mcp_ticket_replay(s->get, s->events, 0, after) == 0)
        s->missed |= (1u << L_COUNT) - 1;
    unsigned missed = s->missed;
    s->missed = 0;
    for (int k = 0; k < L_COUNT; k++)
        if (missed & (1u << k) && !(k == L_TEMPLATES && missed & (1u << L_RESOURCES)))
            hub_list_changed(s, k);
done:
    mcp_msg_free(m);
}

void mcp_core_handle(struct mcp_core *c, struct mcp_msg *m)
{
    if (m->method == MCP_POST)
        handle_post(c, m);
    else
        handle_get_delete(c, m);
}

/* ---- timers, reload, lifecycle ------------------------------------------------ */

void mcp_core_sweep(struct mcp_core *c, uint64_t now)
{
    uint32_t idle = c->cfg->mcp.session_idle_ms;
    for (struct session *s = c->sessions, *next; s; s = next) {
        next = s->next;
        int streaming = s->get && mcp_ticket_open(s->get);
        if (!streaming && now > s->last_ms + idle) {
            log_msg(LOG_INFO, NULL, "mcp: session expired after %u s idle", idle / 1000);
            session_free(c, s);
        } else if (streaming) {
            s->last_ms = now > s->last_ms ? s->last_ms : now; /* an open stream is not idle */
        }
    }
    for (size_t b = 0; b < PEND_BUCKETS; b++) {
        struct pending *p = c->pend[b];
        while (p) {
            struct pending *next = p->next;
            if (now >= p->deadline_ms) {
                if (p->kind == P_CLIENT) {
                    char msg[300];
                    snprintf(msg, sizeof msg, "MCP server '%s' did not answer within %u s",
                             p->up->conf->name, p->up->conf->timeout_ms / 1000);
                    hub_send(p->up,
                             json_pack("{s:s, s:s, s:{s:I, s:s}}", "jsonrpc", "2.0", "method",
                                       "notifications/cancelled", "params", "requestId",
                                       (json_int_t)p->id, "reason", "timeout"),
                             0, 0);
                    hub_pending_fail(c, p, msg);
                } else if (p->kind == P_INIT) {
                    struct up *u = p->up;
                    hub_pending_free(c, p);
                    u->state = UP_FAILED;
                    snprintf(u->why, sizeof u->why, "no answer to initialize");
                } else {
                    int first = p->kind == P_LIST && !p->notify;
                    struct up *u = p->up;
                    hub_pending_free(c, p);
                    if (first && u->listing > 0) {
                        u->listing--;
                        hub_settle_listing(u);
                    }
                }
            } else if (p->kind == P_CLIENT && p->t && !mcp_ticket_open(p->t) && p->sse &&
                       p->t->evlog && (p->gone_ms == 0 || now < p->gone_ms + RESUME_GRACE_MS)) {
                /* its streamed answer lost the client: resumable for a while */
                if (p->gone_ms == 0)
                    p->gone_ms = now;
            } else if (p->kind == P_CLIENT && p->t && !mcp_ticket_open(p->t)) {
                /* the client went away: tell the upstream, forget the call */
                hub_send(p->up,
                         json_pack("{s:s, s:s, s:{s:I, s:s}}", "jsonrpc", "2.0", "method",
                                   "notifications/cancelled", "params", "requestId",
                                   (json_int_t)p->id, "reason", "client disconnected"),
                         0, 0);
                hub_pending_free(c, p);
            }
            p = next;
        }
    }
    hub_unpark(c);
}

static void on_sweep(uv_timer_t *t)
{
    struct mcp_core *c = t->data;
    mcp_core_sweep(c, hub_now(c));
}

struct mcp_core *mcp_core_new(uv_loop_t *loop, struct config *cfg,
                              const struct mcp_transport_ops *ops)
{
    struct mcp_core *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->cfg = config_ref(cfg);
    c->ops = ops;
    c->page_size = MCP_PAGE_SIZE;
    uv_timer_init(loop, &c->sweep);
    c->sweep.data = c;
    uv_timer_start(&c->sweep, on_sweep, 1000, 1000);
    hub_open_all(c);
    return c;
}

static int same_strings(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return 0;
    return 1;
}

static int same_server(const struct config_mcp_server *a, const struct config_mcp_server *b)
{
    if (strcmp(a->name, b->name) != 0 || (a->url == NULL) != (b->url == NULL) ||
        (a->url && strcmp(a->url, b->url) != 0) || (a->cwd == NULL) != (b->cwd == NULL) ||
        (a->cwd && strcmp(a->cwd, b->cwd) != 0) || a->timeout_ms != b->timeout_ms ||
        !same_strings(a->argv, a->argc, b->argv, b->argc) ||
        !same_strings(a->env, a->nenv, b->env, b->nenv) || a->nheaders != b->nheaders ||
        a->restart_min_ms != b->restart_min_ms || a->restart_max_ms != b->restart_max_ms ||
        a->stop_grace_ms != b->stop_grace_ms)
        return 0;
    for (size_t i = 0; i < a->nheaders; i++)
        if (strcmp(a->headers[i].name, b->headers[i].name) != 0 ||
            strcmp(a->headers[i].value, b->headers[i].value) != 0)
            return 0;
    return 1;
}

/* A reload keeps every server whose settings did not change connected (its
 * sessions, caches and calls in flight go on); a changed one is reconnected
 * in its place. Only when servers were added, removed or reordered is every
 * one reconnected. */
void mcp_core_reload(struct mcp_core *c, struct config *cfg)
{
    const struct config_mcp *a = &c->cfg->mcp, *b = &cfg->mcp;
    int same_list = a->nservers == b->nservers && c->nups == b->nservers;
    for (size_t i = 0; same_list && i < a->nservers; i++)
        same_list = strcmp(a->servers[i].name, b->servers[i].name) == 0;
    struct config *old = c->cfg;
    if (same_list) {
        int changed = 0;
        c->cfg = config_ref(cfg);
        for (size_t i = 0; i < c->nups; i++) {
            struct up *u = &c->ups[i];
            if (same_server(u->conf, &b->servers[i])) {
                u->conf = &b->servers[i];
                continue;
            }
            log_msg(LOG_INFO, NULL, "mcp: server %s changed, reconnecting it", b->servers[i].name);
            hub_reopen(c, u, &b->servers[i]);
            changed = 1;
        }
        c->tools_gen++; /* labels or trust may have changed */
        if (changed) {
            for (struct session *s = c->sessions; s; s = s->next)
                hub_list_changed(s, L_TOOLS);
        }
    } else {
        log_msg(LOG_INFO, NULL, "mcp: servers changed, reconnecting");
        hub_close_all(c);
        c->cfg = config_ref(cfg);
        hub_open_all(c);
        for (struct parked *k = c->parked; k; k = k->next)
            k->up = -1; /* indexes of the old list */
        for (struct session *s = c->sessions; s; s = s->next)
            hub_list_changed(s, L_TOOLS);
    }
    if (c->ents_cfg == old) {
        policy_entities_free(c->ents);
        c->ents = NULL;
        c->ents_cfg = NULL;
    }
    config_unref(old);
}

void mcp_core_drain(struct mcp_core *c)
{
    c->draining = 1;
    for (struct session *s = c->sessions; s; s = s->next)
        if (s->get) {
            mcp_ticket_finish(s->get);
            mcp_ticket_unref(s->get);
            s->get = NULL;
        }
}

static void on_sweep_closed(uv_handle_t *h)
{
    struct mcp_core *c = h->data;
    free(c);
}

void mcp_core_close(struct mcp_core *c)
{
    while (c->parked) {
        struct parked *k = c->parked;
        c->parked = k->next;
        hub_answer_error(k->m->t, 503, NULL, JSONRPC_INTERNAL_ERROR,
                         "the gateway is shutting down");
        mcp_msg_free(k->m);
        free(k);
    }
    hub_close_all(c);
    while (c->sessions)
        session_free(c, c->sessions);
    for (size_t b = 0; b < PEND_BUCKETS; b++)
        while (c->pend[b])
            hub_pending_free(c, c->pend[b]);
    policy_entities_free(c->ents);
    config_unref(c->cfg);
    uv_timer_stop(&c->sweep);
    uv_close((uv_handle_t *)&c->sweep, on_sweep_closed);
}
