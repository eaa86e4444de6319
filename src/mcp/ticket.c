// SPDX-License-Identifier: Apache-2.0
// The reply channel from the hub thread to the worker that owns an exchange:
// the hub appends under a lock and wakes the worker's loop; the worker writes
// what it finds to the exchange (endpoint.c). Only the hub side is here.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "mcp/internal.h"

/* Queued output past this is dropped with the stream (a client that does not
 * read its GET stream must not grow the hub without bound). */
#define TICKET_MAX_OUT (64u << 20)

struct mcp_ticket *mcp_ticket_new(void)
{
    struct mcp_ticket *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    if (uv_mutex_init(&t->lock) != 0) {
        free(t);
        return NULL;
    }
    atomic_init(&t->refs, 1);
    buf_init(&t->out, TICKET_MAX_OUT);
    buf_init(&t->batch_out, TICKET_MAX_OUT);
    return t;
}

void mcp_ticket_ref(struct mcp_ticket *t)
{
    atomic_fetch_add(&t->refs, 1);
}

void mcp_ticket_unref(struct mcp_ticket *t)
{
    if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    if (t->batch)
        mcp_ticket_unref(t->batch);
    mcp_evlog_unref(t->evlog);
    uv_mutex_destroy(&t->lock);
    buf_free(&t->out);
    buf_free(&t->batch_out);
    free(t->action);
    free(t->resource);
    free(t->decision);
    free(t->reason);
    free(t->policy_ids);
    free(t->guard);
    free(t->method);
    free(t);
}

int mcp_ticket_open(struct mcp_ticket *t)
{
    uv_mutex_lock(&t->lock);
    int open = !t->closed && !t->end;
    uv_mutex_unlock(&t->lock);
    return open && (t->batch == NULL || mcp_ticket_open(t->batch));
}

/* ---- batch elements ------------------------------------------------------ */

/* Marks element t answered; 1 when it was not already. */
static int element_end(struct mcp_ticket *t, int status)
{
    uv_mutex_lock(&t->lock);
    int was = !t->end;
    if (was) {
        if (t->status == 0)
            t->status = status;
        t->end = 1;
    }
    uv_mutex_unlock(&t->lock);
    return was;
}

static int streaming(struct mcp_ticket *t)
{
    uv_mutex_lock(&t->lock);
    int s = t->stream;
    uv_mutex_unlock(&t->lock);
    return s;
}

/* The batch's answer, once every element has one. */
static void batch_done(struct mcp_ticket *b)
{
    if (b->batch_left == 0 || --b->batch_left > 0)
        return;
    if (b->batch_out.len == 0) {
        if (streaming(b))
            mcp_ticket_finish(b);
        else
            mcp_ticket_respond(b, 202, NULL, 0);
        return;
    }
    if (buf_append_lit(&b->batch_out, "]") != 0) {
        mcp_ticket_respond(b, 500, NULL, 0);
    } else if (streaming(b)) {
        mcp_ticket_event(b, b->batch_out.data, b->batch_out.len);
        mcp_ticket_finish(b);
    } else {
        mcp_ticket_respond(b, 200, b->batch_out.data, b->batch_out.len);
    }
    buf_free(&b->batch_out);
}

void mcp_ticket_batch_add(struct mcp_ticket *b, const char *json, size_t len)
{
    if (buf_append(&b->batch_out, b->batch_out.len ? "," : "[", 1) != 0 ||
        buf_append(&b->batch_out, json, len) != 0)
        mcp_ticket_respond(b, 500, NULL, 0); /* past TICKET_MAX_OUT */
}

struct mcp_ticket *mcp_ticket_batch_element(struct mcp_ticket *b)
{
    struct mcp_ticket *t = mcp_ticket_new();
    if (t == NULL)
        return NULL;
    mcp_ticket_ref(b);
    t->batch = b;
    if (b->batch_left == 0)
        b->batch_left = 1; /* held until mcp_ticket_batch_end */
    b->batch_left++;
    return t;
}

void mcp_ticket_batch_end(struct mcp_ticket *b)
{
    if (b->batch_left == 0)
        b->batch_left = 1;
    batch_done(b);
}

/* Whether json is a JSON-RPC response (the answer to an element), rather
 * than a notification or request streamed before it. */
static int is_response(const char *json, size_t len)
{
    json_t *j = json_loadb(json, len, 0, NULL);
    int r = json_is_object(j) && json_object_get(j, "method") == NULL &&
            json_object_get(j, "id") != NULL;
    json_decref(j);
    return r;
}

static int element_respond(struct mcp_ticket *t, int status, const char *body, size_t len)
{
    if (!element_end(t, status))
        return -1;
    if (body != NULL && len > 0) {
        mcp_ticket_batch_add(t->batch, body, len);
    } else if (status >= 500) {
        static const char err[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32603,"
                                  "\"message\":\"Internal error\"}}";
        mcp_ticket_batch_add(t->batch, err, sizeof err - 1);
    }
    batch_done(t->batch);
    return 0;
}

static int element_event(struct mcp_ticket *t, const char *json, size_t len)
{
    if (!mcp_ticket_open(t))
        return -1;
    uv_mutex_lock(&t->lock);
    t->status = 200;
    t->stream = 1;
    uv_mutex_unlock(&t->lock);
    if (!is_response(json, len))
        return mcp_ticket_event(t->batch, json, len);
    mcp_ticket_batch_add(t->batch, json, len);
    return 0;
}

static void element_finish(struct mcp_ticket *t)
{
    if (element_end(t, 200))
        batch_done(t->batch);
}

/* Wakes the worker; called with the lock held, so the worker cannot close
 * the handle in between. */
static void wake(struct mcp_ticket *t)
{
    if (t->has_async && !t->closed)
        uv_async_send(&t->async);
}

int mcp_ticket_respond(struct mcp_ticket *t, int status, const char *body, size_t len)
{
    if (t->batch)
        return element_respond(t, status, body, len);
    int rc = -1;
    uv_mutex_lock(&t->lock);
    if (!t->closed && !t->end && t->status == 0) {
        t->status = status;
        if (t->prefer_sse && status == 200 && body != NULL && len > 0) {
            t->stream = 1;
            if (buf_append_lit(&t->out, "event: message\ndata: ") != 0 ||
                buf_append(&t->out, body, len) != 0 || buf_append_lit(&t->out, "\n\n") != 0)
                t->status = 500, t->stream = 0;
        } else if (body != NULL && len > 0 && buf_append(&t->out, body, len) != 0)
            t->status = 500;
        t->end = 1;
        wake(t);
        rc = 0;
    }
    uv_mutex_unlock(&t->lock);
    return rc;
}

/* One SSE event onto t; id 0 for none. */
static int put_event(struct mcp_ticket *t, uint32_t stream, uint64_t id, const char *json,
                     size_t len)
{
    int rc = -1;
    uv_mutex_lock(&t->lock);
    if (!t->closed && !t->end && (t->status == 0 || t->stream)) {
        t->status = 200;
        t->stream = 1;
        if ((id == 0 || buf_appendf(&t->out, "id: %u-%llu\n", (unsigned)stream,
                                    (unsigned long long)id) == 0) &&
            buf_append_lit(&t->out, "event: message\ndata: ") == 0 &&
            buf_append(&t->out, json, len) == 0 && buf_append_lit(&t->out, "\n\n") == 0) {
            rc = 0;
        } else {
            t->end = 1; /* the client is not reading: give up on the stream */
        }
        wake(t);
    }
    uv_mutex_unlock(&t->lock);
    return rc;
}

int mcp_ticket_event(struct mcp_ticket *t, const char *json, size_t len)
{
    if (t->batch)
        return element_event(t, json, len);
    /* kept for a resumption even when this connection is gone */
    uint64_t id = t->evlog ? mcp_evlog_add(t->evlog, t->ev_stream, json, len) : 0;
    return put_event(t, t->ev_stream, id, json, len);
}

void mcp_ticket_set_replay(struct mcp_ticket *t, struct mcp_evlog *log, uint32_t stream)
{
    if (t->batch != NULL || log == NULL)
        return;
    mcp_evlog_ref(log);
    mcp_evlog_unref(t->evlog);
    t->evlog = log;
    t->ev_stream = stream;
}

struct replay_to {
    struct mcp_ticket *t;
    uint32_t stream;
};

static int emit_replayed(void *ctx, uint64_t seq, const char *json, size_t len)
{
    struct replay_to *r = ctx;
    return put_event(r->t, r->stream, seq, json, len);
}

int mcp_ticket_replay(struct mcp_ticket *t, const struct mcp_evlog *log, uint32_t stream,
                      uint64_t after)
{
    struct replay_to r = {t, stream};
    return mcp_evlog_replay(log, stream, after, emit_replayed, &r);
}

void mcp_ticket_finish(struct mcp_ticket *t)
{
    if (t->batch) {
        element_finish(t);
        return;
    }
    uv_mutex_lock(&t->lock);
    if (!t->closed && !t->end) {
        if (t->status == 0) {
            t->status = 200;
            t->stream = 1;
        }
        t->end = 1;
        wake(t);
    }
    uv_mutex_unlock(&t->lock);
}

void mcp_ticket_set_session(struct mcp_ticket *t, const char *id)
{
    uv_mutex_lock(&t->lock);
    snprintf(t->session_id, sizeof t->session_id, "%s", id);
    uv_mutex_unlock(&t->lock);
}

static void set(char **dst, const char *s)
{
    free(*dst);
    *dst = s ? strdup(s) : NULL;
}

void mcp_ticket_set_audit(struct mcp_ticket *t, const char *action, const char *resource,
                          const char *decision, const char *reason, const char *policy_ids)
{
    if (t->batch) {
        mcp_ticket_set_audit(t->batch, action, resource, decision, reason, policy_ids);
        return;
    }
    uv_mutex_lock(&t->lock);
    set(&t->action, action);
    set(&t->resource, resource);
    set(&t->decision, decision);
    set(&t->reason, reason);
    set(&t->policy_ids, policy_ids);
    uv_mutex_unlock(&t->lock);
}

void mcp_ticket_set_decision(struct mcp_ticket *t, const char *decision, const char *reason)
{
    if (t->batch) {
        mcp_ticket_set_decision(t->batch, decision, reason);
        return;
    }
    uv_mutex_lock(&t->lock);
    set(&t->decision, decision);
    set(&t->reason, reason);
    uv_mutex_unlock(&t->lock);
}

void mcp_ticket_set_method(struct mcp_ticket *t, const char *method)
{
    uv_mutex_lock(&t->lock);
    set(&t->method, method);
    uv_mutex_unlock(&t->lock);
}

void mcp_ticket_set_guard(struct mcp_ticket *t, const char *findings_json)
{
    if (t->batch) {
        mcp_ticket_set_guard(t->batch, findings_json);
        return;
    }
    uv_mutex_lock(&t->lock);
    set(&t->guard, findings_json);
    uv_mutex_unlock(&t->lock);
}

void mcp_msg_free(struct mcp_msg *m)
{
    if (m == NULL)
        return;
    if (m->t)
        mcp_ticket_unref(m->t);
    free(m->body);
    free(m->agent);
    for (size_t i = 0; i < m->chain_len; i++)
        free(m->chain[i]);
    free(m->chain);
    free(m->owner);
    free(m->auth);
    free(m->scope);
    free(m->credential_id);
    free(m->parent_request_id);
    free(m->root_request_id);
    free(m->root_key_id);
    free(m->taint_private);
    free(m->taint_untrusted);
    if (m->cfg)
        config_unref(m->cfg);
    free(m);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct mcp_msg *mcp_msg_copy(const struct mcp_msg *m, char *body, size_t len, struct mcp_ticket *t)
{
    struct mcp_msg *c = malloc(sizeof *c);
    if (c == NULL) {
        free(body);
        return NULL;
    }
    *c = *m; /* fixed-size fields: headers, request id, trace context, budget */
    c->next = NULL;
    c->t = t;
    mcp_ticket_ref(t);
    c->cfg = config_ref(m->cfg);
    c->body = body;
    c->len = len;
    c->agent = dup_or_null(m->agent);
    c->owner = dup_or_null(m->owner);
    c->chain = m->chain_len ? calloc(m->chain_len, sizeof *c->chain) : NULL;
    c->chain_len = 0;
    for (size_t i = 0; c->chain && i < m->chain_len; i++, c->chain_len++)
        c->chain[i] = dup_or_null(m->chain[i]);
    c->auth = dup_or_null(m->auth);
    c->scope = dup_or_null(m->scope);
    c->credential_id = dup_or_null(m->credential_id);
    c->parent_request_id = dup_or_null(m->parent_request_id);
    c->root_request_id = dup_or_null(m->root_request_id);
    c->root_key_id = dup_or_null(m->root_key_id);
    if ((m->agent && !c->agent) || (m->owner && !c->owner) || c->chain_len != m->chain_len ||
        (m->auth && !c->auth) || (m->scope && !c->scope) ||
        (m->credential_id && !c->credential_id) ||
        (m->parent_request_id && !c->parent_request_id) ||
        (m->root_request_id && !c->root_request_id) || (m->root_key_id && !c->root_key_id)) {
        mcp_msg_free(c);
        return NULL;
    }
    return c;
}
