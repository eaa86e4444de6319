// SPDX-License-Identifier: Apache-2.0
// Audit records from finished exchanges: built on the worker (one malloc per
// record), queued in a bounded ring, written by one thread in batches to the
// state store and an optional JSONL file (a transaction waits up to 2 ms to
// gather records at low rates). Nothing is dropped: a queue past its
// high-water mark holds the worker's new requests (backpressure, see
// audit_should_hold); records that still find the queue full (requests
// already in flight) go to an overflow list, so no worker ever waits.
#include "audit/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/str.h"
#include "http/server.h"
#include "identity/identity.h"
#include "state/state.h"
#include "telemetry/trace.h"

/* The writer waits up to AUDIT_COALESCE_MS for AUDIT_COALESCE_MIN records
 * before a transaction (audit_flush and shutdown wait at most that long). */
#define AUDIT_COALESCE_MIN 64
#define AUDIT_COALESCE_MS 2

struct record {
    struct record *next;        /* in the overflow list */
    struct state_audit_row row; /* strings point into data */
    char data[];
};

struct audit {
    struct state *st;
    int jsonl_fd; /* -1 when off */
    pthread_mutex_t mu;
    pthread_cond_t wake, idle;
    struct record **ring;
    size_t cap, head, count;
    /* past cap: FIFO behind the ring, moved in as the writer frees slots */
    struct record *over_head, *over_tail;
    size_t over_n;
    atomic_size_t queued; /* count + over_n, readable without the mutex */
    size_t high, low;     /* backpressure marks */
    struct state_audit_row *rows; /* the writer's batch, AUDIT_BATCH_MAX each */
    struct record **batch;
    int stop;
    int busy; /* the writer holds a batch */
    pthread_t thread;
    int started;
    atomic_uint_fast64_t dropped, written, overflowed;
};

/* ---- building a record ----------------------------------------------------- */

struct field {
    const char *src;
    size_t len;
    const char **dst;
};

static const char *protocol_of(const char *route)
{
    static const char *const llm[] = {"chat", "embeddings", "messages", "models"};
    if (route == NULL)
        return "gateway";
    for (size_t i = 0; i < sizeof llm / sizeof llm[0]; i++)
        if (strcmp(route, llm[i]) == 0)
            return "llm";
    if (strcmp(route, "oauth_token") == 0 || strcmp(route, "jwks") == 0)
        return "oauth";
    if (strncmp(route, "mcp", 3) == 0)
        return "mcp";
    if (strncmp(route, "a2a", 3) == 0)
        return "a2a";
    return "gateway";
}

static double cost_of(const struct http_exchange *ex)
{
    if (ex->cost_usd > 0 || ex->model == NULL || ex->cfg == NULL)
        return ex->cost_usd;
    const struct config_model *m = config_find_model(ex->cfg, ex->model);
    if (m == NULL || !m->has_price)
        return 0;
    return ((double)ex->tokens_in * m->price.input_per_mtok +
            (double)ex->tokens_out * m->price.output_per_mtok) /
           1e6;
}

static struct record *record_of(const struct http_exchange *ex)
{
    const struct identity_principal *p = ex->principal;
    int status = ex->aborted ? 499 : ex->status;
    char trace[33], resource[300], chain_buf[2048];
    buf_t chain;
    buf_init(&chain, sizeof chain_buf * 4);
    int rc = 0;
    if (p != NULL) {
        rc |= buf_append_lit(&chain, "[");
        for (size_t i = 0; i < p->chain_len; i++) {
            if (i > 0)
                rc |= buf_append_lit(&chain, ",");
            rc |= buf_append_json_string(&chain, p->chain[i], strlen(p->chain[i]));
        }
        rc |= buf_append_lit(&chain, "]");
    }
    const char *res = ex->resource;
    if (res == NULL && ex->model != NULL) {
        str_concat(resource, 6 + 250 + 1, "model:", ex->model); /* the model cut at 250 bytes */
        res = resource;
    }
    const char *decision = ex->decision;
    if (decision == NULL)
        decision = ex->aborted                                       ? "error"
                   : status < 400                                    ? "allow"
                   : status == 401 || status == 403 || status == 429 ? "deny"
                                                                     : "error";
    const char *reason = ex->decision_reason ? ex->decision_reason
                         : ex->aborted       ? "client went away"
                                             : ex->error_type;
    const struct http_request *r = ex->req;
    trace_id_of_exchange(ex, trace);
    const char *root = p && p->root_request_id ? p->root_request_id : ex->request_id;
    const char *parent = p ? p->parent_request_id : NULL;
    /* Not delegated: made on behalf of an earlier request if its
     * traceparent carries a span this gateway sent upstream. */
    char tp_parent[64], tp_root[64];
    if (parent == NULL && trace_parent_of_exchange(ex, tp_parent, tp_root)) {
        parent = tp_parent;
        root = tp_root;
    }
    char permit[300];
    if (reason == NULL && ex->policy_ids != NULL && strcmp(decision, "allow") == 0) {
        str_concat(permit, sizeof permit, "permit: ", ex->policy_ids);
        reason = permit;
    }
    struct record tmp = {0};
    struct field f[] = {
        {ex->request_id, 0, &tmp.row.request_id},
        {parent, 0, &tmp.row.parent_request_id},
        {root, 0, &tmp.row.root_request_id},
        {trace, 0, &tmp.row.trace_id},
        {protocol_of(ex->route), 0, &tmp.row.protocol},
        {r ? r->method : NULL, 0, &tmp.row.method},
        {r ? r->path : NULL, 0, &tmp.row.path},
        {p ? p->agent : NULL, 0, &tmp.row.agent},
        {p ? p->auth : "none", 0, &tmp.row.auth},
        {rc == 0 && chain.len ? chain.data : NULL, 0, &tmp.row.chain},
        {ex->action ? ex->action : ex->route, 0, &tmp.row.action},
        {res, 0, &tmp.row.resource},
        {decision, 0, &tmp.row.decision},
        {reason, 0, &tmp.row.reason},
        {ex->guard ? ex->guard : "[]", 0, &tmp.row.guard},
    };
    size_t nf = sizeof f / sizeof f[0], total = 0;
    for (size_t i = 0; i < nf; i++) {
        if (f[i].src != NULL) {
            /* strlen, then the cap: strnlen(…, 4096) on a char[33] source
             * trips -Wstringop-overread at -O3 */
            size_t n = strlen(f[i].src);
            f[i].len = n < 4096 ? n : 4096;
            total += f[i].len + 1;
        }
    }
    struct record *rec = malloc(sizeof *rec + total);
    if (rec != NULL) {
        *rec = tmp;
        char *o = rec->data;
        for (size_t i = 0; i < nf; i++) {
            /* dst points into tmp: rebase it onto rec. */
            const char **dst =
                (const char **)((char *)&rec->row + ((char *)f[i].dst - (char *)&tmp.row));
            if (f[i].src == NULL) {
                *dst = NULL;
                continue;
            }
            memcpy(o, f[i].src, f[i].len);
            o[f[i].len] = '\0';
            *dst = o;
            o += f[i].len + 1;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rec->row.ts_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        rec->row.status = status;
        rec->row.latency_ms = (double)(clock_mono_ns() - ex->start_ns) / 1e6;
        rec->row.tokens_in = (int64_t)ex->tokens_in;
        rec->row.tokens_out = (int64_t)ex->tokens_out;
        rec->row.cost_usd = cost_of(ex);
        rec->row.cache_hit = ex->cache_hit;
    }
    buf_free(&chain);
    return rec;
}

void audit_exchange(struct audit *a, const struct http_exchange *ex)
{
    if (a == NULL)
        return;
    struct record *rec = record_of(ex);
    if (rec == NULL) {
        atomic_fetch_add(&a->dropped, 1);
        return;
    }
    pthread_mutex_lock(&a->mu);
    if (a->stop) { /* shutting down past the final drain */
        pthread_mutex_unlock(&a->mu);
        free(rec);
        atomic_fetch_add(&a->dropped, 1);
        return;
    }
    if (a->count == a->cap || a->over_n > 0) {
        /* Full: the holds at the high-water mark did not stop enough
         * requests already in flight. Neither wait (the event loop) nor
         * drop: keep it behind the ring. Bounded by the requests in flight
         * when the workers began to hold. */
        rec->next = NULL;
        if (a->over_tail)
            a->over_tail->next = rec;
        else
            a->over_head = rec;
        a->over_tail = rec;
        a->over_n++;
        atomic_fetch_add(&a->overflowed, 1);
    } else {
        a->ring[(a->head + a->count) % a->cap] = rec;
        a->count++;
    }
    atomic_store_explicit(&a->queued, a->count + a->over_n, memory_order_relaxed);
    if (a->count == 1 || a->count == AUDIT_COALESCE_MIN)
        pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

int audit_should_hold(const struct audit *a)
{
    return a != NULL && atomic_load_explicit(&a->queued, memory_order_relaxed) >= a->high;
}

int audit_still_held(void *arg)
{
    struct audit *a = arg;
    return atomic_load_explicit(&a->queued, memory_order_relaxed) > a->low;
}

/* ---- the writer ------------------------------------------------------------ */

static void kv(buf_t *b, const char *k, const char *v, int raw)
{
    int rc = buf_appendf(b, ",\"%s\":", k);
    if (v == NULL)
        rc |= buf_append_lit(b, "null");
    else if (raw)
        rc |= buf_append(b, v, strlen(v));
    else
        rc |= buf_append_json_string(b, v, strlen(v));
    (void)rc; /* a line cut short by the cap is caught by the final check */
}

static int jsonl_line(buf_t *b, const struct state_audit_row *r)
{
    size_t start = b->len;
    int rc = buf_appendf(b, "{\"ts_ms\":%lld", (long long)r->ts_ms);
    kv(b, "request_id", r->request_id, 0);
    kv(b, "parent_request_id", r->parent_request_id, 0);
    kv(b, "root_request_id", r->root_request_id, 0);
    kv(b, "trace_id", r->trace_id, 0);
    kv(b, "protocol", r->protocol, 0);
    kv(b, "method", r->method, 0);
    kv(b, "path", r->path, 0);
    kv(b, "agent", r->agent, 0);
    kv(b, "auth", r->auth, 0);
    kv(b, "chain", r->chain, 1);
    kv(b, "action", r->action, 0);
    kv(b, "resource", r->resource, 0);
    kv(b, "decision", r->decision, 0);
    kv(b, "reason", r->reason, 0);
    rc |= buf_appendf(b,
                      ",\"status\":%d,\"latency_ms\":%.3f,\"tokens_in\":%lld,\"tokens_out\":%lld,"
                      "\"cost_usd\":%.8f,\"cache_hit\":%s",
                      r->status, r->latency_ms, (long long)r->tokens_in, (long long)r->tokens_out,
                      r->cost_usd, r->cache_hit ? "true" : "false");
    kv(b, "guard", r->guard, 1);
    rc |= buf_append_lit(b, "}\n");
    if (rc != 0 || b->len == start || b->data[b->len - 1] != '\n') {
        b->len = start; /* drop a half line rather than corrupt the file */
        return -1;
    }
    return 0;
}

static void write_batch(struct audit *a, struct record **batch, size_t n)
{
    struct state_audit_row *rows = a->rows;
    for (size_t i = 0; i < n; i++)
        rows[i] = batch[i]->row;
    int tries = 0;
    while (state_audit_append(a->st, rows, n) < 0) {
        /* SQLITE_BUSY past the timeout, a full disk: keep the batch, retry a
         * few times, then report and drop it (never block workers). */
        if (++tries == 3) {
            log_msg(LOG_ERROR, NULL, "audit: dropping %zu records: %s", n, state_errmsg(a->st));
            atomic_fetch_add(&a->dropped, n);
            break;
        }
        usleep(100000);
    }
    if (tries < 3)
        atomic_fetch_add(&a->written, n);
    if (a->jsonl_fd >= 0) {
        buf_t b;
        buf_init(&b, 64u << 20);
        for (size_t i = 0; i < n; i++)
            (void)jsonl_line(&b, &rows[i]);
        size_t off = 0;
        while (off < b.len) {
            ssize_t w = write(a->jsonl_fd, b.data + off, b.len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                log_msg(LOG_ERROR, NULL, "audit: writing the JSONL file: %s", strerror(errno));
                break;
            }
            off += (size_t)w;
        }
        buf_free(&b);
    }
    for (size_t i = 0; i < n; i++)
        free(batch[i]);
}

static void *writer(void *arg)
{
    struct audit *a = arg;
    struct record **batch = a->batch;
    uint64_t dropped_seen = 0;
    int64_t last_drop_log = 0;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->count == 0 && !a->stop) {
            a->busy = 0;
            pthread_cond_broadcast(&a->idle);
            pthread_cond_wait(&a->wake, &a->mu);
        }
        if (a->count == 0 && a->stop)
            break;
        /* A few records: give the workers up to AUDIT_COALESCE_MS to add
         * more, so that one transaction (one set of locks and WAL writes)
         * carries them. Under load the queue is past this already. */
        if (a->count < AUDIT_COALESCE_MIN && !a->stop) {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_nsec += AUDIT_COALESCE_MS * 1000000L;
            if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
            }
            while (a->count < AUDIT_COALESCE_MIN && !a->stop)
                if (pthread_cond_timedwait(&a->wake, &a->mu, &dl) == ETIMEDOUT)
                    break;
        }
        size_t n = 0;
        while (a->count > 0 && n < AUDIT_BATCH_MAX) {
            batch[n++] = a->ring[a->head];
            a->head = (a->head + 1) % a->cap;
            a->count--;
        }
        /* the slots just freed take the overflow, oldest first */
        while (a->over_n > 0 && a->count < a->cap) {
            struct record *r = a->over_head;
            a->over_head = r->next;
            if (a->over_head == NULL)
                a->over_tail = NULL;
            a->over_n--;
            a->ring[(a->head + a->count) % a->cap] = r;
            a->count++;
        }
        atomic_store_explicit(&a->queued, a->count + a->over_n, memory_order_relaxed);
        a->busy = 1;
        pthread_mutex_unlock(&a->mu);
        write_batch(a, batch, n);
        /* drops are a lost audit trail: say so, at most once a second */
        uint64_t dropped = atomic_load(&a->dropped);
        int64_t now = (int64_t)(clock_mono_ns() / 1000000000u);
        if (dropped != dropped_seen && now != last_drop_log) {
            log_msg(LOG_ERROR, NULL,
                    "audit: %llu records dropped so far (the store refused them: see the "
                    "errors above)",
                    (unsigned long long)dropped);
            dropped_seen = dropped;
            last_drop_log = now;
        }
        pthread_mutex_lock(&a->mu);
    }
    a->busy = 0;
    pthread_cond_broadcast(&a->idle);
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

struct audit *audit_new(const struct config *cfg, char *err, size_t errlen)
{
    struct audit *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->jsonl_fd = -1;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->wake, NULL);
    pthread_cond_init(&a->idle, NULL);
    a->cap = cfg->audit.buffer ? cfg->audit.buffer : 4096;
    a->high = a->cap - a->cap / 4; /* hold new requests at 3/4 full */
    a->low = a->cap / 4;           /* resume at 1/4 */
    a->ring = calloc(a->cap, sizeof *a->ring);
    a->rows = calloc(AUDIT_BATCH_MAX, sizeof *a->rows);
    a->batch = calloc(AUDIT_BATCH_MAX, sizeof *a->batch);
    if (a->ring == NULL || a->rows == NULL || a->batch == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    a->st = state_open(cfg->state_path, err, errlen);
    if (a->st == NULL)
        goto fail;
    if (cfg->audit.jsonl_path != NULL) {
        a->jsonl_fd = open(cfg->audit.jsonl_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (a->jsonl_fd < 0) {
            snprintf(err, errlen, "audit.jsonl %.200s: %s", cfg->audit.jsonl_path, strerror(errno));
            goto fail;
        }
    }
    if (pthread_create(&a->thread, NULL, writer, a) != 0) {
        snprintf(err, errlen, "cannot start the audit writer thread");
        goto fail;
    }
    a->started = 1;
    return a;
fail:
    audit_free(a);
    return NULL;
}

void audit_flush(struct audit *a)
{
    pthread_mutex_lock(&a->mu);
    while (a->count > 0 || a->busy)
        pthread_cond_wait(&a->idle, &a->mu);
    pthread_mutex_unlock(&a->mu);
}

void audit_free(struct audit *a)
{
    if (a == NULL)
        return;
    if (a->started) {
        pthread_mutex_lock(&a->mu);
        a->stop = 1;
        pthread_cond_signal(&a->wake);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
    }
    for (size_t i = 0; i < a->count; i++)
        free(a->ring[(a->head + i) % a->cap]);
    while (a->over_head != NULL) {
        struct record *r = a->over_head;
        a->over_head = r->next;
        free(r);
    }
    free(a->ring);
    free(a->rows);
    free(a->batch);
    state_close(a->st);
    if (a->jsonl_fd >= 0)
        close(a->jsonl_fd);
    pthread_cond_destroy(&a->wake);
    pthread_cond_destroy(&a->idle);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

uint64_t audit_dropped(const struct audit *a)
{
    return atomic_load(&((struct audit *)a)->dropped);
}

uint64_t audit_written(const struct audit *a)
{
    return atomic_load(&((struct audit *)a)->written);
}

uint64_t audit_overflowed(const struct audit *a)
{
    return atomic_load(&((struct audit *)a)->overflowed);
}
