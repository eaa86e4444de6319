// SPDX-License-Identifier: Apache-2.0
// The audit writer: a record per exchange with principal, chain, derived
// action/resource/decision and cost; batches reach SQLite and the JSONL file;
// while another process holds the store's write lock the queue fills, asks
// workers to hold new requests past its high-water mark, and a full queue
// makes audit_exchange wait for the writer instead of dropping a record.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <unistd.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "config/config.h"
#include "core/clock.h"
#include "http/server.h"
#include "identity/identity.h"
#include "state/state.h"

static char dir[64];

static int setup(void **unused)
{
    snprintf(dir, sizeof dir, "/tmp/pcl-audit-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **unused)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static struct config *config_with(const char *extra)
{
    char yaml[1024], name[128];
    snprintf(
        yaml, sizeof yaml,
        "providers: [{name: mock, kind: mock}]\n"
        "models: [{name: m, targets: [mock], price: {input_per_mtok: 1, output_per_mtok: 2}}]\n"
        "%s",
        extra);
    snprintf(name, sizeof name, "%s/gw.yaml", dir);
    struct config_errors errs;
    struct config *c = config_load_string(name, yaml, strlen(yaml), &errs);
    if (c == NULL) {
        config_errors_print(&errs, stderr);
        fail();
    }
    return c;
}

struct fake {
    struct http_exchange ex;
    struct http_request req;
    struct identity_principal p;
    const char *chain[3];
};

static void fake_init(struct fake *f, struct config *cfg, const char *rid, int status)
{
    memset(f, 0, sizeof *f);
    f->req.method = "POST";
    f->req.path = "/v1/chat/completions";
    f->req.path_len = strlen(f->req.path);
    f->ex.req = &f->req;
    f->ex.cfg = cfg;
    f->ex.status = status;
    f->ex.route = "chat";
    f->ex.model = "m";
    f->ex.tokens_in = 1000;
    f->ex.tokens_out = 500;
    f->ex.start_ns = clock_mono_ns();
    snprintf(f->ex.request_id, sizeof f->ex.request_id, "%s", rid);
}

static int count_rows(const char *where)
{
    char path[128], sql[256];
    snprintf(path, sizeof path, "%s/portcullis.db", dir);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM audit %s", where);
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

struct got {
    int n;
    char agent[32], chain[128], resource[64], decision[16], reason[128], protocol[16];
    double cost;
};

static int grab(const struct state_audit_row *r, void *arg)
{
    struct got *g = arg;
    g->n++;
    snprintf(g->agent, sizeof g->agent, "%s", r->agent ? r->agent : "(null)");
    snprintf(g->chain, sizeof g->chain, "%s", r->chain ? r->chain : "(null)");
    snprintf(g->resource, sizeof g->resource, "%s", r->resource ? r->resource : "(null)");
    snprintf(g->decision, sizeof g->decision, "%s", r->decision);
    snprintf(g->reason, sizeof g->reason, "%s", r->reason ? r->reason : "(null)");
    snprintf(g->protocol, sizeof g->protocol, "%s", r->protocol);
    g->cost = r->cost_usd;
    return 0;
}

static void lookup(struct config *cfg, const char *rid, struct got *g)
{
    char err[256];
    struct state *st = state_open(cfg->state_path, err, sizeof err);
    assert_non_null(st);
    memset(g, 0, sizeof *g);
    struct state_audit_filter f = {.request_id = rid};
    assert_int_equal(state_audit_each(st, &f, grab, g), 0);
    state_close(st);
}

static void test_records_carry_chain_and_derived_fields(void **unused)
{
    struct config *cfg = config_with("audit: {jsonl: audit.jsonl}\n");
    char err[256];
    struct audit *a = audit_new(cfg, err, sizeof err);
    assert_non_null(a);

    struct fake f;
    fake_init(&f, cfg, "req-1", 200);
    f.chain[0] = "A", f.chain[1] = "B", f.chain[2] = "C";
    f.p = (struct identity_principal){.agent = "C",
                                      .auth = "delegation",
                                      .chain = f.chain,
                                      .chain_len = 3,
                                      .root_request_id = "req-0",
                                      .parent_request_id = "req-0b",
                                      .budget_usd = -1};
    f.ex.principal = &f.p;
    audit_exchange(a, &f.ex);

    fake_init(&f, cfg, "req-2", 401); /* anonymous, refused */
    f.ex.model = NULL;
    f.ex.error_type = "missing_credential";
    audit_exchange(a, &f.ex);

    fake_init(&f, cfg, "req-3", 200);
    f.ex.aborted = 1;
    audit_exchange(a, &f.ex);
    audit_flush(a);
    assert_int_equal(audit_written(a), 3);
    assert_int_equal(audit_dropped(a), 0);
    audit_free(a);

    struct got g;
    lookup(cfg, "req-1", &g);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.agent, "C");
    assert_string_equal(g.chain, "[\"A\",\"B\",\"C\"]");
    assert_string_equal(g.resource, "model:m");
    assert_string_equal(g.decision, "allow");
    assert_string_equal(g.protocol, "llm");
    assert_true(g.cost > 0.00199 && g.cost < 0.00201); /* 1000*1 + 500*2 per Mtok */
    lookup(cfg, "req-2", &g);
    assert_string_equal(g.agent, "(null)");
    assert_string_equal(g.decision, "deny");
    assert_string_equal(g.reason, "missing_credential");
    lookup(cfg, "req-3", &g);
    assert_string_equal(g.decision, "error");
    assert_string_equal(g.reason, "client went away");

    char path[128], line[4096];
    snprintf(path, sizeof path, "%s/audit.jsonl", dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    int lines = 0;
    while (fgets(line, sizeof line, fp) != NULL) {
        lines++;
        assert_int_equal(line[0], '{');
        assert_non_null(strstr(line, "\"request_id\":\"req-"));
    }
    fclose(fp);
    assert_int_equal(lines, 3);
    config_unref(cfg);
}

struct submitter {
    struct audit *a;
    struct config *cfg;
    int n;
};

static void *submit(void *arg)
{
    struct submitter *s = arg;
    struct fake f;
    char rid[32];
    for (int i = 0; i < s->n; i++) {
        snprintf(rid, sizeof rid, "r%d", i);
        fake_init(&f, s->cfg, rid, 200);
        audit_exchange(s->a, &f.ex);
    }
    return NULL;
}

static void test_full_queue_holds_and_overflows_but_never_waits_or_drops(void **unused)
{
    struct config *cfg = config_with("audit: {buffer: 16}\n");
    char err[256];
    struct audit *a = audit_new(cfg, err, sizeof err);
    assert_non_null(a);
    assert_false(audit_should_hold(a));
    /* Another process holds the write lock: the writer is stuck on it. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(cfg->state_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    struct submitter s = {a, cfg, 200};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, submit, &s), 0);
    /* The submitter (a worker) finishes all 200 while the store is locked:
     * it never waits for the writer. What does not fit in the 16 slots (and
     * the writer's stuck batch of at most 16) waits in the overflow list. */
    pthread_join(t, NULL);
    assert_true(audit_overflowed(a) >= 200 - 2 * 16);
    assert_true(audit_should_hold(a));
    assert_true(audit_still_held(a));
    assert_int_equal(audit_dropped(a), 0);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    audit_flush(a);
    assert_false(audit_still_held(a)); /* drained: a held worker resumes */
    assert_int_equal(audit_dropped(a), 0);
    assert_int_equal(audit_written(a), 200);
    audit_free(a);
    assert_int_equal(count_rows(""), 200);
    config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_carry_chain_and_derived_fields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_holds_and_overflows_but_never_waits_or_drops, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
