// SPDX-License-Identifier: Apache-2.0
// Reload on file change: watches the directories holding the config file and
// its policy files (editors replace files by rename, so watching the file
// itself would go blind after the first save) and calls back, debounced, when
// one of those files or any *.cedar file there changes. SIGHUP still works;
// this only saves the operator the signal.
#ifndef PORTCULLIS_CLI_WATCH_H
#define PORTCULLIS_CLI_WATCH_H

#include <uv.h>

struct config;
struct config_watch;

/* on_change runs on `loop` at most once per debounce_ms burst of events. */
struct config_watch *config_watch_new(uv_loop_t *loop, unsigned debounce_ms,
                                      void (*on_change)(void *ud), void *ud);
/* Watches what snapshot `cfg` (loaded from config_path) reads; call again
 * after each reload so new policy files and directories are covered. */
void config_watch_set(struct config_watch *w, const char *config_path,
                      const struct config *cfg);
/* Stops watching; the memory goes once the loop has closed the handles. */
void config_watch_close(struct config_watch *w);

#endif
