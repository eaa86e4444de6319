// SPDX-License-Identifier: Apache-2.0
// libcurl multi on a libuv loop (see upstream.h): curl tells us which sockets
// to watch and when to wake; uv_poll and one uv_timer do the watching. Plain
// http:// transfers go to the native client in h1.c instead.
#include "upstream/upstream.h"
#include "upstream/h1.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FREE_EASY_MAX 64

struct upstream {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    int timer_open;
    CURL *free_easy[FREE_EASY_MAX]; /* reusable handles: keep their buffers */
    int nfree;
    struct h1 *h1;                  /* native client for plain http:// */
};

struct upstream_req {
    struct upstream_req_tag tag;    /* first: UPSTREAM_ENGINE_CURL */
    struct upstream *u;
    CURL *easy;
    struct curl_slist *headers;
    struct upstream_callbacks cb;
    void *ud;
    long status;
    int headers_done;
    int aborted;                    /* a callback asked to stop */
    int paused;
    int in_cb;                      /* inside one of our callbacks */
    int cancelled;                  /* upstream_cancel ran inside a callback */
    char content_type[128];
    int has_ctype;
};

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct upstream *u;
};

static void check_done(struct upstream *u);

int upstream_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void upstream_global_cleanup(void)
{
    curl_global_cleanup();
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock_ctx *s = p->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(s->u->multi, s->fd, flags, &running);
    check_done(s->u);
}

static void on_poll_closed(uv_handle_t *h)
{
    free(h->data);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct upstream *u = userp;
    struct sock_ctx *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            curl_multi_assign(u->multi, fd, NULL);
            uv_close((uv_handle_t *)&s->poll, on_poll_closed);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        s->fd = fd;
        s->u = u;
        if (uv_poll_init_socket(u->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        curl_multi_assign(u->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    struct upstream *u = t->data;
    int running;
    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(u);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct upstream *u = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&u->timer);
    else
        uv_timer_start(&u->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

struct upstream *upstream_new(uv_loop_t *loop)
{
    struct upstream *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->loop = loop;
    u->h1 = h1_new(loop);
    if (!u->h1) {
        free(u);
        return NULL;
    }
    u->multi = curl_multi_init();
    if (!u->multi) {
        h1_free(u->h1);
        free(u);
        return NULL;
    }
    uv_timer_init(loop, &u->timer);
    u->timer.data = u;
    u->timer_open = 1;
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, 1024L);
    return u;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void upstream_free(struct upstream *u)
{
    if (!u)
        return;
    h1_free(u->h1);
    for (int i = 0; i < u->nfree; i++)
        curl_easy_cleanup(u->free_easy[i]);
    curl_multi_cleanup(u->multi); /* closes pooled connections via socket_cb */
    uv_close((uv_handle_t *)&u->timer, on_timer_closed);
}

/* Runs on_headers; non-zero when the transfer must stop (the callback said
 * so, or cancelled it from inside). */
static int call_headers(struct upstream_req *r)
{
    int rc = 0;
    if (r->cb.on_headers) {
        r->in_cb++;
        rc = r->cb.on_headers(r->ud, r->status, r->has_ctype ? r->content_type : NULL);
        r->in_cb--;
    }
    if (rc != 0 || r->cancelled) {
        r->aborted = 1;
        return -1;
    }
    return 0;
}

/* One "Name: value" line to on_header; non-zero when the transfer must stop. */
static int call_header(struct upstream_req *r, const char *buf, size_t len)
{
    const char *colon = memchr(buf, ':', len);
    if (!colon)
        return 0;
    const char *v = colon + 1;
    size_t vl = len - (size_t)(v - buf);
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
    r->in_cb++;
    int rc = r->cb.on_header(r->ud, buf, (size_t)(colon - buf), v, vl);
    r->in_cb--;
    if (rc != 0 || r->cancelled) {
        r->aborted = 1;
        return -1;
    }
    return 0;
}

static size_t header_cb(char *buf, size_t size, size_t n, void *userp)
{
    struct upstream_req *r = userp;
    size_t len = size * n;
    if (r->aborted)
        return 0;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* a new status line: 1xx answers come before the real one */
        r->has_ctype = 0;
        r->status = 0;
        const char *sp = memchr(buf, ' ', len);
        if (sp && (size_t)(sp - buf) + 4 <= len)
            r->status = strtol(sp + 1, NULL, 10);
        return len;
    }
    if (r->cb.on_header && r->status >= 200 && !r->headers_done && call_header(r, buf, len) != 0)
        return 0;
    if (len >= 13 && strncasecmp(buf, "content-type:", 13) == 0) {
        const char *v = buf + 13;
        size_t vl = len - 13;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl >= sizeof(r->content_type))
            vl = sizeof(r->content_type) - 1;
        memcpy(r->content_type, v, vl);
        r->content_type[vl] = '\0';
        r->has_ctype = 1;
        return len;
    }
    if (len <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
        /* end of a header block; skip interim 1xx ones */
        if (r->status >= 200 && !r->headers_done) {
            r->headers_done = 1;
            if (call_headers(r) != 0)
                return 0;
        }
    }
    return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *userp)
{
    struct upstream_req *r = userp;
    size_t len = size * n;
    if (r->aborted)
        return 0;
    if (!r->headers_done) {
        /* HTTP/1.0 or odd servers: make sure on_headers ran */
        r->headers_done = 1;
        if (call_headers(r) != 0)
            return 0;
    }
    int rc = 0;
    if (r->cb.on_data) {
        r->in_cb++;
        rc = r->cb.on_data(r->ud, data, len);
        r->in_cb--;
    }
    if (rc < 0 || r->cancelled) {
        r->aborted = 1;
        return 0;
    }
    if (rc == 1) {
        /* the caller took these bytes; stop receiving until upstream_resume
         * (CURL_WRITEFUNC_PAUSE would hand the same bytes over again) */
        r->paused = 1;
        curl_easy_pause(r->easy, CURLPAUSE_RECV);
    }
    return len;
}

static void req_release(struct upstream_req *r)
{
    struct upstream *u = r->u;
    curl_multi_remove_handle(u->multi, r->easy);
    if (u->nfree < FREE_EASY_MAX) {
        /* kept with its fixed options; upstream_start sets the rest again */
        curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(r->easy, CURLOPT_PRIVATE, NULL);
        u->free_easy[u->nfree++] = r->easy;
    } else {
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->headers);
    free(r);
}

static void check_done(struct upstream *u)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(u->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct upstream_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (!r)
            continue;
        CURLcode cc = m->data.result;
        enum upstream_result res = UPSTREAM_OK;
        const char *msg = "ok";
        if (r->aborted) {
            res = UPSTREAM_ECANCELED;
            msg = "transfer stopped";
        } else if (cc == CURLE_OK) {
            if (!r->headers_done) {
                r->headers_done = 1;
                if (call_headers(r) != 0) {
                    res = UPSTREAM_ECANCELED;
                    msg = "transfer stopped";
                }
            }
        } else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
                   cc == CURLE_COULDNT_RESOLVE_PROXY) {
            res = UPSTREAM_ECONNECT;
            msg = cc == CURLE_COULDNT_CONNECT ? "connection refused or unreachable"
                                              : "could not resolve host";
        } else if (cc == CURLE_OPERATION_TIMEDOUT) {
            res = UPSTREAM_ETIMEDOUT;
            msg = r->headers_done ? "timed out while reading the answer" : "timed out";
        } else if (cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_PEER_FAILED_VERIFICATION) {
            res = UPSTREAM_ECONNECT;
            msg = "TLS handshake with upstream failed";
        } else {
            res = UPSTREAM_EIO;
            msg = r->headers_done ? "connection to upstream broke mid-answer"
                                  : "upstream sent no valid answer";
        }
        void (*done)(void *, enum upstream_result, const char *) =
            r->cancelled ? NULL : r->cb.on_done; /* a cancelled transfer reports nothing */
        void *ud = r->ud;
        req_release(r);
        if (done)
            done(ud, res, msg);
    }
}

/* A fresh handle with the options every transfer shares. */
static CURL *easy_new(void)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
    return e;
}

struct upstream_req *upstream_start(struct upstream *u, const struct upstream_opts *o,
                                    const struct upstream_callbacks *cb, void *ud)
{
    struct h1_target t;
    if (h1_accepts(u->h1, o, &t))
        return (struct upstream_req *)h1_start(u->h1, &t, o, cb, ud);
    struct upstream_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->tag.engine = UPSTREAM_ENGINE_CURL;
    r->u = u;
    r->cb = *cb;
    r->ud = ud;
    r->easy = u->nfree ? u->free_easy[--u->nfree] : easy_new();
    if (!r->easy)
        goto fail;
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    if (strcmp(o->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, o->body ? o->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, strcmp(o->method, "GET") ? o->method : NULL);
    }
    /* no "Expect: 100-continue" round trip on large bodies */
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    if (!h)
        goto fail;
    r->headers = h;
    char line[8192];
    for (size_t i = 0; i < o->nheaders; i++) {
        /* a CR, LF or NUL would split the header: refuse, never inject */
        if (strpbrk(o->headers[i].name, "\r\n:") || strpbrk(o->headers[i].value, "\r\n"))
            goto fail;
        int n = snprintf(line, sizeof(line), "%s: %s", o->headers[i].name, o->headers[i].value);
        if (n < 0 || (size_t)n >= sizeof(line))
            continue;
        struct curl_slist *nh = curl_slist_append(r->headers, line);
        if (!nh)
            goto fail;
        r->headers = nh;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    if (curl_multi_add_handle(u->multi, e) != CURLM_OK)
        goto fail;
    return r;
fail:
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r);
    return NULL;
}

struct h1 *upstream_h1(struct upstream *u)
{
    return u->h1;
}

void upstream_cancel(struct upstream_req *r)
{
    if (r && r->tag.engine == UPSTREAM_ENGINE_H1)
        h1_cancel((struct h1_req *)r);
    else if (r && r->in_cb)
        r->cancelled = 1; /* released once libcurl is out of the callback */
    else if (r)
        req_release(r);
}

void upstream_resume(struct upstream_req *r)
{
    if (r && r->tag.engine == UPSTREAM_ENGINE_H1)
        h1_resume((struct h1_req *)r);
    else if (r && r->paused) {
        r->paused = 0;
        curl_easy_pause(r->easy, CURLPAUSE_CONT);
    }
}
