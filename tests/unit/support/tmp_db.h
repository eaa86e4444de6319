// SPDX-License-Identifier: Apache-2.0
// A fresh SQLite path for a unit test, and its removal with the WAL and
// shared-memory files next to it. Include after <cmocka.h>.
#ifndef PORTCULLIS_TESTS_SUPPORT_TMP_DB_H
#define PORTCULLIS_TESTS_SUPPORT_TMP_DB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A path in /tmp no file has (malloc'd). */
static inline char *tmp_db(void)
{
    char tmpl[] = "/tmp/pcl-test-db-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    close(fd);
    unlink(tmpl);
    return strdup(tmpl);
}

/* Unlinks the database, its -wal and -shm files, and frees path. */
static inline void remove_db(char *path)
{
    char p[300];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    free(path);
}

#endif
