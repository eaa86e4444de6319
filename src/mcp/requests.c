// SPDX-License-Identifier: Apache-2.0
// What a client may ask of the gateway once it has a session: initialize,
// ping, the lists (merged across servers, names prefixed when there are
// several, tools filtered by list_tool), tools/call after call_tool, and the
// requests routed to one server by name or URI (prompts/get, resources/*,
// completion/complete); plus the client's notifications and its answers to
// requests servers made through the gateway.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breaker/breaker.h"
#include "core/clock.h"
#include "core/log.h"
#include "mcp/core.h"

#define MCP_RATE_LIMITED (-32029) /* a rate limit (agent's or server's) refused the call */
#define MCP_BREAKER_OPEN (-32030) /* the server's circuit breaker refused the call */

static int multi(const struct mcp_core *c)
{
    return c->nups > 1;
}

static const char *sep(const struct mcp_core *c)
{
    return c->cfg->mcp.separator ? c->cfg->mcp.separator : "__";
}

/* ---- client requests ---------------------------------------------------------- */

static json_t *gateway_capabilities(struct mcp_core *c)
{
    json_t *caps = json_pack("{s:{s:b}}", "tools", "listChanged", 1);
    int prompts = 0, resources = 0, subscribe = 0, logging = 0, completions = 0;
    for (size_t i = 0; i < c->nups; i++) {
        json_t *uc = c->ups[i].caps;
        prompts |= json_object_get(uc, "prompts") != NULL;
        resources |= json_object_get(uc, "resources") != NULL;
        subscribe |= json_is_true(json_object_get(json_object_get(uc, "resources"), "subscribe"));
        logging |= json_object_get(uc, "logging") != NULL;
        completions |= json_object_get(uc, "completions") != NULL;
    }
    if (prompts)
        json_object_set_new(caps, "prompts", json_pack("{s:b}", "listChanged", 1));
    if (resources)
        json_object_set_new(caps, "resources",
                            json_pack("{s:b, s:b}", "subscribe", subscribe, "listChanged", 1));
    if (logging)
        json_object_set_new(caps, "logging", json_object());
    if (completions)
        json_object_set_new(caps, "completions", json_object());
    return caps;
}

void req_initialize(struct call *k)
{
    struct mcp_core *c = k->c;
    json_t *params = k->rpc->params;
    const char *want = json_string_value(json_object_get(params, "protocolVersion"));
    if (want == NULL) {
        hub_answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS,
                         "Invalid params: initialize needs params.protocolVersion");
        return;
    }
    const char *ver = mcp_version_supported(want) ? want : mcp_versions[0];
    struct session *s = hub_session_new(c, k->m->owner, ver);
    if (s == NULL) {
        hub_answer_error(k->m->t, 503, k->rpc->id, JSONRPC_INTERNAL_ERROR,
                         c->nsessions >= MAX_SESSIONS ? "too many open sessions, try later"
                                                      : "out of memory");
        return;
    }
    /* who the session belongs to, for decisions made without a request */
    s->who = calloc(1, sizeof *s->who);
    if (s->who != NULL) {
        s->who->agent = strdup(k->m->agent);
        s->who->chain = k->m->chain_len ? calloc(k->m->chain_len, sizeof *s->who->chain) : NULL;
        for (size_t i = 0; s->who->chain && i < k->m->chain_len; i++, s->who->chain_len++)
            s->who->chain[i] = strdup(k->m->chain[i]);
    }
    hub_guard_session_start(c, s, k->m); /* a delegated token's taint (containment) */
    json_t *cc = json_object_get(params, "capabilities");
    s->client_caps = json_is_object(cc) ? json_incref(cc) : json_object();
    json_t *res = json_pack("{s:s, s:o, s:{s:s, s:s}}", "protocolVersion", ver, "capabilities",
                            gateway_capabilities(c), "serverInfo", "name", "portcullis", "version",
                            GATEWAY_VERSION);
    buf_t ins;
    buf_init(&ins, 1 << 20);
    for (size_t i = 0; i < c->nups; i++)
        if (c->ups[i].instructions &&
            buf_appendf(&ins, "%s%s", ins.len ? "\n\n" : "", c->ups[i].instructions) != 0)
            break;
    if (ins.len)
        json_object_set_new(res, "instructions", json_string(ins.data));
    buf_free(&ins);
    mcp_ticket_set_session(k->m->t, s->id);
    log_msg(LOG_INFO, k->m->request_id, "mcp: session opened for %s (protocol %s)", k->m->agent,
            ver);
    hub_answer_result(k->m->t, k->rpc->id, res);
}

/* The client-facing name of an upstream's item. */
static void face_name(struct mcp_core *c, struct up *u, const char *name, char *out, size_t len)
{
    if (multi(c))
        snprintf(out, len, "%s%s%s", u->conf->name, sep(c), name);
    else
        snprintf(out, len, "%s", name);
}

/* Splits a client-facing name into upstream and upstream name. */
static struct up *route_name(struct mcp_core *c, const char *name, const char **inner)
{
    if (!multi(c)) {
        *inner = name;
        return c->nups ? &c->ups[0] : NULL;
    }
    size_t sl = strlen(sep(c));
    for (size_t i = 0; i < c->nups; i++) {
        size_t n = strlen(c->ups[i].conf->name);
        if (strncmp(name, c->ups[i].conf->name, n) == 0 && strncmp(name + n, sep(c), sl) == 0) {
            *inner = name + n + sl;
            return &c->ups[i];
        }
    }
    return NULL;
}

long req_target(struct mcp_core *c, const struct mcp_rpc *rpc)
{
    const char *inner;
    if (strcmp(rpc->method, "tools/call") != 0 && strcmp(rpc->method, "prompts/get") != 0)
        return -1;
    const char *name = json_string_value(json_object_get(rpc->params, "name"));
    struct up *u = name ? route_name(c, name, &inner) : NULL;
    return u ? (long)u->index : -1;
}

static int list_has(const json_t *list, const char *key, const char *v)
{
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it)
    {
        const char *s = json_string_value(json_object_get(it, key));
        if (s && strcmp(s, v) == 0)
            return 1;
    }
    return 0;
}

/* Lists are served from the servers' cached lists, merged in server order,
 * page_size visible items a page. The cursor says where the next page starts:
 * "pcl1.<list>.<server index>.<position in that server's list>". */
static void do_list(struct call *k, int kind)
{
    struct mcp_core *c = k->c;
    json_t *cursor = json_object_get(k->rpc->params, "cursor");
    size_t up0 = 0, pos0 = 0;
    if (cursor != NULL && !json_is_null(cursor)) {
        const char *cs = json_string_value(cursor);
        int ck = -1, n = 0;
        if (cs == NULL || sscanf(cs, "pcl1.%d.%zu.%zu%n", &ck, &up0, &pos0, &n) != 3 ||
            cs[n] != '\0' || ck != kind || up0 >= c->nups ||
            pos0 > json_array_size(c->ups[up0].lists[kind])) {
            hub_answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS,
                             "Invalid params: unknown cursor");
            return;
        }
    }
    json_t *items = json_array();
    size_t count = 0;
    char next[64] = "";
    for (size_t i = up0; i < c->nups && !next[0]; i++) {
        struct up *u = &c->ups[i];
        size_t n = json_array_size(u->lists[kind]);
        for (size_t j = i == up0 ? pos0 : 0; j < n; j++) {
            if (count == c->page_size) {
                snprintf(next, sizeof next, "pcl1.%d.%zu.%zu", kind, i, j);
                break;
            }
            json_t *it = json_array_get(u->lists[kind], j);
            const char *name = json_string_value(json_object_get(it, "name"));
            if (kind == L_TOOLS || kind == L_PROMPTS) {
                if (name == NULL)
                    continue;
                if (kind == L_TOOLS) {
                    struct verdict v;
                    hub_decide_session(c, k->m, k->s, "list_tool", u, name, &v);
                    if (v.allow != 1)
                        continue;
                }
                char face[512];
                face_name(c, u, name, face, sizeof face);
                json_t *copy = json_copy(it);
                json_object_set_new(copy, "name", json_string(face));
                json_array_append_new(items, copy);
            } else {
                json_array_append(items, it);
            }
            count++;
        }
    }
    json_t *res = json_pack("{s:o}", hub_list_key[kind], items);
    if (next[0])
        json_object_set_new(res, "nextCursor", json_string(next));
    hub_answer_result(k->m->t, k->rpc->id, res);
}

/* Sends the client's request on to u under a fresh id (and progress token). */
/* The pending request (NULL when it was answered at once: not sent). */
static struct pending *forward(struct call *k, struct up *u)
{
    struct mcp_core *c = k->c;
    char msg[300];
    if (u->state != UP_READY) {
        hub_up_error(u, msg, sizeof msg, NULL);
        if (strcmp(k->rpc->method, "tools/call") == 0)
            mcp_ticket_set_decision(k->m->t, "error", msg);
        json_t *data = json_pack("{s:s}", "server", u->conf->name);
        hub_answer_json(k->m->t, 200, mcp_rpc_error(k->rpc->id, JSONRPC_INTERNAL_ERROR, msg, data));
        json_decref(data);
        return NULL;
    }
    struct pending *p = hub_pending_new(c, u, P_CLIENT);
    if (p == NULL) {
        hub_answer_error(k->m->t, 500, k->rpc->id, JSONRPC_INTERNAL_ERROR, "out of memory");
        return NULL;
    }
    snprintf(p->session, sizeof p->session, "%s", k->s->id);
    p->client_id = json_incref(k->rpc->id);
    p->t = k->m->t;
    mcp_ticket_ref(p->t);
    p->accept_sse = k->m->accept_sse;
    if (strcmp(k->rpc->method, "tools/call") == 0) {
        const char *tn = json_string_value(json_object_get(k->rpc->params, "name"));
        size_t n = strlen(u->conf->name) + (tn ? strlen(tn) : 0) + 2;
        if ((p->tool = malloc(n)) != NULL)
            snprintf(p->tool, n, "%s/%s", u->conf->name, tn ? tn : "");
    }
    json_t *params = k->rpc->params;
    json_t *meta = json_object_get(params, "_meta");
    json_t *tok = json_object_get(meta, "progressToken");
    if (tok != NULL && (json_is_string(tok) || json_is_integer(tok))) {
        char gt[48];
        snprintf(gt, sizeof gt, "pcl-p-%llu", (unsigned long long)p->id);
        p->progress_token = json_incref(tok);
        json_object_set_new(meta, "progressToken", json_string(gt));
    }
    json_object_set_new(k->rpc->root, "id", json_integer((json_int_t)p->id));
    if (hub_send_as(u, json_incref(k->rpc->root), p->id, 1, k->m) < 0) {
        hub_up_error(u, msg, sizeof msg, NULL);
        hub_pending_fail(c, p, msg);
        return NULL;
    }
    return p;
}

/* The rate limits of a tools/call (src/breaker): the caller's chain
 * (tool_calls_per_minute) and the server's calls_per_minute. 1 when refused
 * (answered with a JSON-RPC error and audited), else 0. */
static int rate_limited(struct call *k, struct up *u, const char *name, const char *resource)
{
    struct breaker_set *set = k->m->cfg->breakers;
    if (set == NULL)
        return 0;
    const char *ids[BREAKER_MAX_NODES];
    size_t n = 0;
    for (size_t i = 0; i < k->m->chain_len && n < BREAKER_MAX_NODES - 1; i++)
        ids[n++] = k->m->chain[i];
    ids[n++] = k->m->agent;
    struct rl_refusal why;
    if (breaker_tool_admit(set, ids, n, u->conf->name, clock_mono_ns(), NULL, &why) != 1)
        return 0;
    char wait[32], msg[400], reason[200];
    breaker_format_duration(why.retry_after_ns, wait, sizeof wait);
    if (why.tokens == 3)
        snprintf(msg, sizeof msg,
                 "rate limit reached for MCP server '%s': limit %llu tool calls per minute; try "
                 "again in %s",
                 why.node, (unsigned long long)why.limit, wait);
    else
        snprintf(msg, sizeof msg,
                 "rate limit reached for agent '%s' on tool calls per minute: limit %llu; try "
                 "again in %s",
                 why.node, (unsigned long long)why.limit, wait);
    snprintf(reason, sizeof reason, "rate_limit_exceeded: %s %s", why.node,
             why.tokens == 3 ? "mcp_server" : "tool_calls");
    mcp_ticket_set_audit(k->m->t, "call_tool", resource, "deny", reason, NULL);
    json_t *data = json_pack("{s:s, s:s, s:s, s:I, s:I}", "type", "rate_limit_exceeded", "tool",
                             name, why.tokens == 3 ? "mcp_server" : "agent", why.node, "limit",
                             (json_int_t)why.limit, "retry_after_ms",
                             (json_int_t)((why.retry_after_ns + 999999) / 1000000));
    hub_answer_json(k->m->t, 200, mcp_rpc_error(k->rpc->id, MCP_RATE_LIMITED, msg, data));
    json_decref(data);
    return 1;
}

/* The server's circuit breaker (src/breaker): 1 when open (or probing) and
 * the call was answered with a JSON-RPC error and audited; else 0 with *bt
 * the admission (bt->b NULL without a breaker). */
static int breaker_refused(struct call *k, struct up *u, const char *name, const char *resource,
                           struct breaker_ticket *bt)
{
    struct breaker *b = breaker_set_mcp_server(k->m->cfg->breakers, u->conf->name);
    struct breaker_why why;
    if (b == NULL || breaker_admit(b, clock_mono_ns() / 1000000u, bt, &why) == 0)
        return 0;
    char msg[400], reason[200];
    if (why.reason == BREAKER_REFUSED_OPEN)
        snprintf(msg, sizeof msg,
                 "circuit breaker '%s' is open after %u consecutive errors; tools/call to it are "
                 "refused for another %llu ms",
                 breaker_id(b), why.errors, (unsigned long long)why.retry_after_ms);
    else
        snprintf(msg, sizeof msg, "circuit breaker '%s' is half-open: one probe call is in flight",
                 breaker_id(b));
    snprintf(reason, sizeof reason, "circuit_breaker_open: %s", breaker_id(b));
    mcp_ticket_set_audit(k->m->t, "call_tool", resource, "deny", reason, NULL);
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:I}", "type", "circuit_breaker_open", "tool", name, "breaker",
                  breaker_id(b), "retry_after_ms", (json_int_t)why.retry_after_ms);
    hub_answer_json(k->m->t, 200, mcp_rpc_error(k->rpc->id, MCP_BREAKER_OPEN, msg, data));
    json_decref(data);
    return 1;
}

static void do_tools_call(struct call *k)
{
    struct mcp_core *c = k->c;
    const char *name = json_string_value(json_object_get(k->rpc->params, "name"));
    char msg[1200];
    if (name == NULL) {
        hub_answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS,
                         "Invalid params: tools/call needs params.name");
        return;
    }
    json_t *args = json_object_get(k->rpc->params, "arguments");
    if (args != NULL && !json_is_object(args)) {
        hub_answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS,
                         "Invalid params: params.arguments must be an object");
        return;
    }
    const char *inner = NULL;
    struct up *u = route_name(c, name, &inner);
    if (u == NULL || (u->lists[L_TOOLS] && !list_has(u->lists[L_TOOLS], "name", inner) &&
                      !hub_tool_conf(u->conf, inner))) {
        snprintf(msg, sizeof msg, "Unknown tool: %.200s", name);
        mcp_ticket_set_audit(k->m->t, "call_tool", name, "error", "unknown tool", NULL);
        hub_answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS, msg);
        return;
    }
    char resource[512];
    snprintf(resource, sizeof resource, "%s/%s", u->conf->name, inner);
    struct verdict v;
    hub_decide_session(c, k->m, k->s, "call_tool", u, inner, &v);
    if (v.allow != 1) {
        if (v.allow < 0)
            snprintf(msg, sizeof msg, "tool '%.200s': the policy decision failed", name);
        else if (v.ids[0])
            snprintf(msg, sizeof msg,
                     "Forbidden tool: %.200s (Agent::\"%.100s\" may not Action::\"call_tool\" on "
                     "Tool::\"%.200s\": forbidden by policy %.200s)",
                     name, k->m->agent, resource, v.ids);
        else
            snprintf(msg, sizeof msg,
                     "Forbidden tool: %.200s (no policy permits Action::\"call_tool\" on "
                     "Tool::\"%.200s\" for Agent::\"%.100s\")",
                     name, resource, k->m->agent);
        char reason[300];
        snprintf(reason, sizeof reason, "policy_denied: %s%.200s",
                 v.ids[0] ? "forbid " : "no permit", v.ids);
        mcp_ticket_set_audit(k->m->t, "call_tool", resource, v.allow < 0 ? "error" : "deny", reason,
                             v.ids[0] ? v.ids : NULL);
        json_t *data =
            json_pack("{s:s, s:s, s:s}", "tool", name, "action", "call_tool", "resource", resource);
        hub_answer_json(k->m->t, 200, mcp_rpc_error(k->rpc->id, -32003, msg, data));
        json_decref(data);
        return;
    }
    /* the lethal trifecta: private data read + untrusted content read + this tool
     * can send data out (guard: {trifecta: enforce|warn}) */
    char legs[700], why[900];
    enum hub_trifecta tri = hub_guard_trifecta(c, k->m, k->s, u, inner, &v, legs, sizeof legs);
    if (tri == HUB_TRIFECTA_REFUSE) {
        snprintf(msg, sizeof msg,
                 "Refused tool: %.200s (%s; a Cedar policy annotated @trifecta(\"allow\") "
                 "may permit it)",
                 name, legs);
        mcp_ticket_set_audit(k->m->t, "call_tool", resource, "deny", legs, v.ids[0] ? v.ids : NULL);
        log_msg(LOG_INFO, k->m->request_id, "mcp: %s refused: %s", resource, legs);
        json_t *data =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "tool", name, "action", "call_tool",
                      "resource", resource, "reason", "lethal_trifecta", "private_data",
                      k->s->taint.private_source, "untrusted", k->s->taint.untrusted_source);
        hub_answer_json(k->m->t, 200, mcp_rpc_error(k->rpc->id, -32003, msg, data));
        json_decref(data);
        return;
    }
    const char *reason = c->cfg->policy.set || k->m->cfg->policy.set ? "policy_permit" : NULL;
    if (tri != HUB_TRIFECTA_NONE) {
        if (tri == HUB_TRIFECTA_WARN)
            snprintf(why, sizeof why, "trifecta_warn: %.700s", legs);
        else
            snprintf(why, sizeof why, "trifecta_permitted_by_policy %.100s: %.700s", v.ids, legs);
        reason = why;
        log_msg(LOG_WARN, k->m->request_id, "mcp: %s allowed (%s)", resource, why);
    }
    if (rate_limited(k, u, name, resource))
        return;
    struct breaker_ticket bt = {0};
    if (breaker_refused(k, u, name, resource, &bt))
        return;
    mcp_ticket_set_audit(k->m->t, "call_tool", resource, "allow", reason, v.ids[0] ? v.ids : NULL);
    json_object_set_new(k->rpc->params, "name", json_string(inner));
    struct pending *p = forward(k, u);
    if (bt.b != NULL) {
        if (p != NULL) { /* the answer ends it (hub_pending_breaker) */
            p->br = bt;
            p->br_start_ms = clock_mono_ns() / 1000000u;
            breaker_ref(bt.b);
        } else {
            uint64_t now = clock_mono_ns() / 1000000u;
            (void)breaker_done(&bt, BREAKER_ERROR, 0, now); /* not ready, or not sent */
        }
    }
}

static void do_prompts_get(struct call *k)
{
    const char *name = json_string_value(json_object_get(k->rpc->params, "name"));
    const char *inner = NULL;
    struct up *u = name ? route_name(k->c, name, &inner) : NULL;
    if (name == NULL || u == NULL ||
        (u->lists[L_PROMPTS] && !list_has(u->lists[L_PROMPTS], "name", inner))) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 name ? "Invalid params: unknown prompt %.200s"
                      : "Invalid params: prompts/get needs params.name%.0s",
                 name ? name : "");
        hub_answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS, msg);
        return;
    }
    json_object_set_new(k->rpc->params, "name", json_string(inner));
    forward(k, u);
}

/* Which upstream serves a resource URI: one listing it, else one whose
 * template's fixed prefix it starts with, else the only upstream. */
static struct up *route_uri(struct mcp_core *c, const char *uri)
{
    for (size_t i = 0; i < c->nups; i++)
        if (list_has(c->ups[i].lists[L_RESOURCES], "uri", uri))
            return &c->ups[i];
    struct up *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < c->nups; i++) {
        size_t j;
        json_t *it;
        json_array_foreach(c->ups[i].lists[L_TEMPLATES], j, it)
        {
            const char *t = json_string_value(json_object_get(it, "uriTemplate"));
            if (t == NULL)
                continue;
            size_t n = strcspn(t, "{");
            if (n > best_len && strncmp(uri, t, n) == 0) {
                best = &c->ups[i];
                best_len = n;
            }
        }
    }
    if (best)
        return best;
    return c->nups == 1 ? &c->ups[0] : NULL;
}

static void do_resource(struct call *k, int subscribe)
{
    const char *uri = json_string_value(json_object_get(k->rpc->params, "uri"));
    struct up *u = uri ? route_uri(k->c, uri) : NULL;
    if (u == NULL) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 uri ? "Invalid params: no server has resource %.200s"
                     : "Invalid params: needs params.uri%.0s",
                 uri ? uri : "");
        hub_answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS, msg);
        return;
    }
    if (subscribe > 0) {
        size_t i;
        json_t *v;
        int have = 0;
        json_array_foreach(k->s->subs, i, v) have |= strcmp(json_string_value(v), uri) == 0;
        if (!have)
            json_array_append_new(k->s->subs, json_string(uri));
    } else if (subscribe < 0) {
        size_t i;
        json_t *v;
        json_array_foreach(k->s->subs, i, v)
        {
            if (strcmp(json_string_value(v), uri) == 0) {
                json_array_remove(k->s->subs, i);
                break;
            }
        }
    }
    forward(k, u);
}

static void do_complete(struct call *k)
{
    json_t *ref = json_object_get(k->rpc->params, "ref");
    const char *type = json_string_value(json_object_get(ref, "type"));
    struct up *u = NULL;
    if (type && strcmp(type, "ref/prompt") == 0) {
        const char *name = json_string_value(json_object_get(ref, "name")), *inner = NULL;
        if (name && (u = route_name(k->c, name, &inner)) != NULL)
            json_object_set_new(ref, "name", json_string(inner));
    } else if (type && strcmp(type, "ref/resource") == 0) {
        const char *uri = json_string_value(json_object_get(ref, "uri"));
        u = uri ? route_uri(k->c, uri) : NULL;
        if (uri && !u && k->c->nups) {
            for (size_t i = 0; i < k->c->nups && !u; i++)
                if (list_has(k->c->ups[i].lists[L_TEMPLATES], "uriTemplate", uri))
                    u = &k->c->ups[i];
        }
    }
    if (u == NULL) {
        hub_answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS,
                         "Invalid params: completion/complete needs a ref to a known prompt or "
                         "resource");
        return;
    }
    forward(k, u);
}

static void do_set_level(struct call *k)
{
    struct mcp_core *c = k->c;
    if (!json_is_string(json_object_get(k->rpc->params, "level"))) {
        hub_answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS,
                         "Invalid params: logging/setLevel needs params.level");
        return;
    }
    k->s->logging = 1;
    for (size_t i = 0; i < c->nups; i++) {
        struct up *u = &c->ups[i];
        if (u->state != UP_READY || !json_object_get(u->caps, "logging"))
            continue;
        struct pending *p = hub_pending_new(c, u, P_DISCARD);
        if (p == NULL)
            continue;
        json_t *msg = json_pack("{s:s, s:I, s:s, s:O}", "jsonrpc", "2.0", "id", (json_int_t)p->id,
                                "method", "logging/setLevel", "params", k->rpc->params);
        if (hub_send_as(u, msg, p->id, 1, k->m) < 0)
            hub_pending_free(c, p);
    }
    hub_answer_result(k->m->t, k->rpc->id, json_object());
}

void req_request(struct call *k)
{
    const char *m = k->rpc->method;
    if (strcmp(m, "ping") == 0)
        hub_answer_result(k->m->t, k->rpc->id, json_object());
    else if (strcmp(m, "tools/list") == 0)
        do_list(k, L_TOOLS);
    else if (strcmp(m, "tools/call") == 0)
        do_tools_call(k);
    else if (strcmp(m, "prompts/list") == 0)
        do_list(k, L_PROMPTS);
    else if (strcmp(m, "prompts/get") == 0)
        do_prompts_get(k);
    else if (strcmp(m, "resources/list") == 0)
        do_list(k, L_RESOURCES);
    else if (strcmp(m, "resources/templates/list") == 0)
        do_list(k, L_TEMPLATES);
    else if (strcmp(m, "resources/read") == 0)
        do_resource(k, 0);
    else if (strcmp(m, "resources/subscribe") == 0)
        do_resource(k, 1);
    else if (strcmp(m, "resources/unsubscribe") == 0)
        do_resource(k, -1);
    else if (strcmp(m, "completion/complete") == 0)
        do_complete(k);
    else if (strcmp(m, "logging/setLevel") == 0)
        do_set_level(k);
    else {
        char msg[200];
        snprintf(msg, sizeof msg, "Method not found: %.100s", m);
        hub_answer_error(k->m->t, 200, k->rpc->id, JSONRPC_METHOD_NOT_FOUND, msg);
    }
}

void req_notification(struct call *k)
{
    struct mcp_core *c = k->c;
    const char *m = k->rpc->method;
    if (strcmp(m, "notifications/cancelled") == 0) {
        json_t *rid = json_object_get(k->rpc->params, "requestId");
        for (size_t b = 0; b < PEND_BUCKETS; b++) {
            for (struct pending *p = c->pend[b]; p; p = p->next) {
                if (p->kind != P_CLIENT || strcmp(p->session, k->s->id) != 0 ||
                    !json_equal(p->client_id, rid))
                    continue;
                json_t *params = json_deep_copy(k->rpc->params);
                json_object_set_new(params, "requestId", json_integer((json_int_t)p->id));
                hub_send_as(p->up,
                            json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method",
                                      "notifications/cancelled", "params", params),
                            0, 0, k->m);
                hub_pending_breaker(p, BREAKER_ABANDON); /* the client's doing */
                hub_pending_fail(c, p, "request cancelled");
                return;
            }
        }
    } else if (strcmp(m, "notifications/roots/list_changed") == 0) {
        for (size_t i = 0; i < c->nups; i++)
            if (c->ups[i].state == UP_READY)
                hub_send(&c->ups[i], json_incref(k->rpc->root), 0, 0);
    }
    /* notifications/initialized and others: nothing to do */
}

/* A client's answer to a request an upstream made through us. */
void req_response(struct call *k)
{
    struct mcp_core *c = k->c;
    uint64_t n = hub_token_id(k->rpc->id, "pcl-s2c-");
    for (struct s2c **q = &c->s2c; n && *q; q = &(*q)->next) {
        struct s2c *e = *q;
        if (e->n != n || strcmp(e->session, k->s->id) != 0)
            continue;
        json_object_set(k->rpc->root, "id", e->up_id);
        hub_send(e->up, json_incref(k->rpc->root), 0, 0);
        *q = e->next;
        json_decref(e->up_id);
        free(e);
        return;
    }
}
