// SPDX-License-Identifier: Apache-2.0
// LLM proxy stage after the body is validated: the `tool` role messages of a chat request
// are untrusted (a tool's output written back by the agent), so with guard.scan listing
// tool_messages each is scanned, and a finding blocks the request, sanitizes the message
// in the forwarded body, or flags the request (header + audit), as guard.action says.
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/json.h"
#include "guard/guard.h"
#include "http/parser.h"
#include "http/server.h"
#include "llm/guard.h"
#include "llm/llm.h"

/* Most tool messages (and text parts) one request may have scanned. */
#define MAX_PARTS 256

/* One scanned text: a tool message's content string, or one text part of it. */
struct part {
    long msg;              /* index in messages */
    struct json_span str;  /* the JSON string in the body */
    struct guard_result r; /* its verdict */
};

/* End of the value starting at p (the body is valid JSON already). */
static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;
    while (p < end) {
        char ch = *p;
        if (ch == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\')
                    p++;
            p++;
        } else if (ch == '{' || ch == '[') {
            depth++;
            p++;
        } else if (ch == '}' || ch == ']') {
            if (depth == 0)
                return p;
            depth--;
            p++;
        } else if (ch == ',' && depth == 0) {
            return p;
        } else {
            p++;
        }
        if (depth == 0 && p < end && (*p == ',' || *p == ']' || *p == '}'))
            return p;
    }
    return p;
}

/* Calls fn on each element of an array span; stops when fn returns < 0. */
static int each_element(const struct json_span *arr, int (*fn)(void *, long, struct json_span *),
                        void *ctx)
{
    const char *p = arr->p + 1, *end = arr->p + arr->len - 1;
    long i = 0;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ','))
            p++;
        if (p >= end)
            break;
        const char *e = skip_value(p, end);
        struct json_span v = {p, (size_t)(e - p), JS_NONE};
        v.kind = *p == '{' ? JS_OBJECT : *p == '[' ? JS_ARRAY : *p == '"' ? JS_STRING : JS_NUMBER;
        if (fn(ctx, i++, &v) < 0)
            return -1;
        p = e;
    }
    return 0;
}

struct walk {
    struct http_exchange *ex;
    const struct guard *g;
    long msg;
    size_t nparts;
    struct part *parts;
    int failed;
};

static int scan_string(struct walk *w, const struct json_span *str)
{
    if (w->nparts == MAX_PARTS)
        return 0; /* counted as unscanned: see llm_guard_tool_messages */
    char *text = malloc(str->len + 1);
    size_t n = 0;
    if (!text || json_string_decode(str, text, str->len + 1, &n) < 0) {
        /* a NUL byte in the content: scan the raw JSON text instead */
        free(text);
        text = NULL;
    }
    struct part *pt = &w->parts[w->nparts];
    pt->msg = w->msg;
    pt->str = *str;
    int rc = text ? guard_scan(w->g, text, n, &pt->r) : guard_scan(w->g, str->p, str->len, &pt->r);
    free(text);
    if (rc < 0) {
        w->failed = 1;
        return -1;
    }
    w->nparts++;
    return 0;
}

static int on_content_part(void *ctx, long i, struct json_span *part)
{
    (void)i;
    struct json_span text;
    if (part->kind == JS_OBJECT && json_get(part, "text", &text) == 1 && text.kind == JS_STRING)
        return scan_string(ctx, &text);
    return 0;
}

static int on_message(void *ctx, long i, struct json_span *m)
{
    struct walk *w = ctx;
    struct json_span role, content;
    char r[16];
    if (m->kind != JS_OBJECT || json_get(m, "role", &role) != 1 || role.kind != JS_STRING ||
        json_string_decode(&role, r, sizeof(r), NULL) < 0 || strcmp(r, "tool") != 0)
        return 0;
    if (json_get(m, "content", &content) != 1)
        return 0;
    w->msg = i;
    if (content.kind == JS_STRING)
        return scan_string(w, &content);
    if (content.kind == JS_ARRAY)
        return each_element(&content, on_content_part, w);
    return 0;
}

/* "a,b,c": the distinct rule ids of the injections among parts. */
static char *rule_list(struct http_exchange *ex, const struct part *parts, size_t n)
{
    buf_t b;
    buf_init(&b, 4096);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!parts[i].r.injection)
            continue;
        for (size_t k = 0; k < parts[i].r.nfindings; k++) {
            const char *id = parts[i].r.findings[k].rule;
            size_t len = strlen(id);
            const char *hit = b.data ? strstr(b.data, id) : NULL;
            if (hit && (hit == b.data || hit[-1] == ',') && (hit[len] == ',' || hit[len] == '\0'))
                continue;
            if (b.len)
                rc |= buf_append_lit(&b, ",");
            rc |= buf_append(&b, id, len);
        }
    }
    char *s = rc == 0 && b.data ? arena_strndup(&ex->arena, b.data, b.len) : NULL;
    buf_free(&b);
    return s;
}

/* The audit "guard" column: [{"message":i,"rule":…,"category":…,"action":…}, …]. */
static char *audit_json(struct http_exchange *ex, const struct part *parts, size_t n,
                        const char *action)
{
    buf_t b;
    buf_init(&b, 16384);
    int rc = buf_append_lit(&b, "[");
    /* the audit record keeps 4 KiB of a field: whole entries only, never cut JSON */
    for (size_t i = 0; i < n && b.len < 3600; i++)
        for (size_t k = 0; parts[i].r.injection && k < parts[i].r.nfindings && b.len < 3600; k++)
            rc |= buf_appendf(&b,
                              "%s{\"message\":%ld,\"rule\":\"%s\",\"category\":\"%s\","
                              "\"score\":%.4g,\"action\":\"%s\"}",
                              b.len > 1 ? "," : "", parts[i].msg, parts[i].r.findings[k].rule,
                              parts[i].r.findings[k].category, parts[i].r.score, action);
    rc |= buf_append_lit(&b, "]");
    char *s = rc == 0 ? arena_strndup(&ex->arena, b.data, b.len) : NULL;
    buf_free(&b);
    return s;
}

/* Rewrites the request body: each injected part's string replaced by its sanitized
 * text. 0, or -1 (out of memory / too large). */
static int sanitize_body(struct http_exchange *ex, const struct part *parts, size_t n)
{
    buf_t *body = &ex->req->body;
    buf_t nb, text, enc;
    buf_init(&nb, body->max ? body->max * 2 : (64u << 20));
    buf_init(&text, 64u << 20);
    buf_init(&enc, 64u << 20);
    const char *base = body->data;
    size_t from = 0;
    int rc = 0;
    char tool[32];
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!parts[i].r.injection)
            continue;
        size_t at = (size_t)(parts[i].str.p - base);
        char *dec = malloc(parts[i].str.len + 1);
        size_t dn = 0;
        if (!dec || json_string_decode(&parts[i].str, dec, parts[i].str.len + 1, &dn) < 0) {
            free(dec);
            rc = -1;
            break;
        }
        snprintf(tool, sizeof(tool), "messages[%ld]", parts[i].msg);
        text.len = 0;
        enc.len = 0;
        rc = guard_sanitize(dec, dn, &parts[i].r, tool, &text);
        free(dec);
        if (rc == 0)
            rc = buf_append_json_string(&enc, text.data, text.len);
        if (rc == 0)
            rc = buf_append(&nb, base + from, at - from);
        if (rc == 0)
            rc = buf_append(&nb, enc.data, enc.len);
        from = at + parts[i].str.len;
    }
    if (rc == 0)
        rc = buf_append(&nb, base + from, body->len - from);
    buf_free(&text);
    buf_free(&enc);
    if (rc != 0) {
        buf_free(&nb);
        return -1;
    }
    buf_free(body);
    *body = nb;
    return 0;
}

int llm_guard_tool_messages(struct http_exchange *ex, const struct json_span *messages,
                            int *rewritten)
{
    const struct config_guard *cg = &ex->cfg->guard;
    *rewritten = 0;
    if (!cg->guard || !(cg->scan & CONFIG_GUARD_TOOL_MESSAGES) || messages->kind != JS_ARRAY)
        return 0;
    struct walk w = {.ex = ex, .g = cg->guard};
    w.parts = malloc(MAX_PARTS * sizeof(*w.parts));
    if (!w.parts) {
        llm_error(ex, 500, "server_error", NULL, NULL, "out of memory");
        return -1;
    }
    if (each_element(messages, on_message, &w) < 0 && w.failed) {
        free(w.parts);
        llm_error(ex, 500, "server_error", "guard_error", NULL,
                  "the tool messages could not be scanned");
        return -1;
    }
    size_t hits = 0;
    long first = -1;
    double score = 0;
    for (size_t i = 0; i < w.nparts; i++)
        if (w.parts[i].r.injection) {
            hits++;
            if (first < 0)
                first = w.parts[i].msg;
            if (w.parts[i].r.score > score)
                score = w.parts[i].r.score;
        }
    if (hits == 0) {
        free(w.parts);
        return 0;
    }
    const char *rules = rule_list(ex, w.parts, w.nparts);
    const char *action = cg->action == CONFIG_GUARD_BLOCK      ? "block"
                         : cg->action == CONFIG_GUARD_SANITIZE ? "sanitize"
                                                               : "flag";
    ex->guard = audit_json(ex, w.parts, w.nparts, action);
    int rc = 0;
    if (cg->action == CONFIG_GUARD_BLOCK) {
        ex->decision = "deny";
        ex->decision_reason =
            arena_printf(&ex->arena, "guard: tool output withheld (rules %s)", rules);
        char param[48];
        snprintf(param, sizeof(param), "messages[%ld].content", first);
        llm_error(ex, 400, "invalid_request_error", "tool_output_withheld", param,
                  "the output of the tool in messages[%ld] was withheld: it reads as a prompt "
                  "injection (score %.2f; guard rules %s)",
                  first, score, rules ? rules : "?");
        rc = -1;
    } else if (cg->action == CONFIG_GUARD_SANITIZE) {
        if (sanitize_body(ex, w.parts, w.nparts) < 0) {
            llm_error(ex, 500, "server_error", NULL, NULL,
                      "out of memory while sanitizing the tool messages");
            rc = -1;
        } else {
            *rewritten = 1;
            http_add_header(ex, "x-portcullis-guard",
                            arena_printf(&ex->arena, "sanitized; rules=%s", rules));
        }
    } else {
        http_add_header(ex, "x-portcullis-guard",
                        arena_printf(&ex->arena, "flagged; rules=%s", rules));
    }
    free(w.parts);
    return rc;
}
