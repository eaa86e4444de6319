// SPDX-License-Identifier: Apache-2.0
// Internal to the native HTTP/1.1 client (h1.c, h1_read.c, h1_url.c): its
// types and the few functions its files share. upstream.c sees only h1.h.
#ifndef PORTCULLIS_UPSTREAM_H1_INTERNAL_H
#define PORTCULLIS_UPSTREAM_H1_INTERNAL_H

#include <http_parser.h>
#include <netinet/in.h>

#include "upstream/h1.h"

#define H1_READ_BUF (64 * 1024)      /* one per worker, shared by every connection */
#define H1_HEAD_MAX (64 * 1024)      /* a longer answer head is EIO */
#define H1_IDLE_MS 60000             /* a pooled connection unused this long is closed */
#define H1_IDLE_MAX_PER_ORIGIN 256   /* pooled connections kept per (host, port) */
#define H1_ORIGINS_MAX 256           /* distinct (host, port) pairs; more go to libcurl */
#define H1_DNS_TTL_MS 30000          /* how long a name lookup is trusted */
#define H1_DNS_ADDRS 4               /* addresses kept (tried in order) per lookup */
#define H1_CONNECT_DEFAULT_MS 300000 /* connect_timeout_ms = 0, as libcurl does */
#define H1_HOST_MAX 255
#define H1_CTYPE_MAX 128

enum h1_conn_state {
    H1_RESOLVING, /* waiting for its origin's name lookup */
    H1_CONNECTING,
    H1_ACTIVE,  /* carrying a request */
    H1_IDLE,    /* pooled: read for EOF, closed on any byte */
    H1_CLOSING, /* uv_close called; freed when both handles are closed */
};

/* An intrusive doubly-linked list of connections. */
struct h1_conn_list {
    struct h1_conn *head;
    unsigned n;
};

struct origin {
    struct h1 *h;
    char host[H1_HOST_MAX + 1]; /* lower case, NUL-terminated, no brackets */
    size_t host_len;
    uint16_t port;
    int numeric; /* an IP literal: addr[0] never expires */
    struct sockaddr_storage addr[H1_DNS_ADDRS];
    int naddr;
    uint64_t expires;            /* uv_now() after which addr must be looked up again */
    uv_getaddrinfo_t *gai;       /* running lookup, or NULL */
    struct h1_conn_list idle;    /* LIFO: the most recently used first */
    struct h1_conn_list waiting; /* connections waiting for the lookup */
};

/* A connection owns its handles; it is freed in the last close callback. */
struct h1_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* connect / total deadline, idle expiry, deferred failure */
    uv_connect_t connect;
    uv_write_t write;
    struct h1 *h;
    struct origin *o;
    struct h1_conn_list *list; /* the idle or waiting list it is on, or NULL */
    struct h1_conn *prev, *next;
    struct h1_conn *all_prev, *all_next;
    struct h1_req *req; /* the request it carries, or NULL */
    http_parser parser;
    enum h1_conn_state state;
    int handles_open;  /* counted down in the close callbacks; freed at 0 */
    uint64_t timer_at; /* uv_now() ms the timer is set for, 0 = not set */
    uint64_t idle_due; /* pooled: when it is closed */
    int reading;
    int writing;     /* a uv_write is in flight */
    int keep_alive;  /* the last answer allows another request */
    int extra;       /* bytes came after the answer */
    unsigned served; /* answers read on it: > 0 means a reused connection */
};

/* One transfer: one malloc, the formatted request head at its end. */
struct h1_req {
    struct upstream_req_tag tag; /* first: see h1.h */
    struct h1 *h;
    struct origin *o;
    struct h1_conn *c; /* NULL while it has none */
    struct upstream_callbacks cb;
    void *ud;
    const char *body; /* the caller's, valid until on_done / cancel */
    size_t body_len;
    uint64_t deadline; /* uv_now() ms of the total timeout, 0 = none */
    uint32_t connect_ms;
    uint64_t connect_due; /* uv_now() ms, for the connection being made */
    int addr_idx;         /* the address being tried */
    int starting;         /* inside h1_start: failures wait for the timer */
    int retried;          /* already went to a fresh connection once */
    int headers_done;
    int interim; /* parsing a 1xx answer */
    int aborted; /* a callback asked to stop */
    int paused;
    int complete;                  /* the whole answer is in */
    size_t got;                    /* answer bytes received on the current connection */
    size_t head_bytes;             /* of the answer head being parsed */
    enum upstream_result fail_res; /* with fail_msg: a failure waiting to be reported */
    const char *fail_msg;
    /* content-type capture across split header callbacks */
    int last_was_value;
    int field_is_ctype;
    char field[16];
    size_t field_len;
    char ctype[H1_CTYPE_MAX];
    size_t ctype_len;
    int has_ctype;
    /* every header, for cb.on_header: name then value, the pair handed
     * over when the next name (or the end of the head) comes */
    char *hdr;
    size_t hdr_len, hdr_cap;
    size_t hdr_name_len; /* 0 while the name is still being read */
    int hdr_pending;     /* a pair is being collected */
    /* body bytes that came after on_data paused (within the same read) */
    char *pending;
    size_t pending_len;
    size_t head_len;
    char head[];
};

/* no_proxy as read from the environment. */
struct h1_proxy_env {
    int proxy;      /* http_proxy / HTTP_PROXY / all_proxy / ALL_PROXY set */
    char *no_proxy; /* caller owns (free); NULL when unset */
};

struct h1 {
    uv_loop_t *loop;
    int closing;         /* h1_free ran */
    unsigned nconns;     /* connections not yet freed */
    unsigned ngai;       /* lookups running */
    struct h1_conn *all; /* every live connection */
    struct origin *origins[H1_ORIGINS_MAX];
    unsigned norigins;
    struct h1_proxy_env env;
    char rbuf[H1_READ_BUF];
};

/* h1_url.c */
/* Parses an http:// URL into *t (not its origin). 1 when the native client
 * can carry it, 0 for libcurl. */
int h1_parse_url(const char *url, struct h1_target *t);
/* Reads the proxy variables. 0, or UV_ENOMEM. */
int h1_proxy_env_load(struct h1_proxy_env *e);
/* 1 when a proxy from the environment applies to host (no_proxy does not
 * name it). */
int h1_proxy_env_applies(const struct h1_proxy_env *e, const char *host, size_t len);
/* 1 when name is a token and value holds no CR, LF. */
int h1_header_ok(const char *name, const char *value);
int h1_is_token(const char *s);
/* Formats the request head into out and returns its length; out NULL only
 * measures. user_host: the caller sends its own Host header. */
size_t h1_format_head(char *out, const struct h1_target *t, const struct upstream_opts *o,
                      int user_host);

/* h1_read.c */
void h1_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
void h1_parser_reset(struct h1_conn *c);

/* h1.c, for h1_read.c */
void h1_req_fail(struct h1_req *r, enum upstream_result res, const char *msg);
void h1_req_finish(struct h1_req *r);
void h1_conn_broke(struct h1_conn *c);
void h1_conn_close(struct h1_conn *c);
void h1_stop_reading(struct h1_conn *c);

#endif
