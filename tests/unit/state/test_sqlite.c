// SPDX-License-Identifier: Apache-2.0
// Unit tests for the embedded state backend: schema creation and versioning,
// the per-install secret, API keys (only hashes stored, revocation, the
// generation counter), signing key rotation, and audit append/query, also
// from several threads on separate connections.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state/state.h"

#include "../support/tmp_db.h"

static struct state *open_ok(const char *path)
{
    char err[256];
    struct state *st = state_open(path, err, sizeof err);
    if (st == NULL)
        fail_msg("state_open: %s", err);
    return st;
}

static void test_open_creates_schema_in_wal_mode(void **unused)
{
    char *path = tmp_db();
    state_close(open_ok(path));
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), STATE_SCHEMA_VERSION);
    sqlite3_finalize(s);
    sqlite3_close(db);
    /* Reopening an existing file is fine. */
    state_close(open_ok(path));
    remove_db(path);
}

static void test_newer_schema_is_refused(void **unused)
{
    char *path = tmp_db();
    state_close(open_ok(path));
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char err[256];
    assert_null(state_open(path, err, sizeof err));
    assert_non_null(strstr(err, "schema version 99"));
    remove_db(path);
}

static void test_secret_is_created_once_and_kept(void **unused)
{
    char *path = tmp_db();
    unsigned char a[32], b[32], c[32];
    struct state *st = open_ok(path);
    assert_int_equal(state_secret(st, "api_keys", a), 0);
    assert_int_equal(state_secret(st, "api_keys", b), 0);
    assert_memory_equal(a, b, 32);
    assert_int_equal(state_secret(st, "other", c), 0);
    assert_memory_not_equal(a, c, 32);
    state_close(st);
    st = open_ok(path);
    assert_int_equal(state_secret(st, "api_keys", b), 0);
    assert_memory_equal(a, b, 32);
    state_close(st);
    remove_db(path);
}

struct key_list {
    int n;
    char ids[8][40];
    char agents[8][40];
    int64_t revoked[8];
};

static int collect_key(const struct state_api_key *k, void *arg)
{
    struct key_list *l = arg;
    if (l->n < 8) {
        snprintf(l->ids[l->n], 40, "%s", k->id);
        snprintf(l->agents[l->n], 40, "%s", k->agent);
        l->revoked[l->n] = k->revoked;
        l->n++;
    }
    return 0;
}

static void test_keys_insert_list_revoke_bump_generation(void **unused)
{
    char *path = tmp_db();
    struct state *st = open_ok(path);
    int64_t g0, g1, g2, g3;
    assert_int_equal(state_keys_generation(st, &g0), 0);
    struct state_api_key k = {.id = "k1", .agent = "researcher", .created = 100};
    memset(k.hash, 0xab, 32);
    assert_int_equal(state_key_insert(st, &k), 0);
    assert_int_equal(state_keys_generation(st, &g1), 0);
    assert_true(g1 > g0);
    /* Same hash twice is refused (UNIQUE), and nothing is bumped. */
    snprintf(k.id, sizeof k.id, "k2");
    assert_int_equal(state_key_insert(st, &k), -1);
    memset(k.hash, 0xcd, 32);
    k.agent = "research";
    k.created = 200;
    assert_int_equal(state_key_insert(st, &k), 0);

    struct key_list l = {0};
    assert_int_equal(state_keys_each(st, collect_key, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.ids[0], "k1");
    assert_string_equal(l.agents[0], "researcher");
    assert_string_equal(l.ids[1], "k2");

    assert_int_equal(state_keys_generation(st, &g2), 0);
    assert_int_equal(state_key_revoke(st, "k1", 500), 0);
    assert_int_equal(state_keys_generation(st, &g3), 0);
    assert_true(g3 > g2);
    assert_int_equal(state_key_revoke(st, "k1", 600), 1); /* already revoked */
    assert_int_equal(state_key_revoke(st, "nope", 600), 1);
    memset(&l, 0, sizeof l);
    assert_int_equal(state_keys_each(st, collect_key, &l), 0);
    assert_int_equal(l.revoked[0], 500);
    assert_int_equal(l.revoked[1], 0);
    state_close(st);
    remove_db(path);
}

struct sign_list {
    int n;
    char kids[4][16];
    int64_t retired[4];
};

static int collect_sign(const struct state_signing_key *k, void *arg)
{
    struct sign_list *l = arg;
    if (l->n < 4) {
        snprintf(l->kids[l->n], 16, "%s", k->kid);
        l->retired[l->n] = k->retired;
        l->n++;
    }
    return 0;
}

static void test_signing_rotation_retires_the_old_key(void **unused)
{
    char *path = tmp_db();
    struct state *st = open_ok(path);
    assert_int_equal(state_signing_rotate(st, "a", "{\"kty\":\"EC\"}", 10), 0);
    assert_int_equal(state_signing_rotate(st, "b", "{\"kty\":\"EC\"}", 20), 0);
    struct sign_list l = {0};
    assert_int_equal(state_signing_each(st, collect_sign, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.kids[0], "b");
    assert_int_equal(l.retired[0], 0);
    assert_string_equal(l.kids[1], "a");
    assert_int_equal(l.retired[1], 20);
    state_close(st);
    remove_db(path);
}

struct audit_list {
    int n;
    char rids[16][16];
    int64_t last_id;
};

static int collect_audit(const struct state_audit_row *r, void *arg)
{
    struct audit_list *l = arg;
    if (l->n < 16)
        snprintf(l->rids[l->n], 16, "%s", r->request_id ? r->request_id : "-");
    l->n++;
    l->last_id = r->id;
    return 0;
}

static void test_audit_append_and_filters(void **unused)
{
    char *path = tmp_db();
    struct state *st = open_ok(path);
    struct state_audit_row rows[3] = {
        {.ts_ms = 1,
         .request_id = "r1",
         .root_request_id = "r1",
         .agent = "A",
         .chain = "[\"A\"]",
         .decision = "allow",
         .status = 200},
        {.ts_ms = 2,
         .request_id = "r2",
         .root_request_id = "r1",
         .agent = "B",
         .chain = "[\"A\",\"B\"]",
         .decision = "deny",
         .status = 400},
        {.ts_ms = 3,
         .request_id = "r3",
         .root_request_id = "r3",
         .agent = "C",
         .chain = "[\"C\"]",
         .decision = "allow",
         .status = 200},
    };
    assert_int_equal(state_audit_append(st, rows, 3), 0);

    struct audit_list l = {0};
    struct state_audit_filter f = {.root_request_id = "r1"};
    assert_int_equal(state_audit_each(st, &f, collect_audit, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.rids[0], "r1");
    assert_string_equal(l.rids[1], "r2");

    memset(&l, 0, sizeof l);
    f = (struct state_audit_filter){.agent = "A"}; /* principal or in the chain */
    assert_int_equal(state_audit_each(st, &f, collect_audit, &l), 0);
    assert_int_equal(l.n, 2);

    memset(&l, 0, sizeof l);
    f = (struct state_audit_filter){.denied_only = 1};
    assert_int_equal(state_audit_each(st, &f, collect_audit, &l), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.rids[0], "r2");

    memset(&l, 0, sizeof l);
    f = (struct state_audit_filter){.limit = 1, .newest_first = 1};
    assert_int_equal(state_audit_each(st, &f, collect_audit, &l), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.rids[0], "r3");

    memset(&l, 0, sizeof l);
    f = (struct state_audit_filter){.request_id = "r2'; DROP TABLE audit; --"};
    assert_int_equal(state_audit_each(st, &f, collect_audit, &l), 0);
    assert_int_equal(l.n, 0);
    state_close(st);
    remove_db(path);
}

#define THREADS 4
#define PER_THREAD 200

static void *writer(void *arg)
{
    const char *path = arg;
    char err[256];
    struct state *st = state_open(path, err, sizeof err);
    if (st == NULL)
        return (void *)1;
    for (int i = 0; i < PER_THREAD; i++) {
        struct state_audit_row r = {.ts_ms = i, .request_id = "t", .status = 200};
        if (state_audit_append(st, &r, 1) != 0) {
            state_close(st);
            return (void *)1;
        }
    }
    state_close(st);
    return NULL;
}

static void test_concurrent_writers_on_separate_connections(void **unused)
{
    char *path = tmp_db();
    state_close(open_ok(path));
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer, path), 0);
    for (int i = 0; i < THREADS; i++) {
        void *res;
        pthread_join(t[i], &res);
        assert_null(res);
    }
    struct state *st = open_ok(path);
    struct audit_list l = {0};
    struct state_audit_filter f = {0};
    assert_int_equal(state_audit_each(st, &f, collect_audit, &l), 0);
    assert_int_equal(l.n, THREADS * PER_THREAD);
    state_close(st);
    remove_db(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_creates_schema_in_wal_mode),
        cmocka_unit_test(test_newer_schema_is_refused),
        cmocka_unit_test(test_secret_is_created_once_and_kept),
        cmocka_unit_test(test_keys_insert_list_revoke_bump_generation),
        cmocka_unit_test(test_signing_rotation_retires_the_old_key),
        cmocka_unit_test(test_audit_append_and_filters),
        cmocka_unit_test(test_concurrent_writers_on_separate_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
