// SPDX-License-Identifier: Apache-2.0
// Native HTTP/1.1 client for plain http:// upstreams (see h1.h): per-worker
// keep-alive pools keyed by (host, port), name lookups cached per origin,
// the request sent with one sendmsg; h1_read.c reads the answer.
#include "upstream/h1_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static void conn_connect(struct h1_conn *c);
static int req_connect(struct h1_req *r);
static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf);
static void on_timer(uv_timer_t *t);
static void timer_want(struct h1_conn *c, uint64_t due);

/* ---- small helpers -------------------------------------------------------- */

static void list_push(struct h1_conn_list *l, struct h1_conn *c)
{
    c->list = l;
    c->prev = NULL;
    c->next = l->head;
    if (l->head)
        l->head->prev = c;
    l->head = c;
    l->n++;
}

static void list_remove(struct h1_conn *c)
{
    struct h1_conn_list *l = c->list;
    if (!l)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->list = NULL;
    l->n--;
}

static void start_reading(struct h1_conn *c)
{
    if (!c->reading && c->state != H1_CLOSING) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, h1_on_read) == 0)
            c->reading = 1;
    }
}

void h1_stop_reading(struct h1_conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

/* ---- lifetime of the whole client ----------------------------------------- */

struct h1 *h1_new(uv_loop_t *loop)
{
    struct h1 *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->loop = loop;
    if (h1_proxy_env_load(&h->env) < 0) {
        free(h);
        return NULL;
    }
    return h;
}

static void maybe_release(struct h1 *h)
{
    if (!h->closing || h->nconns || h->ngai)
        return;
    for (unsigned i = 0; i < h->norigins; i++)
        free(h->origins[i]);
    free(h->env.no_proxy);
    free(h);
}

void h1_free(struct h1 *h)
{
    if (!h || h->closing)
        return;
    h->closing = 1;
    for (unsigned i = 0; i < h->norigins; i++)
        if (h->origins[i]->gai)
            uv_cancel((uv_req_t *)h->origins[i]->gai); /* or it finishes on its own */
    struct h1_conn *c = h->all;
    while (c) {
        struct h1_conn *next = c->all_next;
        h1_conn_close(c); /* a request still on it is freed with it, no callback */
        c = next;
    }
    maybe_release(h);
}

/* The pool and address cache of (host, port), made on first use. NULL when
 * there are too many (or no memory). */
static struct origin *origin_get(struct h1 *h, const struct h1_target *t)
{
    for (unsigned i = 0; i < h->norigins; i++) {
        struct origin *o = h->origins[i];
        if (o->port == t->port && o->host_len == t->host_len &&
            strncasecmp(o->host, t->host, t->host_len) == 0) {
            if (i) { /* keep the busy ones in front */
                h->origins[i] = h->origins[i - 1];
                h->origins[i - 1] = o;
            }
            return o;
        }
    }
    if (h->norigins == H1_ORIGINS_MAX)
        return NULL;
    struct origin *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->h = h;
    for (size_t i = 0; i < t->host_len; i++) {
        char ch = t->host[i];
        o->host[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    o->host_len = t->host_len;
    o->port = t->port;
    if (uv_ip4_addr(o->host, o->port, (struct sockaddr_in *)&o->addr[0]) == 0 ||
        uv_ip6_addr(o->host, o->port, (struct sockaddr_in6 *)&o->addr[0]) == 0) {
        o->numeric = 1;
        o->naddr = 1;
    }
    h->origins[h->norigins++] = o;
    return o;
}

int h1_accepts(struct h1 *h, const struct upstream_opts *o, struct h1_target *t)
{
    if (h->closing || !o->method || !h1_is_token(o->method) || strcmp(o->method, "HEAD") == 0)
        return 0;
    if (!h1_parse_url(o->url, t) || h1_proxy_env_applies(&h->env, t->host, t->host_len))
        return 0;
    t->origin = origin_get(h, t);
    return t->origin != NULL;
}

unsigned h1_idle_connections(const struct h1 *h)
{
    unsigned n = 0;
    for (unsigned i = 0; i < h->norigins; i++)
        n += h->origins[i]->idle.n;
    return n;
}

/* ---- connections -------------------------------------------------------------- */

static void req_free(struct h1_req *r)
{
    free(r->pending);
    free(r->hdr);
    free(r);
}

static void on_handle_closed(uv_handle_t *hd)
{
    struct h1_conn *c = hd->data;
    if (--c->handles_open)
        return;
    struct h1 *h = c->h;
    if (c->req) /* dropped by h1_free: no callback */
        req_free(c->req);
    free(c);
    h->nconns--;
    maybe_release(h);
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    struct h1_conn *c = hd->data;
    buf->base = c->h->rbuf; /* consumed (or copied) before the next read */
    buf->len = H1_READ_BUF;
}

void h1_conn_close(struct h1_conn *c)
{
    if (c->state == H1_CLOSING)
        return;
    struct h1 *h = c->h;
    list_remove(c);
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        h->all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    c->state = H1_CLOSING;
    c->reading = 0;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static struct h1_conn *conn_new(struct h1 *h, struct origin *o)
{
    struct h1_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->h = h;
    c->o = o;
    if (uv_tcp_init(h->loop, &c->tcp) != 0) {
        free(c);
        return NULL;
    }
    uv_timer_init(h->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->connect.data = c;
    c->write.data = c;
    c->handles_open = 2;
    c->all_next = h->all;
    if (h->all)
        h->all->all_prev = c;
    h->all = c;
    h->nconns++;
    uv_tcp_nodelay(&c->tcp, 1);
    return c;
}

/* ---- finishing a request ---------------------------------------------------- */

/* Detaches r from its connection, closes that, and reports (or, inside
 * h1_start, has the connection's timer report on the next loop turn). */
void h1_req_fail(struct h1_req *r, enum upstream_result res, const char *msg)
{
    struct h1_conn *c = r->c;
    if (r->starting) {
        r->fail_res = res;
        r->fail_msg = msg;
        if (!c)
            return; /* h1_start gives up and returns NULL */
        list_remove(c);
        h1_stop_reading(c);
        timer_want(c, uv_now(c->h->loop));
        return;
    }
    if (c) {
        c->req = NULL;
        r->c = NULL;
        h1_conn_close(c);
    }
    void (*done)(void *, enum upstream_result, const char *) = r->cb.on_done;
    void *ud = r->ud;
    req_free(r);
    if (done)
        done(ud, res, msg);
}

/* The same, reported from the connection's timer on the next loop turn: for
 * failures found where no callback may run (inside h1_start). */
static void fail_later(struct h1_req *r, enum upstream_result res, const char *msg)
{
    int starting = r->starting;
    r->starting = 1;
    h1_req_fail(r, res, msg);
    r->starting = starting;
}

/* The whole answer is in and delivered: the connection goes back to the
 * pool when it can carry another request, then on_done. */
void h1_req_finish(struct h1_req *r)
{
    struct h1_conn *c = r->c;
    struct origin *o = r->o;
    c->req = NULL;
    r->c = NULL;
    c->served++;
    if (c->keep_alive && !c->extra && !c->writing && !c->h->closing &&
        o->idle.n < H1_IDLE_MAX_PER_ORIGIN) {
        c->state = H1_IDLE;
        list_push(&o->idle, c);
        c->idle_due = uv_now(c->h->loop) + H1_IDLE_MS;
        timer_want(c, c->idle_due);
        start_reading(c); /* a server-side close shows as EOF */
    } else {
        h1_conn_close(c);
    }
    void (*done)(void *, enum upstream_result, const char *) = r->cb.on_done;
    void *ud = r->ud;
    req_free(r);
    if (done)
        done(ud, UPSTREAM_OK, "ok");
}

/* The connection broke (EOF, reset, write error) before the answer was
 * whole. A reused connection that got no byte of the answer was probably
 * closed by the server while pooled: once, the request goes again on a
 * fresh connection. */
void h1_conn_broke(struct h1_conn *c)
{
    struct h1_req *r = c->req;
    if (!r->got && c->served && !r->retried) {
        r->retried = 1;
        c->req = NULL;
        r->c = NULL;
        h1_conn_close(c);
        if (req_connect(r) == 0)
            return;
        h1_req_fail(r, UPSTREAM_EIO, "out of memory");
        return;
    }
    h1_req_fail(r, UPSTREAM_EIO,
                r->headers_done ? "connection to upstream broke mid-answer"
                                : "upstream sent no valid answer");
}

/* When the connection's timer must act next (uv_now() ms), 0 for never:
 * idle expiry, a waiting failure, the connect or the total deadline. */
static uint64_t conn_due(const struct h1_conn *c)
{
    const struct h1_req *r = c->req;
    if (c->state == H1_IDLE)
        return c->idle_due;
    if (!r || c->state == H1_CLOSING)
        return 0;
    if (r->fail_msg)
        return 1; /* now */
    uint64_t due = r->deadline;
    if ((c->state == H1_RESOLVING || c->state == H1_CONNECTING) && (!due || r->connect_due < due))
        due = r->connect_due;
    return due;
}

static void on_timer(uv_timer_t *t)
{
    struct h1_conn *c = t->data;
    c->timer_at = 0;
    uint64_t due = conn_due(c);
    if (!due)
        return;
    if (due > uv_now(c->h->loop)) {
        timer_want(c, due); /* the deadline moved on since the timer was set */
        return;
    }
    struct h1_req *r = c->req;
    if (c->state == H1_IDLE) {
        h1_conn_close(c);
        return;
    }
    if (r->fail_msg) {
        r->starting = 0;
        h1_req_fail(r, r->fail_res, r->fail_msg);
        return;
    }
    h1_req_fail(r, UPSTREAM_ETIMEDOUT,
                r->headers_done ? "timed out while reading the answer" : "timed out");
}

/* Makes sure the timer fires by due (uv_now() ms; 0: nothing to add). The
 * timer is moved only when due is earlier than where it is set: a later
 * deadline is found by on_timer, which sets the timer again. So a request
 * on a pooled connection usually costs no timer operation. */
static void timer_want(struct h1_conn *c, uint64_t due)
{
    if (!due || (c->timer_at && c->timer_at <= due))
        return;
    uint64_t now = uv_now(c->h->loop);
    uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
    c->timer_at = due > now ? due : now;
}

/* The connect deadline of a new connection attempt, then the timer. */
static void arm_connect(struct h1_conn *c, struct h1_req *r)
{
    r->connect_due = uv_now(c->h->loop) + (r->connect_ms ? r->connect_ms : H1_CONNECT_DEFAULT_MS);
    timer_want(c, conn_due(c));
}

/* ---- sending -------------------------------------------------------------------- */

static void on_write(uv_write_t *w, int status)
{
    struct h1_conn *c = w->data;
    c->writing = 0;
    if (status == 0 || c->state == H1_CLOSING || !c->req)
        return;
    if (c->req->got)
        return; /* the answer has started (an early error answer): let it finish */
    h1_conn_broke(c);
}

/* Sends the head and body: one sendmsg when the socket takes it all, the
 * rest through uv_write. */
static void req_send(struct h1_req *r)
{
    struct h1_conn *c = r->c;
    uv_buf_t b[2] = {{.base = r->head, .len = r->head_len},
                     {.base = (char *)r->body, .len = r->body_len}};
    unsigned nb = r->body_len ? 2 : 1;
    size_t total = r->head_len + r->body_len;
    uv_os_fd_t fd;
    ssize_t n = -1;
    int err = 0;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
        /* MSG_NOSIGNAL: a peer that closed meanwhile is EPIPE, not SIGPIPE */
        struct iovec iov[2] = {{r->head, r->head_len}, {(void *)r->body, r->body_len}};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = nb};
        do
            n = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            err = errno;
            n = 0;
        }
    } else {
        err = EBADF;
        n = 0;
    }
    if (err && err != EAGAIN && err != EWOULDBLOCK) {
        h1_conn_broke(c);
        return;
    }
    if ((size_t)n == total)
        return;
    /* the rest, from where the socket stopped */
    size_t off = (size_t)n;
    unsigned i = 0;
    if (off >= r->head_len) {
        off -= r->head_len;
        i = 1;
    }
    b[i].base += off;
    b[i].len -= off;
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &b[i], nb - i, on_write) != 0) {
        h1_conn_broke(c);
        return;
    }
    c->writing = 1;
}

/* ---- connecting ----------------------------------------------------------------- */

static void attach(struct h1_conn *c, struct h1_req *r)
{
    c->req = r;
    r->c = c;
    r->got = 0;
    r->headers_done = 0;
    r->interim = 0;
    c->keep_alive = 0;
    c->extra = 0;
    h1_parser_reset(c);
}

static void on_connect(uv_connect_t *cr, int status)
{
    struct h1_conn *c = cr->data;
    if (status == UV_ECANCELED || c->state == H1_CLOSING)
        return;
    struct h1_req *r = c->req;
    if (status < 0) {
        struct origin *o = c->o;
        if (r->addr_idx + 1 < o->naddr) { /* the next address of the name */
            r->addr_idx++;
            c->req = NULL;
            r->c = NULL;
            h1_conn_close(c);
            struct h1_conn *nc = conn_new(r->h, o);
            if (!nc) {
                h1_req_fail(r, UPSTREAM_ECONNECT, "out of memory");
                return;
            }
            attach(nc, r);
            nc->state = H1_CONNECTING;
            arm_connect(nc, r);
            conn_connect(nc);
            return;
        }
        h1_req_fail(r, UPSTREAM_ECONNECT, "connection refused or unreachable");
        return;
    }
    c->state = H1_ACTIVE; /* on_timer moves on to the total deadline */
    start_reading(c);
    req_send(r);
}

static void conn_connect(struct h1_conn *c)
{
    struct h1_req *r = c->req;
    c->state = H1_CONNECTING;
    int rc = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&c->o->addr[r->addr_idx],
                            on_connect);
    if (rc < 0)
        fail_later(r, UPSTREAM_ECONNECT, "connection refused or unreachable");
}

static void on_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *res)
{
    struct origin *o = gai->data;
    struct h1 *h = o->h;
    o->gai = NULL;
    h->ngai--;
    free(gai);
    if (h->closing) {
        uv_freeaddrinfo(res);
        maybe_release(h);
        return;
    }
    if (status == 0) {
        int n = 0;
        for (struct addrinfo *a = res; a && n < H1_DNS_ADDRS; a = a->ai_next) {
            if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
                a->ai_addrlen > sizeof(o->addr[0]))
                continue;
            memcpy(&o->addr[n++], a->ai_addr, a->ai_addrlen);
        }
        o->naddr = n;
        if (n)
            o->expires = uv_now(h->loop) + H1_DNS_TTL_MS;
    }
    uv_freeaddrinfo(res);
    int ok = status == 0 && o->naddr > 0;
    /* take the waiters first: callbacks may start new lookups */
    struct h1_conn_list w = o->waiting;
    o->waiting = (struct h1_conn_list){0};
    for (struct h1_conn *c = w.head; c; c = c->next)
        c->list = &w;
    while (w.head && !h->closing) {
        struct h1_conn *c = w.head;
        list_remove(c);
        if (ok) {
            c->req->addr_idx = 0;
            conn_connect(c);
        } else {
            h1_req_fail(c->req, UPSTREAM_ECONNECT, "could not resolve host");
        }
    }
}

static int origin_resolve(struct origin *o)
{
    struct h1 *h = o->h;
    if (o->gai)
        return 0;
    uv_getaddrinfo_t *gai = malloc(sizeof(*gai));
    if (!gai)
        return UV_ENOMEM;
    gai->data = o;
    char port[8];
    snprintf(port, sizeof(port), "%u", o->port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    int rc = uv_getaddrinfo(h->loop, gai, on_resolved, o->host, port, &hints);
    if (rc < 0) {
        free(gai);
        return rc;
    }
    o->gai = gai;
    h->ngai++;
    return 0;
}

/* Puts r on a fresh connection: connects now, or after the name lookup.
 * 0, or a negative error when nothing could start (no callback ran). */
static int req_connect(struct h1_req *r)
{
    struct origin *o = r->o;
    struct h1 *h = r->h;
    struct h1_conn *c = conn_new(h, o);
    if (!c)
        return UV_ENOMEM;
    attach(c, r);
    r->addr_idx = 0;
    int known = o->numeric || (o->naddr && uv_now(h->loop) < o->expires);
    c->state = known ? H1_CONNECTING : H1_RESOLVING;
    arm_connect(c, r);
    if (known) {
        conn_connect(c);
        return 0;
    }
    list_push(&o->waiting, c);
    if (origin_resolve(o) < 0)
        fail_later(r, UPSTREAM_ECONNECT, "could not resolve host");
    return 0;
}

/* ---- starting ------------------------------------------------------------------- */

struct h1_req *h1_start(struct h1 *h, const struct h1_target *t, const struct upstream_opts *o,
                        const struct upstream_callbacks *cb, void *ud)
{
    if (h->closing || !t->origin)
        return NULL;
    int user_host = 0;
    for (size_t i = 0; i < o->nheaders; i++) {
        const struct upstream_header *hd = &o->headers[i];
        if (!h1_header_ok(hd->name, hd->value))
            return NULL; /* it would split the head */
        if ((*hd->name | 0x20) == 'h' && strcasecmp(hd->name, "Host") == 0)
            user_host = 1;
    }
    struct origin *org = t->origin;
    size_t head_len = h1_format_head(NULL, t, o, user_host);
    struct h1_req *r = malloc(sizeof(*r) + head_len);
    if (!r)
        return NULL;
    memset(r, 0, sizeof(*r));
    r->head_len = h1_format_head(r->head, t, o, user_host);
    r->tag.engine = UPSTREAM_ENGINE_H1;
    r->h = h;
    r->o = org;
    r->cb = *cb;
    r->ud = ud;
    r->body = o->body ? o->body : "";
    r->body_len = o->body_len;
    r->connect_ms = o->connect_timeout_ms;
    if (o->timeout_ms)
        r->deadline = uv_now(h->loop) + o->timeout_ms;
    r->starting = 1;
    struct h1_conn *c = org->idle.head;
    if (c) {
        list_remove(c);
        c->state = H1_ACTIVE;
        attach(c, r);
        timer_want(c, r->deadline);
        start_reading(c);
        req_send(r); /* a dead pooled connection goes to req_connect */
    } else if (req_connect(r) < 0) {
        req_free(r);
        return NULL;
    }
    r->starting = 0;
    if (!r->c) { /* could not even get a connection to report from */
        req_free(r);
        return NULL;
    }
    return r;
}

/* ---- cancel, resume ----------------------------------------------------------------- */

void h1_cancel(struct h1_req *r)
{
    struct h1_conn *c = r->c;
    if (c) {
        c->req = NULL;
        r->c = NULL;
        h1_conn_close(c);
    }
    req_free(r);
}

void h1_resume(struct h1_req *r)
{
    if (!r->paused)
        return;
    struct h1_conn *c = r->c;
    r->paused = 0;
    if (r->pending_len) {
        char *p = r->pending;
        size_t n = r->pending_len;
        r->pending = NULL;
        r->pending_len = 0;
        int rc = r->cb.on_data ? r->cb.on_data(r->ud, p, n) : 0;
        free(p);
        if (c->state == H1_CLOSING)
            return;
        if (rc < 0) {
            h1_req_fail(r, UPSTREAM_ECANCELED, "transfer stopped");
            return;
        }
        if (rc == 1) {
            r->paused = 1;
            return;
        }
    }
    if (r->complete) {
        h1_req_finish(r);
        return;
    }
    start_reading(c);
}
