// SPDX-License-Identifier: Apache-2.0
// One worker = one thread running one libuv loop. Everything a request
// touches on its way through the pipeline hangs off its worker, so the hot
// path needs no locks.
#ifndef PORTCULLIS_CORE_WORKER_H
#define PORTCULLIS_CORE_WORKER_H

#include <stdatomic.h>
#include <uv.h>

#include "core/buf.h"

struct config;
struct metrics;
struct upstream;
struct http_server;
struct budget_redis;

struct worker {
    unsigned id;
    uv_loop_t loop;
    uv_thread_t thread;
    struct config *cfg;          /* current snapshot; the worker owns one ref */
    struct metrics *metrics;     /* process-wide, sharded by id */
    struct upstream *upstream;   /* outbound HTTP for this loop */
    struct http_server *http;    /* listener + connections of this loop */
    buf_t logbuf;                /* scratch line for access logs */
    uv_async_t async;            /* wakes the loop for the commands below */
    atomic_int cmd;              /* WORKER_CMD_* bits, set by the main thread */
    _Atomic(struct config *) pending_cfg; /* next snapshot, handed over on reload */
    void *runtime;               /* the process runtime that owns this worker */
    uint64_t rng;                /* xorshift state for sampling and ids */
    struct budget_redis *budget_redis; /* this loop's Redis connection (src/budget), or NULL */
};

enum {
    WORKER_CMD_RELOAD = 1,       /* take pending_cfg */
    WORKER_CMD_DRAIN = 2,        /* stop accepting, finish in-flight, exit */
    WORKER_CMD_FORCE = 4,        /* close every connection now, exit */
};

/* xorshift64*: fast per-worker randomness for ids, weights and mock
 * failures (not for secrets). */
static inline uint64_t worker_rand(struct worker *w)
{
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

#endif
