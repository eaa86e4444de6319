// SPDX-License-Identifier: Apache-2.0
// JSON-lines logging to stderr. Each line is written with one write(2) so
// lines from different workers never interleave. Secrets never go here.
#ifndef PORTCULLIS_CORE_LOG_H
#define PORTCULLIS_CORE_LOG_H

#include <stddef.h>

#include "core/buf.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Process-wide level; set at start and on reload. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* -1 when the name is not a level. */
int log_level_parse(const char *name);

static inline int log_enabled(enum log_level level)
{
    return level >= log_get_level();
}

/* {"ts":…,"level":…,"request_id":…,"msg":…} — request_id may be NULL. */
void log_msg(enum log_level level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Starts a line in `b` with ts, level and msg; the caller appends
 * `,"key":value` pairs with the helpers below and calls log_line_end. */
int log_line_begin(buf_t *b, enum log_level level, const char *msg);
void log_line_str(buf_t *b, const char *key, const char *val, size_t len);
void log_line_int(buf_t *b, const char *key, long long v);
void log_line_double(buf_t *b, const char *key, double v);
/* Closes the object, writes the line and resets b. */
void log_line_end(buf_t *b);

#endif
