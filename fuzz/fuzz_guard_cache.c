// SPDX-License-Identifier: Apache-2.0
// Fuzz target for the guard database cache parser: any file content is refused or
// yields two databases, never a crash or a read past the end. Each input is tried as a
// whole file, and sealed (magic, the expected key and a matching SHA-256 trailer around
// it) so the fuzzer also reaches the section parsing behind the checksum.
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard/internal.h"

static void try_parse(const unsigned char *buf, size_t n, const unsigned char *key)
{
    hs_database_t *dbs[2]; /* the pack's fast database and its one rule's span database */
    int rc = guard_cache_parse(buf, n, key, dbs, 2);
    for (size_t i = 0; i < 2; i++) {
        if ((rc == 0) != (dbs[i] != NULL))
            abort();
        hs_free_database(dbs[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char pack[] = "[f.x]\ncategory = hidden_text\nseverity = low\nregex = <!--\n"
                               "example = <!--\n";
    static unsigned char key[GUARD_CACHE_KEY];
    static int have_key;
    if (!have_key) {
        guard_cache_key(pack, sizeof(pack) - 1, key);
        have_key = 1;
    }
    /* exact-size copy so ASan catches any read past the end */
    unsigned char *raw = malloc(size ? size : 1);
    if (!raw)
        return 0;
    memcpy(raw, data, size);
    try_parse(raw, size, key);
    free(raw);

    size_t n = 8 + GUARD_CACHE_KEY + size + 32;
    unsigned char *sealed = malloc(n);
    unsigned int sl = 0;
    if (!sealed)
        return 0;
    memcpy(sealed, "PCGUARD1", 8);
    memcpy(sealed + 8, key, GUARD_CACHE_KEY);
    memcpy(sealed + 8 + GUARD_CACHE_KEY, data, size);
    if (EVP_Digest(sealed, n - 32, sealed + n - 32, &sl, EVP_sha256(), NULL) == 1)
        try_parse(sealed, n, key);
    free(sealed);
    return 0;
}
