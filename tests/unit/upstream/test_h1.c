// SPDX-License-Identifier: Apache-2.0
// Unit tests for the native HTTP/1.1 client (upstream/h1.c) through the
// upstream.h interface: keep-alive pooling and reuse, body framings, the
// transparent retry on a dead pooled connection, limits, timeouts, pause /
// resume, cancel, name lookups and the proxy-environment fallback to libcurl.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "upstream/h1.h"
#include "upstream/upstream.h"

#define STEP_MS 5000     /* a server step that takes longer has failed */
#define WATCHDOG_MS 8000 /* a loop that runs longer has failed */
#define MAX_FDS 16

/* ---- a scripted server in a thread ------------------------------------- */

enum after { KEEP, CLOSE };

struct srv;
/* Called for every request read; writes the answer. KEEP or CLOSE the fd. */
typedef enum after (*answer_fn)(struct srv *s, int fd, int reqno);

struct srv {
    int lfd;
    uint16_t port;
    pthread_t thread;
    int running;
    answer_fn answer;
    const char *resp; /* what the default answer writes */
    size_t resp_len;
    int stop[2]; /* test -> server: finish */
    int sig[2];  /* test -> server: go on (scripts that wait) */
    /* what the server saw (read after srv_stop) */
    int accepts;
    int requests;
    int peer_closes;    /* connections the client closed */
    char head[4][2048]; /* heads of the first four requests */
    size_t body_len[4];
    int waited_ok; /* a script's wait for sig ended by a signal */
};

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        c += w;
        n -= (size_t)w;
    }
}

/* Reads one request: head byte by byte, then a Content-Length body. */
static int read_request(struct srv *s, int fd)
{
    char head[2048];
    size_t hl = 0;
    while (hl < sizeof(head) - 1) {
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
    size_t got = 0;
    char tmp[16384];
    while (got < clen) {
        ssize_t n = recv(fd, tmp, clen - got < sizeof(tmp) ? clen - got : sizeof(tmp), 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    if (s->requests < 4) {
        memcpy(s->head[s->requests], head, hl + 1);
        s->body_len[s->requests] = got;
    }
    return 0;
}

/* Waits for the test's go (or STEP_MS). */
static void srv_wait_sig(struct srv *s)
{
    struct pollfd p = {.fd = s->sig[0], .events = POLLIN};
    if (poll(&p, 1, STEP_MS) == 1) {
        char ch;
        if (read(s->sig[0], &ch, 1) == 1)
            s->waited_ok = 1;
    }
}

static enum after answer_canned(struct srv *s, int fd, int reqno)
{
    write_all(fd, s->resp, s->resp_len);
    return KEEP;
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    int fds[MAX_FDS];
    int nfds = 0;
    for (;;) {
        struct pollfd p[MAX_FDS + 2];
        p[0] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        p[1] = (struct pollfd){.fd = s->stop[0], .events = POLLIN};
        for (int i = 0; i < nfds; i++)
            p[i + 2] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (poll(p, (nfds_t)nfds + 2, 2 * WATCHDOG_MS) <= 0)
            break;
        /* stop is acted on after this round's connections: a peer close that
         * arrived together with it is still counted (was a flake under load) */
        int stopping = p[1].revents != 0;
        if ((p[0].revents & POLLIN) && nfds < MAX_FDS) {
            int fd = accept(s->lfd, NULL, NULL);
            if (fd >= 0) {
                struct timeval tv = {.tv_sec = STEP_MS / 1000};
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                fds[nfds++] = fd;
                s->accepts++;
            }
        }
        for (int i = 0; i < nfds; i++) {
            if (!(p[i + 2].revents & (POLLIN | POLLHUP | POLLERR)) || p[i + 2].fd != fds[i])
                continue;
            enum after a = CLOSE;
            if (read_request(s, fds[i]) == 0) {
                int reqno = s->requests++;
                a = s->answer(s, fds[i], reqno);
            } else {
                s->peer_closes++;
            }
            if (a == CLOSE) {
                close(fds[i]);
                fds[i] = fds[--nfds];
                p[i + 2] = p[nfds + 2];
                i--;
            }
        }
        if (stopping)
            break;
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    return NULL;
}


/* Listens on the loopback address of family af (AF_INET or AF_INET6). */
static void srv_start_af(struct srv *s, answer_fn answer, const char *resp, int af)
{
    memset(s, 0, sizeof(*s));
    s->answer = answer ? answer : answer_canned;
    s->resp = resp;
    s->resp_len = resp ? strlen(resp) : 0;
    assert_int_equal(pipe(s->stop), 0);
    assert_int_equal(pipe(s->sig), 0);
    s->lfd = socket(af, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    if (af == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_loopback;
        sl = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof(*a4);
    }
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&ss, sl), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&ss, &sl), 0);
    s->port = ntohs(af == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                   : ((struct sockaddr_in *)&ss)->sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
    s->running = 1;
}

static void srv_start(struct srv *s, answer_fn answer, const char *resp)
{
    srv_start_af(s, answer, resp, AF_INET);
}

static void srv_signal(struct srv *s)
{
    assert_int_equal(write(s->sig[1], "x", 1), 1);
}

/* Stops the server thread; what it saw stays readable. */
static void srv_stop(struct srv *s)
{
    if (!s->running)
        return;
    assert_int_equal(write(s->stop[1], "x", 1), 1);
    pthread_join(s->thread, NULL);
    s->running = 0;
    close(s->lfd);
    close(s->stop[0]);
    close(s->stop[1]);
    close(s->sig[0]);
    close(s->sig[1]);
}

/* ---- the client side ----------------------------------------------------- */

struct fixture {
    uv_loop_t loop;
    struct upstream *u;
    struct srv srv;
    uv_timer_t watchdog;
    int timed_out;
    char url[128];
};

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
    int after_done; /* callbacks after on_done */
    /* knobs */
    int pause_each; /* on_data keeps the bytes and returns 1 */
    int no_resume;  /* ... and nothing resumes */
    int paused;
    int calls_while_paused;
    int pauses;
    uv_timer_t resume_timer;
    int timer_open;
    int signal_server_on_data; /* first on_data tells the server to go on */
    int cancel_in_headers;     /* on_headers cancels its own transfer */
    int cancel_in_data;        /* the first on_data cancels its own transfer */
    void (*on_finish)(struct xfer *x);
    void *arg;
};

static void xfer_init(struct xfer *x, struct fixture *f)
{
    memset(x, 0, sizeof(*x));
    x->f = f;
    buf_init(&x->data, 16 << 20);
    x->result = 99;
}

static void xfer_free(struct xfer *x)
{
    buf_free(&x->data);
}

static int cb_headers(void *ud, long status, const char *ctype)
{
    struct xfer *x = ud;
    if (x->done_calls)
        x->after_done++;
    x->headers_calls++;
    x->status = status;
    x->ctype_null = ctype == NULL;
    snprintf(x->ctype, sizeof(x->ctype), "%s", ctype ? ctype : "");
    if (x->cancel_in_headers) {
        upstream_cancel(x->req);
        x->req = NULL;
    }
    return 0;
}

static void on_resume(uv_timer_t *t)
{
    struct xfer *x = t->data;
    x->paused = 0;
    upstream_resume(x->req);
}

static int cb_data(void *ud, const char *p, size_t n)
{
    struct xfer *x = ud;
    if (x->done_calls)
        x->after_done++;
    if (!x->headers_calls)
        x->data_before_headers++;
    if (x->paused)
        x->calls_while_paused++;
    x->data_calls++;
    if (buf_append(&x->data, p, n) != 0)
        return -1;
    if (x->signal_server_on_data && x->data_calls == 1)
        srv_signal(&x->f->srv);
    if (x->cancel_in_data) {
        upstream_cancel(x->req);
        x->req = NULL;
        return 0;
    }
    if (x->pause_each) {
        x->paused = 1;
        x->pauses++;
        if (!x->no_resume)
            uv_timer_start(&x->resume_timer, on_resume, 1, 0);
        return 1;
    }
    return 0;
}

static void cb_done(void *ud, enum upstream_result res, const char *msg)
{
    struct xfer *x = ud;
    if (x->done_calls)
        x->after_done++;
    x->done_calls++;
    x->result = res;
    x->errmsg = msg;
    x->req = NULL;
    if (x->on_finish)
        x->on_finish(x);
}

static const struct upstream_callbacks cbs = {
    .on_headers = cb_headers, .on_data = cb_data, .on_done = cb_done};

static void on_watchdog(uv_timer_t *t)
{
    ((struct fixture *)t->data)->timed_out = 1;
}

static void run_until(struct fixture *f, const int *flag, int want)
{
    f->timed_out = 0;
    uv_timer_start(&f->watchdog, on_watchdog, WATCHDOG_MS, 0);
    while (*flag < want && !f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->watchdog);
    if (*flag < want)
        fail_msg("loop ran %d ms without the awaited event", WATCHDOG_MS);
}

static void run_for(struct fixture *f, unsigned ms)
{
    f->timed_out = 0;
    uv_timer_start(&f->watchdog, on_watchdog, ms, 0);
    while (!f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
}

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

static const char *url(struct fixture *f, const char *path)
{
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u%s", f->srv.port, path);
    return f->url;
}

static void start(struct xfer *x, const struct upstream_opts *o)
{
    x->req = upstream_start(x->f->u, o, &cbs, x);
    assert_non_null(x->req);
}

static void run_one(struct fixture *f, struct xfer *x, const struct upstream_opts *o)
{
    xfer_init(x, f);
    start(x, o);
    run_until(f, &x->done_calls, 1);
}

static unsigned idle(struct fixture *f)
{
    return h1_idle_connections(upstream_h1(f->u));
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

static void count_open(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        (*(int *)arg)++;
}

/* upstream_free must leave a loop that ends by itself. */
static int teardown(void **state)
{
    struct fixture *f = *state;
    upstream_free(f->u);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    for (int i = 0; i < 1000 && uv_loop_alive(&f->loop); i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    srv_stop(&f->srv);
    int open = 0;
    uv_walk(&f->loop, count_open, &open);
    int rc = uv_loop_close(&f->loop);
    free(f);
    if (open || rc) {
        print_error("loop did not wind down: %d handles open, uv_loop_close=%d\n", open, rc);
        return -1;
    }
    return 0;
}

static const char OK_RESP[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "Content-Length: 11\r\n\r\n{\"ok\":true}";

/* ---- the request on the wire ------------------------------------------- */

static void test_request_head_has_host_length_keepalive_and_no_expect(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, NULL, OK_RESP);
    size_t blen = 70000;
    char *body = malloc(blen);
    memset(body, 'b', blen);
    struct upstream_header h[] = {{"Authorization", "Bearer k"}, {"X-Request-Id", "r1"}};
    struct upstream_opts o = {.method = "POST",
                              .url = url(f, "/v1/chat/completions?x=1#frag"),
                              .headers = h,
                              .nheaders = 2,
                              .body = body,
                              .body_len = blen};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    srv_stop(&f->srv);
    char want[512];
    snprintf(want, sizeof(want),
             "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
             "Authorization: Bearer k\r\nX-Request-Id: r1\r\nContent-Length: 70000\r\n"
             "Connection: keep-alive\r\n\r\n",
             f->srv.port);
    assert_string_equal(f->srv.head[0], want);
    assert_int_equal(f->srv.body_len[0], blen);
    free(body);
    xfer_free(&x);
}

static void test_header_with_crlf_is_refused_at_start(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, NULL, OK_RESP);
    struct upstream_header h = {"X-Evil", "a\r\nX-Injected: 1"};
    struct upstream_opts o = {.method = "GET", .url = url(f, "/"), .headers = &h, .nheaders = 1};
    struct xfer x;
    xfer_init(&x, f);
    assert_null(upstream_start(f->u, &o, &cbs, &x));
    run_for(f, 20);
    assert_int_equal(x.done_calls, 0);
    xfer_free(&x);
}

/* ---- keep-alive ------------------------------------------------------------ */

struct chain {
    struct xfer x[5];
    struct upstream_opts o;
    int n;
    int finished;
};

static void chain_next(struct xfer *x)
{
    struct chain *c = x->arg;
    c->finished++;
    if (c->n < 5) {
        struct xfer *nx = &c->x[c->n++];
        nx->arg = c;
        nx->on_finish = chain_next;
        start(nx, &c->o); /* from inside on_done, as a retry would */
    }
}

static void test_sequential_requests_reuse_one_connection(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, NULL, OK_RESP);
    struct chain c = {.o = {.method = "POST", .url = url(f, "/"), .body = "{}", .body_len = 2}};
    for (int i = 0; i < 5; i++)
        xfer_init(&c.x[i], f);
    c.n = 1;
    c.x[0].arg = &c;
    c.x[0].on_finish = chain_next;
    start(&c.x[0], &c.o);
    run_until(f, &c.finished, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(c.x[i].result, UPSTREAM_OK);
        assert_string_equal(c.x[i].data.data, "{\"ok\":true}");
        xfer_free(&c.x[i]);
    }
    assert_int_equal(idle(f), 1);
    srv_stop(&f->srv);
    assert_int_equal(f->srv.requests, 5);
    assert_int_equal(f->srv.accepts, 1);
}

static void test_concurrent_requests_open_connections_then_reuse_them(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, NULL, OK_RESP);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    for (int round = 0; round < 2; round++) {
        struct xfer x[3];
        int done = 0;
        for (int i = 0; i < 3; i++) {
            xfer_init(&x[i], f);
            start(&x[i], &o);
        }
        while (done < 3) {
            run_until(f, &x[done].done_calls, 1);
            assert_int_equal(x[done].result, UPSTREAM_OK);
            done++;
        }
        for (int i = 0; i < 3; i++)
            xfer_free(&x[i]);
        assert_int_equal(idle(f), 3);
    }
    srv_stop(&f->srv);
    assert_int_equal(f->srv.requests, 6);
    assert_int_equal(f->srv.accepts, 3);
}

/* ---- body framings ------------------------------------------------------------ */

static void test_chunked_body_is_dechunked_and_connection_kept(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, NULL,
              "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
              "Transfer-Encoding: chunked\r\n\r\n"
              "6\r\ndata: \r\n3\r\nabc\r\n2\r\n\n\n\r\n0\r\nX-Trailer: t\r\n\r\n");
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_string_equal(x.ctype, "text/event-stream");
    assert_string_equal(x.data.data, "data: abc\n\n");
    assert_int_equal(idle(f), 1);
    xfer_free(&x);
}

static enum after answer_close_delimited(struct srv *s, int fd, int reqno)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ";
    write_all(fd, head, sizeof(head) - 1);
    write_all(fd, "the end", 7);
    return CLOSE;
}

static void test_close_delimited_body_ends_at_eof_and_is_not_pooled(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, answer_close_delimited, NULL);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    for (int i = 0; i < 2; i++) {
        struct xfer x;
        run_one(f, &x, &o);
        assert_int_equal(x.result, UPSTREAM_OK);
        assert_int_equal(x.status, 200);
        assert_string_equal(x.data.data, "until the end");
        assert_int_equal(idle(f), 0);
        xfer_free(&x);
    }
    srv_stop(&f->srv);
    assert_int_equal(f->srv.accepts, 2);
}

static void test_http10_answer_is_not_pooled(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, NULL, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_string_equal(x.data.data, "ok");
    assert_int_equal(idle(f), 0);
    xfer_free(&x);
}

static void test_interim_1xx_answers_are_skipped(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, NULL,
              "HTTP/1.1 100 Continue\r\n\r\n"
              "HTTP/1.1 103 Early Hints\r\nContent-Type: text/html\r\nLink: </a>\r\n\r\n"
              "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone");
    struct upstream_opts o = {.method = "POST", .url = url(f, "/"), .body = "x", .body_len = 1};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_int_equal(x.headers_calls, 1);
    assert_int_equal(x.status, 200);
    assert_true(x.ctype_null); /* the 103's content type does not leak */
    assert_string_equal(x.data.data, "done");
    assert_int_equal(idle(f), 1);
    xfer_free(&x);
}

/* ---- dead and dirty pooled connections ------------------------------------------ */

static enum after answer_then_close(struct srv *s, int fd, int reqno)
{
    write_all(fd, OK_RESP, sizeof(OK_RESP) - 1);
    return reqno == 0 ? CLOSE : KEEP; /* keep-alive promised, closed anyway */
}

static void test_server_closing_idle_connection_is_noticed(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, answer_then_close, NULL);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    xfer_free(&x);
    /* the pooled connection sees the EOF and leaves the pool */
    for (int i = 0; i < 200 && idle(f); i++)
        run_for(f, 5);
    assert_int_equal(idle(f), 0);
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    xfer_free(&x);
    srv_stop(&f->srv);
    assert_int_equal(f->srv.accepts, 2);
    assert_int_equal(f->srv.requests, 2); /* no retry was needed */
}

/* The second request reaches a connection the server is closing: it reads
 * the request and closes without a byte of answer. */
static enum after answer_first_drop_second(struct srv *s, int fd, int reqno)
{
    if (reqno == 1)
        return CLOSE;
    write_all(fd, OK_RESP, sizeof(OK_RESP) - 1);
    return KEEP;
}

static void test_dead_pooled_connection_is_retried_on_a_fresh_one(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, answer_first_drop_second, NULL);
    struct upstream_opts o = {
        .method = "POST", .url = url(f, "/"), .body = "{\"n\":2}", .body_len = 7};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    xfer_free(&x);
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_int_equal(x.headers_calls, 1);
    assert_string_equal(x.data.data, "{\"ok\":true}");
    xfer_free(&x);
    srv_stop(&f->srv);
    assert_int_equal(f->srv.accepts, 2);
    assert_int_equal(f->srv.requests, 3); /* the second went twice */
    assert_int_equal(f->srv.body_len[2], 7);
}

/* The second answer starts, then the connection dies: no retry. */
static enum after answer_first_cut_second(struct srv *s, int fd, int reqno)
{
    if (reqno == 1) {
        write_all(fd, "HTTP/1.1 200 OK\r\nContent-Le", 27);
        return CLOSE;
    }
    write_all(fd, OK_RESP, sizeof(OK_RESP) - 1);
    return KEEP;
}

static void test_no_retry_once_answer_bytes_came(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, answer_first_cut_second, NULL);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    run_one(f, &x, &o);
    xfer_free(&x);
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_EIO);
    assert_string_equal(x.errmsg, "upstream sent no valid answer");
    assert_int_equal(x.headers_calls, 0);
    xfer_free(&x);
    srv_stop(&f->srv);
    assert_int_equal(f->srv.requests, 2);
    assert_int_equal(f->srv.accepts, 1);
}

static void test_fresh_connection_closing_without_answer_is_eio(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, answer_first_drop_second, NULL);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    run_one(f, &x, &o);
    xfer_free(&x);
    upstream_free(f->u); /* a new pool */
    f->u = upstream_new(&f->loop);
    assert_non_null(f->u);
    /* request 1 (dropped) now comes on a fresh connection: not retried */
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_EIO);
    xfer_free(&x);
    srv_stop(&f->srv);
    assert_int_equal(f->srv.requests, 2);
}

static enum after answer_then_junk(struct srv *s, int fd, int reqno)
{
    write_all(fd, OK_RESP, sizeof(OK_RESP) - 1);
    if (reqno == 0) {
        usleep(50 * 1000);
        write_all(fd, "junk", 4);
    }
    return KEEP;
}

static void test_unsolicited_bytes_on_idle_connection_drop_it(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, answer_then_junk, NULL);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    xfer_free(&x);
    for (int i = 0; i < 200 && idle(f); i++)
        run_for(f, 5);
    assert_int_equal(idle(f), 0);
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    xfer_free(&x);
    srv_stop(&f->srv);
    assert_int_equal(f->srv.accepts, 2);
}

static void test_bytes_after_the_answer_prevent_reuse(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n");
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_string_equal(x.data.data, "ok");
    assert_int_equal(idle(f), 0);
    xfer_free(&x);
}

/* ---- limits ------------------------------------------------------------------------- */

static char *big_head_resp(size_t header_bytes)
{
    char *r = malloc(header_bytes + 128);
    assert_non_null(r);
    int n = sprintf(r, "HTTP/1.1 200 OK\r\n");
    size_t left = header_bytes;
    int i = 0;
    while (left > 1100) {
        n += sprintf(r + n, "X-Pad-%04d: ", i++);
        memset(r + n, 'p', 1000);
        n += 1000;
        n += sprintf(r + n, "\r\n");
        left -= 1014;
    }
    sprintf(r + n, "Content-Length: 2\r\n\r\nok");
    return r;
}

static void test_header_block_over_64k_is_eio(void **state)
{
    struct fixture *f = *state;
    char *resp = big_head_resp(66 * 1024);
    srv_start(&f->srv, NULL, resp);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_EIO);
    assert_int_equal(x.headers_calls, 0);
    assert_int_equal(idle(f), 0);
    xfer_free(&x);
    srv_stop(&f->srv);
    free(resp);
}

static void test_header_block_under_64k_is_fine(void **state)
{
    struct fixture *f = *state;
    char *resp = big_head_resp(60 * 1024);
    srv_start(&f->srv, NULL, resp);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_string_equal(x.data.data, "ok");
    xfer_free(&x);
    srv_stop(&f->srv);
    free(resp);
}

/* ---- timeouts ------------------------------------------------------------------------ */

static enum after answer_nothing(struct srv *s, int fd, int reqno)
{
    return KEEP;
}

static void test_total_timeout_before_headers(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, answer_nothing, NULL);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/"), .timeout_ms = 150};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_ETIMEDOUT);
    assert_string_equal(x.errmsg, "timed out");
    assert_int_equal(x.headers_calls, 0);
    assert_int_equal(idle(f), 0);
    xfer_free(&x);
}

static enum after answer_part_then_hold(struct srv *s, int fd, int reqno)
{
    static const char part[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n";
    write_all(fd, part, sizeof(part) - 1);
    srv_wait_sig(s);
    write_all(fd, "5\r\nrest\n\r\n0\r\n\r\n", 15);
    return KEEP;
}

static void test_total_timeout_mid_body(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, answer_part_then_hold, NULL);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/"), .timeout_ms = 200};
    struct xfer x;
    run_one(f, &x, &o);
    srv_signal(&f->srv);
    assert_int_equal(x.result, UPSTREAM_ETIMEDOUT);
    assert_string_equal(x.errmsg, "timed out while reading the answer");
    assert_string_equal(x.data.data, "first\n");
    xfer_free(&x);
}

static enum after answer_first_only(struct srv *s, int fd, int reqno)
{
    if (reqno == 0)
        write_all(fd, OK_RESP, sizeof(OK_RESP) - 1);
    return KEEP;
}

static void test_short_timeout_on_a_pooled_connection(void **state)
{
    /* the pooled connection's timer is set for its idle expiry (60 s): a
     * shorter deadline must bring it forward */
    struct fixture *f = *state;
    srv_start(&f->srv, answer_first_only, NULL);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    xfer_free(&x);
    o.timeout_ms = 150;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_ETIMEDOUT);
    assert_string_equal(x.errmsg, "timed out");
    xfer_free(&x);
    srv_stop(&f->srv);
    assert_int_equal(f->srv.accepts, 1);
}

static void test_total_deadline_after_the_connect_deadline(void **state)
{
    /* the timer first stands at the connect deadline; once connected it
     * must move on to the total one, not fire there */
    struct fixture *f = *state;
    srv_start(&f->srv, answer_nothing, NULL);
    struct upstream_opts o = {
        .method = "GET", .url = url(f, "/"), .connect_timeout_ms = 50, .timeout_ms = 400};
    struct xfer x;
    uint64_t t0 = uv_hrtime();
    run_one(f, &x, &o);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(x.result, UPSTREAM_ETIMEDOUT);
    assert_true(ms >= 350);
    xfer_free(&x);
}

static void test_connect_timeout(void **state)
{
    /* a listener whose accept queue is full drops new SYNs: connect hangs */
    struct fixture *f = *state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 0), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&sa, sizeof(sa));
    }
    usleep(20 * 1000);
    char u[64];
    snprintf(u, sizeof(u), "http://127.0.0.1:%u/", ntohs(sa.sin_port));
    struct upstream_opts o = {
        .method = "GET", .url = u, .connect_timeout_ms = 150, .timeout_ms = 5000};
    struct xfer x;
    uint64_t t0 = uv_hrtime();
    run_one(f, &x, &o);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(x.result, UPSTREAM_ETIMEDOUT);
    assert_string_equal(x.errmsg, "timed out");
    assert_true(ms < 4000); /* the connect timeout, not the total one */
    xfer_free(&x);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

static void test_refused_is_econnect(void **state)
{
    struct fixture *f = *state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    char u[64];
    snprintf(u, sizeof(u), "http://127.0.0.1:%u/", ntohs(sa.sin_port));
    struct upstream_opts o = {.method = "GET", .url = u};
    struct xfer x;
    run_one(f, &x, &o);
    close(fd);
    assert_int_equal(x.result, UPSTREAM_ECONNECT);
    assert_string_equal(x.errmsg, "connection refused or unreachable");
    xfer_free(&x);
}

/* ---- streaming, pause, cancel ---------------------------------------------------------- */

static void test_first_bytes_arrive_before_the_server_finishes(void **state)
{
    /* the server holds the rest until on_data has seen the first chunk */
    struct fixture *f = *state;
    srv_start(&f->srv, answer_part_then_hold, NULL);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    xfer_init(&x, f);
    x.signal_server_on_data = 1;
    start(&x, &o);
    run_until(f, &x.done_calls, 1);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_string_equal(x.data.data, "first\nrest\n");
    srv_stop(&f->srv);
    assert_true(f->srv.waited_ok);
    xfer_free(&x);
}

static char *pattern(size_t n)
{
    char *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (char)((i * 131 + (i >> 9)) & 0xff);
    return b;
}

static const char *big_body;
static size_t big_len;

static enum after answer_big(struct srv *s, int fd, int reqno)
{
    char head[128];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", big_len);
    write_all(fd, head, (size_t)n);
    write_all(fd, big_body, big_len);
    return KEEP;
}

static void test_pause_resume_keeps_order_and_hands_bytes_once(void **state)
{
    /* on_data keeps its bytes and pauses every time; a timer resumes */
    struct fixture *f = *state;
    big_len = 1 << 20;
    char *body = pattern(big_len);
    big_body = body;
    srv_start(&f->srv, answer_big, NULL);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    xfer_init(&x, f);
    x.pause_each = 1;
    uv_timer_init(&f->loop, &x.resume_timer);
    x.resume_timer.data = &x;
    start(&x, &o);
    run_until(f, &x.done_calls, 1);
    close_now(f, (uv_handle_t *)&x.resume_timer);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_true(x.pauses > 1);
    assert_int_equal(x.calls_while_paused, 0);
    assert_false(x.paused); /* on_done waited for the last resume */
    assert_int_equal(x.data.len, big_len);
    assert_memory_equal(x.data.data, body, big_len);
    assert_int_equal(x.after_done, 0);
    assert_int_equal(idle(f), 1); /* a paused answer still frees its connection */
    xfer_free(&x);
    srv_stop(&f->srv);
    free(body);
}

static void test_cancel_waiting_for_answer_runs_no_callback(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, answer_nothing, NULL);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    xfer_init(&x, f);
    start(&x, &o);
    run_for(f, 50);
    upstream_cancel(x.req);
    run_for(f, 50);
    assert_int_equal(x.headers_calls + x.data_calls + x.done_calls, 0);
    assert_int_equal(idle(f), 0);
    srv_stop(&f->srv);
    assert_int_equal(f->srv.peer_closes, 1);
    xfer_free(&x);
}

static void test_cancel_while_paused_and_while_connecting(void **state)
{
    struct fixture *f = *state;
    big_len = 1 << 20;
    char *body = pattern(big_len);
    big_body = body;
    srv_start(&f->srv, answer_big, NULL);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    xfer_init(&x, f);
    x.pause_each = 1;
    x.no_resume = 1;
    start(&x, &o);
    run_until(f, &x.data_calls, 1);
    run_for(f, 50);
    assert_int_equal(x.data_calls, 1); /* paused: nothing more came */
    upstream_cancel(x.req);
    struct xfer y;
    xfer_init(&y, f);
    start(&y, &o); /* no pooled connection: this one is connecting */
    upstream_cancel(y.req);
    run_for(f, 50);
    assert_int_equal(x.done_calls + y.done_calls + y.headers_calls, 0);
    assert_int_equal(idle(f), 0);
    xfer_free(&x);
    xfer_free(&y);
    srv_stop(&f->srv);
    free(body);
}

static void test_cancel_from_inside_its_own_callbacks(void **state)
{
    struct fixture *f = *state;
    big_len = 256 * 1024;
    char *body = pattern(big_len);
    big_body = body;
    srv_start(&f->srv, answer_big, NULL);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x, y;
    xfer_init(&x, f);
    x.cancel_in_headers = 1;
    start(&x, &o);
    run_until(f, &x.headers_calls, 1);
    xfer_init(&y, f);
    y.cancel_in_data = 1;
    start(&y, &o);
    run_until(f, &y.data_calls, 1);
    run_for(f, 100);
    assert_int_equal(x.headers_calls, 1);
    assert_int_equal(x.data_calls + x.done_calls, 0);
    assert_int_equal(y.data_calls, 1);
    assert_int_equal(y.done_calls, 0);
    assert_int_equal(idle(f), 0);
    xfer_free(&x);
    xfer_free(&y);
    srv_stop(&f->srv);
    free(body);
}

/* ---- names and proxies --------------------------------------------------------------- */

static void test_localhost_is_resolved_and_the_pool_reused(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, NULL, OK_RESP);
    char u[64];
    snprintf(u, sizeof(u), "http://localhost:%u/", f->srv.port);
    struct upstream_opts o = {.method = "GET", .url = u};
    for (int i = 0; i < 3; i++) {
        struct xfer x;
        run_one(f, &x, &o);
        assert_int_equal(x.result, UPSTREAM_OK);
        xfer_free(&x);
    }
    srv_stop(&f->srv);
    assert_int_equal(f->srv.accepts, 1);
    char want[64];
    snprintf(want, sizeof(want), "\r\nHost: localhost:%u\r\n", f->srv.port);
    assert_non_null(strstr(f->srv.head[0], want));
}

static void test_ipv6_literal(void **state)
{
    struct fixture *f = *state;
    srv_start_af(&f->srv, NULL, OK_RESP, AF_INET6);
    char u[64];
    snprintf(u, sizeof(u), "http://[::1]:%u/v1/models", f->srv.port);
    struct upstream_opts o = {.method = "GET", .url = u};
    for (int i = 0; i < 2; i++) {
        struct xfer x;
        run_one(f, &x, &o);
        assert_int_equal(x.result, UPSTREAM_OK);
        xfer_free(&x);
    }
    assert_int_equal(idle(f), 1);
    srv_stop(&f->srv);
    assert_int_equal(f->srv.accepts, 1);
    char want[64];
    snprintf(want, sizeof(want), "GET /v1/models HTTP/1.1\r\nHost: [::1]:%u\r\n", f->srv.port);
    assert_memory_equal(f->srv.head[0], want, strlen(want));
}

static void on_loop_closed(uv_handle_t *h)
{
}

static void test_free_during_a_name_lookup(void **state)
{
    /* the lookup runs on the thread pool: upstream_free cannot stop it, the
     * loop still ends (and nothing leaks) once it is back */
    struct fixture *f = *state;
    struct upstream_opts o = {.method = "GET", .url = "http://localhost:9/"};
    struct xfer x;
    xfer_init(&x, f);
    start(&x, &o);
    upstream_cancel(x.req);
    upstream_free(f->u);
    uv_close((uv_handle_t *)&f->watchdog, on_loop_closed);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* returns when nothing is left */
    assert_int_equal(x.done_calls + x.headers_calls, 0);
    uv_timer_init(&f->loop, &f->watchdog); /* for teardown */
    f->watchdog.data = f;
    f->u = upstream_new(&f->loop);
    xfer_free(&x);
}

static void test_unresolvable_host_is_econnect(void **state)
{
    struct fixture *f = *state;
    struct upstream_opts o = {.method = "GET", .url = "http://no-such-host.invalid:8080/"};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_ECONNECT);
    assert_string_equal(x.errmsg, "could not resolve host");
    xfer_free(&x);
}

/* A proxy sees the absolute URL on the request line: libcurl carried it. */
static enum after answer_as_proxy(struct srv *s, int fd, int reqno)
{
    write_all(fd, OK_RESP, sizeof(OK_RESP) - 1);
    return KEEP;
}

static void test_proxy_env_leaves_the_transfer_to_libcurl(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, answer_as_proxy, NULL);
    char proxy[64];
    snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%u", f->srv.port);
    setenv("http_proxy", proxy, 1);
    upstream_free(f->u);
    f->u = upstream_new(&f->loop);
    struct upstream_opts o = {.method = "GET", .url = "http://192.0.2.1:9/models"};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    xfer_free(&x);
    /* no_proxy naming the host brings it back to the native client */
    setenv("no_proxy", "example.com, 127.0.0.1", 1);
    upstream_free(f->u);
    f->u = upstream_new(&f->loop);
    o.url = url(f, "/direct");
    run_one(f, &x, &o);
    assert_int_equal(x.result, UPSTREAM_OK);
    assert_int_equal(idle(f), 1);
    xfer_free(&x);
    unsetenv("http_proxy");
    unsetenv("no_proxy");
    srv_stop(&f->srv);
    static const char via_proxy[] = "GET http://192.0.2.1:9/models HTTP/1.1\r\n";
    static const char direct[] = "GET /direct HTTP/1.1\r\n";
    assert_memory_equal(f->srv.head[0], via_proxy, sizeof(via_proxy) - 1);
    assert_memory_equal(f->srv.head[1], direct, sizeof(direct) - 1);
}

static void test_free_closes_pooled_connections(void **state)
{
    struct fixture *f = *state;
    srv_start(&f->srv, NULL, OK_RESP);
    struct upstream_opts o = {.method = "GET", .url = url(f, "/")};
    struct xfer x;
    run_one(f, &x, &o);
    assert_int_equal(idle(f), 1);
    upstream_free(f->u);
    f->u = upstream_new(&f->loop);
    run_for(f, 100);
    srv_stop(&f->srv);
    assert_int_equal(f->srv.peer_closes, 1);
    xfer_free(&x);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (upstream_global_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_request_head_has_host_length_keepalive_and_no_expect),
        T(test_header_with_crlf_is_refused_at_start),
        T(test_sequential_requests_reuse_one_connection),
        T(test_concurrent_requests_open_connections_then_reuse_them),
        T(test_chunked_body_is_dechunked_and_connection_kept),
        T(test_close_delimited_body_ends_at_eof_and_is_not_pooled),
        T(test_http10_answer_is_not_pooled),
        T(test_interim_1xx_answers_are_skipped),
        T(test_server_closing_idle_connection_is_noticed),
        T(test_dead_pooled_connection_is_retried_on_a_fresh_one),
        T(test_no_retry_once_answer_bytes_came),
        T(test_fresh_connection_closing_without_answer_is_eio),
        T(test_unsolicited_bytes_on_idle_connection_drop_it),
        T(test_bytes_after_the_answer_prevent_reuse),
        T(test_header_block_over_64k_is_eio),
        T(test_header_block_under_64k_is_fine),
        T(test_total_timeout_before_headers),
        T(test_total_timeout_mid_body),
        T(test_short_timeout_on_a_pooled_connection),
        T(test_total_deadline_after_the_connect_deadline),
        T(test_connect_timeout),
        T(test_refused_is_econnect),
        T(test_first_bytes_arrive_before_the_server_finishes),
        T(test_pause_resume_keeps_order_and_hands_bytes_once),
        T(test_cancel_waiting_for_answer_runs_no_callback),
        T(test_cancel_while_paused_and_while_connecting),
        T(test_cancel_from_inside_its_own_callbacks),
        T(test_localhost_is_resolved_and_the_pool_reused),
        T(test_unresolvable_host_is_econnect),
        T(test_ipv6_literal),
        T(test_free_during_a_name_lookup),
        T(test_proxy_env_leaves_the_transfer_to_libcurl),
        T(test_free_closes_pooled_connections),
#undef T
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    upstream_global_cleanup();
    return rc;
}
