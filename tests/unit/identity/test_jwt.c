// SPDX-License-Identifier: Apache-2.0
// JWS/JWT verification: the RFC 7520 (JOSE cookbook) vectors verify where
// the algorithm is supported and tampered copies fail; each rejection the
// gateway promises (expired, not yet valid, wrong issuer or audience, alg
// none, HS/RS confusion, unknown kid, malformed) is produced by a token
// built here with libjose; JWKS parsing skips keys it cannot use.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jose/jose.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include "identity/internal.h"

#define NOW 1700000000

/* ---- helpers ------------------------------------------------------------ */

/* The shared corpora directory: $PORTCULLIS_CORPORA, or shared/corpora next
 * to the repository (found from this test's data directory). */
static const char *corpora_dir(void)
{
    static char found[1024];
    const char *env = getenv("PORTCULLIS_CORPORA");
    const char *cands[] = {env, TEST_DATA_DIR "/../../../../../shared/corpora",
                           TEST_DATA_DIR "/../../../../shared/corpora"};
    struct stat st;
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        if (cands[i] == NULL)
            continue;
        snprintf(found, sizeof found, "%s/jose-cookbook", cands[i]);
        if (stat(found, &st) == 0 && S_ISDIR(st.st_mode))
            return found;
    }
    return NULL;
}

static json_t *load_vector(const char *name)
{
    const char *dir = corpora_dir();
    if (dir == NULL)
        return NULL;
    char path[1200];
    snprintf(path, sizeof path, "%s/jws/%s", dir, name);
    json_error_t err;
    json_t *v = json_load_file(path, 0, &err);
    if (v == NULL)
        fail_msg("cannot load %s: %s", path, err.text);
    return v;
}

static struct jwk_set *set_of(const json_t *jwk)
{
    json_t *arr = json_array();
    json_array_append_new(arr, json_deep_copy(jwk));
    return jwk_set_from_array(arr);
}

static enum jwt_result verify_sig(const char *tok, const struct jwk_set *ks, const char *alg)
{
    const char *algs[1] = {alg};
    json_t *hdr = NULL;
    char *payload = NULL;
    size_t plen;
    char why[256];
    enum jwt_result r =
        jws_verify_compact(tok, strlen(tok), ks, algs, 1, &hdr, &payload, &plen, why, sizeof why);
    json_decref(hdr);
    free(payload);
    return r;
}

static char *b64(const char *s)
{
    json_t *v = jose_b64_enc(s, strlen(s));
    char *out = strdup(json_string_value(v));
    json_decref(v);
    return out;
}

/* Signs claims with jwk under a protected header; caller frees. */
static char *sign(const json_t *claims, const json_t *jwk, json_t *protected_hdr)
{
    char *text = json_dumps(claims, JSON_COMPACT);
    json_t *jws = json_pack("{s:o}", "payload", jose_b64_enc(text, strlen(text)));
    json_t *sig = json_pack("{s:o}", "protected", protected_hdr);
    assert_true(jose_jws_sig(NULL, jws, sig, jwk));
    char *out;
    assert_true(asprintf(&out, "%s.%s.%s", json_string_value(json_object_get(jws, "protected")),
                         json_string_value(json_object_get(jws, "payload")),
                         json_string_value(json_object_get(jws, "signature"))) > 0);
    json_decref(jws);
    json_decref(sig);
    free(text);
    return out;
}

static json_t *gen_key(const char *alg, const char *kid)
{
    json_t *k = json_pack("{s:s}", "alg", alg);
    assert_true(jose_jwk_gen(NULL, k));
    json_object_set_new(k, "kid", json_string(kid));
    return k;
}

static json_t *pub_of(const json_t *k)
{
    json_t *p = json_deep_copy(k);
    assert_true(jose_jwk_pub(NULL, p));
    return p;
}

static json_t *good_claims(void)
{
    return json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "iss", "https://idp", "aud", "portcullis", "sub",
                     "agent-a", "iat", (json_int_t)NOW - 10, "nbf", (json_int_t)NOW - 10, "exp",
                     (json_int_t)NOW + 300);
}

static const char *const allow_all[] = {"RS256", "PS256", "ES256", "HS256"};
static const char *const auds[] = {"portcullis"};

static struct jwt_rules rules(void)
{
    return (struct jwt_rules){.issuer = "https://idp",
                              .audiences = auds,
                              .naudiences = 1,
                              .algs = allow_all,
                              .nalgs = 4,
                              .now = NOW,
                              .leeway_s = 30,
                              .require_exp = 1};
}

static enum jwt_result check(const char *tok, const struct jwk_set *ks, struct jwt_rules r)
{
    json_t *claims = NULL;
    char why[256];
    enum jwt_result res = jwt_verify(tok, strlen(tok), ks, &r, &claims, why, sizeof why);
    if (res == JWT_OK)
        assert_non_null(claims);
    else
        assert_null(claims);
    /* The reason never echoes the token. */
    if (strlen(tok) > 8)
        assert_null(strstr(why, tok));
    json_decref(claims);
    return res;
}

/* ---- JOSE cookbook vectors ------------------------------------------------ */

/* Compact vectors: 4.1 RS256, 4.2 PS384, 4.3 ES512, 4.4 HS256. */
static void test_cookbook_compact_vectors_verify_and_tampered_fail(void **unused)
{
    static const struct {
        const char *file, *alg;
    } v[] = {
        {"4_1.rsa_v15_signature.json", "RS256"},
        {"4_2.rsa-pss_signature.json", "PS384"},
        {"4_3.ecdsa_signature.json", "ES512"},
        {"4_4.hmac-sha2_integrity_protection.json", "HS256"},
    };
    if (corpora_dir() == NULL)
        skip();
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        json_t *vec = load_vector(v[i].file);
        const json_t *key = json_object_get(json_object_get(vec, "input"), "key");
        const char *compact =
            json_string_value(json_object_get(json_object_get(vec, "output"), "compact"));
        assert_non_null(compact);
        struct jwk_set *ks = set_of(key);
        if (verify_sig(compact, ks, v[i].alg) != JWT_OK)
            fail_msg("%s does not verify", v[i].file);
        /* Not in the allow-list: refused before any key is tried. */
        assert_int_equal(verify_sig(compact, ks, "RS512"), JWT_ALG);

        /* Tampered: one payload character, one signature character. */
        char *t = strdup(compact);
        char *dot = strchr(t, '.');
        dot[1] = dot[1] == 'S' ? 'T' : 'S';
        assert_int_equal(verify_sig(t, ks, v[i].alg), JWT_SIGNATURE);
        strcpy(t, compact);
        char *sig = strrchr(t, '.') + 5;
        *sig = *sig == 'A' ? 'B' : 'A';
        assert_int_equal(verify_sig(t, ks, v[i].alg), JWT_SIGNATURE);
        free(t);

        /* With only the public part of an asymmetric key, still verifies. */
        if (strcmp(v[i].alg, "HS256") != 0) {
            json_t *pub = pub_of(key);
            struct jwk_set *ps = set_of(pub);
            assert_int_equal(verify_sig(compact, ps, v[i].alg), JWT_OK);
            jwk_set_unref(ps);
            json_decref(pub);
        }
        jwk_set_unref(ks);
        json_decref(vec);
    }
}

/* 4.5: detached payload; verifies once the payload is put back. */
static void test_cookbook_detached_payload(void **unused)
{
    if (corpora_dir() == NULL)
        skip();
    json_t *vec = load_vector("4_5.signature_with_detached_content.json");
    const json_t *in = json_object_get(vec, "input");
    const char *compact =
        json_string_value(json_object_get(json_object_get(vec, "output"), "compact"));
    const char *dot = strchr(compact, '.');
    char *payload = b64(json_string_value(json_object_get(in, "payload")));
    char *tok;
    assert_true(asprintf(&tok, "%.*s.%s%s", (int)(dot - compact), compact, payload,
                         strrchr(compact, '.')) > 0);
    struct jwk_set *ks = set_of(json_object_get(in, "key"));
    assert_int_equal(verify_sig(tok, ks, json_string_value(json_object_get(in, "alg"))), JWT_OK);
    /* As sent (empty payload), the signature does not cover "". */
    assert_int_equal(verify_sig(compact, ks, json_string_value(json_object_get(in, "alg"))),
                     JWT_SIGNATURE);
    jwk_set_unref(ks);
    free(tok);
    free(payload);
    json_decref(vec);
}

/* 4.6-4.8 exist only as JSON serialisations. libjose verifies them; our
 * compact verifier refuses 4.7 (no protected header, so no protected alg). */
static void test_cookbook_json_serialisations(void **unused)
{
    static const char *const files[] = {"4_6.protecting_specific_header_fields.json",
                                        "4_7.protecting_content_only.json",
                                        "4_8.multiple_signatures.json"};
    if (corpora_dir() == NULL)
        skip();
    for (size_t i = 0; i < 3; i++) {
        json_t *vec = load_vector(files[i]);
        const json_t *out = json_object_get(vec, "output");
        json_t *jws = json_object_get(out, "json");
        const json_t *key = json_object_get(json_object_get(vec, "input"), "key");
        if (key == NULL) /* 4.8: several keys under input.signatures */
            key = json_object_get(
                json_array_get(json_object_get(json_object_get(vec, "input"), "signatures"), 0),
                "key");
        if (key == NULL)
            key = json_object_get(json_array_get(json_object_get(vec, "input"), 0), "key");
        if (key != NULL && jws != NULL) {
            json_t *t = json_deep_copy(jws);
            int ok = jose_jws_ver(NULL, t, NULL, key, false);
            if (!ok)
                fail_msg("%s does not verify with libjose", files[i]);
            /* Tamper with the payload: no signature verifies. */
            json_object_set_new(t, "payload", json_string("dGFtcGVyZWQ"));
            assert_false(jose_jws_ver(NULL, t, NULL, key, false));
            json_decref(t);
        }
        if (i == 1) {
            const json_t *flat = json_object_get(out, "json_flat");
            char *tok;
            assert_true(asprintf(&tok, ".%s.%s",
                                 json_string_value(json_object_get(flat, "payload")),
                                 json_string_value(json_object_get(flat, "signature"))) > 0);
            struct jwk_set *ks = set_of(key);
            assert_int_equal(verify_sig(tok, ks, "HS256"), JWT_MALFORMED);
            jwk_set_unref(ks);
            free(tok);
        }
        json_decref(vec);
    }
}

/* ---- JWT claims and each rejection --------------------------------------- */

static json_t *rsa, *ps, *ec, *hs;
static struct jwk_set *keys;

static int setup_keys(void **unused)
{
    rsa = gen_key("RS256", "rsa-1");
    ps = gen_key("PS256", "ps-1");
    ec = gen_key("ES256", "ec-1");
    hs = gen_key("HS256", "hs-1");
    json_t *arr = json_array();
    json_array_append_new(arr, pub_of(rsa));
    json_array_append_new(arr, pub_of(ps));
    json_array_append_new(arr, pub_of(ec));
    json_array_append(arr, hs);
    keys = jwk_set_from_array(arr);
    return 0;
}

static int teardown_keys(void **unused)
{
    jwk_set_unref(keys);
    json_decref(rsa);
    json_decref(ps);
    json_decref(ec);
    json_decref(hs);
    return 0;
}

static char *token(const json_t *key, const char *alg, const char *kid, json_t *claims)
{
    json_t *hdr = json_pack("{s:s}", "alg", alg);
    if (kid != NULL)
        json_object_set_new(hdr, "kid", json_string(kid));
    char *t = sign(claims, key, hdr);
    json_decref(claims);
    return t;
}

static void test_good_tokens_of_each_algorithm_verify(void **unused)
{
    char *t1 = token(rsa, "RS256", "rsa-1", good_claims());
    char *t2 = token(ec, "ES256", "ec-1", good_claims());
    char *t3 = token(hs, "HS256", "hs-1", good_claims());
    char *t4 = token(ps, "PS256", "ps-1", good_claims());
    char *t5 = token(ec, "ES256", NULL, good_claims()); /* no kid: any fitting key */
    assert_int_equal(check(t1, keys, rules()), JWT_OK);
    assert_int_equal(check(t2, keys, rules()), JWT_OK);
    assert_int_equal(check(t3, keys, rules()), JWT_OK);
    assert_int_equal(check(t4, keys, rules()), JWT_OK);
    assert_int_equal(check(t5, keys, rules()), JWT_OK);
    free(t1), free(t2), free(t3), free(t4), free(t5);
}

static void test_expired_and_leeway(void **unused)
{
    json_t *c = good_claims();
    json_object_set_new(c, "exp", json_integer(NOW - 31));
    char *t = token(ec, "ES256", "ec-1", c);
    assert_int_equal(check(t, keys, rules()), JWT_EXPIRED);
    free(t);
    c = good_claims();
    json_object_set_new(c, "exp", json_integer(NOW - 10)); /* within 30 s leeway */
    t = token(ec, "ES256", "ec-1", c);
    assert_int_equal(check(t, keys, rules()), JWT_OK);
    free(t);
    c = good_claims();
    json_object_del(c, "exp");
    t = token(ec, "ES256", "ec-1", c);
    assert_int_equal(check(t, keys, rules()), JWT_CLAIMS);
    free(t);
    c = good_claims();
    json_object_set_new(c, "exp", json_string("tomorrow"));
    t = token(ec, "ES256", "ec-1", c);
    assert_int_equal(check(t, keys, rules()), JWT_CLAIMS);
    free(t);
}

static void test_not_yet_valid(void **unused)
{
    json_t *c = good_claims();
    json_object_set_new(c, "nbf", json_integer(NOW + 120));
    char *t = token(ec, "ES256", "ec-1", c);
    assert_int_equal(check(t, keys, rules()), JWT_NOT_YET_VALID);
    free(t);
    c = good_claims();
    json_object_set_new(c, "iat", json_integer(NOW + 120));
    t = token(ec, "ES256", "ec-1", c);
    assert_int_equal(check(t, keys, rules()), JWT_NOT_YET_VALID);
    free(t);
}

static void test_wrong_issuer_and_audience(void **unused)
{
    json_t *c = good_claims();
    json_object_set_new(c, "iss", json_string("https://evil"));
    char *t = token(ec, "ES256", "ec-1", c);
    assert_int_equal(check(t, keys, rules()), JWT_ISSUER);
    free(t);
    c = good_claims();
    json_object_set_new(c, "aud", json_pack("[s,s]", "a", "b"));
    t = token(ec, "ES256", "ec-1", c);
    assert_int_equal(check(t, keys, rules()), JWT_AUDIENCE);
    free(t);
    c = good_claims();
    json_object_set_new(c, "aud", json_pack("[s,s]", "a", "portcullis"));
    t = token(ec, "ES256", "ec-1", c);
    assert_int_equal(check(t, keys, rules()), JWT_OK);
    free(t);
    c = good_claims();
    json_object_del(c, "aud");
    t = token(ec, "ES256", "ec-1", c);
    assert_int_equal(check(t, keys, rules()), JWT_AUDIENCE);
    free(t);
}

static void test_alg_none_is_refused(void **unused)
{
    json_t *gc = good_claims();
    char *claims = json_dumps(gc, JSON_COMPACT);
    json_decref(gc);
    const char *hdrs[] = {"{\"alg\":\"none\"}", "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}",
                          "{\"typ\":\"JWT\"}"};
    for (size_t i = 0; i < 4; i++) {
        char *h = b64(hdrs[i]), *p = b64(claims), *t;
        assert_true(asprintf(&t, "%s.%s.", h, p) > 0);
        assert_int_equal(check(t, keys, rules()), JWT_MALFORMED); /* empty signature */
        free(t);
        assert_true(asprintf(&t, "%s.%s.c2ln", h, p) > 0);
        assert_int_equal(check(t, keys, rules()), JWT_ALG);
        free(t), free(h), free(p);
    }
    /* Even if an operator lists "none", it is not an algorithm we know. */
    const char *none_only[] = {"none"};
    struct jwt_rules r = rules();
    r.algs = none_only;
    r.nalgs = 1;
    char *h = b64("{\"alg\":\"none\"}"), *p = b64(claims), *t;
    assert_true(asprintf(&t, "%s.%s.c2ln", h, p) > 0);
    assert_int_equal(check(t, keys, r), JWT_ALG);
    free(t), free(h), free(p), free(claims);
}

/* The classic confusion: an HS256 token "signed" with the RSA public key's
 * bytes must not verify against the RSA key, nor an RS token against the
 * HMAC key. */
static void test_hs_rs_confusion(void **unused)
{
    json_t *rsa_pub = pub_of(rsa);
    char *n = json_dumps(rsa_pub, JSON_COMPACT);
    json_t *fake = json_pack("{s:s,s:o}", "kty", "oct", "k", jose_b64_enc(n, strlen(n)));
    char *t = token(fake, "HS256", "rsa-1", good_claims());
    assert_int_equal(check(t, keys, rules()), JWT_NO_KEY);
    free(t);
    /* An HMAC key under the RSA key's kid: still only RSA keys may verify RS. */
    t = token(hs, "HS256", "rsa-1", good_claims());
    assert_int_equal(check(t, keys, rules()), JWT_NO_KEY);
    free(t);
    t = token(rsa, "RS256", "hs-1", good_claims());
    assert_int_equal(check(t, keys, rules()), JWT_NO_KEY);
    free(t);
    /* HS not in the allow-list: a perfectly signed HS token is refused. */
    const char *rs_only[] = {"RS256"};
    struct jwt_rules r = rules();
    r.algs = rs_only;
    r.nalgs = 1;
    t = token(hs, "HS256", "hs-1", good_claims());
    assert_int_equal(check(t, keys, r), JWT_ALG);
    free(t);
    json_decref(fake);
    json_decref(rsa_pub);
    free(n);
}

static void test_unknown_kid(void **unused)
{
    char *t = token(ec, "ES256", "ec-2", good_claims());
    assert_int_equal(check(t, keys, rules()), JWT_UNKNOWN_KID);
    free(t);
    /* Signed by a key we do not have, under no kid: bad signature. */
    json_t *other = gen_key("ES256", "x");
    t = token(other, "ES256", NULL, good_claims());
    assert_int_equal(check(t, keys, rules()), JWT_SIGNATURE);
    free(t);
    json_decref(other);
}

static void test_malformed_tokens(void **unused)
{
    char *good = token(ec, "ES256", "ec-1", good_claims());
    const char *bad[] = {"",
                         "abc",
                         "a.b",
                         "a.b.c.d",
                         "..",
                         "a..c",
                         "!!!.e30.c2ln",
                         "e30.e30.c2ln", /* {} header: no alg */
                         "eyJhbGciOiJFUzI1NiJ9.e30=.c2ln",
                         "eyJhbGciOiJFUzI1NiJ9.W10.c2ln"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum jwt_result r = check(bad[i], keys, rules());
        if (r == JWT_OK)
            fail_msg("'%s' verified", bad[i]);
    }
    /* Header with a duplicate member, crit, non-string kid. */
    const char *hdrs[] = {"{\"alg\":\"ES256\",\"alg\":\"HS256\"}",
                          "{\"alg\":\"ES256\",\"crit\":[\"exp\"],\"exp\":1}",
                          "{\"alg\":\"ES256\",\"kid\":7}"};
    for (size_t i = 0; i < 3; i++) {
        char *h = b64(hdrs[i]), *t;
        assert_true(asprintf(&t, "%s%s", h, strchr(good, '.')) > 0);
        assert_int_not_equal(check(t, keys, rules()), JWT_OK);
        free(t), free(h);
    }
    /* Too long. */
    char *huge = malloc(JWT_MAX_TOKEN + 10);
    memset(huge, 'a', JWT_MAX_TOKEN + 9);
    huge[JWT_MAX_TOKEN + 9] = '\0';
    huge[10] = '.';
    huge[20] = '.';
    assert_int_equal(check(huge, keys, rules()), JWT_MALFORMED);
    free(huge);
    /* Claims not an object. */
    json_t *hdr = json_pack("{s:s,s:s}", "alg", "ES256", "kid", "ec-1");
    json_t *jws = json_pack("{s:o}", "payload", jose_b64_enc("[1]", 3));
    json_t *sig = json_pack("{s:o}", "protected", hdr);
    assert_true(jose_jws_sig(NULL, jws, sig, ec));
    char *t;
    assert_true(asprintf(&t, "%s.%s.%s", json_string_value(json_object_get(jws, "protected")),
                         json_string_value(json_object_get(jws, "payload")),
                         json_string_value(json_object_get(jws, "signature"))) > 0);
    assert_int_equal(check(t, keys, rules()), JWT_MALFORMED);
    free(t);
    json_decref(jws);
    json_decref(sig);
    free(good);
}

static void test_peek_issuer_and_sign_roundtrip(void **unused)
{
    json_t *c = good_claims();
    char *t = jwt_sign(c, ec, "ec-1");
    assert_non_null(t);
    char *iss = jwt_peek_issuer(t, strlen(t));
    assert_string_equal(iss, "https://idp");
    free(iss);
    assert_int_equal(check(t, keys, rules()), JWT_OK);
    assert_null(jwt_peek_issuer("x.y.z", 5));
    free(t);
    json_decref(c);
}

/* ---- JWKS ----------------------------------------------------------------- */

static void test_jwks_parse_skips_unusable_keys(void **unused)
{
    const char *doc = "{\"keys\":["
                      "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\",\"kid\":\"a\"},"
                      "{\"kty\":\"RSA\",\"n\":\"AQ\",\"e\":\"AQAB\",\"use\":\"enc\"},"
                      "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"},"
                      "{\"kty\":\"RSA\",\"e\":\"AQAB\"},"
                      "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\",\"kid\":7},"
                      "42,"
                      "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\",\"kid\":\"h\"}]}";
    char why[256];
    struct jwk_set *s = jwk_set_parse(doc, strlen(doc), why, sizeof why);
    assert_non_null(s);
    assert_int_equal(jwk_set_size(s), 2);
    assert_true(jwk_set_has_kid(s, "a"));
    assert_true(jwk_set_has_kid(s, "h"));
    assert_false(jwk_set_has_kid(s, "b"));
    jwk_set_unref(s);
    /* One bare JWK is a set of one. */
    const char *one = "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}";
    s = jwk_set_parse(one, strlen(one), why, sizeof why);
    assert_int_equal(jwk_set_size(s), 1);
    jwk_set_unref(s);
    const char *bad[] = {
        "", "[]", "{\"keys\":{}}", "{\"keys\":[]", "{\"nokeys\":1}", "{\"keys\":[],\"keys\":[]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(jwk_set_parse(bad[i], strlen(bad[i]), why, sizeof why));
}

static void test_jwks_file(void **unused)
{
    char path[] = "/tmp/pcl-jwks-XXXXXX";
    int fd = mkstemp(path);
    const char *doc = "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\",\"kid\":\"h\"}]}";
    assert_int_equal(write(fd, doc, strlen(doc)), (ssize_t)strlen(doc));
    close(fd);
    char why[256];
    struct jwk_set *s = jwk_set_load_file(path, why, sizeof why);
    assert_non_null(s);
    assert_true(jwk_set_has_kid(s, "h"));
    jwk_set_unref(s);
    unlink(path);
    assert_null(jwk_set_load_file(path, why, sizeof why));
    assert_non_null(strstr(why, "cannot read"));
    assert_null(jwk_set_load_file("/tmp", why, sizeof why));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cookbook_compact_vectors_verify_and_tampered_fail),
        cmocka_unit_test(test_cookbook_detached_payload),
        cmocka_unit_test(test_cookbook_json_serialisations),
        cmocka_unit_test(test_good_tokens_of_each_algorithm_verify),
        cmocka_unit_test(test_expired_and_leeway),
        cmocka_unit_test(test_not_yet_valid),
        cmocka_unit_test(test_wrong_issuer_and_audience),
        cmocka_unit_test(test_alg_none_is_refused),
        cmocka_unit_test(test_hs_rs_confusion),
        cmocka_unit_test(test_unknown_kid),
        cmocka_unit_test(test_malformed_tokens),
        cmocka_unit_test(test_peek_issuer_and_sign_roundtrip),
        cmocka_unit_test(test_jwks_parse_skips_unusable_keys),
        cmocka_unit_test(test_jwks_file),
    };
    return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
