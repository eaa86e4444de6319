// SPDX-License-Identifier: Apache-2.0
// JWK sets: parsed from a JWKS document (a file, or a URL fetched by the
// refresher thread), checked key by key, and shared immutably between the
// workers by reference count.
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "identity/internal.h"

struct jwk_set *jwk_set_from_array(json_t *keys)
{
    struct jwk_set *s = calloc(1, sizeof *s);
    if (s == NULL) {
        json_decref(keys);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->keys = keys;
    return s;
}

struct jwk_set *jwk_set_ref(struct jwk_set *s)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void jwk_set_unref(struct jwk_set *s)
{
    if (s != NULL && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        json_decref(s->keys);
        free(s);
    }
}

size_t jwk_set_size(const struct jwk_set *s)
{
    return s != NULL ? json_array_size(s->keys) : 0;
}

int jwk_set_has_kid(const struct jwk_set *s, const char *kid)
{
    size_t i;
    json_t *k;
    if (s == NULL || kid == NULL)
        return 0;
    json_array_foreach(s->keys, i, k)
    {
        const char *v = json_string_value(json_object_get(k, "kid"));
        if (v != NULL && strcmp(v, kid) == 0)
            return 1;
    }
    return 0;
}

/* The members a key of this type must have, as base64url strings. */
static int key_complete(const json_t *k, const char *kty)
{
    static const char *const rsa[] = {"n", "e", NULL}, *const ec[] = {"crv", "x", "y", NULL},
                             *const oct[] = {"k", NULL};
    const char *const *need = strcmp(kty, "RSA") == 0   ? rsa
                              : strcmp(kty, "EC") == 0  ? ec
                              : strcmp(kty, "oct") == 0 ? oct
                                                        : NULL;
    if (need == NULL)
        return 0;
    for (; *need != NULL; need++) {
        const char *v = json_string_value(json_object_get(k, *need));
        if (v == NULL || v[0] == '\0')
            return 0;
    }
    return 1;
}

struct jwk_set *jwk_set_parse(const char *text, size_t len, char *why, size_t whylen)
{
    json_error_t jerr;
    if (len > JWKS_MAX_BYTES) {
        snprintf(why, whylen, "JWKS larger than %u bytes", JWKS_MAX_BYTES);
        return NULL;
    }
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        snprintf(why, whylen, "JWKS is not a JSON object%s%.100s", doc ? "" : ": ",
                 doc ? "" : jerr.text);
        json_decref(doc);
        return NULL;
    }
    json_t *list = json_object_get(doc, "keys");
    json_t *single = NULL;
    if (list == NULL && json_object_get(doc, "kty") != NULL) {
        single = json_array();
        if (single != NULL)
            json_array_append(single, doc);
        list = single;
    }
    if (!json_is_array(list)) {
        snprintf(why, whylen, "JWKS has no \"keys\" array");
        json_decref(single);
        json_decref(doc);
        return NULL;
    }
    if (json_array_size(list) > JWKS_MAX_KEYS) {
        snprintf(why, whylen, "JWKS has more than %d keys", JWKS_MAX_KEYS);
        json_decref(single);
        json_decref(doc);
        return NULL;
    }
    json_t *keys = json_array();
    size_t i;
    json_t *k;
    json_array_foreach(list, i, k)
    {
        if (!json_is_object(k))
            continue;
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *use = json_string_value(json_object_get(k, "use"));
        json_t *kid = json_object_get(k, "kid");
        if (kty == NULL || (use != NULL && strcmp(use, "sig") != 0) ||
            (kid != NULL && !json_is_string(kid)) || !key_complete(k, kty))
            continue; /* not a signature key we can use: skip, do not fail */
        json_array_append(keys, k);
    }
    json_decref(single);
    json_decref(doc);
    if (keys == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    struct jwk_set *s = jwk_set_from_array(keys);
    if (s == NULL)
        snprintf(why, whylen, "out of memory");
    return s;
}

struct jwk_set *jwk_set_load_file(const char *path, char *why, size_t whylen)
{
    struct stat st;
    buf_t b;
    buf_init(&b, JWKS_MAX_BYTES);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "cannot read JWKS file %.200s: %s", path,
                 fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    char chunk[8192];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (buf_append(&b, chunk, (size_t)r) != 0) {
            snprintf(why, whylen, "JWKS file %.200s is larger than %u bytes", path, JWKS_MAX_BYTES);
            close(fd);
            buf_free(&b);
            return NULL;
        }
    }
    close(fd);
    struct jwk_set *s = jwk_set_parse(b.data ? b.data : "", b.len, why, whylen);
    buf_free(&b);
    return s;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    buf_t *b = arg;
    return buf_append(b, p, size * n) == 0 ? size * n : 0;
}

struct jwk_set *jwk_set_fetch_url(const char *url, long timeout_ms, char *why, size_t whylen)
{
    buf_t b;
    buf_init(&b, JWKS_MAX_BYTES);
    CURL *h = curl_easy_init();
    if (h == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    long status = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    struct jwk_set *s = NULL;
    if (rc != CURLE_OK)
        snprintf(why, whylen, "fetching JWKS: %s", curl_easy_strerror(rc));
    else if (status != 200)
        snprintf(why, whylen, "fetching JWKS: HTTP status %ld", status);
    else
        s = jwk_set_parse(b.data ? b.data : "", b.len, why, whylen);
    buf_free(&b);
    return s;
}
