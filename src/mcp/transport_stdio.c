// SPDX-License-Identifier: Apache-2.0
// stdio MCP servers (see transport.h): the gateway spawns the command, writes
// newline-delimited JSON-RPC to its stdin, reads it from its stdout, logs its
// stderr, and restarts it with backoff when it dies. Runs on the hub's loop.
#include "mcp/transport_frame.h"
#include "mcp/transport_impl.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define STDERR_LINE_MAX (16u * 1024) /* longer stderr lines are logged in pieces */
#define STDIN_QUEUE_MAX (64u << 20)  /* bytes waiting for the child to read */
#define READ_CHUNK (64u * 1024)
#define STOP_GRACE_DEFAULT                                                                         \
    2000 /* stdin closed: time to exit before SIGTERM, and SIGTERM                                 \
          * sent: time to exit before SIGKILL */
#define EXIT_DRAIN_MS                                                                              \
    500                 /* exited: time for the rest of its stdout to arrive, or                   \
                           stdout ended: time for the exit to be seen */
#define STABLE_MS 10000 /* up this long: the restart backoff starts over */
#define RESTART_MIN_DEFAULT 250
#define RESTART_MAX_DEFAULT 30000

extern char **environ;

struct stdio_up;

/* One spawned process and its pipes. It outlives its stdio_up when it is
 * being stopped, and frees itself once every handle has closed. */
struct child {
    struct stdio_up *up; /* NULL once detached: down reported, or closed */
    char *name;          /* the server's, for stderr lines after detaching */
    uint32_t grace_ms;   /* stopping: stdin closed -> SIGTERM -> SIGKILL, this long each */
    uv_process_t proc;
    uv_pipe_t in, out, err;
    uv_timer_t timer; /* attached: deferred failure, exit drain; detached: kill steps */
    int handles;      /* initialised and not yet closed; freed at 0 */
    int pid;
    int exited;
    int out_eof;
    int kill_stage;  /* 0: stdin closed, 1: SIGTERM sent, 2: SIGKILL sent */
    const char *why; /* a failure waiting for the timer */
    uint64_t started_ms;
    struct mcp_lines out_lines, err_lines;
    char rbuf[READ_CHUNK]; /* stdout and stderr reads; never kept across calls */
};

struct stdio_up {
    struct mcp_upstream base; /* first: MCP_TRANSPORT_STDIO */
    uv_loop_t *loop;
    char *name;
    char **argv;
    char **env;
    char *cwd;
    struct mcp_upstream_events ev;
    void *ctx;
    uint32_t min_ms, max_ms;
    uint32_t grace_ms;
    uint32_t delay_ms;   /* the next restart's delay */
    uv_timer_t timer;    /* READY after open; restart delay */
    struct child *child; /* running (attached) child, or NULL while down */
    int ready_pending;   /* open's READY not reported yet */
    int closing;
    unsigned spawns;
};

struct wreq {
    uv_write_t req;
    struct child *c;
    size_t len;
    char data[];
};

/* ---- small helpers -------------------------------------------------------- */

static void free_strv(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static char **copy_strv(const char *const *v)
{
    size_t n = 0;
    while (v[n])
        n++;
    char **out = calloc(n + 1, sizeof(*out));
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        out[i] = strdup(v[i]);
        if (!out[i]) {
            free_strv(out);
            return NULL;
        }
    }
    return out;
}

/* environ with the extra "K=V" entries on top (same keys replaced). */
static char **build_env(const char *const *extra, const char *name)
{
    size_t n = 0, nx = 0;
    while (environ[n])
        n++;
    while (extra && extra[nx])
        nx++;
    char **out = calloc(n + nx + 1, sizeof(*out));
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t klen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        int replaced = 0;
        for (size_t j = 0; j < nx && !replaced; j++)
            replaced = strncmp(extra[j], environ[i], klen) == 0 && extra[j][klen] == '=';
        if (replaced)
            continue;
        if (!(out[k++] = strdup(environ[i])))
            goto fail;
    }
    for (size_t j = 0; j < nx; j++) {
        const char *eq = strchr(extra[j], '=');
        if (!eq || eq == extra[j]) {
            log_msg(LOG_ERROR, NULL, "mcp server %s: env entry %zu is not KEY=VALUE", name, j);
            goto fail;
        }
        if (!(out[k++] = strdup(extra[j])))
            goto fail;
    }
    return out;
fail:
    free_strv(out);
    return NULL;
}

static void log_server(enum log_level level, const char *msg, const char *name, int pid,
                       const char *key, const char *val)
{
    if (!log_enabled(level))
        return;
    buf_t b;
    buf_init(&b, 64 * 1024);
    if (log_line_begin(&b, level, msg) == 0) {
        log_line_str(&b, "server", name, strlen(name));
        if (pid)
            log_line_int(&b, "pid", pid);
        if (key && val)
            log_line_str(&b, key, val, strlen(val));
        log_line_end(&b);
    }
    buf_free(&b);
}

/* ---- the child's lifecycle ------------------------------------------------ */

static void child_down(struct child *c, const char *why);
static void schedule_restart(struct stdio_up *up);

static void on_child_handle_closed(uv_handle_t *h)
{
    struct child *c = h->data;
    if (--c->handles > 0)
        return;
    mcp_lines_free(&c->out_lines);
    mcp_lines_free(&c->err_lines);
    free(c->name);
    free(c);
}

static void close_handle(struct child *c, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_child_handle_closed);
}

/* A detached child that has exited: nothing of it is needed any more. */
static void child_release(struct child *c)
{
    close_handle(c, (uv_handle_t *)&c->in);
    close_handle(c, (uv_handle_t *)&c->out);
    close_handle(c, (uv_handle_t *)&c->err);
    close_handle(c, (uv_handle_t *)&c->timer);
    close_handle(c, (uv_handle_t *)&c->proc);
}

static void on_child_timer(uv_timer_t *t);

/* Detached: close its stdin, and if it does not exit, SIGTERM then SIGKILL.
 * Its stdout is still read (and dropped) so it never blocks writing. */
static void child_stop(struct child *c)
{
    uv_timer_stop(&c->timer);
    close_handle(c, (uv_handle_t *)&c->in);
    if (c->exited) {
        child_release(c);
        return;
    }
    c->kill_stage = 0;
    uv_timer_start(&c->timer, on_child_timer, c->grace_ms, 0);
}

static void on_child_timer(uv_timer_t *t)
{
    struct child *c = t->data;
    if (c->up) { /* a failure found outside the loop, or the exit drain ended */
        child_down(c, c->why ? c->why : "server exited");
        return;
    }
    if (c->exited)
        return;
    int sig = c->kill_stage == 0 ? SIGTERM : SIGKILL;
    if (c->kill_stage >= 2)
        return;
    log_server(LOG_WARN,
               sig == SIGTERM ? "mcp server did not exit, sending SIGTERM"
                              : "mcp server did not exit, sending SIGKILL",
               c->name, c->pid, NULL, NULL);
    uv_process_kill(&c->proc, sig);
    c->kill_stage++;
    if (c->kill_stage == 1)
        uv_timer_start(&c->timer, on_child_timer, c->grace_ms, 0);
}

/* Reports a failure from the loop (never inside the hub's own call). */
static void child_fail_later(struct child *c, const char *why)
{
    if (!c->up || c->why)
        return;
    c->why = why;
    uv_timer_start(&c->timer, on_child_timer, 0, 0);
}

/* The attached child stopped being usable: detach it, stop it, schedule a
 * restart and tell the hub (last: the hub may close us from the callback). */
static void child_down(struct child *c, const char *why)
{
    struct stdio_up *up = c->up;
    c->up = NULL;
    up->child = NULL;
    log_server(LOG_WARN, "mcp server down", up->name, c->pid, "reason", why);
    uint64_t uptime = uv_now(up->loop) - c->started_ms;
    if (uptime >= STABLE_MS)
        up->delay_ms = up->min_ms;
    child_stop(c);
    schedule_restart(up);
    if (up->ready_pending) {
        up->ready_pending = 0; /* the hub never saw it up: READY comes with the restart */
        return;
    }
    up->ev.on_state(up->ctx, MCP_UPSTREAM_DOWN, why);
}

/* ---- reading ---------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct child *c = h->data;
    b->base = c->rbuf;
    b->len = sizeof(c->rbuf);
}

static int deliver_message(void *ctx, const char *json, size_t len)
{
    struct child *c = ctx;
    if (!c->up || c->up->closing)
        return 1;
    if (c->up->ev.on_message_via != NULL)
        c->up->ev.on_message_via(c->up->ctx, json, len, 0);
    else
        c->up->ev.on_message(c->up->ctx, json, len);
    return c->up && !c->up->closing ? 0 : 1;
}

static int on_out_line(void *ctx, const char *line, size_t len)
{
    struct child *c = ctx;
    if (!c->up || c->up->closing)
        return 1;
    int rc = mcp_json_split(line, len, deliver_message, c);
    if (rc == -EINVAL && c->up) {
        /* a banner or a broken message: the line says which */
        size_t show = len < 200 ? len : 200;
        char *copy = strndup(line, show);
        log_server(LOG_WARN, "mcp server wrote a line that is not JSON-RPC", c->name, c->pid,
                   "line", copy ? copy : "");
        free(copy);
        rc = 0;
    }
    return rc || !c->up || c->up->closing ? 1 : 0;
}

static void on_out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct child *c = s->data;
    if (n > 0) {
        if (!c->up)
            return; /* being stopped: drained and dropped */
        int rc = mcp_lines_feed(&c->out_lines, b->base, (size_t)n, on_out_line, c);
        if ((rc == -E2BIG || rc == -ENOMEM) && c->up) {
            log_server(LOG_ERROR, "mcp server sent a message over the size limit, restarting it",
                       c->name, c->pid, NULL, NULL);
            child_down(c, "server sent a message over the size limit");
        }
        return;
    }
    if (n == 0)
        return;
    c->out_eof = 1;
    uv_read_stop(s);
    if (!c->up)
        return;
    if (c->exited) {
        child_down(c, "server exited");
        return;
    }
    /* usually the process is exiting: give its exit status a moment to come */
    if (!c->why)
        c->why = "server closed its stdout";
    uv_timer_start(&c->timer, on_child_timer, EXIT_DRAIN_MS, 0);
}

static int on_err_line(void *ctx, const char *line, size_t len)
{
    struct child *c = ctx;
    if (!log_enabled(LOG_INFO))
        return 0;
    buf_t b;
    buf_init(&b, 64 * 1024);
    if (log_line_begin(&b, LOG_INFO, "mcp server stderr") == 0) {
        log_line_str(&b, "server", c->name, strlen(c->name));
        log_line_int(&b, "pid", c->pid);
        log_line_str(&b, "line", line, len);
        log_line_end(&b);
    }
    buf_free(&b);
    return 0;
}

static void on_err_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct child *c = s->data;
    if (n > 0) {
        int rc = mcp_lines_feed(&c->err_lines, b->base, (size_t)n, on_err_line, c);
        (void)rc; /* truncate mode: only -ENOMEM, and then the line is lost */
        return;
    }
    if (n < 0) {
        int rc = mcp_lines_finish(&c->err_lines, on_err_line, c);
        (void)rc;
        uv_read_stop(s);
    }
}

static void on_child_exit(uv_process_t *p, int64_t status, int term_signal)
{
    struct child *c = p->data;
    c->exited = 1;
    if (log_enabled(LOG_WARN)) {
        buf_t b;
        buf_init(&b, 4096);
        if (log_line_begin(&b, c->up ? LOG_WARN : LOG_INFO, "mcp server exited") == 0) {
            log_line_str(&b, "server", c->name, strlen(c->name));
            log_line_int(&b, "pid", c->pid);
            log_line_int(&b, "exit_status", (long long)status);
            if (term_signal)
                log_line_int(&b, "signal", term_signal);
            log_line_end(&b);
        }
        buf_free(&b);
    }
    if (!c->up) {
        child_release(c);
        return;
    }
    if (c->out_eof) {
        uv_timer_stop(&c->timer);
        child_down(c, "server exited");
        return;
    }
    /* its last lines may still be in the pipe: read them first */
    if (!c->why)
        c->why = "server exited";
    uv_timer_start(&c->timer, on_child_timer, EXIT_DRAIN_MS, 0);
}

/* ---- spawning ------------------------------------------------------------- */

static int spawn_child(struct stdio_up *up)
{
    struct child *c = calloc(1, sizeof(*c));
    if (!c)
        return UV_ENOMEM;
    c->name = strdup(up->name);
    c->grace_ms = up->grace_ms;
    if (!c->name) {
        free(c);
        return UV_ENOMEM;
    }
    mcp_lines_init(&c->out_lines, MCP_MESSAGE_MAX, 0);
    mcp_lines_init(&c->err_lines, STDERR_LINE_MAX, 1);
    uv_pipe_init(up->loop, &c->in, 0);
    uv_pipe_init(up->loop, &c->out, 0);
    uv_pipe_init(up->loop, &c->err, 0);
    uv_timer_init(up->loop, &c->timer);
    c->in.data = c->out.data = c->err.data = c->timer.data = c->proc.data = c;
    c->handles = 5;

    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&c->in},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->out},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->err},
    };
    uv_process_options_t o = {
        .exit_cb = on_child_exit,
        .file = up->argv[0],
        .args = up->argv,
        .env = up->env,
        .cwd = up->cwd,
        .stdio_count = 3,
        .stdio = stdio,
    };
    int rc = uv_spawn(up->loop, &c->proc, &o);
    if (rc < 0) {
        c->exited = 1;
        child_release(c); /* the process handle is initialised even on failure */
        return rc;
    }
    c->pid = c->proc.pid;
    c->started_ms = uv_now(up->loop);
    c->up = up;
    up->child = c;
    up->spawns++;
    uv_read_start((uv_stream_t *)&c->out, on_alloc, on_out_read);
    uv_read_start((uv_stream_t *)&c->err, on_alloc, on_err_read);
    if (log_enabled(LOG_INFO)) {
        buf_t b;
        buf_init(&b, 4096);
        if (log_line_begin(&b, LOG_INFO, "mcp server started") == 0) {
            log_line_str(&b, "server", up->name, strlen(up->name));
            log_line_int(&b, "pid", c->pid);
            log_line_str(&b, "command", up->argv[0], strlen(up->argv[0]));
            log_line_int(&b, "restarts", (long long)up->spawns - 1);
            log_line_end(&b);
        }
        buf_free(&b);
    }
    return 0;
}

static void on_up_timer(uv_timer_t *t);

static void schedule_restart(struct stdio_up *up)
{
    uint32_t delay = up->delay_ms;
    up->delay_ms = delay >= up->max_ms / 2 ? up->max_ms : delay * 2;
    if (log_enabled(LOG_INFO)) {
        buf_t b;
        buf_init(&b, 4096);
        if (log_line_begin(&b, LOG_INFO, "mcp server restart scheduled") == 0) {
            log_line_str(&b, "server", up->name, strlen(up->name));
            log_line_int(&b, "delay_ms", delay);
            log_line_end(&b);
        }
        buf_free(&b);
    }
    uv_timer_start(&up->timer, on_up_timer, delay, 0);
}

/* Open's deferred READY, or a restart that is due. */
static void on_up_timer(uv_timer_t *t)
{
    struct stdio_up *up = t->data;
    if (up->closing)
        return;
    if (up->child) { /* open's READY */
        up->ready_pending = 0;
        up->ev.on_state(up->ctx, MCP_UPSTREAM_READY, "server started");
        return;
    }
    int rc = spawn_child(up);
    if (rc < 0) {
        log_server(LOG_ERROR, "mcp server could not be started", up->name, 0, "error",
                   uv_strerror(rc));
        schedule_restart(up);
        return;
    }
    up->ev.on_state(up->ctx, MCP_UPSTREAM_READY, "server restarted");
}

/* ---- the transport API ------------------------------------------------------ */

static void free_up(struct stdio_up *up)
{
    free(up->name);
    free_strv(up->argv);
    free_strv(up->env);
    free(up->cwd);
    free(up);
}

static void on_up_closed(uv_handle_t *h)
{
    free_up(h->data);
}

struct mcp_upstream *mcp_stdio_open(uv_loop_t *loop, const struct mcp_upstream_spec *spec,
                                    const struct mcp_upstream_events *ev, void *ctx)
{
    struct stdio_up *up = calloc(1, sizeof(*up));
    if (!up)
        return NULL;
    up->base.kind = MCP_TRANSPORT_STDIO;
    up->loop = loop;
    up->ev = *ev;
    up->ctx = ctx;
    up->name = strdup(spec->name ? spec->name : "?");
    up->argv = copy_strv(spec->argv);
    up->cwd = spec->cwd ? strdup(spec->cwd) : NULL;
    if (!up->name || !up->argv || (spec->cwd && !up->cwd)) {
        free_up(up);
        return NULL;
    }
    up->env = build_env(spec->env, up->name);
    if (!up->env) {
        free_up(up);
        return NULL;
    }
    up->min_ms = spec->restart_min_ms ? spec->restart_min_ms : RESTART_MIN_DEFAULT;
    up->max_ms = spec->restart_max_ms ? spec->restart_max_ms : RESTART_MAX_DEFAULT;
    up->grace_ms = spec->stop_grace_ms ? spec->stop_grace_ms : STOP_GRACE_DEFAULT;
    if (up->max_ms < up->min_ms)
        up->max_ms = up->min_ms;
    up->delay_ms = up->min_ms;
    uv_timer_init(loop, &up->timer);
    up->timer.data = up;
    int rc = spawn_child(up);
    if (rc < 0) {
        log_server(LOG_ERROR, "mcp server could not be started", up->name, 0, "error",
                   uv_strerror(rc));
        uv_close((uv_handle_t *)&up->timer, on_up_closed);
        return NULL;
    }
    up->ready_pending = 1;
    uv_timer_start(&up->timer, on_up_timer, 0, 0);
    return &up->base;
}

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct child *c = w->c;
    free(w);
    if (status < 0 && status != UV_ECANCELED && c->up)
        child_down(c, "server stdin broke");
}

int mcp_stdio_send(struct mcp_upstream *u, const char *json, size_t len)
{
    struct stdio_up *up = (struct stdio_up *)u;
    struct child *c = up->child;
    if (up->closing || !c || c->why || c->exited)
        return -1;
    if (c->in.write_queue_size + len > STDIN_QUEUE_MAX) {
        log_server(LOG_ERROR, "mcp server is not reading its stdin, restarting it", up->name,
                   c->pid, NULL, NULL);
        child_fail_later(c, "server is not reading its stdin");
        return -1;
    }
    struct wreq *w = malloc(sizeof(*w) + len + 1);
    if (!w)
        return -1;
    /* a raw newline in valid JSON is whitespace: keep the message on one line */
    for (size_t i = 0; i < len; i++) {
        char ch = json[i];
        w->data[i] = ch == '\n' || ch == '\r' ? ' ' : ch;
    }
    w->data[len] = '\n';
    w->len = len + 1;
    w->c = c;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&c->in, &b, 1, on_written) < 0) {
        free(w);
        child_fail_later(c, "server stdin broke");
        return -1;
    }
    return 0;
}

int mcp_stdio_pid(const struct mcp_upstream *u)
{
    const struct stdio_up *up = (const struct stdio_up *)u;
    return up->child && !up->child->exited ? up->child->pid : 0;
}

void mcp_stdio_close(struct mcp_upstream *u)
{
    struct stdio_up *up = (struct stdio_up *)u;
    if (up->closing)
        return;
    up->closing = 1;
    struct child *c = up->child;
    if (c) {
        c->up = NULL;
        up->child = NULL;
        child_stop(c);
    }
    uv_timer_stop(&up->timer);
    uv_close((uv_handle_t *)&up->timer, on_up_closed);
}
