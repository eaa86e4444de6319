// SPDX-License-Identifier: Apache-2.0
// The built-in mock provider: answers in OpenAI's exact wire format, plain
// or streamed, after a configurable latency, with a configurable failure
// rate, so the demo and the tests need no network.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/worker.h"
#include "http/server.h"
#include "llm/call.h"
#include "llm/llm.h"

static const char *const words[] = {
    "This", " is", " a", " mock", " answer", " from", " portcullis", ",", " the", " agent",
    " gateway", ".", " It", " costs", " nothing", " and", " needs", " no", " network", ".",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static void on_timer_closed(uv_handle_t *h)
{
    struct http_exchange *ex = h->data;
    free(h);
    http_exchange_unref(ex);
}

static void timer_close(struct llm_call *call)
{
    uv_timer_t *t = call->timer;
    if (!t)
        return;
    call->timer = NULL;
    uv_timer_stop(t);
    t->data = call->ex;
    uv_close((uv_handle_t *)t, on_timer_closed);
}

void llm_mock_stop(struct llm_call *call)
{
    timer_close(call);
    llm_call_release(call);
}

static const struct config_mock *mock_cfg(const struct llm_call *call)
{
    return &call->target->provider->mock;
}

static int64_t created_now(void)
{
    return clock_wall_s();
}

static void chat_full(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    uint32_t n = mock_cfg(call)->tokens;
    buf_t content, b;
    /* a word is at most 12 bytes; escaping at most doubles the content */
    buf_init(&content, (size_t)n * 12 + 1);
    buf_init(&b, (size_t)n * 24 + 4096);
    int rc = 0;
    for (uint32_t i = 0; i < n; i++)
        rc |= buf_append(&content, words[i % NWORDS], strlen(words[i % NWORDS]));
    ex->tokens_in = llm_estimate_prompt_tokens(llm_call_body(call));
    ex->tokens_out = n;
    rc |= buf_appendf(&b,
                      "{\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion\",\"created\":%lld,"
                      "\"model\":",
                      ex->request_id, (long long)created_now());
    rc |= buf_append_json_string(&b, call->target->model, strlen(call->target->model));
    rc |= buf_append_lit(&b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                         "\"content\":");
    rc |= buf_append_json_string(&b, content.data ? content.data : "", content.len);
    rc |= buf_appendf(&b,
                      ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                      "\"usage\":{\"prompt_tokens\":%llu,\"completion_tokens\":%u,"
                      "\"total_tokens\":%llu},\"system_fingerprint\":\"fp_portcullis_mock\"}",
                      (unsigned long long)ex->tokens_in, n,
                      (unsigned long long)(ex->tokens_in + n));
    if (rc == 0)
        http_respond(ex, 200, "application/json", b.data, b.len);
    else
        llm_error(ex, 500, "server_error", NULL, NULL, "mock provider: out of memory");
    buf_free(&content);
    buf_free(&b);
}

/* One chat.completion.chunk event. delta is raw JSON; finish may be NULL. */
static int chunk(struct llm_call *call, buf_t *b, const char *delta, const char *finish)
{
    struct http_exchange *ex = call->ex;
    int rc = buf_appendf(b,
                         "data: {\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion.chunk\","
                         "\"created\":%lld,\"model\":",
                         ex->request_id, (long long)created_now());
    rc |= buf_append_json_string(b, call->target->model, strlen(call->target->model));
    rc |= buf_appendf(b,
                      ",\"system_fingerprint\":\"fp_portcullis_mock\",\"choices\":[{\"index\":0,"
                      "\"delta\":%s,\"logprobs\":null,\"finish_reason\":%s%s%s}]%s}\n\n",
                      delta, finish ? "\"" : "", finish ? finish : "null", finish ? "\"" : "",
                      call->client_wants_usage ? ",\"usage\":null" : "");
    return rc;
}

static int content_chunk(struct llm_call *call, buf_t *b, uint32_t i)
{
    buf_t d;
    buf_init(&d, 4096);
    int rc = buf_append_lit(&d, "{\"content\":");
    rc |= buf_append_json_string(&d, words[i % NWORDS], strlen(words[i % NWORDS]));
    rc |= buf_append_lit(&d, "}");
    if (rc == 0)
        rc = chunk(call, b, d.data, NULL);
    buf_free(&d);
    return rc;
}

static int stream_tail(struct llm_call *call, buf_t *b)
{
    struct http_exchange *ex = call->ex;
    int rc = chunk(call, b, "{}", "stop");
    if (call->client_wants_usage) {
        rc |= buf_appendf(b,
                          "data: {\"id\":\"chatcmpl-%s\",\"object\":\"chat.completion.chunk\","
                          "\"created\":%lld,\"model\":",
                          ex->request_id, (long long)created_now());
        rc |= buf_append_json_string(b, call->target->model, strlen(call->target->model));
        rc |= buf_appendf(b,
                          ",\"system_fingerprint\":\"fp_portcullis_mock\",\"choices\":[],"
                          "\"usage\":{\"prompt_tokens\":%llu,\"completion_tokens\":%llu,"
                          "\"total_tokens\":%llu}}\n\n",
                          (unsigned long long)ex->tokens_in, (unsigned long long)ex->tokens_out,
                          (unsigned long long)(ex->tokens_in + ex->tokens_out));
    }
    rc |= buf_append_lit(b, "data: [DONE]\n\n");
    return rc;
}

/* Sends what is due now; returns 1 when the stream is complete. */
static int stream_step(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    const struct config_mock *mc = mock_cfg(call);
    buf_t b;
    buf_init(&b, 8 << 20);
    int rc = 0, done = 0;
    if (call->mock_sent == 0 && !ex->head_sent) {
        http_add_header(ex, "Cache-Control", "no-cache");
        http_stream_start(ex, 200, "text/event-stream; charset=utf-8");
        rc |= chunk(call, &b, "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}", NULL);
    }
    uint32_t burst = mc->chunk_delay_ms ? 1 : mc->tokens;
    for (uint32_t k = 0; k < burst && call->mock_sent < mc->tokens && rc == 0; k++) {
        rc |= content_chunk(call, &b, call->mock_sent++);
        if (b.len >= (1 << 20)) {
            /* long answers go out in bounded bursts */
            (void)http_stream_write(ex, b.data, b.len);
            buf_reset(&b);
        }
    }
    if (call->mock_sent >= mc->tokens) {
        ex->tokens_out = call->mock_sent;
        rc |= stream_tail(call, &b);
        done = 1;
    }
    if (rc == 0 && b.len)
        (void)http_stream_write(ex, b.data, b.len);
    buf_free(&b);
    if (rc)
        done = -1;
    return done;
}

static void embeddings(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    const json_t *input = json_object_get(llm_call_body(call), "input");
    json_t *dims = json_object_get(llm_call_body(call), "dimensions");
    size_t dim = json_is_integer(dims) && json_integer_value(dims) > 0 &&
                         json_integer_value(dims) <= 4096
                     ? (size_t)json_integer_value(dims)
                     : 16;
    size_t count = json_is_array(input) ? json_array_size(input) : 1;
    if (json_is_array(input) && count > 0 && json_is_integer(json_array_get(input, 0)))
        count = 1; /* one input given as token ids */
    buf_t b;
    buf_init(&b, 64 << 20);
    int rc = buf_append_lit(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < count && rc == 0; i++) {
        const json_t *item = json_is_array(input) && count > 1 ? json_array_get(input, i) : input;
        /* deterministic vector from an FNV-1a hash of the text */
        uint64_t h = 1469598103934665603ULL;
        const char *s = json_is_string(item) ? json_string_value(item) : "";
        size_t sl = json_is_string(item) ? json_string_length(item) : 0;
        for (size_t k = 0; k < sl; k++)
            h = (h ^ (unsigned char)s[k]) * 1099511628211ULL;
        rc |= buf_appendf(&b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":[",
                          i ? "," : "", i);
        double norm = 0, v[4096];
        for (size_t d = 0; d < dim; d++) {
            h ^= h >> 33;
            h *= 0xff51afd7ed558ccdULL;
            h ^= h >> 33;
            v[d] = ((double)(h >> 11) / (double)(1ULL << 53)) * 2.0 - 1.0;
            norm += v[d] * v[d];
        }
        norm = sqrt(norm);
        for (size_t d = 0; d < dim; d++)
            rc |= buf_appendf(&b, "%s%.6f", d ? "," : "", norm > 0 ? v[d] / norm : 0.0);
        rc |= buf_append_lit(&b, "]}");
    }
    ex->tokens_in = llm_estimate_prompt_tokens(llm_call_body(call));
    rc |= buf_append_lit(&b, "],\"model\":");
    rc |= buf_append_json_string(&b, call->target->model, strlen(call->target->model));
    rc |= buf_appendf(&b, ",\"usage\":{\"prompt_tokens\":%llu,\"total_tokens\":%llu}}",
                      (unsigned long long)ex->tokens_in, (unsigned long long)ex->tokens_in);
    if (rc == 0)
        http_respond(ex, 200, "application/json", b.data, b.len);
    else
        llm_error(ex, 500, "server_error", NULL, NULL, "mock provider: answer too large");
    buf_free(&b);
}

static void on_tick(uv_timer_t *t)
{
    struct llm_call *call = t->data;
    struct http_exchange *ex = call->ex;
    const struct config_mock *mc = mock_cfg(call);
    if (call->mock_sent == 0 && !ex->head_sent) {
        /* first tick: the latency has passed. This is when a real provider's
         * answer headers would arrive: breakers judge latency by it, not by
         * how long a stream then takes (chunk_delay) */
        call->lim.ttfb_ns = clock_mono_ns();
        double roll = (double)(worker_rand(ex->worker) >> 11) / (double)(1ULL << 53);
        if (mc->failure_rate > 0 && roll < mc->failure_rate) {
            timer_close(call);
            call->status = 500;
            llm_call_attempt_failed(call, 1, 0, "mock provider failure (failure_rate)");
            return;
        }
        if (call->api == LLM_EMBEDDINGS) {
            timer_close(call);
            embeddings(call);
            llm_call_release(call);
            return;
        }
        ex->tokens_in = llm_estimate_prompt_tokens(llm_call_body(call));
        if (!call->stream) {
            timer_close(call);
            chat_full(call);
            llm_call_release(call);
            return;
        }
    }
    int done = stream_step(call);
    if (done) {
        timer_close(call);
        if (done > 0)
            http_stream_end(ex);
        else
            http_stream_abort(ex);
        llm_call_release(call);
        return;
    }
    uv_timer_start(t, on_tick, mc->chunk_delay_ms, 0);
}

void llm_mock_start(struct llm_call *call)
{
    struct http_exchange *ex = call->ex;
    uv_timer_t *t = malloc(sizeof(*t));
    if (!t) {
        llm_call_attempt_failed(call, 2, 0, "out of memory");
        return;
    }
    uv_timer_init(&ex->worker->loop, t);
    t->data = call;
    call->timer = t;
    call->mock_sent = 0;
    http_exchange_ref(ex); /* dropped when the timer handle is closed */
    uv_timer_start(t, on_tick, mock_cfg(call)->latency_ms, 0);
}
