// SPDX-License-Identifier: Apache-2.0
// Snapshots are shared by reference: the last config_unref frees, from any
// thread, while other holders keep reading the snapshot they took.
#include "helpers.h"

#include <pthread.h>

static const char yaml[] = "providers: [{name: p, kind: mock}]\n"
                           "models: [{name: m, targets: [p]}]\n";

static void test_new_snapshot_has_one_ref(void **state)
{
    struct config *c = load_ok(yaml);
    assert_int_equal(atomic_load(&c->refs), 1);
    config_unref(c); /* frees; ASan reports a leak otherwise */
}

static void test_ref_and_unref_count(void **state)
{
    struct config *c = load_ok(yaml);
    assert_ptr_equal(config_ref(c), c);
    assert_ptr_equal(config_ref(c), c);
    assert_int_equal(atomic_load(&c->refs), 3);
    config_unref(c);
    config_unref(c);
    assert_int_equal(atomic_load(&c->refs), 1);
    /* Still usable while one reference is held. */
    assert_string_equal(config_find_model(c, "m")->targets[0].provider->name, "p");
    config_unref(c);
}

static void test_null_is_ignored(void **state)
{
    assert_null(config_ref(NULL));
    config_unref(NULL);
    config_errors_free(NULL);
    config_errors_print(NULL, stdout);
    assert_null(config_find_model(NULL, "m"));
    assert_null(config_find_provider(NULL, "p"));
}

static void *hammer(void *arg)
{
    struct config *c = arg;
    for (int i = 0; i < 100000; i++) {
        config_ref(c);
        config_unref(c);
    }
    config_unref(c); /* the reference the main thread took for us */
    return NULL;
}

static void test_concurrent_ref_unref(void **state)
{
    enum { N = 4 };
    pthread_t th[N];
    struct config *c = load_ok(yaml);
    for (int i = 0; i < N; i++) {
        config_ref(c);
        assert_int_equal(pthread_create(&th[i], NULL, hammer, c), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&c->refs), 1);
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_snapshot_has_one_ref),
        cmocka_unit_test(test_ref_and_unref_count),
        cmocka_unit_test(test_null_is_ignored),
        cmocka_unit_test(test_concurrent_ref_unref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
