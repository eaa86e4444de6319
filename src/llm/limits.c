// SPDX-License-Identifier: Apache-2.0
// Guard-in for LLM calls: the caller's agent breakers and rate limits (429
// rate_limit_exceeded with x-ratelimit-* headers, 503 circuit_breaker_open),
// a provider breaker per attempt (skipped targets fall back), and on the way
// out the outcomes, token corrections, log lines and error-rate webhooks.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/worker.h"
#include "http/server.h"
#include "identity/identity.h"
#include "llm/call.h"
#include "llm/limits.h"
#include "llm/llm.h"
#include "upstream/upstream.h"

#define WEBHOOK_TIMEOUT_MS 5000

static uint64_t now_ms(void)
{
    return clock_mono_ns() / 1000000u;
}

static uint64_t secs_up(uint64_t ns)
{
    uint64_t s = (ns + 999999999u) / 1000000000u;
    return s > 0 ? s : 1;
}

/* ---- webhook ---------------------------------------------------------------- */

struct hook {
    char *url;
    char *body;
    char id[128];
};

static int hook_headers(void *ud, long status, const char *ctype)
{
    (void)ctype;
    struct hook *h = ud;
    if (status >= 300)
        log_msg(LOG_WARN, NULL, "breaker alert webhook for '%s' answered %ld", h->id, status);
    return 0;
}

static int hook_data(void *ud, const char *data, size_t len)
{
    (void)ud;
    (void)data;
    (void)len;
    return 0;
}

static void hook_done(void *ud, enum upstream_result res, const char *msg)
{
    struct hook *h = ud;
    if (res != UPSTREAM_OK)
        log_msg(LOG_WARN, NULL, "breaker alert webhook for '%s' failed: %s", h->id,
                msg ? msg : "error");
    free(h->url);
    free(h->body);
    free(h);
}

static const struct upstream_callbacks hook_cb = {
    .on_headers = hook_headers, .on_data = hook_data, .on_done = hook_done};

static void post_webhook(struct worker *w, struct breaker *b, const struct breaker_status *st)
{
    const struct breaker_params *p = breaker_params(b);
    struct hook *h = calloc(1, sizeof *h);
    if (h == NULL)
        return;
    snprintf(h->id, sizeof h->id, "%s", breaker_id(b));
    double rate = st->calls ? (double)st->errors / (double)st->calls : 0;
    h->url = strdup(p->webhook);
    if (h->url == NULL ||
        asprintf(&h->body,
                 "{\"event\":\"breaker_error_rate\",\"breaker\":\"%s\",\"error_rate\":%.4f,"
                 "\"threshold\":%g,\"calls\":%llu,\"errors\":%llu,\"window_ms\":%u,"
                 "\"state\":\"%s\",\"time\":%lld}",
                 breaker_id(b), rate, p->error_rate, (unsigned long long)st->calls,
                 (unsigned long long)st->errors, p->alert_window_ms, breaker_state_name(st->state),
                 (long long)time(NULL)) < 0) {
        free(h->url);
        free(h);
        return;
    }
    static const struct upstream_header hdr[] = {{"Content-Type", "application/json"}};
    struct upstream_opts o = {
        .method = "POST",
        .url = h->url,
        .headers = hdr,
        .nheaders = 1,
        .body = h->body,
        .body_len = strlen(h->body),
        .timeout_ms = WEBHOOK_TIMEOUT_MS,
        .connect_timeout_ms = WEBHOOK_TIMEOUT_MS,
    };
    if (upstream_start(w->upstream, &o, &hook_cb, h) == NULL)
        hook_done(h, UPSTREAM_ECONNECT, "could not start the request");
}

/* Log lines (and the webhook) for what breaker_done reported. */
static void emit(struct http_exchange *ex, struct breaker *b, int ev, uint64_t now)
{
    if (ev == 0)
        return;
    struct breaker_status st;
    breaker_status(b, now, &st);
    const char *id = breaker_id(b);
    const struct breaker_params *p = breaker_params(b);
    buf_t *lb = &ex->worker->logbuf;
    const char *what = ev & BREAKER_EV_OPENED      ? "circuit breaker opened"
                       : ev & BREAKER_EV_CLOSED    ? "circuit breaker closed"
                       : ev & BREAKER_EV_BACKOFF   ? "circuit breaker backing off on latency"
                       : ev & BREAKER_EV_RECOVERED ? "circuit breaker latency recovered"
                                                   : NULL;
    if (what && log_enabled(LOG_WARN) && log_line_begin(lb, LOG_WARN, what) == 0) {
        log_line_str(lb, "request_id", ex->request_id, strlen(ex->request_id));
        log_line_str(lb, "breaker", id, strlen(id));
        log_line_str(lb, "state", breaker_state_name(st.state),
                     strlen(breaker_state_name(st.state)));
        if (ev & BREAKER_EV_OPENED)
            log_line_int(lb, "pause_ms", p->pause_ms);
        log_line_int(lb, "concurrency_limit", st.concurrency_limit);
        log_line_end(lb);
    }
    if (!(ev & BREAKER_EV_ALERT))
        return;
    double rate = st.calls ? (double)st.errors / (double)st.calls : 0;
    if (log_line_begin(lb, LOG_ERROR, "breaker error-rate alert") == 0) {
        log_line_str(lb, "breaker", id, strlen(id));
        log_line_double(lb, "error_rate", rate);
        log_line_double(lb, "threshold", p->error_rate);
        log_line_int(lb, "calls", (long long)st.calls);
        log_line_int(lb, "errors", (long long)st.errors);
        log_line_int(lb, "window_ms", p->alert_window_ms);
        log_line_end(lb);
    }
    if (p->webhook)
        post_webhook(ex->worker, b, &st);
}

/* ---- admission -------------------------------------------------------------- */

/* What the call may use in tokens: a token per 4 body bytes for the prompt
 * plus the completion limit asked for (or what the mock answers when it
 * serves every target). No DOM, no second walk: the limit was read in the
 * body's validating pass (call->max_tokens). */
static uint64_t token_estimate(struct llm_call *call)
{
    uint64_t n = (call->ex->req->body.len + 3) / 4;
    if (call->api == LLM_EMBEDDINGS)
        return n;
    if (call->max_tokens > 0)
        return n + (uint64_t)call->max_tokens;
    uint64_t mock = 0;
    for (int i = 0; i < call->ntargets; i++) {
        const struct config_provider *p = call->model->targets[call->order[i]].provider;
        if (p->kind != PROVIDER_MOCK)
            return n; /* unknown: usage corrects it afterwards */
        if (p->mock.tokens > mock)
            mock = p->mock.tokens;
    }
    return n + mock;
}

/* v in decimal into out (at least 21 bytes); no printf on the hot path. */
static const char *u64_dec(uint64_t v, char *out)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return out;
}

static void add_views(struct http_exchange *ex, int tokens, const struct rl_view *v)
{
    static const char *const names[2][3] = {
        {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
         "x-ratelimit-reset-requests"},
        {"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"},
    };
    char num[24], reset[32];
    http_add_header(ex, names[tokens][0], u64_dec(v->limit, num));
    http_add_header(ex, names[tokens][1], u64_dec(v->remaining, num));
    breaker_format_duration(v->reset_ns, reset, sizeof reset);
    http_add_header(ex, names[tokens][2], reset);
}

/* Frees what the call holds outside the arena before a refusal answers. */
static void drop(struct llm_call *call)
{
    if (call->has_reservation) {
        call->has_reservation = 0;
        budget_settle(&call->reservation, 0, time(NULL));
    }
    if (call->body)
        json_decref(call->body);
    call->body = NULL;
    buf_free(&call->resp);
    buf_free(&call->out);
}

static void abandon_agents(struct llm_limits *l, uint64_t now)
{
    for (size_t i = 0; i < l->nagent; i++)
        (void)breaker_done(&l->agent[i], BREAKER_ABANDON, 0, now);
    l->nagent = 0;
}

/* The rate limits' verdict (rc 0 taken, 1 refused): headers on the answer;
 * a refusal answers 429 and frees the call. 0 or -1 as llm_limits_admit. */
static int rl_answer(struct llm_call *call, int rc)
{
    struct http_exchange *ex = call->ex;
    struct llm_limits *l = &call->lim;
    const struct rl_refusal *why = &l->why;
    if (l->rl.has_requests)
        add_views(ex, 0, &l->rl.requests);
    if (l->rl.has_tokens)
        add_views(ex, 1, &l->rl.tokens_view);
    if (rc == 0) {
        l->has_rl = l->rl.has_requests || l->rl.has_tokens;
        return 0;
    }
    abandon_agents(l, now_ms());
    drop(call);
    char wait[32];
    breaker_format_duration(why->retry_after_ns, wait, sizeof wait);
    ex->decision = "deny";
    ex->decision_reason = arena_printf(&ex->arena, "rate_limit_exceeded: %s %s", why->node,
                                       why->tokens ? "tokens" : "requests");
    http_add_header(
        ex, "Retry-After",
        arena_printf(&ex->arena, "%llu", (unsigned long long)secs_up(why->retry_after_ns)));
    if (why->tokens)
        llm_error(ex, 429, "rate_limit_exceeded", "rate_limit_exceeded", NULL,
                  "rate limit reached for agent '%s' on tokens per minute: limit %llu, this "
                  "call needs about %llu; try again in %s",
                  why->node, (unsigned long long)why->limit, (unsigned long long)l->rl.tokens,
                  wait);
    else
        llm_error(ex, 429, "rate_limit_exceeded", "rate_limit_exceeded", NULL,
                  "rate limit reached for agent '%s' on requests per minute: limit %llu; try "
                  "again in %s",
                  why->node, (unsigned long long)why->limit, wait);
    return -1;
}

/* Redis could not decide: refuse (fail closed, like budgets) with 503. */
static void rl_store_unavailable(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    abandon_agents(&call->lim, now_ms());
    drop(call);
    ex->decision = "deny";
    ex->decision_reason = "rate_limit_store_unavailable";
    llm_error(ex, 503, "server_error", "rate_limit_store_unavailable", NULL,
              "the rate limit store (Redis) is unavailable; the call was not forwarded");
}

/* The answer of breaker_rl_admit_redis. */
static void on_rl_redis(void *arg, int rc)
{
    struct llm_call *call = arg;
    struct http_exchange *ex = call->ex;
    struct llm_limits *l = &call->lim;
    if (ex->aborted || ex->ended) { /* the client left while Redis answered */
        if (rc == 0 && l->rl.has_tokens)
            breaker_rl_settle_redis(ex->worker->budget_redis, l->set, &l->chain, &l->rl, 0);
        abandon_agents(l, now_ms());
        drop(call);
    } else if (rc < 0) {
        rl_store_unavailable(call);
    } else if (rl_answer(call, rc) == 0) {
        llm_call_admitted(call);
    }
    http_exchange_unref(ex); /* the hold taken while waiting */
}

int llm_limits_admit(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    struct llm_limits *l = &call->lim;
    const struct identity_principal *p = ex->principal;
    l->set = ex->cfg->breakers;
    if (l->set == NULL || p == NULL || p->chain_len == 0)
        return 0;
    if (breaker_chain_resolve(l->set, (const char *const *)p->chain, p->chain_len, &l->chain) < 0)
        return 0; /* longer than any configured tree */
    uint64_t now = now_ms();
    for (size_t i = 0; i < l->chain.n; i++) {
        struct breaker *b = breaker_chain_breaker(l->set, &l->chain, i);
        struct breaker_why why;
        if (b == NULL || l->nagent == sizeof l->agent / sizeof l->agent[0])
            continue;
        if (breaker_admit(b, now, &l->agent[l->nagent], &why) == 0) {
            l->nagent++;
            continue;
        }
        abandon_agents(l, now);
        drop(call);
        const char *id = breaker_id(b);
        ex->decision = "deny";
        ex->decision_reason = arena_printf(&ex->arena, "circuit_breaker_open: %s", id);
        http_add_header(ex, "Retry-After",
                        arena_printf(&ex->arena, "%llu",
                                     (unsigned long long)secs_up(why.retry_after_ms * 1000000u)));
        if (why.reason == BREAKER_REFUSED_OPEN)
            llm_error(ex, 503, "circuit_breaker_open", "circuit_breaker_open", NULL,
                      "circuit breaker '%s' is open after %u consecutive errors; calls are "
                      "refused for another %llu ms",
                      id, why.errors, (unsigned long long)why.retry_after_ms);
        else
            llm_error(ex, 503, "circuit_breaker_open", "circuit_breaker_open", NULL,
                      "circuit breaker '%s' is half-open: one probe call is in flight", id);
        return -1;
    }
    uint64_t est = 0;
    int kinds = breaker_chain_limits(l->set, &l->chain);
    if (kinds == 0)
        return 0;
    /* the body is parsed only when some node limits tokens */
    if (kinds & 2)
        est = token_estimate(call);
    struct budget_redis *r = ex->worker->budget_redis;
    if (r != NULL) {
        /* state.redis: the buckets are shared through Redis; the call goes
         * on from on_rl_redis once the script has run */
        http_exchange_ref(ex);
        int rc =
            breaker_rl_admit_redis(r, l->set, &l->chain, est, &l->rl, &l->why, on_rl_redis, call);
        if (rc == 2)
            return 1;
        http_exchange_unref(ex);
        if (rc == 0)
            return 0;
        rl_store_unavailable(call);
        return -1;
    }
    int rc = breaker_rl_admit(l->set, &l->chain, est, clock_mono_ns(), &l->rl, &l->why);
    return rl_answer(call, rc);
}

/* ---- attempts ---------------------------------------------------------------- */

int llm_limits_target(struct llm_call *call)
{
    struct llm_limits *l = &call->lim;
    l->ttfb_ns = 0;
    l->attempt_error = 0;
    l->target.b = NULL;
    if (l->set == NULL)
        l->set = call->ex->cfg->breakers;
    if (l->set == NULL)
        return 0;
    size_t index = (size_t)(call->target->provider - call->ex->cfg->providers);
    struct breaker *b = breaker_set_provider(l->set, index);
    if (b == NULL)
        return 0;
    struct breaker_why why;
    if (breaker_admit(b, now_ms(), &l->target, &why) == 0)
        return 0;
    l->skipped = breaker_id(b);
    l->skipped_why = why;
    struct http_exchange *ex = call->ex;
    if (log_enabled(LOG_INFO)) {
        buf_t *lb = &ex->worker->logbuf;
        if (log_line_begin(lb, LOG_INFO, "target skipped by its circuit breaker") == 0) {
            log_line_str(lb, "request_id", ex->request_id, strlen(ex->request_id));
            log_line_str(lb, "breaker", l->skipped, strlen(l->skipped));
            log_line_str(lb, "reason", why.reason == BREAKER_REFUSED_BACKOFF ? "backoff" : "open",
                         why.reason == BREAKER_REFUSED_BACKOFF ? 7 : 4);
            log_line_end(lb);
        }
    }
    return 1;
}

void llm_limits_no_target(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    struct llm_limits *l = &call->lim;
    const struct breaker_why *why = &l->skipped_why;
    const char *id = l->skipped ? l->skipped : "?";
    l->refused_by_breaker = 1;
    ex->decision = "deny";
    ex->decision_reason = arena_printf(&ex->arena, "circuit_breaker_open: %s", id);
    http_add_header(ex, "Retry-After",
                    arena_printf(&ex->arena, "%llu",
                                 (unsigned long long)secs_up(why->retry_after_ms * 1000000u)));
    /* an earlier target that was tried and failed is named too */
    const char *tried =
        ex->attempts > 0 && ex->provider
            ? arena_printf(&ex->arena, "; provider '%s' was tried and failed", ex->provider)
            : NULL;
    if (why->reason == BREAKER_REFUSED_BACKOFF)
        llm_error(ex, 503, "upstream_error", "circuit_breaker_backoff", "model",
                  "circuit breaker '%s' is backing off on latency (at most %u calls at once) "
                  "and no fallback target is left for '%s'%s",
                  id, why->concurrency, call->model->name, tried ? tried : "");
    else
        llm_error(ex, 503, "upstream_error", "circuit_breaker_open", "model",
                  "circuit breaker '%s' is %s and no fallback target is left for '%s'%s", id,
                  why->reason == BREAKER_REFUSED_OPEN ? "open" : "half-open (probing)",
                  call->model->name, tried ? tried : "");
    llm_call_release(call);
}

static uint64_t attempt_latency_ms(const struct llm_call *call, uint64_t now_ns)
{
    uint64_t end = call->lim.ttfb_ns ? call->lim.ttfb_ns : now_ns;
    return end > call->attempt_start_ns ? (end - call->attempt_start_ns) / 1000000u : 0;
}

static void end_attempt(struct llm_call *call, enum breaker_outcome o)
{
    struct llm_limits *l = &call->lim;
    if (l->target.b == NULL)
        return;
    struct breaker *b = l->target.b;
    uint64_t now_ns = clock_mono_ns();
    int ev = breaker_done(&l->target, o, attempt_latency_ms(call, now_ns), now_ns / 1000000u);
    emit(call->ex, b, ev, now_ns / 1000000u);
}

void llm_limits_attempt_failed(struct llm_call *call)
{
    end_attempt(call, BREAKER_ERROR);
}

void llm_limits_finish(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    struct llm_limits *l = &call->lim;
    if (l->set == NULL)
        return;
    int status = ex->status;
    if (l->target.b) {
        enum breaker_outcome o = BREAKER_OK;
        if (call->client_gone && !call->committed)
            o = BREAKER_ABANDON;
        else if (l->attempt_error || status >= 500 || status == 429)
            o = BREAKER_ERROR;
        end_attempt(call, o);
    }
    uint64_t now = now_ms();
    if (l->nagent > 0) {
        enum breaker_outcome o = BREAKER_OK;
        if (l->refused_by_breaker || (call->client_gone && !call->committed))
            o = BREAKER_ABANDON;
        else if (status >= 500 || l->attempt_error)
            o = BREAKER_ERROR;
        for (size_t i = 0; i < l->nagent; i++) {
            struct breaker *b = l->agent[i].b;
            int ev = breaker_done(&l->agent[i], o, 0, now);
            emit(ex, b, ev, now);
        }
        l->nagent = 0;
    }
    if (l->has_rl) {
        l->has_rl = 0;
        uint64_t used = status >= 200 && status < 300 ? ex->tokens_in + ex->tokens_out : 0;
        if (ex->worker->budget_redis != NULL) {
            if (l->rl.has_tokens)
                breaker_rl_settle_redis(ex->worker->budget_redis, l->set, &l->chain, &l->rl, used);
        } else
            breaker_rl_settle(l->set, &l->chain, &l->rl, used, clock_mono_ns());
    }
}
