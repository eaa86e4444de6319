// SPDX-License-Identifier: Apache-2.0
#include "cli/watch.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"

#define WATCH_MAX_PATHS 256

struct watch_path {
    uv_fs_poll_t poll;
    struct config_watch *owner;
    char path[PATH_MAX];
};

struct config_watch {
    uv_loop_t *loop;
    uv_timer_t debounce;
    unsigned interval_ms, debounce_ms;
    void (*on_change)(void *ud);
    void *ud;
    struct watch_path *paths[WATCH_MAX_PATHS];
    size_t npaths;
    int pending_closes; /* handles still closing; the struct goes when 0 and closed */
    int closed;
};

static void on_handle_closed(uv_handle_t *h)
{
    struct config_watch *w;
    if (h->type == UV_TIMER) {
        w = h->data;
    } else {
        struct watch_path *p = h->data;
        w = p->owner;
        free(p);
    }
    if (--w->pending_closes == 0 && w->closed)
        free(w);
}

static void on_debounced(uv_timer_t *t)
{
    struct config_watch *w = t->data;
    if (!w->closed)
        w->on_change(w->ud);
}

static void on_poll(uv_fs_poll_t *h, int status, const uv_stat_t *prev, const uv_stat_t *curr)
{
    (void)status, (void)prev, (void)curr; /* any change, appearing or vanishing included */
    struct watch_path *p = h->data;
    if (!p->owner->closed)
        uv_timer_start(&p->owner->debounce, on_debounced, p->owner->debounce_ms, 0);
}

struct config_watch *config_watch_new(uv_loop_t *loop, unsigned interval_ms, unsigned debounce_ms,
                                      void (*on_change)(void *ud), void *ud)
{
    struct config_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->loop = loop;
    w->interval_ms = interval_ms;
    w->debounce_ms = debounce_ms;
    w->on_change = on_change;
    w->ud = ud;
    uv_timer_init(loop, &w->debounce);
    w->debounce.data = w;
    return w;
}

static void drop_all(struct config_watch *w)
{
    for (size_t i = 0; i < w->npaths; i++) {
        uv_fs_poll_stop(&w->paths[i]->poll);
        w->pending_closes++;
        uv_close((uv_handle_t *)&w->paths[i]->poll, on_handle_closed);
    }
    w->npaths = 0;
}

static void add_path(struct config_watch *w, const char *path)
{
    for (size_t i = 0; i < w->npaths; i++)
        if (strcmp(w->paths[i]->path, path) == 0)
            return;
    if (w->npaths >= WATCH_MAX_PATHS || strlen(path) >= PATH_MAX)
        return;
    struct watch_path *p = calloc(1, sizeof(*p));
    if (!p)
        return;
    p->owner = w;
    snprintf(p->path, sizeof(p->path), "%s", path);
    uv_fs_poll_init(w->loop, &p->poll);
    p->poll.data = p;
    int rc = uv_fs_poll_start(&p->poll, on_poll, p->path, w->interval_ms);
    if (rc < 0) {
        log_msg(LOG_WARN, NULL, "config watch: cannot watch %s: %s (SIGHUP still reloads)",
                p->path, uv_strerror(rc));
        w->pending_closes++;
        uv_close((uv_handle_t *)&p->poll, on_handle_closed);
        return;
    }
    w->paths[w->npaths++] = p;
}

void config_watch_set(struct config_watch *w, const char *config_path, const struct config *cfg)
{
    if (w->closed)
        return;
    drop_all(w);
    add_path(w, config_path);
    for (size_t i = 0; cfg && i < cfg->policy.nfiles; i++) {
        char dir[PATH_MAX];
        add_path(w, cfg->policy.files[i]);
        /* the directory's mtime moves when a file is added, removed or
         * renamed into place (a glob may match something new) */
        if (strlen(cfg->policy.files[i]) < sizeof dir) {
            strcpy(dir, cfg->policy.files[i]);
            add_path(w, dirname(dir));
        }
    }
}

void config_watch_close(struct config_watch *w)
{
    if (!w || w->closed)
        return;
    drop_all(w);
    w->closed = 1;
    uv_timer_stop(&w->debounce);
    w->pending_closes++;
    uv_close((uv_handle_t *)&w->debounce, on_handle_closed);
}
