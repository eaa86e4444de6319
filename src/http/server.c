// SPDX-License-Identifier: Apache-2.0
// HTTP/1.1 server side: connections on a worker's loop, limits and timers,
// request dispatch, and the response writer (see server.h).
#include "http/server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/worker.h"
#include "http/tls.h"
#include "telemetry/metrics.h"

#define PENDING_IN_MAX (64 * 1024)
#define OUT_LOW_WATER (64 * 1024)

/* Open connections across all workers, for limits.max_connections. The one
 * process-wide counter: workers share the limit. */
static atomic_uint open_connections;

enum conn_state { CONN_IDLE, CONN_HEADERS, CONN_BODY, CONN_HANDLING };

struct http_server {
    struct worker *w;
    uv_tcp_t listener;
    int listening;
    http_handler_fn handler;
    struct tls_ctx *tls;
    struct http_conn *conns;
    unsigned nconns;
    int draining;
    void (*on_idle)(struct worker *w);
    time_t date_sec;
    char date[40];
    char readbuf[64 * 1024];
    buf_t tlsbuf;                   /* decrypted input scratch */
    /* http_server_hold: no new request while held */
    int held;
    unsigned nheld;                 /* connections stopped by the hold */
    int hold_timer_init;
    uv_timer_t hold_timer;
    int (*still_held)(void *arg);
    void *hold_arg;
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct http_server *srv;
    struct http_conn *prev, *next;
    struct http_reqparser *parser;
    struct http_exchange *ex;
    struct tls_conn *tls;
    buf_t pending_in;               /* received, not yet parsed */
    size_t out_queued;              /* bytes handed to uv_write, not yet written */
    enum conn_state state;
    int handles_open;
    int closing;
    int lingering;                  /* write side shut, draining input before close */
    int read_paused;
    int held;                       /* stopped between requests by http_server_hold */
    int processing, reprocess;
};

struct wreq {
    uv_write_t req;
    struct http_conn *conn;
    size_t len;
    char data[];
};

static void conn_close(struct http_conn *c);
static void conn_linger(struct http_conn *c);
static void conn_process(struct http_conn *c);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

static const char *http_date(struct http_server *srv)
{
    time_t now = time(NULL);
    if (now != srv->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(srv->date, sizeof(srv->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        srv->date_sec = now;
    }
    return srv->date;
}

/* ---- writing ---------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    struct wreq *wr = (struct wreq *)req;
    struct http_conn *c = wr->conn;
    c->out_queued -= wr->len;
    free(wr);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->out_queued < OUT_LOW_WATER && c->ex && c->ex->on_drain)
        c->ex->on_drain(c->ex);
}

/* Writes raw bytes to the socket: straight away when nothing is queued,
 * else (or for what the kernel did not take) through one queued copy. */
static int conn_write_raw(struct http_conn *c, uv_buf_t *bufs, unsigned n)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    if (total == 0)
        return 0;
    size_t skip = 0;
    if (c->out_queued == 0) {
        int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
        if (r >= 0 && (size_t)r == total)
            return 0;
        if (r < 0 && r != UV_EAGAIN)
            return r;
        if (r > 0)
            skip = (size_t)r;
    }
    size_t rem = total - skip;
    struct wreq *wr = malloc(sizeof(*wr) + rem);
    if (!wr)
        return UV_ENOMEM;
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t l = bufs[i].len;
        const char *p = bufs[i].base;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        p += skip;
        l -= skip;
        skip = 0;
        memcpy(wr->data + off, p, l);
        off += l;
    }
    wr->conn = c;
    wr->len = rem;
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)rem);
    int r = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r < 0) {
        free(wr);
        return r;
    }
    c->out_queued += rem;
    return 0;
}

static int conn_write(struct http_conn *c, uv_buf_t *bufs, unsigned n)
{
    if (c->closing)
        return UV_ECANCELED;
    if (!c->tls)
        return conn_write_raw(c, bufs, n);
    buf_t net;
    buf_init(&net, SIZE_MAX / 2);
    int rc = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        const char *p = bufs[i].base;
        size_t left = bufs[i].len;
        do {
            ssize_t took = tls_conn_write(c->tls, p, left, &net);
            if (took < 0) {
                rc = UV_EPROTO;
                break;
            }
            p += took;
            left -= (size_t)took;
            if (net.len) {
                uv_buf_t b = uv_buf_init(net.data, (unsigned)net.len);
                rc = conn_write_raw(c, &b, 1);
                buf_reset(&net);
            } else if (took == 0) {
                rc = UV_EPROTO; /* no progress: handshake not done */
            }
        } while (rc == 0 && (left > 0 || tls_conn_net_pending(c->tls)));
    }
    buf_free(&net);
    return rc;
}

/* ---- exchanges -------------------------------------------------------- */

void http_exchange_ref(struct http_exchange *ex)
{
    ex->refs++;
}

void http_exchange_unref(struct http_exchange *ex)
{
    if (--ex->refs > 0)
        return;
    if (ex->cfg)
        config_unref(ex->cfg);
    arena_free(&ex->arena);
    free(ex);
}

void http_add_header(struct http_exchange *ex, const char *name, const char *value)
{
    if (ex->head_sent)
        return;
    struct http_extra_header *h = arena_alloc(&ex->arena, sizeof(*h));
    if (!h)
        return;
    h->name = arena_strdup(&ex->arena, name);
    h->value = arena_strdup(&ex->arena, value);
    if (!h->name || !h->value)
        return;
    h->next = ex->headers;
    ex->headers = h;
}

static int keep_alive(struct http_exchange *ex)
{
    struct http_conn *c = ex->conn;
    return c && !ex->close_after && !c->srv->draining && ex->req && ex->req->keep_alive;
}

static char *put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

static char *put_str(char *o, const char *s)
{
    return put(o, s, strlen(s));
}

static char *put_u64(char *o, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *o++ = tmp[--n];
    return o;
}

/* Formats the status line and headers into the exchange's arena: plain
 * copies, no printf (this runs once per response). Returns the length, with
 * *out NULL on allocation failure. */
static size_t format_head(struct http_exchange *ex, char **out, int status, const char *ctype,
                          long long content_length, int chunked)
{
    int ka = keep_alive(ex);
    int minor = ex->req ? (int)ex->req->http_minor : 1;
    const char *reason = reason_phrase(status);
    const char *date = http_date(ex->conn->srv);
    size_t need = 160 + strlen(reason) + strlen(date) + strlen(ex->request_id) +
                  (ctype ? strlen(ctype) : 0);
    for (struct http_extra_header *h = ex->headers; h; h = h->next)
        need += strlen(h->name) + strlen(h->value) + 4;
    char *head = arena_alloc(&ex->arena, need);
    *out = head;
    if (!head)
        return 0;
    char *o = PUT_LIT(head, "HTTP/1.1 ");
    o = put_u64(o, (uint64_t)(status >= 100 && status <= 999 ? status : 500));
    *o++ = ' ';
    o = put_str(o, reason);
    o = PUT_LIT(o, "\r\nDate: ");
    o = put_str(o, date);
    if (ctype) {
        o = PUT_LIT(o, "\r\nContent-Type: ");
        o = put_str(o, ctype);
    }
    if (content_length >= 0) {
        o = PUT_LIT(o, "\r\nContent-Length: ");
        o = put_u64(o, (uint64_t)content_length);
    }
    if (chunked)
        o = PUT_LIT(o, "\r\nTransfer-Encoding: chunked");
    o = PUT_LIT(o, "\r\nx-request-id: ");
    o = put_str(o, ex->request_id);
    for (struct http_extra_header *h = ex->headers; h; h = h->next) {
        o = PUT_LIT(o, "\r\n");
        o = put_str(o, h->name);
        o = PUT_LIT(o, ": ");
        o = put_str(o, h->value);
    }
    if (!ka)
        o = PUT_LIT(o, "\r\nConnection: close");
    else if (minor == 0)
        o = PUT_LIT(o, "\r\nConnection: keep-alive");
    o = PUT_LIT(o, "\r\n\r\n");
    if (!ka)
        ex->close_after = 1;
    return (size_t)(o - head);
}

static void access_log(struct http_exchange *ex, double seconds)
{
    struct worker *w = ex->worker;
    buf_t *b = &w->logbuf;
    if (log_line_begin(b, LOG_INFO, "request"))
        return;
    log_line_str(b, "request_id", ex->request_id, strlen(ex->request_id));
    if (ex->req) {
        log_line_str(b, "method", ex->req->method, strlen(ex->req->method));
        log_line_str(b, "path", ex->req->path, ex->req->path_len);
    }
    log_line_int(b, "status", ex->aborted ? 499 : ex->status);
    log_line_double(b, "duration_ms", seconds * 1000.0);
    if (ex->route)
        log_line_str(b, "route", ex->route, strlen(ex->route));
    if (ex->model)
        log_line_str(b, "model", ex->model, strlen(ex->model));
    if (ex->provider)
        log_line_str(b, "provider", ex->provider, strlen(ex->provider));
    if (ex->attempts)
        log_line_int(b, "attempts", ex->attempts);
    if (ex->upstream_seconds >= 0)
        log_line_double(b, "upstream_ms", ex->upstream_seconds * 1000.0);
    if (ex->tokens_in || ex->tokens_out) {
        log_line_int(b, "tokens_in", (long long)ex->tokens_in);
        log_line_int(b, "tokens_out", (long long)ex->tokens_out);
    }
    if (ex->error_type)
        log_line_str(b, "error", ex->error_type, strlen(ex->error_type));
    log_line_int(b, "bytes_out", (long long)ex->bytes_out);
    log_line_end(b);
}

/* Accounts for a finished (or abandoned) exchange: metrics and access log. */
static void exchange_finish(struct http_exchange *ex)
{
    struct worker *w = ex->worker;
    double seconds = (double)(clock_mono_ns() - ex->start_ns) / 1e9;
    int status = ex->aborted ? 499 : ex->status;
    metrics_inflight(w->metrics, w->id, -1);
    metrics_request_done(w->metrics, w->id, ex->route ? ex->route : "other", status, ex->model,
                         seconds, ex->upstream_seconds, ex->tokens_in, ex->tokens_out);
    if (log_enabled(LOG_INFO))
        access_log(ex, seconds);
    if (ex->on_finish)
        ex->on_finish(ex);
}

static void conn_set_timer(struct http_conn *c, uint32_t ms);

/* The response is complete: account, then go back to reading. */
static void exchange_end(struct http_exchange *ex)
{
    struct http_conn *c = ex->conn;
    ex->ended = 1;
    exchange_finish(ex);
    ex->req = NULL;
    ex->conn = NULL;
    c->ex = NULL;
    int close_after = ex->close_after;
    http_exchange_unref(ex);

    if (close_after || c->srv->draining) {
        /* draining: a connection whose answer began before the drain does
         * not go back to idle (that would hold the drain for idle_timeout) */
        conn_linger(c);
        return;
    }
    http_reqparser_reset(c->parser);
    c->state = CONN_IDLE;
    struct config *cfg = c->srv->w->cfg;
    conn_set_timer(c, cfg->limits.idle_timeout_ms);
    if (c->read_paused && !c->closing) {
        c->read_paused = 0;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    conn_process(c);
}

void http_respond(struct http_exchange *ex, int status, const char *content_type,
                  const char *body, size_t len)
{
    if (ex->head_sent || ex->ended || !ex->conn)
        return;
    struct http_conn *c = ex->conn;
    ex->status = status;
    char *head;
    size_t hlen = format_head(ex, &head, status, content_type, (long long)len, 0);
    ex->head_sent = 1;
    if (!head) {
        ex->close_after = 1;
        exchange_end(ex);
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)hlen), uv_buf_init((char *)body, (unsigned)len)};
    int is_head = ex->req && strcmp(ex->req->method, "HEAD") == 0;
    if (conn_write(c, bufs, is_head ? 1 : 2) < 0)
        ex->close_after = 1;
    ex->bytes_out += hlen + len;
    exchange_end(ex);
}

void http_stream_start(struct http_exchange *ex, int status, const char *content_type)
{
    if (ex->head_sent || ex->ended || !ex->conn)
        return;
    ex->status = status;
    /* HTTP/1.0 has no chunked encoding: delimit by closing instead. */
    int chunked = !(ex->req && ex->req->http_minor == 0 && ex->req->http_major == 1);
    if (!chunked)
        ex->close_after = 1;
    char *head;
    size_t hlen = format_head(ex, &head, status, content_type, -1, chunked);
    ex->head_sent = 1;
    if (!head) {
        ex->close_after = 1;
        return;
    }
    uv_buf_t b = uv_buf_init(head, (unsigned)hlen);
    if (conn_write(ex->conn, &b, 1) < 0)
        ex->close_after = 1;
    ex->bytes_out += hlen;
}

static int stream_chunked(struct http_exchange *ex)
{
    return !(ex->req && ex->req->http_minor == 0 && ex->req->http_major == 1);
}

long http_stream_write(struct http_exchange *ex, const char *data, size_t len)
{
    struct http_conn *c = ex->conn;
    if (!c || ex->ended || c->closing || !ex->head_sent)
        return -1;
    if (len == 0)
        return (long)c->out_queued;
    char size[24];
    int n = snprintf(size, sizeof(size), "%zx\r\n", len);
    uv_buf_t bufs[3] = {uv_buf_init(size, (unsigned)n), uv_buf_init((char *)data, (unsigned)len),
                        uv_buf_init("\r\n", 2)};
    int rc = stream_chunked(ex) ? conn_write(c, bufs, 3) : conn_write(c, &bufs[1], 1);
    if (rc < 0)
        return -1;
    ex->bytes_out += len;
    return (long)c->out_queued;
}

void http_stream_end(struct http_exchange *ex)
{
    if (ex->ended)
        return;
    if (!ex->conn)
        return;
    if (stream_chunked(ex)) {
        uv_buf_t b = uv_buf_init("0\r\n\r\n", 5);
        if (conn_write(ex->conn, &b, 1) < 0)
            ex->close_after = 1;
    }
    exchange_end(ex);
}

void http_stream_abort(struct http_exchange *ex)
{
    if (ex->ended || !ex->conn)
        return;
    ex->close_after = 1;
    exchange_end(ex);
}

/* A request-id we accept from the client: 1..63 chars of [A-Za-z0-9._:-]. */
static int request_id_ok(const char *s, size_t len)
{
    if (len == 0 || len > 63)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return 0;
    }
    return 1;
}

/* 32 hex digits: the wall-clock milliseconds (48 bits, most significant
 * first) then 80 random bits. Ids sort by time, so the audit store's
 * request-id index grows at its right edge instead of splitting pages at
 * random (3-4x the insert rate), and an id tells when it was made. */
static void make_request_id(struct worker *w, char *out)
{
    static const char hex[] = "0123456789abcdef";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    uint64_t a = worker_rand(w), b = worker_rand(w);
    for (int i = 0; i < 12; i++)
        out[i] = hex[(ms >> ((11 - i) * 4)) & 15];
    for (int i = 0; i < 16; i++)
        out[12 + i] = hex[(a >> (i * 4)) & 15];
    for (int i = 0; i < 4; i++)
        out[28 + i] = hex[(b >> (i * 4)) & 15];
    out[32] = '\0';
}

static void dispatch(struct http_conn *c)
{
    struct http_server *srv = c->srv;
    struct worker *w = srv->w;
    struct http_exchange *ex = calloc(1, sizeof(*ex));
    if (!ex) {
        conn_close(c);
        return;
    }
    arena_init(&ex->arena, 4096);
    ex->worker = w;
    ex->conn = c;
    ex->req = http_reqparser_request(c->parser);
    ex->cfg = config_ref(w->cfg);
    ex->refs = 1;
    ex->start_ns = clock_mono_ns();
    ex->upstream_seconds = -1;
    const struct http_header *rid = http_request_header(ex->req, "x-request-id");
    if (rid && request_id_ok(rid->value, rid->value_len))
        memcpy(ex->request_id, rid->value, rid->value_len + 1);
    else
        make_request_id(w, ex->request_id);
    c->ex = ex;
    c->state = CONN_HANDLING;
    uv_timer_stop(&c->timer);
    metrics_inflight(w->metrics, w->id, +1);
    srv->handler(ex);
}

void http_exchange_redispatch(struct http_exchange *ex)
{
    if (ex->aborted || ex->ended || ex->head_sent || ex->conn == NULL)
        return;
    ex->conn->srv->handler(ex);
}

/* Answers on a connection that has no exchange (a request that could not be
 * read, or a connection over the limit), then closes it politely. */
static void conn_fail(struct http_conn *c, int status, const char *code, const char *reason,
                      const char *extra_headers)
{
    struct worker *w = c->srv->w;
    char rid[40];
    make_request_id(w, rid);
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"code\":\"%s\","
                     "\"param\":null}}\n",
                     reason, status >= 500 ? "server_error" : "invalid_request_error", code);
    char head[512];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nx-request-id: %s\r\n%sConnection: close\r\n\r\n",
                      status, reason_phrase(status), http_date(c->srv), n, rid, extra_headers);
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)hn), uv_buf_init(body, (unsigned)n)};
    metrics_request_done(w->metrics, w->id, "other", status, NULL, 0, -1, 0, 0);
    if (log_enabled(LOG_INFO)) {
        buf_t *b = &w->logbuf;
        if (log_line_begin(b, LOG_INFO, "request refused") == 0) {
            log_line_str(b, "request_id", rid, strlen(rid));
            log_line_int(b, "status", status);
            log_line_str(b, "reason", reason, strlen(reason));
            log_line_end(b);
        }
    }
    if (conn_write(c, bufs, 2) < 0)
        conn_close(c);
    else
        conn_linger(c);
}

static void respond_parse_error(struct http_conn *c, int status, const char *reason)
{
    char code[16];
    snprintf(code, sizeof(code), "http_%d", status);
    conn_fail(c, status, code, reason, "");
}

/* Feeds buffered input to the parser and dispatches complete requests. */
static void parse_input(struct http_conn *c)
{
    struct config *cfg = c->srv->w->cfg;
    int after_headers = 0; /* feed once more after HEADERS, even with no bytes */
    while (!c->closing && !c->ex && (c->pending_in.len > 0 || after_headers)) {
        after_headers = 0;
        if (!c->parser) {
            struct http_limits lim = {
                .max_header_bytes = cfg->limits.max_header_bytes,
                .max_headers = cfg->limits.max_headers,
                .max_body_bytes = cfg->limits.max_body_bytes,
            };
            c->parser = http_reqparser_new(&lim);
            if (!c->parser) {
                conn_close(c);
                return;
            }
        }
        int was_started = http_reqparser_started(c->parser);
        size_t used = 0;
        enum http_parse_status st =
            http_reqparser_feed(c->parser, c->pending_in.data, c->pending_in.len, &used);
        buf_consume(&c->pending_in, used);
        if (st == HTTP_PARSE_ERROR) {
            respond_parse_error(c, http_reqparser_error_status(c->parser),
                                http_reqparser_error_reason(c->parser));
            return;
        }
        if (!was_started && c->state == CONN_IDLE) {
            c->state = CONN_HEADERS;
            conn_set_timer(c, cfg->limits.header_timeout_ms);
        }
        if (st == HTTP_PARSE_HEADERS) {
            c->state = CONN_BODY;
            conn_set_timer(c, cfg->limits.body_timeout_ms);
            struct http_request *r = http_reqparser_request(c->parser);
            if (r->expect_continue && r->http_minor >= 1) {
                uv_buf_t b = uv_buf_init("HTTP/1.1 100 Continue\r\n\r\n", 25);
                (void)conn_write(c, &b, 1);
            }
            after_headers = 1;
            continue;
        }
        if (st == HTTP_PARSE_DONE) {
            dispatch(c);
            return;
        }
        /* HTTP_PARSE_AGAIN: all consumed */
        if (used == 0)
            return;
    }
}

/* A connection between requests while the server is held: stop reading and
 * wait for the resume. 1 when it is (now) held. */
static int conn_hold(struct http_conn *c)
{
    struct http_server *srv = c->srv;
    if (!srv->held || c->ex || c->closing || c->state != CONN_IDLE)
        return 0;
    if (!c->held) {
        c->held = 1;
        srv->nheld++;
    }
    if (!c->read_paused && !c->lingering) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->read_paused = 1;
    }
    return 1;
}

static void conn_process(struct http_conn *c)
{
    if (conn_hold(c))
        return;
    if (c->processing) {
        c->reprocess = 1;
        return;
    }
    c->processing = 1;
    do {
        c->reprocess = 0;
        parse_input(c);
    } while (c->reprocess && !c->closing && !c->ex);
    c->processing = 0;
    if (!c->closing && !c->ex && c->pending_in.len == 0 && c->state == CONN_IDLE &&
        c->pending_in.cap > 4096)
        buf_free(&c->pending_in); /* idle connections keep no big input buffer */
}

/* ---- reading and timers ------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *c = h->data;
    buf->base = c->srv->readbuf;
    buf->len = sizeof(c->srv->readbuf);
}

/* Decrypts socket bytes into pending_in, sending whatever TLS owes the peer
 * (handshake flights, alerts). -1 when the connection was closed. */
static int tls_input(struct http_conn *c, const char *data, size_t len)
{
    buf_t *plain = &c->srv->tlsbuf;
    buf_t net;
    buf_init(&net, SIZE_MAX / 2);
    int rc;
    do {
        buf_reset(plain);
        rc = tls_conn_feed(c->tls, data, len, plain, &net);
        data = NULL;
        len = 0;
        if (net.len) {
            uv_buf_t b = uv_buf_init(net.data, (unsigned)net.len);
            (void)conn_write_raw(c, &b, 1);
            buf_reset(&net);
        }
        if (rc >= 0 && plain->len && buf_append(&c->pending_in, plain->data, plain->len) != 0)
            rc = -ENOMEM;
    } while (rc == 0 && tls_conn_has_buffered(c->tls));
    buf_free(&net);
    if (rc < 0) {
        if (log_enabled(LOG_DEBUG))
            log_msg(LOG_DEBUG, NULL, "TLS connection failed: %s%s", tls_conn_error(c->tls),
                    tls_conn_plain_http(c->tls) ? " (plain HTTP sent to the TLS port)" : "");
        conn_linger(c);
        return -1;
    }
    if (rc == TLS_CLOSED && !c->ex) {
        conn_close(c);
        return -1;
    }
    return 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (c->lingering)
        return; /* discarded: the answer is out, we only wait for the peer's FIN */
    if (c->tls) {
        if (tls_input(c, buf->base, (size_t)nread) < 0)
            return;
    } else if (buf_append(&c->pending_in, buf->base, (size_t)nread) != 0) {
        conn_close(c);
        return;
    }
    if (c->ex) {
        /* a request is being handled: hold pipelined bytes, up to a bound */
        if (c->pending_in.len >= PENDING_IN_MAX && !c->read_paused) {
            uv_read_stop(s);
            c->read_paused = 1;
        }
        return;
    }
    conn_process(c);
}

static void on_timer(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    if (c->ex)
        return;
    conn_close(c); /* slow headers/body, or idle keep-alive past its time */
}

static void conn_set_timer(struct http_conn *c, uint32_t ms)
{
    if (!c->closing)
        uv_timer_start(&c->timer, on_timer, ms ? ms : 1, 0);
}

#define LINGER_MS 2000

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct http_conn *c = req->data;
    free(req);
    if (status < 0 && !c->closing)
        conn_close(c);
}

/* Closes politely: queued output goes out, then FIN; input is read and
 * dropped until the peer closes or LINGER_MS pass. Closing with unread input
 * would make the kernel send RST, which can destroy an error answer the
 * client has not read yet. */
static void conn_linger(struct http_conn *c)
{
    if (c->closing || c->lingering)
        return;
    c->lingering = 1;
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (!req) {
        conn_close(c);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        free(req);
        conn_close(c);
        return;
    }
    if (c->read_paused) {
        c->read_paused = 0;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    struct http_server *srv = c->srv;
    if (c->held)
        srv->nheld--;
    if (c->parser)
        http_reqparser_free(c->parser);
    if (c->tls)
        tls_conn_free(c->tls);
    buf_free(&c->pending_in);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    atomic_fetch_sub_explicit(&open_connections, 1, memory_order_relaxed);
    metrics_connections(srv->w->metrics, srv->w->id, -1);
    free(c);
    if (srv->draining && srv->nconns == 0 && srv->on_idle) {
        void (*cb)(struct worker *) = srv->on_idle;
        srv->on_idle = NULL;
        cb(srv->w);
    }
}

static void conn_close(struct http_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    struct http_exchange *ex = c->ex;
    if (ex && !ex->ended) {
        ex->aborted = 1;
        ex->ended = 1;
        exchange_finish(ex);
        ex->conn = NULL;
        ex->req = NULL;
        c->ex = NULL;
        if (ex->on_abort)
            ex->on_abort(ex);
        http_exchange_unref(ex);
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* ---- accepting ---------------------------------------------------------- */

static void shed_connection(struct http_conn *c)
{
    conn_fail(c, 503, "connection_limit", "too many connections", "Retry-After: 1\r\n");
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct http_server *srv = ls->data;
    struct worker *w = srv->w;
    if (status < 0)
        return;
    unsigned max = w->cfg->limits.max_connections;
    int shed = atomic_load_explicit(&open_connections, memory_order_relaxed) >= max;
    struct http_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->srv = srv;
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    buf_init(&c->pending_in, PENDING_IN_MAX + sizeof(srv->readbuf));
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    atomic_fetch_add_explicit(&open_connections, 1, memory_order_relaxed);
    metrics_connections(w->metrics, w->id, +1);
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (shed) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        shed_connection(c);
        return;
    }
    if (srv->tls) {
        c->tls = tls_conn_new(srv->tls);
        if (!c->tls) {
            conn_close(c);
            return;
        }
    }
    c->state = CONN_IDLE;
    conn_set_timer(c, w->cfg->limits.header_timeout_ms);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static int bind_reuseport(const char *host, uint16_t port, int *fd_out)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0) {
        sl = sizeof(struct sockaddr_in);
    } else if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
        sl = sizeof(struct sockaddr_in6);
    } else {
        return UV_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *fd_out = fd;
    return 0;
}

int http_server_start(struct worker *w, struct tls_ctx *tls, http_handler_fn handler,
                      const char *host, uint16_t port)
{
    struct http_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return UV_ENOMEM;
    srv->w = w;
    srv->handler = handler;
    srv->tls = tls;
    buf_init(&srv->tlsbuf, 1 << 20);
    int fd = -1, rc = bind_reuseport(host, port, &fd);
    if (rc < 0)
        goto fail;
    uv_tcp_init(&w->loop, &srv->listener);
    srv->listener.data = srv;
    rc = uv_tcp_open(&srv->listener, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 4096, on_connection);
    if (rc < 0) {
        uv_close((uv_handle_t *)&srv->listener, NULL);
        uv_run(&w->loop, UV_RUN_NOWAIT);
        goto fail;
    }
    srv->listening = 1;
    w->http = srv;
    return 0;
fail:
    buf_free(&srv->tlsbuf);
    free(srv);
    return rc;
}

unsigned http_server_connections(struct worker *w)
{
    return w->http ? w->http->nconns : 0;
}

static void stop_listening(struct http_server *srv)
{
    if (srv->listening) {
        srv->listening = 0;
        uv_close((uv_handle_t *)&srv->listener, NULL);
    }
    if (srv->hold_timer_init) {
        srv->hold_timer_init = 0;
        srv->held = 0; /* draining or closing: nothing waits for the resume */
        uv_close((uv_handle_t *)&srv->hold_timer, NULL);
    }
}

/* ---- backpressure ------------------------------------------------------- */

static void resume_held(struct http_server *srv)
{
    srv->held = 0;
    struct http_conn *c = srv->conns, *next;
    for (; c && srv->nheld > 0; c = next) {
        next = c->next; /* conn_process may close c; its memory outlives this loop */
        if (!c->held)
            continue;
        c->held = 0;
        srv->nheld--;
        if (c->closing)
            continue;
        if (c->read_paused && !c->ex) {
            c->read_paused = 0;
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        }
        conn_process(c); /* bytes that arrived before the hold */
        if (srv->held)
            break; /* held again by what that request finished */
    }
}

static void on_hold_timer(uv_timer_t *t)
{
    struct http_server *srv = t->data;
    if (srv->still_held && srv->still_held(srv->hold_arg))
        return;
    uv_timer_stop(t);
    resume_held(srv);
}

void http_server_hold(struct worker *w, int (*still_held)(void *arg), void *arg)
{
    struct http_server *srv = w->http;
    if (srv == NULL || srv->held || srv->draining || !srv->listening)
        return;
    if (!srv->hold_timer_init) {
        uv_timer_init(&w->loop, &srv->hold_timer);
        srv->hold_timer.data = srv;
        srv->hold_timer_init = 1;
    }
    srv->held = 1;
    srv->still_held = still_held;
    srv->hold_arg = arg;
    uv_timer_start(&srv->hold_timer, on_hold_timer, HTTP_HOLD_POLL_MS, HTTP_HOLD_POLL_MS);
}

int http_server_held(struct worker *w)
{
    return w->http != NULL && w->http->held;
}

void http_server_drain(struct worker *w, void (*on_idle)(struct worker *w))
{
    struct http_server *srv = w->http;
    srv->draining = 1;
    srv->on_idle = on_idle;
    stop_listening(srv);
    struct http_conn *c = srv->conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (!c->ex && !c->closing)
            conn_close(c); /* idle or mid-request-read: nothing owed */
    }
    if (srv->nconns == 0 && srv->on_idle) {
        srv->on_idle = NULL;
        on_idle(w);
    }
}

void http_server_close_all(struct worker *w)
{
    struct http_server *srv = w->http;
    stop_listening(srv);
    struct http_conn *c = srv->conns, *next;
    for (; c; c = next) {
        next = c->next;
        conn_close(c);
    }
}

void http_server_free(struct worker *w)
{
    struct http_server *srv = w->http;
    if (!srv)
        return;
    buf_free(&srv->tlsbuf);
    free(srv);
    w->http = NULL;
}
