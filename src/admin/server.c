// SPDX-License-Identifier: Apache-2.0
// The admin listener's thread: one libuv loop with the HTTP server of
// src/http on the admin address, handing every request to admin_route.
// The main thread reaches it only through an async handle (reload, stop).
#include "admin/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/worker.h"
#include "http/server.h"

enum { ADMIN_CMD_RELOAD = 1, ADMIN_CMD_STOP = 2 };

struct admin {
    struct worker w; /* the loop and server; w.runtime points back here */
    int started;     /* the thread runs */
};

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_idle(struct worker *w)
{
    uv_close((uv_handle_t *)&w->async, on_closed);
}

static void on_async(uv_async_t *h)
{
    struct worker *w = h->data;
    int cmd = atomic_exchange(&w->cmd, 0);
    if (cmd & ADMIN_CMD_RELOAD) {
        struct config *next = atomic_exchange(&w->pending_cfg, NULL);
        if (next != NULL) {
            config_unref(w->cfg);
            w->cfg = next;
        }
    }
    if ((cmd & ADMIN_CMD_STOP) && w->http != NULL) {
        /* admin answers are short: close whatever is still open */
        http_server_drain(w, on_idle);
        if (w->http != NULL && http_server_connections(w) > 0)
            http_server_close_all(w);
    }
}

static void thread_main(void *arg)
{
    struct worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

struct admin *admin_start(struct config *cfg, struct metrics *m, unsigned shard, char *err,
                          size_t errlen)
{
    struct admin *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct worker *w = &a->w;
    w->id = shard;
    w->runtime = a;
    w->metrics = m;
    w->cfg = config_ref(cfg);
    w->rng = ((uint64_t)time(NULL) << 20) ^ ((uint64_t)getpid() << 8) ^ (uint64_t)(uintptr_t)a;
    buf_init(&w->logbuf, 1 << 20);
    int rc = uv_loop_init(&w->loop);
    if (rc < 0) {
        snprintf(err, errlen, "admin loop: %s", uv_strerror(rc));
        buf_free(&w->logbuf);
        config_unref(w->cfg);
        free(a);
        return NULL;
    }
    uv_async_init(&w->loop, &w->async, on_async);
    w->async.data = w;
    rc = http_server_start(w, NULL, admin_route, cfg->admin.host, cfg->admin.port);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", cfg->admin.host, cfg->admin.port,
                 uv_strerror(rc));
        uv_close((uv_handle_t *)&w->async, on_closed);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        admin_stop(a);
        return NULL;
    }
    if ((rc = uv_thread_create(&w->thread, thread_main, w)) < 0) {
        snprintf(err, errlen, "admin thread: %s", uv_strerror(rc));
        http_server_drain(w, on_idle);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        admin_stop(a);
        return NULL;
    }
    a->started = 1;
    return a;
}

void admin_reload(struct admin *a, struct config *next)
{
    if (a == NULL)
        return;
    struct config *old = atomic_exchange(&a->w.pending_cfg, config_ref(next));
    if (old != NULL)
        config_unref(old);
    atomic_fetch_or(&a->w.cmd, ADMIN_CMD_RELOAD);
    uv_async_send(&a->w.async);
}

void admin_stop(struct admin *a)
{
    if (a == NULL)
        return;
    struct worker *w = &a->w;
    if (a->started) {
        atomic_fetch_or(&w->cmd, ADMIN_CMD_STOP);
        uv_async_send(&w->async);
        uv_thread_join(&w->thread);
    }
    if (w->http != NULL)
        http_server_free(w);
    uv_loop_close(&w->loop);
    struct config *p = atomic_exchange(&w->pending_cfg, NULL);
    config_unref(p);
    config_unref(w->cfg);
    buf_free(&w->logbuf);
    free(a);
}
