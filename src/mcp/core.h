// SPDX-License-Identifier: Apache-2.0
// Internal to the hub core (core.c: sessions and client requests; upstream.c:
// the connections to servers and their messages; decide.c: Cedar decisions):
// the state they share, all on the hub's loop.
#ifndef PORTCULLIS_MCP_CORE_H
#define PORTCULLIS_MCP_CORE_H

#include <jansson.h>
#include <stdint.h>

#include "breaker/breaker.h"
#include "config/config.h"
#include "guard/guard.h"
#include "mcp/internal.h"
#include "policy/policy.h"

#define PEND_BUCKETS 256
#define PARK_MS 15000 /* longest a request waits for upstreams to start */
#define MAX_LIST_PAGES 1000
#define GATEWAY_VERSION "0.1.0"
#define MAX_SESSIONS 100000 /* initialize past this is refused (503) */
#define RESUME_GRACE_MS                                                                            \
    30000 /* a call whose SSE answer lost its client waits this long for a                         \
           * GET with Last-Event-ID before it is cancelled */

enum up_state { UP_CONNECTING, UP_INIT, UP_LISTING, UP_READY, UP_DOWN, UP_FAILED };
enum list_kind { L_TOOLS, L_PROMPTS, L_RESOURCES, L_TEMPLATES, L_COUNT };

extern const char *const hub_list_method[L_COUNT]; /* tools/list, ... */
extern const char *const hub_list_key[L_COUNT];    /* the result member of each list */
extern const char *const hub_list_cap[L_COUNT];    /* the capability announcing it */
extern const char *const hub_list_note[L_COUNT];   /* its list_changed notification */

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
    json_t *subs;             /* resource URIs subscribed to */
    int logging;              /* sent logging/setLevel: takes log messages no call claims */
    struct mcp_msg *who;      /* the principal (agent, chain) for decisions about it */
    unsigned missed;          /* list_changed (1 << list kind) owed while its GET stream was
                               * lost; before the first one the client lists afresh anyway */
    int had_get;              /* a GET stream was opened once */
    struct mcp_evlog *events; /* what its SSE streams were sent, for Last-Event-ID */
    uint32_t streams;         /* answer streams numbered so far (0 is the GET stream) */
    /* private data / untrusted content read in this session (guard.c) */
    struct guard_taint taint;
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
    uint64_t gone_ms; /* when its streamed answer lost the client (resumable a while) */
    char *tool;       /* tools/call: "server/tool" (audit; where a result scan would hook in) */
    struct breaker_ticket br; /* tools/call through the server's breaker (br.b holds a ref) */
    uint64_t br_start_ms;
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
    long up; /* the upstream it waits for, -1 for all */
};

struct mcp_core {
    uv_loop_t *loop;
    struct config *cfg;
    const struct mcp_transport_ops *ops;
    struct identity *identity;
    struct up *ups;
    size_t nups;
    struct session *sessions;
    size_t nsessions;
    size_t page_size; /* items per page of a list answer */
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

struct verdict {
    int allow;     /* 1 allow, 0 deny, -1 evaluation failed */
    char ids[512]; /* determining policies */
    /* allowed by a policy annotated @trifecta("allow") */
    int trifecta_allow;
};

/* ---- shared inside the hub (core.c, upstream.c, decide.c) ---------------- */
uint64_t hub_now(struct mcp_core *c);
/* core.c: pending requests, sessions, delivery to clients, parking */
struct pending *hub_pending_new(struct mcp_core *c, struct up *u, enum pkind kind);
struct pending *hub_pending_find(struct mcp_core *c, uint64_t id);
void hub_pending_free(struct mcp_core *c, struct pending *p);
/* Answers a client's pending request with an error naming the server, and
 * forgets it. */
/* Ends the breaker ticket of a tools/call (no-op without one): OK or
 * ERROR from the server's answer, ABANDON when the call went away. */
void hub_pending_breaker(struct pending *p, enum breaker_outcome o);
void hub_pending_fail(struct mcp_core *c, struct pending *p, const char *msg);
/* Which client call a message from server u belongs to (its requests to
 * clients, its log messages). Never a guess across sessions:
 * - cookie: the request whose HTTP answer stream carried the message (the
 *   transport reports it; 0 for the GET stream and stdio);
 * - else params._meta names the call: HUB_RELATED_REQUEST with the request id
 *   the gateway sent the server, or a progress token the gateway made;
 * - else the newest call in flight on u, if every call in flight on u belongs
 *   to one session.
 * NULL with *how: ATTR_NONE (no call in flight), ATTR_GONE (the call named
 * is over), ATTR_AMBIGUOUS (several sessions have calls in flight on u). */
enum attribution { ATTR_STREAM = 1, ATTR_NAMED, ATTR_ONLY, ATTR_NONE, ATTR_GONE, ATTR_AMBIGUOUS };
#define HUB_RELATED_REQUEST "io.modelcontextprotocol/related-request-id"
struct pending *hub_call_of(struct mcp_core *c, struct up *u, uint64_t cookie, const json_t *params,
                            enum attribution *how);
/* A new session for owner (192 random bits as its id); NULL on failure or
 * when MAX_SESSIONS are open. */
struct session *hub_session_new(struct mcp_core *c, const char *owner, const char *version);
struct session *hub_session_find(struct mcp_core *c, const char *id);
/* On the stream of request p when the client takes one, else on the
 * session's GET stream; -1 when neither is open. */
int hub_to_client(struct mcp_core *c, const char *session, struct pending *p, json_t *msg);
/* notifications/<kind>/list_changed to s now, or when it reopens its GET stream. */
void hub_list_changed(struct session *s, int kind);
/* Runs the parked requests once every upstream has started (or given up). */
void hub_unpark(struct mcp_core *c);
/* upstream.c: connections, lists, messages from servers */
/* Sends msg (consumed); m: the client request it carries (identity token). */
int hub_send_as(struct up *u, json_t *msg, uint64_t cookie, int expects, const struct mcp_msg *m);
int hub_send(struct up *u, json_t *msg, uint64_t cookie, int expects);
/* "MCP server 'x' is down (why)" */
void hub_up_error(struct up *u, char *out, size_t len, const char *what);
void hub_settle_listing(struct up *u);
void hub_open_all(struct mcp_core *c);
/* Closes u (its calls fail) and opens it again for conf, at the same place. */
void hub_reopen(struct mcp_core *c, struct up *u, const struct config_mcp_server *conf);
void hub_close_all(struct mcp_core *c);
/* The number after prefix in a gateway-made id or token ("pcl-p-12"); 0 if none. */
uint64_t hub_token_id(const json_t *tok, const char *prefix);
/* core.c: answers (body malloc'ed and consumed; result consumed) */
void hub_answer_json(struct mcp_ticket *t, int status, char *body);
void hub_answer_error(struct mcp_ticket *t, int status, const json_t *id, int code,
                      const char *msg);
void hub_answer_result(struct mcp_ticket *t, const json_t *id, json_t *result);
/* requests.c: one client message on a session (k->s is NULL for initialize) */
struct call {
    struct mcp_core *c;
    struct mcp_msg *m;
    struct session *s;
    struct mcp_rpc *rpc;
};
/* The upstream a tools/call or prompts/get names (its index), else -1. */
long req_target(struct mcp_core *c, const struct mcp_rpc *rpc);
void req_initialize(struct call *k);
void req_request(struct call *k);
void req_notification(struct call *k);
void req_response(struct call *k);
/* decide.c: Cedar on Tool:: entities */
const struct config_mcp_tool *hub_tool_conf(const struct config_mcp_server *s, const char *t);
void hub_decide(struct mcp_core *c, const struct mcp_msg *m, const char *action, struct up *u,
                const char *tool, struct verdict *v);
/* The same with the session's taint in the context (context.session.private_data,
 * context.session.untrusted; both false when s is NULL). */
void hub_decide_session(struct mcp_core *c, const struct mcp_msg *m, const struct session *s,
                        const char *action, struct up *u, const char *tool, struct verdict *v);
/* guard.c: tool outputs and the lethal trifecta */
/* guard_label bits of a configured tool (tools: {name: [private_data, exfiltration]}). */
unsigned hub_tool_labels(const struct config_mcp_server *s, const char *tool);
/* An upstream answered the tools/call p (p->tool set): scans the result's texts when
 * guard: scans tool_outputs (or the server has guard:), rewrites root's result as the
 * action says (block: replaced by an isError result; sanitize: texts rewritten; flag:
 * _meta), puts the findings in p's audit, and updates the session's taint. */
void hub_guard_answer(struct mcp_core *c, struct pending *p, json_t *root);
/* A new session opened with a delegation token that carries taint starts with it. */
void hub_guard_session_start(struct mcp_core *c, struct session *s, const struct mcp_msg *m);
/* The session's taint, for POST /oauth/token naming it (flags 0: forget it). */
void hub_guard_publish(struct mcp_core *c, const struct session *s, unsigned flags);
enum hub_trifecta {
    HUB_TRIFECTA_NONE,      /* not an exfiltration tool, or the session is not tainted */
    HUB_TRIFECTA_REFUSE,    /* trifecta: enforce, and no policy permits it */
    HUB_TRIFECTA_WARN,      /* trifecta: warn: go on, audit it */
    HUB_TRIFECTA_PERMITTED, /* a policy with @trifecta("allow") permitted the call */
};
/* Before forwarding a permitted (v) tools/call of tool on u in session s; reason
 * names the three legs unless NONE. */
enum hub_trifecta hub_guard_trifecta(struct mcp_core *c, const struct mcp_msg *m, struct session *s,
                                     struct up *u, const char *tool, const struct verdict *v,
                                     char *reason, size_t cap);

#endif
