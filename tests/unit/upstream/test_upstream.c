// SPDX-License-Identifier: Apache-2.0
// Unit tests for upstream (libcurl multi on a libuv loop). Each test runs a
// tiny scripted HTTP server in a thread on 127.0.0.1 (ephemeral port) and
// drives transfers on a private loop in the main thread: request bytes and
// body on the wire, callback order, whole and paused bodies, keep-alive
// reuse, and every failure outcome (refused, timeout, cut, cancel).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "upstream/upstream.h"

#define IO_TIMEOUT_S 5    /* a server step that takes longer has failed */
#define WATCHDOG_MS 10000 /* a test whose loop runs longer has failed */

/* ---- the scripted server (runs in its own thread) ----------------------- */

struct tsrv;
typedef void (*script_fn)(struct tsrv *s);

struct tsrv {
    int lfd;
    uint16_t port;
    pthread_t thread;
    int running; /* thread started and not joined yet */
    script_fn script;
    const void *arg; /* script parameter (response bytes, sizes) */
    size_t arg_len;
    uv_async_t *notify; /* optional: woken when the script says so */

    /* what the server saw; read by the main thread after join */
    int accepts;
    int nrequests;
    char head[2][8192]; /* request line + headers of the first two requests */
    buf_t body[2];
    int peer_closed; /* the client closed the connection */
    char fail[256];  /* first problem the script ran into */
};

static void srv_failf(struct tsrv *s, const char *fmt, ...)
{
    if (s->fail[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->fail, sizeof(s->fail), fmt, ap);
    va_end(ap);
}

/* Accepts one connection (waiting at most IO_TIMEOUT_S); -1 on timeout. */
static int srv_accept(struct tsrv *s)
{
    struct pollfd p = {.fd = s->lfd, .events = POLLIN};
    if (poll(&p, 1, IO_TIMEOUT_S * 1000) != 1) {
        srv_failf(s, "no connection came");
        return -1;
    }
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0) {
        srv_failf(s, "accept: %s", strerror(errno));
        return -1;
    }
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    s->accepts++;
    return fd;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads one request (head up to CRLFCRLF, then a Content-Length body) and
 * records it as request number s->nrequests. 0, or -1 on EOF/timeout. */
static int srv_read_request(struct tsrv *s, int fd)
{
    int idx = s->nrequests < 2 ? s->nrequests : 1;
    char *head = s->head[idx];
    size_t hl = 0;
    /* byte by byte up to the blank line, so no body byte is swallowed */
    while (hl < sizeof(s->head[0]) - 1) {
        ssize_t n = recv(fd, head + hl, 1, 0);
        if (n <= 0)
            return -1;
        hl++;
        if (hl >= 4 && memcmp(head + hl - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    head[hl] = '\0';
    size_t clen = 0;
    const char *cl = strcasestr(head, "\r\ncontent-length:");
    if (cl)
        clen = strtoul(cl + 17, NULL, 10);
    buf_t *b = &s->body[idx];
    buf_reset(b);
    char tmp[65536];
    while (b->len < clen) {
        size_t want = clen - b->len < sizeof(tmp) ? clen - b->len : sizeof(tmp);
        ssize_t n = recv(fd, tmp, want, 0);
        if (n <= 0)
            return -1;
        if (buf_append(b, tmp, (size_t)n) != 0)
            return -1;
    }
    s->nrequests++;
    return 0;
}

/* Waits until the client closes; records it in peer_closed. */
static void srv_wait_close(struct tsrv *s, int fd)
{
    char tmp[4096];
    for (;;) {
        ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            s->peer_closed = 1;
            return;
        }
        if (n < 0)
            return; /* timeout: the client never closed */
    }
}

static void srv_notify(struct tsrv *s)
{
    if (s->notify)
        uv_async_send(s->notify);
}

static void *srv_main(void *arg)
{
    struct tsrv *s = arg;
    s->script(s);
    return NULL;
}

static void srv_start(struct tsrv *s, script_fn script, const void *arg, size_t arg_len)
{
    memset(s, 0, sizeof(*s));
    buf_init(&s->body[0], 64 << 20);
    buf_init(&s->body[1], 64 << 20);
    s->script = script;
    s->arg = arg;
    s->arg_len = arg_len;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sa, &sl), 0);
    s->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
    s->running = 1;
}

/* Waits for the script to finish; what it saw stays readable until the
 * fixture's teardown. */
static void srv_join(struct tsrv *s)
{
    if (s->running) {
        pthread_join(s->thread, NULL);
        s->running = 0;
    }
    if (s->fail[0])
        fail_msg("test server: %s", s->fail);
}

static void srv_release(struct tsrv *s)
{
    if (s->running) {
        pthread_join(s->thread, NULL);
        s->running = 0;
    }
    if (s->lfd > 0)
        close(s->lfd);
    s->lfd = 0;
    buf_free(&s->body[0]);
    buf_free(&s->body[1]);
}

/* ---- scripts ------------------------------------------------------------ */

/* Answers one request with the bytes in s->arg and closes. */
static void script_answer_once(struct tsrv *s)
{
    int fd = srv_accept(s);
    if (fd < 0)
        return;
    if (srv_read_request(s, fd) == 0)
        write_all(fd, s->arg, s->arg_len);
    else
        srv_failf(s, "request not read");
    close(fd);
}

/* Answers one request with s->arg, keeps the connection open until the
 * client closes it. */
static void script_answer_once_keep_open(struct tsrv *s)
{
    int fd = srv_accept(s);
    if (fd < 0)
        return;
    if (srv_read_request(s, fd) == 0)
        write_all(fd, s->arg, s->arg_len);
    else
        srv_failf(s, "request not read");
    srv_wait_close(s, fd);
    close(fd);
}

/* Answers two requests with s->arg each, on whichever connections they come,
 * and counts the connections used. */
static void script_answer_twice_counting_connections(struct tsrv *s)
{
    int fds[4];
    int nfds = 0;
    while (s->nrequests < 2) {
        struct pollfd p[5];
        p[0] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        for (int i = 0; i < nfds; i++)
            p[i + 1] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (poll(p, (nfds_t)nfds + 1, IO_TIMEOUT_S * 1000) <= 0) {
            srv_failf(s, "second request never came");
            break;
        }
        if ((p[0].revents & POLLIN) && nfds < 4) {
            int fd = srv_accept(s);
            if (fd >= 0)
                fds[nfds++] = fd;
            continue;
        }
        for (int i = 0; i < nfds; i++) {
            if (!(p[i + 1].revents & (POLLIN | POLLHUP)))
                continue;
            if (srv_read_request(s, fds[i]) == 0) {
                write_all(fds[i], s->arg, s->arg_len);
            } else {
                close(fds[i]);
                fds[i] = fds[--nfds];
            }
            break;
        }
    }
    for (int i = 0; i < nfds; i++) {
        srv_wait_close(s, fds[i]);
        close(fds[i]);
    }
}

/* Reads the request, tells the test, and never answers. */
static void script_never_answer(struct tsrv *s)
{
    int fd = srv_accept(s);
    if (fd < 0)
        return;
    if (srv_read_request(s, fd) != 0)
        srv_failf(s, "request not read");
    srv_notify(s);
    srv_wait_close(s, fd);
    close(fd);
}

/* Sends s->arg (a partial answer), then stalls until the client gives up. */
static void script_answer_then_stall(struct tsrv *s)
{
    int fd = srv_accept(s);
    if (fd < 0)
        return;
    if (srv_read_request(s, fd) == 0)
        write_all(fd, s->arg, s->arg_len);
    srv_notify(s);
    srv_wait_close(s, fd);
    close(fd);
}

/* Sends s->arg, then closes straight away. */
static void script_answer_then_close(struct tsrv *s)
{
    int fd = srv_accept(s);
    if (fd < 0)
        return;
    if (srv_read_request(s, fd) == 0 && s->arg_len)
        write_all(fd, s->arg, s->arg_len);
    close(fd);
}

/* ---- the client side (main thread) --------------------------------------- */

struct fixture {
    uv_loop_t loop;
    struct upstream *u;
    struct tsrv srv;
    uv_timer_t watchdog;
    int timed_out;
};

/* What the callbacks of one transfer saw. */
struct xfer {
    struct fixture *f;
    struct upstream_req *req;
    int headers_calls;
    long status;
    char ctype[128];
    int ctype_null;
    int data_calls;
    int data_before_headers;
    buf_t data;
    int done_calls;
    enum upstream_result result;
    const char *errmsg;
    int callbacks_after_done;

    /* knobs */
    int headers_rc;        /* returned by on_headers */
    int data_rc_abort;     /* on_data returns -1 */
    int pause_every;       /* on_data returns 1 on every n-th call */
    int pause_keeps_bytes; /* count bytes of calls that returned 1 as received */
    int paused;
    int calls_while_paused;
    int pauses;
    uv_timer_t resume_timer;
    int cancel_instead_of_resume;
    void (*after_done)(struct xfer *x);
};

static void xfer_init(struct xfer *x, struct fixture *f)
{
    memset(x, 0, sizeof(*x));
    x->f = f;
    buf_init(&x->data, 64 << 20);
    x->result = 99;
}

static int on_headers(void *ud, long status, const char *ctype)
{
    struct xfer *x = ud;
    if (x->done_calls)
        x->callbacks_after_done++;
    x->headers_calls++;
    x->status = status;
    x->ctype_null = ctype == NULL;
    snprintf(x->ctype, sizeof(x->ctype), "%s", ctype ? ctype : "");
    return x->headers_rc;
}

static void on_resume_timer(uv_timer_t *t)
{
    struct xfer *x = t->data;
    x->paused = 0;
    if (x->cancel_instead_of_resume) {
        upstream_cancel(x->req);
        x->req = NULL;
        return;
    }
    upstream_resume(x->req);
}

static int on_data(void *ud, const char *data, size_t len)
{
    struct xfer *x = ud;
    if (x->done_calls)
        x->callbacks_after_done++;
    if (x->paused)
        x->calls_while_paused++;
    if (!x->headers_calls)
        x->data_before_headers++;
    x->data_calls++;
    if (x->data_rc_abort)
        return -1;
    if (x->pause_every && x->data_calls % x->pause_every == 0) {
        x->paused = 1;
        x->pauses++;
        if (x->pause_keeps_bytes && buf_append(&x->data, data, len) != 0)
            return -1;
        uv_timer_start(&x->resume_timer, on_resume_timer, 1, 0);
        return 1;
    }
    if (buf_append(&x->data, data, len) != 0)
        return -1;
    return 0;
}

static void on_done(void *ud, enum upstream_result result, const char *errmsg)
{
    struct xfer *x = ud;
    if (x->done_calls)
        x->callbacks_after_done++;
    x->done_calls++;
    x->result = result;
    x->errmsg = errmsg;
    x->req = NULL;
    if (x->after_done)
        x->after_done(x);
}

static const struct upstream_callbacks callbacks = {
    .on_headers = on_headers,
    .on_data = on_data,
    .on_done = on_done,
};

static struct upstream_req *xfer_start(struct xfer *x, const struct upstream_opts *o)
{
    x->req = upstream_start(x->f->u, o, &callbacks, x);
    assert_non_null(x->req);
    return x->req;
}

static void on_watchdog(uv_timer_t *t)
{
    struct fixture *f = t->data;
    f->timed_out = 1;
}

/* Runs the loop until *flag is non-zero (or the watchdog fires). */
static void run_until(struct fixture *f, const int *flag)
{
    f->timed_out = 0;
    uv_timer_start(&f->watchdog, on_watchdog, WATCHDOG_MS, 0);
    while (!*flag && !f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->watchdog);
    if (!*flag)
        fail_msg("loop ran %d ms without the awaited event", WATCHDOG_MS);
}

/* Runs the loop for ms milliseconds. */
static void run_for(struct fixture *f, unsigned ms)
{
    f->timed_out = 0;
    uv_timer_start(&f->watchdog, on_watchdog, ms, 0);
    while (!f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* Drops the pooled connections (a new upstream replaces the old), so a
 * server script waiting for the client to close can finish. */
static void drop_pool(struct fixture *f)
{
    upstream_free(f->u);
    f->u = upstream_new(&f->loop);
    assert_non_null(f->u);
}

/* Closes a handle that lives on the test's stack and waits until libuv is
 * done with it. */
static void on_closed_flag(uv_handle_t *h)
{
    *(int *)h->data = 1;
}

static void close_now(struct fixture *f, uv_handle_t *h)
{
    int closed = 0;
    h->data = &closed;
    uv_close(h, on_closed_flag);
    while (!closed)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void xfer_free(struct xfer *x)
{
    buf_free(&x->data);
}

/* upstream.c hands plain http:// URLs to its native HTTP/1.1 client and
 * the rest to libcurl; a URL with user info goes to libcurl. Every test runs
 * once per engine (see main), so both keep the one contract of upstream.h. */
static int via_libcurl;

static char *url_port(uint16_t port, const char *path)
{
    static char u[128];
    snprintf(u, sizeof(u), "http://%s127.0.0.1:%u%s", via_libcurl ? "t:t@" : "", port, path);
    return u;
}

static char *url(struct fixture *f, const char *path)
{
    return url_port(f->srv.port, path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->watchdog);
    f->watchdog.data = f;
    f->u = upstream_new(&f->loop);
    assert_non_null(f->u);
    *state = f;
    return 0;
}

static void count_handle(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) {
        fprintf(stderr, "handle left open: %s\n", uv_handle_type_name(uv_handle_get_type(h)));
        (*(int *)arg)++;
    }
}

/* upstream_free, then the loop must wind down to nothing: every handle the
 * module opened is closed and freed (ASan checks the memory). */
static int teardown(void **state)
{
    struct fixture *f = *state;
    upstream_free(f->u);
    srv_release(&f->srv);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    for (int i = 0; i < 100 && uv_loop_alive(&f->loop); i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    int open = 0;
    uv_walk(&f->loop, count_handle, &open);
    int rc = uv_loop_close(&f->loop);
    free(f);
    if (open || rc != 0) {
        print_error("loop did not wind down: %d handles open, uv_loop_close=%d\n", open, rc);
        return -1;
    }
    return 0;
}

static const char *request_header(const char *head, const char *name)
{
    static char val[1024];
    char pat[128];
    snprintf(pat, sizeof(pat), "\r\n%s:", name);
    const char *p = strcasestr(head, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\r");
    if (n >= sizeof(val))
        n = sizeof(val) - 1;
    memcpy(val, p, n);
    val[n] = '\0';
    return val;
}

/* A deterministic, position-dependent body so a dropped, duplicated or
 * reordered byte shows. */
static char *make_body(size_t n)
{
    char *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (char)((i * 131 + (i >> 8) * 7) & 0xff);
    return b;
}

/* "HTTP/1.1 200 OK" + headers + Content-Length + body, in one malloc'd block. */
static char *make_response(const char *status_and_headers, const char *body, size_t blen,
                           size_t *out_len)
{
    char head[1024];
    int hn =
        snprintf(head, sizeof(head), "%sContent-Length: %zu\r\n\r\n", status_and_headers, blen);
    char *r = malloc((size_t)hn + blen);
    assert_non_null(r);
    memcpy(r, head, (size_t)hn);
    memcpy(r + hn, body, blen);
    *out_len = (size_t)hn + blen;
    return r;
}

/* Runs one transfer to completion and returns what its callbacks saw. */
static void run_one(struct fixture *f, struct xfer *x, const struct upstream_opts *o)
{
    xfer_init(x, f);
    xfer_start(x, o);
    run_until(f, &x->done_calls);
}

/* ---- tests: the happy path ---------------------------------------------- */

static void test_post_body_and_headers_arrive_intact(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: 11\r\n\r\n{\"ok\":true}";
    srv_start(&f->srv, script_answer_once, resp, sizeof(resp) - 1);
    size_t blen = 100000;
    char *body = make_body(blen); /* binary, NULs included */
    struct upstream_header hdrs[] = {{"Authorization", "Bearer sk-test"}, {"X-Trace", "abc 123"}};
    struct upstream_opts o = {.method = "POST",
                              .url = url(f, "/v1/chat/completions"),
                              .headers = hdrs,
                              .nheaders = 2,
                              .body = body,
                              .body_len = blen};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    struct tsrv *s = &f->srv;
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_int_equal(s->nrequests, 1);
    assert_int_equal(strncmp(s->head[0], "POST /v1/chat/completions HTTP/1.1\r\n", 36), 0);
    assert_string_equal(request_header(s->head[0], "Authorization"), "Bearer sk-test");
    assert_string_equal(request_header(s->head[0], "X-Trace"), "abc 123");
    assert_string_equal(request_header(s->head[0], "Content-Length"), "100000");
    assert_int_equal(s->body[0].len, blen);
    assert_memory_equal(s->body[0].data, body, blen);
    free(body);
    xfer_free(&x);
}

static void test_headers_come_once_before_data_with_status_and_content_type(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 201 Created\r\n"
                               "Content-Type: application/json; charset=utf-8\r\n"
                               "Content-Length: 11\r\n\r\n{\"id\":\"x1\"}";
    srv_start(&f->srv, script_answer_once, resp, sizeof(resp) - 1);
    struct upstream_opts o = {.method = "POST", .url = url(f, "/"), .body = "{}", .body_len = 2};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_string_equal(x.errmsg, "ok");
    assert_int_equal(x.headers_calls, 1);
    assert_int_equal(x.status, 201);
    assert_string_equal(x.ctype, "application/json; charset=utf-8");
    assert_int_equal(x.data_before_headers, 0);
    assert_int_equal(x.data.len, 11);
    assert_string_equal(x.data.data, "{\"id\":\"x1\"}");
    assert_int_equal(x.done_calls, 1);
    xfer_free(&x);
}

static void test_missing_content_type_is_null(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    srv_start(&f->srv, script_answer_once, resp, sizeof(resp) - 1);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/models")};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_int_equal(x.status, 200);
    assert_true(x.ctype_null);
    assert_string_equal(x.data.data, "hi");
    assert_int_equal(strncmp(f->srv.head[0], "GET /models HTTP/1.1\r\n", 22), 0);
    assert_int_equal(f->srv.body[0].len, 0);
    xfer_free(&x);
}

static void test_error_status_is_delivered_not_a_transport_failure(void **state)
{
    struct fixture *f = *state;
    static const char resp[] =
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
        "Retry-After: 1\r\nContent-Length: 16\r\n\r\n{\"error\":\"slow\"}";
    srv_start(&f->srv, script_answer_once, resp, sizeof(resp) - 1);
    struct upstream_opts o = {.method = "POST", .url = url(f, "/"), .body = "x", .body_len = 1};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_int_equal(x.status, 429);
    assert_string_equal(x.data.data, "{\"error\":\"slow\"}");
    xfer_free(&x);
}

static void test_whole_2mib_body_arrives_in_order(void **state)
{
    struct fixture *f = *state;
    size_t blen = 2 << 20, rlen;
    char *body = make_body(blen);
    char *resp = make_response("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n",
                               body, blen, &rlen);
    srv_start(&f->srv, script_answer_once, resp, rlen);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/big")};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_int_equal(x.headers_calls, 1);
    assert_int_equal(x.data_before_headers, 0);
    assert_true(x.data_calls > 1); /* it streamed, not one blob */
    assert_int_equal(x.data.len, blen);
    assert_memory_equal(x.data.data, body, blen);
    xfer_free(&x);
    free(resp);
    free(body);
}

static void test_2mib_post_body_arrives_intact(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    srv_start(&f->srv, script_answer_once, resp, sizeof(resp) - 1);
    size_t blen = 2 << 20;
    char *body = make_body(blen);
    struct upstream_opts o = {.method = "POST", .url = url(f, "/"), .body = body, .body_len = blen};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_int_equal(f->srv.body[0].len, blen);
    assert_memory_equal(f->srv.body[0].data, body, blen);
    xfer_free(&x);
    free(body);
}

static void test_chunked_answer_is_dechunked(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n"
                               "6\r\ndata: \r\n3\r\nabc\r\n2\r\n\n\n\r\n0\r\n\r\n";
    srv_start(&f->srv, script_answer_once, resp, sizeof(resp) - 1);
    struct upstream_opts o = {.method = "POST", .url = url(f, "/"), .body = "{}", .body_len = 2};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_string_equal(x.ctype, "text/event-stream");
    assert_string_equal(x.data.data, "data: abc\n\n");
    xfer_free(&x);
}

static void test_no_expect_100_continue_for_64k_body(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    srv_start(&f->srv, script_answer_once, resp, sizeof(resp) - 1);
    size_t blen = 64 * 1024;
    char *body = make_body(blen);
    struct upstream_opts o = {.method = "POST", .url = url(f, "/"), .body = body, .body_len = blen};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_null(request_header(f->srv.head[0], "Expect"));
    assert_int_equal(f->srv.body[0].len, blen);
    assert_memory_equal(f->srv.body[0].data, body, blen);
    free(body);
    xfer_free(&x);
}

static void test_interim_1xx_then_200_gives_one_on_headers(void **state)
{
    struct fixture *f = *state;
    /* the interim answers' Content-Type must not leak into the final one */
    static const char resp[] = "HTTP/1.1 100 Continue\r\n\r\n"
                               "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n"
                               "Content-Type: text/html\r\n\r\n"
                               "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone";
    srv_start(&f->srv, script_answer_once, resp, sizeof(resp) - 1);
    struct upstream_opts o = {.method = "POST", .url = url(f, "/"), .body = "{}", .body_len = 2};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_int_equal(x.headers_calls, 1);
    assert_int_equal(x.status, 200);
    assert_true(x.ctype_null);
    assert_string_equal(x.data.data, "done");
    xfer_free(&x);
}

/* on_header: every header of the final answer as "name=value|", before
 * on_headers; a set abort_on header name stops the transfer. */
struct hdr_xfer {
    struct xfer x; /* first */
    char seen[1024];
    int after_on_headers;
    const char *abort_on;
};

static int on_header(void *ud, const char *name, size_t nl, const char *value, size_t vl)
{
    struct hdr_xfer *h = ud;
    if (h->x.headers_calls)
        h->after_on_headers++;
    size_t at = strlen(h->seen);
    snprintf(h->seen + at, sizeof(h->seen) - at, "%.*s=%.*s|", (int)nl, name, (int)vl, value);
    return h->abort_on && strlen(h->abort_on) == nl && strncasecmp(h->abort_on, name, nl) == 0;
}

static const struct upstream_callbacks header_callbacks = {
    .on_headers = on_headers,
    .on_data = on_data,
    .on_done = on_done,
    .on_header = on_header,
};

static void test_on_header_sees_each_final_header_before_on_headers(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                               "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"
                               "Mcp-Session-Id:  abc-123 \t\r\nX-Empty:\r\n"
                               "Content-Type: application/json\r\n\r\ndone";
    srv_start(&f->srv, script_answer_once, resp, sizeof(resp) - 1);
    struct upstream_opts o = {.method = "POST", .url = url(f, "/"), .body = "{}", .body_len = 2};
    struct hdr_xfer h = {0};
    xfer_init(&h.x, f);
    h.x.req = upstream_start(f->u, &o, &header_callbacks, &h);
    assert_non_null(h.x.req);
    run_until(f, &h.x.done_calls);
    srv_join(&f->srv);
    assert_int_equal(h.x.result, UPSTREAM_OK);
    assert_string_equal(h.seen, "Content-Length=4|Mcp-Session-Id=abc-123|X-Empty=|"
                                "Content-Type=application/json|");
    assert_int_equal(h.after_on_headers, 0);
    assert_string_equal(h.x.ctype, "application/json");
    assert_string_equal(h.x.data.data, "done");
    xfer_free(&h.x);
}

static void test_on_header_skips_chunked_trailers(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                               "Trailer: X-Trailer\r\n\r\n"
                               "4\r\ndone\r\n0\r\nX-Trailer: late\r\n\r\n";
    srv_start(&f->srv, script_answer_once, resp, sizeof(resp) - 1);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct hdr_xfer h = {0};
    xfer_init(&h.x, f);
    h.x.req = upstream_start(f->u, &o, &header_callbacks, &h);
    assert_non_null(h.x.req);
    run_until(f, &h.x.done_calls);
    srv_join(&f->srv);
    assert_int_equal(h.x.result, UPSTREAM_OK);
    assert_string_equal(h.seen, "Transfer-Encoding=chunked|Trailer=X-Trailer|");
    assert_int_equal(h.after_on_headers, 0);
    assert_string_equal(h.x.data.data, "done");
    xfer_free(&h.x);
}

static void test_on_header_nonzero_cancels(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Stop: 1\r\n"
                               "X-After: 2\r\n\r\ndone";
    srv_start(&f->srv, script_answer_once, resp, sizeof(resp) - 1);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct hdr_xfer h = {.abort_on = "x-stop"};
    xfer_init(&h.x, f);
    h.abort_on = "x-stop";
    h.x.req = upstream_start(f->u, &o, &header_callbacks, &h);
    assert_non_null(h.x.req);
    run_until(f, &h.x.done_calls);
    srv_join(&f->srv);
    assert_int_equal(h.x.result, UPSTREAM_ECANCELED);
    assert_string_equal(h.seen, "Content-Length=4|X-Stop=1|");
    assert_int_equal(h.x.headers_calls, 0);
    assert_int_equal(h.x.data_calls, 0);
    xfer_free(&h.x);
}

/* ---- keep-alive and handle reuse ------------------------------------------ */

struct two {
    struct xfer a; /* first: its on_done starts b, the way a retry would */
    struct xfer b;
    struct upstream_opts ob;
};

static void start_second(struct xfer *x)
{
    struct two *t = (struct two *)x;
    xfer_start(&t->b, &t->ob);
}

static void run_two(struct fixture *f, struct two *t, const struct upstream_opts *oa)
{
    xfer_init(&t->a, f);
    xfer_init(&t->b, f);
    t->a.after_done = start_second;
    xfer_start(&t->a, oa);
    run_until(f, &t->b.done_calls);
    drop_pool(f); /* the server script waits for the client to close */
    srv_join(&f->srv);
}

static void test_sequential_requests_reuse_one_connection(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 5\r\n\r\nhello";
    srv_start(&f->srv, script_answer_twice_counting_connections, resp, sizeof(resp) - 1);
    struct two t;
    struct upstream_opts oa = {.method = "POST", .url = url(f, "/one"), .body = "1", .body_len = 1};
    t.ob = (struct upstream_opts){
        .method = "POST", .url = url(f, "/two"), .body = "22", .body_len = 2};
    run_two(f, &t, &oa);
    assert_int_equal(t.a.result, UPSTREAM_OK);
    assert_int_equal(t.b.result, UPSTREAM_OK);
    assert_string_equal(t.a.data.data, "hello");
    assert_string_equal(t.b.data.data, "hello");
    assert_int_equal(f->srv.nrequests, 2);
    assert_int_equal(strncmp(f->srv.head[1], "POST /two HTTP/1.1\r\n", 20), 0);
    assert_string_equal(f->srv.body[1].data, "22");
    assert_int_equal(f->srv.accepts, 1);
    xfer_free(&t.a);
    xfer_free(&t.b);
}

static void test_recycled_handle_forgets_previous_method_headers_and_body(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    srv_start(&f->srv, script_answer_twice_counting_connections, resp, sizeof(resp) - 1);
    struct two t;
    struct upstream_header h = {"X-Only-First", "1"};
    struct upstream_opts oa = {.method = "POST",
                               .url = url(f, "/first"),
                               .headers = &h,
                               .nheaders = 1,
                               .body = "payload",
                               .body_len = 7};
    t.ob = (struct upstream_opts){.method = "GET", .url = url(f, "/second")};
    run_two(f, &t, &oa);
    assert_int_equal(t.b.result, UPSTREAM_OK);
    assert_non_null(request_header(f->srv.head[0], "X-Only-First"));
    assert_int_equal(strncmp(f->srv.head[1], "GET /second HTTP/1.1\r\n", 22), 0);
    assert_null(request_header(f->srv.head[1], "X-Only-First"));
    assert_null(request_header(f->srv.head[1], "Content-Length"));
    assert_int_equal(f->srv.body[1].len, 0);
    xfer_free(&t.a);
    xfer_free(&t.b);
}

/* ---- failures ------------------------------------------------------------- */

static void test_connection_refused_is_econnect(void **state)
{
    struct fixture *f = *state;
    /* a bound socket that does not listen: connecting to it is refused */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    struct upstream_opts o = {
        .method = "POST", .url = url_port(ntohs(sa.sin_port), "/"), .body = "x", .body_len = 1};
    struct xfer x;
    run_one(f, &x, &o);
    close(fd);
    assert_int_equal(x.result, UPSTREAM_ECONNECT);
    assert_string_equal(x.errmsg, "connection refused or unreachable");
    assert_int_equal(x.headers_calls, 0);
    assert_int_equal(x.data_calls, 0);
    assert_int_equal(x.done_calls, 1);
    xfer_free(&x);
}

static void test_unresolvable_host_is_econnect(void **state)
{
    struct fixture *f = *state;
    struct upstream_opts o = {.method = "GET",
                              .url = via_libcurl ? "http://t:t@no-such-host.invalid/"
                                                 : "http://no-such-host.invalid/"};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_ECONNECT);
    assert_string_equal(x.errmsg, "could not resolve host");
    assert_int_equal(x.headers_calls, 0);
    xfer_free(&x);
}

static void test_silent_server_with_timeout_is_etimedout(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, script_never_answer, NULL, 0);
    struct upstream_opts o = {
        .method = "POST", .url = url(f, "/"), .body = "x", .body_len = 1, .timeout_ms = 300};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_ETIMEDOUT);
    assert_string_equal(x.errmsg, "timed out");
    assert_int_equal(x.headers_calls, 0);
    assert_int_equal(x.done_calls, 1);
    assert_true(f->srv.peer_closed); /* the timed-out connection is not kept */
    xfer_free(&x);
}

static void test_stall_after_headers_is_etimedout_mid_answer(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Content-Length: 1000\r\n\r\ndata: partial\n\n";
    srv_start(&f->srv, script_answer_then_stall, resp, sizeof(resp) - 1);
    struct upstream_opts o = {
        .method = "POST", .url = url(f, "/"), .body = "x", .body_len = 1, .timeout_ms = 300};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_ETIMEDOUT);
    assert_string_equal(x.errmsg, "timed out while reading the answer");
    assert_int_equal(x.headers_calls, 1);
    assert_string_equal(x.data.data, "data: partial\n\n");
    xfer_free(&x);
}

static void test_close_mid_body_is_eio(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: 100\r\n\r\n{\"choices\":[";
    srv_start(&f->srv, script_answer_then_close, resp, sizeof(resp) - 1);
    struct upstream_opts o = {.method = "POST", .url = url(f, "/"), .body = "x", .body_len = 1};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_EIO);
    assert_string_equal(x.errmsg, "connection to upstream broke mid-answer");
    assert_int_equal(x.headers_calls, 1);
    assert_string_equal(x.data.data, "{\"choices\":[");
    assert_int_equal(x.done_calls, 1);
    xfer_free(&x);
}

static void test_close_mid_chunked_body_is_eio(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "5\r\nhello\r\n";
    srv_start(&f->srv, script_answer_then_close, resp, sizeof(resp) - 1);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_EIO);
    assert_string_equal(x.data.data, "hello");
    xfer_free(&x);
}

static void test_close_without_answer_is_eio(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, script_answer_then_close, NULL, 0);
    struct upstream_opts o = {.method = "POST", .url = url(f, "/"), .body = "x", .body_len = 1};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_EIO);
    assert_string_equal(x.errmsg, "upstream sent no valid answer");
    assert_int_equal(x.headers_calls, 0);
    xfer_free(&x);
}

static void test_garbage_answer_is_eio(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
    srv_start(&f->srv, script_answer_then_close, resp, sizeof(resp) - 1);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    run_one(f, &x, &o);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_EIO);
    assert_int_equal(x.data.len, 0);
    xfer_free(&x);
}

/* ---- callers stopping, pausing and cancelling ------------------------------ */

static void test_on_headers_nonzero_cancels_without_data(void **state)
{
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy";
    srv_start(&f->srv, script_answer_once, resp, sizeof(resp) - 1);
    struct upstream_opts o = {.method = "POST", .url = url(f, "/"), .body = "x", .body_len = 1};
    struct xfer x;
    xfer_init(&x, f);
    x.headers_rc = 1;
    xfer_start(&x, &o);
    run_until(f, &x.done_calls);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_ECANCELED);
    assert_string_equal(x.errmsg, "transfer stopped");
    assert_int_equal(x.headers_calls, 1);
    assert_int_equal(x.status, 503);
    assert_int_equal(x.data_calls, 0);
    assert_int_equal(x.done_calls, 1);
    xfer_free(&x);
}

static void test_on_data_negative_cancels(void **state)
{
    struct fixture *f = *state;
    size_t blen = 1 << 20, rlen;
    char *body = make_body(blen);
    char *resp = make_response("HTTP/1.1 200 OK\r\n", body, blen, &rlen);
    srv_start(&f->srv, script_answer_once, resp, rlen);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    xfer_init(&x, f);
    x.data_rc_abort = 1;
    xfer_start(&x, &o);
    run_until(f, &x.done_calls);
    srv_join(&f->srv);
    assert_int_equal(x.result, UPSTREAM_ECANCELED);
    assert_int_equal(x.data_calls, 1);
    assert_int_equal(x.done_calls, 1);
    xfer_free(&x);
    free(resp);
    free(body);
}

/* Runs a 1 MiB GET whose on_data returns 1 on every n-th call; a timer,
 * outside any callback, resumes. keep: the bytes of a pausing call count as
 * delivered (what upstream.h and llm/proxy.c mean by "pause"). */
static void run_paused_get(struct fixture *f, struct xfer *x, const char *body, size_t blen,
                           int every, int keep)
{
    size_t rlen;
    char *resp = make_response("HTTP/1.1 200 OK\r\n", body, blen, &rlen);
    srv_start(&f->srv, script_answer_once, resp, rlen);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    xfer_init(x, f);
    x->pause_every = every;
    x->pause_keeps_bytes = keep;
    uv_timer_init(&f->loop, &x->resume_timer);
    x->resume_timer.data = x;
    xfer_start(x, &o);
    run_until(f, &x->done_calls);
    close_now(f, (uv_handle_t *)&x->resume_timer);
    srv_join(&f->srv);
    free(resp);
}

static void test_pause_then_resume_runs_to_the_end_with_no_calls_while_paused(void **state)
{
    struct fixture *f = *state;
    size_t blen = 1 << 20;
    char *body = make_body(blen);
    struct xfer x;
    run_paused_get(f, &x, body, blen, 3, 1);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_true(x.pauses >= 1);
    assert_int_equal(x.calls_while_paused, 0);
    assert_int_equal(x.done_calls, 1);
    /* whatever the engine does with a pausing call's bytes, the body is all
     * there, in order, up to its last byte */
    assert_true(x.data.len >= blen);
    assert_memory_equal(x.data.data + x.data.len - 4096, body + blen - 4096, 4096);
    assert_memory_equal(x.data.data, body, 4096);
    xfer_free(&x);
    free(body);
}

static void test_pause_does_not_hand_over_the_same_bytes_twice(void **state)
{
    /* Was a bug (libcurl engine): upstream.h says on_data gets "body bytes as they
     * arrive" and that returning 1 pauses; llm/proxy.c's up_data relies on
     * that: it has already written the bytes to the client when it returns 1
     * (queue above HTTP_OUT_HIGH_WATER). upstream.c's write_cb turns 1 into
     * CURL_WRITEFUNC_PAUSE, which tells libcurl the bytes were NOT consumed,
     * so after upstream_resume the same bytes reach on_data again: a slow
     * streaming client gets duplicated SSE data. Here the callback keeps the
     * bytes of the calls that return 1, and the total comes out larger than
     * the body (e.g. 508 KiB for 256 KiB). The native HTTP/1.1 engine being
     * written (h1.c: "the paused call's bytes were consumed") passes this;
     * the libcurl engine, which carries https:// and every URL h1 declines,
     * fails it. Unskip once both engines keep the one meaning. Fixed: write_cb
     * takes the bytes and pauses with CURLPAUSE_RECV; kept as a regression test. */
    struct fixture *f = *state;
    size_t blen = 256 * 1024;
    char *body = make_body(blen);
    struct xfer x;
    run_paused_get(f, &x, body, blen, 2, 1);
    size_t got = x.data.len;
    int same = got == blen && memcmp(x.data.data, body, blen) == 0;
    int pauses = x.pauses;
    xfer_free(&x);
    free(body);
    assert_true(pauses >= 1);
    assert_int_equal(got, blen);
    assert_true(same);
}

struct cancel_ctx {
    struct xfer *x;
    int cancelled;
};

/* The server has the request: cancel from the loop, outside any callback. */
static void on_server_has_request(uv_async_t *a)
{
    struct cancel_ctx *c = a->data;
    if (!c->cancelled && c->x->req) {
        upstream_cancel(c->x->req);
        c->x->req = NULL;
        c->cancelled = 1;
    }
    uv_close((uv_handle_t *)a, NULL);
}

static void test_cancel_from_outside_callbacks_stops_all_callbacks(void **state)
{
    struct fixture *f = *state;
    struct xfer x;
    xfer_init(&x, f);
    struct cancel_ctx c = {.x = &x};
    uv_async_t notify;
    uv_async_init(&f->loop, &notify, on_server_has_request);
    notify.data = &c;
    srv_start(&f->srv, script_never_answer, NULL, 0);
    f->srv.notify = &notify;
    struct upstream_opts o = {.method = "POST", .url = url(f, "/"), .body = "x", .body_len = 1};
    xfer_start(&x, &o);
    run_until(f, &c.cancelled);
    srv_join(&f->srv); /* returns once the client closed the connection */
    run_for(f, 100);
    assert_true(f->srv.peer_closed);
    assert_int_equal(x.headers_calls, 0);
    assert_int_equal(x.data_calls, 0);
    assert_int_equal(x.done_calls, 0);
    xfer_free(&x);
}

static void test_cancel_while_paused_stops_all_callbacks(void **state)
{
    struct fixture *f = *state;
    size_t blen = 1 << 20, rlen;
    char *body = make_body(blen);
    char *resp = make_response("HTTP/1.1 200 OK\r\n", body, blen, &rlen);
    srv_start(&f->srv, script_answer_once, resp, rlen);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    xfer_init(&x, f);
    x.pause_every = 1;
    x.cancel_instead_of_resume = 1;
    uv_timer_init(&f->loop, &x.resume_timer);
    x.resume_timer.data = &x;
    xfer_start(&x, &o);
    run_until(f, &x.pauses);
    run_for(f, 100);
    close_now(f, (uv_handle_t *)&x.resume_timer);
    srv_join(&f->srv);
    assert_null(x.req); /* the timer cancelled it */
    assert_int_equal(x.data_calls, 1);
    assert_int_equal(x.done_calls, 0);
    xfer_free(&x);
    free(resp);
    free(body);
}

static int cancel_in_on_data(void *ud, const char *data, size_t len)
{
    struct xfer *x = ud;
    x->data_calls++;
    if (x->req) {
        upstream_cancel(x->req);
        x->req = NULL;
    }
    return 0;
}

static void test_cancel_from_inside_on_data_stops_all_callbacks(void **state)
{
    /* Was a bug (libcurl engine): upstream.h lets any caller call upstream_cancel;
     * called from inside on_data, req_release() runs inside libcurl's write
     * callback: curl_multi_remove_handle() refuses (CURLM_RECURSIVE_API_CALL,
     * unchecked), the easy handle is reset and parked, the request is freed,
     * and libcurl goes on calling write_cb with the freed request:
     * heap-use-after-free at upstream.c write_cb ("if (r->aborted)"). The same
     * holds for on_headers (header_cb). The native engine handles it. Either
     * defer the release (mark cancelled, return 0 from the curl callback) or
     * document that callbacks must return non-zero instead. Fixed: the release
     * is deferred until libcurl is out of the callback. */
    struct fixture *f = *state;
    size_t blen = 1 << 20, rlen;
    char *body = make_body(blen);
    char *resp = make_response("HTTP/1.1 200 OK\r\n", body, blen, &rlen);
    srv_start(&f->srv, script_answer_once, resp, rlen);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct upstream_callbacks cb = callbacks;
    cb.on_data = cancel_in_on_data;
    struct xfer x;
    xfer_init(&x, f);
    x.req = upstream_start(f->u, &o, &cb, &x);
    assert_non_null(x.req);
    run_for(f, 200);
    srv_join(&f->srv);
    assert_int_equal(x.data_calls, 1);
    assert_int_equal(x.done_calls, 0);
    xfer_free(&x);
    free(resp);
    free(body);
}

static void test_header_with_crlf_is_refused_not_injected(void **state)
{
    /* Was a bug (libcurl engine): upstream_start formats "name: value" into the
     * curl_slist as given; a value holding CR LF is sent as two header lines
     * (the server below sees "X-Injected: 1"). The native engine refuses such
     * a transfer (NULL). Today no caller passes client bytes with CR/LF (the
     * inbound parser rejects them), but proxy.c forwards client header values
     * (anthropic-version, anthropic-beta), so the engine should refuse too.
     * Fixed: upstream_start refuses the transfer. */
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    srv_start(&f->srv, script_answer_once, resp, sizeof(resp) - 1);
    struct upstream_header h = {"X-A", "v\r\nX-Injected: 1"};
    struct upstream_opts o = {.method = "POST",
                              .url = url(f, "/"),
                              .headers = &h,
                              .nheaders = 1,
                              .body = "x",
                              .body_len = 1};
    struct xfer x;
    xfer_init(&x, f);
    x.req = upstream_start(f->u, &o, &callbacks, &x);
    if (x.req) {
        run_until(f, &x.done_calls);
        srv_join(&f->srv);
        assert_null(request_header(f->srv.head[0], "X-Injected"));
    } else {
        /* refused: nothing runs; let the waiting script finish */
        assert_int_equal(x.done_calls, 0);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(f->srv.port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(write_all(fd, "GET / HTTP/1.1\r\n\r\n", 18), 0);
        srv_join(&f->srv);
        close(fd);
    }
    xfer_free(&x);
}

static void test_free_with_pooled_connection_closes_it(void **state)
{
    /* a keep-alive connection is still pooled when upstream_free runs: the
     * server sees it closed, and teardown checks the loop winds down */
    struct fixture *f = *state;
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    srv_start(&f->srv, script_answer_once_keep_open, resp, sizeof(resp) - 1);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    drop_pool(f);
    srv_join(&f->srv);
    assert_true(f->srv.peer_closed);
    xfer_free(&x);
}

int main(void)
{
    if (upstream_global_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_post_body_and_headers_arrive_intact),
        T(test_headers_come_once_before_data_with_status_and_content_type),
        T(test_missing_content_type_is_null),
        T(test_error_status_is_delivered_not_a_transport_failure),
        T(test_whole_2mib_body_arrives_in_order),
        T(test_2mib_post_body_arrives_intact),
        T(test_chunked_answer_is_dechunked),
        T(test_no_expect_100_continue_for_64k_body),
        T(test_interim_1xx_then_200_gives_one_on_headers),
        T(test_on_header_sees_each_final_header_before_on_headers),
        T(test_on_header_skips_chunked_trailers),
        T(test_on_header_nonzero_cancels),
        T(test_sequential_requests_reuse_one_connection),
        T(test_recycled_handle_forgets_previous_method_headers_and_body),
        T(test_connection_refused_is_econnect),
        T(test_unresolvable_host_is_econnect),
        T(test_silent_server_with_timeout_is_etimedout),
        T(test_stall_after_headers_is_etimedout_mid_answer),
        T(test_close_mid_body_is_eio),
        T(test_close_mid_chunked_body_is_eio),
        T(test_close_without_answer_is_eio),
        T(test_garbage_answer_is_eio),
        T(test_on_headers_nonzero_cancels_without_data),
        T(test_on_data_negative_cancels),
        T(test_pause_then_resume_runs_to_the_end_with_no_calls_while_paused),
        T(test_pause_does_not_hand_over_the_same_bytes_twice),
        T(test_cancel_from_outside_callbacks_stops_all_callbacks),
        T(test_cancel_while_paused_stops_all_callbacks),
        T(test_cancel_from_inside_on_data_stops_all_callbacks),
        T(test_header_with_crlf_is_refused_not_injected),
        T(test_free_with_pooled_connection_closes_it),
#undef T
    };
    int rc = cmocka_run_group_tests_name("default engine", tests, NULL, NULL);
    via_libcurl = 1;
    rc += cmocka_run_group_tests_name("libcurl engine", tests, NULL, NULL);
    upstream_global_cleanup();
    return rc;
}
