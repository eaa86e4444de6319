// SPDX-License-Identifier: Apache-2.0
// Outbound HTTP for one worker: libcurl multi driven by the worker's libuv
// loop. Connections are pooled per worker; bodies stream through callbacks
// so answers can be forwarded as they arrive.
#ifndef PORTCULLIS_UPSTREAM_UPSTREAM_H
#define PORTCULLIS_UPSTREAM_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct upstream;
struct upstream_req;

/* Outcome of a transfer, passed to on_done. */
enum upstream_result {
    UPSTREAM_OK = 0,
    UPSTREAM_ECONNECT = -1,     /* could not connect / resolve */
    UPSTREAM_ETIMEDOUT = -2,    /* connect or total timeout */
    UPSTREAM_EIO = -3,          /* connection broke mid-answer, bad response */
    UPSTREAM_ECANCELED = -4,    /* a callback asked to stop */
};

struct upstream_callbacks {
    /* Once, when the final status and headers are in (before any body byte).
     * content_type may be NULL. Return 0 to go on, non-zero to abort the
     * transfer (on_done then reports UPSTREAM_ECANCELED). */
    int (*on_headers)(void *ud, long status, const char *content_type);
    /* Body bytes as they arrive. Return 0 to go on, 1 to pause (call
     * upstream_resume later), -1 to abort. */
    int (*on_data)(void *ud, const char *data, size_t len);
    /* Exactly once unless upstream_cancel was called first. errmsg is a short
     * static description, safe to show (never contains credentials). */
    void (*on_done)(void *ud, enum upstream_result result, const char *errmsg);
    /* Optional (NULL costs nothing): each header of the final answer, in
     * order, before on_headers. Neither string is NUL-terminated; the value
     * comes without surrounding blanks. Return 0 to go on, non-zero to abort
     * the transfer (on_done then reports UPSTREAM_ECANCELED). */
    int (*on_header)(void *ud, const char *name, size_t name_len, const char *value,
                     size_t value_len);
};

struct upstream_header {
    const char *name;
    const char *value;
};

struct upstream_opts {
    const char *method;         /* "POST", "GET" */
    const char *url;
    const struct upstream_header *headers;
    size_t nheaders;
    const char *body;           /* must stay valid until on_done / cancel */
    size_t body_len;
    uint32_t timeout_ms;        /* whole transfer; 0 = none */
    uint32_t connect_timeout_ms;
};

/* Per worker. NULL on failure. Free with upstream_free after the loop has
 * no transfers left (it closes its handles; run the loop to finish). */
struct upstream *upstream_new(uv_loop_t *loop);
void upstream_free(struct upstream *u);

/* Starts a transfer. Returns NULL (and calls nothing) if it could not start. */
struct upstream_req *upstream_start(struct upstream *u, const struct upstream_opts *o,
                                    const struct upstream_callbacks *cb, void *ud);
/* Stops a transfer; no callback runs for it afterwards. */
void upstream_cancel(struct upstream_req *r);
/* Resumes a transfer paused by on_data returning 1. */
void upstream_resume(struct upstream_req *r);

/* Process-wide libcurl init/cleanup (main thread, once). */
int upstream_global_init(void);
void upstream_global_cleanup(void);

#endif
