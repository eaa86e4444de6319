// SPDX-License-Identifier: Apache-2.0
// Reload on file change: polls (stat, once a second) the config file, its
// policy files and the directories holding them, and calls back, debounced,
// when one of them changes — an edit in place, an editor's save-by-rename, a
// new or removed *.cedar file. Polling rather than inotify on purpose: the
// state store and audit log usually live in the config's directory, and a
// directory watch would wake the main loop on every one of their writes.
// SIGHUP still works; this only saves the operator the signal.
#ifndef PORTCULLIS_CLI_WATCH_H
#define PORTCULLIS_CLI_WATCH_H

#include <uv.h>

struct config;
struct config_watch;

/* on_change runs on `loop` once per burst of changes (debounce_ms after the
 * last one seen); interval_ms is the stat period. */
struct config_watch *config_watch_new(uv_loop_t *loop, unsigned interval_ms, unsigned debounce_ms,
                                      void (*on_change)(void *ud), void *ud);
/* Watches what snapshot `cfg` (loaded from config_path) reads; call again
 * after each reload so new policy files and directories are covered. */
void config_watch_set(struct config_watch *w, const char *config_path,
                      const struct config *cfg);
/* Stops watching; the memory goes once the loop has closed the handles. */
void config_watch_close(struct config_watch *w);

#endif
