// SPDX-License-Identifier: Apache-2.0
// guard on A2A replies (guard.scan: [a2a_replies]): every text part an agent
// sends back — a Message, a Task's status message, history and artifacts, or
// one streamed event — is untrusted input for the agent that receives it, so
// each is scanned, and with sanitize rewritten in place.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "a2a/internal.h"
#include "guard/guard.h"

void a2a_scan_init(struct a2a_scan *s)
{
    memset(s, 0, sizeof *s);
    buf_init(&s->findings, 8192);
}

void a2a_scan_free(struct a2a_scan *s)
{
    buf_free(&s->findings);
}

static void note_rule(struct a2a_scan *s, const char *rule)
{
    size_t n = strlen(rule), have = strlen(s->rules);
    for (const char *p = s->rules; (p = strstr(p, rule)) != NULL; p += n)
        if ((p == s->rules || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return;
    if (have + n + 2 > sizeof s->rules)
        return;
    snprintf(s->rules + have, sizeof s->rules - have, "%s%s", have ? "," : "", rule);
}

struct walk {
    const struct guard *g;
    int sanitize;
    const char *source;
    const char *action;
    struct a2a_scan *s;
};

static int scan_part(struct walk *w, json_t *part)
{
    json_t *text = json_object_get(part, "text");
    if (!json_is_string(text))
        return 0;
    struct guard_result r;
    const char *t = json_string_value(text);
    size_t n = json_string_length(text);
    if (guard_scan(w->g, t, n, &r) < 0)
        return -1;
    struct a2a_scan *s = w->s;
    size_t index = s->ntexts++;
    if (!r.injection)
        return 0;
    s->nhits++;
    if (r.score > s->score)
        s->score = r.score;
    for (size_t k = 0; k < r.nfindings; k++) {
        note_rule(s, r.findings[k].rule);
        /* the audit record keeps 4 KiB of a field: whole entries only */
        if (s->findings.len < 3400 &&
            buf_appendf(&s->findings,
                        "%s{\"part\":%zu,\"rule\":\"%s\",\"category\":\"%s\",\"score\":%.4g,"
                        "\"action\":\"%s\"}",
                        s->findings.len ? "," : "", index, r.findings[k].rule,
                        r.findings[k].category, r.score, w->action) != 0)
            return -1;
    }
    if (!w->sanitize)
        return 0;
    buf_t out;
    buf_init(&out, (size_t)n * 2 + 65536);
    int rc = guard_sanitize(t, n, &r, w->source, &out);
    if (rc == 0) {
        json_t *nt = json_stringn(out.data ? out.data : "", out.len);
        rc = nt ? json_object_set_new(part, "text", nt) : -1;
        s->changed = 1;
    }
    buf_free(&out);
    return rc < 0 ? -1 : 0;
}

static int walk(struct walk *w, json_t *v, int depth, int in_parts)
{
    if (depth > A2A_MAX_DEPTH)
        return -1;
    if (json_is_object(v)) {
        if (in_parts && scan_part(w, v) < 0)
            return -1;
        const char *key;
        json_t *child;
        json_object_foreach(v, key, child)
        {
            if (json_is_object(child) || json_is_array(child))
                if (walk(w, child, depth + 1, json_is_array(child) && strcmp(key, "parts") == 0) <
                    0)
                    return -1;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            if (json_is_object(child) || json_is_array(child))
                if (walk(w, child, depth + 1, in_parts && json_is_object(child)) < 0)
                    return -1;
        }
    }
    return 0;
}

int a2a_reply_scan(json_t *v, const struct guard *g, int sanitize, const char *source,
                   const char *action, struct a2a_scan *s)
{
    struct walk w = {g, sanitize, source, action ? action : "flag", s};
    return walk(&w, v, 0, 0);
}
