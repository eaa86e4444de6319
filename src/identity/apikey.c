// SPDX-License-Identifier: Apache-2.0
// API keys: "pcl_<id>_<secret>". The store keeps only HMAC-SHA256 of the
// whole key under a per-install secret, so a copy of the database does not
// yield keys and a lookup is one hash plus a binary search in memory.
#include <ctype.h>
#include <pthread.h>
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
struct hmac_pads {
    unsigned char secret[32];
    int ready;
    EVP_MD_CTX *inner, *outer, *work;
};

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
    t->ready = 1;
    return t;
}

void apikey_hash(const unsigned char secret[32], const char *key, size_t len, unsigned char out[32])
{
    struct hmac_pads *t = pads_for(secret);
    unsigned char ih[32];
    unsigned int n = 32;
    if (t != NULL && EVP_MD_CTX_copy_ex(t->work, t->inner) == 1 &&
        EVP_DigestUpdate(t->work, key, len) == 1 && EVP_DigestFinal_ex(t->work, ih, &n) == 1 &&
        EVP_MD_CTX_copy_ex(t->work, t->outer) == 1 && EVP_DigestUpdate(t->work, ih, 32) == 1 &&
        EVP_DigestFinal_ex(t->work, out, &n) == 1)
        return;
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
