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
    uv_mutex_destroy(&t->lock);
    buf_free(&t->out);
    free(t->action);
    free(t->resource);
    free(t->decision);
    free(t->reason);
    free(t->policy_ids);
    free(t->method);
    free(t);
}

int mcp_ticket_open(struct mcp_ticket *t)
{
    uv_mutex_lock(&t->lock);
    int open = !t->closed && !t->end;
    uv_mutex_unlock(&t->lock);
    return open;
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

int mcp_ticket_event(struct mcp_ticket *t, const char *json, size_t len)
{
    int rc = -1;
    uv_mutex_lock(&t->lock);
    if (!t->closed && !t->end && (t->status == 0 || t->stream)) {
        t->status = 200;
        t->stream = 1;
        if (buf_append_lit(&t->out, "event: message\ndata: ") == 0 &&
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

void mcp_ticket_finish(struct mcp_ticket *t)
{
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
    if (m->cfg)
        config_unref(m->cfg);
    free(m);
}
