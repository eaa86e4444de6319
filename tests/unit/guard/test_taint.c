// SPDX-License-Identifier: Apache-2.0
// Unit tests for guard taint: the trifecta refuses an exfiltration tool only when the
// session has both read private data and read untrusted content, names the three legs,
// and a fresh session (or a tool without the label) is not refused.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "guard/guard.h"

static void fresh_session_may_exfiltrate(void **state)
{
    (void)state;
    struct guard_taint t;
    guard_taint_init(&t);
    char reason[256] = "x";
    assert_false(
        guard_trifecta(&t, "mail.send_email", GUARD_LABEL_EXFILTRATION, reason, sizeof(reason)));
    assert_string_equal(reason, "");
}

static void two_legs_are_not_enough(void **state)
{
    (void)state;
    struct guard_taint t;
    guard_taint_init(&t);
    guard_taint_note(&t, "files.read_file", GUARD_LABEL_PRIVATE_DATA, false, NULL);
    assert_int_equal(t.flags, GUARD_TAINT_PRIVATE_DATA);
    assert_false(guard_trifecta(&t, "mail.send_email", GUARD_LABEL_EXFILTRATION, NULL, 0));

    guard_taint_init(&t);
    guard_taint_note(&t, "web.fetch", 0, true, NULL);
    assert_int_equal(t.flags, GUARD_TAINT_UNTRUSTED);
    assert_false(guard_trifecta(&t, "mail.send_email", GUARD_LABEL_EXFILTRATION, NULL, 0));
}

static void all_three_legs_refuse_and_are_named(void **state)
{
    (void)state;
    struct guard_taint t;
    guard_taint_init(&t);
    guard_taint_note(&t, "files.read_file", GUARD_LABEL_PRIVATE_DATA, false, NULL);
    guard_taint_note(&t, "files.list", GUARD_LABEL_PRIVATE_DATA, false, NULL);
    struct guard_result hit = {.injection = true, .score = 0.9, .nfindings = 1};
    hit.findings[0] = (struct guard_finding){"override.ignore_previous", "instruction_override",
                                             GUARD_HIGH, 0, 10};
    guard_taint_note(&t, "docs.get", 0, false, &hit); /* a scanner hit marks untrusted */
    char reason[512];
    /* a tool without the exfiltration label is still allowed */
    assert_false(guard_trifecta(&t, "calc.add", 0, reason, sizeof(reason)));
    assert_true(guard_trifecta(&t, "mail.send_email",
                               GUARD_LABEL_EXFILTRATION | GUARD_LABEL_PRIVATE_DATA, reason,
                               sizeof(reason)));
    assert_string_equal(reason,
                        "lethal trifecta: this session read private data (files.read_file), "
                        "read untrusted content (docs.get (guard: "
                        "override.ignore_previous)), and mail.send_email can send data "
                        "out (exfiltration)");
    /* a clean scan of a trusted tool adds nothing */
    struct guard_taint u;
    guard_taint_init(&u);
    struct guard_result clean = {0};
    guard_taint_note(&u, "docs.get", 0, false, &clean);
    assert_int_equal(u.flags, 0);
}

static void taint_carries_over_a_delegation(void **state)
{
    (void)state;
    struct guard_taint parent, child;
    guard_taint_init(&parent);
    guard_taint_init(&child);
    guard_taint_note(&parent, "web.fetch", 0, true, NULL);
    guard_taint_note(&child, "crm.lookup", GUARD_LABEL_PRIVATE_DATA, false, NULL);
    guard_taint_merge(&child, &parent);
    char reason[512];
    assert_true(
        guard_trifecta(&child, "slack.post", GUARD_LABEL_EXFILTRATION, reason, sizeof(reason)));
    assert_non_null(strstr(reason, "(crm.lookup)"));
    assert_non_null(strstr(reason, "(web.fetch)"));
    /* a reason buffer too small is cut, never overrun */
    char tiny[8];
    assert_true(guard_trifecta(&child, "slack.post", GUARD_LABEL_EXFILTRATION, tiny, sizeof(tiny)));
    assert_string_equal(tiny, "lethal ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fresh_session_may_exfiltrate),
        cmocka_unit_test(two_legs_are_not_enough),
        cmocka_unit_test(all_three_legs_refuse_and_are_named),
        cmocka_unit_test(taint_carries_over_a_delegation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
