// SPDX-License-Identifier: Apache-2.0
// JSON-lines logger (see log.h).
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int current_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
    atomic_store_explicit(&current_level, level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
    return atomic_load_explicit(&current_level, memory_order_relaxed);
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

int log_line_begin(buf_t *b, enum log_level level, const char *msg)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec);
    buf_reset(b);
    int rc = buf_appendf(b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
    if (rc)
        return rc;
    return buf_append_json_string(b, msg, strlen(msg));
}

void log_line_str(buf_t *b, const char *key, const char *val, size_t len)
{
    if (!val)
        return;
    size_t before = b->len;
    if (buf_appendf(b, ",\"%s\":", key) == 0 && buf_append_json_string(b, val, len) != 0) {
        /* too long for the line: drop the field, keep the line valid JSON */
        b->len = before;
        b->data[before] = '\0';
    }
}

void log_line_int(buf_t *b, const char *key, long long v)
{
    int rc = buf_appendf(b, ",\"%s\":%lld", key, v);
    (void)rc;
}

void log_line_double(buf_t *b, const char *key, double v)
{
    int rc = buf_appendf(b, ",\"%s\":%.3f", key, v);
    (void)rc;
}

void log_line_end(buf_t *b)
{
    if (buf_append(b, "}\n", 2) == 0) {
        ssize_t off = 0;
        while ((size_t)off < b->len) {
            ssize_t n = write(STDERR_FILENO, b->data + off, b->len - (size_t)off);
            if (n <= 0)
                break;
            off += n;
        }
    }
    buf_reset(b);
}

void log_msg(enum log_level level, const char *request_id, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    buf_t b;
    buf_init(&b, 64 * 1024);
    if (log_line_begin(&b, level, msg) == 0) {
        if (request_id)
            log_line_str(&b, "request_id", request_id, strlen(request_id));
        log_line_end(&b);
    }
    buf_free(&b);
}
