// SPDX-License-Identifier: Apache-2.0
// Runs the Cedar integration tests written by hand (cedar/tests: decisions,
// reasons and errors of the reference implementation) through the corpus
// runner. The corpora live beside the clone: $PORTCULLIS_CORPORA/cedar, or
// ../shared/corpora/cedar from the source tree. A missing folder fails.
#include <sys/stat.h>

#include "helpers.h"

static void corpus_dir(char *out, size_t cap)
{
    const char *env = getenv("PORTCULLIS_CORPORA");
    if (env && *env)
        snprintf(out, cap, "%s/cedar", env);
    else /* TEST_DATA_DIR is <src>/tests/unit/policy/data */
        snprintf(out, cap, "%s/../../../../../shared/corpora/cedar", TEST_DATA_DIR);
}

static void test_hand_written_cedar_tests_pass(void **state)
{
    char dir[4096], tests[4200];
    corpus_dir(dir, sizeof(dir));
    snprintf(tests, sizeof(tests), "%s/tests", dir);
    struct stat st;
    if (stat(tests, &st) != 0 || !S_ISDIR(st.st_mode))
        fail_msg("Cedar corpus not found at %s (set PORTCULLIS_CORPORA)", tests);
    const char *paths[] = {tests};
    struct policy_corpus_result res;
    int rc = policy_corpus_run(paths, 1, stdout, &res);
    print_message("%zu passed, %zu failed (%zu test files)\n", res.passed, res.failed, res.files);
    assert_int_equal(rc, 0);
    assert_int_equal(res.failed, 0);
    assert_true(res.files >= 20);
    assert_true(res.passed >= 70);
}

static void test_unreadable_paths_fail(void **state)
{
    const char *paths[] = {"/nonexistent/cedar/tests"};
    struct policy_corpus_result res;
    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(policy_corpus_run(paths, 1, devnull, &res), -1);
    fclose(devnull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_written_cedar_tests_pass),
        cmocka_unit_test(test_unreadable_paths_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
