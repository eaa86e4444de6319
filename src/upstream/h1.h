// SPDX-License-Identifier: Apache-2.0
// Internal to upstream/: the native HTTP/1.1 client that upstream.c picks for
// plain http:// targets (no TLS, no proxy). Same callback contract as
// upstream.h; per-worker keep-alive pool keyed by (host, port).
#ifndef PORTCULLIS_UPSTREAM_H1_H
#define PORTCULLIS_UPSTREAM_H1_H

#include "upstream/upstream.h"

/* Every transfer behind a struct upstream_req * starts with this, so
 * upstream_cancel / upstream_resume can tell which engine owns it. */
enum upstream_engine { UPSTREAM_ENGINE_CURL = 1, UPSTREAM_ENGINE_H1 = 2 };
struct upstream_req_tag {
    enum upstream_engine engine;
};

struct h1;     /* one per worker (per loop) */
struct h1_req; /* one transfer; its first member is a struct upstream_req_tag */
struct origin; /* one (host, port): its idle connections and addresses */

/* A parsed http:// URL, pointing into the URL string (not NUL-terminated). */
struct h1_target {
    const char *host; /* without brackets for IPv6 literals */
    size_t host_len;
    const char *path; /* from the first '/' up to any '#', or "/" */
    size_t path_len;
    uint16_t port;
    int ipv6;              /* the host was written in brackets */
    struct origin *origin; /* h1's pool and address cache for (host, port) */
};

/* Reads the proxy environment once. NULL on out of memory. */
struct h1 *h1_new(uv_loop_t *loop);
/* Closes every pooled and busy connection; the memory goes once the loop
 * has run their close callbacks (and any running name lookup has ended).
 * Transfers still running are dropped without callbacks. */
void h1_free(struct h1 *h);

/* 1 and fills *t when the native client can carry this transfer: an
 * http://host[:port]/path URL without user info, a method other than HEAD,
 * no proxy from the environment applying to the host, and room for the
 * (host, port) pool. 0: use libcurl. */
int h1_accepts(struct h1 *h, const struct upstream_opts *o, struct h1_target *t);

/* Starts a transfer that h1_accepts took (never calls a callback before
 * returning). NULL if it could not start: out of memory, or a header name
 * that is not a token or a value with CR/LF (it would split the head). */
struct h1_req *h1_start(struct h1 *h, const struct h1_target *t, const struct upstream_opts *o,
                        const struct upstream_callbacks *cb, void *ud);
/* Stops a transfer; no callback afterwards. Frees it. Also from inside one
 * of the transfer's own callbacks (on_headers / on_data). */
void h1_cancel(struct h1_req *r);
/* Resumes a transfer that on_data paused (the paused call's bytes were
 * consumed; bytes that came with them are handed over now). */
void h1_resume(struct h1_req *r);

/* For tests: the native client of an upstream (upstream.c), and how many
 * connections sit in its pools. */
struct h1 *upstream_h1(struct upstream *u);
unsigned h1_idle_connections(const struct h1 *h);

#endif
