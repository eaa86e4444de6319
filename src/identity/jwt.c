// SPDX-License-Identifier: Apache-2.0
// Compact JWS and JWT verification on libjose, with the checks libjose leaves
// to the caller: an algorithm allow-list (never "none"), key type bound to
// the algorithm (an HMAC key never verifies an RSA/EC token and vice versa),
// kid selection, size limits, duplicate-free JSON, and the time, issuer and
// audience claims. Also signs the gateway's own tokens.
#include <jose/jose.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity/internal.h"

const char *jwt_result_text(enum jwt_result r)
{
    switch (r) {
    case JWT_OK:
        return "ok";
    case JWT_MALFORMED:
        return "malformed token";
    case JWT_ALG:
        return "algorithm not allowed";
    case JWT_UNKNOWN_KID:
        return "unknown key id";
    case JWT_NO_KEY:
        return "no key for the token's algorithm";
    case JWT_SIGNATURE:
        return "bad signature";
    case JWT_EXPIRED:
        return "token expired";
    case JWT_NOT_YET_VALID:
        return "token not yet valid";
    case JWT_ISSUER:
        return "wrong issuer";
    case JWT_AUDIENCE:
        return "wrong audience";
    case JWT_CLAIMS:
        return "missing or invalid claims";
    }
    return "invalid token";
}

static void why_set(char *why, size_t whylen, const char *fmt, const char *arg)
{
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, fmt, arg);
}

static void jose_quiet(void *misc, const char *file, int line, uint64_t err, const char *fmt,
                       va_list ap)
{
    (void)misc, (void)file, (void)line, (void)err, (void)fmt, (void)ap;
}

/* libjose reports errors on stderr unless given a config: one quiet config
 * per call keeps threads independent (a jose_cfg is tiny). */
static jose_cfg_t *quiet_cfg(void)
{
    jose_cfg_t *cfg = jose_cfg();
    if (cfg != NULL)
        jose_cfg_set_err_func(cfg, jose_quiet, NULL);
    return cfg;
}

static int b64url_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* Decodes base64url s[0..n) into a malloc'd NUL-terminated buffer. */
static char *b64url_decode(const char *s, size_t n, size_t max, size_t *out_len)
{
    if (!b64url_chars(s, n) || n % 4 == 1)
        return NULL;
    size_t cap = n / 4 * 3 + 3;
    if (cap > max + 3)
        return NULL;
    char *out = malloc(cap + 1);
    if (out == NULL)
        return NULL;
    size_t len = jose_b64_dec_buf(s, n, out, cap);
    if (len == SIZE_MAX || len > max) {
        free(out);
        return NULL;
    }
    out[len] = '\0';
    *out_len = len;
    return out;
}

/* What key an algorithm needs. */
struct alg_need {
    const char *kty;
    const char *crv; /* EC only */
};

static int alg_needs(const char *alg, struct alg_need *need)
{
    static const struct {
        const char *alg, *kty, *crv;
    } table[] = {
        {"RS256", "RSA", NULL},   {"RS384", "RSA", NULL},   {"RS512", "RSA", NULL},
        {"PS256", "RSA", NULL},   {"PS384", "RSA", NULL},   {"PS512", "RSA", NULL},
        {"ES256", "EC", "P-256"}, {"ES384", "EC", "P-384"}, {"ES512", "EC", "P-521"},
        {"HS256", "oct", NULL},   {"HS384", "oct", NULL},   {"HS512", "oct", NULL},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(alg, table[i].alg) == 0) {
            need->kty = table[i].kty;
            need->crv = table[i].crv;
            return 1;
        }
    }
    return 0;
}

static const char *str_member(const json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name));
}

/* May this key verify a token with this alg? */
static int key_fits(const json_t *jwk, const char *alg, const struct alg_need *need)
{
    const char *kty = str_member(jwk, "kty");
    if (kty == NULL || strcmp(kty, need->kty) != 0)
        return 0;
    if (need->crv != NULL) {
        const char *crv = str_member(jwk, "crv");
        if (crv == NULL || strcmp(crv, need->crv) != 0)
            return 0;
    }
    const char *kalg = str_member(jwk, "alg");
    if (kalg != NULL && strcmp(kalg, alg) != 0)
        return 0;
    return 1;
}

static int alg_allowed(const char *alg, const char *const *algs, size_t nalgs)
{
    for (size_t i = 0; i < nalgs; i++)
        if (algs[i] != NULL && strcmp(algs[i], alg) == 0)
            return 1;
    return 0;
}

enum jwt_result jws_verify_compact(const char *tok, size_t len, const struct jwk_set *ks,
                                   const char *const *algs, size_t nalgs, json_t **header,
                                   char **payload, size_t *payload_len, char *why, size_t whylen)
{
    enum jwt_result rc = JWT_MALFORMED;
    char *hdr_text = NULL, *body = NULL, *sig_part = NULL;
    json_t *hdr = NULL, *jws = NULL;
    jose_cfg_t *cfg = NULL;
    size_t hlen, blen;

    *header = NULL;
    *payload = NULL;
    why_set(why, whylen, "%s", "malformed token");
    if (len == 0 || len > JWT_MAX_TOKEN) {
        why_set(why, whylen, "%s", "malformed token: empty or longer than 16 KiB");
        return JWT_MALFORMED;
    }
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (d1 == NULL || d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) != NULL) {
        why_set(why, whylen, "%s", "malformed token: expected three dot-separated parts");
        return JWT_MALFORMED;
    }
    size_t n1 = (size_t)(d1 - tok), n2 = (size_t)(d2 - d1 - 1), n3 = len - (size_t)(d2 + 1 - tok);
    if (n1 == 0 || n3 == 0 || !b64url_chars(d2 + 1, n3)) {
        why_set(why, whylen, "%s", "malformed token: empty or non-base64url part");
        return JWT_MALFORMED;
    }
    hdr_text = b64url_decode(tok, n1, JWT_MAX_HEADER, &hlen);
    body = b64url_decode(d1 + 1, n2, JWT_MAX_TOKEN, &blen);
    if (hdr_text == NULL || body == NULL) {
        why_set(why, whylen, "%s", "malformed token: bad base64url");
        goto out;
    }
    hdr = json_loadb(hdr_text, hlen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(hdr)) {
        why_set(why, whylen, "%s", "malformed token: header is not a JSON object");
        goto out;
    }
    rc = JWT_ALG;
    const char *alg = str_member(hdr, "alg");
    struct alg_need need;
    if (alg == NULL) {
        why_set(why, whylen, "%s", "token header has no alg");
        goto out;
    }
    if (!alg_needs(alg, &need) || !alg_allowed(alg, algs, nalgs)) {
        /* "none" and unknown names land here too. */
        why_set(why, whylen, "algorithm %.16s is not allowed", alg);
        goto out;
    }
    if (json_object_get(hdr, "crit") != NULL || json_object_get(hdr, "b64") != NULL) {
        why_set(why, whylen, "%s", "token header uses crit/b64 extensions we do not accept");
        goto out;
    }
    json_t *kid_v = json_object_get(hdr, "kid");
    if (kid_v != NULL && !json_is_string(kid_v)) {
        rc = JWT_MALFORMED;
        why_set(why, whylen, "%s", "malformed token: kid is not a string");
        goto out;
    }
    const char *kid = json_string_value(kid_v);

    sig_part = strndup(d2 + 1, n3);
    jws = json_pack("{s:s%,s:s%,s:s}", "protected", tok, n1, "payload", d1 + 1, n2, "signature",
                    sig_part ? sig_part : "");
    cfg = quiet_cfg();
    if (sig_part == NULL || jws == NULL || cfg == NULL) {
        rc = JWT_MALFORMED;
        why_set(why, whylen, "%s", "out of memory");
        goto out;
    }
    size_t tried = 0, kid_seen = 0;
    size_t i;
    json_t *jwk;
    rc = JWT_SIGNATURE;
    json_array_foreach(ks ? ks->keys : NULL, i, jwk)
    {
        const char *kkid = str_member(jwk, "kid");
        if (kid != NULL) {
            if (kkid == NULL || strcmp(kkid, kid) != 0)
                continue;
            kid_seen++;
        }
        if (!key_fits(jwk, alg, &need))
            continue;
        tried++;
        if (jose_jws_ver(cfg, jws, NULL, jwk, false)) {
            rc = JWT_OK;
            break;
        }
    }
    if (rc != JWT_OK) {
        if (kid != NULL && kid_seen == 0) {
            rc = JWT_UNKNOWN_KID;
            why_set(why, whylen, "unknown key id '%.64s'", kid);
        } else if (tried == 0) {
            rc = JWT_NO_KEY;
            why_set(why, whylen, "no %s key can verify this token's algorithm", need.kty);
        } else {
            why_set(why, whylen, "%s", "signature verification failed");
        }
        goto out;
    }
    *header = hdr;
    hdr = NULL;
    *payload = body;
    *payload_len = blen;
    body = NULL;
    why_set(why, whylen, "%s", "ok");
out:
    if (cfg != NULL)
        jose_cfg_decref(cfg);
    json_decref(jws);
    json_decref(hdr);
    free(sig_part);
    free(hdr_text);
    free(body);
    return rc;
}

/* A NumericDate claim: absent -> 0 (and *present = 0); wrong type -> -1. */
static int numeric_date(const json_t *claims, const char *name, int64_t *out, int *present)
{
    json_t *v = json_object_get(claims, name);
    *present = v != NULL;
    if (v == NULL)
        return 0;
    if (json_is_integer(v))
        *out = (int64_t)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) > -9e15 && json_real_value(v) < 9e15)
        *out = (int64_t)json_real_value(v);
    else
        return -1;
    return 0;
}

static int aud_matches(const json_t *aud, const char *const *want, size_t nwant)
{
    for (size_t k = 0; k < nwant; k++) {
        if (json_is_string(aud) && strcmp(json_string_value(aud), want[k]) == 0)
            return 1;
        size_t i;
        json_t *v;
        json_array_foreach(aud, i, v) if (json_is_string(v) &&
                                          strcmp(json_string_value(v), want[k]) == 0) return 1;
    }
    return 0;
}

enum jwt_result jwt_verify(const char *tok, size_t len, const struct jwk_set *ks,
                           const struct jwt_rules *r, json_t **claims, char *why, size_t whylen)
{
    json_t *hdr = NULL, *c = NULL;
    char *payload = NULL;
    size_t plen = 0;
    *claims = NULL;
    enum jwt_result rc =
        jws_verify_compact(tok, len, ks, r->algs, r->nalgs, &hdr, &payload, &plen, why, whylen);
    json_decref(hdr);
    if (rc != JWT_OK)
        return rc;
    c = json_loadb(payload, plen, JSON_REJECT_DUPLICATES, NULL);
    free(payload);
    if (!json_is_object(c)) {
        why_set(why, whylen, "%s", "malformed token: claims are not a JSON object");
        json_decref(c);
        return JWT_MALFORMED;
    }
    int64_t exp = 0, nbf = 0, iat = 0;
    int has_exp, has_nbf, has_iat;
    rc = JWT_CLAIMS;
    if (numeric_date(c, "exp", &exp, &has_exp) < 0 || numeric_date(c, "nbf", &nbf, &has_nbf) < 0 ||
        numeric_date(c, "iat", &iat, &has_iat) < 0) {
        why_set(why, whylen, "%s", "exp, nbf and iat must be numbers");
        goto fail;
    }
    if (r->require_exp && !has_exp) {
        why_set(why, whylen, "%s", "token has no exp claim");
        goto fail;
    }
    if (has_exp && r->now >= exp + r->leeway_s) {
        rc = JWT_EXPIRED;
        why_set(why, whylen, "%s", "token expired");
        goto fail;
    }
    if ((has_nbf && r->now + r->leeway_s < nbf) || (has_iat && r->now + r->leeway_s < iat)) {
        rc = JWT_NOT_YET_VALID;
        why_set(why, whylen, "%s", "token not yet valid (nbf/iat in the future)");
        goto fail;
    }
    const char *iss = str_member(c, "iss");
    if (r->issuer != NULL && (iss == NULL || strcmp(iss, r->issuer) != 0)) {
        rc = JWT_ISSUER;
        why_set(why, whylen, "%s", "token issuer is not the configured issuer");
        goto fail;
    }
    if (r->naudiences > 0 && !aud_matches(json_object_get(c, "aud"), r->audiences, r->naudiences)) {
        rc = JWT_AUDIENCE;
        why_set(why, whylen, "%s", "token audience does not include this gateway");
        goto fail;
    }
    *claims = c;
    return JWT_OK;
fail:
    json_decref(c);
    return rc;
}

char *jwt_peek_issuer(const char *tok, size_t len)
{
    if (len > JWT_MAX_TOKEN)
        return NULL;
    const char *d1 = memchr(tok, '.', len);
    if (d1 == NULL)
        return NULL;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));
    if (d2 == NULL)
        return NULL;
    size_t blen;
    char *body = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), JWT_MAX_TOKEN, &blen);
    if (body == NULL)
        return NULL;
    json_t *c = json_loadb(body, blen, JSON_REJECT_DUPLICATES, NULL);
    free(body);
    const char *iss = json_is_object(c) ? str_member(c, "iss") : NULL;
    char *out = iss ? strdup(iss) : NULL;
    json_decref(c);
    return out;
}

char *jwt_sign(const json_t *claims, const json_t *jwk, const char *kid)
{
    char *out = NULL, *text = json_dumps(claims, JSON_COMPACT);
    jose_cfg_t *cfg = quiet_cfg();
    json_t *jws = NULL, *sig = NULL;
    if (text == NULL || cfg == NULL)
        goto out;
    jws = json_pack("{s:o}", "payload", jose_b64_enc(text, strlen(text)));
    sig = json_pack("{s:{s:s,s:s,s:s}}", "protected", "alg", "ES256", "typ", "JWT", "kid", kid);
    if (jws == NULL || sig == NULL || !jose_jws_sig(cfg, jws, sig, jwk))
        goto out;
    const char *p = str_member(jws, "protected"), *b = str_member(jws, "payload"),
               *s = str_member(jws, "signature");
    if (p == NULL || b == NULL || s == NULL)
        goto out;
    size_t n = strlen(p) + strlen(b) + strlen(s) + 3;
    out = malloc(n);
    if (out != NULL)
        snprintf(out, n, "%s.%s.%s", p, b, s);
out:
    json_decref(jws);
    json_decref(sig);
    if (cfg != NULL)
        jose_cfg_decref(cfg);
    free(text);
    return out;
}
