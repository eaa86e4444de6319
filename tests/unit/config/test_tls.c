// SPDX-License-Identifier: Apache-2.0
// tls: cert and key come together, must exist, be regular files and be
// readable; errors carry the line of the offending value.
#include "helpers.h"

#include <sys/stat.h>
#include <unistd.h>

static void test_tls_files_resolve_and_load(void **state)
{
    const char *yaml = "tls:\n  cert: cert.pem\n  key: key.pem\n";
    struct config_errors errs;
    struct config *c = config_load_string(TEST_DATA_DIR "/inline.yaml", yaml, strlen(yaml), &errs);
    assert_non_null(c);
    assert_string_equal(c->tls.cert_file, TEST_DATA_DIR "/cert.pem");
    assert_string_equal(c->tls.key_file, TEST_DATA_DIR "/key.pem");
    config_unref(c);

    yaml = "tls: {cert: " TEST_DATA_DIR "/cert.pem, key: " TEST_DATA_DIR "/key.pem}\n";
    c = load_ok(yaml);
    assert_string_equal(c->tls.cert_file, TEST_DATA_DIR "/cert.pem");
    config_unref(c);
}

static void test_tls_needs_both(void **state)
{
    load_fails("tls:\n  cert: " TEST_DATA_DIR "/cert.pem\n",
               "t.yaml:2: tls: cert and key must be set together (missing key)\n");
    load_fails("tls: {key: x.pem}\n",
               "t.yaml:1: tls: cert and key must be set together (missing cert)\n");
}

static void test_tls_missing_file_and_directory(void **state)
{
    load_fails("listen: 127.0.0.1:8443\n"
               "tls:\n"
               "  cert: /nonexistent/cert.pem\n"
               "  key: " TEST_DATA_DIR "\n",
               "t.yaml:3: tls.cert: cannot read '/nonexistent/cert.pem': No such file or "
               "directory\n"
               "t.yaml:4: tls.key: '" TEST_DATA_DIR "' is not a regular file\n");
    load_fails("tls: {cert: \"\", key: [a]}\n", "t.yaml:1: tls.cert: must not be empty\n"
                                                "t.yaml:1: tls.key: expected a single value, "
                                                "got a list\n");
}

static void test_tls_unreadable_file(void **state)
{
    if (geteuid() == 0)
        skip(); /* root reads everything */
    char path[] = "/tmp/portcullis-config-key-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    chmod(path, 0);
    char yaml[256], expected[256];
    snprintf(yaml, sizeof yaml, "tls:\n  cert: %s/cert.pem\n  key: %s\n", TEST_DATA_DIR, path);
    snprintf(expected, sizeof expected, "t.yaml:3: tls.key: cannot read '%s': Permission denied\n",
             path);
    load_fails(yaml, expected);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_files_resolve_and_load),
        cmocka_unit_test(test_tls_needs_both),
        cmocka_unit_test(test_tls_missing_file_and_directory),
        cmocka_unit_test(test_tls_unreadable_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
