// SPDX-License-Identifier: Apache-2.0
// API keys: "pcl_<id>_<secret>". The store keeps only HMAC-SHA256 of the
// whole key under a per-install secret, so a copy of the database does not
// yield keys and a lookup is one hash plus a binary search in memory.
#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "identity/internal.h"
#include "state/state.h"

#define SECRET_BYTES 32

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int apikey_generate(char *key, size_t cap, char id[APIKEY_ID_LEN + 1])
{
    unsigned char rnd[APIKEY_ID_LEN / 2 + SECRET_BYTES];
    char secret[SECRET_BYTES * 2];
    if (cap < 80 || RAND_bytes(rnd, sizeof rnd) != 1)
        return -1;
    for (int i = 0; i < APIKEY_ID_LEN / 2; i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    /* 6 bits per char from each random byte: 32 bytes -> 32 chars of 6 bits
     * would waste entropy, so take 43 chars from the 256 bits. */
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (int i = APIKEY_ID_LEN / 2; i < (int)sizeof rnd; i++) {
        acc = (acc << 8) | rnd[i];
        bits += 8;
        while (bits >= 6) {
            secret[n++] = b64url[(acc >> (bits - 6)) & 63];
            bits -= 6;
        }
    }
    if (bits > 0)
        secret[n++] = b64url[(acc << (6 - bits)) & 63];
    snprintf(key, cap, APIKEY_PREFIX "%s_%.*s", id, (int)n, secret);
    OPENSSL_cleanse(rnd, sizeof rnd);
    OPENSSL_cleanse(secret, sizeof secret);
    return 0;
}

int apikey_shape_ok(const char *s, size_t len)
{
    size_t pre = sizeof APIKEY_PREFIX - 1;
    if (len < pre + APIKEY_ID_LEN + 2 || len > 128 || memcmp(s, APIKEY_PREFIX, pre) != 0)
        return 0;
    for (size_t i = pre; i < pre + APIKEY_ID_LEN; i++)
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    return s[pre + APIKEY_ID_LEN] == '_';
}

/* HMAC-SHA256 under one secret with its inner and outer pads hashed once per
 * thread: a key check then costs two SHA-256 blocks. (The one-shot HMAC()
 * fetches the digest and keys a fresh context on every call, about 22k
 * instructions per request against about 5k here.) */
/* Recent keys' MACs, per thread, found by a 128-bit SipHash of the key under
 * a random per-thread key: the plaintext key is never kept, and the tag says
 * nothing about it without that key. Only the pure function HMAC(secret, key)
 * is remembered; revocation and expiry are still looked up on every request. */
#define MEMO_SLOTS 64

struct memo {
    uint64_t tag[2];
    unsigned char mac[32];
    int used;
};

struct hmac_pads {
    unsigned char secret[32];
    int ready;
    EVP_MD_CTX *inner, *outer, *work;
    int memo_ok;
    uint64_t sip[4]; /* two SipHash keys */
    struct memo memo[MEMO_SLOTS];
};

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* SipHash-2-4 (Aumasson and Bernstein) of m[0..n) under the key (k0, k1). */
uint64_t apikey_siphash(uint64_t k0, uint64_t k1, const void *m, size_t n)
{
    const unsigned char *p = m;
    uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575), v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261), v3 = k1 ^ UINT64_C(0x7465646279746573);
    size_t full = n & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t w = le64(p + i);
        v3 ^= w;
        SIPROUND;
        SIPROUND;
        v0 ^= w;
    }
    uint64_t b = (uint64_t)n << 56;
    for (size_t i = full; i < n; i++)
        b |= (uint64_t)p[i] << (8 * (i - full));
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static pthread_key_t pads_key;
static pthread_once_t pads_once = PTHREAD_ONCE_INIT;
static int pads_ok;

static void pads_free(void *arg)
{
    struct hmac_pads *t = arg;
    EVP_MD_CTX_free(t->inner);
    EVP_MD_CTX_free(t->outer);
    EVP_MD_CTX_free(t->work);
    OPENSSL_cleanse(t, sizeof *t);
    free(t);
}

static void pads_init(void)
{
    pads_ok = pthread_key_create(&pads_key, pads_free) == 0;
}

/* This thread's pads for secret, keyed anew when the secret changed; NULL
 * when they cannot be made (the caller falls back to HMAC()). */
static struct hmac_pads *pads_for(const unsigned char secret[32])
{
    pthread_once(&pads_once, pads_init);
    if (!pads_ok)
        return NULL;
    struct hmac_pads *t = pthread_getspecific(pads_key);
    if (t != NULL && t->ready && CRYPTO_memcmp(t->secret, secret, 32) == 0)
        return t;
    if (t == NULL) {
        t = calloc(1, sizeof *t);
        if (t == NULL)
            return NULL;
        t->inner = EVP_MD_CTX_new();
        t->outer = EVP_MD_CTX_new();
        t->work = EVP_MD_CTX_new();
        if (t->inner == NULL || t->outer == NULL || t->work == NULL ||
            pthread_setspecific(pads_key, t) != 0) {
            pads_free(t);
            return NULL;
        }
    }
    t->ready = 0;
    unsigned char ipad[64], opad[64];
    for (int i = 0; i < 64; i++) {
        unsigned char k = i < 32 ? secret[i] : 0;
        ipad[i] = k ^ 0x36;
        opad[i] = k ^ 0x5c;
    }
    int ok = EVP_DigestInit_ex(t->inner, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(t->inner, ipad, 64) == 1 &&
             EVP_DigestInit_ex(t->outer, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(t->outer, opad, 64) == 1;
    OPENSSL_cleanse(ipad, sizeof ipad);
    OPENSSL_cleanse(opad, sizeof opad);
    if (!ok)
        return NULL;
    memcpy(t->secret, secret, 32);
    memset(t->memo, 0, sizeof t->memo);
    t->memo_ok = RAND_bytes((unsigned char *)t->sip, sizeof t->sip) == 1;
    t->ready = 1;
    return t;
}

void apikey_hash(const unsigned char secret[32], const char *key, size_t len, unsigned char out[32])
{
    struct hmac_pads *t = pads_for(secret);
    unsigned char ih[32];
    unsigned int n = 32;
    struct memo *m = NULL;
    uint64_t tag[2] = {0, 0};
    if (t != NULL && t->memo_ok) {
        tag[0] = apikey_siphash(t->sip[0], t->sip[1], key, len);
        tag[1] = apikey_siphash(t->sip[2], t->sip[3], key, len);
        m = &t->memo[tag[0] % MEMO_SLOTS];
        if (m->used && CRYPTO_memcmp(m->tag, tag, sizeof tag) == 0) {
            memcpy(out, m->mac, 32);
            return;
        }
    }
    if (t != NULL && EVP_MD_CTX_copy_ex(t->work, t->inner) == 1 &&
        EVP_DigestUpdate(t->work, key, len) == 1 && EVP_DigestFinal_ex(t->work, ih, &n) == 1 &&
        EVP_MD_CTX_copy_ex(t->work, t->outer) == 1 && EVP_DigestUpdate(t->work, ih, 32) == 1 &&
        EVP_DigestFinal_ex(t->work, out, &n) == 1) {
        if (m != NULL) {
            memcpy(m->tag, tag, sizeof tag);
            memcpy(m->mac, out, 32);
            m->used = 1;
        }
        return;
    }
    n = 32;
    HMAC(EVP_sha256(), secret, 32, (const unsigned char *)key, len, out, &n);
}

static int entry_cmp(const void *a, const void *b)
{
    return memcmp(((const struct apikey_entry *)a)->hash, ((const struct apikey_entry *)b)->hash,
                  32);
}

struct load_ctx {
    struct apikey_table *t;
    size_t cap;
    int oom;
};

static int add_key(const struct state_api_key *k, void *arg)
{
    struct load_ctx *c = arg;
    struct apikey_table *t = c->t;
    if (t->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct apikey_entry *items = realloc(t->items, cap * sizeof *items);
        if (items == NULL) {
            c->oom = 1;
            return 1;
        }
        t->items = items;
        c->cap = cap;
    }
    struct apikey_entry *e = &t->items[t->n];
    memset(e, 0, sizeof *e);
    memcpy(e->hash, k->hash, 32);
    snprintf(e->id, sizeof e->id, "%s", k->id);
    e->agent = strdup(k->agent ? k->agent : "");
    e->scope = k->scope ? strdup(k->scope) : NULL;
    e->expires = k->expires;
    e->revoked = k->revoked;
    if (e->agent == NULL || (k->scope != NULL && e->scope == NULL)) {
        free(e->agent);
        free(e->scope);
        c->oom = 1;
        return 1;
    }
    t->n++;
    return 0;
}

int apikey_table_load(struct state *st, struct apikey_table *t)
{
    struct load_ctx c = {.t = t};
    t->items = NULL;
    t->n = 0;
    if (state_keys_each(st, add_key, &c) < 0 || c.oom) {
        apikey_table_free(t);
        return -1;
    }
    if (t->n > 1)
        qsort(t->items, t->n, sizeof *t->items, entry_cmp);
    return 0;
}

void apikey_table_free(struct apikey_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->items[i].agent);
        free(t->items[i].scope);
    }
    free(t->items);
    t->items = NULL;
    t->n = 0;
}

const struct apikey_entry *apikey_table_find(const struct apikey_table *t,
                                             const unsigned char hash[32])
{
    struct apikey_entry key;
    if (t->n == 0)
        return NULL;
    memcpy(key.hash, hash, 32);
    return bsearch(&key, t->items, t->n, sizeof *t->items, entry_cmp);
}

const struct apikey_entry *apikey_table_find_id(const struct apikey_table *t, const char *id)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->items[i].id, id) == 0)
            return &t->items[i];
    return NULL;
}

int64_t identity_parse_ttl(const char *s)
{
    char *end;
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    int64_t mult;
    if (strcmp(end, "s") == 0 || *end == '\0')
        mult = 1;
    else if (strcmp(end, "m") == 0)
        mult = 60;
    else if (strcmp(end, "h") == 0)
        mult = 3600;
    else if (strcmp(end, "d") == 0)
        mult = 86400;
    else if (strcmp(end, "w") == 0)
        mult = 7 * 86400;
    else
        return -1;
    if (v == 0 || v > (unsigned long long)(100LL * 365 * 86400) / (unsigned long long)mult)
        return -1;
    return (int64_t)v * mult;
}
