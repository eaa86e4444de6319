// SPDX-License-Identifier: Apache-2.0
// SSE passthrough filter (see sse.h). Sits between the upstream's streamed
// answer and the client: finds event boundaries with memchr, forwards runs of
// complete events in one append, and JSON-parses only events that can carry
// usage (a non-null "usage" object) or are the [DONE] marker.
#include "llm/sse.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct sse_filter {
    enum sse_dialect dialect;
    bool strip;
    size_t max_event;
    buf_t pending; /* the start of an event not yet ended; max = max_event */
    buf_t scratch; /* an event's joined data field, while parsing it */

    /* framing state, carried across feeds */
    bool at_line_start; /* the previous byte ended a line (or nothing came yet) */
    bool prev_cr;       /* the previous byte was CR: a LF next is part of it */
    bool drop_lf;       /* a dropped event ended on CR: a LF next goes too */
    bool started;       /* some event was dispatched (for the BOM check) */

    int err;
    bool saw_done;
    struct sse_usage usage;
};

struct sse_filter *sse_filter_new(enum sse_dialect dialect, int strip_usage_chunk,
                                  size_t max_event_bytes)
{
    struct sse_filter *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->dialect = dialect;
    f->strip = strip_usage_chunk && dialect == SSE_OPENAI;
    f->max_event = max_event_bytes;
    buf_init(&f->pending, max_event_bytes);
    buf_init(&f->scratch, max_event_bytes);
    f->at_line_start = true;
    return f;
}

void sse_filter_free(struct sse_filter *f)
{
    if (!f)
        return;
    buf_free(&f->pending);
    buf_free(&f->scratch);
    free(f);
}

/* ---- one complete event ------------------------------------------------- */

/* Can the event hold a usage object? A cheap scan that rejects the
 * `"usage":null` every OpenAI chunk carries and `"usage"` used as a string
 * value. A literal "usage" inside a JSON string is escaped (\"usage\"), so
 * it never matches with both quotes bare. Where a line break intervenes
 * (data split over lines) it answers yes and lets the parser decide. */
static const char *find_usage_key(const char *p, const char *end)
{
    /* memchr for its 'g' (rare in JSON chunks) beats memmem several times */
    while (end - p >= 7) {
        const char *g = memchr(p + 4, 'g', (size_t)(end - p - 6));
        if (!g)
            return NULL;
        if (memcmp(g - 4, "\"usage\"", 7) == 0)
            return g - 4;
        p = g - 3;
    }
    return NULL;
}

static bool has_usage_object(const char *ev, size_t n)
{
    const char *p = ev, *end = ev + n;
    while ((p = find_usage_key(p, end)) != NULL) {
        const char *q = p += 7;
        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        if (q < end && (*q == '\r' || *q == '\n'))
            return true;
        if (q == end || *q != ':')
            continue;
        q++;
        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        if (q < end && (*q == '{' || *q == '\r' || *q == '\n'))
            return true;
    }
    return false;
}

/* Collects the event's data field into f->scratch per the SSE spec: data
 * lines joined with LF, one space after the colon removed. Returns 0, or <0
 * when the scratch buffer cannot hold it. */
static int collect_data(struct sse_filter *f, const char *ev, size_t n)
{
    const char *p = ev, *end = ev + n;
    bool any = false;
    buf_reset(&f->scratch);
    if (!f->started && n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3; /* a UTF-8 BOM may open the stream */
    if (p < end && *p == '\n')
        p++; /* the LF of a CRLF whose CR ended the previous event */
    while (p < end) {
        const char *eol = p;
        while (eol < end && *eol != '\n' && *eol != '\r')
            eol++;
        size_t len = (size_t)(eol - p);
        if (len == 0)
            break; /* blank line: end of the event */
        if (*p != ':') {
            const char *colon = memchr(p, ':', len);
            size_t flen = colon ? (size_t)(colon - p) : len;
            if (flen == 4 && memcmp(p, "data", 4) == 0) {
                const char *v = colon ? colon + 1 : eol;
                if (v < eol && *v == ' ')
                    v++;
                int rc = any ? buf_append(&f->scratch, "\n", 1) : 0;
                if (!rc)
                    rc = buf_append(&f->scratch, v, (size_t)(eol - v));
                if (rc)
                    return rc;
                any = true;
            }
        }
        p = eol;
        if (p < end && *p++ == '\r' && p < end && *p == '\n')
            p++;
    }
    return 0;
}

/* A non-negative integer member, or false. */
static bool get_count(json_t *obj, const char *key, uint64_t *v)
{
    json_t *x = json_object_get(obj, key);
    if (!json_is_integer(x) || json_integer_value(x) < 0)
        return false;
    *v = (uint64_t)json_integer_value(x);
    return true;
}

/* Records OpenAI-style usage ({prompt,completion}_tokens, or the Responses
 * API's {input,output}_tokens). */
static void record_openai(struct sse_filter *f, json_t *u)
{
    struct sse_usage *us = &f->usage;
    bool any = false;
    json_t *details;
    any |= get_count(u, "prompt_tokens", &us->prompt_tokens);
    any |= get_count(u, "completion_tokens", &us->completion_tokens);
    any |= get_count(u, "input_tokens", &us->prompt_tokens);
    any |= get_count(u, "output_tokens", &us->completion_tokens);
    details = json_object_get(u, "prompt_tokens_details");
    if (!json_is_object(details))
        details = json_object_get(u, "input_tokens_details");
    if (json_is_object(details))
        (void)get_count(details, "cached_tokens", &us->cached_prompt_tokens);
    if (any)
        us->found = 1;
}

/* Raises *dst to the member's value; counts that are cumulative never go
 * down, whatever order or subset of members an event repeats. */
static bool raise_count(json_t *obj, const char *key, uint64_t *dst)
{
    uint64_t v;
    if (!get_count(obj, key, &v))
        return false;
    if (v > *dst)
        *dst = v;
    return true;
}

/* Anthropic: message_start carries message.usage (input_tokens, and an
 * initial output_tokens); message_delta carries the cumulative output_tokens
 * (and, in newer API versions, input and cache counts too). */
static void record_anthropic(struct sse_filter *f, json_t *j)
{
    struct sse_usage *us = &f->usage;
    json_t *u = json_object_get(j, "usage");
    if (!json_is_object(u))
        u = json_object_get(json_object_get(j, "message"), "usage");
    if (!json_is_object(u))
        return;
    bool any = false;
    any |= raise_count(u, "input_tokens", &us->prompt_tokens);
    any |= raise_count(u, "output_tokens", &us->completion_tokens);
    (void)raise_count(u, "cache_read_input_tokens", &us->cached_prompt_tokens);
    (void)raise_count(u, "cache_creation_input_tokens", &us->cache_creation_tokens);
    if (any)
        us->found = 1;
}

/* Looks at one complete event: records usage and [DONE]. Returns true to
 * forward it, false to drop it. Never fails: an event it cannot parse is
 * forwarded untouched. */
static bool inspect_event(struct sse_filter *f, const char *ev, size_t n, bool may_drop)
{
    bool usage = has_usage_object(ev, n);
    bool done = f->dialect == SSE_OPENAI && !f->saw_done && n < 256 && memmem(ev, n, "[DONE]", 6);
    bool keep = true;
    if (!usage && !done)
        return true;
    if (collect_data(f, ev, n) != 0)
        return true;
    if (done && f->scratch.len == 6 && memcmp(f->scratch.data, "[DONE]", 6) == 0) {
        f->saw_done = true;
        return true;
    }
    if (!usage || f->scratch.len == 0)
        return true;
    json_t *j = json_loadb(f->scratch.data, f->scratch.len, 0, NULL);
    if (!json_is_object(j))
        goto out;
    if (f->dialect == SSE_ANTHROPIC) {
        record_anthropic(f, j);
        goto out;
    }
    json_t *u = json_object_get(j, "usage");
    if (json_is_object(u)) {
        json_t *choices = json_object_get(j, "choices");
        record_openai(f, u);
        if (may_drop && f->strip && json_is_array(choices) && json_array_size(choices) == 0)
            keep = false;
    } else {
        /* Responses API: response.completed has response.usage */
        u = json_object_get(json_object_get(j, "response"), "usage");
        if (json_is_object(u))
            record_openai(f, u);
    }
out:
    json_decref(j);
    return keep;
}

/* ---- framing ------------------------------------------------------------ */

/* The event in[ustart, end) (after f->pending, if any) just ended. Output
 * between *emit and ustart is decided and not yet appended. */
static int dispatch(struct sse_filter *f, const char *in, size_t *emit, size_t ustart, size_t end,
                    buf_t *out)
{
    const char *ev = in + ustart;
    size_t n = end - ustart;
    int rc;
    if (f->pending.len) {
        if ((rc = buf_append(&f->pending, ev, n)) != 0)
            return rc;
        ev = f->pending.data;
        n = f->pending.len;
    } else if (n > f->max_event) {
        return -E2BIG;
    }
    bool keep = inspect_event(f, ev, n, true);
    /* An event that opens with LF got it from the CRLF whose CR ended the
     * previous event: a drop leaves that byte with the previous event. */
    size_t lead = !keep && ev[0] == '\n';
    bool ends_cr = ev[n - 1] == '\r'; /* read before pending is reset */
    f->started = true;
    if (f->pending.len) {
        /* nothing of this call precedes the held event */
        rc = buf_append(out, f->pending.data, keep ? f->pending.len : lead);
        buf_reset(&f->pending);
        *emit = end;
    } else if (keep) {
        rc = 0;
    } else {
        rc = buf_append(out, in + *emit, ustart + lead - *emit);
        *emit = end;
    }
    if (!keep && ends_cr)
        f->drop_lf = true;
    return rc;
}

int sse_filter_feed(struct sse_filter *f, const char *in, size_t len, buf_t *out)
{
    size_t i = 0, ustart = 0, emit = 0;
    size_t nl = 0; /* position of the next LF at or after i, or len */
    bool nl_known = false;
    int rc = 0;

    if (f->err)
        return f->err;
    while (i < len) {
        if (f->drop_lf) {
            /* the LF completing a dropped event's final CRLF */
            f->drop_lf = false;
            if (in[i] == '\n') {
                f->prev_cr = false;
                ustart = emit = ++i;
                continue;
            }
        }
        if (!nl_known || nl < i) {
            const char *q = memchr(in + i, '\n', len - i);
            nl = q ? (size_t)(q - in) : len;
            nl_known = true;
        }
        const char *cr = memchr(in + i, '\r', nl - i);
        size_t t = cr ? (size_t)(cr - in) : nl;
        if (t == len) { /* no line end in the rest */
            f->at_line_start = false;
            f->prev_cr = false;
            break;
        }
        if (t > i) {
            f->at_line_start = false;
            f->prev_cr = false;
        }
        char c = in[t];
        i = t + 1;
        if (c == '\n' && f->prev_cr) {
            f->prev_cr = false; /* second half of CRLF */
            continue;
        }
        f->prev_cr = c == '\r';
        if (!f->at_line_start) {
            f->at_line_start = true; /* end of a non-empty line */
            continue;
        }
        /* a blank line: the event ends here */
        if ((rc = dispatch(f, in, &emit, ustart, i, out)) != 0)
            goto fail;
        ustart = i;
    }
    if (emit < ustart && (rc = buf_append(out, in + emit, ustart - emit)) != 0)
        goto fail;
    if (ustart < len && (rc = buf_append(&f->pending, in + ustart, len - ustart)) != 0)
        goto fail;
    return 0;
fail:
    f->err = rc;
    return rc;
}

int sse_filter_finish(struct sse_filter *f, buf_t *out)
{
    if (f->err)
        return f->err;
    if (!f->pending.len)
        return 0;
    (void)inspect_event(f, f->pending.data, f->pending.len, false);
    int rc = buf_append(out, f->pending.data, f->pending.len);
    if (rc) {
        f->err = rc;
        return rc;
    }
    buf_reset(&f->pending);
    return 0;
}

void sse_filter_usage(const struct sse_filter *f, uint64_t *prompt_tokens,
                      uint64_t *completion_tokens, int *found)
{
    if (prompt_tokens)
        *prompt_tokens = f->usage.found ? f->usage.prompt_tokens : 0;
    if (completion_tokens)
        *completion_tokens = f->usage.found ? f->usage.completion_tokens : 0;
    if (found)
        *found = f->usage.found;
}

void sse_filter_usage_detail(const struct sse_filter *f, struct sse_usage *u)
{
    *u = f->usage;
}

int sse_filter_saw_done(const struct sse_filter *f)
{
    return f->saw_done;
}
