// SPDX-License-Identifier: Apache-2.0
// LLM proxy stage: parse the client's body, pick the model's targets, and
// try them in order (fallback on connect error, timeout, 429, 5xx) until one
// answers; stream SSE through as it arrives and capture token usage.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/str.h"
#include "core/worker.h"
#include "http/server.h"
#include "identity/identity.h"
#include "llm/call.h"
#include "llm/guard.h"
#include "llm/limits.h"
#include "llm/llm.h"
#include "llm/sse.h"
#include "policy/policy.h"
#include "telemetry/metrics.h"
#include "upstream/upstream.h"

#define RESP_MAX (64u << 20)          /* largest buffered upstream answer */
#define SSE_EVENT_MAX (4u << 20)

static void attempt_next(struct llm_call *call);

static const char *api_path(enum llm_api api)
{
    switch (api) {
    case LLM_CHAT: return "/chat/completions";
    case LLM_EMBEDDINGS: return "/embeddings";
    case LLM_MESSAGES: return "/messages";
    }
    return "/";
}

static const char *api_route(enum llm_api api)
{
    switch (api) {
    case LLM_CHAT: return "chat";
    case LLM_EMBEDDINGS: return "embeddings";
    case LLM_MESSAGES: return "messages";
    }
    return "other";
}

static int target_usable(enum llm_api api, const struct config_target *t)
{
    const struct config_provider *p = t->provider;
    if (!p->enabled)
        return 0;
    if (api == LLM_MESSAGES)
        return p->kind == PROVIDER_ANTHROPIC;
    return p->kind == PROVIDER_OPENAI || p->kind == PROVIDER_MOCK;
}

json_t *llm_call_body(struct llm_call *call)
{
    if (!call->body)
        call->body = json_loadb(call->root.p, call->root.len, 0, NULL);
    return call->body;
}

uint64_t llm_estimate_prompt_tokens(const json_t *body)
{
    uint64_t bytes = 0, items = 0;
    const json_t *msgs = json_object_get(body, "messages");
    const json_t *input = json_object_get(body, "input");
    size_t i;
    const json_t *m;
    if (json_is_array(msgs)) {
        json_array_foreach(msgs, i, m) {
            const json_t *c = json_object_get(m, "content");
            items++;
            if (json_is_string(c)) {
                bytes += json_string_length(c);
            } else if (json_is_array(c)) {
                size_t j;
                const json_t *part;
                json_array_foreach(c, j, part) {
                    const json_t *t = json_object_get(part, "text");
                    if (json_is_string(t))
                        bytes += json_string_length(t);
                }
            }
        }
    } else if (json_is_string(input)) {
        bytes = json_string_length(input);
        items = 1;
    } else if (json_is_array(input)) {
        json_array_foreach(input, i, m) {
            items++;
            bytes += json_is_string(m) ? json_string_length(m) : 1;
        }
    }
    return (bytes + 3) / 4 + items * 4;
}

/* ---- finishing ----------------------------------------------------------- */

/* Settles the call's reservation with the real cost: usage times the model's
 * price when the client got a 2xx answer, 0 for a failed call. */
static void budget_finish(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    if (!call->has_reservation)
        return;
    call->has_reservation = 0;
    int64_t cost = 0;
    if (ex->status >= 200 && ex->status < 300 && call->model->has_price) {
        cost = budget_cost(ex->tokens_in, call->model->price.input_per_mtok) +
               budget_cost(ex->tokens_out, call->model->price.output_per_mtok);
        ex->cost_usd = (double)cost / 1e6;
    }
    budget_settle(&call->reservation, cost, time(NULL));
}

void llm_call_release(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    budget_finish(call);
    llm_limits_finish(call);
    if (call->body)
        json_decref(call->body);
    call->body = NULL;
    if (call->sse)
        sse_filter_free(call->sse);
    call->sse = NULL;
    buf_free(&call->resp);
    buf_free(&call->out);
    ex->on_abort = NULL;
    ex->on_drain = NULL;
    http_exchange_unref(ex); /* may free call (it lives in ex's arena) */
}

static void final_failure(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    const char *prov = call->target ? call->target->provider->name : "?";
    if (call->fail_kind == 1) {
        int st = call->status >= 400 ? (int)call->status : 502;
        llm_error(ex, st, st == 429 ? "rate_limit_error" : "upstream_error",
                  st == 429 ? "upstream_rate_limited" : "upstream_error", NULL,
                  "upstream provider '%s' answered %d; no fallback target left", prov, st);
    } else if (call->fail_timeout) {
        llm_error(ex, 504, "upstream_error", "upstream_timeout", NULL,
                  "upstream provider '%s' did not answer in time (%s)", prov,
                  call->fail_msg ? call->fail_msg : "timed out");
    } else {
        llm_error(ex, 502, "upstream_error", "upstream_unreachable", NULL,
                  "upstream provider '%s' is unreachable: %s", prov,
                  call->fail_msg ? call->fail_msg : "error");
    }
    llm_call_release(call);
}

static int can_retry(const struct llm_call *call)
{
    return call->next < call->ntargets && call->retries_left > 0;
}

void llm_call_attempt_failed(struct llm_call *call, int kind, int timeout, const char *msg)
{
    struct http_exchange *ex = call->ex;
    struct worker *w = ex->worker;
    call->fail_kind = kind;
    call->fail_timeout = timeout;
    call->fail_msg = msg;
    llm_limits_attempt_failed(call);
    const char *prov = call->target->provider->name;
    const char *outcome = kind == 1 ? (call->status == 429 ? "status_429" : "status_5xx")
                                    : (timeout ? "timeout" : "error");
    metrics_upstream_attempt(w->metrics, w->id, prov, outcome);
    if (log_enabled(LOG_WARN)) {
        buf_t *b = &w->logbuf;
        if (log_line_begin(b, LOG_WARN, "upstream attempt failed") == 0) {
            log_line_str(b, "request_id", ex->request_id, strlen(ex->request_id));
            log_line_str(b, "provider", prov, strlen(prov));
            log_line_str(b, "outcome", outcome, strlen(outcome));
            if (kind == 1)
                log_line_int(b, "status", call->status);
            if (msg)
                log_line_str(b, "reason", msg, strlen(msg));
            log_line_int(b, "fallback", can_retry(call));
            log_line_end(b);
        }
    }
    if (can_retry(call)) {
        call->retries_left--;
        attempt_next(call);
    } else {
        final_failure(call);
    }
}

/* Replaces every copy of `secret` in b with '*' so an upstream that echoes
 * the key back never leaks it through us. */
static void scrub(buf_t *b, const char *secret)
{
    if (!secret || !*secret || !b->len)
        return;
    size_t sl = strlen(secret);
    char *p = b->data, *end = b->data + b->len;
    while ((p = memmem(p, (size_t)(end - p), secret, sl))) {
        memset(p, '*', sl);
        p += sl;
    }
}

/* Checks a successful buffered answer and reads its token usage. -1 when
 * it is not a JSON object: the client must not get it as a success. */
static int check_answer(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    struct json_span root, usage, v[2];
    static const char *const usage_key[] = {"usage"};
    /* one pass: validated and "usage" picked up on the way */
    int rc = json_validate_lookup(call->resp.data ? call->resp.data : "", call->resp.len, &root,
                                  usage_key, 1, &usage, NULL, NULL);
    if (rc == -1 || root.kind != JS_OBJECT)
        return -1;
    if (rc == -2 || usage.kind == JS_NONE)
        return 0; /* "usage" twice: which one counts is a guess, so neither */
    static const char *const openai_keys[] = {"prompt_tokens", "completion_tokens"};
    static const char *const anthropic_keys[] = {"input_tokens", "output_tokens"};
    if (json_lookup(&usage, call->api == LLM_MESSAGES ? anthropic_keys : openai_keys, 2, v,
                    NULL) < 0)
        return 0;
    int64_t n;
    if (json_int(&v[0], &n) == 0 && n >= 0)
        ex->tokens_in = (uint64_t)n;
    if (json_int(&v[1], &n) == 0 && n >= 0)
        ex->tokens_out = (uint64_t)n;
    return 0;
}

/* ---- upstream callbacks ------------------------------------------------- */

static int up_headers(void *ud, long status, const char *ctype)
{
    struct llm_call *call = ud;
    struct http_exchange *ex = call->ex;
    if (call->client_gone)
        return 1;
    call->status = status;
    call->lim.ttfb_ns = clock_mono_ns();
    str_copy(call->content_type, sizeof(call->content_type), ctype ? ctype : "application/json");
    if ((status == 429 || status >= 500) && can_retry(call)) {
        call->fail_kind = 1;
        return 1; /* drop this answer, fall back */
    }
    call->committed = 1;
    if (call->stream && status == 200 && ctype && strncmp(ctype, "text/event-stream", 17) == 0) {
        call->streaming = 1;
        http_add_header(ex, "Cache-Control", "no-cache");
        http_stream_start(ex, 200, ctype);
    }
    return 0;
}

static void on_drain(struct http_exchange *ex)
{
    struct llm_call *call = ex->handler_data;
    if (call->paused && call->ureq) {
        call->paused = 0;
        ex->on_drain = NULL;
        call->in_callback++;
        upstream_resume(call->ureq);
        call->in_callback--;
    }
}

static int up_data(void *ud, const char *data, size_t len)
{
    struct llm_call *call = ud;
    struct http_exchange *ex = call->ex;
    if (call->client_gone)
        return -1;
    if (!call->streaming)
        return buf_append(&call->resp, data, len) == 0 ? 0 : -1;
    buf_reset(&call->out);
    if (sse_filter_feed(call->sse, data, len, &call->out) < 0)
        return -1;
    if (!call->out.len)
        return 0;
    call->in_callback++;
    long q = http_stream_write(ex, call->out.data, call->out.len);
    call->in_callback--;
    if (q < 0 || call->client_gone)
        return -1;
    if (q > HTTP_OUT_HIGH_WATER) {
        call->paused = 1;
        ex->on_drain = on_drain;
        return 1;
    }
    return 0;
}

static void finish_stream(struct llm_call *call, enum upstream_result res)
{
    struct http_exchange *ex = call->ex;
    buf_reset(&call->out);
    if (sse_filter_finish(call->sse, &call->out) == 0 && call->out.len)
        (void)http_stream_write(ex, call->out.data, call->out.len);
    uint64_t pin = 0, pout = 0;
    int found = 0;
    sse_filter_usage(call->sse, &pin, &pout, &found);
    if (found) {
        ex->tokens_in = pin;
        ex->tokens_out = pout;
    }
    if (res == UPSTREAM_OK)
        http_stream_end(ex);
    else
        http_stream_abort(ex); /* the client must not mistake a cut answer for a whole one */
}

static void up_done(void *ud, enum upstream_result res, const char *msg)
{
    struct llm_call *call = ud;
    struct http_exchange *ex = call->ex;
    struct worker *w = ex->worker;
    call->ureq = NULL;
    double secs = (double)(clock_mono_ns() - call->attempt_start_ns) / 1e9;
    ex->upstream_seconds = (ex->upstream_seconds < 0 ? 0 : ex->upstream_seconds) + secs;
    if (call->client_gone) {
        llm_call_release(call);
        return;
    }
    if (!call->committed) {
        if (call->fail_kind == 1)
            llm_call_attempt_failed(call, 1, 0, "retryable status");
        else
            llm_call_attempt_failed(call, 2, res == UPSTREAM_ETIMEDOUT, msg);
        return;
    }
    if (call->streaming) {
        metrics_upstream_attempt(w->metrics, w->id, call->target->provider->name,
                                 res == UPSTREAM_OK ? "ok" : "error");
        call->lim.attempt_error = res != UPSTREAM_OK;
        finish_stream(call, res);
        llm_call_release(call);
        return;
    }
    if (res != UPSTREAM_OK) {
        call->committed = 0;
        llm_call_attempt_failed(call, 2, res == UPSTREAM_ETIMEDOUT, msg);
        return;
    }
    if (call->status >= 200 && call->status < 300 && check_answer(call) < 0) {
        call->committed = 0;
        llm_call_attempt_failed(call, 2, 0, "upstream answered 2xx with a body that is not JSON");
        return;
    }
    metrics_upstream_attempt(w->metrics, w->id, call->target->provider->name,
                             call->status >= 500 ? "status_5xx"
                             : call->status == 429 ? "status_429" : "ok");
    scrub(&call->resp, call->target->provider->api_key);
    http_respond(ex, (int)call->status, call->content_type, call->resp.data ? call->resp.data : "",
                 call->resp.len);
    llm_call_release(call);
}

static const struct upstream_callbacks up_cb = {
    .on_headers = up_headers,
    .on_data = up_data,
    .on_done = up_done,
};

struct splice {
    size_t at;          /* offset in the original body */
    size_t remove;      /* bytes of the original replaced */
    const char *insert;
    size_t insert_len;
};

/* The body this target gets: the client's bytes unchanged when possible,
 * else the same bytes with the model value and usage reporting spliced in
 * (no re-serialisation: key order, spacing and numbers stay as sent). */
static int upstream_body(struct llm_call *call, const char **out, size_t *out_len)
{
    struct http_exchange *ex = call->ex;
    const struct config_target *t = call->target;
    const char *body = ex->req->body.data ? ex->req->body.data : "";
    size_t len = ex->req->body.len;
    int rename = strcmp(t->model, call->model->name) != 0;
    int want_usage = call->api == LLM_CHAT && call->stream && !call->client_wants_usage;
    if (!rename && !want_usage) {
        *out = body; /* the request outlives the attempt (ex holds it) */
        *out_len = len;
        return 0;
    }
    struct splice sp[2];
    int n = 0;
    if (rename) {
        buf_t q;
        buf_init(&q, 4096);
        if (buf_append_json_string(&q, t->model, strlen(t->model)) != 0) {
            buf_free(&q);
            return -1;
        }
        char *qs = arena_strndup(&ex->arena, q.data, q.len);
        buf_free(&q);
        if (!qs)
            return -1;
        sp[n++] = (struct splice){(size_t)(call->jmodel.p - body), call->jmodel.len, qs,
                                  strlen(qs)};
    }
    if (want_usage) {
        const struct json_span *so = &call->jstream_options;
        static const char whole[] = ",\"stream_options\":{\"include_usage\":true}";
        if (so->kind == JS_NONE) {
            /* before the closing brace of the root object */
            size_t at = (size_t)(call->root.p - body) + call->root.len - 1;
            sp[n++] = (struct splice){at, 0, whole, sizeof(whole) - 1};
        } else if (so->kind != JS_OBJECT) {
            sp[n++] = (struct splice){(size_t)(so->p - body), so->len, whole + 18,
                                      sizeof(whole) - 1 - 18};
        } else if (call->jinclude_usage.kind != JS_NONE) {
            sp[n++] = (struct splice){(size_t)(call->jinclude_usage.p - body),
                                      call->jinclude_usage.len, "true", 4};
        } else {
            /* first member of stream_options; a comma unless it is empty */
            const char *q = so->p + 1;
            while (q < so->p + so->len && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
                q++;
            int empty = *q == '}';
            sp[n++] = (struct splice){(size_t)(so->p - body) + 1, 0,
                                      empty ? "\"include_usage\":true" : "\"include_usage\":true,",
                                      empty ? 20 : 21};
        }
    }
    if (n == 2 && sp[1].at < sp[0].at) {
        struct splice tmp = sp[0];
        sp[0] = sp[1];
        sp[1] = tmp;
    }
    size_t total = len;
    for (int i = 0; i < n; i++)
        total = total - sp[i].remove + sp[i].insert_len;
    char *p = arena_alloc(&ex->arena, total + 1);
    if (!p)
        return -1;
    size_t from = 0, o = 0;
    for (int i = 0; i < n; i++) {
        memcpy(p + o, body + from, sp[i].at - from);
        o += sp[i].at - from;
        memcpy(p + o, sp[i].insert, sp[i].insert_len);
        o += sp[i].insert_len;
        from = sp[i].at + sp[i].remove;
    }
    memcpy(p + o, body + from, len - from);
    o += len - from;
    p[o] = '\0';
    *out = p;
    *out_len = o;
    return 0;
}

static void start_http_attempt(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    const struct config_provider *p = call->target->provider;
    const char *body;
    size_t body_len;
    if (upstream_body(call, &body, &body_len) < 0) {
        llm_call_attempt_failed(call, 2, 0, "out of memory");
        return;
    }
    const char *url = arena_concat(&ex->arena, p->base_url, api_path(call->api),
                                   p->query ? "?" : "", p->query ? p->query : "", (char *)NULL);
    struct upstream_header h[6];
    size_t nh = 0;
    h[nh++] = (struct upstream_header){"Content-Type", "application/json"};
    h[nh++] = (struct upstream_header){"Accept", call->stream ? "text/event-stream"
                                                              : "application/json"};
    if (p->kind == PROVIDER_ANTHROPIC) {
        const struct http_header *v = http_request_header(ex->req, "anthropic-version");
        const struct http_header *beta = http_request_header(ex->req, "anthropic-beta");
        h[nh++] = (struct upstream_header){"anthropic-version",
                                           v ? v->value : p->anthropic_version};
        if (beta)
            h[nh++] = (struct upstream_header){"anthropic-beta", beta->value};
        if (p->api_key)
            h[nh++] = (struct upstream_header){"x-api-key", p->api_key};
    } else if (p->api_key && p->auth_header) {
        h[nh++] = (struct upstream_header){p->auth_header, p->api_key};
    } else if (p->api_key) {
        h[nh++] = (struct upstream_header){
            "Authorization", arena_concat(&ex->arena, "Bearer ", p->api_key, (char *)NULL)};
    }
    h[nh++] = (struct upstream_header){"x-request-id", ex->request_id};
    if (call->stream && !call->sse) {
        call->sse = sse_filter_new(call->api == LLM_MESSAGES ? SSE_ANTHROPIC : SSE_OPENAI,
                                   call->api == LLM_CHAT && !call->client_wants_usage,
                                   SSE_EVENT_MAX);
        if (!call->sse) {
            llm_call_attempt_failed(call, 2, 0, "out of memory");
            return;
        }
    }
    struct upstream_opts o = {
        .method = "POST",
        .url = url,
        .headers = h,
        .nheaders = nh,
        .body = body,
        .body_len = body_len,
        .timeout_ms = p->timeout_ms,
        .connect_timeout_ms = p->connect_timeout_ms,
    };
    call->ureq = upstream_start(ex->worker->upstream, &o, &up_cb, call);
    if (!call->ureq)
        llm_call_attempt_failed(call, 2, 0, "could not start the upstream request");
}

static void attempt_next(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    call->target = &call->model->targets[call->order[call->next++]];
    if (llm_limits_target(call) != 0) { /* skipped: its breaker is open */
        if (call->next < call->ntargets)
            attempt_next(call);
        else
            llm_limits_no_target(call);
        return;
    }
    call->status = 0;
    call->committed = 0;
    call->streaming = 0;
    call->fail_kind = 0;
    buf_reset(&call->resp);
    ex->attempts++;
    ex->provider = call->target->provider->name;
    call->attempt_start_ns = clock_mono_ns();
    if (call->target->provider->kind == PROVIDER_MOCK)
        llm_mock_start(call);
    else
        start_http_attempt(call);
}

static void on_abort(struct http_exchange *ex)
{
    struct llm_call *call = ex->handler_data;
    call->client_gone = 1;
    if (call->in_callback)
        return; /* the upstream callback returns -1 and up_done releases */
    if (call->ureq) {
        upstream_cancel(call->ureq);
        call->ureq = NULL;
        llm_call_release(call);
    } else if (call->timer) {
        llm_mock_stop(call);
    }
}

/* Orders the usable targets: listed order, except that explicit weights pick
 * the first attempt at random in proportion to them. */
static void order_targets(struct llm_call *call)
{
    const struct config_model *m = call->model;
    int weighted = 0;
    uint64_t total = 0;
    call->ntargets = 0;
    for (size_t i = 0; i < m->ntargets && call->ntargets < LLM_MAX_TARGETS; i++) {
        if (!target_usable(call->api, &m->targets[i]))
            continue;
        call->order[call->ntargets++] = (int)i;
        if (m->targets[i].weight != 1)
            weighted = 1;
        total += m->targets[i].weight;
    }
    if (!weighted || total == 0 || call->ntargets < 2)
        return;
    uint64_t r = worker_rand(call->ex->worker) % total;
    for (int k = 0; k < call->ntargets; k++) {
        uint32_t wgt = m->targets[call->order[k]].weight;
        if (r < wgt) {
            int chosen = call->order[k];
            memmove(&call->order[1], &call->order[0], (size_t)k * sizeof(int));
            call->order[0] = chosen;
            return;
        }
        r -= wgt;
    }
}

/* policy: Action::"chat" on Model::"name" for the caller. 0 when allowed; -1
 * when it has answered (403 policy_denied, or 500). The decision and the
 * determining policies go on the exchange for the audit record. */
static int policy_check(struct http_exchange *ex, const char *model)
{
    const struct config_policy *pol = &ex->cfg->policy;
    const struct identity_principal *p = ex->principal;
    const char *agent = p && p->agent ? p->agent : "anonymous";
    /* api: which endpoint ("chat", "embeddings", "messages"), so a policy
     * can tell an embedding from a completion on the same model */
    json_t *ctx = policy_chain_context(p ? p->chain : NULL, p ? p->chain_len : 0,
                                       p && p->chain_len > 0 ? p->chain_len - 1 : 0);
    if (ctx != NULL)
        json_object_set_new(ctx, "api", json_string(ex->route ? ex->route : "chat"));
    struct policy_request req = {
        .principal = policy_uid_make("Agent", agent),
        .action = policy_uid_make("Action", "chat"),
        .resource = policy_uid_make("Model", model),
        .context = ctx,
    };
    struct policy_decision d;
    int rc = ctx ? policy_decide(pol->set, pol->entities, &req, &d) : -1;
    if (ctx)
        json_decref(ctx);
    if (rc < 0) {
        if (ctx)
            policy_decision_free(&d);
        ex->decision = "error";
        ex->decision_reason = "policy evaluation failed";
        llm_error(ex, 500, "server_error", "policy_error", NULL,
                  "the policy decision for this request failed");
        return -1;
    }
    int deny = policy_denies(&d, pol->default_allow);
    ex->policy_ids = policy_ids_dup(&d, &ex->arena);
    policy_decision_free(&d);
    if (!deny)
        return 0;
    ex->decision = "deny";
    if (ex->policy_ids) {
        ex->decision_reason =
            arena_printf(&ex->arena, "policy_denied: forbid %s", ex->policy_ids);
        llm_error(ex, 403, "permission_error", "policy_denied", "model",
                  "permission denied: Action::\"chat\" on Model::\"%.200s\" for "
                  "Agent::\"%.200s\" is forbidden by policy %s",
                  model, agent, ex->policy_ids);
    } else {
        ex->decision_reason = "policy_denied: no permit";
        llm_error(ex, 403, "permission_error", "policy_denied", "model",
                  "permission denied: no policy permits Action::\"chat\" on Model::\"%.200s\" "
                  "for Agent::\"%.200s\"",
                  model, agent);
    }
    return -1;
}

#define BUDGET_DEFAULT_MAX_TOKENS 4096

/* The most this call can cost: the prompt estimated conservatively (a token
 * per 3 body bytes) at the input price, plus the completion limit the client
 * asked for (max_tokens / max_completion_tokens, else a default; what the mock
 * provider answers when it serves every target) at the output price. At least one micro-dollar, so a spent cap refuses. */
static int64_t worst_case_cost(struct llm_call *call)
{
    const struct config_model *m = call->model;
    uint64_t in = (call->ex->req->body.len + 2) / 3, out = 0;
    if (call->api != LLM_EMBEDDINGS) {
        out = call->max_tokens > 0 ? (uint64_t)call->max_tokens : BUDGET_DEFAULT_MAX_TOKENS;
        /* the model's limit: known when every target is the mock provider,
         * which answers its configured number of tokens whatever was asked */
        uint64_t limit = 0;
        for (int i = 0; i < call->ntargets && limit != UINT64_MAX; i++) {
            const struct config_provider *pv = m->targets[call->order[i]].provider;
            if (pv->kind != PROVIDER_MOCK)
                limit = UINT64_MAX;
            else if (pv->mock.tokens > limit)
                limit = pv->mock.tokens;
        }
        if (call->ntargets > 0 && limit != UINT64_MAX)
            out = limit;
    }
    int64_t cost = 0;
    if (m->has_price)
        cost = budget_cost(in, m->price.input_per_mtok) + budget_cost(out, m->price.output_per_mtok);
    return cost > 0 ? cost : 1;
}

/* Reserves the worst case on the caller's chain and every ancestor. 0 when
 * the call may go on; -1 when it has answered (429 budget_exceeded). */
/* Frees what a call owns outside the arena, for a call refused before its
 * first attempt (the answer frees the arena, and the call with it). */
static void call_drop(struct llm_call *call)
{
    if (call->body)
        json_decref(call->body);
    call->body = NULL;
    buf_free(&call->resp);
    buf_free(&call->out);
}

static void budget_refuse(struct llm_call *call, const struct budget_refusal *w);

/* Reserves the worst case on the caller's chain. On refusal the call's
 * resources are released and the client answered: the call is gone. */
static int budget_check(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    const struct identity_principal *p = ex->principal;
    if (p == NULL || p->chain_len == 0)
        return 0; /* anonymous: no node to charge */
    struct budget_refusal why;
    int rc = budget_reserve(ex->cfg->budget, p->chain, p->chain_len, worst_case_cost(call),
                            time(NULL), &call->reservation, &why);
    if (rc == 0) {
        call->has_reservation = 1;
        call->reservation.request_id = ex->request_id; /* for the ledger */
        return 0;
    }
    if (rc < 0) {
        call_drop(call);
        llm_error(ex, 500, "server_error", NULL, NULL, "the agent chain is too long to budget");
        return -1;
    }
    budget_refuse(call, &why);
    return -1;
}

/* Answers 429 budget_exceeded for a refused reservation; the call is gone. */
static void budget_refuse(struct llm_call *call, const struct budget_refusal *w)
{
    struct http_exchange *ex = call->ex;
    struct budget_refusal why = *w;
    double could_cost = (double)call->reservation.micro_usd / 1e6;
    call_drop(call);
    const char *period = budget_period_name(why.period);
    ex->decision = "deny";
    ex->decision_reason =
        arena_printf(&ex->arena, "budget_exceeded: %s %s", why.node, period);
    if (why.retry_after >= 0)
        http_add_header(ex, "Retry-After",
                        arena_printf(&ex->arena, "%lld", (long long)why.retry_after));
    llm_error(ex, 429, "budget_exceeded", "budget_exceeded", NULL,
              "budget exceeded: agent '%s' has used $%.6f (+$%.6f reserved) of its %s cap of "
              "$%.6f; this call could cost up to $%.6f",
              why.node, (double)why.spent / 1e6, (double)why.reserved / 1e6,
              why.period == BUDGET_TOTAL ? "total" : why.period == BUDGET_DAY ? "per-day"
                                                                             : "per-month",
              (double)why.cap / 1e6, could_cost);
}

static void proceed(struct llm_call *call);

/* The answer of a reservation taken in Redis (budget_redis_reserve). */
static void on_budget_reserved(void *arg, int rc, const struct budget_refusal *why)
{
    struct llm_call *call = arg;
    struct http_exchange *ex = call->ex;
    if (rc == 0) {
        call->has_reservation = 1;
        call->reservation.request_id = ex->request_id;
    }
    if (ex->aborted || ex->ended) { /* the client left while Redis answered */
        if (call->has_reservation) {
            call->has_reservation = 0;
            budget_settle(&call->reservation, 0, time(NULL));
        }
        call_drop(call);
    } else if (rc == 1) {
        budget_refuse(call, why);
    } else if (rc < 0) {
        call_drop(call);
        llm_error(ex, 503, "server_error", "budget_store_unavailable", NULL,
                  "the budget store (Redis) is unavailable; the call was not forwarded");
    } else
        proceed(call);
    http_exchange_unref(ex); /* the hold taken while waiting */
}

/* budget_check against Redis: the call goes on (or is answered) from
 * on_budget_reserved once the script has run. */
static void budget_check_redis(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    const struct identity_principal *p = ex->principal;
    if (p == NULL || p->chain_len == 0) {
        proceed(call);
        return;
    }
    http_exchange_ref(ex);
    int rc = budget_redis_reserve(ex->worker->budget_redis, ex->cfg->budget, p->chain,
                                  p->chain_len, worst_case_cost(call), time(NULL),
                                  &call->reservation, on_budget_reserved, call);
    if (rc == 2)
        return;
    on_budget_reserved(call, rc == 0 ? 3 : rc == -1 ? -1 : -2, NULL);
}

static void begin(struct http_exchange *ex, enum llm_api api)
{
    struct http_request *req = ex->req;
    ex->route = api_route(api);
    if (strcmp(req->method, "POST") != 0) {
        http_add_header(ex, "Allow", "POST");
        llm_error(ex, 405, "invalid_request_error", "method_not_allowed", NULL,
                  "%s %s is not supported; use POST", req->method, req->path);
        return;
    }
    enum {
        K_MODEL,
        K_STREAM,
        K_STREAM_OPTIONS,
        K_MESSAGES,
        K_INPUT,
        K_MAX_COMPLETION_TOKENS,
        K_MAX_TOKENS,
        K_COUNT
    };
    static const char *const keys[K_COUNT] = {"model",    "stream", "stream_options",
                                              "messages", "input",  "max_completion_tokens",
                                              "max_tokens"};
    struct json_span v[K_COUNT];
    struct json_error jerr;
    struct json_span root;
    size_t dup = 0;
    /* one pass: validate the body and pick up the members we read */
    int jrc = json_validate_lookup(req->body.data ? req->body.data : "", req->body.len, &root,
                                   keys, K_COUNT, v, &dup, &jerr);
    if (jrc == -1) {
        llm_error(ex, 400, "invalid_request_error", "invalid_json", NULL,
                  "the request body is not valid JSON: %s (line %u, column %u)", jerr.msg,
                  jerr.line, jerr.column);
        return;
    }
    if (root.kind != JS_OBJECT) {
        llm_error(ex, 400, "invalid_request_error", "invalid_json", NULL,
                  "the request body must be a JSON object");
        return;
    }
    if (jrc == -2) {
        llm_error(ex, 400, "invalid_request_error", "duplicate_key", keys[dup],
                  "the request body has '%s' more than once", keys[dup]);
        return;
    }
    char model[256];
    if (v[K_MODEL].kind != JS_STRING ||
        json_string_decode(&v[K_MODEL], model, sizeof(model), NULL) < 0 || !model[0]) {
        llm_error(ex, 400, "invalid_request_error", "missing_model", "model",
                  "you must provide a model parameter (a non-empty string of at most 255 "
                  "bytes)");
        return;
    }
    ex->model = arena_strdup(&ex->arena, model);
    const struct config_model *m = config_find_model(ex->cfg, ex->model);
    if (!m) {
        llm_error(ex, 404, "invalid_request_error", "model_not_found", "model",
                  "the model '%.200s' does not exist or is not served by this gateway",
                  ex->model);
        return;
    }
    if (ex->cfg->policy.set && policy_check(ex, ex->model) < 0)
        return;
    if (api != LLM_EMBEDDINGS && v[K_MESSAGES].kind != JS_ARRAY) {
        llm_error(ex, 400, "invalid_request_error", "invalid_messages", "messages",
                  "'messages' must be an array");
        return;
    }
    int rewritten = 0;
    if (api == LLM_CHAT && llm_guard_tool_messages(ex, &v[K_MESSAGES], &rewritten) < 0)
        return; /* answered: tool output withheld */
    if (rewritten && json_validate_lookup(req->body.data, req->body.len, &root, keys, K_COUNT, v,
                                          &dup, &jerr) != 0) {
        llm_error(ex, 500, "server_error", NULL, NULL, "the sanitized body is not valid JSON");
        return;
    }
    if (api == LLM_EMBEDDINGS && v[K_INPUT].kind == JS_NONE) {
        llm_error(ex, 400, "invalid_request_error", "missing_input", "input",
                  "you must provide an input parameter");
        return;
    }
    struct llm_call *call = arena_alloc(&ex->arena, sizeof(*call));
    if (!call) {
        llm_error(ex, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    memset(call, 0, sizeof(*call));
    call->ex = ex;
    call->api = api;
    call->model = m;
    call->root = root;
    call->jmodel = v[K_MODEL];
    call->jstream_options = v[K_STREAM_OPTIONS];
    /* the completion limit the client asked for, read from the one pass
     * above: budget reservations never parse the body again */
    call->max_tokens = -1;
    for (int k = K_MAX_COMPLETION_TOKENS; k <= K_MAX_TOKENS && call->max_tokens < 0; k++) {
        int64_t n;
        if (json_int(&v[k], &n) == 0 && n > 0)
            call->max_tokens = n;
    }
    if (api != LLM_EMBEDDINGS) {
        call->stream = v[K_STREAM].kind == JS_TRUE;
        if (v[K_STREAM_OPTIONS].kind == JS_OBJECT &&
            json_get(&v[K_STREAM_OPTIONS], "include_usage", &call->jinclude_usage) < 0) {
            llm_error(ex, 400, "invalid_request_error", "duplicate_key", "stream_options",
                      "stream_options has 'include_usage' more than once");
            return;
        }
        call->client_wants_usage = call->jinclude_usage.kind == JS_TRUE;
    }
    buf_init(&call->resp, RESP_MAX);
    buf_init(&call->out, RESP_MAX);
    order_targets(call);
    if (call->ntargets == 0) {
        buf_free(&call->resp);
        buf_free(&call->out);
        llm_error(ex, 503, "upstream_error", "no_provider", "model",
                  "no enabled provider serves '%.200s' for this endpoint (is the provider's "
                  "API key variable set?)",
                  ex->model);
        return;
    }
    if (ex->cfg->budget && ex->worker->budget_redis) {
        budget_check_redis(call);
        return;
    }
    if (ex->cfg->budget && budget_check(call) < 0)
        return; /* answered; the call is freed */
    proceed(call);
}

/* Past the budget: rate limits and breakers, then the first attempt. */
static void proceed(struct llm_call *call)
{
    int rc = llm_limits_admit(call);
    if (rc < 0)
        return; /* answered (rate limit, agent breaker); the call is freed */
    if (rc == 0)
        llm_call_admitted(call); /* else from Redis' answer (rate limits) */
}

void llm_call_admitted(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    call->retries_left = (int)ex->cfg->limits.max_retries;
    ex->handler_data = call;
    ex->on_abort = on_abort;
    http_exchange_ref(ex);
    attempt_next(call);
}

void llm_chat_completions(struct http_exchange *ex)
{
    begin(ex, LLM_CHAT);
}

void llm_embeddings(struct http_exchange *ex)
{
    begin(ex, LLM_EMBEDDINGS);
}

void llm_messages(struct http_exchange *ex)
{
    begin(ex, LLM_MESSAGES);
}
