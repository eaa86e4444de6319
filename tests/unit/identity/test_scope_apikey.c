// SPDX-License-Identifier: Apache-2.0
// Scopes (validity, what an item allows, the subset test behind delegation
// attenuation) and API keys (format, keyed hash, the in-memory table built
// from the store, TTL parsing).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "identity/internal.h"
#include "state/state.h"

static void test_scope_validity(void **unused)
{
    assert_true(scope_valid(NULL));
    assert_true(scope_valid("llm"));
    assert_true(scope_valid("model:gpt-4o tool:files/read_file agent:research *"));
    assert_false(scope_valid(""));
    assert_false(scope_valid(" llm"));
    assert_false(scope_valid("llm "));
    assert_false(scope_valid("llm  mcp"));
    assert_false(scope_valid("model:\"x\""));
    assert_false(scope_valid("model:a\tb"));
}

static void test_scope_allows(void **unused)
{
    assert_true(scope_allows(NULL, "model:x"));
    assert_true(scope_allows("*", "model:x"));
    assert_true(scope_allows("llm", "model:x"));
    assert_false(scope_allows("mcp", "model:x"));
    assert_true(scope_allows("mcp", "tool:search"));
    assert_true(scope_allows("a2a", "agent:b"));
    assert_true(scope_allows("model:x", "model:x"));
    assert_false(scope_allows("model:x", "model:xy"));
    assert_true(scope_allows("model:gpt-4o*", "model:gpt-4o-mini"));
    assert_false(scope_allows("model:gpt-4o*", "model:gpt-3.5"));
    assert_true(scope_allows("tool:a model:x", "model:x"));
    assert_false(scope_allows("model:x", "llm"));
}

static void test_scope_covers_is_attenuation(void **unused)
{
    const char *bad;
    size_t n;
    assert_true(scope_covers(NULL, NULL, &bad, &n));
    assert_true(scope_covers(NULL, "llm", &bad, &n));
    assert_false(scope_covers("llm", NULL, &bad, &n)); /* unrestricted is wider */
    assert_true(scope_covers("llm", "model:a model:b", &bad, &n));
    assert_true(scope_covers("model:gpt-*", "model:gpt-4o*", &bad, &n));
    assert_false(scope_covers("model:gpt-4o*", "model:gpt-*", &bad, &n));
    assert_false(scope_covers("model:a", "model:a model:b", &bad, &n));
    assert_int_equal(n, 7);
    assert_memory_equal(bad, "model:b", 7);
    assert_false(scope_covers("model:a", "llm", &bad, &n));
    assert_true(scope_covers("*", "llm mcp a2a", &bad, &n));
    assert_false(scope_covers("llm mcp", "*", &bad, &n));
}

static void test_key_format_and_hash(void **unused)
{
    char k1[96], k2[96], id1[APIKEY_ID_LEN + 1], id2[APIKEY_ID_LEN + 1];
    assert_int_equal(apikey_generate(k1, sizeof k1, id1), 0);
    assert_int_equal(apikey_generate(k2, sizeof k2, id2), 0);
    assert_string_not_equal(k1, k2);
    assert_int_equal(strncmp(k1, "pcl_", 4), 0);
    assert_int_equal(memcmp(k1 + 4, id1, APIKEY_ID_LEN), 0);
    assert_int_equal(strlen(k1), 4 + APIKEY_ID_LEN + 1 + 43);
    assert_true(apikey_shape_ok(k1, strlen(k1)));
    assert_false(apikey_shape_ok("sk-abc", 6));
    assert_false(apikey_shape_ok("pcl_xyz_abc", 11));
    assert_false(apikey_generate(k1, 10, id1) == 0);

    unsigned char s1[32] = {1}, s2[32] = {2}, h1[32], h2[32], h3[32];
    apikey_hash(s1, k2, strlen(k2), h1);
    apikey_hash(s1, k2, strlen(k2), h2);
    apikey_hash(s2, k2, strlen(k2), h3);
    assert_memory_equal(h1, h2, 32);
    assert_memory_not_equal(h1, h3, 32); /* keyed: another install, another hash */
}

/* The per-thread pads give HMAC-SHA256 itself: a fixed vector (Python's
 * hmac module), and OpenSSL's one-shot HMAC() for every message length
 * across two secrets taking turns (the pads are re-keyed each time). */
static void test_hash_is_hmac_sha256(void **unused)
{
    unsigned char secret[32], h[32];
    for (int i = 0; i < 32; i++)
        secret[i] = (unsigned char)i;
    const char *k = "pcl_0123456789abcdef_the-rest-of-a-key";
    apikey_hash(secret, k, strlen(k), h);
    static const unsigned char want[32] = {
        0x3b, 0x7d, 0x01, 0x1f, 0x9e, 0xa2, 0x9e, 0x17, 0xc5, 0xe3, 0x39, 0x82, 0x92, 0xbb, 0x8b, 0xb5,
        0xd7, 0xc0, 0x85, 0xa9, 0x31, 0x1c, 0xed, 0x8f, 0x48, 0x56, 0x01, 0xb7, 0xeb, 0x00, 0x40, 0x85};
    assert_memory_equal(h, want, 32);

    unsigned char s2[32], ref[32];
    memset(s2, 0xa5, sizeof s2);
    char msg[200];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (char)('a' + i % 26);
    for (size_t len = 0; len <= sizeof msg; len++) {
        const unsigned char *sec = len % 2 ? secret : s2;
        unsigned int n = 32;
        HMAC(EVP_sha256(), sec, 32, (const unsigned char *)msg, len, ref, &n);
        apikey_hash(sec, msg, len, h);
        assert_memory_equal(h, ref, 32);
    }
}

/* SipHash-2-4 reference vectors (key 00..0f; messages 00.., lengths 0, 7,
 * 8 and 15), and remembered MACs equal to HMAC() on hits, across evictions
 * and after the secret changes. */
static void test_siphash_vectors_and_remembered_macs(void **unused)
{
    const uint64_t k0 = UINT64_C(0x0706050403020100), k1 = UINT64_C(0x0f0e0d0c0b0a0908);
    unsigned char m[16];
    for (int i = 0; i < 16; i++)
        m[i] = (unsigned char)i;
    assert_true(apikey_siphash(k0, k1, m, 0) == UINT64_C(0x726fdb47dd0e0e31));
    assert_true(apikey_siphash(k0, k1, m, 7) == UINT64_C(0xab0200f58b01d137));
    assert_true(apikey_siphash(k0, k1, m, 8) == UINT64_C(0x93f5f5799a932462));
    assert_true(apikey_siphash(k0, k1, m, 15) == UINT64_C(0xa129ca6149be45e5));

    unsigned char s1[32], s2[32], h[32], ref[32];
    memset(s1, 7, sizeof s1);
    memset(s2, 9, sizeof s2);
    char key[64];
    for (int round = 0; round < 3; round++) {
        const unsigned char *sec = round == 1 ? s2 : s1;
        for (int i = 0; i < 300; i++) {
            snprintf(key, sizeof key, "pcl_%016d_%d", i % 150, round);
            unsigned int n = 32;
            HMAC(EVP_sha256(), sec, 32, (const unsigned char *)key, strlen(key), ref, &n);
            apikey_hash(sec, key, strlen(key), h); /* a miss, or a hit from i - 150 */
            assert_memory_equal(h, ref, 32);
            apikey_hash(sec, key, strlen(key), h); /* a hit */
            assert_memory_equal(h, ref, 32);
        }
    }
}

static void test_table_from_store(void **unused)
{
    char path[] = "/tmp/pcl-keys-XXXXXX";
    close(mkstemp(path));
    unlink(path);
    char err[256];
    struct state *st = state_open(path, err, sizeof err);
    assert_non_null(st);
    unsigned char secret[32];
    assert_int_equal(state_secret(st, "api_keys", secret), 0);
    char keys[5][96];
    for (int i = 0; i < 5; i++) {
        struct state_api_key k = {.agent = i == 3 ? "three" : "other", .created = i};
        char id[APIKEY_ID_LEN + 1];
        assert_int_equal(apikey_generate(keys[i], sizeof keys[i], id), 0);
        snprintf(k.id, sizeof k.id, "%s", id);
        k.scope = i == 3 ? "model:x" : NULL;
        apikey_hash(secret, keys[i], strlen(keys[i]), k.hash);
        assert_int_equal(state_key_insert(st, &k), 0);
    }
    struct apikey_table t;
    assert_int_equal(apikey_table_load(st, &t), 0);
    assert_int_equal(t.n, 5);
    unsigned char h[32];
    apikey_hash(secret, keys[3], strlen(keys[3]), h);
    const struct apikey_entry *e = apikey_table_find(&t, h);
    assert_non_null(e);
    assert_string_equal(e->agent, "three");
    assert_string_equal(e->scope, "model:x");
    apikey_hash(secret, "pcl_000000000000_x", 18, h);
    assert_null(apikey_table_find(&t, h));
    apikey_table_free(&t);
    state_close(st);
    unlink(path);
    char p2[300];
    snprintf(p2, sizeof p2, "%s-wal", path);
    unlink(p2);
    snprintf(p2, sizeof p2, "%s-shm", path);
    unlink(p2);
}

static void test_ttl_parsing(void **unused)
{
    assert_int_equal(identity_parse_ttl("30d"), 30 * 86400);
    assert_int_equal(identity_parse_ttl("12h"), 12 * 3600);
    assert_int_equal(identity_parse_ttl("90m"), 90 * 60);
    assert_int_equal(identity_parse_ttl("45s"), 45);
    assert_int_equal(identity_parse_ttl("45"), 45);
    assert_int_equal(identity_parse_ttl("2w"), 14 * 86400);
    assert_int_equal(identity_parse_ttl("0d"), -1);
    assert_int_equal(identity_parse_ttl("-1d"), -1);
    assert_int_equal(identity_parse_ttl("1y"), -1);
    assert_int_equal(identity_parse_ttl("99999999999d"), -1);
    assert_int_equal(identity_parse_ttl(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scope_validity),
        cmocka_unit_test(test_scope_allows),
        cmocka_unit_test(test_scope_covers_is_attenuation),
        cmocka_unit_test(test_key_format_and_hash),
        cmocka_unit_test(test_hash_is_hmac_sha256),
        cmocka_unit_test(test_siphash_vectors_and_remembered_macs),
        cmocka_unit_test(test_table_from_store),
        cmocka_unit_test(test_ttl_parsing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
