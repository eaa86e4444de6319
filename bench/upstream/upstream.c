// SPDX-License-Identifier: Apache-2.0
// Benchmark upstream: a single-threaded libuv HTTP/1.1 server that answers every POST with a
// static ~1 KB OpenAI chat.completion, or, when the body asks for "stream": true, with an SSE
// stream of N chunks spaced by a small gap. Built by bench/run; not part of the product.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#define MAX_REQUEST (4u << 20) /* largest request (headers + body) accepted */
#define MAX_CHUNKS 1000

typedef struct conn {
    uv_tcp_t tcp;      /* must stay first: handle->data is not needed */
    uv_timer_t timer;  /* paces SSE chunks */
    char *buf;         /* bytes read and not yet consumed */
    size_t len, cap;
    int streaming;     /* chunks still to send in the current SSE answer, 0 when idle */
    int closing;
    int handles_open;  /* tcp + timer; freed when both are closed */
} conn_t;

static struct {
    uv_loop_t *loop;
    int chunks;
    unsigned gap_ms;
    char *json_resp;   /* full HTTP response for non-streaming requests */
    size_t json_resp_len;
    char *sse_head;    /* HTTP head + first chunk */
    size_t sse_head_len;
    char *sse_chunk;   /* one middle chunk (chunked framing included) */
    size_t sse_chunk_len;
    char *sse_tail;    /* last content chunk + [DONE] + terminator */
    size_t sse_tail_len;
    unsigned long long requests;
} g;

static const char json_body[] =
    "{\"id\":\"chatcmpl-bench0000000000000000000000000\",\"object\":\"chat.completion\","
    "\"created\":1732500000,\"model\":\"bench-model\",\"system_fingerprint\":\"fp_bench\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
    "\"Portcullis benchmark answer. This static completion stands in for a real model so that "
    "the proxies, not the upstream, are what the load generator measures. It is long enough to "
    "look like a short paragraph an agent would get back from a model: a plan with three steps, "
    "first read the file, then summarise the findings, then propose a patch with tests. The "
    "numbers that matter are requests per second, latency percentiles and bytes of memory per "
    "idle connection, all taken on the loopback interface of one small machine.\","
    "\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":256,\"completion_tokens\":118,\"total_tokens\":374,"
    "\"prompt_tokens_details\":{\"cached_tokens\":0},"
    "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}";

static const char sse_event[] =
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1732500000,"
    "\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"token \"},"
    "\"finish_reason\":null}]}\n\n";

static const char sse_last[] =
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1732500000,"
    "\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":256,\"completion_tokens\":8,\"total_tokens\":264}}\n\n"
    "data: [DONE]\n\n";

static char *xasprintf(size_t *len, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *xasprintf(size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = malloc((size_t)n + 1);
    if (s == NULL) {
        fprintf(stderr, "upstream: out of memory\n");
        exit(1);
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *len = (size_t)n;
    return s;
}

static void build_responses(void)
{
    g.json_resp = xasprintf(&g.json_resp_len,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\nConnection: keep-alive\r\n\r\n%s",
                            sizeof(json_body) - 1, json_body);
    g.sse_head = xasprintf(&g.sse_head_len,
                           "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                           "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
                           "Connection: keep-alive\r\n\r\n%zx\r\n%s\r\n",
                           sizeof(sse_event) - 1, sse_event);
    g.sse_chunk = xasprintf(&g.sse_chunk_len, "%zx\r\n%s\r\n", sizeof(sse_event) - 1, sse_event);
    g.sse_tail =
        xasprintf(&g.sse_tail_len, "%zx\r\n%s\r\n0\r\n\r\n", sizeof(sse_last) - 1, sse_last);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->handles_open == 0) {
        free(c->buf);
        free(c);
    }
}

static void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_write(uv_write_t *req, int status)
{
    conn_t *c = req->data;
    free(req);
    if (status < 0)
        conn_close(c);
}

/* Sends static bytes (never freed): try a direct write first, queue the rest. */
static void send_static(conn_t *c, const char *p, size_t n)
{
    if (c->closing)
        return;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (w == (int)n)
        return;
    if (w < 0 && w != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    if (w > 0) {
        b.base += w;
        b.len -= (size_t)w;
    }
    uv_write_t *req = malloc(sizeof(*req));
    if (req == NULL) {
        conn_close(c);
        return;
    }
    req->data = c;
    if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        free(req);
        conn_close(c);
    }
}

static void process(conn_t *c);

static void on_stream_tick(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->streaming > 1) {
        send_static(c, g.sse_chunk, g.sse_chunk_len);
        c->streaming--;
        uv_timer_start(&c->timer, on_stream_tick, g.gap_ms, 0);
        return;
    }
    send_static(c, g.sse_tail, g.sse_tail_len);
    c->streaming = 0;
    process(c); /* pipelined requests that waited for the stream */
}

static void start_stream(conn_t *c)
{
    send_static(c, g.sse_head, g.sse_head_len);
    c->streaming = g.chunks > 1 ? g.chunks - 1 : 1;
    if (g.gap_ms == 0) {
        while (c->streaming > 1) {
            send_static(c, g.sse_chunk, g.sse_chunk_len);
            c->streaming--;
        }
        send_static(c, g.sse_tail, g.sse_tail_len);
        c->streaming = 0;
        return;
    }
    uv_timer_start(&c->timer, on_stream_tick, g.gap_ms, 0);
}

static const char *find_crlfcrlf(const char *p, size_t n)
{
    const char *e = memmem(p, n, "\r\n\r\n", 4);
    return e;
}

/* Value of header `name` (case-insensitive) within head, or NULL; *vlen gets its length. */
static const char *header_value(const char *head, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', n); /* skip the request line */
    const char *end = head + n;
    while (p != NULL && p + 1 < end) {
        p++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

/* Decodes a chunked body in place (p is a scratch copy). Returns the encoded length once the
 * body is complete, -1 if more bytes are needed, -2 if malformed; *body_len gets the decoded
 * length and the decoded bytes start at p. */
static long dechunk(char *p, size_t n, size_t *body_len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *eol = memmem(p + in, n - in, "\r\n", 2);
        if (eol == NULL)
            return -1;
        char *endp;
        unsigned long sz = strtoul(p + in, &endp, 16);
        if (endp == p + in)
            return -2;
        in = (size_t)(eol - p) + 2;
        if (sz == 0) {
            char *fin = memmem(p + in, n - in, "\r\n", 2); /* no trailers expected */
            if (fin == NULL)
                return -1;
            *body_len = out;
            return (long)((size_t)(fin - p) + 2);
        }
        if (n - in < sz + 2)
            return -1;
        memmove(p + out, p + in, sz);
        out += sz;
        in += sz + 2;
    }
}

static int body_wants_stream(const char *b, size_t n)
{
    const char *end = b + n;
    const char *p = b;
    while ((p = memmem(p, (size_t)(end - p), "\"stream\"", 8)) != NULL) {
        p += 8;
        const char *q = p;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
            q++;
        if (q < end && *q == ':') {
            q++;
            while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
                q++;
            if ((size_t)(end - q) >= 4 && memcmp(q, "true", 4) == 0)
                return 1;
        }
    }
    return 0;
}

/* Answers every complete request in data[0..len), stopping while an SSE answer is in flight.
 * Returns how many bytes were consumed; the caller keeps the rest. */
static size_t process_bytes(conn_t *c, char *data, size_t len)
{
    size_t off = 0;
    while (!c->closing && c->streaming == 0 && off < len) {
        char *p = data + off;
        size_t n = len - off;
        const char *hend = find_crlfcrlf(p, n);
        if (hend == NULL)
            break;
        size_t hlen = (size_t)(hend - p) + 4;
        size_t vlen = 0, body_len = 0, total;
        const char *v;
        char *body = p + hlen;
        if ((v = header_value(p, hlen, "transfer-encoding", &vlen)) != NULL &&
            vlen >= 7 && strncasecmp(v + vlen - 7, "chunked", 7) == 0) {
            /* decode a copy so an incomplete body can be re-read later unchanged */
            char *tmp = malloc(n - hlen + 1);
            if (tmp == NULL) {
                conn_close(c);
                return off;
            }
            memcpy(tmp, body, n - hlen);
            long used = dechunk(tmp, n - hlen, &body_len);
            if (used == -1) {
                free(tmp);
                break;
            }
            if (used < 0) {
                free(tmp);
                conn_close(c);
                return off;
            }
            int st = body_wants_stream(tmp, body_len);
            free(tmp);
            total = hlen + (size_t)used;
            off += total;
            g.requests++;
            if (st)
                start_stream(c);
            else
                send_static(c, g.json_resp, g.json_resp_len);
            continue;
        }
        if ((v = header_value(p, hlen, "content-length", &vlen)) != NULL)
            body_len = strtoul(v, NULL, 10);
        total = hlen + body_len;
        if (total > MAX_REQUEST) {
            conn_close(c);
            return off;
        }
        if (n < total)
            break;
        off += total;
        g.requests++;
        if (body_len > 0 && body_wants_stream(body, body_len))
            start_stream(c);
        else
            send_static(c, g.json_resp, g.json_resp_len);
    }
    return off;
}

/* Keeps data[0..len) in the connection's own buffer for the next read. */
static int keep_bytes(conn_t *c, const char *data, size_t len)
{
    if (len > MAX_REQUEST)
        return -1;
    if (c->cap < len) {
        size_t ncap = len < 65536 ? 65536 : len;
        char *nb = realloc(c->buf, ncap);
        if (nb == NULL)
            return -1;
        c->buf = nb;
        c->cap = ncap;
    }
    memmove(c->buf, data, len);
    c->len = len;
    return 0;
}

/* Answers what the connection's own buffer holds; frees the buffer once it is empty so idle
 * connections cost little. */
static void process(conn_t *c)
{
    if (c->len == 0)
        return;
    size_t used = process_bytes(c, c->buf, c->len);
    if (c->closing)
        return;
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    if (c->len == 0) {
        free(c->buf);
        c->buf = NULL;
        c->cap = 0;
    }
}

/* Reads land in one shared buffer while a connection has nothing pending (the common case: one
 * whole request per read); a connection with a partial request reads into its own buffer. */
static char shared_buf[256 * 1024];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    conn_t *c = h->data;
    (void)suggested;
    if (c->len == 0) {
        *out = uv_buf_init(shared_buf, sizeof(shared_buf));
        return;
    }
    if (c->cap - c->len < 16384) {
        size_t ncap = c->cap * 2;
        char *nb = ncap <= MAX_REQUEST * 2 ? realloc(c->buf, ncap) : NULL;
        if (nb == NULL) {
            *out = uv_buf_init(NULL, 0);
            return;
        }
        c->buf = nb;
        c->cap = ncap;
    }
    *out = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    conn_t *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (b->base == shared_buf) {
        size_t used = process_bytes(c, shared_buf, (size_t)nread);
        if (!c->closing && used < (size_t)nread &&
            keep_bytes(c, shared_buf + used, (size_t)nread - used) < 0)
            conn_close(c);
        return;
    }
    c->len += (size_t)nread;
    process(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    uv_tcp_init(g.loop, &c->tcp);
    uv_timer_init(g.loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    fprintf(stderr, "upstream: %llu requests\n", g.requests);
    uv_stop(s->loop);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    g.chunks = 8;
    g.gap_ms = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--chunks") == 0 && i + 1 < argc)
            g.chunks = atoi(argv[++i]);
        else if (strcmp(argv[i], "--gap-ms") == 0 && i + 1 < argc)
            g.gap_ms = (unsigned)atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s --port N [--host A] [--chunks N] [--gap-ms MS]\n", argv[0]);
            return 2;
        }
    }
    if (port <= 0 || g.chunks < 1 || g.chunks > MAX_CHUNKS) {
        fprintf(stderr, "upstream: need --port and 1 <= --chunks <= %d\n", MAX_CHUNKS);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    build_responses();
    g.loop = uv_default_loop();

    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_tcp_init(g.loop, &server);
    uv_ip4_addr(host, port, &addr);
    int r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&server, 4096, on_connection);
    if (r < 0) {
        fprintf(stderr, "upstream: listen %s:%d: %s\n", host, port, uv_strerror(r));
        return 1;
    }
    uv_signal_t sigint, sigterm;
    uv_signal_init(g.loop, &sigint);
    uv_signal_init(g.loop, &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    fprintf(stderr, "upstream: listening on %s:%d (%d chunks, %u ms gap)\n", host, port, g.chunks,
            g.gap_ms);
    uv_run(g.loop, UV_RUN_DEFAULT);
    return 0;
}
