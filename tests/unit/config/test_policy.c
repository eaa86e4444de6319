// SPDX-License-Identifier: Apache-2.0
// policy: section: files and globs resolved against the config file, the
// Cedar set loaded with the snapshot, file:line:col errors through the
// config error list, and entities built from agents: and models:.
#include "helpers.h"

#include <sys/stat.h>
#include <unistd.h>

#include "policy/policy.h"

static char dir[64];

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    strcpy(dir, "/tmp/pcl-policy-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    char sub[128];
    snprintf(sub, sizeof sub, "%s/p", dir);
    return mkdir(sub, 0700);
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *const BASE =
    "providers: [{name: m, kind: mock}]\n"
    "models: [{name: mock-1, targets: [m]}, {name: mock-2, targets: [m]}]\n"
    "agents:\n"
    "  - id: acme\n"
    "    children:\n"
    "      - id: research\n"
    "        children: [{id: researcher}]\n"
    "      - id: sales\n";

static struct config *load(const char *policy_yaml, struct config_errors *errs)
{
    char name[128], yaml[2048];
    snprintf(name, sizeof name, "%s/t.yaml", dir);
    snprintf(yaml, sizeof yaml, "%s%s", BASE, policy_yaml);
    return config_load_string(name, yaml, strlen(yaml), errs);
}

static int allowed(const struct config *c, const char *agent, const char *model, char *ids,
                   size_t idlen)
{
    struct policy_request req = {
        .principal = policy_uid_make("Agent", agent),
        .action = policy_uid_make("Action", "chat"),
        .resource = policy_uid_make("Model", model),
        .context_json = "{\"chain\": [], \"depth\": 0}",
        .context_json_len = strlen("{\"chain\": [], \"depth\": 0}"),
    };
    struct policy_decision d;
    int rc = policy_decide(c->policy.set, c->policy.entities, &req, &d);
    assert_int_equal(rc, 0);
    int allow = d.allow;
    if (ids != NULL) {
        ids[0] = '\0';
        for (size_t i = 0; i < d.nreasons; i++)
            snprintf(ids + strlen(ids), idlen - strlen(ids), "%s%s", i ? "," : "", d.reasons[i]);
    }
    policy_decision_free(&d);
    return allow;
}

static void test_no_policy_section_means_no_set(void **state)
{
    struct config_errors errs;
    struct config *c = load("", &errs);
    assert_non_null(c);
    assert_int_equal(c->policy.present, 0);
    assert_null(c->policy.set);
    config_unref(c);
}

static void test_glob_loads_files_in_order_with_agent_parents(void **state)
{
    write_file("p/a.cedar", "@id(\"team\")\npermit (principal in Agent::\"research\", "
                            "action == Action::\"chat\", resource);\n");
    write_file("p/b.cedar", "@id(\"no-2\")\nforbid (principal, action, "
                            "resource == Model::\"mock-2\");\n");
    struct config_errors errs;
    struct config *c = load("policy: {files: [p/*.cedar], default: deny}\n", &errs);
    assert_non_null(c);
    assert_int_equal(c->policy.present, 1);
    assert_int_equal(c->policy.default_allow, 0);
    assert_int_equal(c->policy.nfiles, 2);
    assert_non_null(strstr(c->policy.files[0], "/p/a.cedar"));
    assert_non_null(strstr(c->policy.files[1], "/p/b.cedar"));
    assert_int_equal(policy_set_count(c->policy.set), 2);

    char ids[128];
    assert_true(allowed(c, "researcher", "mock-1", ids, sizeof ids));
    assert_string_equal(ids, "team");
    assert_false(allowed(c, "sales", "mock-1", ids, sizeof ids));
    assert_string_equal(ids, "");
    assert_false(allowed(c, "anonymous", "mock-1", NULL, 0));
    assert_false(allowed(c, "researcher", "mock-2", ids, sizeof ids));
    assert_string_equal(ids, "no-2");
    config_unref(c);
}

static void test_broken_policy_is_a_config_error_with_column(void **state)
{
    write_file("bad.cedar", "permit (principal, action, resource);\n"
                            "forbid (principal, action ==, resource);\n");
    struct config_errors errs;
    struct config *c = load("policy: {files: bad.cedar}\n", &errs);
    assert_null(c);
    char *text = errors_text(&errs);
    char want[128];
    snprintf(want, sizeof want, "%s/bad.cedar:2:", dir);
    assert_non_null(strstr(text, want));
    assert_int_equal(errs.items[0].line, 2);
    assert_true(errs.items[0].col > 1);
    free(text);
    config_errors_free(&errs);
}

static void test_policy_section_errors(void **state)
{
    struct config_errors errs;
    struct config *c = load("policy: {files: [nowhere.cedar]}\n", &errs);
    assert_null(c);
    char *text = errors_text(&errs);
    assert_non_null(strstr(text, "policy.files[0]: no policy file matches"));
    free(text);
    config_errors_free(&errs);

    write_file("ok.cedar", "permit (principal, action, resource);\n");
    c = load("policy: {files: ok.cedar, default: maybe}\n", &errs);
    assert_null(c);
    text = errors_text(&errs);
    assert_non_null(strstr(text, "policy.default: expected deny or allow, got 'maybe'"));
    free(text);
    config_errors_free(&errs);

    /* no files: an empty set, so default: deny refuses everything */
    c = load("policy: {default: deny}\n", &errs);
    assert_non_null(c);
    assert_non_null(c->policy.set);
    assert_int_equal(policy_set_count(c->policy.set), 0);
    assert_false(allowed(c, "researcher", "mock-1", NULL, 0));
    config_unref(c);

    c = load("policy: {files: ok.cedar, default: allow}\n", &errs);
    assert_non_null(c);
    assert_int_equal(c->policy.default_allow, 1);
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_policy_section_means_no_set),
        cmocka_unit_test(test_glob_loads_files_in_order_with_agent_parents),
        cmocka_unit_test(test_broken_policy_is_a_config_error_with_column),
        cmocka_unit_test(test_policy_section_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
