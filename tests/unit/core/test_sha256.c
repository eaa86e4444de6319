// SPDX-License-Identifier: Apache-2.0
// core/sha256: FIPS 180-2 vectors, and the same digest from several threads.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "core/hex.h"
#include "core/sha256.h"

static void hex_of(const char *s, char out[65])
{
    unsigned char md[32];
    sha256(s, strlen(s), md);
    hex_encode(md, 32, out);
}

static void fips_180_2_vectors(void **state)
{
    char h[65];
    hex_of("", h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", h);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void *hash_many(void *arg)
{
    int *bad = arg;
    char h[65];
    for (int i = 0; i < 2000; i++) {
        hex_of("abc", h);
        if (strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") != 0)
            (*bad)++;
    }
    return NULL;
}

static void threads_get_the_same_digest(void **state)
{
    pthread_t t[4];
    int bad[4] = {0};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hash_many, &bad[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(bad[i], 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fips_180_2_vectors),
        cmocka_unit_test(threads_get_the_same_digest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
