// SPDX-License-Identifier: Apache-2.0
// Streamable HTTP MCP servers (see transport.h): each message is a POST whose
// answer is JSON or an SSE stream; Mcp-Session-Id and MCP-Protocol-Version
// are kept and sent; a GET stream carries server-initiated messages; DELETE
// ends the session. Transfers go through src/upstream on the hub's loop.
#include "mcp/transport_frame.h"
#include "mcp/transport_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "upstream/upstream.h"

#define SESSION_ID_MAX 256
#define CONNECT_TIMEOUT_MS 10000
#define DELETE_TIMEOUT_MS 2000
#define GET_RETRY_MIN_MS 500
#define GET_RETRY_MAX_MS 30000
#define INIT_RETRY_MIN_MS 500
#define INIT_RETRY_MAX_MS 30000
#define XFER_HEADERS_MAX 64
#define RESUME_MAX 10 /* resumptions of one request's stream */
#define RESUME_DELAY_MAX_MS 10000

/* X_RESUME: a GET with Last-Event-ID that picks up a POST's answer stream
 * the server closed before the response (the same xfer, same request). */
enum xfer_kind { X_POST, X_GET, X_DELETE, X_RESUME };
enum answer_mode { A_NONE, A_JSON, A_SSE, A_IGNORE };

struct http_up;

/* One HTTP exchange. Freed by its on_done, or by the kick when it was
 * cancelled or never started. */
struct xfer {
    struct http_up *h;
    struct xfer *prev, *next;
    enum xfer_kind kind;
    struct upstream_req *req; /* NULL before start and after on_done */
    int started;
    int dead; /* cancelled: callbacks are ignored, nothing is reported */
    char *body;
    size_t body_len;
    struct upstream_header *hdrs; /* and their strings, one allocation */
    size_t nhdrs;
    uint64_t cookie;
    int expects;
    char *id; /* the request's raw id token */
    size_t id_len;
    int is_init;
    int had_session;
    long status;
    enum answer_mode mode;
    buf_t json;
    struct mcp_sse sse;
    int answered;
    int delivered; /* GET: messages came on this stream */
    int resumes;
    uint64_t start_at; /* X_RESUME: uv_now() before which it must not start */
    char resume_id[256];
    char session[SESSION_ID_MAX + 1];
    const char *fail; /* what went wrong, safe to show */
    char failbuf[96];
};

struct http_up {
    struct mcp_upstream base; /* first: MCP_TRANSPORT_HTTP */
    uv_loop_t *loop;
    struct upstream *ups;
    char *name;
    char *url;
    struct mcp_header *headers; /* static ones, copied */
    size_t nheaders;
    uint32_t timeout_ms;
    struct mcp_upstream_events ev;
    void *ctx;
    char session[SESSION_ID_MAX + 1];
    char proto[64];
    int initialized;
    struct xfer *xfers;
    struct xfer *get;        /* the GET stream, or NULL */
    char last_event_id[256]; /* of the GET stream */
    uint32_t get_delay_ms;
    uint32_t init_delay_ms; /* READY again after an initialize got no answer */
    int get_none;           /* 405: the server offers no GET stream */
    int want_get;           /* start the GET stream at the next kick */
    int lost_pending;       /* the session was lost: report DOWN, READY at the kick */
    int ready_pending;
    int cb_depth; /* inside upstream callbacks: transfers start at the kick */
    int closing;
    int deleting;     /* the DELETE was started */
    int handles;      /* timer + kick, until teardown closes them */
    int torn;         /* teardown closed them */
    uv_timer_t timer; /* READY after open; GET reconnect */
    uv_timer_t kick;  /* work that must not run inside upstream callbacks */
};

static void kick(struct http_up *h);
static void start_xfer(struct http_up *h, struct xfer *x);

/* ---- helpers ---------------------------------------------------------------- */

static void log_up(enum log_level level, const char *msg, const struct http_up *h, const char *key,
                   const char *val, long status)
{
    if (!log_enabled(level))
        return;
    buf_t b;
    buf_init(&b, 8192);
    if (log_line_begin(&b, level, msg) == 0) {
        log_line_str(&b, "server", h->name, strlen(h->name));
        if (status)
            log_line_int(&b, "status", status);
        if (key && val)
            log_line_str(&b, key, val, strlen(val));
        log_line_end(&b);
    }
    buf_free(&b);
}

static int header_ok(const char *name, const char *value)
{
    return name && value && *name && !strpbrk(name, "\r\n: \t") && !strpbrk(value, "\r\n");
}

static void xfer_link(struct http_up *h, struct xfer *x)
{
    x->next = h->xfers;
    if (h->xfers)
        h->xfers->prev = x;
    h->xfers = x;
}

static void xfer_free(struct xfer *x)
{
    struct http_up *h = x->h;
    if (x->prev)
        x->prev->next = x->next;
    else
        h->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    if (h->get == x)
        h->get = NULL;
    buf_free(&x->json);
    mcp_sse_free(&x->sse);
    free(x->body);
    free(x->hdrs);
    free(x->id);
    free(x);
}

/* Marks a transfer cancelled; the kick stops and frees it (outside any
 * upstream callback: libcurl must not be re-entered). */
static void xfer_kill(struct xfer *x)
{
    x->dead = 1;
    kick(x->h);
}

/* Builds the request headers: the fixed ones, the static ones, the
 * message's own, then the session's. One allocation. */
static int xfer_headers(struct xfer *x, const struct mcp_send_opts *o, int with_session)
{
    struct http_up *h = x->h;
    const char *names[XFER_HEADERS_MAX], *values[XFER_HEADERS_MAX];
    size_t n = 0;
    if (x->kind == X_POST) {
        names[n] = "Accept", values[n++] = "application/json, text/event-stream";
        names[n] = "Content-Type", values[n++] = "application/json";
    } else if (x->kind == X_GET) {
        names[n] = "Accept", values[n++] = "text/event-stream";
        if (h->last_event_id[0])
            names[n] = "Last-Event-ID", values[n++] = h->last_event_id;
    } else if (x->kind == X_RESUME) {
        names[n] = "Accept", values[n++] = "text/event-stream";
        names[n] = "Last-Event-ID", values[n++] = x->resume_id;
    }
    for (size_t i = 0; i < h->nheaders && n < XFER_HEADERS_MAX - 2; i++)
        names[n] = h->headers[i].name, values[n++] = h->headers[i].value;
    for (size_t i = 0; o && i < o->nheaders && n < XFER_HEADERS_MAX - 2; i++) {
        if (!header_ok(o->headers[i].name, o->headers[i].value))
            return -1;
        names[n] = o->headers[i].name, values[n++] = o->headers[i].value;
    }
    if (with_session && h->session[0]) {
        names[n] = "Mcp-Session-Id", values[n++] = h->session;
        x->had_session = 1;
    }
    if (!x->is_init && h->proto[0])
        names[n] = "MCP-Protocol-Version", values[n++] = h->proto;
    size_t bytes = n * sizeof(struct upstream_header);
    for (size_t i = 0; i < n; i++)
        bytes += strlen(names[i]) + strlen(values[i]) + 2;
    char *mem = malloc(bytes);
    if (!mem)
        return -1;
    x->hdrs = (struct upstream_header *)mem;
    char *p = mem + n * sizeof(struct upstream_header);
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(names[i]) + 1, vl = strlen(values[i]) + 1;
        memcpy(p, names[i], nl);
        x->hdrs[i].name = p;
        p += nl;
        memcpy(p, values[i], vl);
        x->hdrs[i].value = p;
        p += vl;
    }
    x->nhdrs = n;
    return 0;
}

static struct xfer *xfer_new(struct http_up *h, enum xfer_kind kind)
{
    struct xfer *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->h = h;
    x->kind = kind;
    buf_init(&x->json, MCP_MESSAGE_MAX);
    mcp_sse_init(&x->sse, MCP_MESSAGE_MAX);
    return x;
}

/* ---- delivering what the server sent ---------------------------------------- */

static int deliver(void *ctx, const char *json, size_t len)
{
    struct xfer *x = ctx;
    struct http_up *h = x->h;
    if (x->dead || h->closing)
        return 1;
    struct mcp_json_info info;
    int is_ours = mcp_json_info(json, len, &info) == 0 && x->id &&
                  mcp_json_is_response_to(&info, x->id, x->id_len);
    if (x->status >= 300 && !is_ours)
        return 0; /* an error page's body is not a message */
    if (is_ours)
        x->answered = 1;
    x->delivered = 1;
    if (h->ev.on_message_via != NULL)
        h->ev.on_message_via(h->ctx, json, len, x->kind != X_GET && x->expects ? x->cookie : 0);
    else
        h->ev.on_message(h->ctx, json, len);
    return x->dead || h->closing ? 1 : 0;
}

static int deliver_text(struct xfer *x, const char *text, size_t len)
{
    int rc = mcp_json_split(text, len, deliver, x);
    if (rc == -EINVAL) {
        log_up(LOG_WARN, "mcp server sent an answer that is not JSON-RPC", x->h, NULL, NULL,
               x->status);
        if (!x->fail)
            x->fail = "the MCP server's answer is not JSON-RPC";
        return 0;
    }
    return rc;
}

static int on_event(void *ctx, const struct mcp_sse_event *ev)
{
    struct xfer *x = ctx;
    if (x->kind == X_GET && ev->id[0])
        snprintf(x->h->last_event_id, sizeof(x->h->last_event_id), "%s", ev->id);
    if (strcmp(ev->type, "message") != 0)
        return 0;
    return deliver_text(x, ev->data, ev->data_len);
}

/* ---- upstream callbacks ---------------------------------------------------------- */

static int x_on_header(void *ud, const char *name, size_t nl, const char *value, size_t vl)
{
    struct xfer *x = ud;
    if (x->dead)
        return 1;
    if (nl == 14 && strncasecmp(name, "mcp-session-id", 14) == 0 && vl <= SESSION_ID_MAX) {
        for (size_t i = 0; i < vl; i++)
            if (value[i] < 0x21 || value[i] > 0x7e)
                return 0; /* not a visible-ASCII id: ignored */
        memcpy(x->session, value, vl);
        x->session[vl] = '\0';
    }
    return 0;
}

static int ctype_is(const char *ctype, const char *want)
{
    size_t n = strlen(want);
    return ctype && strncasecmp(ctype, want, n) == 0 &&
           (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

/* The server forgot the session: everything in flight belonged to it. The
 * kick reports DOWN then READY so the hub initializes again. */
static void session_lost(struct http_up *h, struct xfer *except)
{
    log_up(LOG_WARN, "mcp server lost the session, starting a new one", h, NULL, NULL, 404);
    h->session[0] = '\0';
    h->proto[0] = '\0';
    h->initialized = 0;
    h->want_get = 0;
    h->last_event_id[0] = '\0';
    uv_timer_stop(&h->timer);
    for (struct xfer *x = h->xfers; x; x = x->next)
        if (x != except && x->kind != X_DELETE)
            x->dead = 1;
    if (except)
        except->dead = 1;
    h->lost_pending = 1;
    kick(h);
}

static int handle_headers(struct xfer *x, long status, const char *ctype)
{
    struct http_up *h = x->h;
    x->status = status;
    if (status == 404 && x->had_session && x->kind != X_DELETE) {
        session_lost(h, x);
        return 1;
    }
    if (x->kind == X_DELETE) {
        x->mode = A_IGNORE;
        return 0;
    }
    if (x->kind == X_RESUME) {
        if (status < 200 || status >= 300 || !ctype_is(ctype, "text/event-stream")) {
            snprintf(x->failbuf, sizeof(x->failbuf),
                     "the MCP server's answer stream broke and resuming it got HTTP %ld", status);
            x->fail = x->failbuf;
            return 1;
        }
        x->mode = A_SSE;
        return 0;
    }
    if (x->kind == X_GET) {
        if (status == 405) {
            h->get_none = 1;
            log_up(LOG_INFO, "mcp server offers no GET stream", h, NULL, NULL, status);
            return 1;
        }
        if (status < 200 || status >= 300 || !ctype_is(ctype, "text/event-stream")) {
            snprintf(x->failbuf, sizeof(x->failbuf), "GET stream answered HTTP %ld", status);
            x->fail = x->failbuf;
            return 1;
        }
        h->get_delay_ms = GET_RETRY_MIN_MS;
        x->mode = A_SSE;
        return 0;
    }
    if (x->is_init && status >= 200 && status < 300) {
        /* before the answer is delivered: the hub's next message needs it */
        memcpy(h->session, x->session, sizeof(h->session));
    }
    if (status >= 300) {
        snprintf(x->failbuf, sizeof(x->failbuf), "the MCP server answered HTTP %ld", status);
        x->fail = x->failbuf;
    }
    if (status == 202 || status == 204) {
        x->mode = A_IGNORE;
        return 0;
    }
    if (ctype_is(ctype, "text/event-stream") && status < 300)
        x->mode = A_SSE;
    else if (ctype_is(ctype, "application/json"))
        x->mode = A_JSON; /* error statuses too: it may hold a JSON-RPC error */
    else
        x->mode = A_IGNORE;
    if (x->mode == A_IGNORE && status < 300 && x->expects)
        x->fail = "the MCP server answered with an unexpected content type";
    return 0;
}

static int x_on_headers(void *ud, long status, const char *ctype)
{
    struct xfer *x = ud;
    if (x->dead)
        return 1;
    struct http_up *h = x->h;
    h->cb_depth++;
    int rc = handle_headers(x, status, ctype);
    h->cb_depth--;
    return rc || x->dead;
}

static int x_on_data(void *ud, const char *data, size_t len)
{
    struct xfer *x = ud;
    if (x->dead)
        return -1;
    struct http_up *h = x->h;
    int rc = 0;
    h->cb_depth++;
    if (x->mode == A_JSON) {
        if (buf_append(&x->json, data, len) != 0) {
            x->fail = "the MCP server's answer is over the size limit";
            rc = -1;
        }
    } else if (x->mode == A_SSE) {
        int src = mcp_sse_feed(&x->sse, data, len, on_event, x);
        if (src == -E2BIG || src == -ENOMEM) {
            x->fail = "the MCP server sent an event over the size limit";
            rc = -1;
        }
    }
    h->cb_depth--;
    return rc < 0 || x->dead ? -1 : 0;
}

/* An initialize failed a while ago: invite the hub to try again. */
static void on_init_retry(uv_timer_t *t)
{
    struct http_up *h = t->data;
    if (h->closing || h->initialized)
        return;
    h->ev.on_state(h->ctx, MCP_UPSTREAM_READY, "retrying initialize");
}

static void on_get_timer(uv_timer_t *t)
{
    struct http_up *h = t->data;
    if (h->closing || !h->initialized || h->get_none || h->get)
        return;
    h->want_get = 1;
    kick(h);
}

/* A request's SSE answer ended before its response but carried event ids:
 * turn x into a GET with Last-Event-ID that the kick starts after the
 * server's retry delay. 0, or -1 when it cannot be resumed. */
static int resume_later(struct xfer *x, enum upstream_result res)
{
    struct http_up *h = x->h;
    if (x->dead || h->closing || !x->expects || x->answered || x->mode != A_SSE || !x->sse.id[0] ||
        x->resumes >= RESUME_MAX || x->status >= 300 || (res != UPSTREAM_OK && res != UPSTREAM_EIO))
        return -1;
    char id[sizeof(x->resume_id)];
    memcpy(id, x->sse.id, sizeof(id));
    int64_t retry = x->sse.retry_ms;
    free(x->hdrs);
    x->hdrs = NULL;
    free(x->body);
    x->body = NULL;
    x->body_len = 0;
    mcp_sse_free(&x->sse);
    mcp_sse_init(&x->sse, MCP_MESSAGE_MAX);
    memcpy(x->sse.id, id, sizeof(id)); /* a stream without new ids resumes from here */
    memcpy(x->resume_id, id, sizeof(id));
    x->kind = X_RESUME;
    x->mode = A_NONE;
    x->status = 0;
    x->fail = NULL;
    x->started = 0;
    x->had_session = 0;
    x->resumes++;
    if (xfer_headers(x, NULL, 1) < 0)
        return -1;
    if (retry < 0)
        retry = GET_RETRY_MIN_MS;
    x->start_at =
        uv_now(h->loop) + (uint64_t)(retry < RESUME_DELAY_MAX_MS ? retry : RESUME_DELAY_MAX_MS);
    log_up(LOG_INFO, "mcp server closed an answer stream early, resuming it", h, "last_event_id",
           id, 0);
    kick(h);
    return 0;
}

static void x_on_done(void *ud, enum upstream_result res, const char *errmsg)
{
    struct xfer *x = ud;
    struct http_up *h = x->h;
    x->req = NULL;
    h->cb_depth++;
    if (!x->dead && res == UPSTREAM_OK && x->mode == A_JSON && x->json.len)
        deliver_text(x, x->json.data, x->json.len);
    if ((x->kind == X_POST || x->kind == X_RESUME) && resume_later(x, res) == 0) {
        h->cb_depth--;
        return; /* x lives on as the resuming GET */
    }
    if (!x->dead && res != UPSTREAM_OK && !x->fail)
        x->fail = errmsg;
    if (!x->dead && (x->kind == X_POST || x->kind == X_RESUME)) {
        if (x->is_init && x->answered)
            h->init_delay_ms = INIT_RETRY_MIN_MS;
        if (x->expects && !x->answered) {
            const char *why =
                x->fail ? x->fail : "the MCP server's answer ended without a response";
            log_up(LOG_WARN, "mcp request got no answer", h, "reason", why, x->status);
            if (x->is_init) {
                uint32_t delay = h->init_delay_ms;
                h->init_delay_ms = delay >= INIT_RETRY_MAX_MS / 2 ? INIT_RETRY_MAX_MS : delay * 2;
                uv_timer_start(&h->timer, on_init_retry, delay, 0);
            }
            if (h->ev.on_send_error)
                h->ev.on_send_error(h->ctx, x->cookie, why);
        } else if (!x->expects && x->fail) {
            log_up(LOG_WARN, "mcp server refused a message", h, "reason", x->fail, x->status);
        }
    }
    int reconnect = x->kind == X_GET && !x->dead && !h->closing && h->initialized && !h->get_none;
    if (reconnect) {
        if (x->fail || res != UPSTREAM_OK)
            log_up(LOG_INFO, "mcp server GET stream ended", h, "reason", x->fail ? x->fail : errmsg,
                   x->status);
        uint32_t delay = x->delivered ? GET_RETRY_MIN_MS : h->get_delay_ms;
        h->get_delay_ms = delay >= GET_RETRY_MAX_MS / 2 ? GET_RETRY_MAX_MS : delay * 2;
        if (x->sse.retry_ms >= 0 && x->mode == A_SSE) /* the server said when to come back */
            delay =
                x->sse.retry_ms < GET_RETRY_MAX_MS ? (uint32_t)x->sse.retry_ms : GET_RETRY_MAX_MS;
        uv_timer_start(&h->timer, on_get_timer, delay, 0);
    }
    h->cb_depth--;
    xfer_free(x);
    if (h->closing)
        kick(h);
}

static const struct upstream_callbacks xfer_callbacks = {
    .on_headers = x_on_headers,
    .on_data = x_on_data,
    .on_done = x_on_done,
    .on_header = x_on_header,
};

/* ---- starting, the kick, teardown ------------------------------------------------ */

/* Starts x now; on failure x is freed and, for a request the hub was told
 * was sent, the failure reported. */
static void start_xfer(struct http_up *h, struct xfer *x)
{
    const char *method = x->kind == X_POST ? "POST" : x->kind == X_DELETE ? "DELETE" : "GET";
    struct upstream_opts o = {
        .method = method,
        .url = h->url,
        .headers = x->hdrs,
        .nheaders = x->nhdrs,
        .body = x->body,
        .body_len = x->body_len,
        .timeout_ms = x->kind == X_POST || x->kind == X_RESUME ? h->timeout_ms
                      : x->kind == X_DELETE                    ? DELETE_TIMEOUT_MS
                                                               : 0,
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
    };
    x->started = 1;
    x->req = upstream_start(h->ups, &o, &xfer_callbacks, x);
    if (x->req)
        return;
    if ((x->kind == X_POST || x->kind == X_RESUME) && x->expects && !h->closing &&
        h->ev.on_send_error)
        h->ev.on_send_error(h->ctx, x->cookie, "could not start the request to the MCP server");
    xfer_free(x);
}

static void start_get(struct http_up *h)
{
    h->want_get = 0;
    if (h->closing || !h->initialized || h->get_none || h->get)
        return;
    struct xfer *x = xfer_new(h, X_GET);
    if (!x)
        return;
    if (xfer_headers(x, NULL, 1) < 0) {
        free(x);
        return;
    }
    xfer_link(h, x);
    h->get = x;
    start_xfer(h, x);
}

static void start_delete(struct http_up *h)
{
    h->deleting = 1;
    if (!h->session[0])
        return;
    struct xfer *x = xfer_new(h, X_DELETE);
    if (!x)
        return;
    if (xfer_headers(x, NULL, 1) < 0) {
        free(x);
        return;
    }
    xfer_link(h, x);
    start_xfer(h, x);
}

static void on_up_handle_closed(uv_handle_t *hd)
{
    struct http_up *h = hd->data;
    if (--h->handles > 0)
        return;
    upstream_free(h->ups);
    for (size_t i = 0; i < h->nheaders; i++) {
        free((char *)h->headers[i].name);
        free((char *)h->headers[i].value);
    }
    free(h->headers);
    free(h->name);
    free(h->url);
    free(h);
}

static void on_kick(uv_timer_t *t)
{
    struct http_up *h = t->data;
    /* cancelled transfers */
    for (struct xfer *x = h->xfers, *next; x; x = next) {
        next = x->next;
        if (!x->dead)
            continue;
        if (x->req)
            upstream_cancel(x->req);
        xfer_free(x);
    }
    if (h->closing) {
        if (!h->deleting)
            start_delete(h);
        if (!h->xfers && !h->torn) {
            h->torn = 1;
            uv_close((uv_handle_t *)&h->timer, on_up_handle_closed);
            uv_close((uv_handle_t *)&h->kick, on_up_handle_closed);
        }
        return;
    }
    if (h->lost_pending) {
        h->lost_pending = 0;
        h->ev.on_state(h->ctx, MCP_UPSTREAM_DOWN, "the MCP server lost the session");
        if (h->closing)
            return;
        h->ev.on_state(h->ctx, MCP_UPSTREAM_READY, "a new session is needed");
        if (h->closing)
            return;
    }
    /* messages sent from inside callbacks, and streams to resume when due */
    uint64_t now = uv_now(h->loop), wake = 0;
    for (struct xfer *x = h->xfers, *next; x; x = next) {
        next = x->next;
        if (x->started || (x->kind != X_POST && x->kind != X_RESUME))
            continue;
        if (x->kind == X_RESUME && x->start_at > now) {
            if (!wake || x->start_at - now < wake)
                wake = x->start_at - now;
            continue;
        }
        start_xfer(h, x);
        if (h->closing)
            return;
    }
    if (wake)
        uv_timer_start(&h->kick, on_kick, wake, 0);
    if (h->want_get)
        start_get(h);
}

static void kick(struct http_up *h)
{
    if (!h->torn)
        uv_timer_start(&h->kick, on_kick, 0, 0);
}

static void on_ready_timer(uv_timer_t *t)
{
    struct http_up *h = t->data;
    if (h->closing || !h->ready_pending)
        return;
    h->ready_pending = 0;
    h->ev.on_state(h->ctx, MCP_UPSTREAM_READY, "ready");
}

/* ---- the transport API -------------------------------------------------------------- */

struct mcp_upstream *mcp_http_open(uv_loop_t *loop, const struct mcp_upstream_spec *spec,
                                   const struct mcp_upstream_events *ev, void *ctx)
{
    const char *name = spec->name ? spec->name : "?";
    if (strncasecmp(spec->url, "http://", 7) != 0 && strncasecmp(spec->url, "https://", 8) != 0) {
        log_msg(LOG_ERROR, NULL, "mcp server %s: url must start with http:// or https://", name);
        return NULL;
    }
    for (size_t i = 0; i < spec->nheaders; i++) {
        if (!header_ok(spec->headers[i].name, spec->headers[i].value)) {
            /* the value may be a secret: only its position is named */
            log_msg(LOG_ERROR, NULL, "mcp server %s: header %zu has a bad name or value", name,
                    i + 1);
            return NULL;
        }
    }
    struct http_up *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->base.kind = MCP_TRANSPORT_HTTP;
    h->loop = loop;
    h->ev = *ev;
    h->ctx = ctx;
    h->timeout_ms = spec->request_timeout_ms;
    h->get_delay_ms = GET_RETRY_MIN_MS;
    h->init_delay_ms = INIT_RETRY_MIN_MS;
    h->name = strdup(name);
    h->url = strdup(spec->url);
    h->headers = calloc(spec->nheaders + 1, sizeof(*h->headers));
    h->ups = upstream_new(loop);
    int ok = h->name && h->url && h->headers && h->ups;
    for (size_t i = 0; ok && i < spec->nheaders; i++) {
        h->headers[i].name = strdup(spec->headers[i].name);
        h->headers[i].value = strdup(spec->headers[i].value);
        h->nheaders = i + 1;
        ok = h->headers[i].name && h->headers[i].value;
    }
    uv_timer_init(loop, &h->timer);
    uv_timer_init(loop, &h->kick);
    h->timer.data = h->kick.data = h;
    h->handles = 2;
    if (!ok) {
        if (!h->ups)
            h->ups = upstream_new(loop); /* on_up_handle_closed frees one */
        h->closing = 1;
        h->torn = 1;
        uv_close((uv_handle_t *)&h->timer, on_up_handle_closed);
        uv_close((uv_handle_t *)&h->kick, on_up_handle_closed);
        return NULL;
    }
    h->ready_pending = 1;
    uv_timer_start(&h->timer, on_ready_timer, 0, 0);
    return &h->base;
}

int mcp_http_send(struct mcp_upstream *u, const char *json, size_t len,
                  const struct mcp_send_opts *opts)
{
    struct http_up *h = (struct http_up *)u;
    if (h->closing)
        return -1;
    struct xfer *x = xfer_new(h, X_POST);
    if (!x)
        return -1;
    x->cookie = opts->cookie;
    x->expects = opts->expects_response;
    struct mcp_json_info info;
    if (mcp_json_info(json, len, &info) == 0) {
        x->is_init =
            info.method && info.method_len == 12 && memcmp(info.method, "\"initialize\"", 12) == 0;
        if (info.id && x->expects) {
            x->id = malloc(info.id_len);
            if (!x->id)
                goto fail;
            memcpy(x->id, info.id, info.id_len);
            x->id_len = info.id_len;
        }
    }
    if (x->is_init) {
        /* a new session: the old one's id, version and GET stream go */
        h->session[0] = '\0';
        h->proto[0] = '\0';
        h->initialized = 0;
        h->last_event_id[0] = '\0';
        uv_timer_stop(&h->timer);
        if (h->get)
            xfer_kill(h->get);
    }
    x->body = malloc(len ? len : 1);
    if (!x->body)
        goto fail;
    memcpy(x->body, json, len);
    x->body_len = len;
    if (xfer_headers(x, opts, !x->is_init) < 0)
        goto fail;
    xfer_link(h, x);
    if (h->cb_depth) {
        kick(h); /* libcurl must not be re-entered from its own callbacks */
        return 0;
    }
    x->started = 1;
    struct upstream_opts o = {
        .method = "POST",
        .url = h->url,
        .headers = x->hdrs,
        .nheaders = x->nhdrs,
        .body = x->body,
        .body_len = x->body_len,
        .timeout_ms = h->timeout_ms,
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
    };
    x->req = upstream_start(h->ups, &o, &xfer_callbacks, x);
    if (!x->req) {
        xfer_free(x);
        return -1;
    }
    return 0;
fail:
    buf_free(&x->json);
    mcp_sse_free(&x->sse);
    free(x->body);
    free(x->hdrs);
    free(x->id);
    free(x);
    return -1;
}

void mcp_http_initialized(struct mcp_upstream *u, const char *protocol_version)
{
    struct http_up *h = (struct http_up *)u;
    if (h->closing)
        return;
    snprintf(h->proto, sizeof(h->proto), "%s", protocol_version ? protocol_version : "");
    if (!header_ok("MCP-Protocol-Version", h->proto))
        h->proto[0] = '\0';
    h->initialized = 1;
    h->get_none = 0;
    h->get_delay_ms = GET_RETRY_MIN_MS;
    h->want_get = 1;
    kick(h);
}

void mcp_http_close(struct mcp_upstream *u)
{
    struct http_up *h = (struct http_up *)u;
    if (h->closing)
        return;
    h->closing = 1;
    uv_timer_stop(&h->timer);
    for (struct xfer *x = h->xfers; x; x = x->next)
        x->dead = 1;
    kick(h);
}
