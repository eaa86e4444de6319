// SPDX-License-Identifier: Apache-2.0
// The identity context shared by all workers: API key and signing key
// snapshots read from the state store, the external IdP's JWKS, and the
// refresher thread that reloads them (so the CLI's revocations and key
// rotations reach a running gateway) without touching any event loop.
#include <jose/jose.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "core/log.h"
#include "identity/internal.h"
#include "state/state.h"

#define REFRESH_TICK_MS 250
/* A retired signing key keeps verifying (and stays published) this long. */
#define RETIRED_KEEP_S (24 * 3600)
#define JWKS_FETCH_TIMEOUT_MS 5000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- gateway signing keys -------------------------------------------------- */

/* A fresh ES256 private JWK with kid = its RFC 7638 thumbprint. */
static json_t *signing_key_generate(void)
{
    json_t *jwk = json_pack("{s:s}", "alg", "ES256");
    if (jwk == NULL || !jose_jwk_gen(NULL, jwk)) {
        json_decref(jwk);
        return NULL;
    }
    json_t *thp = jose_jwk_thp(NULL, jwk, "S256");
    if (!json_is_string(thp) || json_object_set_new(jwk, "kid", thp) < 0 ||
        json_object_set_new(jwk, "use", json_string("sig")) < 0) {
        json_decref(jwk);
        return NULL;
    }
    return jwk;
}

int identity_signing_rotate(struct state *st, char *kid_out, size_t kid_len)
{
    json_t *jwk = signing_key_generate();
    if (jwk == NULL)
        return -1;
    char *text = json_dumps(jwk, JSON_COMPACT);
    const char *kid = json_string_value(json_object_get(jwk, "kid"));
    int rc = -1;
    if (text != NULL && kid != NULL &&
        state_signing_rotate(st, kid, text, (int64_t)time(NULL)) == 0) {
        if (kid_out != NULL)
            snprintf(kid_out, kid_len, "%s", kid);
        rc = 0;
    }
    if (text != NULL) {
        explicit_bzero(text, strlen(text));
        free(text);
    }
    json_decref(jwk);
    return rc;
}

struct signing_walk {
    int64_t now;
    json_t *pub;
    json_t *active;
    char *active_kid;
};

static int add_signing(const struct state_signing_key *k, void *arg)
{
    struct signing_walk *w = arg;
    if (k->retired != 0 && w->now - k->retired > RETIRED_KEEP_S)
        return 0;
    json_t *jwk = json_loads(k->jwk, 0, NULL);
    if (!json_is_object(jwk)) {
        json_decref(jwk);
        return 0;
    }
    if (k->retired == 0 && w->active == NULL) {
        w->active = json_deep_copy(jwk);
        w->active_kid = strdup(k->kid);
    }
    if (jose_jwk_pub(NULL, jwk)) {
        json_object_set_new(jwk, "kid", json_string(k->kid));
        json_object_set_new(jwk, "alg", json_string("ES256"));
        json_object_set_new(jwk, "use", json_string("sig"));
        json_array_append(w->pub, jwk);
    }
    json_decref(jwk);
    return 0;
}

/* ---- snapshots ----------------------------------------------------------- */

void identity_keys_put(struct identity_keys *k)
{
    if (k == NULL || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
        return;
    apikey_table_free(&k->apikeys);
    jwk_set_unref(k->gateway_pub);
    json_decref(k->signing_jwk);
    free(k->signing_kid);
    free(k->jwks_text);
    free(k);
}

static struct identity_keys *keys_build(struct state *st)
{
    struct identity_keys *k = calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    atomic_init(&k->refs, 1);
    struct signing_walk w = {.now = (int64_t)time(NULL), .pub = json_array()};
    if (w.pub == NULL || apikey_table_load(st, &k->apikeys) < 0 ||
        state_signing_each(st, add_signing, &w) < 0) {
        json_decref(w.pub);
        json_decref(w.active);
        free(w.active_kid);
        identity_keys_put(k);
        return NULL;
    }
    json_t *doc = json_pack("{s:O}", "keys", w.pub);
    k->jwks_text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    k->gateway_pub = jwk_set_from_array(w.pub);
    k->signing_jwk = w.active;
    k->signing_kid = w.active_kid;
    if (k->jwks_text == NULL || k->gateway_pub == NULL) {
        identity_keys_put(k);
        return NULL;
    }
    return k;
}

struct identity_keys *identity_keys_get(struct identity *id)
{
    pthread_mutex_lock(&id->mu);
    struct identity_keys *k = id->keys;
    if (k != NULL)
        atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&id->mu);
    return k;
}

struct jwk_set *identity_jwks_get(struct identity *id)
{
    pthread_mutex_lock(&id->mu);
    struct jwk_set *s = jwk_set_ref(id->jwks);
    pthread_mutex_unlock(&id->mu);
    return s;
}

void identity_keys_wake(struct identity *id)
{
    pthread_mutex_lock(&id->mu);
    pthread_cond_signal(&id->wake);
    pthread_mutex_unlock(&id->mu);
}

int identity_jwks_refetch(struct identity *id)
{
    if (id->jwks_url == NULL)
        return 0;
    int64_t last = atomic_load(&id->last_fetch_ms);
    int due = now_ms() - last >= (int64_t)id->jwks_min_refetch_ms;
    pthread_mutex_lock(&id->mu);
    id->refetch_wanted = 1;
    pthread_cond_signal(&id->wake);
    pthread_mutex_unlock(&id->mu);
    return due;
}

/* ---- the refresher thread ---------------------------------------------- */

static void reload_keys(struct identity *id)
{
    int64_t gen;
    if (state_keys_generation(id->st, &gen) < 0 || gen == id->generation)
        return;
    struct identity_keys *k = keys_build(id->st);
    if (k == NULL) {
        log_msg(LOG_WARN, NULL, "identity: reloading keys failed: %s", state_errmsg(id->st));
        return;
    }
    pthread_mutex_lock(&id->mu);
    struct identity_keys *old = id->keys;
    id->keys = k;
    pthread_mutex_unlock(&id->mu);
    identity_keys_put(old);
    id->generation = gen;
    log_msg(LOG_DEBUG, NULL, "identity: keys reloaded (%zu API keys)", k->apikeys.n);
}

static void maybe_fetch_jwks(struct identity *id, int wanted)
{
    int64_t now = now_ms();
    int due = id->last_fetch_ms == 0 || now - id->last_fetch_ms >= id->jwks_refresh_ms;
    if (wanted && now - id->last_fetch_ms >= id->jwks_min_refetch_ms)
        due = 1;
    if (!due)
        return;
    char why[256];
    id->last_fetch_ms = now;
    struct jwk_set *s = jwk_set_fetch_url(id->jwks_url, JWKS_FETCH_TIMEOUT_MS, why, sizeof why);
    if (s == NULL) {
        log_msg(LOG_WARN, NULL, "identity: JWKS %s: %s", id->jwks_url, why);
        atomic_fetch_add(&id->jwks_fetches, 1);
        return;
    }
    pthread_mutex_lock(&id->mu);
    struct jwk_set *old = id->jwks;
    id->jwks = s;
    pthread_mutex_unlock(&id->mu);
    jwk_set_unref(old);
    atomic_fetch_add(&id->jwks_fetches, 1);
    log_msg(LOG_INFO, NULL, "identity: JWKS fetched from %s (%zu keys)", id->jwks_url,
            jwk_set_size(s));
}

static void *refresher(void *arg)
{
    struct identity *id = arg;
    pthread_mutex_lock(&id->mu);
    while (!id->stop) {
        int wanted = id->refetch_wanted;
        id->refetch_wanted = 0;
        pthread_mutex_unlock(&id->mu);
        reload_keys(id);
        if (id->jwks_url != NULL)
            maybe_fetch_jwks(id, wanted);
        pthread_mutex_lock(&id->mu);
        if (id->stop || id->refetch_wanted)
            continue;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += REFRESH_TICK_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&id->wake, &id->mu, &until);
    }
    pthread_mutex_unlock(&id->mu);
    return NULL;
}

/* ---- lifetime ------------------------------------------------------------ */

static int has_active_signing(const struct state_signing_key *k, void *arg)
{
    if (k->retired == 0)
        *(int *)arg = 1;
    return k->retired == 0;
}

struct identity *identity_new(const struct config *cfg, char *err, size_t errlen)
{
    struct identity *id = calloc(1, sizeof *id);
    if (id == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&id->mu, NULL);
    pthread_cond_init(&id->wake, NULL);
    id->generation = -1;
    if ((id->taints = identity_taints_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    id->st = state_open(cfg->state_path, err, errlen);
    if (id->st == NULL)
        goto fail;
    if (state_secret(id->st, "api_keys", id->key_secret) < 0) {
        snprintf(err, errlen, "state: %s", state_errmsg(id->st));
        goto fail;
    }
    int active = 0;
    if (state_signing_each(id->st, has_active_signing, &active) < 0 ||
        (!active && identity_signing_rotate(id->st, NULL, 0) < 0)) {
        snprintf(err, errlen, "creating the gateway signing key: %s", state_errmsg(id->st));
        goto fail;
    }
    if (state_keys_generation(id->st, &id->generation) < 0 ||
        (id->keys = keys_build(id->st)) == NULL) {
        snprintf(err, errlen, "loading keys: %s", state_errmsg(id->st));
        goto fail;
    }
    const struct config_jwt *jwt = &cfg->identity.jwt;
    if (cfg->identity.has_jwt && jwt->jwks.file != NULL) {
        char why[256];
        id->jwks = jwk_set_load_file(jwt->jwks.file, why, sizeof why);
        if (id->jwks == NULL) {
            snprintf(err, errlen, "identity.jwt.jwks: %s", why);
            goto fail;
        }
    }
    if (cfg->identity.has_jwt && jwt->jwks.url != NULL) {
        id->jwks_url = strdup(jwt->jwks.url);
        id->jwks_refresh_ms = jwt->jwks.refresh_ms;
        id->jwks_min_refetch_ms = jwt->jwks.min_refetch_ms;
        if (id->jwks_url == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (pthread_create(&id->thread, NULL, refresher, id) != 0) {
        snprintf(err, errlen, "cannot start the identity refresher thread");
        goto fail;
    }
    id->thread_started = 1;
    return id;
fail:
    identity_free(id);
    return NULL;
}

void identity_free(struct identity *id)
{
    if (id == NULL)
        return;
    if (id->thread_started) {
        pthread_mutex_lock(&id->mu);
        id->stop = 1;
        pthread_cond_signal(&id->wake);
        pthread_mutex_unlock(&id->mu);
        pthread_join(id->thread, NULL);
    }
    identity_keys_put(id->keys);
    jwk_set_unref(id->jwks);
    state_close(id->st);
    free(id->jwks_url);
    identity_taints_free(id->taints);
    explicit_bzero(id->key_secret, sizeof id->key_secret);
    pthread_cond_destroy(&id->wake);
    pthread_mutex_destroy(&id->mu);
    free(id);
}
