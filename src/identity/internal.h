// SPDX-License-Identifier: Apache-2.0
// Internal to src/identity/: compact JWS/JWT verification over a key set
// (jwt.c), key sets and their sources (jwks.c), API key format and hashing
// (apikey.c), scopes (scope.c), and the shared identity context (identity.c).
#ifndef PORTCULLIS_IDENTITY_INTERNAL_H
#define PORTCULLIS_IDENTITY_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "identity/identity.h"

/* Bounds on what the verifier reads from the network. */
#define JWT_MAX_TOKEN 16384
#define JWT_MAX_HEADER 4096
#define JWKS_MAX_BYTES (1u << 20)
#define JWKS_MAX_KEYS 256

/* ---- key sets (jwks.c) ------------------------------------------------- */

/* An immutable set of JWKs, shared between threads by reference count. */
struct jwk_set {
    atomic_int refs;
    json_t *keys; /* array of JWK objects, each checked by jwk_set_parse */
};

/* Parses a JWKS document ({"keys":[...]}) or one bare JWK. Keys of unknown
 * kty, or with "use" other than "sig", are skipped; a malformed document is
 * refused. NULL with a reason in why. Caller owns the result (refs = 1). */
struct jwk_set *jwk_set_parse(const char *text, size_t len, char *why, size_t whylen)
    __attribute__((warn_unused_result));
/* Takes ownership of keys (an array). */
struct jwk_set *jwk_set_from_array(json_t *keys);
struct jwk_set *jwk_set_ref(struct jwk_set *s);
void jwk_set_unref(struct jwk_set *s);
/* Number of keys, and whether one has this kid. */
size_t jwk_set_size(const struct jwk_set *s);
int jwk_set_has_kid(const struct jwk_set *s, const char *kid);

/* Reads a JWKS file (at most JWKS_MAX_BYTES). */
struct jwk_set *jwk_set_load_file(const char *path, char *why, size_t whylen)
    __attribute__((warn_unused_result));
/* Fetches a JWKS URL with libcurl (blocking: call from a background thread). */
struct jwk_set *jwk_set_fetch_url(const char *url, long timeout_ms, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* ---- JWS / JWT (jwt.c) --------------------------------------------------- */

enum jwt_result {
    JWT_OK = 0,
    JWT_MALFORMED,   /* not three base64url parts, bad JSON, too big */
    JWT_ALG,         /* alg missing, none, or not in the allow-list; crit; b64 */
    JWT_UNKNOWN_KID, /* the token names a kid no key has */
    JWT_NO_KEY,      /* no key of the type the alg needs */
    JWT_SIGNATURE,   /* a key was tried and the signature does not verify */
    JWT_EXPIRED,
    JWT_NOT_YET_VALID,
    JWT_ISSUER,
    JWT_AUDIENCE,
    JWT_CLAIMS, /* a claim is missing or has the wrong type */
};

/* Short static text for a result, safe to show a client. */
const char *jwt_result_text(enum jwt_result r);

/* Verifies a compact JWS (header.payload.signature) against the keys of ks,
 * accepting only the algorithms in algs. On JWT_OK, *header gets the
 * protected header and *payload, *payload_len the decoded payload (malloc'd,
 * NUL-terminated; caller frees both). why gets detail that names no secret
 * and does not echo the token. */
enum jwt_result jws_verify_compact(const char *tok, size_t len, const struct jwk_set *ks,
                                   const char *const *algs, size_t nalgs, json_t **header,
                                   char **payload, size_t *payload_len, char *why, size_t whylen);

struct jwt_rules {
    const char *issuer;           /* required match of "iss" */
    const char *const *audiences; /* "aud" must contain one; none = not checked */
    size_t naudiences;
    const char *const *algs;
    size_t nalgs;
    int64_t now;      /* unix seconds */
    int64_t leeway_s; /* tolerance on exp / nbf / iat */
    int require_exp;  /* a token without exp is refused */
};

/* jws_verify_compact + claims: the payload must be a JSON object (no
 * duplicate members), exp/nbf/iat/iss/aud checked. *claims owned by caller. */
enum jwt_result jwt_verify(const char *tok, size_t len, const struct jwk_set *ks,
                           const struct jwt_rules *rules, json_t **claims, char *why,
                           size_t whylen);

/* The "iss" of a token without verifying anything (to pick the key set and
 * rules); malloc'd or NULL. */
char *jwt_peek_issuer(const char *tok, size_t len);

/* Signs claims as a compact JWS with jwk (ES256 gateway key); malloc'd. */
char *jwt_sign(const json_t *claims, const json_t *jwk, const char *kid);

/* ---- scopes (scope.c) ---------------------------------------------------- */

/* A scope is a space-separated list of items: "llm", "mcp", "a2a" (a whole
 * protocol), "model:NAME", "tool:NAME", "agent:ID", "*"; an item ending in
 * '*' is a prefix pattern ("model:gpt-4o*"). NULL means unrestricted. */
int scope_valid(const char *scope);
/* Does scope permit item? A NULL scope permits everything. */
int scope_allows(const char *scope, const char *item);
/* Is child a subset of parent? child NULL (unrestricted) only under NULL.
 * On 0, *offending (if given) points at the first item not covered. */
int scope_covers(const char *parent, const char *child, const char **offending, size_t *off_len);

/* ---- API keys (apikey.c) ------------------------------------------------- */

#define APIKEY_PREFIX "pcl_"
#define APIKEY_ID_LEN 12 /* hex chars */

/* Generates a key "pcl_<id>_<secret>" into key (cap >= 80) and its id. */
int apikey_generate(char *key, size_t cap, char id[APIKEY_ID_LEN + 1]);
/* Looks like a portcullis key (prefix and shape)? */
int apikey_shape_ok(const char *s, size_t len);
/* SipHash-2-4 of m[0..n) under the 128-bit key (k0, k1) (little-endian words,
 * as in the reference). */
uint64_t apikey_siphash(uint64_t k0, uint64_t k1, const void *m, size_t n);
/* HMAC-SHA256(secret, key). */
void apikey_hash(const unsigned char secret[32], const char *key, size_t len,
                 unsigned char out[32]);

struct apikey_entry {
    unsigned char hash[32];
    char id[40];
    char *agent;
    char *scope;
    int64_t expires, revoked;
};

/* Sorted by hash for bsearch; immutable once built. */
struct apikey_table {
    struct apikey_entry *items;
    size_t n;
};

int apikey_table_load(struct state *st, struct apikey_table *t);
void apikey_table_free(struct apikey_table *t);
const struct apikey_entry *apikey_table_find(const struct apikey_table *t,
                                             const unsigned char hash[32]);
/* By public key id (a scan: only for delegation tokens minted from a key). */
const struct apikey_entry *apikey_table_find_id(const struct apikey_table *t, const char *id);

/* "30d", "12h", "90m", "45s", "2w" -> seconds; -1 when not a duration. */
int64_t identity_parse_ttl(const char *s);

/* ---- the shared context (identity.c) ----------------------------------- */

/* What the refresher thread publishes; immutable, reference-counted. */
struct identity_keys {
    atomic_int refs;
    struct apikey_table apikeys;
    struct jwk_set *gateway_pub; /* active + recently retired signing keys */
    json_t *signing_jwk;         /* active private key */
    char *signing_kid;
    char *jwks_text; /* {"keys":[...]} of gateway_pub, served as is */
};

struct identity {
    char *state_path;
    struct state *st; /* the refresher thread's connection */
    unsigned char key_secret[32];
    pthread_mutex_t mu; /* guards the pointers below; held for a pointer copy */
    struct identity_keys *keys;
    struct jwk_set *jwks; /* external IdP keys, NULL when not configured */
    /* refresher */
    pthread_t thread;
    int thread_started;
    pthread_cond_t wake;
    int stop;
    int refetch_wanted;
    char *jwks_url;
    uint32_t jwks_refresh_ms, jwks_min_refetch_ms;
    _Atomic int64_t last_fetch_ms;
    atomic_uint jwks_fetches; /* fetch attempts finished (success or not) */
    int64_t generation;
    struct identity_taints *taints; /* tainted MCP sessions (taint.c) */
};

/* taint.c: the table behind identity_session_taint_set / _get. */
struct identity_taints *identity_taints_new(void);
void identity_taints_free(struct identity_taints *t);

/* Generates a new ES256 signing key, makes it the active one and retires
 * the previous one (still published for a day). kid_out may be NULL. */
int identity_signing_rotate(struct state *st, char *kid_out, size_t kid_len)
    __attribute__((warn_unused_result));

struct identity_keys *identity_keys_get(struct identity *id);
void identity_keys_put(struct identity_keys *k);
struct jwk_set *identity_jwks_get(struct identity *id);
/* Wakes the refresher to look for new keys now (after an unknown key). */
void identity_keys_wake(struct identity *id);
/* Asks the refresher to refetch the JWKS URL (rate-limited). Returns 1 when
 * the rate limit lets a fetch start now, 0 when it is skipped (or there is
 * no URL). */
int identity_jwks_refetch(struct identity *id);

/* Resolves a raw credential (API key or JWT) to a principal allocated in
 * ex's arena. 0, or -1 with a client-safe reason in why and *code set to a
 * short error code ("invalid_api_key", "expired_token", ...). */
int identity_resolve(struct identity *id, struct http_exchange *ex, const char *cred, size_t len,
                     struct identity_principal **out, const char **code, char *why, size_t whylen);

/* Answers an OAuth error ({"error":…,"error_description":…}). */
void identity_oauth_error(struct http_exchange *ex, int status, const char *error, const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));

#endif
