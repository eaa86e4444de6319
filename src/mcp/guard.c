// SPDX-License-Identifier: Apache-2.0
// The guard in the MCP hub: every tools/call result an upstream sends back is scanned
// (text items, embedded resource text, strings of structuredContent) before the client
// sees it, and blocked, sanitized or flagged; the session's taint (private data read,
// untrusted content read) is updated from the answer; and before a call to a tool
// labelled exfiltration the lethal trifecta is checked against that taint.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "guard/guard.h"
#include "identity/identity.h"
#include "mcp/core.h"

/* The _meta key of a result the guard looked at (flag, sanitize, block). */
#define META_KEY "io.portcullis/guard"
/* Deepest structuredContent nesting walked; strings below are scanned as JSON text. */
#define MAX_DEPTH 32
/* Most findings listed in _meta; the audit keeps whole entries up to ~3.5 KiB. */
#define MAX_META_FINDINGS 64
#define AUDIT_MAX 3600

/* ---- labels ------------------------------------------------------------------- */

unsigned hub_tool_labels(const struct config_mcp_server *s, const char *tool)
{
    const struct config_mcp_tool *tc = hub_tool_conf(s, tool);
    unsigned labels = 0;
    for (size_t i = 0; tc && i < tc->nlabels; i++) {
        if (strcmp(tc->labels[i], "private_data") == 0)
            labels |= GUARD_LABEL_PRIVATE_DATA;
        else if (strcmp(tc->labels[i], "exfiltration") == 0)
            labels |= GUARD_LABEL_EXFILTRATION;
    }
    return labels;
}

/* ---- scanning an answer ------------------------------------------------------- */

struct screen {
    const struct guard *g;
    enum config_guard_action action;
    const char *source; /* "server/tool" */
    size_t hits;        /* strings that read as an injection */
    int failed;         /* a scan failed: the answer is withheld */
    int oom;
    double score;              /* highest score among them */
    struct guard_result first; /* the first injected string's verdict (for the taint) */
    buf_t rules;               /* "a,b": distinct rule ids */
    buf_t audit;               /* the audit column, a JSON array without its brackets */
    json_t *findings;          /* for _meta */
};

static void add_rule(struct screen *sc, const char *id)
{
    size_t len = strlen(id);
    for (const char *p = sc->rules.data; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == len && memcmp(p, id, len) == 0)
            return;
        p = e ? e + 1 : p + n;
    }
    if ((sc->rules.len && buf_append_lit(&sc->rules, ",") != 0) ||
        buf_append(&sc->rules, id, len) != 0)
        sc->oom = 1;
}

static const char *severity_name(enum guard_severity s)
{
    return s == GUARD_HIGH ? "high" : s == GUARD_MEDIUM ? "medium" : "low";
}

/* Scans the string *v (at `where`, e.g. "content[0].text"); for sanitize, returns the
 * replacement string (new reference) when it was rewritten, else NULL. */
static json_t *screen_string(struct screen *sc, const json_t *v, const char *where)
{
    struct guard_result r;
    const char *text = json_string_value(v);
    size_t len = json_string_length(v);
    if (guard_scan(sc->g, text, len, &r) < 0) {
        sc->failed = 1;
        return NULL;
    }
    if (!r.injection)
        return NULL;
    if (sc->hits++ == 0)
        sc->first = r;
    if (r.score > sc->score)
        sc->score = r.score;
    const char *act = sc->action == CONFIG_GUARD_BLOCK      ? "block"
                      : sc->action == CONFIG_GUARD_SANITIZE ? "sanitize"
                                                            : "flag";
    for (size_t k = 0; k < r.nfindings; k++) {
        const struct guard_finding *f = &r.findings[k];
        add_rule(sc, f->rule);
        if (sc->audit.len < AUDIT_MAX &&
            buf_appendf(&sc->audit,
                        "%s{\"item\":\"%s\",\"rule\":\"%s\",\"category\":\"%s\",\"score\":%.4g,"
                        "\"action\":\"%s\"}",
                        sc->audit.len ? "," : "", where, f->rule, f->category, r.score, act) != 0)
            sc->oom = 1;
        if (json_array_size(sc->findings) < MAX_META_FINDINGS)
            json_array_append_new(sc->findings,
                                  json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "item", where, "rule",
                                            f->rule, "category", f->category, "severity",
                                            severity_name(f->severity), "start",
                                            (json_int_t)f->start, "end", (json_int_t)f->end));
    }
    if (sc->action != CONFIG_GUARD_SANITIZE)
        return NULL;
    buf_t out;
    buf_init(&out, len * 2 + (1u << 20));
    json_t *clean = NULL;
    if (guard_sanitize(text, len, &r, sc->source, &out) == 0)
        clean = json_stringn(out.data ? out.data : "", out.len);
    buf_free(&out);
    if (clean == NULL)
        sc->oom = 1;
    return clean;
}

/* Every string inside a structuredContent value. */
static void screen_tree(struct screen *sc, json_t *v, char *where, size_t cap, int depth)
{
    size_t at = strlen(where);
    if (json_is_object(v)) {
        const char *key;
        json_t *it;
        json_object_foreach(v, key, it)
        {
            /* the path names the key in plain characters only (it goes into JSON) */
            size_t w = at;
            if (w + 1 < cap)
                where[w++] = '.';
            for (const char *k = key; *k && w + 1 < cap && k - key < 40; k++)
                where[w++] = (*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
                                     (*k >= '0' && *k <= '9') || *k == '_' || *k == '-'
                                 ? *k
                                 : '?';
            where[w] = '\0';
            if (json_is_string(it)) {
                json_t *clean = screen_string(sc, it, where);
                if (clean)
                    json_object_set_new(v, key, clean); /* replaces; the table keeps its shape */
            } else if (depth < MAX_DEPTH) {
                screen_tree(sc, it, where, cap, depth + 1);
            }
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *it = json_array_get(v, i);
            snprintf(where + at, cap - at, "[%zu]", i);
            if (json_is_string(it)) {
                json_t *clean = screen_string(sc, it, where);
                if (clean)
                    json_array_set_new(v, i, clean);
            } else if (depth < MAX_DEPTH) {
                screen_tree(sc, it, where, cap, depth + 1);
            }
        }
    }
    where[at] = '\0';
}

/* Scans result in place; sanitize rewrites the strings that read as injections. */
static void screen_result(struct screen *sc, json_t *result)
{
    json_t *content = json_object_get(result, "content");
    char where[256];
    for (size_t i = 0; i < json_array_size(content) && !sc->failed; i++) {
        json_t *item = json_array_get(content, i);
        json_t *holder = item, *s = json_object_get(item, "text");
        const char *type = json_string_value(json_object_get(item, "type"));
        snprintf(where, sizeof where, "content[%zu].text", i);
        if (type && strcmp(type, "resource") == 0) {
            holder = json_object_get(item, "resource");
            s = json_object_get(holder, "text");
            snprintf(where, sizeof where, "content[%zu].resource.text", i);
        }
        if (!json_is_string(s))
            continue; /* images, audio, blobs, resource links: nothing a model reads as text */
        json_t *clean = screen_string(sc, s, where);
        if (clean)
            json_object_set_new(holder, "text", clean);
    }
    json_t *sc_val = json_object_get(result, "structuredContent");
    if (sc_val && !sc->failed) {
        snprintf(where, sizeof where, "structuredContent");
        screen_tree(sc, sc_val, where, sizeof where, 0);
    }
}

static json_t *meta_of(struct screen *sc, const char *action)
{
    return json_pack("{s:s, s:b, s:f, s:s, s:O}", "action", action, "injection", 1, "score",
                     sc->score, "rules", sc->rules.data ? sc->rules.data : "", "findings",
                     sc->findings);
}

/* Sets result._meta[META_KEY] = meta (consumed). */
static void set_meta(json_t *result, json_t *meta)
{
    json_t *m = json_object_get(result, "_meta");
    if (!json_is_object(m)) {
        m = json_object();
        json_object_set_new(result, "_meta", m);
    }
    json_object_set_new(m, META_KEY, meta);
}

/* The action for u's tool outputs: 0 when they are not scanned. */
static int action_for(const struct config *cfg, const struct up *u)
{
    const struct config_guard *g = &cfg->guard;
    if (g->guard == NULL || u->conf->guard_action < 0)
        return 0;
    if (u->conf->guard_action > 0)
        return u->conf->guard_action;
    return (g->scan & CONFIG_GUARD_TOOL_OUTPUTS) ? (int)g->action : 0;
}

void hub_guard_answer(struct mcp_core *c, struct pending *p, json_t *root)
{
    struct up *u = p->up;
    const char *tool = p->tool + strlen(u->conf->name) + 1; /* "server/tool" */
    json_t *result = json_object_get(root, "result");
    struct session *s = hub_session_find(c, p->session);
    int action = json_is_object(result) ? action_for(c->cfg, u) : 0;
    struct screen sc = {
        .g = c->cfg->guard.guard, .action = (enum config_guard_action)action, .source = p->tool};
    int withheld = 0;
    buf_init(&sc.rules, 64u << 10);
    buf_init(&sc.audit, 64u << 10);
    if (action) {
        sc.findings = json_array();
        screen_result(&sc, result);
    }
    if (sc.hits || sc.failed) {
        const char *act = sc.failed || action == CONFIG_GUARD_BLOCK ? "block"
                          : action == CONFIG_GUARD_SANITIZE         ? "sanitize"
                                                                    : "flag";
        const char *rules = sc.rules.data ? sc.rules.data : "";
        char *audit = NULL;
        if (buf_reserve(&sc.audit, 3) == 0 && (audit = malloc(sc.audit.len + 3)) != NULL)
            snprintf(audit, sc.audit.len + 3, "[%.*s]", (int)sc.audit.len,
                     sc.audit.data ? sc.audit.data : "");
        if (audit)
            mcp_ticket_set_guard(p->t, audit);
        free(audit);
        if (sc.failed || action == CONFIG_GUARD_BLOCK) {
            char msg[900], reason[700];
            if (sc.failed)
                snprintf(msg, sizeof msg,
                         "portcullis guard withheld the output of tool %.200s: it could not be "
                         "scanned",
                         p->tool);
            else
                snprintf(msg, sizeof msg,
                         "portcullis guard withheld the output of tool %.200s: it reads as a "
                         "prompt injection (score %.2f; guard rules %.500s). Do not retry to "
                         "get it; tell the user the content was withheld.",
                         p->tool, sc.score, rules);
            snprintf(reason, sizeof reason, "guard: tool output withheld (rules %.600s)",
                     sc.failed ? "none: scan failed" : rules);
            json_t *blocked = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text",
                                        msg, "isError", 1);
            if (!sc.failed)
                set_meta(blocked, meta_of(&sc, act));
            json_object_set_new(root, "result", blocked);
            mcp_ticket_set_decision(p->t, "deny", reason);
            withheld = 1;
            log_msg(LOG_INFO, NULL, "mcp: guard withheld the output of %s (%s)", p->tool,
                    sc.failed ? "scan failed" : rules);
        } else {
            set_meta(result, meta_of(&sc, act));
        }
    }
    if (s != NULL && !withheld) {
        /* what the client now holds: private data from a successful call of a
         * private_data tool; untrusted content from an untrusted server, or any
         * answer the scanner found an injection in (even sanitized) */
        int ok = json_is_object(result) && !json_is_true(json_object_get(result, "isError"));
        unsigned labels = hub_tool_labels(u->conf, tool), before = s->taint.flags;
        guard_taint_note(&s->taint, p->tool, ok ? labels : 0,
                         json_is_object(result) && u->conf->untrusted, sc.hits ? &sc.first : NULL);
        if (s->taint.flags != before)
            hub_guard_publish(c, s, s->taint.flags);
    }
    json_decref(sc.findings);
    buf_free(&sc.rules);
    buf_free(&sc.audit);
}

/* ---- containment across agents ---------------------------------------------------- */

void hub_guard_publish(struct mcp_core *c, const struct session *s, unsigned flags)
{
    if (c->identity != NULL)
        identity_session_taint_set(c->identity, s->id, s->owner, flags, s->taint.private_source,
                                   s->taint.untrusted_source);
}

void hub_guard_session_start(struct mcp_core *c, struct session *s, const struct mcp_msg *m)
{
    struct guard_taint from;
    guard_taint_init(&from);
    from.flags = m->taint & (GUARD_TAINT_PRIVATE_DATA | GUARD_TAINT_UNTRUSTED);
    if (from.flags == 0)
        return;
    /* named as read before the delegation, in the session the token came from */
    if (from.flags & GUARD_TAINT_PRIVATE_DATA)
        snprintf(from.private_source, sizeof from.private_source, "%.70s, before delegation",
                 m->taint_private && *m->taint_private ? m->taint_private : "?");
    if (from.flags & GUARD_TAINT_UNTRUSTED)
        snprintf(from.untrusted_source, sizeof from.untrusted_source, "%.130s, before delegation",
                 m->taint_untrusted && *m->taint_untrusted ? m->taint_untrusted : "?");
    guard_taint_merge(&s->taint, &from);
    hub_guard_publish(c, s, s->taint.flags);
    log_msg(LOG_INFO, m->request_id, "mcp: session of %s starts tainted by its delegation (%s%s)",
            m->agent, from.flags & GUARD_TAINT_PRIVATE_DATA ? " private_data" : "",
            from.flags & GUARD_TAINT_UNTRUSTED ? " untrusted" : "");
}

/* ---- the lethal trifecta -------------------------------------------------------- */

enum hub_trifecta hub_guard_trifecta(struct mcp_core *c, const struct mcp_msg *m, struct session *s,
                                     struct up *u, const char *tool, const struct verdict *v,
                                     char *reason, size_t cap)
{
    const struct config_guard *g = &(m->cfg ? m->cfg : c->cfg)->guard;
    char res[512];
    reason[0] = '\0';
    /* what other routes added to this session (an A2A reply it was named on) */
    struct guard_taint more;
    guard_taint_init(&more);
    if (c->identity != NULL &&
        identity_session_taint_get(c->identity, s->id, s->owner, &more.flags, more.private_source,
                                   sizeof more.private_source, more.untrusted_source,
                                   sizeof more.untrusted_source) == 0 &&
        (more.flags & ~s->taint.flags) != 0) {
        log_msg(LOG_INFO, m->request_id, "mcp: session of %s gains taint from another route (%s)",
                m->agent ? m->agent : "?", more.untrusted_source);
        guard_taint_merge(&s->taint, &more);
    }
    if (!g->trifecta_enforce && !g->trifecta_warn)
        return HUB_TRIFECTA_NONE;
    snprintf(res, sizeof res, "%s/%s", u->conf->name, tool);
    if (!guard_trifecta(&s->taint, res, hub_tool_labels(u->conf, tool), reason, cap))
        return HUB_TRIFECTA_NONE;
    if (v->trifecta_allow)
        return HUB_TRIFECTA_PERMITTED;
    return g->trifecta_enforce ? HUB_TRIFECTA_REFUSE : HUB_TRIFECTA_WARN;
}
