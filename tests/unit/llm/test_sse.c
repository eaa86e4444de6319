// SPDX-License-Identifier: Apache-2.0
// Unit tests for llm/sse: real-shaped OpenAI and Anthropic streams, fed whole,
// split at every byte offset and byte by byte, with and without stripping the
// usage-only chunk; CRLF and CR framing, comments, multi-line data, oversized
// events, and usage capture.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/sse.h"

/* ---- streams, byte-exact as the providers send them --------------------- */

#define OAI_HEAD                                                                                   \
    "{\"id\":\"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG\",\"object\":\"chat.completion.chunk\","     \
    "\"created\":1741570283,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\","    \
    "\"system_fingerprint\":\"fp_06737a9306\","

/* Chat completions with stream_options.include_usage = true. */
static const char OAI_EV1[] =
    "data: " OAI_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
    "\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n";
static const char OAI_EV2[] =
    "data: " OAI_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},"
    "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n";
/* content that mentions usage, as JSON escapes it */
static const char OAI_EV3[] =
    "data: " OAI_HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there: "
    "{\\\"usage\\\": {\\\"prompt_tokens\\\": 1}}\"},\"logprobs\":null,\"finish_reason\":null}],"
    "\"usage\":null}\n\n";
static const char OAI_EV4[] =
    "data: " OAI_HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
    "\"finish_reason\":\"stop\"}],\"usage\":null}\n\n";
static const char OAI_USAGE[] =
    "data: " OAI_HEAD "\"choices\":[],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,"
    "\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":3,\"audio_tokens\":0},"
    "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"
    "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n";
static const char OAI_DONE[] = "data: [DONE]\n\n";

/* The same answer without include_usage: no usage member at all. */
static const char OAI_PLAIN[] =
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,"
    "\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_06737a9306\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]"
    "}"
    "\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,"
    "\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_06737a9306\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"content\":\"Hi\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,"
    "\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_06737a9306\",\"choices\":[{\"index\":0,"
    "\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n"
    "data: [DONE]\n\n";

static const char ANT_STREAM[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\","
    "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-3-5-sonnet-"
    "20241022\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,"
    "\"cache_creation_input_tokens\":7,\"cache_read_input_tokens\":11,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}\n\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"Hello\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"!\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
    "\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

/* ---- helpers ------------------------------------------------------------ */

static char *cat(const char *first, ...)
{
    va_list ap;
    size_t n = 0;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *))
        n += strlen(s);
    va_end(ap);
    char *r = malloc(n + 1), *p = r;
    assert_non_null(r);
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *))
        p = stpcpy(p, s);
    va_end(ap);
    return r;
}

/* Replaces every LF with `nl` (CRLF or CR framing). */
static char *reframe(const char *s, const char *nl)
{
    size_t n = 0, k = strlen(nl);
    for (const char *p = s; *p; p++)
        n += *p == '\n' ? k : 1;
    char *r = malloc(n + 1), *q = r;
    assert_non_null(r);
    for (const char *p = s; *p; p++) {
        if (*p == '\n') {
            memcpy(q, nl, k);
            q += k;
        } else {
            *q++ = *p;
        }
    }
    *q = '\0';
    return r;
}

struct result {
    buf_t out;
    int rc;
    struct sse_usage usage;
    int done;
};

/* Feeds `in` in pieces cut at the given offsets (ascending), then finishes. */
static struct result run_cuts(enum sse_dialect d, int strip, size_t max, const char *in, size_t n,
                              const size_t *cuts, size_t ncuts)
{
    struct result r = {.rc = 0};
    struct sse_filter *f = sse_filter_new(d, strip, max);
    assert_non_null(f);
    buf_init(&r.out, 1u << 24);
    size_t pos = 0;
    for (size_t c = 0; c <= ncuts && !r.rc; c++) {
        size_t end = c < ncuts ? cuts[c] : n;
        size_t before = r.out.len;
        r.rc = sse_filter_feed(f, in + pos, end - pos, &r.out);
        /* output only ever appends, never more than what came in so far */
        assert_true(r.out.len >= before);
        assert_true(r.out.len <= end);
        pos = end;
    }
    if (!r.rc)
        r.rc = sse_filter_finish(f, &r.out);
    sse_filter_usage_detail(f, &r.usage);
    r.done = sse_filter_saw_done(f);
    uint64_t p, c;
    int found;
    sse_filter_usage(f, &p, &c, &found);
    assert_int_equal(found, r.usage.found);
    if (found) {
        assert_int_equal(p, r.usage.prompt_tokens);
        assert_int_equal(c, r.usage.completion_tokens);
    }
    sse_filter_free(f);
    return r;
}

static void expect_bytes(const buf_t *out, const char *want, const char *what)
{
    size_t n = strlen(want);
    if (out->len != n || (n && memcmp(out->data, want, n) != 0)) {
        fprintf(stderr, "%s: got %zu bytes, want %zu\n--- got\n%.*s\n--- want\n%s\n", what,
                out->len, n, (int)out->len, out->data ? out->data : "", want);
        fail_msg("output differs (%s)", what);
    }
}

/* Feeds `in` whole, split at every offset, and one byte at a time; each run
 * must produce exactly `want` and the same usage. Returns the usage. */
static struct result check_all_splits(enum sse_dialect d, int strip, const char *in,
                                      const char *want)
{
    size_t n = strlen(in);
    struct result whole = run_cuts(d, strip, 1u << 20, in, n, NULL, 0);
    assert_int_equal(whole.rc, 0);
    expect_bytes(&whole.out, want, "whole");
    for (size_t k = 0; k <= n; k++) {
        struct result r = run_cuts(d, strip, 1u << 20, in, n, &k, 1);
        char what[64];
        snprintf(what, sizeof(what), "split at %zu", k);
        assert_int_equal(r.rc, 0);
        expect_bytes(&r.out, want, what);
        assert_memory_equal(&r.usage, &whole.usage, sizeof(r.usage));
        assert_int_equal(r.done, whole.done);
        buf_free(&r.out);
    }
    size_t *cuts = malloc((n ? n : 1) * sizeof(*cuts));
    assert_non_null(cuts);
    for (size_t k = 0; k < n; k++)
        cuts[k] = k + 1;
    struct result r = run_cuts(d, strip, 1u << 20, in, n, cuts, n ? n - 1 : 0);
    free(cuts);
    assert_int_equal(r.rc, 0);
    expect_bytes(&r.out, want, "byte by byte");
    assert_memory_equal(&r.usage, &whole.usage, sizeof(r.usage));
    buf_free(&r.out);
    buf_free(&whole.out);
    return whole;
}

/* ---- OpenAI ------------------------------------------------------------- */

static void test_openai_usage_passthrough_when_client_asked(void **state)
{
    (void)state;
    char *in = cat(OAI_EV1, OAI_EV2, OAI_EV3, OAI_EV4, OAI_USAGE, OAI_DONE, NULL);
    struct result r = check_all_splits(SSE_OPENAI, 0, in, in);
    assert_int_equal(r.usage.found, 1);
    assert_int_equal(r.usage.prompt_tokens, 19);
    assert_int_equal(r.usage.completion_tokens, 10);
    assert_int_equal(r.usage.cached_prompt_tokens, 3);
    assert_int_equal(r.done, 1);
    free(in);
}

static void test_openai_strip_drops_only_the_usage_chunk(void **state)
{
    (void)state;
    char *in = cat(OAI_EV1, OAI_EV2, OAI_EV3, OAI_EV4, OAI_USAGE, OAI_DONE, NULL);
    char *want = cat(OAI_EV1, OAI_EV2, OAI_EV3, OAI_EV4, OAI_DONE, NULL);
    struct result r = check_all_splits(SSE_OPENAI, 1, in, want);
    assert_int_equal(r.usage.found, 1);
    assert_int_equal(r.usage.prompt_tokens, 19);
    assert_int_equal(r.usage.completion_tokens, 10);
    assert_int_equal(r.done, 1);
    free(in);
    free(want);
}

static void test_openai_without_usage_is_untouched_and_finds_none(void **state)
{
    (void)state;
    struct result r = check_all_splits(SSE_OPENAI, 1, OAI_PLAIN, OAI_PLAIN);
    assert_int_equal(r.usage.found, 0);
    assert_int_equal(r.done, 1);
    uint64_t p = 99, c = 99;
    int found = 99;
    struct sse_filter *f = sse_filter_new(SSE_OPENAI, 1, 1024);
    assert_non_null(f);
    sse_filter_usage(f, &p, &c, &found);
    assert_int_equal(p, 0);
    assert_int_equal(c, 0);
    assert_int_equal(found, 0);
    sse_filter_usage(f, NULL, NULL, NULL);
    assert_int_equal(sse_filter_saw_done(f), 0);
    sse_filter_free(f);
    sse_filter_free(NULL);
}

static void test_openai_crlf_framing_strip_and_passthrough(void **state)
{
    (void)state;
    char *lf_in = cat(OAI_EV1, OAI_EV2, OAI_USAGE, OAI_DONE, NULL);
    char *lf_want = cat(OAI_EV1, OAI_EV2, OAI_DONE, NULL);
    char *in = reframe(lf_in, "\r\n"), *want = reframe(lf_want, "\r\n");
    struct result r = check_all_splits(SSE_OPENAI, 1, in, want);
    assert_int_equal(r.usage.prompt_tokens, 19);
    assert_int_equal(r.done, 1);
    r = check_all_splits(SSE_OPENAI, 0, in, in);
    assert_int_equal(r.usage.completion_tokens, 10);
    free(in);
    free(want);

    /* bare CR framing */
    in = reframe(lf_in, "\r");
    want = reframe(lf_want, "\r");
    r = check_all_splits(SSE_OPENAI, 1, in, want);
    assert_int_equal(r.usage.prompt_tokens, 19);
    assert_int_equal(r.done, 1);
    free(in);
    free(want);
    free(lf_in);
    free(lf_want);
}

static void test_openai_mixed_line_endings_and_usage_last_event(void **state)
{
    (void)state;
    /* The usage event ends with LF then CRLF (a blank line of its own); the
     * next event uses CR. Dropping it must take exactly its bytes. */
    const char *usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,"
                        "\"completion_tokens\":2}}\n\r\n";
    char *in = cat("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\r\r",
                   usage, "data: [DONE]\r\r", NULL);
    char *want = cat("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\r\r",
                     "data: [DONE]\r\r", NULL);
    struct result r = check_all_splits(SSE_OPENAI, 1, in, want);
    assert_int_equal(r.usage.prompt_tokens, 4);
    assert_int_equal(r.usage.completion_tokens, 2);
    assert_int_equal(r.done, 1);
    free(in);
    free(want);

    /* A dropped CR-terminated event followed by a lone LF: the LF is the
     * second half of its CRLF and goes with it. */
    in = cat("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\r\r\n",
             "data: [DONE]\n\n", NULL);
    r = check_all_splits(SSE_OPENAI, 1, in, "data: [DONE]\n\n");
    assert_int_equal(r.usage.prompt_tokens, 1);
    free(in);
}

static void test_openai_comments_fields_and_multiline_data(void **state)
{
    (void)state;
    /* a keep-alive comment, an id/event field, usage JSON split over two data
     * lines (joined with LF per the spec), "data" with no space */
    const char *usage = ": keep-alive\n"
                        "id: 7\n"
                        "data: {\"id\":\"c\",\"choices\":[],\n"
                        "data:\"usage\":\n"
                        "data: {\"prompt_tokens\":8,\"completion_tokens\":5}}\n\n";
    char *in = cat(": hello\n\n", OAI_EV2, usage, OAI_DONE, NULL);
    char *want = cat(": hello\n\n", OAI_EV2, OAI_DONE, NULL);
    struct result r = check_all_splits(SSE_OPENAI, 1, in, want);
    assert_int_equal(r.usage.found, 1);
    assert_int_equal(r.usage.prompt_tokens, 8);
    assert_int_equal(r.usage.completion_tokens, 5);
    free(in);
    free(want);

    /* blank lines between events are events of their own, kept */
    in = cat("\n\n", OAI_EV2, "\n", OAI_DONE, NULL);
    check_all_splits(SSE_OPENAI, 1, in, in);
    free(in);
}

static void test_openai_usage_with_choices_or_bad_json_is_kept(void **state)
{
    (void)state;
    /* usage on a content chunk (some compatible servers do this): recorded,
     * never dropped since it carries content */
    const char *ev = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},"
                     "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,"
                     "\"completion_tokens\":1,\"total_tokens\":4}}\n\n";
    struct result r = check_all_splits(SSE_OPENAI, 1, ev, ev);
    assert_int_equal(r.usage.prompt_tokens, 3);
    assert_int_equal(r.usage.completion_tokens, 1);

    /* broken JSON with a usage object: forwarded, no usage */
    const char *bad = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\n\n";
    r = check_all_splits(SSE_OPENAI, 1, bad, bad);
    assert_int_equal(r.usage.found, 0);

    /* usage members of the wrong type, negative */
    const char *odd = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":-1,"
                      "\"completion_tokens\":\"2\"}}\n\n";
    r = check_all_splits(SSE_OPENAI, 1, odd, "");
    assert_int_equal(r.usage.found, 0);

    /* "usage" as a string value is not a candidate */
    const char *str = "data: {\"choices\":[],\"kind\":\"usage\",\"usage\" : null}\n\n";
    r = check_all_splits(SSE_OPENAI, 1, str, str);
    assert_int_equal(r.usage.found, 0);

    /* [DONE] must be the whole data field */
    const char *notdone = "data: [DONE] soon\n\ndata: x[DONE]\n\n";
    r = check_all_splits(SSE_OPENAI, 1, notdone, notdone);
    assert_int_equal(r.done, 0);
}

static void test_openai_responses_api_usage(void **state)
{
    (void)state;
    const char *in =
        "event: response.created\n"
        "data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":"
        "\"in_progress\",\"usage\":null}}\n\n"
        "event: response.output_text.delta\n"
        "data: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n"
        "event: response.completed\n"
        "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":"
        "\"completed\",\"usage\":{\"input_tokens\":36,\"input_tokens_details\":{\"cached_tokens\":"
        "0},\"output_tokens\":87,\"total_tokens\":123}}}\n\n";
    struct result r = check_all_splits(SSE_OPENAI, 1, in, in);
    assert_int_equal(r.usage.prompt_tokens, 36);
    assert_int_equal(r.usage.completion_tokens, 87);
}

/* ---- Anthropic ---------------------------------------------------------- */

static void test_anthropic_usage_captured_and_never_stripped(void **state)
{
    (void)state;
    for (int strip = 0; strip <= 1; strip++) {
        struct result r = check_all_splits(SSE_ANTHROPIC, strip, ANT_STREAM, ANT_STREAM);
        assert_int_equal(r.usage.found, 1);
        assert_int_equal(r.usage.prompt_tokens, 25);
        assert_int_equal(r.usage.completion_tokens, 15);
        assert_int_equal(r.usage.cached_prompt_tokens, 11);
        assert_int_equal(r.usage.cache_creation_tokens, 7);
        assert_int_equal(r.done, 0);
    }
    char *crlf = reframe(ANT_STREAM, "\r\n");
    struct result r = check_all_splits(SSE_ANTHROPIC, 1, crlf, crlf);
    assert_int_equal(r.usage.prompt_tokens, 25);
    assert_int_equal(r.usage.completion_tokens, 15);
    free(crlf);
}

static void test_anthropic_later_delta_with_input_tokens_keeps_maximum(void **state)
{
    (void)state;
    /* newer API versions repeat input and cache counts in message_delta;
     * a delta that omits or zeroes them must not lose them */
    char *in = cat(ANT_STREAM,
                   "event: message_delta\n"
                   "data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"input_tokens\":0,"
                   "\"output_tokens\":20}}\n\n",
                   NULL);
    struct result r = check_all_splits(SSE_ANTHROPIC, 0, in, in);
    assert_int_equal(r.usage.prompt_tokens, 25);
    assert_int_equal(r.usage.completion_tokens, 20);
    assert_int_equal(r.usage.cached_prompt_tokens, 11);
    free(in);
}

static void test_anthropic_stream_cut_before_message_delta(void **state)
{
    (void)state;
    /* Only message_start arrived: prompt known, completion is its initial 1. */
    const char *cut = strstr(ANT_STREAM, "event: content_block_start");
    char *in = strndup(ANT_STREAM, (size_t)(cut - ANT_STREAM));
    struct result r = check_all_splits(SSE_ANTHROPIC, 0, in, in);
    assert_int_equal(r.usage.prompt_tokens, 25);
    assert_int_equal(r.usage.completion_tokens, 1);
    free(in);
}

/* ---- framing edge cases ------------------------------------------------- */

static void test_partial_event_held_until_blank_line_then_finish_flushes(void **state)
{
    (void)state;
    struct sse_filter *f = sse_filter_new(SSE_OPENAI, 1, 4096);
    assert_non_null(f);
    buf_t out;
    buf_init(&out, 1 << 20);
    const char *first = "data: {\"a\":1}\n";
    assert_int_equal(sse_filter_feed(f, first, strlen(first), &out), 0);
    assert_int_equal(out.len, 0); /* one line is not an event yet */
    assert_int_equal(sse_filter_feed(f, "", 0, &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(sse_filter_feed(f, "\ndata: x", 8, &out), 0);
    expect_bytes(&out, "data: {\"a\":1}\n\n", "first event");
    /* the stream ends inside an event that carries usage: forwarded as is,
     * usage still recorded */
    const char *tail = "\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,"
                       "\"completion_tokens\":3}}\n";
    assert_int_equal(sse_filter_feed(f, tail, strlen(tail), &out), 0);
    expect_bytes(&out, "data: {\"a\":1}\n\n", "still held");
    assert_int_equal(sse_filter_finish(f, &out), 0);
    char *want = cat("data: {\"a\":1}\n\n", "data: x", tail, NULL);
    expect_bytes(&out, want, "after finish");
    assert_int_equal(sse_filter_finish(f, &out), 0); /* idempotent */
    expect_bytes(&out, want, "second finish");
    uint64_t p, c;
    int found;
    sse_filter_usage(f, &p, &c, &found);
    assert_int_equal(found, 0); /* "data: x" + tail is not JSON */
    free(want);
    buf_free(&out);
    sse_filter_free(f);

    /* an unterminated final usage event whose data is whole JSON is counted */
    const char *last = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,"
                       "\"completion_tokens\":3}}\n";
    struct result r = run_cuts(SSE_OPENAI, 1, 4096, last, strlen(last), NULL, 0);
    assert_int_equal(r.rc, 0);
    expect_bytes(&r.out, last, "unterminated");
    assert_int_equal(r.usage.prompt_tokens, 2);
    assert_int_equal(r.usage.completion_tokens, 3);
    buf_free(&r.out);
}

static void test_oversized_event_fails_whole_and_split(void **state)
{
    (void)state;
    /* the second event is one byte too big */
    char *in = cat(OAI_EV2, OAI_EV1, OAI_DONE, NULL);
    size_t n = strlen(in), max = strlen(OAI_EV1) - 1;
    assert_true(strlen(OAI_EV2) <= max);
    for (size_t k = 0; k <= n; k++) {
        struct result r = run_cuts(SSE_OPENAI, 0, max, in, n, &k, 1);
        assert_int_equal(r.rc, -E2BIG);
        /* whatever went out before the error is a prefix of the input */
        assert_true(r.out.len <= strlen(OAI_EV2));
        if (r.out.len)
            assert_memory_equal(r.out.data, OAI_EV2, r.out.len);
        buf_free(&r.out);
    }
    /* exactly at the limit is fine */
    struct result r = run_cuts(SSE_OPENAI, 0, strlen(OAI_EV1), in, n, NULL, 0);
    assert_int_equal(r.rc, 0);
    expect_bytes(&r.out, in, "at limit");
    buf_free(&r.out);

    /* a partial event that outgrows the limit fails without a blank line */
    struct sse_filter *f = sse_filter_new(SSE_OPENAI, 0, 16);
    assert_non_null(f);
    buf_t out;
    buf_init(&out, 1 << 20);
    assert_int_equal(sse_filter_feed(f, "data: 0123456789", 16, &out), 0);
    assert_int_equal(sse_filter_feed(f, "x", 1, &out), -E2BIG);
    assert_int_equal(sse_filter_feed(f, "\n\n", 2, &out), -E2BIG); /* sticky */
    assert_int_equal(sse_filter_finish(f, &out), -E2BIG);
    assert_int_equal(out.len, 0);
    buf_free(&out);
    sse_filter_free(f);
    free(in);
}

static void test_output_buffer_limit_is_reported(void **state)
{
    (void)state;
    struct sse_filter *f = sse_filter_new(SSE_OPENAI, 0, 4096);
    assert_non_null(f);
    buf_t out;
    buf_init(&out, 8);
    assert_int_equal(sse_filter_feed(f, OAI_DONE, strlen(OAI_DONE), &out), -E2BIG);
    buf_free(&out);
    sse_filter_free(f);
}

static void test_bom_and_field_without_colon(void **state)
{
    (void)state;
    const char *in = "\xEF\xBB\xBF"
                     "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":6,"
                     "\"completion_tokens\":1}}\n\n"
                     "data\n\ndata: [DONE]\n\n";
    struct result r = check_all_splits(SSE_OPENAI, 1, in, "data\n\ndata: [DONE]\n\n");
    assert_int_equal(r.usage.prompt_tokens, 6);
    assert_int_equal(r.done, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_usage_passthrough_when_client_asked),
        cmocka_unit_test(test_openai_strip_drops_only_the_usage_chunk),
        cmocka_unit_test(test_openai_without_usage_is_untouched_and_finds_none),
        cmocka_unit_test(test_openai_crlf_framing_strip_and_passthrough),
        cmocka_unit_test(test_openai_mixed_line_endings_and_usage_last_event),
        cmocka_unit_test(test_openai_comments_fields_and_multiline_data),
        cmocka_unit_test(test_openai_usage_with_choices_or_bad_json_is_kept),
        cmocka_unit_test(test_openai_responses_api_usage),
        cmocka_unit_test(test_anthropic_usage_captured_and_never_stripped),
        cmocka_unit_test(test_anthropic_later_delta_with_input_tokens_keeps_maximum),
        cmocka_unit_test(test_anthropic_stream_cut_before_message_delta),
        cmocka_unit_test(test_partial_event_held_until_blank_line_then_finish_flushes),
        cmocka_unit_test(test_oversized_event_fails_whole_and_split),
        cmocka_unit_test(test_output_buffer_limit_is_reported),
        cmocka_unit_test(test_bom_and_field_without_colon),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
