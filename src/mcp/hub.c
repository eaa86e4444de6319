// SPDX-License-Identifier: Apache-2.0
// The hub thread: its own libuv loop running the hub core (core.c). Workers
// queue requests under a lock and wake it with an async handle; reloads and
// drains arrive the same way. Answers go back through tickets.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"
#include "mcp/internal.h"
#include "mcp/mcp.h"

const struct mcp_transport_ops mcp_transport_real = {
    .open = mcp_upstream_open,
    .send = mcp_upstream_send,
    .initialized = mcp_upstream_initialized,
    .close = mcp_upstream_close,
};

struct mcp_hub {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;
    uv_mutex_t lock;
    /* under lock */
    struct mcp_msg *head, *tail;
    struct config *reload;
    int drain, stop;
    /* hub thread only */
    struct mcp_core *core;
};

static void on_wake(uv_async_t *a)
{
    struct mcp_hub *h = a->data;
    uv_mutex_lock(&h->lock);
    struct mcp_msg *list = h->head;
    h->head = h->tail = NULL;
    struct config *reload = h->reload;
    h->reload = NULL;
    int drain = h->drain, stop = h->stop;
    h->drain = 0;
    uv_mutex_unlock(&h->lock);

    if (reload) {
        mcp_core_reload(h->core, reload);
        config_unref(reload);
    }
    while (list) {
        struct mcp_msg *m = list;
        list = m->next;
        m->next = NULL;
        if (stop) {
            mcp_ticket_respond(m->t, 503, NULL, 0);
            mcp_msg_free(m);
        } else {
            mcp_core_handle(h->core, m);
        }
    }
    if (drain)
        mcp_core_drain(h->core);
    if (stop && h->core) {
        mcp_core_close(h->core);
        h->core = NULL;
        uv_close((uv_handle_t *)&h->wake, NULL);
    }
}

static void hub_thread(void *arg)
{
    struct mcp_hub *h = arg;
    uv_run(&h->loop, UV_RUN_DEFAULT);
}

struct mcp_hub *mcp_hub_new(struct config *cfg, struct identity *id, char *err, size_t errlen)
{
    struct mcp_hub *h = calloc(1, sizeof *h);
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (uv_loop_init(&h->loop) != 0 || uv_mutex_init(&h->lock) != 0) {
        snprintf(err, errlen, "cannot create the hub loop");
        free(h);
        return NULL;
    }
    uv_async_init(&h->loop, &h->wake, on_wake);
    h->wake.data = h;
    h->core = mcp_core_new(&h->loop, cfg, &mcp_transport_real);
    if (h->core)
        mcp_core_set_identity(h->core, id);
    if (h->core == NULL || uv_thread_create(&h->thread, hub_thread, h) != 0) {
        snprintf(err, errlen, "cannot start the hub");
        if (h->core)
            mcp_core_close(h->core);
        uv_close((uv_handle_t *)&h->wake, NULL);
        uv_run(&h->loop, UV_RUN_DEFAULT);
        uv_loop_close(&h->loop);
        uv_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    log_msg(LOG_INFO, NULL, "mcp: endpoint %s federating %zu server(s)", cfg->mcp.path,
            cfg->mcp.nservers);
    return h;
}

void mcp_hub_submit(struct mcp_hub *h, struct mcp_msg *m)
{
    uv_mutex_lock(&h->lock);
    if (h->tail)
        h->tail->next = m;
    else
        h->head = m;
    h->tail = m;
    uv_mutex_unlock(&h->lock);
    uv_async_send(&h->wake);
}

void mcp_hub_reload(struct mcp_hub *h, struct config *cfg)
{
    if (h == NULL)
        return;
    uv_mutex_lock(&h->lock);
    if (h->reload)
        config_unref(h->reload);
    h->reload = config_ref(cfg);
    uv_mutex_unlock(&h->lock);
    uv_async_send(&h->wake);
}

void mcp_hub_drain(struct mcp_hub *h)
{
    if (h == NULL)
        return;
    uv_mutex_lock(&h->lock);
    h->drain = 1;
    uv_mutex_unlock(&h->lock);
    uv_async_send(&h->wake);
}

void mcp_hub_free(struct mcp_hub *h)
{
    if (h == NULL)
        return;
    uv_mutex_lock(&h->lock);
    h->stop = 1;
    uv_mutex_unlock(&h->lock);
    uv_async_send(&h->wake);
    uv_thread_join(&h->thread);
    if (h->reload)
        config_unref(h->reload);
    uv_loop_close(&h->loop);
    uv_mutex_destroy(&h->lock);
    free(h);
}
