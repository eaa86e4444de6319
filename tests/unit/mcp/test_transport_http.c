// SPDX-License-Identifier: Apache-2.0
// Unit tests for the Streamable HTTP MCP transport against a real HTTP server
// the test starts (data/http_server.py, python3 standard library): session id
// and protocol version headers, JSON / batch / SSE answers, server requests
// before the response, errors reported per request, the GET stream and its
// resumption, a lost session, DELETE on close. The gateway log goes to a file.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "mcp/transport.h"
#include "upstream/upstream.h"

#define WATCHDOG_MS 15000
#define SECRET "s3cr3t-api-key-value"

struct fixture {
    uv_loop_t loop;
    char dir[64];
    char portfile[128], srvlog[128], logpath[128];
    int saved_fd;
    pid_t server;
    int port;
    char url[128];
    struct mcp_upstream *u;
    json_t *messages;
    json_t *cookies; /* the cookie each message came with */
    char states[64];
    int nstates;
    int nerrors;
    uint64_t err_cookie[16];
    char err_why[16][128];
};

static struct fixture F;

static void ev_message(void *ctx, const char *json, size_t len, uint64_t cookie)
{
    json_t *v = json_loadb(json, len, 0, NULL);
    json_array_append_new(F.messages, v ? v : json_string("<not json>"));
    json_array_append_new(F.cookies, json_integer((json_int_t)cookie));
}

static void ev_state(void *ctx, enum mcp_upstream_state st, const char *why)
{
    if (F.nstates < 63) {
        F.states[F.nstates++] = st == MCP_UPSTREAM_READY ? 'R' : 'D';
        F.states[F.nstates] = '\0';
    }
}

static void ev_send_error(void *ctx, uint64_t cookie, const char *why)
{
    if (F.nerrors < 16) {
        F.err_cookie[F.nerrors] = cookie;
        snprintf(F.err_why[F.nerrors], sizeof(F.err_why[0]), "%s", why);
    }
    F.nerrors++;
}

static const struct mcp_upstream_events events = {
    .on_message_via = ev_message, .on_state = ev_state, .on_send_error = ev_send_error};

static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return strdup("");
    buf_t b;
    buf_init(&b, 64u << 20);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        if (buf_append(&b, chunk, n))
            break;
    fclose(fp);
    return b.data ? b.data : strdup("");
}

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    memset(&F, 0, sizeof(F));
    assert_int_equal(uv_loop_init(&F.loop), 0);
    snprintf(F.dir, sizeof(F.dir), "/tmp/pc-mcp-http-XXXXXX");
    assert_non_null(mkdtemp(F.dir));
    snprintf(F.portfile, sizeof(F.portfile), "%s/port", F.dir);
    snprintf(F.srvlog, sizeof(F.srvlog), "%s/requests", F.dir);
    snprintf(F.logpath, sizeof(F.logpath), "%s/log", F.dir);
    int fd = open(F.logpath, O_CREAT | O_WRONLY | O_APPEND, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    F.saved_fd = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    F.messages = json_array();
    F.cookies = json_array();
    log_set_level(LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    if (F.u)
        mcp_upstream_close(F.u);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&F.loop), 0);
    if (F.server > 0) {
        kill(F.server, SIGTERM);
        waitpid(F.server, NULL, 0);
    }
    fflush(stderr);
    dup2(F.saved_fd, STDERR_FILENO);
    close(F.saved_fd);
    char *log = read_file(F.logpath);
    if (getenv("MCP_TEST_SHOW_LOG") || strstr(log, "ERROR: "))
        fputs(log, stderr); /* cmocka's failure messages went to the log file too */
    free(log);
    unlink(F.logpath);
    unlink(F.srvlog);
    unlink(F.portfile);
    rmdir(F.dir);
    json_decref(F.messages);
    json_decref(F.cookies);
    return 0;
}

static void start_server_on(const char *flag, const char *flag2)
{
    F.server = fork();
    assert_true(F.server >= 0);
    if (F.server == 0) {
        execlp("python3", "python3", TEST_DATA_DIR "/http_server.py", F.portfile, F.srvlog, flag,
               flag2, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        char *p = read_file(F.portfile);
        F.port = atoi(p);
        free(p);
        if (F.port > 0)
            break;
        usleep(10000);
    }
    assert_true(F.port > 0);
    snprintf(F.url, sizeof(F.url), "http://127.0.0.1:%d/mcp", F.port);
}

static void start_server(const char *flag)
{
    start_server_on(flag, NULL);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void on_tick(uv_timer_t *t)
{
    uv_stop(t->loop);
}

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
        fail_msg("timed out waiting for %s (states %s, %zu messages, %d errors)", what, F.states,
                 json_array_size(F.messages), F.nerrors);
}

static void run_ms(unsigned ms)
{
    uint64_t until = uv_now(&F.loop) + ms;
    uv_timer_t *tick = malloc(sizeof(*tick));
    uv_timer_init(&F.loop, tick);
    uv_timer_start(tick, on_tick, 5, 5);
    while (uv_now(&F.loop) < until)
        uv_run(&F.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)tick, free_handle);
}

static int have_messages(void *n)
{
    return json_array_size(F.messages) >= (size_t)(intptr_t)n;
}

static int have_states(void *n)
{
    return F.nstates >= (int)(intptr_t)n;
}

static int have_errors(void *n)
{
    return F.nerrors >= (int)(intptr_t)n;
}

/* Requests the server saw (parsed lines of its log), optionally only one
 * HTTP method. Caller decrefs. */
static json_t *server_saw(const char *http)
{
    json_t *out = json_array();
    char *text = read_file(F.srvlog);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *v = json_loads(line, 0, NULL);
        if (v && (!http || strcmp(json_string_value(json_object_get(v, "http")), http) == 0))
            json_array_append(out, v);
        json_decref(v);
    }
    free(text);
    return out;
}

static int server_saw_n(void *arg)
{
    const char **want = arg; /* {http method, count as text} */
    json_t *l = server_saw(want[0]);
    int ok = (int)json_array_size(l) >= atoi(want[1]);
    json_decref(l);
    return ok;
}

static struct mcp_upstream *open_http(const char *url, uint32_t timeout_ms)
{
    static const struct mcp_header headers[] = {{"X-Api-Key", SECRET}};
    struct mcp_upstream_spec spec = {
        .name = "web",
        .url = url,
        .headers = headers,
        .nheaders = 1,
        .request_timeout_ms = timeout_ms,
    };
    F.u = mcp_upstream_open(&F.loop, &spec, &events, &F);
    assert_non_null(F.u);
    run_until(have_states, (void *)1, "READY");
    assert_string_equal(F.states, "R");
    return F.u;
}

static void send_msg(const char *json, uint64_t cookie, int expects)
{
    static const struct mcp_header per[] = {{"X-Per-Msg", "token-1"}};
    struct mcp_send_opts o = {
        .cookie = cookie, .expects_response = expects, .headers = per, .nheaders = 1};
    assert_int_equal(mcp_upstream_send(F.u, json, strlen(json), &o), 0);
}

/* The cookie message i came with (0: not on a request's answer stream). */
static json_int_t cookie_of(size_t i)
{
    json_t *c = json_array_get(F.cookies, i);
    assert_non_null(c);
    return json_integer_value(c);
}

static json_t *message(size_t i)
{
    json_t *m = json_array_get(F.messages, i);
    assert_non_null(m);
    return m;
}

static const char *mstr(json_t *o, const char *path1, const char *path2)
{
    json_t *v = json_object_get(o, path1);
    if (path2)
        v = json_object_get(v, path2);
    return json_string_value(v);
}

/* initialize, then notifications/initialized; the session is sess-N. */
static void handshake(size_t *nmsg)
{
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}", 1, 1);
    run_until(have_messages, (void *)(intptr_t)(*nmsg + 1), "the initialize answer");
    *nmsg += 1;
    send_msg("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", 2, 0);
    mcp_upstream_initialized(F.u, "2025-06-18");
}

/* ---- tests -------------------------------------------------------------------- */

static void test_session_id_and_headers_go_out_after_initialize(void **state)
{
    start_server("--no-get");
    open_http(F.url, 0);
    size_t n = 0;
    handshake(&n);
    json_t *init = json_object_get(json_object_get(message(0), "result"), "seen");
    assert_null(json_string_value(json_object_get(init, "mcp-session-id")));
    assert_null(json_string_value(json_object_get(init, "mcp-protocol-version")));
    assert_string_equal(mstr(init, "accept", NULL), "application/json, text/event-stream");
    assert_string_equal(mstr(init, "content-type", NULL), "application/json");
    assert_string_equal(mstr(init, "x-api-key", NULL), SECRET);

    send_msg("{\"jsonrpc\":\"2.0\",\"id\":\"h\",\"method\":\"debug/headers\"}", 3, 1);
    run_until(have_messages, (void *)2, "the headers echo");
    json_t *seen = json_object_get(message(1), "result");
    assert_string_equal(mstr(seen, "mcp-session-id", NULL), "sess-1");
    assert_string_equal(mstr(seen, "mcp-protocol-version", NULL), "2025-06-18");
    assert_string_equal(mstr(seen, "x-api-key", NULL), SECRET);
    assert_string_equal(mstr(seen, "x-per-msg", NULL), "token-1");
    /* the notification was accepted (202) without any callback */
    json_t *posts = server_saw("POST");
    assert_int_equal(json_array_size(posts), 3);
    int found = 0;
    for (size_t i = 0; i < 3; i++) {
        json_t *p = json_array_get(posts, i);
        if (strcmp(mstr(p, "rpc", NULL), "notifications/initialized") == 0) {
            found = 1;
            assert_string_equal(mstr(p, "mcp-session-id", NULL), "sess-1");
            assert_null(mstr(p, "mcp-protocol-version", NULL)); /* sent before initialized() */
        }
    }
    assert_true(found);
    json_decref(posts);
    assert_int_equal(F.nerrors, 0);
    assert_int_equal(json_array_size(F.messages), 2);

    /* close: DELETE for the session, and the secret never reached the log */
    struct mcp_upstream *u = F.u;
    F.u = NULL;
    mcp_upstream_close(u);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    json_t *del = server_saw("DELETE");
    assert_int_equal(json_array_size(del), 1);
    assert_string_equal(mstr(json_array_get(del, 0), "mcp-session-id", NULL), "sess-1");
    json_decref(del);
    char *log = read_file(F.logpath);
    assert_null(strstr(log, SECRET));
    free(log);
    assert_string_equal(F.states, "R");
}

static void test_sse_batch_and_requests_before_the_response(void **state)
{
    start_server("--no-get");
    open_http(F.url, 0);
    size_t n = 0;
    handshake(&n);
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"sse\"}", 5, 1);
    run_until(have_messages, (void *)4, "the SSE answer");
    assert_string_equal(mstr(message(1), "method", NULL), "notifications/progress");
    assert_string_equal(mstr(message(2), "method", NULL), "ping");
    assert_string_equal(mstr(message(2), "id", NULL), "s1");
    assert_true(json_is_true(json_object_get(json_object_get(message(3), "result"), "sse")));
    assert_int_equal(json_integer_value(json_object_get(message(3), "id")), 5);
    /* what came on the answer stream names the request it answers */
    for (size_t i = 1; i <= 3; i++)
        assert_int_equal(cookie_of(i), 5);

    send_msg("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"batch\"}", 6, 1);
    run_until(have_messages, (void *)6, "the batch answer");
    assert_string_equal(mstr(message(4), "method", NULL), "notifications/a");
    assert_int_equal(json_integer_value(json_object_get(message(5), "id")), 6);
    /* the hub's answer to the server's ping goes out as a POST (202) */
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"result\":{}}", 7, 0);
    const char *want[] = {"POST", "5"};
    run_until(server_saw_n, want, "the ping answer");
    run_ms(50);
    assert_int_equal(F.nerrors, 0);
}

static void test_failed_requests_are_reported_with_their_cookie(void **state)
{
    start_server("--no-get");
    open_http(F.url, 1000);
    size_t n = 0;
    handshake(&n);
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"noanswer\"}", 10, 1);
    run_until(have_errors, (void *)1, "the missing answer");
    assert_int_equal(F.err_cookie[0], 10);
    assert_string_equal(F.err_why[0], "the MCP server's answer ended without a response");
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"http500\"}", 11, 1);
    run_until(have_errors, (void *)2, "the 500");
    assert_int_equal(F.err_cookie[1], 11);
    assert_string_equal(F.err_why[1], "the MCP server answered HTTP 500");
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"slow\"}", 12, 1);
    run_until(have_errors, (void *)3, "the timeout");
    assert_int_equal(F.err_cookie[2], 12);
    assert_string_equal(F.err_why[2], "timed out");
    /* a JSON-RPC error in a 400 is the answer, not a transport failure */
    size_t before = json_array_size(F.messages);
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"jsonerror\"}", 13, 1);
    run_until(have_messages, (void *)(intptr_t)(before + 1), "the JSON-RPC error");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(message(before), "error"), "code")),
        -32602);
    run_ms(50);
    assert_int_equal(F.nerrors, 3);
}

/* A port nothing listens on: bind one, note it, close it. */
static int free_port(void)
{
    uv_tcp_t probe;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&F.loop, &probe);
    uv_tcp_bind(&probe, (const struct sockaddr *)&a, 0);
    int len = sizeof(a);
    uv_tcp_getsockname(&probe, (struct sockaddr *)&a, &len);
    uv_close((uv_handle_t *)&probe, NULL);
    uv_run(&F.loop, UV_RUN_NOWAIT);
    return ntohs(a.sin_port);
}

static void test_unreachable_server_fails_each_request(void **state)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", free_port());
    open_http(url, 0);
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}", 77, 1);
    run_until(have_errors, (void *)1, "the connect failure");
    assert_int_equal(F.err_cookie[0], 77);
    assert_string_equal(F.err_why[0], "connection refused or unreachable");
    assert_string_equal(F.states, "R");
}

/* The fake hub's part: initialize whenever the transport says READY. */
static void init_on_ready(void *ctx, enum mcp_upstream_state st, const char *why)
{
    ev_state(ctx, st, why);
    if (st != MCP_UPSTREAM_READY)
        return;
    const char *init = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}";
    struct mcp_send_opts o = {.cookie = 1, .expects_response = 1};
    assert_int_equal(mcp_upstream_send(F.u, init, strlen(init), &o), 0);
}

static void test_failed_initialize_is_retried_until_the_server_is_up(void **state)
{
    int port = free_port();
    snprintf(F.url, sizeof(F.url), "http://127.0.0.1:%d/mcp", port);
    struct mcp_upstream_events ev = events;
    ev.on_state = init_on_ready;
    struct mcp_upstream_spec spec = {.name = "late", .url = F.url};
    F.u = mcp_upstream_open(&F.loop, &spec, &ev, &F);
    assert_non_null(F.u);
    run_until(have_errors, (void *)2, "two failed initialize attempts");
    assert_string_equal(F.states, "RR");
    assert_string_equal(F.err_why[0], "connection refused or unreachable");
    char flag[32];
    snprintf(flag, sizeof(flag), "--port=%d", port);
    start_server_on("--no-get", flag);
    run_until(have_messages, (void *)1, "the initialize answer");
    assert_int_equal(json_integer_value(json_object_get(message(0), "id")), 1);
    int errors = F.nerrors;
    run_ms(1200); /* no more retries once it answered */
    assert_int_equal(F.nerrors, errors);
    assert_int_equal(F.nstates, errors + 1);
}

static int have_id(void *arg)
{
    for (size_t i = 0; i < json_array_size(F.messages); i++)
        if (json_integer_value(json_object_get(json_array_get(F.messages, i), "id")) ==
            (intptr_t)arg)
            return 1;
    return 0;
}

static void test_answer_stream_closed_early_is_resumed_with_last_event_id(void **state)
{
    start_server(NULL);
    open_http(F.url, 0);
    size_t n = 0;
    handshake(&n);
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":30,\"method\":\"reconnect\"}", 30, 1);
    run_until(have_id, (void *)30, "the resumed answer");
    for (size_t i = 0; i < json_array_size(F.messages); i++) {
        json_t *m = json_array_get(F.messages, i);
        if (json_integer_value(json_object_get(m, "id")) == 30) {
            assert_true(json_is_true(json_object_get(json_object_get(m, "result"), "resumed")));
            assert_int_equal(cookie_of(i), 30); /* the resumed stream still names it */
        }
    }
    assert_int_equal(F.nerrors, 0);
    json_t *gets = server_saw("GET");
    int resumed = 0;
    for (size_t i = 0; i < json_array_size(gets); i++) {
        const char *last = mstr(json_array_get(gets, i), "last-event-id", NULL);
        if (last && strcmp(last, "r1") == 0) {
            resumed++;
            assert_string_equal(mstr(json_array_get(gets, i), "mcp-session-id", NULL), "sess-1");
        }
    }
    json_decref(gets);
    assert_int_equal(resumed, 1);
}

static void test_answer_stream_that_cannot_be_resumed_fails_the_request(void **state)
{
    start_server("--no-get");
    open_http(F.url, 0);
    size_t n = 0;
    handshake(&n);
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":31,\"method\":\"reconnect\"}", 31, 1);
    run_until(have_errors, (void *)1, "the failed resumption");
    assert_int_equal(F.err_cookie[0], 31);
    assert_string_equal(F.err_why[0],
                        "the MCP server's answer stream broke and resuming it got HTTP 405");
}

static void test_get_stream_delivers_and_resumes_with_last_event_id(void **state)
{
    start_server(NULL);
    open_http(F.url, 0);
    size_t n = 0;
    handshake(&n);
    run_until(have_messages, (void *)3, "two messages on the GET stream");
    assert_string_equal(mstr(message(1), "method", NULL), "notifications/from_get");
    assert_string_equal(mstr(message(2), "method", NULL), "notifications/resumed");
    assert_string_equal(mstr(message(2), "params", "last"), "e1");
    assert_int_equal(cookie_of(1), 0); /* the GET stream belongs to no request */
    assert_int_equal(cookie_of(2), 0);
    json_t *gets = server_saw("GET");
    assert_int_equal(json_array_size(gets), 2);
    assert_string_equal(mstr(json_array_get(gets, 0), "accept", NULL), "text/event-stream");
    assert_string_equal(mstr(json_array_get(gets, 0), "mcp-session-id", NULL), "sess-1");
    assert_null(mstr(json_array_get(gets, 0), "last-event-id", NULL));
    assert_string_equal(mstr(json_array_get(gets, 1), "last-event-id", NULL), "e1");
    json_decref(gets);
    /* closing ends the open GET stream too */
}

static void test_no_get_stream_means_no_retry(void **state)
{
    start_server("--no-get");
    open_http(F.url, 0);
    size_t n = 0;
    handshake(&n);
    const char *want[] = {"GET", "1"};
    run_until(server_saw_n, want, "the GET");
    run_ms(1500);
    json_t *gets = server_saw("GET");
    assert_int_equal(json_array_size(gets), 1);
    json_decref(gets);
}

static void test_lost_session_is_down_then_ready_and_a_new_session_works(void **state)
{
    start_server("--no-get");
    open_http(F.url, 0);
    size_t n = 0;
    handshake(&n);
    /* the notification must not race the expiry */
    const char *want[] = {"POST", "2"};
    run_until(server_saw_n, want, "notifications/initialized");
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":20,\"method\":\"expire\"}", 20, 1);
    run_until(have_messages, (void *)2, "the expire answer");
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":21,\"method\":\"debug/headers\"}", 21, 1);
    run_until(have_states, (void *)3, "DOWN and READY");
    assert_string_equal(F.states, "RDR");
    assert_int_equal(F.nerrors, 0); /* the hub fails in-flight requests on DOWN */
    n = json_array_size(F.messages);
    handshake(&n);
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":22,\"method\":\"debug/headers\"}", 22, 1);
    run_until(have_messages, (void *)(intptr_t)(n + 1), "the headers echo");
    assert_string_equal(mstr(message(n), "result", "mcp-session-id"), "sess-2");
}

static void close_in_message(void *ctx, const char *json, size_t len)
{
    ev_message(ctx, json, len, 0);
    struct mcp_upstream *u = F.u;
    F.u = NULL;
    if (u)
        mcp_upstream_close(u);
}

static void test_close_from_inside_on_message(void **state)
{
    start_server("--no-get");
    struct mcp_upstream_events ev = events;
    ev.on_message = close_in_message;
    ev.on_message_via = NULL;
    struct mcp_upstream_spec spec = {.name = "web", .url = F.url};
    F.u = mcp_upstream_open(&F.loop, &spec, &ev, &F);
    assert_non_null(F.u);
    run_until(have_states, (void *)1, "READY");
    send_msg("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"sse\"}", 5, 1);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    assert_int_equal(json_array_size(F.messages), 1);
    assert_int_equal(F.nerrors, 0);
}

static void test_bad_specs_are_refused(void **state)
{
    struct mcp_upstream_spec spec = {.name = "web", .url = "ftp://127.0.0.1/"};
    assert_null(mcp_upstream_open(&F.loop, &spec, &events, &F));
    static const struct mcp_header bad[] = {{"X-Bad", "v\r\nInjected: " SECRET}};
    spec.url = "http://127.0.0.1:1/mcp";
    spec.headers = bad;
    spec.nheaders = 1;
    assert_null(mcp_upstream_open(&F.loop, &spec, &events, &F));
    uv_run(&F.loop, UV_RUN_DEFAULT);
    char *log = read_file(F.logpath);
    assert_non_null(strstr(log, "header 1 has a bad name or value"));
    assert_null(strstr(log, SECRET));
    free(log);
}

int main(void)
{
    upstream_global_init();
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_session_id_and_headers_go_out_after_initialize),
        T(test_sse_batch_and_requests_before_the_response),
        T(test_failed_requests_are_reported_with_their_cookie),
        T(test_unreachable_server_fails_each_request),
        T(test_failed_initialize_is_retried_until_the_server_is_up),
        T(test_get_stream_delivers_and_resumes_with_last_event_id),
        T(test_answer_stream_closed_early_is_resumed_with_last_event_id),
        T(test_answer_stream_that_cannot_be_resumed_fails_the_request),
        T(test_no_get_stream_means_no_retry),
        T(test_lost_session_is_down_then_ready_and_a_new_session_works),
        T(test_close_from_inside_on_message),
        T(test_bad_specs_are_refused),
#undef T
    };
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    upstream_global_cleanup();
    return rc;
}
