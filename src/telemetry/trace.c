// SPDX-License-Identifier: Apache-2.0
#include "telemetry/trace.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/hex.h"
#include "core/sha256.h"
#include "http/parser.h"
#include "http/server.h"
#include "identity/identity.h"

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0')
            return 0;
    return 1;
}

int traceparent_parse(const char *v, size_t len, char trace_id[33], char parent_id[17])
{
    if (v == NULL || len < TRACEPARENT_LEN || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return 0;
    if (!is_hex(v, 2) || (v[0] == 'f' && v[1] == 'f'))
        return 0; /* version ff is forbidden */
    /* version 00 is exactly 55 bytes; a later version may append "-..." */
    if (v[0] == '0' && v[1] == '0' ? len != TRACEPARENT_LEN
                                   : len > TRACEPARENT_LEN && v[TRACEPARENT_LEN] != '-')
        return 0;
    if (!is_hex(v + 3, 32) || all_zero(v + 3, 32) || !is_hex(v + 36, 16) ||
        all_zero(v + 36, 16) || !is_hex(v + 53, 2))
        return 0;
    memcpy(trace_id, v + 3, 32);
    trace_id[32] = '\0';
    if (parent_id) {
        memcpy(parent_id, v + 36, 16);
        parent_id[16] = '\0';
    }
    return 1;
}

static void hex_of_hash(const char *tag, const char *s, char *out, size_t ndigits)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    char in[160]; /* request ids are at most 63 bytes */
    size_t tl = strlen(tag), sl = strlen(s);
    if (sl > sizeof in - 1 - tl)
        sl = sizeof in - 1 - tl;
    memcpy(in, tag, tl);
    memcpy(in + tl, s, sl);
    sha256(in, tl + sl, md);
    md[0] |= 1; /* never all zeros */
    hex_encode(md, ndigits / 2, out);
}

void trace_id_of_exchange(const struct http_exchange *ex, char out[33])
{
    const struct http_header *h = ex->req ? http_request_header(ex->req, "traceparent") : NULL;
    if (h && traceparent_parse(h->value, h->value_len, out, NULL))
        return;
    const struct identity_principal *p = ex->principal;
    const char *root = p && p->root_request_id ? p->root_request_id : ex->request_id;
    hex_of_hash("trace:", root, out, 32);
}

/* ---- spans sent upstream, for parent links --------------------------------
 * A fixed table indexed by the span id's low bits (span ids are hashes, so
 * uniform); a slot is overwritten by the next span that lands on it. One
 * mutex: only calls that go to MCP/A2A upstreams, and requests arriving with
 * a traceparent, touch it. */
struct span_slot {
    char span[17];
    char rid[64];
    char root[64];
};

static struct span_slot *spans;
static pthread_mutex_t spans_mu = PTHREAD_MUTEX_INITIALIZER;

static size_t span_index(const char *span)
{
    size_t v = 0;
    for (int i = 12; i < 16; i++)
        v = v << 4 | (size_t)hex_value(span[i]);
    return v & (TRACE_SPANS_REMEMBERED - 1);
}

static void copy_id(char dst[64], const char *src)
{
    size_t n = strnlen(src, 63);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void span_remember(const char *span, const char *rid, const char *root)
{
    pthread_mutex_lock(&spans_mu);
    if (spans == NULL)
        spans = calloc(TRACE_SPANS_REMEMBERED, sizeof *spans);
    if (spans != NULL) {
        struct span_slot *s = &spans[span_index(span)];
        memcpy(s->span, span, 17);
        copy_id(s->rid, rid);
        copy_id(s->root, root);
    }
    pthread_mutex_unlock(&spans_mu);
}

int trace_parent_of_exchange(const struct http_exchange *ex, char parent[64], char root[64])
{
    const struct http_header *h = ex->req ? http_request_header(ex->req, "traceparent") : NULL;
    char trace[33], span[17];
    if (h == NULL || !traceparent_parse(h->value, h->value_len, trace, span))
        return 0;
    int found = 0;
    pthread_mutex_lock(&spans_mu);
    if (spans != NULL) {
        const struct span_slot *s = &spans[span_index(span)];
        if (memcmp(s->span, span, 17) == 0 && strcmp(s->rid, ex->request_id) != 0) {
            memcpy(parent, s->rid, 64);
            memcpy(root, s->root, 64);
            found = 1;
        }
    }
    pthread_mutex_unlock(&spans_mu);
    return found;
}

void trace_outbound(const struct http_exchange *ex, char out[TRACEPARENT_LEN + 1])
{
    char trace[33], span[17];
    trace_id_of_exchange(ex, trace);
    hex_of_hash("span:", ex->request_id, span, 16);
    const struct identity_principal *p = ex->principal;
    span_remember(span, ex->request_id,
                  p && p->root_request_id ? p->root_request_id : ex->request_id);
    memcpy(out, "00-", 3);
    memcpy(out + 3, trace, 32);
    out[35] = '-';
    memcpy(out + 36, span, 16);
    memcpy(out + 52, "-01", 4); /* sampled; includes the NUL */
}
