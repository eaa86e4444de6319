// SPDX-License-Identifier: Apache-2.0
// Fuzz target for the MCP hub's JSON-RPC entry: the input is split at the
// first NUL byte into a client POST body (sent on an initialized session of
// protocol 2025-03-26, so JSON arrays are batches)
// and a message from the upstream (a fake transport), so request parsing,
// dispatch, id/progressToken rewriting and upstream message handling all
// see hostile bytes. Nothing may crash, leak or trip the sanitizers.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "mcp/internal.h"

struct fake {
    const struct mcp_upstream_events *ev;
    void *ctx;
    long long last_id;
};

static struct fake *the_fake;

static struct mcp_upstream *f_open(uv_loop_t *loop, const struct mcp_upstream_spec *spec,
                                   const struct mcp_upstream_events *ev, void *ctx)
{
    struct fake *f = calloc(1, sizeof *f);
    f->ev = ev;
    f->ctx = ctx;
    the_fake = f;
    return (struct mcp_upstream *)f;
}

static int f_send(struct mcp_upstream *u, const char *json, size_t len,
                  const struct mcp_send_opts *o)
{
    struct fake *f = (struct fake *)u;
    if (o && o->expects_response)
        f->last_id = (long long)o->cookie;
    return 0;
}

static void f_initialized(struct mcp_upstream *u, const char *v)
{
}

static void f_close(struct mcp_upstream *u)
{
    free(u);
}

static const struct mcp_transport_ops ops = {f_open, f_send, f_initialized, f_close};

static void inject(struct fake *f, const char *fmt, long long id)
{
    char buf[512];
    snprintf(buf, sizeof buf, fmt, id);
    f->ev->on_message_via(f->ctx, buf, strlen(buf), 0);
}

static struct mcp_ticket *post(struct mcp_core *c, struct config *cfg, const char *session,
                               const char *body, size_t len)
{
    struct mcp_msg *m = calloc(1, sizeof *m);
    m->method = MCP_POST;
    m->t = mcp_ticket_new();
    m->cfg = config_ref(cfg);
    m->body = malloc(len ? len : 1);
    memcpy(m->body, body, len);
    m->len = len;
    snprintf(m->session, sizeof m->session, "%s", session);
    m->accept_sse = 1;
    m->agent = strdup("anonymous");
    m->owner = strdup("anonymous");
    struct mcp_ticket *t = m->t;
    mcp_ticket_ref(t);
    mcp_core_handle(c, m);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config *cfg;
    static const char yaml[] = "mcp: {servers: [{name: f, command: [x]}]}\n";
    if (cfg == NULL && (cfg = config_load_string("f.yaml", yaml, sizeof yaml - 1, NULL)) == NULL)
        abort();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct mcp_core *c = mcp_core_new(&loop, cfg, &ops);
    struct fake *f = the_fake;
    f->ev->on_state(f->ctx, MCP_UPSTREAM_READY, NULL);
    inject(f,
           "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"protocolVersion\":\"2025-06-18\","
           "\"capabilities\":{\"tools\":{},\"prompts\":{},\"resources\":{\"subscribe\":true},"
           "\"logging\":{},\"completions\":{}}}}",
           f->last_id);
    /* four list fetches: answer each with one item */
    for (int i = 0; i < 4; i++)
        inject(f,
               "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[{\"name\":\"t\"}],"
               "\"prompts\":[{\"name\":\"p\"}],\"resources\":[{\"uri\":\"r://x\"}],"
               "\"resourceTemplates\":[{\"uriTemplate\":\"r://{x}\"}]}}",
               f->last_id - 3 + i);
    const char init[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                        "\"protocolVersion\":\"2025-03-26\",\"capabilities\":{\"sampling\":{},"
                        "\"roots\":{}}}}";
    struct mcp_ticket *t = post(c, cfg, "", init, sizeof init - 1);
    char session[80];
    snprintf(session, sizeof session, "%s", t->session_id);
    mcp_ticket_unref(t);

    const uint8_t *nul = memchr(data, 0, size);
    size_t n1 = nul ? (size_t)(nul - data) : size;
    t = post(c, cfg, session, (const char *)data, n1);
    if (nul && f->ev) {
        /* the upstream's turn: raw bytes, then the same bytes as the answer
         * to whatever was forwarded */
        /* on the answer stream of the last request (HTTP) or on none (stdio,
         * the GET stream), by the parity of the length */
        size_t n2 = size - n1 - 1;
        f->ev->on_message_via(f->ctx, (const char *)nul + 1, n2,
                              n2 % 2 ? (uint64_t)f->last_id : 0);
    }
    mcp_ticket_unref(t);
    mcp_core_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}
