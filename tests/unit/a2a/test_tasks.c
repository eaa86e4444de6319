// SPDX-License-Identifier: Apache-2.0
// Unit tests for a2a/tasks.c: the task -> owner map (first owner stays, a full
// map overwrites old notes and stays bounded), and where task ids are found
// in requests (GetTask, tasks/get, a message continuing a task, push configs)
// and replies (A2A 1.0 and 0.3 shapes).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "a2a/internal.h"

static void notes_the_first_owner(void **state)
{
    (void)state;
    struct a2a_tasks *t = a2a_tasks_new();
    char owner[80];
    assert_int_equal(a2a_tasks_owner(t, "t1", owner, sizeof owner), 0);
    a2a_tasks_note(t, "t1", "alice");
    a2a_tasks_note(t, "t1", "bob"); /* does not take it over */
    assert_int_equal(a2a_tasks_owner(t, "t1", owner, sizeof owner), 1);
    assert_string_equal(owner, "alice");
    a2a_tasks_note(t, "", "bob");
    a2a_tasks_note(t, NULL, "bob");
    assert_int_equal(a2a_tasks_owner(t, "", owner, sizeof owner), 0);
    char small[3];
    assert_int_equal(a2a_tasks_owner(t, "t1", small, sizeof small), 1);
    assert_string_equal(small, "al");
    a2a_tasks_free(t);
}

static void stays_bounded_when_full(void **state)
{
    (void)state;
    struct a2a_tasks *t = a2a_tasks_new();
    char id[32], owner[80];
    for (int i = 0; i < 100000; i++) {
        snprintf(id, sizeof id, "task-%d", i);
        a2a_tasks_note(t, id, i % 2 ? "alice" : "bob");
    }
    /* the newest note is always there; old ones may have been overwritten */
    assert_int_equal(a2a_tasks_owner(t, "task-99999", owner, sizeof owner), 1);
    assert_string_equal(owner, "alice");
    a2a_tasks_free(t);
}

static const char *ref(const char *text)
{
    static char out[64];
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    const char *r = a2a_rpc_task_ref(j);
    snprintf(out, sizeof out, "%s", r ? r : "(none)");
    json_decref(j);
    return out;
}

static void finds_the_task_a_request_names(void **state)
{
    (void)state;
    assert_string_equal(ref("{\"method\":\"GetTask\",\"params\":{\"id\":\"a\"}}"), "a");
    assert_string_equal(ref("{\"method\":\"tasks/cancel\",\"params\":{\"id\":\"b\"}}"), "b");
    assert_string_equal(
        ref("{\"method\":\"tasks/pushNotificationConfig/get\",\"params\":{\"taskId\":\"c\"}}"),
        "c");
    assert_string_equal(
        ref("{\"method\":\"SendMessage\",\"params\":{\"message\":{\"taskId\":\"d\"}}}"), "d");
    assert_string_equal(ref("{\"method\":\"SendMessage\",\"params\":{\"message\":{}}}"), "(none)");
    assert_string_equal(ref("{\"method\":\"message/send\",\"params\":{\"id\":\"x\"}}"), "(none)");
    assert_string_equal(ref("{\"method\":\"GetTask\",\"params\":{\"id\":7}}"), "(none)");
    assert_string_equal(ref("{\"method\":\"GetTask\"}"), "(none)");
}

static size_t ids(const char *text, const char **out, json_t **keep)
{
    *keep = json_loads(text, 0, NULL);
    assert_non_null(*keep);
    return a2a_reply_task_ids(*keep, out, 8);
}

static void finds_the_tasks_a_reply_carries(void **state)
{
    (void)state;
    const char *v[8];
    json_t *j;
    assert_int_equal(ids("{\"task\":{\"id\":\"t10\"}}", v, &j), 1);
    assert_string_equal(v[0], "t10");
    json_decref(j);
    assert_int_equal(ids("{\"statusUpdate\":{\"taskId\":\"t11\"}}", v, &j), 1);
    assert_string_equal(v[0], "t11");
    json_decref(j);
    assert_int_equal(ids("{\"kind\":\"task\",\"id\":\"t03\"}", v, &j), 1);
    assert_string_equal(v[0], "t03");
    json_decref(j);
    assert_int_equal(ids("{\"kind\":\"status-update\",\"taskId\":\"u03\"}", v, &j), 1);
    assert_string_equal(v[0], "u03");
    json_decref(j);
    /* a message without a task, and a Message's own id, are not tasks */
    assert_int_equal(ids("{\"kind\":\"message\",\"messageId\":\"m\"}", v, &j), 0);
    json_decref(j);
    assert_int_equal(ids("{\"message\":{\"messageId\":\"m\"}}", v, &j), 0);
    json_decref(j);
    assert_int_equal(a2a_reply_task_ids(NULL, v, 8), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(notes_the_first_owner),
        cmocka_unit_test(stays_bounded_when_full),
        cmocka_unit_test(finds_the_task_a_request_names),
        cmocka_unit_test(finds_the_tasks_a_reply_carries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
