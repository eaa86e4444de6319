// SPDX-License-Identifier: Apache-2.0
// Unit tests for the stdio MCP transport against real child processes: a
// small python3 server written by the test (echoes JSON-RPC lines, answers in
// batches and huge lines, writes to stderr, crashes or closes its stdout on
// command) and sh scripts for stubborn and instantly dying servers. The
// gateway log (fd 2) goes to a file the tests read back.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "mcp/transport.h"

#define WATCHDOG_MS 15000

static const char fixture_py[] =
    "import sys, json, os, time\n"
    "sys.stderr.write('fixture ready\\n'); sys.stderr.flush()\n"
    "def out(o):\n"
    "    sys.stdout.write(json.dumps(o) + '\\n'); sys.stdout.flush()\n"
    "for line in sys.stdin:\n"
    "    m = json.loads(line)\n"
    "    meth = m.get('method'); i = m.get('id'); p = m.get('params') or {}\n"
    "    if meth == 'echo':\n"
    "        out({'jsonrpc': '2.0', 'id': i, 'result': p})\n"
    "    elif meth == 'big':\n"
    "        out({'jsonrpc': '2.0', 'id': i, 'result': {'s': 'x' * p['n']}})\n"
    "    elif meth == 'batch':\n"
    "        out([{'jsonrpc': '2.0', 'method': 'notifications/hello'},\n"
    "             {'jsonrpc': '2.0', 'id': i, 'result': {}}])\n"
    "    elif meth == 'noise':\n"
    "        sys.stdout.write('this is not json\\n'); out({'jsonrpc': '2.0', 'id': i, 'result': "
    "{}})\n"
    "    elif meth == 'env':\n"
    "        out({'jsonrpc': '2.0', 'id': i, 'result': {'v': os.environ.get('MCP_TEST_VAR'),\n"
    "             'cwd': os.getcwd(), 'home': os.environ.get('HOME')}})\n"
    "    elif meth == 'slow':\n"
    "        s = json.dumps({'jsonrpc': '2.0', 'id': i, 'result': {'ok': True}})\n"
    "        for ch in s:\n"
    "            sys.stdout.write(ch); sys.stdout.flush(); time.sleep(0.001)\n"
    "        sys.stdout.write('\\r\\n'); sys.stdout.flush()\n"
    "    elif meth == 'crash':\n"
    "        sys.stderr.write('crashing now\\n'); sys.stderr.flush()\n"
    "        out({'jsonrpc': '2.0', 'method': 'notifications/last_words'})\n"
    "        os._exit(3)\n"
    "    elif meth == 'close_stdout':\n"
    "        os.close(1); time.sleep(30)\n"
    "sys.stderr.write('stdin closed, bye\\n')\n";

struct fixture {
    uv_loop_t loop;
    char dir[64];
    char script[128];
    char logpath[128];
    int saved_fd;
    /* what the transport reported */
    struct mcp_upstream *u; /* open, closed by teardown if a test failed */
    uint32_t restart_min_ms;
    uint32_t stop_grace_ms;
    json_t *messages; /* array of parsed messages */
    char states[64];  /* 'R' / 'D' per on_state */
    char why[64][80];
    int nstates;
};

static struct fixture F;

static void ev_message(void *ctx, const char *json, size_t len)
{
    struct fixture *f = ctx;
    json_error_t err;
    json_t *v = json_loadb(json, len, 0, &err);
    if (!v)
        v = json_string("<not json>");
    json_array_append_new(f->messages, v);
}

static void ev_state(void *ctx, enum mcp_upstream_state st, const char *why)
{
    struct fixture *f = ctx;
    if (f->nstates < 63) {
        snprintf(f->why[f->nstates], sizeof(f->why[0]), "%s", why);
        f->states[f->nstates++] = st == MCP_UPSTREAM_READY ? 'R' : 'D';
        f->states[f->nstates] = '\0';
    }
}

static void ev_send_error(void *ctx, uint64_t cookie, const char *why)
{
    fail_msg("stdio reported a send error: %s", why);
}

static const struct mcp_upstream_events events = {
    .on_message = ev_message, .on_state = ev_state, .on_send_error = ev_send_error};

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    memset(&F, 0, sizeof(F));
    assert_int_equal(uv_loop_init(&F.loop), 0);
    snprintf(F.dir, sizeof(F.dir), "/tmp/pc-mcp-stdio-XXXXXX");
    assert_non_null(mkdtemp(F.dir));
    snprintf(F.script, sizeof(F.script), "%s/server.py", F.dir);
    FILE *fp = fopen(F.script, "w");
    assert_non_null(fp);
    fputs(fixture_py, fp);
    fclose(fp);
    snprintf(F.logpath, sizeof(F.logpath), "%s/log", F.dir);
    int fd = open(F.logpath, O_CREAT | O_WRONLY | O_APPEND, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    F.saved_fd = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    F.messages = json_array();
    log_set_level(LOG_INFO);
    return 0;
}

static char *log_text(void)
{
    FILE *fp = fopen(F.logpath, "r");
    if (!fp)
        return strdup("");
    buf_t b;
    buf_init(&b, 256u << 20);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        if (buf_append(&b, chunk, n))
            break;
    fclose(fp);
    char *s = b.data ? b.data : strdup("");
    return s;
}

/* Closes the loop after every handle has gone; the log goes back to the
 * real stderr (and is shown, so a failing test explains itself). */
static int teardown(void **state)
{
    if (F.u)
        mcp_upstream_close(F.u);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&F.loop), 0);
    fflush(stderr);
    dup2(F.saved_fd, STDERR_FILENO);
    close(F.saved_fd);
    char *log = log_text();
    if (getenv("MCP_TEST_SHOW_LOG") || strstr(log, "ERROR: "))
        fputs(log, stderr); /* cmocka's failure messages went to the log file too */
    free(log);
    unlink(F.logpath);
    unlink(F.script);
    rmdir(F.dir);
    json_decref(F.messages);
    return 0;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/* Every few ms: stop uv_run so run_until looks at its condition again. */
static void on_tick(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Runs the loop until cond holds; fails after WATCHDOG_MS. */
static void run_until(int (*cond)(void *), void *arg, const char *what)
{
    uv_timer_t *tick = malloc(sizeof(*tick));
    uv_timer_init(&F.loop, tick);
    uv_timer_start(tick, on_tick, 5, 5);
    uint64_t deadline = uv_now(&F.loop) + WATCHDOG_MS;
    while (!cond(arg) && uv_now(&F.loop) < deadline)
        uv_run(&F.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)tick, free_handle);
    if (!cond(arg))
        fail_msg("timed out waiting for %s (states %s)", what, F.states);
}

static int have_messages(void *n)
{
    return json_array_size(F.messages) >= (size_t)(intptr_t)n;
}

static int have_states(void *n)
{
    return F.nstates >= (int)(intptr_t)n;
}

struct log_wait {
    const char *msg;
    int count;
};

/* Log lines whose "msg" is msg, parsed (caller decrefs). */
static json_t *log_lines(const char *msg)
{
    json_t *out = json_array();
    char *text = log_text();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *v = json_loads(line, 0, NULL);
        if (!v)
            continue;
        const char *m = json_string_value(json_object_get(v, "msg"));
        if (m && strcmp(m, msg) == 0)
            json_array_append(out, v);
        json_decref(v);
    }
    free(text);
    return out;
}

static int have_log(void *arg)
{
    struct log_wait *w = arg;
    json_t *l = log_lines(w->msg);
    int ok = (int)json_array_size(l) >= w->count;
    json_decref(l);
    return ok;
}

static struct mcp_upstream *open_fixture(const char *const *argv, const char *const *env,
                                         const char *cwd)
{
    struct mcp_upstream_spec spec = {
        .name = "fixture",
        .argv = argv,
        .env = env,
        .cwd = cwd,
        .restart_min_ms = F.restart_min_ms ? F.restart_min_ms : 50,
        .restart_max_ms = 400,
        .stop_grace_ms = F.stop_grace_ms,
    };
    F.u = mcp_upstream_open(&F.loop, &spec, &events, &F);
    return F.u;
}

static void close_up(struct mcp_upstream *u)
{
    F.u = NULL;
    mcp_upstream_close(u);
}

static struct mcp_upstream *open_python(void)
{
    const char *argv[] = {"python3", "-u", F.script, NULL};
    struct mcp_upstream *u = open_fixture(argv, NULL, NULL);
    assert_non_null(u);
    run_until(have_states, (void *)1, "READY");
    assert_string_equal(F.states, "R");
    return u;
}

static void send_str(struct mcp_upstream *u, const char *s)
{
    struct mcp_send_opts o = {.cookie = 1, .expects_response = 1};
    assert_int_equal(mcp_upstream_send(u, s, strlen(s), &o), 0);
}

static json_t *message(size_t i)
{
    json_t *m = json_array_get(F.messages, i);
    assert_non_null(m);
    return m;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_echo_round_trip_and_started_log_line(void **state)
{
    struct mcp_upstream *u = open_python();
    int pid = mcp_upstream_pid(u);
    assert_true(pid > 0);

    /* pretty-printed input still goes out as one line */
    send_str(u,
             "{\"jsonrpc\":\"2.0\",\n \"id\":7,\"method\":\"echo\",\"params\":{\"a\":\"b\\nc\"}}");
    run_until(have_messages, (void *)1, "the echo");
    json_t *m = message(0);
    assert_int_equal(json_integer_value(json_object_get(m, "id")), 7);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "result"), "a")),
                        "b\nc");

    json_t *started = log_lines("mcp server started");
    assert_int_equal(json_array_size(started), 1);
    json_t *l = json_array_get(started, 0);
    assert_string_equal(json_string_value(json_object_get(l, "server")), "fixture");
    assert_int_equal(json_integer_value(json_object_get(l, "pid")), pid);
    json_decref(started);

    struct log_wait w = {"mcp server stderr", 1};
    run_until(have_log, &w, "the stderr line");
    json_t *err = log_lines("mcp server stderr");
    l = json_array_get(err, 0);
    assert_string_equal(json_string_value(json_object_get(l, "server")), "fixture");
    assert_string_equal(json_string_value(json_object_get(l, "line")), "fixture ready");
    json_decref(err);

    close_up(u);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    /* closing stdin ended it: it said goodbye, and no state change was reported */
    err = log_lines("mcp server stderr");
    assert_int_equal(json_array_size(err), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(err, 1), "line")),
                        "stdin closed, bye");
    json_decref(err);
    assert_string_equal(F.states, "R");
    assert_int_equal(kill(pid, 0), -1);
}

static void test_large_batch_and_split_messages(void **state)
{
    struct mcp_upstream *u = open_python();
    send_str(u, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"big\",\"params\":{\"n\":5000000}}");
    send_str(u, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"batch\"}");
    send_str(u, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"slow\"}");
    send_str(u, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"noise\"}");
    run_until(have_messages, (void *)5, "five messages");
    assert_int_equal(json_array_size(F.messages), 5);
    const char *s = json_string_value(json_object_get(json_object_get(message(0), "result"), "s"));
    assert_non_null(s);
    assert_int_equal(strlen(s), 5000000);
    /* the batch arrives element by element, in order */
    assert_string_equal(json_string_value(json_object_get(message(1), "method")),
                        "notifications/hello");
    assert_int_equal(json_integer_value(json_object_get(message(2), "id")), 2);
    assert_int_equal(json_integer_value(json_object_get(message(3), "id")), 3);
    assert_true(json_is_true(json_object_get(json_object_get(message(3), "result"), "ok")));
    assert_int_equal(json_integer_value(json_object_get(message(4), "id")), 4);
    json_t *noise = log_lines("mcp server wrote a line that is not JSON-RPC");
    assert_int_equal(json_array_size(noise), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(noise, 0), "line")),
                        "this is not json");
    json_decref(noise);
    close_up(u);
}

static void test_large_messages_to_the_server_arrive_whole(void **state)
{
    struct mcp_upstream *u = open_python();
    /* several megabytes queued at once: more than a pipe holds */
    size_t big = 3u << 20;
    char *msg = malloc(big + 100);
    assert_non_null(msg);
    for (int id = 1; id <= 3; id++) {
        int n =
            snprintf(msg, 100,
                     "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"echo\",\"params\":{\"s\":\"", id);
        memset(msg + n, 'a' + id, big);
        memcpy(msg + n + big, "\"}}", 4);
        send_str(u, msg);
    }
    free(msg);
    run_until(have_messages, (void *)3, "three echoes");
    for (size_t i = 0; i < 3; i++) {
        json_t *m = message(i);
        assert_int_equal(json_integer_value(json_object_get(m, "id")), (json_int_t)i + 1);
        const char *s = json_string_value(json_object_get(json_object_get(m, "result"), "s"));
        assert_non_null(s);
        assert_int_equal(strlen(s), big);
        assert_int_equal(s[0], 'a' + (int)i + 1);
        assert_int_equal(s[big - 1], 'a' + (int)i + 1);
    }
    close_up(u);
}

static void test_server_not_reading_stdin_is_restarted(void **state)
{
    const char *argv[] = {"sh", "-c", "exec sleep 60", NULL};
    struct mcp_upstream *u = open_fixture(argv, NULL, NULL);
    assert_non_null(u);
    run_until(have_states, (void *)1, "READY");
    size_t len = 4u << 20;
    char *msg = malloc(len + 1);
    assert_non_null(msg);
    memset(msg, ' ', len);
    msg[0] = '{';
    msg[len - 1] = '}';
    msg[len] = '\0';
    struct mcp_send_opts o = {0};
    int sent = 0;
    while (sent < 40 && mcp_upstream_send(u, msg, len, &o) == 0)
        sent++;
    free(msg);
    /* 64 MiB queued is the limit: the send past it fails, nothing is reported inside it */
    assert_true(sent >= 15 && sent < 17);
    assert_string_equal(F.states, "R");
    run_until(have_states, (void *)3, "DOWN and READY");
    assert_string_equal(F.states, "RDR");
    assert_string_equal(F.why[1], "server is not reading its stdin");
    close_up(u);
}

static void test_crash_reports_down_then_restarts(void **state)
{
    struct mcp_upstream *u = open_python();
    int pid1 = mcp_upstream_pid(u);
    send_str(u, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"crash\"}");
    run_until(have_states, (void *)3, "DOWN and READY");
    assert_string_equal(F.states, "RDR");
    assert_string_equal(F.why[1], "server exited");
    /* what it wrote before dying was still delivered */
    assert_int_equal(json_array_size(F.messages), 1);
    assert_string_equal(json_string_value(json_object_get(message(0), "method")),
                        "notifications/last_words");
    int pid2 = mcp_upstream_pid(u);
    assert_true(pid2 > 0);
    assert_int_not_equal(pid1, pid2);
    json_t *started = log_lines("mcp server started");
    assert_int_equal(json_array_size(started), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(started, 1), "pid")), pid2);
    json_decref(started);
    json_t *exited = log_lines("mcp server exited");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(exited, 0), "exit_status")),
                     3);
    json_decref(exited);

    send_str(u, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\",\"params\":{}}");
    run_until(have_messages, (void *)2, "the echo after the restart");
    assert_int_equal(json_integer_value(json_object_get(message(1), "id")), 2);
    close_up(u);
}

static void test_killed_server_restarts(void **state)
{
    struct mcp_upstream *u = open_python();
    int pid1 = mcp_upstream_pid(u);
    kill(pid1, SIGKILL);
    run_until(have_states, (void *)3, "DOWN and READY");
    assert_string_equal(F.states, "RDR");
    json_t *exited = log_lines("mcp server exited");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(exited, 0), "signal")),
                     SIGKILL);
    json_decref(exited);
    send_str(u, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"echo\",\"params\":{}}");
    run_until(have_messages, (void *)1, "the echo after the restart");
    close_up(u);
}

static void test_closed_stdout_is_down_and_the_process_is_stopped(void **state)
{
    struct mcp_upstream *u = open_python();
    int pid1 = mcp_upstream_pid(u);
    send_str(u, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"close_stdout\"}");
    run_until(have_states, (void *)3, "DOWN and READY");
    assert_string_equal(F.states, "RDR");
    assert_string_equal(F.why[1], "server closed its stdout");
    /* the old process ignored stdin's end (it sleeps): SIGTERM ended it */
    struct log_wait w = {"mcp server did not exit, sending SIGTERM", 1};
    run_until(have_log, &w, "the SIGTERM");
    close_up(u);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    assert_int_equal(kill(pid1, 0), -1);
}

static void test_oversized_message_restarts_the_server(void **state)
{
    struct mcp_upstream *u = open_python();
    send_str(u, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"big\",\"params\":{\"n\":17000000}}");
    run_until(have_states, (void *)3, "DOWN and READY");
    assert_string_equal(F.states, "RDR");
    assert_string_equal(F.why[1], "server sent a message over the size limit");
    assert_int_equal(json_array_size(F.messages), 0);
    json_t *l = log_lines("mcp server sent a message over the size limit, restarting it");
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    close_up(u);
}

static void test_env_cwd_and_path_lookup(void **state)
{
    const char *argv[] = {"python3", F.script, NULL};
    const char *env[] = {"MCP_TEST_VAR=hello there", "HOME=/nonexistent-home", NULL};
    struct mcp_upstream *u = open_fixture(argv, env, F.dir);
    assert_non_null(u);
    run_until(have_states, (void *)1, "READY");
    send_str(u, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"env\"}");
    run_until(have_messages, (void *)1, "the env answer");
    json_t *r = json_object_get(message(0), "result");
    assert_string_equal(json_string_value(json_object_get(r, "v")), "hello there");
    assert_string_equal(json_string_value(json_object_get(r, "home")), "/nonexistent-home");
    char real[PATH_MAX];
    assert_non_null(realpath(F.dir, real));
    assert_string_equal(json_string_value(json_object_get(r, "cwd")), real);
    close_up(u);
}

static void test_missing_command_is_refused_at_open(void **state)
{
    const char *argv[] = {"no-such-mcp-server-binary", NULL};
    assert_null(open_fixture(argv, NULL, NULL));
    json_t *l = log_lines("mcp server could not be started");
    assert_int_equal(json_array_size(l), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "server")),
                        "fixture");
    json_decref(l);
    const char *bad_env[] = {"NOEQUALS", NULL};
    const char *argv2[] = {"python3", F.script, NULL};
    assert_null(open_fixture(argv2, bad_env, NULL));
    assert_int_equal(F.nstates, 0);
}

static void test_restart_backoff_doubles_up_to_the_ceiling(void **state)
{
    const char *argv[] = {"sh", "-c", "exit 1", NULL};
    struct mcp_upstream *u = open_fixture(argv, NULL, NULL);
    assert_non_null(u);
    struct log_wait w = {"mcp server restart scheduled", 6};
    run_until(have_log, &w, "six restarts");
    /* while down, nothing can be sent */
    close_up(u);
    json_t *l = log_lines("mcp server restart scheduled");
    long want[] = {50, 100, 200, 400, 400, 400};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(l, i), "delay_ms")),
                         want[i]);
    json_decref(l);
}

static void test_send_while_down_fails_without_callback(void **state)
{
    const char *argv[] = {"sh", "-c", "read x; exit 0", NULL};
    F.restart_min_ms = 60000; /* stays down for the whole test */
    struct mcp_upstream *u = open_fixture(argv, NULL, NULL);
    assert_non_null(u);
    run_until(have_states, (void *)1, "READY");
    send_str(u, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}");
    run_until(have_states, (void *)2, "DOWN");
    assert_string_equal(F.states, "RD");
    struct mcp_send_opts o = {0};
    assert_int_equal(mcp_upstream_send(u, "{}", 2, &o), -1);
    assert_int_equal(mcp_upstream_pid(u), 0);
    close_up(u);
    assert_string_equal(F.states, "RD");
}

static void test_close_kills_a_server_that_ignores_stdin_and_sigterm(void **state)
{
    const char *argv[] = {"sh", "-c", "trap '' TERM; while :; do sleep 0.05; done", NULL};
    struct mcp_upstream *u = open_fixture(argv, NULL, NULL);
    assert_non_null(u);
    run_until(have_states, (void *)1, "READY");
    int pid = mcp_upstream_pid(u);
    assert_true(pid > 0);
    close_up(u);
    uv_run(&F.loop, UV_RUN_DEFAULT); /* returns once the child is gone */
    assert_int_equal(kill(pid, 0), -1);
    json_t *l = log_lines("mcp server did not exit, sending SIGKILL");
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    json_t *exited = log_lines("mcp server exited");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(exited, 0), "signal")),
                     SIGKILL);
    json_decref(exited);
}

static void test_stop_grace_is_the_configured_one(void **state)
{
    const char *argv[] = {"sh", "-c", "trap '' TERM; while :; do sleep 0.05; done", NULL};
    F.stop_grace_ms = 2600; /* longer than the 2 s default, so only the setting explains it */
    struct mcp_upstream *u = open_fixture(argv, NULL, NULL);
    assert_non_null(u);
    run_until(have_states, (void *)1, "READY");
    close_up(u);
    struct log_wait term = {"mcp server did not exit, sending SIGTERM", 1};
    run_until(have_log, &term, "the SIGTERM");
    uv_update_time(&F.loop);
    uint64_t t0 = uv_now(&F.loop);
    struct log_wait kill9 = {"mcp server did not exit, sending SIGKILL", 1};
    run_until(have_log, &kill9, "the SIGKILL");
    uv_update_time(&F.loop);
    assert_true(uv_now(&F.loop) - t0 >= 2500); /* a lower bound only: never flaky when slow */
    uv_run(&F.loop, UV_RUN_DEFAULT);
}

static struct mcp_upstream *close_target;

static void close_from_callback(void *ctx, const char *json, size_t len)
{
    ev_message(ctx, json, len);
    F.u = NULL;
    mcp_upstream_close(close_target);
}

static void test_close_from_inside_on_message(void **state)
{
    const char *argv[] = {"python3", F.script, NULL};
    struct mcp_upstream_events ev = events;
    ev.on_message = close_from_callback;
    struct mcp_upstream_spec spec = {.name = "fixture", .argv = argv};
    close_target = mcp_upstream_open(&F.loop, &spec, &ev, &F);
    assert_non_null(close_target);
    F.u = close_target;
    /* the batch's second message must not arrive: the first closed us */
    send_str(close_target, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"batch\"}");
    uv_run(&F.loop, UV_RUN_DEFAULT);
    assert_int_equal(json_array_size(F.messages), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo_round_trip_and_started_log_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_batch_and_split_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_messages_to_the_server_arrive_whole, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server_not_reading_stdin_is_restarted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_crash_reports_down_then_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_server_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_stdout_is_down_and_the_process_is_stopped,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_message_restarts_the_server, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_env_cwd_and_path_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_command_is_refused_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_backoff_doubles_up_to_the_ceiling, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_send_while_down_fails_without_callback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stop_grace_is_the_configured_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_kills_a_server_that_ignores_stdin_and_sigterm,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_inside_on_message, setup, teardown),
    };
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
