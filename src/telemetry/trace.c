// SPDX-License-Identifier: Apache-2.0
#include "telemetry/trace.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "core/hex.h"
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
    int n = snprintf(in, sizeof in, "%s%s", tag, s);
    SHA256((const unsigned char *)in, n < (int)sizeof in ? (size_t)n : sizeof in - 1, md);
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

void trace_outbound(const struct http_exchange *ex, char out[TRACEPARENT_LEN + 1])
{
    char trace[33], span[17];
    trace_id_of_exchange(ex, trace);
    hex_of_hash("span:", ex->request_id, span, 16);
    memcpy(out, "00-", 3);
    memcpy(out + 3, trace, 32);
    out[35] = '-';
    memcpy(out + 36, span, 16);
    memcpy(out + 52, "-01", 4); /* sampled; includes the NUL */
}
