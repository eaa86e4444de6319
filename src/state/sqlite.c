// SPDX-License-Identifier: Apache-2.0
// The embedded state backend (state.h): one SQLite file in WAL mode, schema
// versioned with PRAGMA user_version, prepared statements cached per handle,
// a busy timeout so several processes (gateway, CLI) can share the file.
#include "state/state.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#define BUSY_TIMEOUT_MS 5000

enum stmt_id {
    S_SECRET_GET,
    S_SECRET_PUT,
    S_GEN_GET,
    S_GEN_BUMP,
    S_KEY_INSERT,
    S_KEY_REVOKE,
    S_KEY_LIST,
    S_SIGN_INSERT,
    S_SIGN_RETIRE,
    S_SIGN_LIST,
    S_AUDIT_INSERT,
    S_BUDGET_SETTLE,
    S_BUDGET_TOTAL,
    S_BUDGET_TOTALS,
    S_BUDGET_SUM,
    S_BEGIN,
    S_COMMIT,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_SECRET_GET] = "SELECT value FROM secrets WHERE name = ?1",
    [S_SECRET_PUT] = "INSERT OR IGNORE INTO secrets(name, value) VALUES (?1, ?2)",
    [S_GEN_GET] = "SELECT value FROM meta WHERE name = 'keys_generation'",
    [S_GEN_BUMP] = "UPDATE meta SET value = value + 1 WHERE name = 'keys_generation'",
    [S_KEY_INSERT] = "INSERT INTO api_keys(id, hash, agent, scope, created, expires, revoked) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
    [S_KEY_REVOKE] = "UPDATE api_keys SET revoked = ?2 WHERE id = ?1 AND revoked = 0",
    [S_KEY_LIST] = "SELECT id, hash, agent, scope, created, expires, revoked FROM api_keys "
                   "ORDER BY created, id",
    [S_SIGN_INSERT] = "INSERT INTO signing_keys(kid, jwk, created, retired) VALUES (?1, ?2, ?3, 0)",
    [S_SIGN_RETIRE] = "UPDATE signing_keys SET retired = ?2 WHERE retired = 0 AND kid <> ?1",
    [S_SIGN_LIST] = "SELECT kid, jwk, created, retired FROM signing_keys "
                    "ORDER BY created DESC, rowid DESC",
    [S_AUDIT_INSERT] =
        "INSERT INTO audit(ts_ms, request_id, parent_request_id, root_request_id, trace_id, "
        "protocol, method, path, agent, auth, chain, action, resource, decision, reason, status, "
        "latency_ms, tokens_in, tokens_out, cost_usd, cache_hit, guard) VALUES (?1, ?2, ?3, ?4, "
        "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
    [S_BUDGET_SETTLE] = "INSERT INTO budget_ledger(ts_ms, request_id, chain, micro_usd) "
                        "VALUES (?1, ?2, ?3, ?4)",
    [S_BUDGET_TOTAL] = "INSERT INTO budget_totals(node, period, key, spent, alerted) "
                       "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(node, period, key) DO UPDATE "
                       "SET spent = excluded.spent, alerted = excluded.alerted",
    [S_BUDGET_TOTALS] = "SELECT node, period, key, spent, alerted FROM budget_totals WHERE "
                        "(period = 0 AND key = ?1) OR (period = 1 AND key = ?2) OR period = 2",
    [S_BUDGET_SUM] = "SELECT coalesce(sum(micro_usd), 0), count(*) FROM budget_ledger",
    /* prepared once: sqlite3_exec would parse them for every transaction */
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
};

/* Version 1. Each later version appends a step; never edit a shipped one. */
static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta(name, value) VALUES ('keys_generation', 0);"
    "CREATE TABLE IF NOT EXISTS secrets(name TEXT PRIMARY KEY, value BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS api_keys(id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE,"
    " agent TEXT NOT NULL, scope TEXT, created INTEGER NOT NULL, expires INTEGER NOT NULL,"
    " revoked INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS signing_keys(kid TEXT PRIMARY KEY, jwk TEXT NOT NULL,"
    " created INTEGER NOT NULL, retired INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ts_ms INTEGER NOT NULL, request_id TEXT, parent_request_id TEXT, root_request_id TEXT,"
    " trace_id TEXT, protocol TEXT, method TEXT, path TEXT, agent TEXT, auth TEXT, chain TEXT,"
    " action TEXT, resource TEXT, decision TEXT, reason TEXT, status INTEGER,"
    " latency_ms REAL, tokens_in INTEGER, tokens_out INTEGER, cost_usd REAL,"
    " cache_hit INTEGER, guard TEXT);"
    "CREATE INDEX IF NOT EXISTS audit_request ON audit(request_id);"
    "CREATE INDEX IF NOT EXISTS audit_root ON audit(root_request_id);"
    "CREATE INDEX IF NOT EXISTS audit_agent ON audit(agent);";

/* Version 2: the budget ledger (one row per settled call) and each node's
 * spend per period, written together by the budget store's thread. */
static const char schema_v2[] =
    "CREATE TABLE IF NOT EXISTS budget_ledger(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ts_ms INTEGER NOT NULL, request_id TEXT, chain TEXT NOT NULL,"
    " micro_usd INTEGER NOT NULL CHECK (micro_usd >= 0));"
    "CREATE INDEX IF NOT EXISTS budget_ledger_request ON budget_ledger(request_id);"
    "CREATE TABLE IF NOT EXISTS budget_totals(node TEXT NOT NULL,"
    " period INTEGER NOT NULL CHECK (period BETWEEN 0 AND 2), key INTEGER NOT NULL,"
    " spent INTEGER NOT NULL CHECK (spent >= 0), alerted INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (node, period, key));";

struct state {
    sqlite3 *db;
    pthread_mutex_t mu;
    sqlite3_stmt *stmts[S_COUNT];
    char err[256];
};

static void set_err(struct state *st, const char *what)
{
    snprintf(st->err, sizeof st->err, "%s: %s", what, st->db ? sqlite3_errmsg(st->db) : "?");
}

const char *state_errmsg(struct state *st)
{
    return st->err;
}

/* The cached statement, reset and unbound; NULL (err set) on failure. */
static sqlite3_stmt *stmt(struct state *st, enum stmt_id id)
{
    sqlite3_stmt *s = st->stmts[id];
    if (s == NULL) {
        if (sqlite3_prepare_v3(st->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) !=
            SQLITE_OK) {
            set_err(st, "prepare");
            return NULL;
        }
        st->stmts[id] = s;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

static int exec(struct state *st, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(st->err, sizeof st->err, "%s", msg ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int migrate(struct state *st)
{
    sqlite3_stmt *s = NULL;
    int version = -1;
    /* IMMEDIATE: two processes opening a fresh file do not both migrate. */
    if (exec(st, "BEGIN IMMEDIATE") < 0)
        return -1;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (version < 0) {
        set_err(st, "reading the schema version");
        goto fail;
    }
    if (version > STATE_SCHEMA_VERSION) {
        snprintf(st->err, sizeof st->err,
                 "the state file has schema version %d; this build knows up to %d", version,
                 STATE_SCHEMA_VERSION);
        goto fail;
    }
    if (version < 1 && (exec(st, schema_v1) < 0 || exec(st, "PRAGMA user_version = 1") < 0))
        goto fail;
    if (version < 2 && (exec(st, schema_v2) < 0 || exec(st, "PRAGMA user_version = 2") < 0))
        goto fail;
    return exec(st, "COMMIT");
fail:
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* Before the first connection: no memory statistics, which SQLite keeps
 * under one process-wide mutex taken on every allocation (the audit and
 * ledger writers allocate per row). A no-op if SQLite is already set up. */
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static void sqlite_setup(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

struct state *state_open(const char *path, char *err, size_t errlen)
{
    struct state *st = calloc(1, sizeof *st);
    if (st == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&st->mu, NULL);
    pthread_once(&sqlite_once, sqlite_setup);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
        set_err(st, path);
        goto fail;
    }
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    /* WAL: readers never block the writer. synchronous=NORMAL: a committed
     * transaction survives a crash of the process (kill -9); only a power
     * loss may take the last ones back. */
    if (exec(st, "PRAGMA journal_mode = WAL") < 0 || exec(st, "PRAGMA synchronous = NORMAL") < 0 ||
        exec(st, "PRAGMA foreign_keys = ON") < 0 || migrate(st) < 0)
        goto fail;
    return st;
fail:
    snprintf(err, errlen, "state %s: %s", path, st->err);
    state_close(st);
    return NULL;
}

void state_close(struct state *st)
{
    if (st == NULL)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(st->stmts[i]);
    sqlite3_close(st->db);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* Steps a statement that returns no rows. */
static int step_done(struct state *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        set_err(st, what);
        return -1;
    }
    return 0;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v != NULL)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static const char *col_text(sqlite3_stmt *s, int i)
{
    return (const char *)sqlite3_column_text(s, i);
}

int state_secret(struct state *st, const char *name, unsigned char out[32])
{
    int rc = -1;
    unsigned char fresh[32];
    pthread_mutex_lock(&st->mu);
    for (int attempt = 0; attempt < 2; attempt++) {
        sqlite3_stmt *s = stmt(st, S_SECRET_GET);
        if (s == NULL)
            break;
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        int r = sqlite3_step(s);
        if (r == SQLITE_ROW && sqlite3_column_bytes(s, 0) == 32) {
            memcpy(out, sqlite3_column_blob(s, 0), 32);
            sqlite3_reset(s);
            rc = 0;
            break;
        }
        sqlite3_reset(s);
        if (r == SQLITE_ROW) {
            snprintf(st->err, sizeof st->err, "secret %s has the wrong size", name);
            break;
        }
        if (r != SQLITE_DONE || attempt > 0) {
            set_err(st, "reading a secret");
            break;
        }
        /* Absent: create it. OR IGNORE + re-read lets a concurrent creator win. */
        if (RAND_bytes(fresh, sizeof fresh) != 1) {
            snprintf(st->err, sizeof st->err, "no randomness for a secret");
            break;
        }
        s = stmt(st, S_SECRET_PUT);
        if (s == NULL)
            break;
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(s, 2, fresh, sizeof fresh, SQLITE_STATIC);
        if (step_done(st, s, "storing a secret") < 0)
            break;
    }
    OPENSSL_cleanse(fresh, sizeof fresh);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

static int generation_locked(struct state *st, int64_t *out)
{
    sqlite3_stmt *s = stmt(st, S_GEN_GET);
    if (s == NULL)
        return -1;
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (r != SQLITE_ROW) {
        set_err(st, "reading the keys generation");
        return -1;
    }
    return 0;
}

int state_keys_generation(struct state *st, int64_t *out)
{
    pthread_mutex_lock(&st->mu);
    int rc = generation_locked(st, out);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

static int bump_generation(struct state *st)
{
    sqlite3_stmt *s = stmt(st, S_GEN_BUMP);
    return s == NULL ? -1 : step_done(st, s, "bumping the keys generation");
}

static int tx_step(struct state *st, enum stmt_id id, const char *what)
{
    sqlite3_stmt *s = stmt(st, id);
    return s == NULL ? -1 : step_done(st, s, what);
}

/* Runs body inside BEGIN IMMEDIATE .. COMMIT with the mutex held. */
#define IN_TX(st, body)                                                                            \
    do {                                                                                           \
        pthread_mutex_lock(&(st)->mu);                                                             \
        rc = tx_step((st), S_BEGIN, "BEGIN IMMEDIATE");                                            \
        if (rc == 0) {                                                                             \
            body;                                                                                  \
            if (rc >= 0 && tx_step((st), S_COMMIT, "COMMIT") < 0)                                  \
                rc = -1;                                                                           \
            if (rc < 0)                                                                            \
                sqlite3_exec((st)->db, "ROLLBACK", NULL, NULL, NULL);                              \
        }                                                                                          \
        pthread_mutex_unlock(&(st)->mu);                                                           \
    } while (0)

int state_key_insert(struct state *st, const struct state_api_key *k)
{
    int rc;
    IN_TX(st, {
        sqlite3_stmt *s = stmt(st, S_KEY_INSERT);
        rc = -1;
        if (s != NULL) {
            sqlite3_bind_text(s, 1, k->id, -1, SQLITE_STATIC);
            sqlite3_bind_blob(s, 2, k->hash, sizeof k->hash, SQLITE_STATIC);
            sqlite3_bind_text(s, 3, k->agent, -1, SQLITE_STATIC);
            bind_text(s, 4, k->scope);
            sqlite3_bind_int64(s, 5, k->created);
            sqlite3_bind_int64(s, 6, k->expires);
            rc = step_done(st, s, "inserting a key");
        }
        if (rc == 0)
            rc = bump_generation(st);
    });
    return rc;
}

int state_key_revoke(struct state *st, const char *id, int64_t now)
{
    int rc;
    IN_TX(st, {
        sqlite3_stmt *s = stmt(st, S_KEY_REVOKE);
        rc = -1;
        if (s != NULL) {
            sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 2, now);
            rc = step_done(st, s, "revoking a key");
        }
        if (rc == 0 && sqlite3_changes(st->db) == 0)
            rc = 1;
        else if (rc == 0)
            rc = bump_generation(st);
    });
    return rc;
}

int state_keys_each(struct state *st, int (*cb)(const struct state_api_key *k, void *arg),
                    void *arg)
{
    int rc = -1;
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *s = stmt(st, S_KEY_LIST);
    if (s != NULL) {
        int r;
        while ((r = sqlite3_step(s)) == SQLITE_ROW) {
            struct state_api_key k = {0};
            snprintf(k.id, sizeof k.id, "%s", col_text(s, 0) ? col_text(s, 0) : "");
            if (sqlite3_column_bytes(s, 1) == 32)
                memcpy(k.hash, sqlite3_column_blob(s, 1), 32);
            k.agent = col_text(s, 2);
            k.scope = col_text(s, 3);
            k.created = sqlite3_column_int64(s, 4);
            k.expires = sqlite3_column_int64(s, 5);
            k.revoked = sqlite3_column_int64(s, 6);
            if (cb(&k, arg) != 0) {
                r = SQLITE_DONE;
                break;
            }
        }
        if (r == SQLITE_DONE)
            rc = 0;
        else
            set_err(st, "listing keys");
        sqlite3_reset(s);
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int state_signing_rotate(struct state *st, const char *kid, const char *jwk, int64_t now)
{
    int rc;
    IN_TX(st, {
        sqlite3_stmt *s = stmt(st, S_SIGN_INSERT);
        rc = -1;
        if (s != NULL) {
            sqlite3_bind_text(s, 1, kid, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 2, jwk, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 3, now);
            rc = step_done(st, s, "inserting a signing key");
        }
        if (rc == 0) {
            s = stmt(st, S_SIGN_RETIRE);
            rc = -1;
            if (s != NULL) {
                sqlite3_bind_text(s, 1, kid, -1, SQLITE_STATIC);
                sqlite3_bind_int64(s, 2, now);
                rc = step_done(st, s, "retiring signing keys");
            }
        }
        if (rc == 0)
            rc = bump_generation(st);
    });
    return rc;
}

int state_signing_each(struct state *st, int (*cb)(const struct state_signing_key *k, void *arg),
                       void *arg)
{
    int rc = -1;
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *s = stmt(st, S_SIGN_LIST);
    if (s != NULL) {
        int r;
        while ((r = sqlite3_step(s)) == SQLITE_ROW) {
            struct state_signing_key k = {
                .kid = col_text(s, 0),
                .jwk = col_text(s, 1),
                .created = sqlite3_column_int64(s, 2),
                .retired = sqlite3_column_int64(s, 3),
            };
            if (k.kid == NULL || k.jwk == NULL)
                continue;
            if (cb(&k, arg) != 0) {
                r = SQLITE_DONE;
                break;
            }
        }
        if (r == SQLITE_DONE)
            rc = 0;
        else
            set_err(st, "listing signing keys");
        sqlite3_reset(s);
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int state_audit_append(struct state *st, const struct state_audit_row *rows, size_t n)
{
    int rc;
    IN_TX(st, {
        for (size_t i = 0; i < n && rc == 0; i++) {
            const struct state_audit_row *r = &rows[i];
            sqlite3_stmt *s = stmt(st, S_AUDIT_INSERT);
            if (s == NULL) {
                rc = -1;
                break;
            }
            sqlite3_bind_int64(s, 1, r->ts_ms);
            bind_text(s, 2, r->request_id);
            bind_text(s, 3, r->parent_request_id);
            bind_text(s, 4, r->root_request_id);
            bind_text(s, 5, r->trace_id);
            bind_text(s, 6, r->protocol);
            bind_text(s, 7, r->method);
            bind_text(s, 8, r->path);
            bind_text(s, 9, r->agent);
            bind_text(s, 10, r->auth);
            bind_text(s, 11, r->chain);
            bind_text(s, 12, r->action);
            bind_text(s, 13, r->resource);
            bind_text(s, 14, r->decision);
            bind_text(s, 15, r->reason);
            sqlite3_bind_int(s, 16, r->status);
            sqlite3_bind_double(s, 17, r->latency_ms);
            sqlite3_bind_int64(s, 18, r->tokens_in);
            sqlite3_bind_int64(s, 19, r->tokens_out);
            sqlite3_bind_double(s, 20, r->cost_usd);
            sqlite3_bind_int(s, 21, r->cache_hit);
            bind_text(s, 22, r->guard);
            rc = step_done(st, s, "appending an audit record");
        }
    });
    return rc;
}

int state_audit_each(struct state *st, const struct state_audit_filter *f,
                     int (*cb)(const struct state_audit_row *r, void *arg), void *arg)
{
    char sql[1024];
    int rc = -1;
    /* Built from fixed fragments only; every value is a bound parameter. */
    int n = snprintf(sql, sizeof sql,
                     "SELECT id, ts_ms, request_id, parent_request_id, root_request_id, trace_id, "
                     "protocol, method, path, agent, auth, chain, action, resource, decision, "
                     "reason, status, latency_ms, tokens_in, tokens_out, cost_usd, cache_hit, "
                     "guard FROM audit WHERE id > ?1%s%s%s%s ORDER BY id %s%s",
                     f->request_id ? " AND request_id = ?2" : "",
                     f->root_request_id ? " AND root_request_id = ?3" : "",
                     f->agent ? " AND (agent = ?4 OR EXISTS (SELECT 1 FROM json_each(audit.chain) "
                                "WHERE json_each.value = ?4))"
                              : "",
                     f->denied_only ? " AND decision = 'deny'" : "",
                     f->newest_first ? "DESC" : "ASC", f->limit ? " LIMIT ?5" : "");
    if (n < 0 || (size_t)n >= sizeof sql)
        return -1;
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
        set_err(st, "querying audit");
        goto out;
    }
    sqlite3_bind_int64(s, 1, f->after_id);
    if (f->request_id)
        sqlite3_bind_text(s, 2, f->request_id, -1, SQLITE_STATIC);
    if (f->root_request_id)
        sqlite3_bind_text(s, 3, f->root_request_id, -1, SQLITE_STATIC);
    if (f->agent)
        sqlite3_bind_text(s, 4, f->agent, -1, SQLITE_STATIC);
    if (f->limit)
        sqlite3_bind_int64(s, 5, f->limit);
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        struct state_audit_row row = {
            .id = sqlite3_column_int64(s, 0),
            .ts_ms = sqlite3_column_int64(s, 1),
            .request_id = col_text(s, 2),
            .parent_request_id = col_text(s, 3),
            .root_request_id = col_text(s, 4),
            .trace_id = col_text(s, 5),
            .protocol = col_text(s, 6),
            .method = col_text(s, 7),
            .path = col_text(s, 8),
            .agent = col_text(s, 9),
            .auth = col_text(s, 10),
            .chain = col_text(s, 11),
            .action = col_text(s, 12),
            .resource = col_text(s, 13),
            .decision = col_text(s, 14),
            .reason = col_text(s, 15),
            .status = sqlite3_column_int(s, 16),
            .latency_ms = sqlite3_column_double(s, 17),
            .tokens_in = sqlite3_column_int64(s, 18),
            .tokens_out = sqlite3_column_int64(s, 19),
            .cost_usd = sqlite3_column_double(s, 20),
            .cache_hit = sqlite3_column_int(s, 21),
            .guard = col_text(s, 22),
        };
        if (cb(&row, arg) != 0) {
            r = SQLITE_DONE;
            break;
        }
    }
    if (r == SQLITE_DONE)
        rc = 0;
    else
        set_err(st, "reading audit");
out:
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int state_budget_write(struct state *st, const struct state_budget_settlement *rows, size_t ns,
                       const struct state_budget_total *t, size_t nt)
{
    int rc;
    IN_TX(st, {
        for (size_t i = 0; i < ns && rc == 0; i++) {
            sqlite3_stmt *s = stmt(st, S_BUDGET_SETTLE);
            if (s == NULL) {
                rc = -1;
                break;
            }
            sqlite3_bind_int64(s, 1, rows[i].ts_ms);
            bind_text(s, 2, rows[i].request_id);
            bind_text(s, 3, rows[i].chain ? rows[i].chain : "[]");
            sqlite3_bind_int64(s, 4, rows[i].micro_usd);
            rc = step_done(st, s, "appending a budget settlement");
        }
        for (size_t i = 0; i < nt && rc == 0; i++) {
            sqlite3_stmt *s = stmt(st, S_BUDGET_TOTAL);
            if (s == NULL) {
                rc = -1;
                break;
            }
            sqlite3_bind_text(s, 1, t[i].node, -1, SQLITE_STATIC);
            sqlite3_bind_int(s, 2, t[i].period);
            sqlite3_bind_int64(s, 3, t[i].key);
            sqlite3_bind_int64(s, 4, t[i].spent);
            sqlite3_bind_int(s, 5, t[i].alerted ? 1 : 0);
            rc = step_done(st, s, "writing a budget total");
        }
    });
    return rc;
}

int state_budget_totals_each(struct state *st, int64_t day_key, int64_t month_key,
                             int (*cb)(const struct state_budget_total *t, void *arg), void *arg)
{
    int rc = -1;
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *s = stmt(st, S_BUDGET_TOTALS);
    if (s != NULL) {
        sqlite3_bind_int64(s, 1, day_key);
        sqlite3_bind_int64(s, 2, month_key);
        int r;
        while ((r = sqlite3_step(s)) == SQLITE_ROW) {
            struct state_budget_total t = {
                .node = col_text(s, 0),
                .period = sqlite3_column_int(s, 1),
                .key = sqlite3_column_int64(s, 2),
                .spent = sqlite3_column_int64(s, 3),
                .alerted = sqlite3_column_int(s, 4),
            };
            if (t.node == NULL)
                continue;
            if (cb(&t, arg) != 0) {
                r = SQLITE_DONE;
                break;
            }
        }
        if (r == SQLITE_DONE)
            rc = 0;
        else
            set_err(st, "reading budget totals");
        sqlite3_reset(s);
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int state_budget_ledger_sum(struct state *st, int64_t *micro_usd, int64_t *count)
{
    int rc = -1;
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *s = stmt(st, S_BUDGET_SUM);
    if (s != NULL) {
        if (sqlite3_step(s) == SQLITE_ROW) {
            *micro_usd = sqlite3_column_int64(s, 0);
            *count = sqlite3_column_int64(s, 1);
            rc = 0;
        } else
            set_err(st, "summing the budget ledger");
        sqlite3_reset(s);
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}
