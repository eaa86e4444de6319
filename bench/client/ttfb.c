// SPDX-License-Identifier: Apache-2.0
// Benchmark client: time to first SSE event. Sends N streaming chat requests one after another
// on one keep-alive connection and times, for each, send → first "data:" byte and send → end of
// the response. Prints one JSON line of percentiles (µs). Built by bench/run.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_RESPONSE (1u << 20)
#define MAX_HEADERS 16

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int dial(const char *host, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Is the response in buf[0..n) complete? Returns 1 complete, 0 need more, -1 malformed.
 * *status gets the status code once the head is in; *close_after is set for Connection: close
 * or close-delimited bodies. */
static int response_complete(const char *buf, size_t n, int *status, int *close_after)
{
    const char *hend = memmem(buf, n, "\r\n\r\n", 4);
    if (hend == NULL)
        return 0;
    if (n < 12 || strncmp(buf, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(buf + 9);
    size_t hlen = (size_t)(hend - buf) + 4;
    long clen = -1;
    int chunked = 0;
    const char *p = memchr(buf, '\n', hlen);
    while (p != NULL && p + 1 < buf + hlen) {
        p++;
        const char *eol = memchr(p, '\n', (size_t)(buf + hlen - p));
        if (eol == NULL)
            break;
        size_t l = (size_t)(eol - p);
        if (l > 15 && strncasecmp(p, "content-length:", 15) == 0)
            clen = strtol(p + 15, NULL, 10);
        else if (l > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0 &&
                 memmem(p, l, "chunked", 7) != NULL)
            chunked = 1;
        else if (l > 11 && strncasecmp(p, "connection:", 11) == 0 &&
                 memmem(p, l, "close", 5) != NULL)
            *close_after = 1;
        p = eol;
    }
    const char *b = buf + hlen;
    size_t bn = n - hlen;
    if (chunked) {
        size_t off = 0;
        for (;;) {
            const char *eol = memmem(b + off, bn - off, "\r\n", 2);
            if (eol == NULL)
                return 0;
            char *endp;
            unsigned long sz = strtoul(b + off, &endp, 16);
            if (endp == b + off)
                return -1;
            off = (size_t)(eol - b) + 2;
            if (sz == 0)
                return memmem(b + off - 2, bn - off + 2, "\r\n\r\n", 4) != NULL ? 1 : 0;
            if (bn - off < sz + 2)
                return 0;
            off += sz + 2;
        }
    }
    if (clen >= 0)
        return bn >= (size_t)clen ? 1 : 0;
    *close_after = 1;
    return 0; /* close-delimited: complete at EOF */
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *v, int n, double p)
{
    if (n == 0)
        return -1;
    int i = (int)(p / 100.0 * (n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *path = "/v1/chat/completions", *body_file = NULL;
    int port = 0, n = 500, warmup = 50, nh = 0;
    const char *headers[MAX_HEADERS];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--body") == 0 && i + 1 < argc)
            body_file = argv[++i];
        else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else if (strcmp(argv[i], "-H") == 0 && i + 1 < argc && nh < MAX_HEADERS)
            headers[nh++] = argv[++i];
        else {
            fprintf(stderr, "usage: %s --port P --body FILE [-n N] [--warmup N] [--path P] "
                            "[--host A] [-H 'Name: value']...\n", argv[0]);
            return 2;
        }
    }
    if (port <= 0 || body_file == NULL || n <= 0) {
        fprintf(stderr, "ttfb: need --port, --body and n > 0\n");
        return 2;
    }
    FILE *f = fopen(body_file, "rb");
    if (f == NULL) {
        perror(body_file);
        return 2;
    }
    struct stat st;
    fstat(fileno(f), &st);
    char *body = malloc((size_t)st.st_size);
    size_t blen = fread(body, 1, (size_t)st.st_size, f);
    fclose(f);

    size_t cap = 4096 + blen;
    char *req = malloc(cap);
    int rl = snprintf(req, cap,
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Accept: text/event-stream\r\nContent-Length: %zu\r\n",
                      path, host, port, blen);
    for (int i = 0; i < nh; i++)
        rl += snprintf(req + rl, cap - (size_t)rl, "%s\r\n", headers[i]);
    rl += snprintf(req + rl, cap - (size_t)rl, "\r\n");
    memcpy(req + rl, body, blen);
    size_t req_len = (size_t)rl + blen;

    char *buf = malloc(MAX_RESPONSE);
    double *ttfb = calloc((size_t)n, sizeof(double));
    double *total = calloc((size_t)n, sizeof(double));
    int ok = 0, errors = 0, non2xx = 0, no_data = 0, reconnects = 0;
    int fd = -1;
    for (int i = 0; i < warmup + n; i++) {
        if (fd < 0) {
            fd = dial(host, port);
            if (fd < 0) {
                errors++;
                usleep(1000);
                continue;
            }
            reconnects++;
        }
        double t0 = now_us(), t_first = -1, t_end = -1;
        ssize_t w = send(fd, req, req_len, MSG_NOSIGNAL);
        if (w != (ssize_t)req_len) {
            errors++;
            close(fd);
            fd = -1;
            continue;
        }
        size_t len = 0;
        int status = 0, close_after = 0, done = 0;
        while (!done) {
            ssize_t r = recv(fd, buf + len, MAX_RESPONSE - len - 1, 0);
            if (r <= 0) {
                done = close_after && r == 0 ? 1 : -1;
                break;
            }
            size_t prev = len > 5 ? len - 5 : 0;
            len += (size_t)r;
            if (t_first < 0 && memmem(buf + prev, len - prev, "data:", 5) != NULL)
                t_first = now_us();
            done = response_complete(buf, len, &status, &close_after);
            if (len >= MAX_RESPONSE - 1)
                done = -1;
        }
        t_end = now_us();
        if (done < 0) {
            errors++;
            close(fd);
            fd = -1;
            continue;
        }
        if (close_after) {
            close(fd);
            fd = -1;
        }
        if (status < 200 || status > 299) {
            non2xx++;
            continue;
        }
        if (t_first < 0 || memmem(buf, len, "[DONE]", 6) == NULL) {
            no_data++;
            continue;
        }
        if (i >= warmup) {
            ttfb[ok] = t_first - t0;
            total[ok] = t_end - t0;
            ok++;
        }
    }
    if (fd >= 0)
        close(fd);
    qsort(ttfb, (size_t)ok, sizeof(double), cmp_double);
    qsort(total, (size_t)ok, sizeof(double), cmp_double);
    printf("{\"n\":%d,\"ok\":%d,\"errors\":%d,\"non2xx\":%d,\"incomplete\":%d,\"connects\":%d,"
           "\"ttfb_p50\":%.1f,\"ttfb_p90\":%.1f,\"ttfb_p99\":%.1f,"
           "\"total_p50\":%.1f,\"total_p99\":%.1f}\n",
           n, ok, errors, non2xx, no_data, reconnects, pct(ttfb, ok, 50), pct(ttfb, ok, 90),
           pct(ttfb, ok, 99), pct(total, ok, 50), pct(total, ok, 99));
    free(buf);
    free(ttfb);
    free(total);
    free(req);
    free(body);
    return ok > 0 ? 0 : 1;
}
