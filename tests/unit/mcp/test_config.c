// SPDX-License-Identifier: Apache-2.0
// mcp: section of the config: defaults, servers of both kinds, tool labels,
// and the line-numbered errors `portcullis check` prints for bad input.
#include "../config/helpers.h"

static void defaults_without_section(void **state)
{
    (void)state;
    struct config *c = load_ok("listen: 127.0.0.1:8080\n");
    assert_false(c->mcp.present);
    assert_string_equal(c->mcp.path, "/mcp");
    assert_string_equal(c->mcp.separator, "__");
    assert_int_equal(c->mcp.session_idle_ms, 30 * 60 * 1000);
    assert_int_equal(c->mcp.nallowed_hosts, 3);
    assert_string_equal(c->mcp.allowed_hosts[2], "[::1]");
    assert_int_equal(c->mcp.nservers, 0);
    config_unref(c);
}

static void servers_of_both_kinds(void **state)
{
    (void)state;
    struct config *c = load_ok("mcp:\n"
                               "  path: /tools\n"
                               "  separator: \".\"\n"
                               "  session_idle: 5m\n"
                               "  allowed_hosts: [gw.internal]\n"
                               "  servers:\n"
                               "    - name: everything\n"
                               "      command: [node, srv.js, stdio]\n"
                               "      env: {A: b}\n"
                               "      cwd: /tmp\n"
                               "      tools: {echo: [private_data], send: [exfiltration, x]}\n"
                               "      trust: untrusted\n"
                               "      restart_min: 100ms\n"
                               "      restart_max: 5s\n"
                               "      stop_grace: 500ms\n"
                               "    - name: web\n"
                               "      url: http://127.0.0.1:3001/mcp\n"
                               "      headers: {X-Api-Key: s3cret}\n"
                               "      identity_header: X-Portcullis-Identity\n"
                               "      timeout: 2s\n");
    assert_true(c->mcp.present);
    assert_string_equal(c->mcp.path, "/tools");
    assert_string_equal(c->mcp.separator, ".");
    assert_int_equal(c->mcp.session_idle_ms, 300000);
    assert_int_equal(c->mcp.nallowed_hosts, 1);
    assert_int_equal(c->mcp.nservers, 2);
    const struct config_mcp_server *e = config_find_mcp_server(c, "everything");
    assert_non_null(e);
    assert_int_equal(e->argc, 3);
    assert_string_equal(e->argv[0], "node");
    assert_null(e->argv[3]);
    assert_string_equal(e->env[0], "A=b");
    assert_null(e->env[1]);
    assert_string_equal(e->cwd, "/tmp");
    assert_int_equal(e->ntools, 2);
    assert_string_equal(e->tools[1].labels[0], "exfiltration");
    assert_true(e->untrusted);
    assert_int_equal(e->restart_min_ms, 100);
    assert_int_equal(e->restart_max_ms, 5000);
    assert_int_equal(e->stop_grace_ms, 500);
    const struct config_mcp_server *w = config_find_mcp_server(c, "web");
    assert_string_equal(w->url, "http://127.0.0.1:3001/mcp");
    assert_string_equal(w->headers[0].value, "s3cret");
    assert_string_equal(w->identity_header, "X-Portcullis-Identity");
    assert_int_equal(w->timeout_ms, 2000);
    assert_int_equal(w->restart_min_ms, 0); /* the transport's defaults */
    assert_int_equal(w->stop_grace_ms, 0);
    assert_false(w->untrusted);
    assert_null(config_find_mcp_server(c, "nope"));
    config_unref(c);
}

static void errors_name_the_line(void **state)
{
    (void)state;
    load_fails("mcp:\n"
               "  servers:\n"
               "    - name: a\n"
               "      url: ftp://x\n"
               "    - name: a\n"
               "      command: [x]\n"
               "    - name: b\n"
               "    - name: c__d\n"
               "      command: y\n"
               "      trust: maybe\n",
               "t.yaml:4: mcp.servers[0].url: expected an http:// or https:// URL, got 'ftp://x'\n"
               "t.yaml:5: mcp.servers[1]: server name 'a' is already used on line 3\n"
               "t.yaml:7: mcp.servers[2]: set exactly one of url (Streamable HTTP) and command "
               "(stdio)\n"
               "t.yaml:8: mcp.servers[3]: server name 'c__d' contains the separator '__'\n"
               "t.yaml:10: mcp.servers[3].trust: expected trusted or untrusted, got 'maybe'\n");
    load_fails("mcp: {path: v1, separator: \"\", servers: [{name: \"a b\", url: http://x, "
               "env: {A: b}}]}\n",
               "t.yaml:1: mcp.path: expected a path like /mcp, got 'v1'\n"
               "t.yaml:1: mcp.separator: expected 1-8 printable characters, got ''\n"
               "t.yaml:1: mcp.servers[0].name: 'a b' must be 1-64 letters, digits, '-', '_' or "
               "'.'\n"
               "t.yaml:1: mcp.servers[0].env: only for command servers\n");
    load_fails("mcp: {servers: [{name: a, url: http://x, stop_grace: 1s}, {name: b, command: [x], "
               "restart_min: 2s, restart_max: 1s}]}\n",
               "t.yaml:1: mcp.servers[0].stop_grace: only for command servers\n"
               "t.yaml:1: mcp.servers[1].restart_max: must not be below restart_min\n");
    load_fails("mcp:\n  servrs: []\n",
               "t.yaml:2: mcp: unknown key 'servrs' (did you mean 'servers'?)\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_without_section),
        cmocka_unit_test(servers_of_both_kinds),
        cmocka_unit_test(errors_name_the_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
