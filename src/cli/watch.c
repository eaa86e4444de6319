// SPDX-License-Identifier: Apache-2.0
#include "cli/watch.h"

#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"

#define WATCH_MAX_DIRS 64
#define WATCH_MAX_NAMES 256

struct watch_dir {
    uv_fs_event_t ev;
    struct config_watch *owner;
    char path[PATH_MAX];
};

struct config_watch {
    uv_loop_t *loop;
    uv_timer_t debounce;
    unsigned debounce_ms;
    void (*on_change)(void *ud);
    void *ud;
    struct watch_dir *dirs[WATCH_MAX_DIRS];
    size_t ndirs;
    char *names[WATCH_MAX_NAMES]; /* basenames that matter, any watched dir */
    size_t nnames;
    int pending_closes; /* handles still closing; free when 0 and closed */
    int closed;
};

static void maybe_free(struct config_watch *w)
{
    if (w->closed && w->pending_closes == 0)
        free(w);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct config_watch *w;
    if (h->type == UV_TIMER) {
        w = h->data;
    } else {
        struct watch_dir *d = h->data;
        w = d->owner;
        free(d);
    }
    w->pending_closes--;
    maybe_free(w);
}

static void on_debounced(uv_timer_t *t)
{
    struct config_watch *w = t->data;
    if (!w->closed)
        w->on_change(w->ud);
}

static int name_matters(const struct config_watch *w, const char *name)
{
    size_t n = strlen(name);
    if (n > 6 && strcmp(name + n - 6, ".cedar") == 0)
        return 1;
    for (size_t i = 0; i < w->nnames; i++)
        if (strcmp(w->names[i], name) == 0)
            return 1;
    return 0;
}

static void on_fs_event(uv_fs_event_t *ev, const char *filename, int events, int status)
{
    (void)events;
    struct watch_dir *d = ev->data;
    struct config_watch *w = d->owner;
    if (status < 0 || w->closed)
        return;
    /* no filename: the platform could not say which; assume it mattered */
    if (filename && !name_matters(w, filename))
        return;
    uv_timer_start(&w->debounce, on_debounced, w->debounce_ms, 0);
}

struct config_watch *config_watch_new(uv_loop_t *loop, unsigned debounce_ms,
                                      void (*on_change)(void *ud), void *ud)
{
    struct config_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->loop = loop;
    w->debounce_ms = debounce_ms;
    w->on_change = on_change;
    w->ud = ud;
    uv_timer_init(loop, &w->debounce);
    w->debounce.data = w;
    return w;
}

static void drop_all(struct config_watch *w)
{
    for (size_t i = 0; i < w->ndirs; i++) {
        uv_fs_event_stop(&w->dirs[i]->ev);
        w->pending_closes++;
        uv_close((uv_handle_t *)&w->dirs[i]->ev, on_handle_closed);
    }
    w->ndirs = 0;
    for (size_t i = 0; i < w->nnames; i++)
        free(w->names[i]);
    w->nnames = 0;
}

static void add_path(struct config_watch *w, const char *path)
{
    char a[PATH_MAX], b[PATH_MAX];
    if (strlen(path) >= sizeof(a))
        return;
    strcpy(a, path);
    strcpy(b, path);
    const char *dir = dirname(a);
    const char *base = basename(b);
    if (w->nnames < WATCH_MAX_NAMES) {
        char *s = strdup(base);
        if (s)
            w->names[w->nnames++] = s;
    }
    for (size_t i = 0; i < w->ndirs; i++)
        if (strcmp(w->dirs[i]->path, dir) == 0)
            return;
    if (w->ndirs >= WATCH_MAX_DIRS)
        return;
    struct watch_dir *d = calloc(1, sizeof(*d));
    if (!d)
        return;
    d->owner = w;
    snprintf(d->path, sizeof(d->path), "%s", dir);
    uv_fs_event_init(w->loop, &d->ev);
    d->ev.data = d;
    int rc = uv_fs_event_start(&d->ev, on_fs_event, d->path, 0);
    if (rc < 0) {
        log_msg(LOG_WARN, NULL, "config watch: cannot watch %s: %s (SIGHUP still reloads)",
                d->path, uv_strerror(rc));
        w->pending_closes++;
        uv_close((uv_handle_t *)&d->ev, on_handle_closed);
        return;
    }
    w->dirs[w->ndirs++] = d;
}

void config_watch_set(struct config_watch *w, const char *config_path, const struct config *cfg)
{
    if (w->closed)
        return;
    drop_all(w);
    add_path(w, config_path);
    for (size_t i = 0; cfg && i < cfg->policy.nfiles; i++)
        add_path(w, cfg->policy.files[i]);
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
