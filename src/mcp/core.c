// SPDX-License-Identifier: Apache-2.0
// The hub core, on the hub's loop: client sessions, one connection per
// upstream server (initialize, capability and list caches), federation of
// tools/prompts/resources, Cedar decisions (list_tool, call_tool), and the
// id / progressToken / server-to-client request rewriting that lets many
// client sessions share one upstream connection.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "config/config.h"
#include "core/log.h"
#include "mcp/internal.h"
#include "identity/identity.h"
#include "policy/policy.h"

#define PEND_BUCKETS 256
#define PARK_MS 15000 /* longest a request waits for upstreams to start */
#define MAX_LIST_PAGES 1000
#define GATEWAY_VERSION "0.1.0"

enum up_state { UP_CONNECTING, UP_INIT, UP_LISTING, UP_READY, UP_DOWN, UP_FAILED };
enum list_kind { L_TOOLS, L_PROMPTS, L_RESOURCES, L_TEMPLATES, L_COUNT };

static const char *const list_method[L_COUNT] = {"tools/list", "prompts/list", "resources/list",
                                                 "resources/templates/list"};
static const char *const list_key[L_COUNT] = {"tools", "prompts", "resources", "resourceTemplates"};
static const char *const list_cap[L_COUNT] = {"tools", "prompts", "resources", "resources"};
static const char *const list_note[L_COUNT] = {
    "notifications/tools/list_changed", "notifications/prompts/list_changed",
    "notifications/resources/list_changed", "notifications/resources/list_changed"};

struct up {
    struct mcp_core *core;
    size_t index;
    const struct config_mcp_server *conf; /* in core->cfg */
    struct mcp_upstream *conn;
    enum up_state state;
    char why[160];
    json_t *caps, *info;
    char *instructions;
    json_t *lists[L_COUNT]; /* arrays; NULL until fetched */
    int listing;            /* first fetches outstanding */
    uint64_t opened_ms;
};

struct session {
    struct session *next;
    char id[80];
    char *owner;
    char version[32];
    uint64_t last_ms;
    struct mcp_ticket *get; /* the GET stream, or NULL */
    json_t *client_caps;
    json_t *subs; /* resource URIs subscribed to */
};

enum pkind { P_CLIENT, P_INIT, P_LIST, P_DISCARD };

struct pending {
    struct pending *next;
    uint64_t id;
    struct up *up;
    enum pkind kind;
    uint64_t deadline_ms;
    /* P_CLIENT */
    char session[80];
    json_t *client_id;
    struct mcp_ticket *t;
    int accept_sse, sse;
    json_t *progress_token;
    /* P_LIST */
    int list;
    json_t *acc;
    int pages;
    int notify;
};

/* A request an upstream made of a client (sampling, elicitation, roots). */
struct s2c {
    struct s2c *next;
    uint64_t n;
    struct up *up;
    json_t *up_id;
    char session[80];
};

struct parked {
    struct parked *next;
    struct mcp_msg *m;
};

struct mcp_core {
    uv_loop_t *loop;
    struct config *cfg;
    const struct mcp_transport_ops *ops;
    struct identity *identity;
    struct up *ups;
    size_t nups;
    struct session *sessions;
    struct pending *pend[PEND_BUCKETS];
    uint64_t next_id;
    struct s2c *s2c;
    uint64_t next_s2c;
    struct parked *parked;
    uv_timer_t sweep;
    int draining;
    uint64_t tools_gen;
    policy_entities_t *ents;
    const struct config *ents_cfg;
    uint64_t ents_gen;
};

static uint64_t now_ms(struct mcp_core *c)
{
    return uv_now(c->loop);
}

/* ---- small helpers -------------------------------------------------------- */

static void answer_json(struct mcp_ticket *t, int status, char *body)
{
    if (body == NULL)
        mcp_ticket_respond(t, 500, NULL, 0);
    else
        mcp_ticket_respond(t, status, body, strlen(body));
    free(body);
}

static void answer_error(struct mcp_ticket *t, int status, const json_t *id, int code,
                         const char *msg)
{
    answer_json(t, status, mcp_rpc_error(id, code, msg, NULL));
}

static void answer_result(struct mcp_ticket *t, const json_t *id, json_t *result)
{
    answer_json(t, 200, mcp_rpc_result(id, result));
    json_decref(result);
}

static int multi(const struct mcp_core *c)
{
    return c->nups > 1;
}

static const char *sep(const struct mcp_core *c)
{
    return c->cfg->mcp.separator ? c->cfg->mcp.separator : "__";
}

void mcp_core_set_identity(struct mcp_core *c, struct identity *id)
{
    c->identity = id;
}

/* Sends msg (consumed). With m, a client's request: servers configured with
 * identity_header get a gateway-signed token for the caller in it. */
static int up_send_as(struct up *u, json_t *msg, uint64_t cookie, int expects,
                      const struct mcp_msg *m)
{
    struct mcp_core *c = u->core;
    char *s = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (s == NULL || u->conn == NULL || c->ops->send == NULL) {
        free(s);
        return -1;
    }
    struct mcp_send_opts o = {.cookie = cookie, .expects_response = expects};
    struct mcp_header h;
    char *token = NULL;
    if (m != NULL && u->conf->identity_header != NULL && c->identity != NULL) {
        const char *chain1[1] = {m->agent};
        struct identity_principal p = {
            .agent = m->agent,
            .auth = m->auth,
            .chain = m->chain_len ? (const char **)m->chain : chain1,
            .chain_len = m->chain_len ? m->chain_len : 1,
            .scope = m->scope,
            .budget_usd = m->budget_usd,
            .credential_id = m->credential_id,
            .parent_request_id = m->parent_request_id,
            .root_request_id = m->root_request_id,
            .expires = m->expires,
            .root_key_id = m->root_key_id,
        };
        int anon = m->auth == NULL;
        token = identity_outbound_token(c->identity, m->cfg->identity.issuer, anon ? NULL : &p,
                                        u->conf->name, m->request_id, 300);
        if (token != NULL) {
            h.name = u->conf->identity_header;
            h.value = token;
            o.headers = &h;
            o.nheaders = 1;
        }
    }
    int rc = c->ops->send(u->conn, s, strlen(s), &o);
    free(s);
    free(token);
    return rc;
}

static int up_send(struct up *u, json_t *msg, uint64_t cookie, int expects)
{
    return up_send_as(u, msg, cookie, expects, NULL);
}

static void up_error_msg(struct up *u, char *out, size_t len, const char *what)
{
    const char *st = u->state == UP_DOWN     ? "is down"
                     : u->state == UP_FAILED ? "failed to start"
                                             : "is not ready";
    snprintf(out, len, "MCP server '%s' %s%s%s%s%s", u->conf->name, st, u->why[0] ? " (" : "",
             u->why, u->why[0] ? ")" : "", what ? what : "");
}

/* ---- pending requests ------------------------------------------------------ */

static struct pending *pending_new(struct mcp_core *c, struct up *u, enum pkind kind)
{
    struct pending *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->id = ++c->next_id;
    p->up = u;
    p->kind = kind;
    p->deadline_ms = now_ms(c) + (u->conf->timeout_ms ? u->conf->timeout_ms : 60000);
    size_t b = p->id % PEND_BUCKETS;
    p->next = c->pend[b];
    c->pend[b] = p;
    return p;
}

static struct pending *pending_find(struct mcp_core *c, uint64_t id)
{
    for (struct pending *p = c->pend[id % PEND_BUCKETS]; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static void pending_free(struct mcp_core *c, struct pending *p)
{
    struct pending **pp = &c->pend[p->id % PEND_BUCKETS];
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp)
        *pp = p->next;
    if (p->client_id)
        json_decref(p->client_id);
    if (p->progress_token)
        json_decref(p->progress_token);
    if (p->acc)
        json_decref(p->acc);
    if (p->t)
        mcp_ticket_unref(p->t);
    free(p);
}

/* Answers a client's pending request with an error and forgets it. */
static void pending_fail(struct mcp_core *c, struct pending *p, const char *msg)
{
    if (p->kind == P_CLIENT && p->t) {
        json_t *data = json_pack("{s:s}", "server", p->up->conf->name);
        char *body = mcp_rpc_error(p->client_id, JSONRPC_INTERNAL_ERROR, msg, data);
        json_decref(data);
        if (body && p->sse) {
            mcp_ticket_event(p->t, body, strlen(body));
            mcp_ticket_finish(p->t);
        } else if (body) {
            mcp_ticket_respond(p->t, 200, body, strlen(body));
        }
        if (body == NULL)
            mcp_ticket_respond(p->t, 500, NULL, 0);
        free(body);
    }
    pending_free(c, p);
}

/* The newest client request in flight on u whose answer is still open: the
 * one an upstream's log messages and requests most likely belong to. */
static struct pending *latest_call(struct mcp_core *c, struct up *u)
{
    struct pending *best = NULL;
    for (size_t b = 0; b < PEND_BUCKETS; b++)
        for (struct pending *p = c->pend[b]; p; p = p->next)
            if (p->kind == P_CLIENT && p->up == u && (!best || p->id > best->id) &&
                mcp_ticket_open(p->t))
                best = p;
    return best;
}

/* ---- sessions --------------------------------------------------------------- */

static struct session *session_find(struct mcp_core *c, const char *id)
{
    for (struct session *s = c->sessions; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static void session_free(struct mcp_core *c, struct session *s)
{
    struct session **pp = &c->sessions;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    if (s->get) {
        mcp_ticket_finish(s->get);
        mcp_ticket_unref(s->get);
    }
    for (struct s2c **q = &c->s2c; *q;) {
        struct s2c *e = *q;
        if (strcmp(e->session, s->id) == 0) {
            *q = e->next;
            json_decref(e->up_id);
            free(e);
        } else {
            q = &e->next;
        }
    }
    json_decref(s->client_caps);
    json_decref(s->subs);
    free(s->owner);
    free(s);
}

static struct session *session_new(struct mcp_core *c, const char *owner, const char *version)
{
    unsigned char rnd[24];
    struct session *s = calloc(1, sizeof *s);
    if (s == NULL || getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(s->id + 2 * i, 3, "%02x", rnd[i]);
    s->owner = strdup(owner);
    s->subs = json_array();
    snprintf(s->version, sizeof s->version, "%s", version);
    s->last_ms = now_ms(c);
    if (s->owner == NULL || s->subs == NULL) {
        free(s->owner);
        json_decref(s->subs);
        free(s);
        return NULL;
    }
    s->next = c->sessions;
    c->sessions = s;
    return s;
}

size_t mcp_core_session_count(const struct mcp_core *c)
{
    size_t n = 0;
    for (const struct session *s = c->sessions; s; s = s->next)
        n++;
    return n;
}

/* Sends a message to a client session: on the stream of the request it
 * belongs to when the client accepts one, else on the session's GET stream.
 * -1 when neither is open. */
static int to_client(struct mcp_core *c, const char *session, struct pending *p, json_t *msg)
{
    char *s = json_dumps(msg, JSON_COMPACT);
    int rc = -1;
    if (s == NULL)
        return -1;
    if (p != NULL && p->t && p->accept_sse && mcp_ticket_event(p->t, s, strlen(s)) == 0) {
        p->sse = 1;
        rc = 0;
    } else {
        struct session *ss = session_find(c, session);
        if (ss && ss->get && mcp_ticket_event(ss->get, s, strlen(s)) == 0)
            rc = 0;
    }
    free(s);
    return rc;
}

static void broadcast(struct mcp_core *c, const char *method, json_t *params)
{
    json_t *msg = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
    if (msg && params)
        json_object_set(msg, "params", params);
    char *s = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    for (struct session *ss = c->sessions; s && ss; ss = ss->next)
        if (ss->get)
            mcp_ticket_event(ss->get, s, strlen(s));
    free(s);
}

/* ---- policy ---------------------------------------------------------------- */

static const struct config_mcp_tool *tool_conf(const struct config_mcp_server *s, const char *t)
{
    for (size_t i = 0; i < s->ntools; i++)
        if (strcmp(s->tools[i].name, t) == 0)
            return &s->tools[i];
    return NULL;
}

static json_t *tool_entity(const struct config_mcp_server *s, const char *tool)
{
    const struct config_mcp_tool *tc = tool_conf(s, tool);
    json_t *labels = json_array();
    for (size_t i = 0; tc && i < tc->nlabels; i++)
        json_array_append_new(labels, json_string(tc->labels[i]));
    char id[512];
    snprintf(id, sizeof id, "%s/%s", s->name, tool);
    return json_pack("{s:{s:s, s:s}, s:{s:s, s:o, s:s}, s:[]}", "uid", "type", "Tool", "id", id,
                     "attrs", "server", s->name, "labels", labels, "trust",
                     s->untrusted ? "untrusted" : "trusted", "parents");
}

/* The entity store for decisions: the snapshot's agents and models plus a
 * Tool:: entity for every tool known (configured or listed upstream). */
static const policy_entities_t *entities(struct mcp_core *c, const struct config *cfg)
{
    if (c->ents && c->ents_cfg == cfg && c->ents_gen == c->tools_gen)
        return c->ents;
    json_t *arr = config_policy_entities_json(cfg);
    json_t *seen = json_object();
    if (arr == NULL || seen == NULL) {
        json_decref(arr);
        json_decref(seen);
        return c->ents;
    }
    for (size_t i = 0; i < c->nups; i++) {
        struct up *u = &c->ups[i];
        const struct config_mcp_server *s = config_find_mcp_server(cfg, u->conf->name);
        if (s == NULL)
            s = u->conf;
        for (size_t k = 0; k < s->ntools; k++) {
            char id[512];
            snprintf(id, sizeof id, "%s/%s", s->name, s->tools[k].name);
            if (!json_object_get(seen, id)) {
                json_object_set_new(seen, id, json_true());
                json_array_append_new(arr, tool_entity(s, s->tools[k].name));
            }
        }
        size_t j;
        json_t *t;
        json_array_foreach(u->lists[L_TOOLS], j, t)
        {
            const char *name = json_string_value(json_object_get(t, "name"));
            char id[512];
            if (name == NULL)
                continue;
            snprintf(id, sizeof id, "%s/%s", s->name, name);
            if (!json_object_get(seen, id)) {
                json_object_set_new(seen, id, json_true());
                json_array_append_new(arr, tool_entity(s, name));
            }
        }
    }
    char err[256];
    policy_entities_t *e = policy_entities_load_json(arr, err, sizeof err);
    json_decref(arr);
    json_decref(seen);
    if (e == NULL) {
        log_msg(LOG_ERROR, NULL, "mcp: cannot build the policy entities: %s", err);
        return c->ents;
    }
    policy_entities_free(c->ents);
    c->ents = e;
    c->ents_cfg = cfg;
    c->ents_gen = c->tools_gen;
    return e;
}

struct verdict {
    int allow;     /* 1 allow, 0 deny, -1 evaluation failed */
    char ids[512]; /* determining policies */
};

static void decide(struct mcp_core *c, const struct mcp_msg *m, const char *action, struct up *u,
                   const char *tool, struct verdict *v)
{
    const struct config_policy *pol = &m->cfg->policy;
    v->allow = 1;
    v->ids[0] = '\0';
    if (pol->set == NULL)
        return;
    json_t *chain = json_array();
    for (size_t i = 0; i < m->chain_len; i++)
        json_array_append_new(chain, json_string(m->chain[i]));
    json_t *ctx =
        json_pack("{s:o, s:I, s:s}", "chain", chain, "depth",
                  (json_int_t)(m->chain_len > 0 ? m->chain_len - 1 : 0), "server", u->conf->name);
    char rid[512];
    snprintf(rid, sizeof rid, "%s/%s", u->conf->name, tool);
    struct policy_request req = {
        .principal = policy_uid_make("Agent", m->agent),
        .action = policy_uid_make("Action", action),
        .resource = policy_uid_make("Tool", rid),
        .context = ctx,
    };
    struct policy_decision d;
    int rc = ctx ? policy_decide(pol->set, entities(c, m->cfg), &req, &d) : -1;
    json_decref(ctx);
    if (rc < 0) {
        if (ctx)
            policy_decision_free(&d);
        v->allow = -1;
        return;
    }
    size_t off = 0;
    for (size_t i = 0; i < d.nreasons && off < sizeof v->ids; i++)
        off += (size_t)snprintf(v->ids + off, sizeof v->ids - off, "%s%s", i ? ", " : "",
                                d.reasons[i]);
    v->allow = d.allow || (pol->default_allow && d.nreasons == 0);
    policy_decision_free(&d);
}

/* ---- upstream lists ------------------------------------------------------- */

static void unpark(struct mcp_core *c);

static void fetch_list(struct up *u, int kind, const char *cursor, json_t *acc, int pages,
                       int notify)
{
    struct mcp_core *c = u->core;
    struct pending *p = pending_new(c, u, P_LIST);
    if (p == NULL) {
        json_decref(acc);
        return;
    }
    p->list = kind;
    p->acc = acc ? acc : json_array();
    p->pages = pages;
    p->notify = notify;
    json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : json_object();
    json_t *msg = json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", (json_int_t)p->id,
                            "method", list_method[kind], "params", params);
    if (up_send(u, msg, p->id, 1) < 0) {
        if (u->listing > 0 && !notify)
            u->listing--;
        pending_free(c, p);
    }
}

static void up_settle_listing(struct up *u)
{
    if (u->state == UP_LISTING && u->listing <= 0) {
        u->state = UP_READY;
        log_msg(LOG_INFO, NULL, "mcp: server %s ready (%zu tools)", u->conf->name,
                json_array_size(u->lists[L_TOOLS]));
        unpark(u->core);
    }
}

static void on_list_answer(struct mcp_core *c, struct pending *p, json_t *root)
{
    struct up *u = p->up;
    json_t *res = json_object_get(root, "result");
    json_t *items = json_object_get(res, list_key[p->list]);
    json_t *next = json_object_get(res, "nextCursor");
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        if (json_is_object(it))
            json_array_append(p->acc, it);
    }
    if (json_is_string(next) && json_string_length(next) > 0 && p->pages < MAX_LIST_PAGES &&
        res != NULL) {
        json_t *acc = json_incref(p->acc);
        fetch_list(u, p->list, json_string_value(next), acc, p->pages + 1, p->notify);
        pending_free(c, p);
        return;
    }
    if (res != NULL) {
        json_decref(u->lists[p->list]);
        u->lists[p->list] = json_incref(p->acc);
        if (p->list == L_TOOLS)
            c->tools_gen++;
    }
    int notify = p->notify, kind = p->list;
    pending_free(c, p);
    if (notify)
        broadcast(c, list_note[kind], NULL);
    else if (u->listing > 0) {
        u->listing--;
        up_settle_listing(u);
    }
}

/* ---- upstream lifecycle ----------------------------------------------------- */

static void send_initialize(struct up *u)
{
    struct mcp_core *c = u->core;
    struct pending *p = pending_new(c, u, P_INIT);
    if (p == NULL)
        return;
    json_t *msg = json_pack("{s:s, s:I, s:s, s:{s:s, s:{s:{s:b}, s:{}, s:{}}, s:{s:s, s:s}}}",
                            "jsonrpc", "2.0", "id", (json_int_t)p->id, "method", "initialize",
                            "params", "protocolVersion", mcp_versions[0], "capabilities", "roots",
                            "listChanged", 1, "sampling", "elicitation", "clientInfo", "name",
                            "portcullis", "version", GATEWAY_VERSION);
    u->state = UP_INIT;
    if (up_send(u, msg, p->id, 1) < 0) {
        pending_free(c, p);
        u->state = UP_FAILED;
        snprintf(u->why, sizeof u->why, "could not send initialize");
        unpark(c);
    }
}

static void on_init_answer(struct mcp_core *c, struct pending *p, json_t *root)
{
    struct up *u = p->up;
    pending_free(c, p);
    json_t *res = json_object_get(root, "result");
    if (!json_is_object(res)) {
        const char *m =
            json_string_value(json_object_get(json_object_get(root, "error"), "message"));
        u->state = UP_FAILED;
        snprintf(u->why, sizeof u->why, "initialize failed: %.120s", m ? m : "no result");
        log_msg(LOG_WARN, NULL, "mcp: server %s: %s", u->conf->name, u->why);
        unpark(c);
        return;
    }
    const char *ver = json_string_value(json_object_get(res, "protocolVersion"));
    if (!mcp_version_supported(ver))
        log_msg(LOG_WARN, NULL, "mcp: server %s speaks protocol version %.40s", u->conf->name,
                ver ? ver : "(none)");
    json_decref(u->caps);
    json_decref(u->info);
    free(u->instructions);
    u->caps = json_incref(json_object_get(res, "capabilities"));
    u->info = json_incref(json_object_get(res, "serverInfo"));
    const char *ins = json_string_value(json_object_get(res, "instructions"));
    u->instructions = ins ? strdup(ins) : NULL;
    up_send(u, json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", "notifications/initialized"), 0,
            0);
    if (c->ops->initialized && u->conn)
        c->ops->initialized(u->conn, ver ? ver : mcp_versions[0]);
    u->state = UP_LISTING;
    u->why[0] = '\0';
    u->listing = 0;
    for (int k = 0; k < L_COUNT; k++)
        if (json_object_get(u->caps, list_cap[k]))
            u->listing++;
    int n = u->listing;
    for (int k = 0; k < L_COUNT; k++)
        if (json_object_get(u->caps, list_cap[k]))
            fetch_list(u, k, NULL, NULL, 0, 0);
    (void)n;
    up_settle_listing(u);
}

static void up_fail_pendings(struct mcp_core *c, struct up *u, const char *why)
{
    char msg[300];
    up_error_msg(u, msg, sizeof msg, NULL);
    (void)why;
    for (size_t b = 0; b < PEND_BUCKETS; b++) {
        struct pending *p = c->pend[b];
        while (p) {
            struct pending *next = p->next;
            if (p->up == u)
                pending_fail(c, p, msg);
            p = next;
        }
    }
    for (struct s2c **q = &c->s2c; *q;) {
        struct s2c *e = *q;
        if (e->up == u) {
            *q = e->next;
            json_decref(e->up_id);
            free(e);
        } else {
            q = &e->next;
        }
    }
    u->listing = 0;
}

static void ev_state(void *ctx, enum mcp_upstream_state st, const char *why)
{
    struct up *u = ctx;
    struct mcp_core *c = u->core;
    if (st == MCP_UPSTREAM_READY) {
        if (u->state == UP_CONNECTING || u->state == UP_DOWN || u->state == UP_FAILED)
            send_initialize(u);
        return;
    }
    u->state = UP_DOWN;
    snprintf(u->why, sizeof u->why, "%s", why ? why : "connection lost");
    log_msg(LOG_WARN, NULL, "mcp: server %s is down: %s", u->conf->name, u->why);
    up_fail_pendings(c, u, u->why);
    unpark(c);
}

static void ev_send_error(void *ctx, uint64_t cookie, const char *why)
{
    struct up *u = ctx;
    struct mcp_core *c = u->core;
    struct pending *p = pending_find(c, cookie);
    if (p == NULL)
        return;
    if (p->kind == P_INIT) {
        pending_free(c, p);
        u->state = UP_FAILED;
        snprintf(u->why, sizeof u->why, "%s", why ? why : "initialize failed");
        unpark(c);
    } else if (p->kind == P_LIST) {
        int first = !p->notify;
        pending_free(c, p);
        if (first && u->listing > 0) {
            u->listing--;
            up_settle_listing(u);
        }
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "MCP server '%s' failed: %s", u->conf->name,
                 why ? why : "no answer");
        pending_fail(c, p, msg);
    }
}

/* ---- messages from upstreams ---------------------------------------------- */

static void up_reply(struct up *u, json_t *id, json_t *result, int code, const char *msg)
{
    json_t *m = result ? json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result)
                       : json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error",
                                   "code", code, "message", msg);
    up_send(u, m, 0, 0);
}

static struct session *latest_session(struct mcp_core *c)
{
    struct session *best = NULL;
    for (struct session *s = c->sessions; s; s = s->next)
        if (!best || s->last_ms > best->last_ms)
            best = s;
    return best;
}

/* A request from an upstream to a client (sampling, elicitation, roots). */
static void up_request(struct mcp_core *c, struct up *u, json_t *root, const char *method)
{
    json_t *id = json_object_get(root, "id");
    if (strcmp(method, "ping") == 0) {
        up_reply(u, id, json_object(), 0, NULL);
        return;
    }
    struct pending *p = latest_call(c, u);
    struct session *s = p ? session_find(c, p->session) : latest_session(c);
    const char *cap = strcmp(method, "sampling/createMessage") == 0 ? "sampling"
                      : strcmp(method, "elicitation/create") == 0   ? "elicitation"
                      : strcmp(method, "roots/list") == 0           ? "roots"
                                                                    : NULL;
    if (s == NULL || cap == NULL || !json_object_get(s->client_caps, cap)) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s: no client session of the gateway %s", method,
                 s == NULL ? "is connected" : "supports it");
        up_reply(u, id, NULL, JSONRPC_METHOD_NOT_FOUND, msg);
        return;
    }
    struct s2c *e = calloc(1, sizeof *e);
    if (e == NULL) {
        up_reply(u, id, NULL, JSONRPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    e->n = ++c->next_s2c;
    e->up = u;
    e->up_id = json_incref(id);
    snprintf(e->session, sizeof e->session, "%s", s->id);
    e->next = c->s2c;
    c->s2c = e;
    char gid[48];
    snprintf(gid, sizeof gid, "pcl-s2c-%llu", (unsigned long long)e->n);
    json_object_set_new(root, "id", json_string(gid));
    if (to_client(c, s->id, p, root) < 0) {
        c->s2c = e->next;
        json_decref(e->up_id);
        free(e);
        up_reply(u, id, NULL, JSONRPC_INTERNAL_ERROR,
                 "the client session has no open stream to take the request");
    }
}

static uint64_t token_id(const json_t *tok, const char *prefix)
{
    const char *s = json_string_value(tok);
    size_t n = strlen(prefix);
    if (s == NULL || strncmp(s, prefix, n) != 0)
        return 0;
    return strtoull(s + n, NULL, 10);
}

static void up_notification(struct mcp_core *c, struct up *u, json_t *root, const char *method)
{
    json_t *params = json_object_get(root, "params");
    for (int k = 0; k < L_COUNT; k++) {
        if (strcmp(method, list_note[k]) == 0) {
            if (k == L_RESOURCES && json_object_get(u->caps, "resources"))
                fetch_list(u, L_TEMPLATES, NULL, NULL, 0, 0 /* quietly */);
            fetch_list(u, k, NULL, NULL, 0, 1);
            return;
        }
    }
    if (strcmp(method, "notifications/progress") == 0) {
        struct pending *p =
            pending_find(c, token_id(json_object_get(params, "progressToken"), "pcl-p-"));
        if (p == NULL || p->kind != P_CLIENT || p->progress_token == NULL)
            return;
        json_object_set(params, "progressToken", p->progress_token);
        to_client(c, p->session, p, root);
    } else if (strcmp(method, "notifications/cancelled") == 0) {
        json_t *rid = json_object_get(params, "requestId");
        for (struct s2c **q = &c->s2c; *q; q = &(*q)->next) {
            struct s2c *e = *q;
            if (e->up == u && json_equal(e->up_id, rid)) {
                char gid[48];
                snprintf(gid, sizeof gid, "pcl-s2c-%llu", (unsigned long long)e->n);
                json_object_set_new(params, "requestId", json_string(gid));
                to_client(c, e->session, NULL, root);
                *q = e->next;
                json_decref(e->up_id);
                free(e);
                return;
            }
        }
    } else if (strcmp(method, "notifications/resources/updated") == 0) {
        json_t *uri = json_object_get(params, "uri");
        char *s = json_dumps(root, JSON_COMPACT);
        for (struct session *ss = c->sessions; s && ss; ss = ss->next) {
            size_t i;
            json_t *v;
            json_array_foreach(ss->subs, i, v)
            {
                if (json_equal(v, uri) && ss->get) {
                    mcp_ticket_event(ss->get, s, strlen(s));
                    break;
                }
            }
        }
        free(s);
    } else if (strcmp(method, "notifications/message") == 0) {
        struct pending *p = latest_call(c, u);
        if (p == NULL || to_client(c, p->session, p, root) < 0) {
            char *s = json_dumps(root, JSON_COMPACT);
            for (struct session *ss = c->sessions; s && ss; ss = ss->next)
                if (ss->get)
                    mcp_ticket_event(ss->get, s, strlen(s));
            free(s);
        }
    }
}

static void on_client_answer(struct mcp_core *c, struct pending *p, json_t *root)
{
    json_object_set(root, "id", p->client_id);
    char *s = json_dumps(root, JSON_COMPACT);
    if (s == NULL) {
        pending_fail(c, p, "out of memory");
        return;
    }
    if (p->sse) {
        mcp_ticket_event(p->t, s, strlen(s));
        mcp_ticket_finish(p->t);
    } else {
        mcp_ticket_respond(p->t, 200, s, strlen(s));
    }
    free(s);
    pending_free(c, p);
}

static void ev_message(void *ctx, const char *json, size_t len)
{
    struct up *u = ctx;
    struct mcp_core *c = u->core;
    json_t *root = json_loadb(json, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        log_msg(LOG_WARN, NULL, "mcp: server %s sent a message that is not a JSON object",
                u->conf->name);
        return;
    }
    const char *method = json_string_value(json_object_get(root, "method"));
    json_t *id = json_object_get(root, "id");
    if (method != NULL && id != NULL) {
        up_request(c, u, root, method);
    } else if (method != NULL) {
        up_notification(c, u, root, method);
    } else if (json_is_integer(id)) {
        struct pending *p = pending_find(c, (uint64_t)json_integer_value(id));
        if (p == NULL || p->up != u) {
            /* late answer to something that timed out or was cancelled */
        } else if (p->kind == P_INIT) {
            on_init_answer(c, p, root);
        } else if (p->kind == P_LIST) {
            on_list_answer(c, p, root);
        } else if (p->kind == P_CLIENT) {
            on_client_answer(c, p, root);
        } else {
            pending_free(c, p);
        }
    }
    json_decref(root);
}

/* ---- opening and closing upstreams ------------------------------------------ */

static const struct mcp_upstream_events events = {
    .on_message = ev_message,
    .on_state = ev_state,
    .on_send_error = ev_send_error,
};

static void up_open(struct mcp_core *c, struct up *u)
{
    const struct config_mcp_server *s = u->conf;
    struct mcp_header *hdrs = calloc(s->nheaders + 1, sizeof *hdrs);
    for (size_t i = 0; hdrs && i < s->nheaders; i++) {
        hdrs[i].name = s->headers[i].name;
        hdrs[i].value = s->headers[i].value;
    }
    struct mcp_upstream_spec spec = {
        .name = s->name,
        .url = s->url,
        .headers = hdrs,
        .nheaders = hdrs ? s->nheaders : 0,
        .argv = (const char *const *)s->argv,
        .env = (const char *const *)s->env,
        .cwd = s->cwd,
        .request_timeout_ms = s->timeout_ms,
    };
    u->state = UP_CONNECTING;
    u->opened_ms = now_ms(c);
    u->conn = c->ops->open ? c->ops->open(c->loop, &spec, &events, u) : NULL;
    free(hdrs);
    if (u->conn == NULL) {
        u->state = UP_FAILED;
        snprintf(u->why, sizeof u->why, "%s",
                 c->ops->open ? "could not be started" : "this build has no MCP transports");
        log_msg(LOG_ERROR, NULL, "mcp: server %s %s", s->name, u->why);
    }
}

static void up_close(struct mcp_core *c, struct up *u)
{
    u->state = UP_DOWN;
    snprintf(u->why, sizeof u->why, "closed");
    up_fail_pendings(c, u, "closed");
    if (u->conn && c->ops->close)
        c->ops->close(u->conn);
    u->conn = NULL;
    json_decref(u->caps);
    json_decref(u->info);
    free(u->instructions);
    for (int k = 0; k < L_COUNT; k++)
        json_decref(u->lists[k]);
    memset(u, 0, sizeof *u);
}

static void open_all(struct mcp_core *c)
{
    c->nups = c->cfg->mcp.nservers;
    c->ups = c->nups ? calloc(c->nups, sizeof *c->ups) : NULL;
    if (c->ups == NULL)
        c->nups = 0;
    for (size_t i = 0; i < c->nups; i++) {
        c->ups[i].core = c;
        c->ups[i].index = i;
        c->ups[i].conf = &c->cfg->mcp.servers[i];
    }
    for (size_t i = 0; i < c->nups; i++)
        up_open(c, &c->ups[i]);
}

static void close_all(struct mcp_core *c)
{
    for (size_t i = 0; i < c->nups; i++)
        up_close(c, &c->ups[i]);
    free(c->ups);
    c->ups = NULL;
    c->nups = 0;
    c->tools_gen++;
}

/* ---- parking: requests that need every upstream's lists -------------------- */

static int settled(struct mcp_core *c)
{
    uint64_t now = now_ms(c);
    for (size_t i = 0; i < c->nups; i++) {
        struct up *u = &c->ups[i];
        int busy = u->state == UP_CONNECTING || u->state == UP_INIT || u->state == UP_LISTING;
        if (busy && now < u->opened_ms + PARK_MS)
            return 0;
    }
    return 1;
}

static int park(struct mcp_core *c, struct mcp_msg *m)
{
    if (settled(c))
        return 0;
    struct parked *k = calloc(1, sizeof *k);
    if (k == NULL)
        return 0;
    k->m = m;
    struct parked **pp = &c->parked;
    while (*pp)
        pp = &(*pp)->next;
    *pp = k;
    return 1;
}

static void unpark(struct mcp_core *c)
{
    if (c->parked == NULL || !settled(c))
        return;
    struct parked *list = c->parked;
    c->parked = NULL;
    while (list) {
        struct parked *k = list;
        list = k->next;
        mcp_core_handle(c, k->m);
        free(k);
    }
}

/* ---- client requests ---------------------------------------------------------- */

struct call {
    struct mcp_core *c;
    struct mcp_msg *m;
    struct session *s;
    struct mcp_rpc *rpc;
};

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

static void do_initialize(struct call *k)
{
    struct mcp_core *c = k->c;
    json_t *params = k->rpc->params;
    const char *want = json_string_value(json_object_get(params, "protocolVersion"));
    if (want == NULL) {
        answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS,
                     "Invalid params: initialize needs params.protocolVersion");
        return;
    }
    const char *ver = mcp_version_supported(want) ? want : mcp_versions[0];
    struct session *s = session_new(c, k->m->owner, ver);
    if (s == NULL) {
        answer_error(k->m->t, 500, k->rpc->id, JSONRPC_INTERNAL_ERROR, "out of memory");
        return;
    }
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
    answer_result(k->m->t, k->rpc->id, res);
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

static void do_list(struct call *k, int kind)
{
    struct mcp_core *c = k->c;
    json_t *cursor = json_object_get(k->rpc->params, "cursor");
    if (cursor != NULL && !json_is_null(cursor)) {
        /* the gateway serves every item in one page: no cursor of ours exists */
        answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS,
                     "Invalid params: unknown cursor");
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < c->nups; i++) {
        struct up *u = &c->ups[i];
        size_t j;
        json_t *it;
        json_array_foreach(u->lists[kind], j, it)
        {
            const char *name = json_string_value(json_object_get(it, "name"));
            if (kind == L_TOOLS || kind == L_PROMPTS) {
                if (name == NULL)
                    continue;
                if (kind == L_TOOLS) {
                    struct verdict v;
                    decide(c, k->m, "list_tool", u, name, &v);
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
        }
    }
    answer_result(k->m->t, k->rpc->id, json_pack("{s:o}", list_key[kind], items));
}

/* Sends the client's request on to u under a fresh id (and progress token). */
static void forward(struct call *k, struct up *u)
{
    struct mcp_core *c = k->c;
    char msg[300];
    if (u->state != UP_READY) {
        up_error_msg(u, msg, sizeof msg, NULL);
        json_t *data = json_pack("{s:s}", "server", u->conf->name);
        answer_json(k->m->t, 200, mcp_rpc_error(k->rpc->id, JSONRPC_INTERNAL_ERROR, msg, data));
        json_decref(data);
        return;
    }
    struct pending *p = pending_new(c, u, P_CLIENT);
    if (p == NULL) {
        answer_error(k->m->t, 500, k->rpc->id, JSONRPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    snprintf(p->session, sizeof p->session, "%s", k->s->id);
    p->client_id = json_incref(k->rpc->id);
    p->t = k->m->t;
    mcp_ticket_ref(p->t);
    p->accept_sse = k->m->accept_sse;
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
    if (up_send_as(u, json_incref(k->rpc->root), p->id, 1, k->m) < 0) {
        up_error_msg(u, msg, sizeof msg, NULL);
        pending_fail(c, p, msg);
    }
}

static void do_tools_call(struct call *k)
{
    struct mcp_core *c = k->c;
    const char *name = json_string_value(json_object_get(k->rpc->params, "name"));
    char msg[1200];
    if (name == NULL) {
        answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS,
                     "Invalid params: tools/call needs params.name");
        return;
    }
    json_t *args = json_object_get(k->rpc->params, "arguments");
    if (args != NULL && !json_is_object(args)) {
        answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS,
                     "Invalid params: params.arguments must be an object");
        return;
    }
    const char *inner = NULL;
    struct up *u = route_name(c, name, &inner);
    if (u == NULL || (u->lists[L_TOOLS] && !list_has(u->lists[L_TOOLS], "name", inner) &&
                      !tool_conf(u->conf, inner))) {
        snprintf(msg, sizeof msg, "Unknown tool: %.200s", name);
        mcp_ticket_set_audit(k->m->t, "call_tool", name, "error", "unknown tool", NULL);
        answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS, msg);
        return;
    }
    char resource[512];
    snprintf(resource, sizeof resource, "%s/%s", u->conf->name, inner);
    struct verdict v;
    decide(c, k->m, "call_tool", u, inner, &v);
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
        answer_json(k->m->t, 200, mcp_rpc_error(k->rpc->id, -32003, msg, data));
        json_decref(data);
        return;
    }
    mcp_ticket_set_audit(k->m->t, "call_tool", resource, "allow",
                         c->cfg->policy.set || k->m->cfg->policy.set ? "policy_permit" : NULL,
                         v.ids[0] ? v.ids : NULL);
    json_object_set_new(k->rpc->params, "name", json_string(inner));
    forward(k, u);
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
        answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS, msg);
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
        answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS, msg);
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
        answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS,
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
        answer_error(k->m->t, 200, k->rpc->id, JSONRPC_INVALID_PARAMS,
                     "Invalid params: logging/setLevel needs params.level");
        return;
    }
    for (size_t i = 0; i < c->nups; i++) {
        struct up *u = &c->ups[i];
        if (u->state != UP_READY || !json_object_get(u->caps, "logging"))
            continue;
        struct pending *p = pending_new(c, u, P_DISCARD);
        if (p == NULL)
            continue;
        json_t *msg = json_pack("{s:s, s:I, s:s, s:O}", "jsonrpc", "2.0", "id", (json_int_t)p->id,
                                "method", "logging/setLevel", "params", k->rpc->params);
        if (up_send(u, msg, p->id, 1) < 0)
            pending_free(c, p);
    }
    answer_result(k->m->t, k->rpc->id, json_object());
}

static void do_request(struct call *k)
{
    const char *m = k->rpc->method;
    if (strcmp(m, "ping") == 0)
        answer_result(k->m->t, k->rpc->id, json_object());
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
        answer_error(k->m->t, 200, k->rpc->id, JSONRPC_METHOD_NOT_FOUND, msg);
    }
}

static void do_notification(struct call *k)
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
                up_send(p->up,
                        json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method",
                                  "notifications/cancelled", "params", params),
                        0, 0);
                pending_fail(c, p, "request cancelled");
                return;
            }
        }
    } else if (strcmp(m, "notifications/roots/list_changed") == 0) {
        for (size_t i = 0; i < c->nups; i++)
            if (c->ups[i].state == UP_READY)
                up_send(&c->ups[i], json_incref(k->rpc->root), 0, 0);
    }
    /* notifications/initialized and others: nothing to do */
}

/* A client's answer to a request an upstream made through us. */
static void do_response(struct call *k)
{
    struct mcp_core *c = k->c;
    uint64_t n = token_id(k->rpc->id, "pcl-s2c-");
    for (struct s2c **q = &c->s2c; n && *q; q = &(*q)->next) {
        struct s2c *e = *q;
        if (e->n != n || strcmp(e->session, k->s->id) != 0)
            continue;
        json_object_set(k->rpc->root, "id", e->up_id);
        up_send(e->up, json_incref(k->rpc->root), 0, 0);
        *q = e->next;
        json_decref(e->up_id);
        free(e);
        return;
    }
}

static void handle_post(struct mcp_core *c, struct mcp_msg *m)
{
    struct mcp_rpc rpc;
    json_t *id = NULL;
    char why[300];
    int code = m->body
                   ? mcp_rpc_parse(m->body, m->len, &rpc, &id, why, sizeof why)
                   : (snprintf(why, sizeof why, "Parse error: empty body"), JSONRPC_PARSE_ERROR);
    if (code != 0) {
        answer_json(m->t, code == JSONRPC_INVALID_PARAMS ? 200 : 400,
                    mcp_rpc_error(id, code, why, NULL));
        json_decref(id);
        mcp_msg_free(m);
        return;
    }
    json_decref(id);
    if (rpc.method)
        mcp_ticket_set_method(m->t, rpc.method);
    int is_init = rpc.kind == MCP_REQUEST && strcmp(rpc.method, "initialize") == 0;
    struct session *s = NULL;
    if (!is_init) {
        if (m->session[0] == '\0' || m->session_bad) {
            answer_error(m->t, 400, rpc.id, JSONRPC_INVALID_REQUEST,
                         m->session_bad ? "Bad Request: unknown Mcp-Session-Id"
                                        : "Bad Request: Mcp-Session-Id header is required");
            goto done;
        }
        s = session_find(c, m->session);
        if (s == NULL || strcmp(s->owner, m->owner) != 0) {
            answer_error(m->t, 404, rpc.id, -32001, "Session not found");
            goto done;
        }
        if (m->version[0] && !mcp_version_supported(m->version)) {
            snprintf(why, sizeof why, "Bad Request: unsupported MCP-Protocol-Version %.40s",
                     m->version);
            answer_error(m->t, 400, rpc.id, JSONRPC_INVALID_REQUEST, why);
            goto done;
        }
        s->last_ms = now_ms(c);
    }
    struct call k = {.c = c, .m = m, .s = s, .rpc = &rpc};
    if (rpc.kind == MCP_REQUEST) {
        int needs_lists =
            is_init || strstr(rpc.method, "/list") || strcmp(rpc.method, "tools/call") == 0;
        if (needs_lists && park(c, m)) {
            mcp_rpc_free(&rpc);
            return; /* handled again once the upstreams have started */
        }
        if (is_init)
            do_initialize(&k);
        else
            do_request(&k);
    } else {
        if (rpc.kind == MCP_NOTIFICATION && is_init) {
            /* cannot happen: is_init needs a request */
        }
        if (s == NULL) {
            answer_error(m->t, 400, NULL, JSONRPC_INVALID_REQUEST,
                         "Bad Request: Mcp-Session-Id header is required");
            goto done;
        }
        if (rpc.kind == MCP_NOTIFICATION)
            do_notification(&k);
        else
            do_response(&k);
        mcp_ticket_respond(m->t, 202, NULL, 0);
    }
done:
    mcp_rpc_free(&rpc);
    mcp_msg_free(m);
}

static void handle_get_delete(struct mcp_core *c, struct mcp_msg *m)
{
    if (m->session[0] == '\0' || m->session_bad) {
        answer_error(m->t, 400, NULL, JSONRPC_INVALID_REQUEST,
                     "Bad Request: Mcp-Session-Id header is required");
        goto done;
    }
    struct session *s = session_find(c, m->session);
    if (s == NULL || strcmp(s->owner, m->owner) != 0) {
        answer_error(m->t, 404, NULL, -32001, "Session not found");
        goto done;
    }
    s->last_ms = now_ms(c);
    mcp_ticket_set_method(m->t, m->method == MCP_GET ? "GET stream" : "DELETE session");
    if (m->method == MCP_DELETE) {
        session_free(c, s);
        mcp_ticket_respond(m->t, 200, NULL, 0);
        goto done;
    }
    if (c->draining) {
        answer_error(m->t, 503, NULL, JSONRPC_INTERNAL_ERROR, "the gateway is shutting down");
        goto done;
    }
    if (s->get && mcp_ticket_open(s->get)) {
        answer_error(m->t, 409, NULL, JSONRPC_INVALID_REQUEST,
                     "Conflict: this session already has a GET stream open");
        goto done;
    }
    if (s->get)
        mcp_ticket_unref(s->get);
    s->get = m->t;
    mcp_ticket_ref(s->get);
    /* open the stream now: the client sees the head, events follow */
    uv_mutex_lock(&s->get->lock);
    if (!s->get->closed && s->get->status == 0) {
        s->get->status = 200;
        s->get->stream = 1;
        if (s->get->has_async)
            uv_async_send(&s->get->async);
    }
    uv_mutex_unlock(&s->get->lock);
done:
    mcp_msg_free(m);
}

void mcp_core_handle(struct mcp_core *c, struct mcp_msg *m)
{
    if (m->method == MCP_POST)
        handle_post(c, m);
    else
        handle_get_delete(c, m);
}

/* ---- timers, reload, lifecycle ------------------------------------------------ */

void mcp_core_sweep(struct mcp_core *c, uint64_t now)
{
    uint32_t idle = c->cfg->mcp.session_idle_ms;
    for (struct session *s = c->sessions, *next; s; s = next) {
        next = s->next;
        int streaming = s->get && mcp_ticket_open(s->get);
        if (!streaming && now > s->last_ms + idle) {
            log_msg(LOG_INFO, NULL, "mcp: session expired after %u s idle", idle / 1000);
            session_free(c, s);
        } else if (streaming) {
            s->last_ms = now > s->last_ms ? s->last_ms : now; /* an open stream is not idle */
        }
    }
    for (size_t b = 0; b < PEND_BUCKETS; b++) {
        struct pending *p = c->pend[b];
        while (p) {
            struct pending *next = p->next;
            if (now >= p->deadline_ms) {
                if (p->kind == P_CLIENT) {
                    char msg[300];
                    snprintf(msg, sizeof msg, "MCP server '%s' did not answer within %u s",
                             p->up->conf->name, p->up->conf->timeout_ms / 1000);
                    up_send(p->up,
                            json_pack("{s:s, s:s, s:{s:I, s:s}}", "jsonrpc", "2.0", "method",
                                      "notifications/cancelled", "params", "requestId",
                                      (json_int_t)p->id, "reason", "timeout"),
                            0, 0);
                    pending_fail(c, p, msg);
                } else if (p->kind == P_INIT) {
                    struct up *u = p->up;
                    pending_free(c, p);
                    u->state = UP_FAILED;
                    snprintf(u->why, sizeof u->why, "no answer to initialize");
                } else {
                    int first = p->kind == P_LIST && !p->notify;
                    struct up *u = p->up;
                    pending_free(c, p);
                    if (first && u->listing > 0) {
                        u->listing--;
                        up_settle_listing(u);
                    }
                }
            } else if (p->kind == P_CLIENT && p->t && !mcp_ticket_open(p->t)) {
                /* the client went away: tell the upstream, forget the call */
                up_send(p->up,
                        json_pack("{s:s, s:s, s:{s:I, s:s}}", "jsonrpc", "2.0", "method",
                                  "notifications/cancelled", "params", "requestId",
                                  (json_int_t)p->id, "reason", "client disconnected"),
                        0, 0);
                pending_free(c, p);
            }
            p = next;
        }
    }
    unpark(c);
}

static void on_sweep(uv_timer_t *t)
{
    struct mcp_core *c = t->data;
    mcp_core_sweep(c, now_ms(c));
}

struct mcp_core *mcp_core_new(uv_loop_t *loop, struct config *cfg,
                              const struct mcp_transport_ops *ops)
{
    struct mcp_core *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->cfg = config_ref(cfg);
    c->ops = ops;
    uv_timer_init(loop, &c->sweep);
    c->sweep.data = c;
    uv_timer_start(&c->sweep, on_sweep, 1000, 1000);
    open_all(c);
    return c;
}

static int same_strings(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return 0;
    return 1;
}

static int same_server(const struct config_mcp_server *a, const struct config_mcp_server *b)
{
    if (strcmp(a->name, b->name) != 0 || (a->url == NULL) != (b->url == NULL) ||
        (a->url && strcmp(a->url, b->url) != 0) || (a->cwd == NULL) != (b->cwd == NULL) ||
        (a->cwd && strcmp(a->cwd, b->cwd) != 0) || a->timeout_ms != b->timeout_ms ||
        !same_strings(a->argv, a->argc, b->argv, b->argc) ||
        !same_strings(a->env, a->nenv, b->env, b->nenv) || a->nheaders != b->nheaders)
        return 0;
    for (size_t i = 0; i < a->nheaders; i++)
        if (strcmp(a->headers[i].name, b->headers[i].name) != 0 ||
            strcmp(a->headers[i].value, b->headers[i].value) != 0)
            return 0;
    return 1;
}

void mcp_core_reload(struct mcp_core *c, struct config *cfg)
{
    const struct config_mcp *a = &c->cfg->mcp, *b = &cfg->mcp;
    int same = a->nservers == b->nservers;
    for (size_t i = 0; same && i < a->nservers; i++)
        same = same_server(&a->servers[i], &b->servers[i]);
    struct config *old = c->cfg;
    if (same) {
        c->cfg = config_ref(cfg);
        for (size_t i = 0; i < c->nups; i++)
            c->ups[i].conf = &cfg->mcp.servers[i];
        c->tools_gen++; /* labels or trust may have changed */
    } else {
        log_msg(LOG_INFO, NULL, "mcp: servers changed, reconnecting");
        close_all(c);
        c->cfg = config_ref(cfg);
        open_all(c);
        broadcast(c, "notifications/tools/list_changed", NULL);
    }
    if (c->ents_cfg == old) {
        policy_entities_free(c->ents);
        c->ents = NULL;
        c->ents_cfg = NULL;
    }
    config_unref(old);
}

void mcp_core_drain(struct mcp_core *c)
{
    c->draining = 1;
    for (struct session *s = c->sessions; s; s = s->next)
        if (s->get) {
            mcp_ticket_finish(s->get);
            mcp_ticket_unref(s->get);
            s->get = NULL;
        }
}

static void on_sweep_closed(uv_handle_t *h)
{
    struct mcp_core *c = h->data;
    free(c);
}

void mcp_core_close(struct mcp_core *c)
{
    while (c->parked) {
        struct parked *k = c->parked;
        c->parked = k->next;
        answer_error(k->m->t, 503, NULL, JSONRPC_INTERNAL_ERROR, "the gateway is shutting down");
        mcp_msg_free(k->m);
        free(k);
    }
    close_all(c);
    while (c->sessions)
        session_free(c, c->sessions);
    for (size_t b = 0; b < PEND_BUCKETS; b++)
        while (c->pend[b])
            pending_free(c, c->pend[b]);
    policy_entities_free(c->ents);
    config_unref(c->cfg);
    uv_timer_stop(&c->sweep);
    uv_close((uv_handle_t *)&c->sweep, on_sweep_closed);
}
