// SPDX-License-Identifier: Apache-2.0
// The hub core against two fake upstreams (an in-test transport): upstream
// initialize and paginated list caching, tools/list merged with prefixes and
// filtered by list_tool, tools/call routed with id and progressToken
// rewriting, call_tool denials naming the tool and the permission, unknown
// tools, upstreams going down (new and in-flight calls fail naming the
// server), sessions bound to their principal.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "config/config.h"
#include "mcp/internal.h"

/* ---- the fake transport -------------------------------------------------- */

struct fake {
    char name[32];
    const struct mcp_upstream_events *ev;
    void *ctx;
    json_t *sent; /* array of the messages sent */
    int closed;
};

static struct fake *fakes[4];
static int nfakes;

static struct mcp_upstream *f_open(uv_loop_t *loop, const struct mcp_upstream_spec *spec,
                                   const struct mcp_upstream_events *ev, void *ctx)
{
    struct fake *f = calloc(1, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", spec->name);
    f->ev = ev;
    f->ctx = ctx;
    f->sent = json_array();
    fakes[nfakes++] = f;
    return (struct mcp_upstream *)f;
}

static int f_send(struct mcp_upstream *u, const char *json, size_t len,
                  const struct mcp_send_opts *o)
{
    struct fake *f = (struct fake *)u;
    json_t *m = json_loadb(json, len, 0, NULL);
    assert_non_null(m);
    json_array_append_new(f->sent, m);
    return 0;
}

static void f_initialized(struct mcp_upstream *u, const char *v)
{
}

static void f_close(struct mcp_upstream *u)
{
    struct fake *f = (struct fake *)u;
    json_decref(f->sent);
    free(f);
}

static const struct mcp_transport_ops fake_ops = {f_open, f_send, f_initialized, f_close};

static struct fake *fake_named(const char *name)
{
    for (int i = 0; i < nfakes; i++)
        if (strcmp(fakes[i]->name, name) == 0)
            return fakes[i];
    fail_msg("no upstream %s", name);
    return NULL;
}

/* The last message the upstream got. */
static json_t *last_sent(struct fake *f)
{
    size_t n = json_array_size(f->sent);
    assert_true(n > 0);
    return json_array_get(f->sent, n - 1);
}

/* A message from the server; via: the cookie of the request whose answer
 * stream carried it (0: the GET stream, or stdio). */
static void inject_via(struct fake *f, uint64_t via, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    f->ev->on_message_via(f->ctx, buf, strlen(buf), via);
}

#define inject(f, ...) inject_via(f, 0, __VA_ARGS__)

static json_int_t last_id(struct fake *f)
{
    return json_integer_value(json_object_get(last_sent(f), "id"));
}

static const char *last_method(struct fake *f)
{
    return json_string_value(json_object_get(last_sent(f), "method"));
}

/* ---- the client side ---------------------------------------------------- */

static struct mcp_core *core;
static struct config *cfg;
static uv_loop_t loop;
static char dir[64];

static struct mcp_ticket *post(const char *session, const char *agent, const char *body)
{
    struct mcp_msg *m = calloc(1, sizeof *m);
    m->method = MCP_POST;
    m->t = mcp_ticket_new();
    m->cfg = config_ref(cfg);
    m->body = strdup(body);
    m->len = strlen(body);
    snprintf(m->session, sizeof m->session, "%s", session ? session : "");
    m->accept_sse = 1;
    m->agent = strdup(agent);
    m->owner = strdup(agent);
    struct mcp_ticket *t = m->t;
    mcp_ticket_ref(t);
    mcp_core_handle(core, m);
    return t;
}

/* The JSON-RPC message of a whole answer, or of the last SSE event. */
static json_t *answer(struct mcp_ticket *t)
{
    assert_true(t->status != 0);
    const char *s = t->out.data;
    assert_non_null(s);
    const char *last = s, *p;
    while ((p = strstr(last, "data: ")) != NULL && t->stream)
        last = p + 6;
    json_t *j = json_loadb(last, strlen(last), JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(j);
    return j;
}

static char session[80];

static void start_upstreams(void)
{
    struct fake *a = fake_named("a"), *b = fake_named("b");
    a->ev->on_state(a->ctx, MCP_UPSTREAM_READY, NULL);
    b->ev->on_state(b->ctx, MCP_UPSTREAM_READY, NULL);
    assert_string_equal(last_method(a), "initialize");
    inject(a,
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"protocolVersion\":\"2025-06-18\","
           "\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"A\",\"version\":\"1\"}}}",
           (long long)last_id(a));
    assert_string_equal(last_method(a), "tools/list");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(a->sent, json_array_size(a->sent) - 2), "method")),
                        "notifications/initialized");
    inject(a,
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[{\"name\":\"echo\","
           "\"inputSchema\":{\"type\":\"object\"}},{\"name\":\"hidden\",\"inputSchema\":{}}]}}",
           (long long)last_id(a));
    inject(b,
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"protocolVersion\":\"2025-06-18\","
           "\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"B\",\"version\":\"1\"}}}",
           (long long)last_id(b));
    /* two pages */
    inject(b,
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[{\"name\":\"secret\","
           "\"inputSchema\":{}}],\"nextCursor\":\"p2\"}}",
           (long long)last_id(b));
    assert_string_equal(last_method(b), "tools/list");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(last_sent(b), "params"), "cursor")),
        "p2");
    inject(b,
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[{\"name\":\"add\","
           "\"inputSchema\":{}}]}}",
           (long long)last_id(b));
}

static int setup(void **state)
{
    strcpy(dir, "/tmp/pcl-mcp-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    char path[128], yaml[2048];
    snprintf(path, sizeof path, "%s/p.cedar", dir);
    FILE *f = fopen(path, "w");
    fputs("permit (principal, action, resource);\n"
          "@id(\"no-secret\") forbid (principal == Agent::\"anonymous\", action == "
          "Action::\"call_tool\", resource == Tool::\"b/secret\");\n"
          "@id(\"hide\") forbid (principal, action == Action::\"list_tool\", resource) when "
          "{ resource.labels.contains(\"internal\") };\n",
          f);
    fclose(f);
    snprintf(yaml, sizeof yaml,
             "agents: [{id: alice}]\n"
             "policy: {files: [p.cedar]}\n"
             "mcp:\n"
             "  servers:\n"
             "    - {name: a, command: [x], tools: {hidden: [internal]}}\n"
             "    - {name: b, url: http://127.0.0.1:1/mcp}\n");
    snprintf(path, sizeof path, "%s/t.yaml", dir);
    struct config_errors errs;
    cfg = config_load_string(path, yaml, strlen(yaml), &errs);
    if (cfg == NULL) {
        config_errors_print(&errs, stderr);
        return -1;
    }
    uv_loop_init(&loop);
    nfakes = 0;
    core = mcp_core_new(&loop, cfg, &fake_ops);
    start_upstreams();
    struct mcp_ticket *t =
        post(NULL, "anonymous",
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"1999-01-01\",\"capabilities\":{\"sampling\":{}},\"clientInfo\":"
             "{\"name\":"
             "\"t\",\"version\":\"1\"}}}");
    json_t *j = answer(t);
    assert_int_equal(t->status, 200);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "result"), "protocolVersion")),
        "2025-11-25");
    assert_true(strlen(t->session_id) >= 32); /* 128+ random bits */
    snprintf(session, sizeof session, "%s", t->session_id);
    json_decref(j);
    mcp_ticket_unref(t);
    return 0;
}

static int teardown(void **state)
{
    mcp_core_close(core);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    config_unref(cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void list_merges_prefixes_and_filters(void **state)
{
    struct mcp_ticket *t =
        post(session, "anonymous", "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"tools/list\"}");
    json_t *j = answer(t);
    json_t *tools = json_object_get(json_object_get(j, "result"), "tools");
    assert_int_equal(json_array_size(tools), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 0), "name")),
                        "a__echo");
    assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 1), "name")),
                        "b__secret");
    assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 2), "name")),
                        "b__add");
    assert_string_equal(json_string_value(json_object_get(j, "id")), "x");
    json_decref(j);
    mcp_ticket_unref(t);
}

static void call_is_routed_with_ids_and_progress_rewritten(void **state)
{
    struct fake *b = fake_named("b");
    struct mcp_ticket *t =
        post(session, "anonymous",
             "{\"jsonrpc\":\"2.0\",\"id\":41,\"method\":\"tools/call\",\"params\":"
             "{\"name\":\"b__add\",\"arguments\":{\"x\":1},\"_meta\":{"
             "\"progressToken\":\"tok\"}}}");
    assert_int_equal(t->status, 0); /* waiting for the upstream */
    json_t *sent = last_sent(b);
    json_t *params = json_object_get(sent, "params");
    assert_string_equal(json_string_value(json_object_get(params, "name")), "add");
    json_int_t uid = json_integer_value(json_object_get(sent, "id"));
    assert_true(uid != 41);
    const char *gt =
        json_string_value(json_object_get(json_object_get(params, "_meta"), "progressToken"));
    assert_non_null(gt);
    assert_string_not_equal(gt, "tok");
    char tok[64];
    snprintf(tok, sizeof tok, "%s", gt);
    inject(b,
           "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{"
           "\"progressToken\":\"%s\",\"progress\":1,\"total\":2}}",
           tok);
    assert_int_equal(t->stream, 1);
    assert_non_null(strstr(t->out.data, "\"progressToken\":\"tok\""));
    inject(b,
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"content\":[{\"type\":\"text\","
           "\"text\":\"2\"}]}}",
           (long long)uid);
    assert_true(t->end);
    json_t *j = answer(t);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 41);
    assert_non_null(json_object_get(j, "result"));
    assert_string_equal(t->action, "call_tool");
    assert_string_equal(t->resource, "b/add");
    assert_string_equal(t->decision, "allow");
    json_decref(j);
    mcp_ticket_unref(t);
}

static void forbidden_and_unknown_tools_say_which(void **state)
{
    struct mcp_ticket *t =
        post(session, "anonymous",
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
             "{\"name\":\"b__secret\",\"arguments\":{}}}");
    json_t *j = answer(t);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    assert_non_null(strstr(msg, "b__secret"));
    assert_non_null(strstr(msg, "Action::\"call_tool\""));
    assert_non_null(strstr(msg, "no-secret"));
    assert_string_equal(t->decision, "deny");
    assert_string_equal(t->policy_ids, "no-secret");
    json_decref(j);
    mcp_ticket_unref(t);

    t = post(session, "anonymous",
             "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"a__nope\"}}");
    j = answer(t);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "error"), "code")),
                     -32602);
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(j, "error"), "message")), "a__nope"));
    json_decref(j);
    mcp_ticket_unref(t);
}

static void down_upstream_fails_its_calls_only(void **state)
{
    struct fake *a = fake_named("a");
    struct mcp_ticket *t =
        post(session, "anonymous",
             "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":"
             "{\"name\":\"a__echo\"}}");
    assert_int_equal(t->status, 0);
    a->ev->on_state(a->ctx, MCP_UPSTREAM_DOWN, "process exited");
    json_t *j = answer(t);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    assert_non_null(strstr(msg, "'a'"));
    assert_string_equal(t->decision, "error"); /* permitted, but it failed */
    assert_string_equal(t->resource, "a/echo");
    json_decref(j);
    mcp_ticket_unref(t);
    /* the next call fails at once; b still works */
    t = post(session, "anonymous",
             "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"a__echo\"}}");
    j = answer(t);
    assert_non_null(
        strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "down"));
    json_decref(j);
    mcp_ticket_unref(t);
    t = post(session, "anonymous", "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\"}");
    j = answer(t);
    assert_int_equal(json_array_size(json_object_get(json_object_get(j, "result"), "tools")), 3);
    json_decref(j);
    mcp_ticket_unref(t);
}

static void sessions_belong_to_their_principal(void **state)
{
    struct mcp_ticket *t =
        post(session, "alice", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    assert_int_equal(t->status, 404);
    mcp_ticket_unref(t);
    t = post(NULL, "anonymous", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    assert_int_equal(t->status, 400);
    mcp_ticket_unref(t);
    t = post(session, "anonymous", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    assert_int_equal(t->status, 200);
    mcp_ticket_unref(t);
    t = post(session, "anonymous", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"no/such\"}");
    json_t *j = answer(t);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "error"), "code")),
                     -32601);
    json_decref(j);
    mcp_ticket_unref(t);
    t = post(session, "anonymous", "{\"jsonrpc\":\"2.0\",\"id\":1,");
    assert_int_equal(t->status, 400);
    j = answer(t);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "error"), "code")),
                     -32700);
    json_decref(j);
    mcp_ticket_unref(t);
    t = post(session, "anonymous", "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}");
    j = answer(t);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "error"), "code")),
                     -32600);
    json_decref(j);
    mcp_ticket_unref(t);
    /* idle sessions expire */
    mcp_core_sweep(core, uv_now(&loop) + cfg->mcp.session_idle_ms + 1000);
    assert_int_equal(mcp_core_session_count(core), 0);
}

/* tools/list with a cursor (NULL for the first page): the names, and the
 * next cursor copied into next ("" when none). */
static void page(const char *cursor, char *names, size_t len, char *next, size_t nlen)
{
    char body[256];
    if (cursor)
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{"
                 "\"cursor\":\"%s\"}}",
                 cursor);
    else
        snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    struct mcp_ticket *t = post(session, "anonymous", body);
    json_t *j = answer(t);
    json_t *res = json_object_get(j, "result");
    assert_non_null(res);
    names[0] = '\0';
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(res, "tools"), i, it)
    {
        strncat(names, json_string_value(json_object_get(it, "name")), len - strlen(names) - 2);
        strcat(names, " ");
    }
    const char *nc = json_string_value(json_object_get(res, "nextCursor"));
    snprintf(next, nlen, "%s", nc ? nc : "");
    json_decref(j);
    mcp_ticket_unref(t);
}

static void lists_page_across_servers(void **state)
{
    char names[512], next[64], again[64];
    mcp_core_set_page_size(core, 2);
    page(NULL, names, sizeof names, next, sizeof next);
    assert_string_equal(names, "a__echo b__secret "); /* a__hidden is filtered, not counted */
    assert_true(next[0]);
    page(next, names, sizeof names, again, sizeof again);
    assert_string_equal(names, "b__add ");
    assert_string_equal(again, "");
    struct mcp_ticket *t =
        post(session, "anonymous",
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"cursor\":"
             "\"pcl1.0.9.0\"}}");
    json_t *j = answer(t);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "error"), "code")),
                     -32602);
    json_decref(j);
    mcp_ticket_unref(t);
}

static struct mcp_ticket *get_stream(const char *sess)
{
    struct mcp_msg *m = calloc(1, sizeof *m);
    m->method = MCP_GET;
    m->t = mcp_ticket_new();
    m->cfg = config_ref(cfg);
    snprintf(m->session, sizeof m->session, "%s", sess);
    m->accept_sse = 1;
    m->agent = strdup("anonymous");
    m->owner = strdup("anonymous");
    struct mcp_ticket *t = m->t;
    mcp_ticket_ref(t);
    mcp_core_handle(core, m);
    return t;
}

static void server_requests_reach_the_calling_client_and_back(void **state)
{
    struct fake *a = fake_named("a");
    struct mcp_ticket *call = post(session, "anonymous",
                                   "{\"jsonrpc\":\"2.0\",\"id\":50,\"method\":\"tools/call\","
                                   "\"params\":{\"name\":\"a__echo\"}}");
    json_int_t uid = last_id(a);
    inject(a, "{\"jsonrpc\":\"2.0\",\"id\":\"up-1\",\"method\":\"sampling/createMessage\","
              "\"params\":{\"messages\":[],\"maxTokens\":5}}");
    /* on the call's own stream, under a gateway id */
    assert_int_equal(call->stream, 1);
    json_t *req = answer(call);
    assert_string_equal(json_string_value(json_object_get(req, "method")),
                        "sampling/createMessage");
    const char *gid = json_string_value(json_object_get(req, "id"));
    assert_non_null(gid);
    char body[256];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"result\":{\"role\":\"assistant\","
             "\"content\":{\"type\":\"text\",\"text\":\"hi\"}}}",
             gid);
    json_decref(req);
    struct mcp_ticket *t = post(session, "anonymous", body);
    assert_int_equal(t->status, 202);
    mcp_ticket_unref(t);
    /* the upstream gets the answer under its own id */
    assert_string_equal(json_string_value(json_object_get(last_sent(a), "id")), "up-1");
    assert_non_null(json_object_get(last_sent(a), "result"));
    /* the client cancels its call: the upstream hears of it under its id */
    t = post(session, "anonymous",
             "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
             "\"requestId\":50,\"reason\":\"bored\"}}");
    assert_int_equal(t->status, 202);
    mcp_ticket_unref(t);
    json_t *n = last_sent(a);
    assert_string_equal(json_string_value(json_object_get(n, "method")), "notifications/cancelled");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(n, "params"), "requestId")),
                     uid);
    assert_true(call->end);
    mcp_ticket_unref(call);
}

/* Another client session (with sampling) speaking version, as setup makes
 * the first. */
static void open_session_v(char *out, size_t len, const char *version)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"%s\",\"capabilities\":{\"sampling\":{},"
             "\"elicitation\":{}},\"clientInfo\":{\"name\":\"t2\",\"version\":\"1\"}}}",
             version);
    struct mcp_ticket *t = post(NULL, "anonymous", body);
    assert_int_equal(t->status, 200);
    assert_non_null(strstr(t->out.data, version));
    snprintf(out, len, "%s", t->session_id);
    mcp_ticket_unref(t);
}

static void open_session(char *out, size_t len)
{
    open_session_v(out, len, "2025-11-25");
}

/* What a client's answer stream got so far ("" for nothing). */
static const char *got(struct mcp_ticket *t)
{
    return t->out.data ? t->out.data : "";
}

#define SAMPLE                                                                                     \
    "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"method\":\"sampling/createMessage\",\"params\":{"        \
    "\"messages\":[{\"role\":\"user\",\"content\":{\"type\":\"text\",\"text\":\"%s\"}}],"          \
    "\"maxTokens\":5%s}}"

static void server_requests_during_calls_reach_only_the_calling_session(void **state)
{
    struct fake *a = fake_named("a");
    char other[80];
    open_session(other, sizeof other);
    struct mcp_ticket *ca = post(session, "anonymous",
                                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                                 "\"params\":{\"name\":\"a__echo\"}}");
    json_int_t ua = last_id(a);
    struct mcp_ticket *cb = post(other, "anonymous",
                                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                                 "\"params\":{\"name\":\"a__echo\"}}");
    json_int_t ub = last_id(a);
    assert_true(ua != ub);
    /* on the answer stream of B's call (B's call is the newest, A's too) */
    inject_via(a, (uint64_t)ua, SAMPLE, "s-1", "for-a", "");
    inject_via(a, (uint64_t)ub, SAMPLE, "s-2", "for-b", "");
    assert_non_null(strstr(got(ca), "for-a"));
    assert_null(strstr(got(ca), "for-b"));
    assert_non_null(strstr(got(cb), "for-b"));
    assert_null(strstr(got(cb), "for-a"));
    /* named in _meta, on no stream (stdio, the GET stream) */
    char meta[96];
    snprintf(meta, sizeof meta, ",\"_meta\":{\"io.modelcontextprotocol/related-request-id\":%lld}",
             (long long)ua);
    inject(a, SAMPLE, "s-3", "named-a", meta);
    assert_non_null(strstr(got(ca), "named-a"));
    assert_null(strstr(got(cb), "named-a"));
    /* named by nothing while both sessions call a: refused, nobody gets it */
    size_t before = json_array_size(a->sent);
    inject(a, SAMPLE, "s-4", "whose", "");
    assert_null(strstr(got(ca), "whose"));
    assert_null(strstr(got(cb), "whose"));
    assert_int_equal(json_array_size(a->sent), before + 1);
    json_t *e = last_sent(a);
    assert_string_equal(json_string_value(json_object_get(e, "id")), "s-4");
    json_t *err = json_object_get(e, "error");
    assert_int_equal(json_integer_value(json_object_get(err, "code")), -32600);
    assert_non_null(strstr(json_string_value(json_object_get(err, "message")),
                           "several client sessions have calls in flight"));
    /* log messages are never guessed across sessions either */
    inject(a, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{"
              "\"level\":\"info\",\"data\":\"log-x\"}}");
    assert_null(strstr(got(ca), "log-x"));
    assert_null(strstr(got(cb), "log-x"));
    inject_via(a, (uint64_t)ub,
               "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{"
               "\"level\":\"info\",\"data\":\"log-b\"}}");
    assert_non_null(strstr(got(cb), "log-b"));
    assert_null(strstr(got(ca), "log-b"));
    /* A's call ends: a request on its stream afterwards is refused, and one
     * named by nothing now belongs to the only session still calling a */
    inject(a, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"content\":[]}}", (long long)ua);
    assert_true(ca->end);
    inject_via(a, (uint64_t)ua, SAMPLE, "s-5", "late-a", "");
    assert_null(strstr(got(ca), "late-a"));
    assert_null(strstr(got(cb), "late-a"));
    err = json_object_get(last_sent(a), "error");
    assert_non_null(strstr(json_string_value(json_object_get(err, "message")), "is over"));
    inject(a, SAMPLE, "s-6", "only-b", "");
    assert_non_null(strstr(got(cb), "only-b"));
    /* B answers A's request id: not B's to answer, the server hears nothing */
    before = json_array_size(a->sent);
    struct mcp_ticket *t = post(other, "anonymous",
                                "{\"jsonrpc\":\"2.0\",\"id\":\"pcl-s2c-1\",\"result\":{"
                                "\"role\":\"assistant\",\"content\":{\"type\":\"text\","
                                "\"text\":\"x\"}}}");
    assert_int_equal(t->status, 202);
    mcp_ticket_unref(t);
    assert_int_equal(json_array_size(a->sent), before);
    mcp_ticket_unref(ca);
    mcp_ticket_unref(cb);
}

static void batch_answers_once_every_element_is_answered(void **state)
{
    struct fake *a = fake_named("a");
    char old[80];
    open_session_v(old, sizeof old, "2025-03-26");
    struct mcp_ticket *t = post(old, "anonymous",
                                "[{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\","
                                "\"params\":{\"name\":\"a__echo\"}},"
                                "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\"},"
                                "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}]");
    assert_int_equal(t->status, 0); /* the call is upstream */
    assert_string_equal(last_method(a), "tools/call");
    inject(a, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"content\":[]}}",
           (long long)last_id(a));
    assert_int_equal(t->status, 200);
    assert_true(t->end);
    json_t *arr = json_loadb(t->out.data, t->out.len, 0, NULL);
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 2);
    json_int_t ids = 0;
    for (size_t i = 0; i < 2; i++)
        ids += json_integer_value(json_object_get(json_array_get(arr, i), "id"));
    assert_int_equal(ids, 15);
    assert_string_equal(t->action, "call_tool"); /* the element's audit is the batch's */
    json_decref(arr);
    mcp_ticket_unref(t);
    /* notifications only: 202 */
    t = post(old, "anonymous", "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}]");
    assert_int_equal(t->status, 202);
    mcp_ticket_unref(t);
    /* the session of setup speaks 2025-11-25: no batches */
    t = post(session, "anonymous", "[{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\"}]");
    assert_int_equal(t->status, 400);
    assert_non_null(strstr(t->out.data, "removed after protocol version 2025-03-26"));
    mcp_ticket_unref(t);
}

static struct config *config_with_b_at(const char *url)
{
    char path[128], yaml[1024];
    snprintf(yaml, sizeof yaml,
             "agents: [{id: alice}]\n"
             "policy: {files: [p.cedar]}\n"
             "mcp:\n"
             "  servers:\n"
             "    - {name: a, command: [x], tools: {hidden: [internal]}}\n"
             "    - {name: b, url: %s}\n",
             url);
    snprintf(path, sizeof path, "%s/t.yaml", dir);
    struct config_errors errs;
    struct config *next = config_load_string(path, yaml, strlen(yaml), &errs);
    assert_non_null(next);
    return next;
}

static void reload_reconnects_only_the_server_that_changed(void **state)
{
    struct fake *a = fake_named("a");
    size_t sent_a = json_array_size(a->sent);
    struct config *same = config_with_b_at("http://127.0.0.1:1/mcp");
    mcp_core_reload(core, same);
    assert_int_equal(nfakes, 2); /* nothing changed: nothing reconnected */
    struct config *moved = config_with_b_at("http://127.0.0.1:2/mcp");
    mcp_core_reload(core, moved);
    assert_int_equal(nfakes, 3); /* b again, a untouched */
    assert_string_equal(fakes[2]->name, "b");
    assert_int_equal(json_array_size(a->sent), sent_a); /* a was not initialized again */
    fakes[2]->ev->on_state(fakes[2]->ctx, MCP_UPSTREAM_READY, NULL);
    assert_string_equal(last_method(fakes[2]), "initialize"); /* b is, once READY */
    /* a still takes calls at once, with the tools it had */
    struct mcp_ticket *t = post(session, "anonymous",
                                "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\","
                                "\"params\":{\"name\":\"a__echo\"}}");
    assert_string_equal(last_method(a), "tools/call");
    mcp_ticket_unref(t);
    config_unref(same);
    config_unref(moved);
}

static void list_changed_refetches_and_reaches_get_streams(void **state)
{
    struct fake *b = fake_named("b");
    struct mcp_ticket *g = get_stream(session);
    assert_int_equal(g->status, 200);
    assert_int_equal(g->stream, 1);
    struct mcp_ticket *g2 = get_stream(session);
    assert_int_equal(g2->status, 409); /* one GET stream per session */
    mcp_ticket_unref(g2);
    inject(b, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}");
    assert_string_equal(last_method(b), "tools/list");
    inject(b,
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[{\"name\":\"new\","
           "\"inputSchema\":{}}]}}",
           (long long)last_id(b));
    assert_non_null(g->out.data);
    assert_non_null(strstr(g->out.data, "notifications/tools/list_changed"));
    struct mcp_ticket *t =
        post(session, "anonymous", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    assert_non_null(strstr(t->out.data, "b__new"));
    assert_null(strstr(t->out.data, "b__add"));
    mcp_ticket_unref(t);
    /* DELETE ends the session and its stream */
    struct mcp_msg *m = calloc(1, sizeof *m);
    m->method = MCP_DELETE;
    m->t = mcp_ticket_new();
    m->cfg = config_ref(cfg);
    snprintf(m->session, sizeof m->session, "%s", session);
    m->agent = strdup("anonymous");
    m->owner = strdup("anonymous");
    t = m->t;
    mcp_ticket_ref(t);
    mcp_core_handle(core, m);
    assert_int_equal(t->status, 200);
    mcp_ticket_unref(t);
    assert_true(g->end);
    assert_int_equal(mcp_core_session_count(core), 0);
    mcp_ticket_unref(g);
}

static void list_changed_while_the_get_stream_is_lost_is_not_lost(void **state)
{
    struct fake *b = fake_named("b");
    struct mcp_ticket *g0 = get_stream(session);
    mcp_ticket_finish(g0); /* the stream breaks (the worker would close it) */
    mcp_ticket_unref(g0);
    inject(b, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}");
    inject(b,
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[{\"name\":\"new\","
           "\"inputSchema\":{}}]}}",
           (long long)last_id(b));
    struct mcp_ticket *g = get_stream(session);
    assert_int_equal(g->status, 200);
    assert_non_null(g->out.data);
    assert_non_null(strstr(g->out.data, "notifications/tools/list_changed"));
    mcp_ticket_unref(g);
}

static void restarted_server_is_initialized_again_and_calls_wait_for_it(void **state)
{
    struct fake *a = fake_named("a"), *b = fake_named("b");
    a->ev->on_state(a->ctx, MCP_UPSTREAM_DOWN, "process exited");
    a->ev->on_state(a->ctx, MCP_UPSTREAM_READY, NULL);
    assert_string_equal(last_method(a), "initialize");
    struct mcp_ticket *t = post(session, "anonymous",
                                "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\","
                                "\"params\":{\"name\":\"a__echo\"}}");
    assert_int_equal(t->status, 0); /* parked */
    /* calls to the other server do not wait */
    struct mcp_ticket *tb = post(session, "anonymous",
                                 "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\","
                                 "\"params\":{\"name\":\"b__add\"}}");
    assert_string_equal(last_method(b), "tools/call");
    inject(a,
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"protocolVersion\":\"2025-06-18\","
           "\"capabilities\":{\"tools\":{}}}}",
           (long long)last_id(a));
    assert_string_equal(last_method(a), "tools/list");
    inject(a,
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[{\"name\":\"echo\","
           "\"inputSchema\":{}}]}}",
           (long long)last_id(a));
    assert_string_equal(last_method(a), "tools/call");
    inject(a, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"content\":[]}}",
           (long long)last_id(a));
    json_t *j = answer(t);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 8);
    assert_non_null(json_object_get(j, "result"));
    json_decref(j);
    mcp_ticket_unref(t);
    mcp_ticket_unref(tb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(list_merges_prefixes_and_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(call_is_routed_with_ids_and_progress_rewritten, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(forbidden_and_unknown_tools_say_which, setup, teardown),
        cmocka_unit_test_setup_teardown(down_upstream_fails_its_calls_only, setup, teardown),
        cmocka_unit_test_setup_teardown(sessions_belong_to_their_principal, setup, teardown),
        cmocka_unit_test_setup_teardown(server_requests_reach_the_calling_client_and_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(server_requests_during_calls_reach_only_the_calling_session,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(batch_answers_once_every_element_is_answered, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reload_reconnects_only_the_server_that_changed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(list_changed_refetches_and_reaches_get_streams, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(restarted_server_is_initialized_again_and_calls_wait_for_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(lists_page_across_servers, setup, teardown),
        cmocka_unit_test_setup_teardown(list_changed_while_the_get_stream_is_lost_is_not_lost,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
