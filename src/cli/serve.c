// SPDX-License-Identifier: Apache-2.0
// The runtime of `portcullis serve`: N workers (one libuv loop and thread
// each, SO_REUSEPORT listeners), the route table in front of the protocol
// stages, config reload on SIGHUP and graceful drain on SIGTERM.
#include "cli/serve.h"
#include "cli/watch.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "core/worker.h"
#include "http/server.h"
#include "http/tls.h"
#include "a2a/a2a.h"
#include "admin/admin.h"
#include "audit/audit.h"
#include "breaker/breaker.h"
#include "budget/budget.h"
#include "core/clock.h"
#include "identity/identity.h"
#include "llm/llm.h"
#include "mcp/mcp.h"
#include "telemetry/metrics.h"
#include "upstream/upstream.h"

struct runtime {
    uv_loop_t *loop;                /* main thread's loop: signals, reload */
    const char *config_path;
    struct config *cfg;             /* newest snapshot (main thread's ref) */
    struct metrics *metrics;
    struct tls_ctx *tls;            /* main listener's certificate, or NULL */
    struct identity *identity;      /* keys, JWKS, signing keys (shared by workers) */
    struct audit *audit;            /* audit writer; NULL when audit.enabled is false */
    struct admin *admin;            /* admin listener; NULL when no admin: */
    struct mcp_hub *_Atomic mcp;    /* MCP hub thread; NULL without an mcp: section (workers
                                     * read it while a reload may create it) */
    struct a2a *a2a;                /* A2A proxy: agent card cache */
    struct budget_store *budget;    /* settled spend in the state file, alerts */
    struct budget_redis_mirror *budget_mirror; /* state.redis: spend from Redis for /metrics */
    struct worker *workers;
    unsigned nworkers;
    atomic_uint exited;             /* workers whose loops have ended */
    uv_async_t worker_exit;
    uv_signal_t sigterm, sigint, sighup;
    struct config_watch *watch;     /* reload when the config or a policy file changes */
    uv_timer_t deadline;
    int draining;
    int exit_code;
};

/* ---- routes -------------------------------------------------------------- */

static void metrics_endpoint(struct http_exchange *ex)
{
    ex->route = "metrics";
    buf_t b;
    buf_init(&b, 64 << 20);
    struct runtime *rt = ex->worker->runtime;
    int rc = metrics_render(ex->worker->metrics, &b);
    if (rc == 0)
        rc = breaker_set_render_metrics(ex->cfg->breakers, clock_mono_ns() / 1000000u, &b);
    if (rc == 0 && rt->audit)
        rc = buf_appendf(&b,
                         "# HELP portcullis_audit_records_total Audit records by outcome "
                         "(dropped: the store refused them).\n"
                         "# TYPE portcullis_audit_records_total counter\n"
                         "portcullis_audit_records_total{outcome=\"written\"} %llu\n"
                         "portcullis_audit_records_total{outcome=\"dropped\"} %llu\n"
                         "# HELP portcullis_audit_overflow_total Audit records that found the "
                         "queue full (requests in flight while workers held) and waited in the "
                         "overflow list; none is lost.\n"
                         "# TYPE portcullis_audit_overflow_total counter\n"
                         "portcullis_audit_overflow_total %llu\n",
                         (unsigned long long)audit_written(rt->audit),
                         (unsigned long long)audit_dropped(rt->audit),
                         (unsigned long long)audit_overflowed(rt->audit));
    if (rc == 0)
        rc = budget_store_metrics(rt->budget, &b);
    if (rc == 0)
        http_respond(ex, 200, METRICS_CONTENT_TYPE, b.data ? b.data : "", b.len);
    else
        llm_error(ex, 500, "server_error", NULL, NULL, "could not render metrics");
    buf_free(&b);
}

static int path_is(const struct http_request *r, const char *p)
{
    size_t n = strlen(p);
    return r->path_len == n && memcmp(r->path, p, n) == 0;
}

/* Protocol routes: each runs behind the identity stage. */
static const struct {
    const char *path;
    void (*handler)(struct http_exchange *ex);
} protocol_routes[] = {
    {"/v1/chat/completions", llm_chat_completions},
    {"/chat/completions", llm_chat_completions},
    {"/v1/embeddings", llm_embeddings},
    {"/embeddings", llm_embeddings},
    {"/v1/messages", llm_messages},
    {"/v1/models", llm_models},
    {"/models", llm_models},
};

/* Hands the finished exchange to the audit writer; past the queue's
 * high-water mark the worker holds new requests until it drains. */
static void audit_on_finish(struct http_exchange *ex)
{
    struct runtime *rt = ex->worker->runtime;
    audit_exchange(rt->audit, ex);
    if (audit_should_hold(rt->audit))
        http_server_hold(ex->worker, audit_still_held, rt->audit);
}

/* The pipeline in front of the protocol handlers (DESIGN.md): route, then
 * identity, then the protocol. /metrics, /healthz, the token endpoint (it
 * authenticates its own subject_token) and the JWKS are open. */
static void route(struct http_exchange *ex)
{
    const struct http_request *r = ex->req;
    struct runtime *rt = ex->worker->runtime;
    /* Every request but the health and metrics probes gets an audit record. */
    if (rt->audit && !path_is(r, "/metrics") && !path_is(r, "/healthz"))
        ex->on_finish = audit_on_finish;
    if (mcp_route_match(ex)) {
        mcp_endpoint(rt->mcp, rt->identity, ex);
        return;
    }
    if (a2a_route_match(ex)) {
        a2a_endpoint(rt->a2a, rt->identity, ex);
        return;
    }
    for (size_t i = 0; i < sizeof protocol_routes / sizeof protocol_routes[0]; i++) {
        if (path_is(r, protocol_routes[i].path)) {
            if (identity_authenticate(rt->identity, ex) == 0)
                protocol_routes[i].handler(ex);
            return;
        }
    }
    if (r->path_len > 11 && memcmp(r->path, "/v1/models/", 11) == 0) {
        if (identity_authenticate(rt->identity, ex) == 0)
            llm_model_retrieve(ex, r->path + 11);
        return;
    }
    if (path_is(r, "/metrics"))
        metrics_endpoint(ex);
    else if (path_is(r, "/healthz")) {
        ex->route = "health";
        http_respond(ex, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
    } else if (path_is(r, "/oauth/token"))
        identity_token_endpoint(rt->identity, ex);
    else if (path_is(r, "/.well-known/jwks.json"))
        identity_jwks_endpoint(rt->identity, ex);
    else {
        ex->route = "other";
        llm_error(ex, 404, "invalid_request_error", "unknown_route", NULL,
                  "no route for %s %.200s", r->method, r->path);
    }
}

/* ---- workers ------------------------------------------------------------- */

static void worker_closed_handle(uv_handle_t *h)
{
    (void)h;
}

static void worker_on_idle(struct worker *w)
{
    /* every connection is gone: release the loop's remaining handles */
    upstream_free(w->upstream);
    w->upstream = NULL;
    budget_redis_free(w->budget_redis);
    w->budget_redis = NULL;
    uv_close((uv_handle_t *)&w->async, worker_closed_handle);
}

static void worker_on_async(uv_async_t *a)
{
    struct worker *w = a->data;
    int cmd = atomic_exchange(&w->cmd, 0);
    if (cmd & WORKER_CMD_RELOAD) {
        struct config *next = atomic_exchange(&w->pending_cfg, NULL);
        if (next) {
            struct config *old = w->cfg;
            w->cfg = next;
            config_unref(old);
        }
    }
    if (cmd & (WORKER_CMD_DRAIN | WORKER_CMD_FORCE)) {
        if (w->http && !(cmd & WORKER_CMD_FORCE))
            http_server_drain(w, worker_on_idle);
        else if (w->http) {
            http_server_drain(w, worker_on_idle);
            if (w->http && http_server_connections(w))
                http_server_close_all(w);
        }
    }
}

static void worker_thread(void *arg)
{
    struct worker *w = arg;
    struct runtime *rt = w->runtime;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    atomic_fetch_add(&rt->exited, 1);
    uv_async_send(&rt->worker_exit);
}

static int worker_setup(struct runtime *rt, struct worker *w, unsigned id)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->runtime = rt;
    w->metrics = rt->metrics;
    w->cfg = config_ref(rt->cfg);
    w->rng = ((uint64_t)time(NULL) << 20) ^ ((uint64_t)getpid() << 8) ^ (id + 1) ^
             (uint64_t)(uintptr_t)w;
    if (!w->rng)
        w->rng = 0x9E3779B97F4A7C15ULL;
    buf_init(&w->logbuf, 1 << 20);
    int rc = uv_loop_init(&w->loop);
    if (rc < 0)
        return rc;
    uv_async_init(&w->loop, &w->async, worker_on_async);
    w->async.data = w;
    w->upstream = upstream_new(&w->loop);
    if (!w->upstream)
        return UV_ENOMEM;
    if (rt->cfg->state_redis) {
        char err[160];
        if (!(w->budget_redis = budget_redis_new(&w->loop, rt->cfg->state_redis, err, sizeof err))) {
            log_msg(LOG_ERROR, NULL, "budgets: %s", err);
            return UV_EINVAL;
        }
        budget_redis_on_alert(w->budget_redis, budget_store_alert, rt->budget);
    }
    return http_server_start(w, rt->tls, route, rt->cfg->listen.host, rt->cfg->listen.port);
}

/* ---- main thread: signals, reload, drain ------------------------------- */

static void send_all(struct runtime *rt, int cmd)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        atomic_fetch_or(&rt->workers[i].cmd, cmd);
        uv_async_send(&rt->workers[i].async);
    }
}

static void reload(struct runtime *rt)
{
    struct config_errors errs = {0};
    struct config *next = config_load(rt->config_path, &errs);
    if (!next) {
        for (size_t i = 0; i < errs.count; i++)
            if (errs.items[i].col > 0)
                log_msg(LOG_ERROR, NULL,
                        "reload rejected, keeping the running config: %s:%u:%u: %s",
                        errs.items[i].file, errs.items[i].line, errs.items[i].col,
                        errs.items[i].message);
            else
                log_msg(LOG_ERROR, NULL, "reload rejected, keeping the running config: %s:%u: %s",
                        errs.items[i].file, errs.items[i].line, errs.items[i].message);
        config_errors_free(&errs);
        return;
    }
    if (strcmp(next->listen.host, rt->cfg->listen.host) != 0 ||
        next->listen.port != rt->cfg->listen.port || next->workers != rt->cfg->workers)
        log_msg(LOG_WARN, NULL, "listen and workers changes take effect on restart only");
    int lvl = log_level_parse(next->log_level);
    if (lvl >= 0)
        log_set_level((enum log_level)lvl);
    /* spend carries over: calls still running under the old snapshot settle
     * on the counters the new one reads */
    if (budget_store_attach(rt->budget, next->budget, next->budget_opts.webhook) < 0)
        log_msg(LOG_WARN, NULL, "budgets: out of memory carrying spend over; counters restart");
    breaker_set_adopt(next->breakers, rt->cfg->breakers); /* breaker and bucket state too */
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct config *old = atomic_exchange(&rt->workers[i].pending_cfg, config_ref(next));
        if (old)
            config_unref(old);
    }
    if (rt->mcp)
        mcp_hub_reload(rt->mcp, next);
    else if (next->mcp.present) {
        char err[256];
        struct mcp_hub *hub = mcp_hub_new(next, rt->identity, err, sizeof err);
        if (hub == NULL)
            log_msg(LOG_ERROR, NULL, "mcp: %s", err);
        else
            atomic_store(&rt->mcp, hub);
    }
    config_unref(rt->cfg);
    rt->cfg = next;
    send_all(rt, WORKER_CMD_RELOAD);
    if (rt->watch)
        config_watch_set(rt->watch, rt->config_path, next);
    admin_reload(rt->admin, next);
    log_msg(LOG_INFO, NULL, "config reloaded from %s (%zu models, %zu providers)",
            rt->config_path, next->nmodels, next->nproviders);
}

static void on_deadline(uv_timer_t *t)
{
    struct runtime *rt = t->data;
    log_msg(LOG_WARN, NULL, "drain deadline passed: closing the remaining connections");
    send_all(rt, WORKER_CMD_FORCE);
}

static void start_drain(struct runtime *rt, const char *why)
{
    if (rt->draining) {
        log_msg(LOG_WARN, NULL, "%s again: closing the remaining connections now", why);
        send_all(rt, WORKER_CMD_FORCE);
        return;
    }
    rt->draining = 1;
    config_watch_close(rt->watch);
    rt->watch = NULL;
    log_msg(LOG_INFO, NULL, "%s: draining in-flight requests (deadline %u ms)", why,
            rt->cfg->limits.drain_timeout_ms);
    send_all(rt, WORKER_CMD_DRAIN);
    mcp_hub_drain(rt->mcp); /* GET streams end, so connections can close */
    uv_timer_start(&rt->deadline, on_deadline, rt->cfg->limits.drain_timeout_ms, 0);
}

static void on_files_changed(void *ud)
{
    struct runtime *rt = ud;
    if (rt->draining)
        return;
    log_msg(LOG_INFO, NULL, "config or policy file changed: reloading");
    reload(rt);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct runtime *rt = s->data;
    if (signum == SIGHUP)
        reload(rt);
    else
        start_drain(rt, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_worker_exit(uv_async_t *a)
{
    struct runtime *rt = a->data;
    /* async sends coalesce: count, don't assume one wake-up per worker */
    if (atomic_load(&rt->exited) < rt->nworkers)
        return;
    uv_close((uv_handle_t *)&rt->worker_exit, NULL);
    uv_close((uv_handle_t *)&rt->sigterm, NULL);
    uv_close((uv_handle_t *)&rt->sigint, NULL);
    uv_close((uv_handle_t *)&rt->sighup, NULL);
    uv_close((uv_handle_t *)&rt->deadline, NULL);
    config_watch_close(rt->watch);
    rt->watch = NULL;
}

static unsigned cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

int serve_main(const char *config_path)
{
    struct runtime rt = {0};
    struct config_errors errs = {0};
    rt.config_path = config_path;
    rt.cfg = config_load(config_path, &errs);
    if (!rt.cfg) {
        config_errors_print(&errs, stderr);
        config_errors_free(&errs);
        return 2;
    }
    int lvl = log_level_parse(rt.cfg->log_level);
    log_set_level(lvl >= 0 ? (enum log_level)lvl : LOG_INFO);
    signal(SIGPIPE, SIG_IGN);
    if (upstream_global_init() != 0) {
        log_msg(LOG_ERROR, NULL, "libcurl failed to initialise");
        return 1;
    }
    rt.nworkers = rt.cfg->workers ? rt.cfg->workers : cpu_count();
    rt.metrics = metrics_new(rt.nworkers + 1); /* the last shard is the admin listener's */
    rt.workers = calloc(rt.nworkers, sizeof(*rt.workers));
    if (!rt.metrics || !rt.workers) {
        log_msg(LOG_ERROR, NULL, "out of memory");
        return 1;
    }
    if (rt.cfg->tls.cert_file) {
        char err[256];
        rt.tls = tls_ctx_new(rt.cfg->tls.cert_file, rt.cfg->tls.key_file, err, sizeof(err));
        if (!rt.tls) {
            log_msg(LOG_ERROR, NULL, "TLS: %s", err);
            return 1;
        }
    }
    {
        char err[512];
        rt.identity = identity_new(rt.cfg, err, sizeof(err));
        if (!rt.identity) {
            log_msg(LOG_ERROR, NULL, "identity: %s", err);
            return 1;
        }
        if (rt.cfg->audit.enabled && !(rt.audit = audit_new(rt.cfg, err, sizeof(err)))) {
            log_msg(LOG_ERROR, NULL, "audit: %s", err);
            return 1;
        }
        if (rt.cfg->mcp.present) {
            struct mcp_hub *hub = mcp_hub_new(rt.cfg, rt.identity, err, sizeof(err));
            if (hub == NULL) {
                log_msg(LOG_ERROR, NULL, "mcp: %s", err);
                return 1;
            }
            atomic_store(&rt.mcp, hub);
        }
        if (!(rt.a2a = a2a_new())) {
            log_msg(LOG_ERROR, NULL, "a2a: out of memory");
            return 1;
        }
        if (!(rt.budget = budget_store_open(rt.cfg->state_path, err, sizeof(err))) ||
            budget_store_attach(rt.budget, rt.cfg->budget, rt.cfg->budget_opts.webhook) < 0) {
            log_msg(LOG_ERROR, NULL, "budgets: %s", rt.budget ? "out of memory" : err);
            return 1;
        }
        if (rt.cfg->state_redis && !(rt.budget_mirror = budget_redis_mirror_start(
                                         rt.cfg->state_redis, rt.budget, 1000, err, sizeof err))) {
            log_msg(LOG_ERROR, NULL, "budgets: %s", err);
            return 1;
        }
        if (!rt.cfg->identity.required)
            log_msg(LOG_WARN, NULL, "identity.required is false: requests without a portcullis "
                                    "credential run as anonymous");
    }
    rt.loop = uv_default_loop();
    int rc = 0;
    unsigned started = 0;
    for (; started < rt.nworkers; started++) {
        rc = worker_setup(&rt, &rt.workers[started], started);
        if (rc < 0)
            break;
    }
    if (rc < 0) {
        log_msg(LOG_ERROR, NULL, "cannot listen on %s:%u: %s", rt.cfg->listen.host,
                rt.cfg->listen.port, uv_strerror(rc));
        return 1;
    }
    if (rt.cfg->has_admin) {
        char err[256];
        if (!(rt.admin = admin_start(rt.cfg, rt.metrics, rt.nworkers, err, sizeof err))) {
            log_msg(LOG_ERROR, NULL, "admin: %s", err);
            return 1;
        }
        if (!rt.cfg->admin_token)
            log_msg(LOG_WARN, NULL, "admin: %s is not set; the admin listener answers 401",
                    rt.cfg->admin_token_env);
    }
    uv_async_init(rt.loop, &rt.worker_exit, on_worker_exit);
    rt.worker_exit.data = &rt;
    uv_signal_init(rt.loop, &rt.sigterm);
    uv_signal_init(rt.loop, &rt.sigint);
    uv_signal_init(rt.loop, &rt.sighup);
    rt.sigterm.data = rt.sigint.data = rt.sighup.data = &rt;
    uv_signal_start(&rt.sigterm, on_signal, SIGTERM);
    uv_signal_start(&rt.sigint, on_signal, SIGINT);
    uv_signal_start(&rt.sighup, on_signal, SIGHUP);
    uv_timer_init(rt.loop, &rt.deadline);
    rt.deadline.data = &rt;
    if ((rt.watch = config_watch_new(rt.loop, 1000, 200, on_files_changed, &rt)))
        config_watch_set(rt.watch, config_path, rt.cfg);
    for (unsigned i = 0; i < rt.nworkers; i++)
        uv_thread_create(&rt.workers[i].thread, worker_thread, &rt.workers[i]);
    log_msg(LOG_INFO, NULL, "portcullis listening on %s://%s:%u with %u workers (config %s)",
            rt.tls ? "https" : "http", rt.cfg->listen.host, rt.cfg->listen.port, rt.nworkers,
            config_path);

    uv_run(rt.loop, UV_RUN_DEFAULT);

    for (unsigned i = 0; i < rt.nworkers; i++) {
        struct worker *w = &rt.workers[i];
        uv_thread_join(&w->thread);
        http_server_free(w);
        uv_loop_close(&w->loop);
        struct config *p = atomic_exchange(&w->pending_cfg, NULL);
        if (p)
            config_unref(p);
        config_unref(w->cfg);
        buf_free(&w->logbuf);
    }
    admin_stop(rt.admin);
    mcp_hub_free(rt.mcp); /* after the workers: no exchange is left to answer */
    a2a_free(rt.a2a);
    log_msg(LOG_INFO, NULL, "drained; exiting");
    free(rt.workers);
    metrics_free(rt.metrics);
    if (rt.tls)
        tls_ctx_free(rt.tls);
    audit_free(rt.audit); /* drains the queue */
    budget_redis_mirror_stop(rt.budget_mirror);
    budget_store_close(rt.budget); /* writes the settlements still queued */
    identity_free(rt.identity);
    config_unref(rt.cfg);
    uv_loop_close(rt.loop);
    upstream_global_cleanup();
    return rt.exit_code;
}
