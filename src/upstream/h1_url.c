// SPDX-License-Identifier: Apache-2.0
// The native HTTP/1.1 client's view of a transfer before it starts: which
// URLs it takes (plain http://, no proxy from the environment) and the
// request head it sends, formatted into one buffer.
#include "upstream/h1_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

int h1_is_token(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return 0;
    return 1;
}

int h1_header_ok(const char *name, const char *value)
{
    return name && value && h1_is_token(name) && !value[strcspn(value, "\r\n")];
}

static int host_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_';
}

int h1_parse_url(const char *url, struct h1_target *t)
{
    if (!url || strncasecmp(url, "http://", 7) != 0)
        return 0;
    const char *a = url + 7; /* authority */
    size_t alen = strcspn(a, "/?#");
    if (a[alen] == '?' || memchr(a, '@', alen))
        return 0; /* "http://h?q", user info: libcurl */
    const char *host, *port = NULL;
    size_t hlen, plen = 0;
    t->ipv6 = *a == '[';
    if (t->ipv6) {
        const char *rb = memchr(a, ']', alen);
        if (!rb)
            return 0;
        host = a + 1;
        hlen = (size_t)(rb - host);
        for (size_t i = 0; i < hlen; i++)
            if (!strchr("0123456789abcdefABCDEF:.", host[i]))
                return 0; /* zone ids too */
        if (rb + 1 < a + alen) {
            if (rb[1] != ':')
                return 0;
            port = rb + 2;
            plen = (size_t)(a + alen - port);
        }
    } else {
        const char *colon = memchr(a, ':', alen);
        host = a;
        hlen = colon ? (size_t)(colon - a) : alen;
        if (colon) {
            port = colon + 1;
            plen = (size_t)(a + alen - port);
        }
        for (size_t i = 0; i < hlen; i++)
            if (!host_char((unsigned char)host[i]))
                return 0; /* percent-encoding, IDN: libcurl */
    }
    if (hlen == 0 || hlen > H1_HOST_MAX || plen > 5)
        return 0;
    unsigned long pn = 80;
    if (plen) {
        pn = 0;
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9')
                return 0;
            pn = pn * 10 + (unsigned long)(port[i] - '0');
        }
        if (pn == 0 || pn > 65535)
            return 0;
    }
    const char *path = a + alen;
    size_t pathlen = strcspn(path, "#");
    for (size_t i = 0; i < pathlen; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return 0; /* libcurl escapes or refuses these */
    }
    t->host = host;
    t->host_len = hlen;
    t->port = (uint16_t)pn;
    t->path = pathlen ? path : "/";
    t->path_len = pathlen ? pathlen : 1;
    t->origin = NULL;
    return 1;
}

/* ---- proxy environment ------------------------------------------------------ */

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int h1_proxy_env_load(struct h1_proxy_env *e)
{
    e->proxy = env_nonempty("http_proxy") || env_nonempty("HTTP_PROXY") ||
               env_nonempty("all_proxy") || env_nonempty("ALL_PROXY");
    e->no_proxy = NULL;
    const char *np = env_nonempty("no_proxy");
    if (!np)
        np = env_nonempty("NO_PROXY");
    if (e->proxy && np && !(e->no_proxy = strdup(np)))
        return UV_ENOMEM;
    return 0;
}

/* no_proxy entries: "*", or a name matching itself and its subdomains (a
 * leading dot ignored), or an address written the same way. Anything
 * cleverer (CIDR, ports) does not match here, which leaves the transfer to
 * libcurl: it decides whether to use the proxy. */
int h1_proxy_env_applies(const struct h1_proxy_env *e, const char *host, size_t hlen)
{
    if (!e->proxy)
        return 0;
    const char *p = e->no_proxy ? e->no_proxy : "";
    while (*p) {
        p += strspn(p, ", \t");
        size_t n = strcspn(p, ", \t");
        const char *s = p;
        p += n;
        if (n == 1 && *s == '*')
            return 0;
        if (n && *s == '.')
            s++, n--;
        if (!n)
            continue;
        if (n == hlen && strncasecmp(s, host, n) == 0)
            return 0;
        if (hlen > n && host[hlen - n - 1] == '.' && strncasecmp(s, host + hlen - n, n) == 0)
            return 0;
    }
    return 1;
}

/* ---- the request head ---------------------------------------------------------- */

struct hbuf {
    char *p; /* NULL: only count */
    size_t len;
};

static void put(struct hbuf *b, const char *s, size_t n)
{
    if (b->p)
        memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void put_str(struct hbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_uint(struct hbuf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do
        tmp[--i] = (char)('0' + v % 10);
    while (v /= 10);
    put(b, tmp + i, sizeof(tmp) - i);
}

/* Framing headers are ours: the caller's are left out. */
static int framing_header(const char *name)
{
    switch (*name | 0x20) {
    case 'c':
        return strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Connection") == 0;
    case 't':
        return strcasecmp(name, "Transfer-Encoding") == 0;
    case 'e':
        return strcasecmp(name, "Expect") == 0;
    default:
        return 0;
    }
}

size_t h1_format_head(char *out, const struct h1_target *t, const struct upstream_opts *o,
                      int user_host)
{
    struct hbuf b = {out, 0};
    put_str(&b, o->method);
    put(&b, " ", 1);
    put(&b, t->path, t->path_len);
    put(&b, " HTTP/1.1\r\n", 11);
    if (!user_host) {
        put(&b, "Host: ", 6);
        if (t->ipv6)
            put(&b, "[", 1);
        put(&b, t->host, t->host_len);
        if (t->ipv6)
            put(&b, "]", 1);
        if (t->port != 80) {
            put(&b, ":", 1);
            put_uint(&b, t->port);
        }
        put(&b, "\r\n", 2);
    }
    for (size_t i = 0; i < o->nheaders; i++) {
        const struct upstream_header *hd = &o->headers[i];
        if (framing_header(hd->name))
            continue;
        put_str(&b, hd->name);
        put(&b, ": ", 2);
        put_str(&b, hd->value);
        put(&b, "\r\n", 2);
    }
    if (o->body_len || strcmp(o->method, "POST") == 0 || strcmp(o->method, "PUT") == 0 ||
        strcmp(o->method, "PATCH") == 0) {
        put(&b, "Content-Length: ", 16);
        put_uint(&b, o->body_len);
        put(&b, "\r\n", 2);
    }
    put(&b, "Connection: keep-alive\r\n\r\n", 26);
    return b.len;
}
