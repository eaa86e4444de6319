// SPDX-License-Identifier: Apache-2.0
// Fuzz target for the JWKS loader (identity/jwks.c): arbitrary bytes as a
// JWKS document. It must never crash; every key it keeps must have a kty,
// a string kid when it has one, and be usable to attempt a verification.
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    struct jwk_set *s = jwk_set_parse((const char *)data, size, why, sizeof why);
    if (s == NULL)
        return 0;
    size_t i;
    json_t *k;
    json_array_foreach(s->keys, i, k)
    {
        if (json_string_value(json_object_get(k, "kty")) == NULL)
            abort();
        json_t *kid = json_object_get(k, "kid");
        if (kid != NULL && !json_is_string(kid))
            abort();
    }
    if (jwk_set_size(s) > JWKS_MAX_KEYS)
        abort();
    /* Use the set: a malformed key must fail verification, not crash. */
    static const char *const algs[] = {"RS256", "ES256", "HS256", "PS256"};
    static const char tok[] = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0."
                              "c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2ln";
    json_t *hdr = NULL;
    char *payload = NULL;
    size_t plen;
    if (jws_verify_compact(tok, sizeof tok - 1, s, algs, 4, &hdr, &payload, &plen, why,
                           sizeof why) == JWT_OK)
        abort();
    json_decref(hdr);
    free(payload);
    jwk_set_unref(s);
    return 0;
}
