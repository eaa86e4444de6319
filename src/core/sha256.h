// SPDX-License-Identifier: Apache-2.0
// SHA-256 for the hot path: OpenSSL's digest fetched once per process, not
// once per call as the one-shot SHA256() does (trace ids of audited requests).
#ifndef PORTCULLIS_CORE_SHA256_H
#define PORTCULLIS_CORE_SHA256_H

#include <stddef.h>

/* out = SHA-256(data[0..len)). Safe from any thread. */
void sha256(const void *data, size_t len, unsigned char out[32]);

#endif
