// SPDX-License-Identifier: Apache-2.0
// SHA-256 with the digest fetched once (see sha256.h).
#include "core/sha256.h"

#include <pthread.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

static EVP_MD *md; /* process lifetime; read-only once fetched */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void fetch_md(void)
{
    md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void sha256(const void *data, size_t len, unsigned char out[32])
{
    pthread_once(&md_once, fetch_md);
    unsigned int n = 32;
    if (md == NULL || EVP_Digest(data, len, out, &n, md, NULL) != 1)
        SHA256(data, len, out); /* the slow path still gives the digest */
}
