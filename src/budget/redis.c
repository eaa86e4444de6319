// SPDX-License-Identifier: Apache-2.0
// The Redis budget backend (state: {redis: URL}): reservations and
// settlements are Lua scripts that check and update a call's whole chain in
// one step, so every gateway instance sharing the server shares the caps.
// One hiredis async connection per worker, on the worker's libuv loop
// (through the small event adapter below).
#include "budget/budget.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "budget/internal.h"
#include "core/log.h"

#define RECONNECT_MS 250
#define MAX_KEYS (BUDGET_MAX_CHAIN * BUDGET_NPERIODS)
#define MAX_EXTRA_SCRIPTS 8

/* Keys: per node, period and period index a hash pc:b:<node>:<period>:<index>
 * {spent, reserved, alerted}, and one sorted set pc:bz of the reservations
 * not settled yet by deadline (ms). A reservation's member in it is
 * "<id> <amount> <hash>..." (the hashes it holds the amount in), so the next
 * reserve after its deadline releases it wherever it was taken. Only the
 * periods a node has a cap in carry reservations; spend is counted in every
 * period (one HINCRBY each, for `budget show`, the admin API and /metrics).
 * Day and month hashes expire a day (plus the reservation TTL) after their
 * period ends; the expiry is set when a hash is created. */

/* KEYS: the hash of each capped node-period, callers first, root side last;
 * then pc:bz. ARGV: now_ms, ttl_ms, the reservation's member, amount, then
 * per hash its cap and expiry (unix seconds, 0 = none). Returns 0, or
 * {index, spent, reserved} of the first (root side) hash that refused. */
static const char reserve_lua[] =
    "local now, ttl, member, amt = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], "
    "tonumber(ARGV[4])\n"
    "local n = #KEYS - 1\n"
    "local z = KEYS[n+1]\n"
    "local old = redis.call('ZRANGEBYSCORE', z, '-inf', now)\n"
    "if #old > 0 then\n"
    "  for _, m in ipairs(old) do\n"
    "    local k, a = 0, 0\n"
    "    for w in string.gmatch(m, '%S+') do\n"
    "      k = k + 1\n"
    "      if k == 2 then a = tonumber(w)\n"
    "      elseif k > 2 then\n"
    "        local left = redis.call('HINCRBY', w, 'reserved', -a)\n"
    "        if left < 0 then redis.call('HSET', w, 'reserved', 0) end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)\n"
    "end\n"
    "local fresh = {}\n"
    "for i = n, 1, -1 do\n"
    "  local v = redis.call('HMGET', KEYS[i], 'spent', 'reserved')\n"
    "  local s, r = tonumber(v[1] or '0'), tonumber(v[2] or '0')\n"
    "  if s + r + amt > tonumber(ARGV[3+2*i]) then return {i, s, r} end\n"
    "  fresh[i] = not v[1] and not v[2]\n"
    "end\n"
    "for i = 1, n do\n"
    "  redis.call('HINCRBY', KEYS[i], 'reserved', amt)\n"
    "  local exp = tonumber(ARGV[4+2*i])\n"
    "  if fresh[i] and exp > 0 then redis.call('EXPIREAT', KEYS[i], exp) end\n"
    "end\n"
    "redis.call('ZADD', z, now + ttl, member)\n"
    "return 0\n";

/* KEYS: the hashes the reservation was taken in (ARGV[5] of them), then
 * the hash of every period of now of each node (spend lands there), then
 * pc:bz. ARGV: the reservation's member, its amount, actual, soft limit,
 * number of reserved hashes, the expiry (unix seconds, 0 none) of the day,
 * month and total hashes, then per spend hash its cap (-1 none). A reservation no longer in pc:bz
 * was released by its deadline already. Returns {index, spent, ...} (index among the spend hashes)
 * for each period whose soft limit this crossed first (HSETNX: once per period, whichever instance
 * gets there). */
static const char settle_lua[] =
    "local member, amt, actual = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local soft, nr = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local ns = #KEYS - 1 - nr\n"
    "if nr > 0 and redis.call('ZREM', KEYS[#KEYS], member) == 1 then\n"
    "  for i = 1, nr do\n"
    "    local left = redis.call('HINCRBY', KEYS[i], 'reserved', -amt)\n"
    "    if left < 0 then redis.call('HSET', KEYS[i], 'reserved', 0) end\n"
    "  end\n"
    "end\n"
    "local out = {}\n"
    "if actual > 0 then\n"
    "  for i = 1, ns do\n"
    "    local h = KEYS[nr+i]\n"
    "    local spent = redis.call('HINCRBY', h, 'spent', actual)\n"
    "    local cap, exp = tonumber(ARGV[8+i]), tonumber(ARGV[6+(i-1)%3])\n"
    "    if spent == actual and exp > 0 then redis.call('EXPIREAT', h, exp) end\n"
    "    if cap > 0 and soft > 0 and spent >= soft * cap and\n"
    "       redis.call('HSETNX', h, 'alerted', 1) == 1 then\n"
    "      table.insert(out, i)\n"
    "      table.insert(out, spent)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

enum { SCRIPT_RESERVE, SCRIPT_SETTLE, NSCRIPTS };
static const char *const scripts[NSCRIPTS] = {reserve_lua, settle_lua};

struct budget_redis {
    uv_loop_t *loop;
    redisAsyncContext *ac; /* NULL while disconnected */
    uv_timer_t reconnect;
    char *host, *password;
    int port, db;
    char sha[NSCRIPTS][41];
    struct {
        const char *text; /* a caller's script (budget_redis_eval), by address */
        char sha[41];
    } extra[MAX_EXTRA_SCRIPTS];
    int nextra;
    uint64_t seq; /* reservation ids: <instance>-<seq> */
    char instance[24];
    int closing;
    int timer_closed; /* freed once this is set and ac is gone */
    int connected;
    void (*alert)(void *arg, const char *node, enum budget_period p, int64_t key, int64_t cap,
                  int64_t spent);
    void *alert_arg;
};

/* A command in flight: its arguments (kept to resend as EVAL after a
 * NOSCRIPT) and what to call with the reply. */
struct op {
    struct budget_redis *r;
    const char *text; /* the script, and its SHA1 (hex) */
    const char *sha;
    int argc;
    char **argv;
    size_t *argvlen;
    int retried;
    void (*done)(struct op *op, redisReply *reply);
    /* budget_redis_eval */
    budget_redis_reply_cb reply_cb;
    /* reserve */
    struct budget_reservation *res;
    budget_reserve_cb cb;
    void *arg;
    /* settle: the node-periods, for alerts */
    const struct budget_tree *tree;
    int nodes[BUDGET_MAX_CHAIN];
    size_t nnodes;
    int kmap[MAX_KEYS]; /* reserve: script index -> node * BUDGET_NPERIODS + period */
    size_t nk;
    int64_t keys[BUDGET_NPERIODS];
};

static void op_free(struct op *op)
{
    for (int i = 0; i < op->argc; i++)
        free(op->argv[i]);
    free(op->argv);
    free(op->argvlen);
    free(op);
}

static void sha1_hex(const char *s, char out[41])
{
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)s, strlen(s), d);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

int budget_redis_parse_url(const char *url, char **host, int *port, char **password, int *db)
{
    *host = *password = NULL;
    *port = 6379;
    *db = 0;
    if (strncmp(url, "redis://", 8) != 0)
        return -1;
    const char *p = url + 8, *at = strrchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        *password = strndup(pw, (size_t)(at - pw));
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    *host = strndup(p, hl);
    p += hl;
    if (*p == ':') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (v <= 0 || v > 65535)
            return -1;
        *port = (int)v;
        p = end;
    }
    if (*p == '/' && p[1] != '\0') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (*end != '\0' || v < 0 || v > 1000000)
            return -1;
        *db = (int)v;
    } else if (*p != '\0' && strcmp(p, "/") != 0)
        return -1;
    return *host && **host ? 0 : -1;
}

static void start_connect(struct budget_redis *r);

/* ---- the event adapter ----------------------------------------------------
 * hiredis' own libuv adapter (adapters/libuv.h in 0.14) ignores a poll
 * error status, and libuv reports a refused connect exactly that way, after
 * which the connection hangs for ever. This one hands errors to hiredis,
 * which then finds the socket's error and disconnects. */

struct uvev {
    redisAsyncContext *ac;
    uv_poll_t poll;
    int events;
};

static void uvev_on_poll(uv_poll_t *h, int status, int events)
{
    struct uvev *e = h->data;
    if (e->ac == NULL)
        return;
    if (status < 0) {
        /* connecting: the write handler reads SO_ERROR; connected: a read
         * sees the error or EOF */
        if (e->ac->c.flags & REDIS_CONNECTED)
            redisAsyncHandleRead(e->ac);
        else
            redisAsyncHandleWrite(e->ac);
        return;
    }
    if (events & UV_READABLE)
        redisAsyncHandleRead(e->ac);
    if (e->ac != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(e->ac);
}

static void uvev_update(struct uvev *e, int add, int ev)
{
    e->events = add ? (e->events | ev) : (e->events & ~ev);
    if (e->events)
        uv_poll_start(&e->poll, e->events, uvev_on_poll);
    else
        uv_poll_stop(&e->poll);
}

static void uvev_add_read(void *p)
{
    uvev_update(p, 1, UV_READABLE);
}

static void uvev_del_read(void *p)
{
    uvev_update(p, 0, UV_READABLE);
}

static void uvev_add_write(void *p)
{
    uvev_update(p, 1, UV_WRITABLE);
}

static void uvev_del_write(void *p)
{
    uvev_update(p, 0, UV_WRITABLE);
}

static void uvev_closed(uv_handle_t *h)
{
    free(h->data);
}

static void uvev_cleanup(void *p)
{
    struct uvev *e = p;
    e->ac = NULL;
    uv_close((uv_handle_t *)&e->poll, uvev_closed);
}

static int uvev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    struct uvev *e = calloc(1, sizeof *e);
    if (e == NULL)
        return -1;
    if (uv_poll_init(loop, &e->poll, ac->c.fd) != 0) {
        free(e);
        return -1;
    }
    e->ac = ac;
    e->poll.data = e;
    ac->ev.addRead = uvev_add_read;
    ac->ev.delRead = uvev_del_read;
    ac->ev.addWrite = uvev_add_write;
    ac->ev.delWrite = uvev_del_write;
    ac->ev.cleanup = uvev_cleanup;
    ac->ev.data = e;
    return 0;
}

static void release(struct budget_redis *r)
{
    free(r->host);
    if (r->password) {
        explicit_bzero(r->password, strlen(r->password));
        free(r->password);
    }
    free(r);
}

static void on_reconnect(uv_timer_t *t)
{
    struct budget_redis *r = t->data;
    if (!r->closing && r->ac == NULL)
        start_connect(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct budget_redis *r = ac->data;
    r->ac = NULL;
    r->connected = 0;
    if (r->closing) {
        if (r->timer_closed)
            release(r);
        return;
    }
    log_msg(LOG_WARN, NULL, "budgets: lost the Redis connection (%s); reconnecting",
            status == REDIS_OK ? "closed" : ac->errstr);
    uv_timer_start(&r->reconnect, on_reconnect, RECONNECT_MS, 0);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct budget_redis *r = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        r->ac = NULL;
        if (r->closing && r->timer_closed) {
            release(r);
            return;
        }
        if (!r->closing) {
            log_msg(LOG_WARN, NULL, "budgets: cannot connect to Redis at %s:%d: %s", r->host,
                    r->port, ac->errstr);
            uv_timer_start(&r->reconnect, on_reconnect, RECONNECT_MS * 4, 0);
        }
        return;
    }
    r->connected = 1;
}

static void ignore_reply(redisAsyncContext *ac, void *reply, void *arg)
{
    (void)ac;
    (void)arg;
    redisReply *rep = reply;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
        log_msg(LOG_ERROR, NULL, "budgets: Redis: %s", rep->str);
}

static void start_connect(struct budget_redis *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (ac == NULL || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        uv_timer_start(&r->reconnect, on_reconnect, RECONNECT_MS * 4, 0);
        return;
    }
    ac->data = r;
    if (uvev_attach(ac, r->loop) < 0) {
        redisAsyncFree(ac);
        uv_timer_start(&r->reconnect, on_reconnect, RECONNECT_MS * 4, 0);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    /* pipelined before any call: AUTH, SELECT, and the scripts loaded so
     * EVALSHA finds them (a NOSCRIPT later is answered with EVAL) */
    if (r->password)
        redisAsyncCommand(ac, ignore_reply, NULL, "AUTH %s", r->password);
    if (r->db)
        redisAsyncCommand(ac, ignore_reply, NULL, "SELECT %d", r->db);
    for (int i = 0; i < NSCRIPTS; i++)
        redisAsyncCommand(ac, ignore_reply, NULL, "SCRIPT LOAD %s", scripts[i]);
}

struct budget_redis *budget_redis_new(uv_loop_t *loop, const char *url, char *err, size_t errlen)
{
    struct budget_redis *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->loop = loop;
    if (budget_redis_parse_url(url, &r->host, &r->port, &r->password, &r->db) < 0) {
        snprintf(err, errlen, "state.redis: expected redis://[:password@]host[:port][/db]");
        free(r->host);
        free(r->password);
        free(r);
        return NULL;
    }
    for (int i = 0; i < NSCRIPTS; i++)
        sha1_hex(scripts[i], r->sha[i]);
    unsigned char rnd[6];
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(rnd, 1, sizeof rnd, f) != sizeof rnd)
        memset(rnd, 0, sizeof rnd);
    if (f)
        fclose(f);
    snprintf(r->instance, sizeof r->instance, "%02x%02x%02x%02x%02x%02x-%d", rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], (int)getpid() % 100000);
    uv_timer_init(loop, &r->reconnect);
    r->reconnect.data = r;
    start_connect(r);
    return r;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct budget_redis *r = h->data;
    r->timer_closed = 1;
    if (r->ac == NULL)
        release(r); /* else when the connection is gone (on_disconnect) */
}

void budget_redis_free(struct budget_redis *r)
{
    if (r == NULL)
        return;
    r->closing = 1;
    if (r->ac != NULL && r->connected) {
        redisAsyncDisconnect(r->ac); /* pending replies still arrive, then on_disconnect */
    } else if (r->ac != NULL) {
        /* still connecting: hiredis calls neither callback for it, so drop it now */
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
    }
    uv_timer_stop(&r->reconnect);
    uv_close((uv_handle_t *)&r->reconnect, on_timer_closed);
}

void budget_redis_on_alert(struct budget_redis *r,
                           void (*fn)(void *arg, const char *node, enum budget_period p,
                                      int64_t key, int64_t cap, int64_t spent),
                           void *arg)
{
    r->alert = fn;
    r->alert_arg = arg;
}

/* ---- commands ---------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *reply, void *arg);

static int send_op(struct op *op)
{
    struct budget_redis *r = op->r;
    if (r->ac == NULL || r->closing)
        return -1;
    /* argv[0] is EVALSHA <sha> or EVAL <script> */
    free(op->argv[0]);
    free(op->argv[1]);
    op->argv[0] = strdup(op->retried ? "EVAL" : "EVALSHA");
    op->argv[1] = strdup(op->retried ? op->text : op->sha);
    if (op->argv[0] == NULL || op->argv[1] == NULL)
        return -1;
    op->argvlen[0] = strlen(op->argv[0]);
    op->argvlen[1] = strlen(op->argv[1]);
    return redisAsyncCommandArgv(r->ac, on_reply, op, op->argc, (const char **)op->argv,
                                 op->argvlen) == REDIS_OK
               ? 0
               : -1;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *arg)
{
    (void)ac;
    struct op *op = arg;
    redisReply *rep = reply;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR && !op->retried &&
        strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        op->retried = 1;
        if (send_op(op) == 0)
            return;
        rep = NULL;
    }
    op->done(op, rep);
    op_free(op);
}

/* An op with room for argc arguments; args 0 and 1 are filled by send_op. */
static struct op *op_new(struct budget_redis *r, int script, int argc)
{
    struct op *op = calloc(1, sizeof *op);
    if (op == NULL)
        return NULL;
    op->r = r;
    op->text = scripts[script];
    op->sha = r->sha[script];
    op->argv = calloc((size_t)argc, sizeof *op->argv);
    op->argvlen = calloc((size_t)argc, sizeof *op->argvlen);
    if (op->argv == NULL || op->argvlen == NULL) {
        free(op->argv);
        free(op->argvlen);
        free(op);
        return NULL;
    }
    return op;
}

static int op_arg(struct op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int op_arg(struct op *op, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    op->argvlen[op->argc] = (size_t)n;
    op->argv[op->argc++] = s;
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* When the keys of period P with index KEY may go: a day after the period
 * ends plus the reservation TTL (a call reserved just before the boundary
 * still settles there); 0 (never) for the total. */
static long long expire_at(enum budget_period p, int64_t key, long ttl_s)
{
    time_t end;
    if (p == BUDGET_DAY)
        end = (time_t)((key + 1) * 86400);
    else if (p == BUDGET_MONTH) {
        struct tm tm = {0};
        tm.tm_year = (int)(70 + (key + 1) / 12);
        tm.tm_mon = (int)((key + 1) % 12);
        tm.tm_mday = 1;
        end = timegm(&tm);
    } else
        return 0;
    return (long long)end + 86400 + ttl_s;
}

static void reserve_done(struct op *op, redisReply *rep)
{
    struct budget_reservation *res = op->res;
    struct budget_refusal why = {0};
    int rc;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        if (rep != NULL)
            log_msg(LOG_ERROR, NULL, "budgets: Redis reserve: %s", rep->str);
        rc = -2;
        res->settled = 1;
    } else if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 0) {
        rc = 0;
    } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
               rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[0]->integer >= 1 &&
               (size_t)rep->element[0]->integer <= op->nk) {
        int k = op->kmap[rep->element[0]->integer - 1];
        size_t node = (size_t)k / BUDGET_NPERIODS;
        int p = k % BUDGET_NPERIODS;
        struct budget_node_view v;
        budget_tree_node_view(res->tree, res->nodes[node < res->nnodes ? node : 0], &v);
        why.node = v.id;
        why.period = (enum budget_period)p;
        why.cap = v.cap[p];
        why.spent = rep->element[1]->integer;
        why.reserved = rep->element[2]->integer;
        why.retry_after = budget_period_remaining((enum budget_period)p, time(NULL));
        rc = 1;
        res->settled = 1;
    } else {
        rc = -2;
        res->settled = 1;
    }
    op->cb(op->arg, rc, &why);
}

/* The capped node-periods of RES (where it reserves): node index *
 * BUDGET_NPERIODS + period, callers first. Returns how many. */
static size_t capped(const struct budget_reservation *res, int kmap[MAX_KEYS])
{
    size_t nk = 0;
    struct budget_node_view v;
    for (size_t j = 0; j < res->nnodes; j++) {
        budget_tree_node_view(res->tree, res->nodes[j], &v);
        for (int p = 0; p < BUDGET_NPERIODS; p++)
            if (v.cap[p] >= 0)
                kmap[nk++] = (int)j * BUDGET_NPERIODS + p;
    }
    return nk;
}

/* Appends the hash key of node-period K of RES (in its reservation's
 * periods) as an argument, and to MEMBER when not NULL. */
static int hash_arg(struct op *op, const struct budget_reservation *res, int k, buf_t *member)
{
    struct budget_node_view v;
    int p = k % BUDGET_NPERIODS;
    budget_tree_node_view(res->tree, res->nodes[k / BUDGET_NPERIODS], &v);
    if (op_arg(op, "pc:b:%s:%d:%lld", v.id, p, (long long)res->period_key[p]) < 0)
        return -1;
    if (member != NULL &&
        (buf_append(member, " ", 1) < 0 ||
         buf_append(member, op->argv[op->argc - 1], op->argvlen[op->argc - 1]) < 0))
        return -1;
    return 0;
}

/* The member of RES in pc:bz: "<id> <amount> <hash>...". */
static int member_start(buf_t *m, const struct budget_reservation *res)
{
    buf_init(m, 64 * 1024);
    return buf_appendf(m, "%s %lld", res->redis_id, (long long)res->micro_usd);
}

int budget_redis_reserve(struct budget_redis *r, struct budget_tree *t, const char *const *chain,
                         size_t n, int64_t micro_usd, time_t now, struct budget_reservation *res,
                         budget_reserve_cb cb, void *arg)
{
    int rc = budget_reservation_prepare(t, chain, n, micro_usd, now, res);
    if (rc < 0 || t == NULL || res->nnodes == 0)
        return rc; /* nothing to reserve in Redis: the caller goes on at once */
    int kmap[MAX_KEYS];
    size_t nk = capped(res, kmap);
    res->redis = r;
    snprintf(res->redis_id, sizeof res->redis_id, "%s-%llu", r->instance,
             (unsigned long long)++r->seq);
    if (nk == 0) {
        /* no cap on the chain: nothing to check, the spend is still counted
         * at settle; granted at once, without a round trip */
        if (r->ac == NULL || r->closing) {
            res->settled = 1;
            return -2;
        }
        cb(arg, 0, NULL);
        return 2;
    }
    struct op *op = op_new(r, SCRIPT_RESERVE, (int)(3 + nk + 1 + 4 + 2 * nk));
    if (op == NULL)
        return -1;
    op->argc = 2;
    memcpy(op->kmap, kmap, nk * sizeof kmap[0]);
    op->nk = nk;
    buf_t member;
    int bad = member_start(&member, res);
    bad |= op_arg(op, "%zu", nk + 1);
    for (size_t i = 0; i < nk; i++)
        bad |= hash_arg(op, res, kmap[i], &member);
    bad |= op_arg(op, "pc:bz");
    bad |= op_arg(op, "%lld", (long long)now_ms());
    bad |= op_arg(op, "%lld", (long long)budget_tree_ttl(t) * 1000);
    bad |= op_arg(op, "%.*s", (int)member.len, member.data ? member.data : "");
    bad |= op_arg(op, "%lld", (long long)res->micro_usd);
    buf_free(&member);
    for (size_t i = 0; i < nk; i++) {
        struct budget_node_view v;
        int p = kmap[i] % BUDGET_NPERIODS;
        budget_tree_node_view(t, res->nodes[kmap[i] / BUDGET_NPERIODS], &v);
        bad |= op_arg(op, "%lld", (long long)v.cap[p]);
        bad |= op_arg(op, "%lld",
                      expire_at((enum budget_period)p, res->period_key[p], budget_tree_ttl(t)));
    }
    op->res = res;
    op->cb = cb;
    op->arg = arg;
    op->done = reserve_done;
    if (bad || send_op(op) < 0) {
        op_free(op);
        res->settled = 1;
        return -2; /* Redis unavailable */
    }
    return 2; /* pending: cb runs later on this loop */
}

static void settle_done(struct op *op, redisReply *rep)
{
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        log_msg(LOG_ERROR, NULL, "budgets: Redis settle failed (%s): this call's spend is lost",
                rep ? rep->str : "no connection");
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || op->r->alert == NULL)
        return;
    for (size_t k = 0; k + 1 < rep->elements; k += 2) {
        long long i = rep->element[k]->integer - 1;
        if (i < 0)
            continue;
        size_t node = (size_t)i / BUDGET_NPERIODS;
        int p = (int)(i % BUDGET_NPERIODS);
        if (node >= op->nnodes)
            continue;
        struct budget_node_view v;
        budget_tree_node_view(op->tree, op->nodes[node], &v);
        op->r->alert(op->r->alert_arg, v.id, (enum budget_period)p, op->keys[p], v.cap[p],
                     rep->element[k + 1]->integer);
    }
}

void budget_redis_settle(struct budget_reservation *res, int64_t actual, time_t now)
{
    struct budget_redis *r = res->redis;
    struct budget_tree *t = res->tree;
    int kmap[MAX_KEYS];
    size_t nr = capped(res, kmap); /* the reservation is held there */
    if (actual <= 0 && nr == 0)
        return; /* nothing reserved, nothing spent */
    size_t ns = actual > 0 ? res->nnodes * BUDGET_NPERIODS : 0;
    struct op *op = op_new(r, SCRIPT_SETTLE, (int)(3 + nr + ns + 1 + 8 + ns));
    if (op == NULL) {
        log_msg(LOG_ERROR, NULL, "budgets: out of memory settling in Redis");
        return;
    }
    op->argc = 2;
    op->tree = t;
    op->nnodes = res->nnodes;
    memcpy(op->nodes, res->nodes, res->nnodes * sizeof res->nodes[0]);
    for (int p = 0; p < BUDGET_NPERIODS; p++)
        op->keys[p] = budget_period_key((enum budget_period)p, now);
    buf_t member;
    int bad = member_start(&member, res);
    bad |= op_arg(op, "%zu", nr + ns + 1);
    for (size_t i = 0; i < nr; i++)
        bad |= hash_arg(op, res, kmap[i], &member);
    struct budget_node_view v;
    for (size_t j = 0; j < res->nnodes && ns > 0; j++) {
        budget_tree_node_view(t, res->nodes[j], &v);
        for (int p = 0; p < BUDGET_NPERIODS; p++)
            bad |= op_arg(op, "pc:b:%s:%d:%lld", v.id, p, (long long)op->keys[p]);
    }
    bad |= op_arg(op, "pc:bz");
    bad |= op_arg(op, "%.*s", (int)member.len, member.data ? member.data : "");
    buf_free(&member);
    bad |= op_arg(op, "%lld", (long long)res->micro_usd);
    bad |= op_arg(op, "%lld", (long long)(actual < 0 ? 0 : actual));
    bad |= op_arg(op, "%.6f", budget_tree_soft_limit(t));
    bad |= op_arg(op, "%zu", nr);
    for (int p = 0; p < BUDGET_NPERIODS; p++)
        bad |=
            op_arg(op, "%lld", expire_at((enum budget_period)p, op->keys[p], budget_tree_ttl(t)));
    for (size_t j = 0; j < res->nnodes && ns > 0; j++) {
        budget_tree_node_view(t, res->nodes[j], &v);
        for (int p = 0; p < BUDGET_NPERIODS; p++)
            bad |= op_arg(op, "%lld", (long long)v.cap[p]);
    }
    op->done = settle_done;
    if (bad || send_op(op) < 0) {
        log_msg(LOG_ERROR, NULL,
                "budgets: Redis unavailable: a settlement of %lld micro-USD is "
                "lost (its reservation expires)",
                (long long)actual);
        op_free(op);
    }
}

/* ---- scripts of other modules (rate limits) ------------------------------ */

static void eval_done(struct op *op, redisReply *rep)
{
    op->reply_cb(op->arg, rep);
}

int budget_redis_eval(struct budget_redis *r, const char *script, int nargs,
                      const char *const *args, const size_t *lens, budget_redis_reply_cb cb,
                      void *arg)
{
    if (r == NULL || r->ac == NULL || r->closing)
        return -1;
    const char *sha = NULL;
    for (int i = 0; i < r->nextra && sha == NULL; i++)
        if (r->extra[i].text == script)
            sha = r->extra[i].sha;
    if (sha == NULL) {
        if (r->nextra == MAX_EXTRA_SCRIPTS)
            return -1;
        r->extra[r->nextra].text = script;
        sha1_hex(script, r->extra[r->nextra].sha);
        sha = r->extra[r->nextra++].sha;
    }
    struct op *op = op_new(r, 0, nargs + 2);
    if (op == NULL)
        return -1;
    op->text = script;
    op->sha = sha;
    op->argc = 2;
    for (int i = 0; i < nargs; i++) {
        char *a = malloc(lens[i] + 1);
        if (a == NULL) {
            op_free(op);
            return -1;
        }
        memcpy(a, args[i], lens[i]);
        a[lens[i]] = '\0';
        op->argv[op->argc] = a;
        op->argvlen[op->argc++] = lens[i];
    }
    op->reply_cb = cb;
    op->arg = arg;
    op->done = eval_done;
    if (send_op(op) < 0) {
        op_free(op);
        return -1;
    }
    return 0;
}

/* ---- blocking reads for `budget show` and the admin listener ------------ */

int budget_redis_load_tree(const char *url, struct budget_tree *t, time_t now, char *err,
                           size_t errlen)
{
    char *host = NULL, *password = NULL;
    int port, db, rc = -1;
    if (budget_redis_parse_url(url, &host, &port, &password, &db) < 0) {
        snprintf(err, errlen, "state.redis: expected redis://[:password@]host[:port][/db]");
        goto out;
    }
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c == NULL || c->err) {
        snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", host, port,
                 c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        goto out;
    }
    redisSetTimeout(c, tv);
    redisReply *rep;
    if (password && (rep = redisCommand(c, "AUTH %s", password)) != NULL)
        freeReplyObject(rep);
    if (db && (rep = redisCommand(c, "SELECT %d", db)) != NULL)
        freeReplyObject(rep);
    struct ledger *lg = budget_tree_ledger(t);
    rc = 0;
    for (size_t i = 0; i < budget_tree_size(t) && rc == 0; i++) {
        struct budget_node_view v;
        budget_tree_node_view(t, (int)i, &v);
        for (int p = 0; p < BUDGET_NPERIODS && rc == 0; p++) {
            long long key = (long long)budget_period_key((enum budget_period)p, now);
            rep = redisCommand(c, "HMGET pc:b:%s:%d:%lld spent reserved", v.id, p, key);
            if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
                snprintf(err, errlen, "Redis: %s", rep && rep->str ? rep->str : c->errstr);
                rc = -1;
            } else {
                pthread_mutex_lock(&lg->lock);
                struct counters *cn = budget_ledger_get(lg, v.id);
                if (cn != NULL) {
                    cn->key[p] = key;
                    cn->spent[p] = rep->element[0]->str ? atoll(rep->element[0]->str) : 0;
                    cn->reserved[p] = rep->element[1]->str ? atoll(rep->element[1]->str) : 0;
                }
                pthread_mutex_unlock(&lg->lock);
            }
            if (rep)
                freeReplyObject(rep);
        }
    }
    redisFree(c);
out:
    free(host);
    free(password);
    return rc;
}
