// SPDX-License-Identifier: Apache-2.0
// Rate limits in Redis (state: {redis: URL}): each bucket's GCRA time is one
// key, and one Lua script takes a call's request and tokens on the caller and
// every ancestor, all or nothing, on the Redis server's clock. Sent over the
// worker's Redis connection (src/budget/redis.c); the answer comes back on
// the worker's loop.
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breaker/breaker.h"
#include "budget/budget.h"
#include "core/log.h"

/* KEYS: one per bucket. ARGV: limit and cost of each (a cost above the limit
 * counts as the limit). Times are microseconds of the server's clock; a key
 * holds the bucket's "theoretical arrival time" and expires a second after
 * the bucket is full again (a missing key is a full bucket).
 * Returns {1, 0, 0, ahead...} when every bucket took its cost, or
 * {0, i, retry_us, ahead...} when bucket i could not (nothing taken), where
 * ahead is each bucket's time past now afterwards. */
static const char admit_lua[] = "local t = redis.call('TIME')\n"
                                "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
                                "local W = 60000000\n"
                                "local n = #KEYS\n"
                                "local tat, nxt = {}, {}\n"
                                "for i = 1, n do\n"
                                "  local limit, cost = tonumber(ARGV[2*i-1]), tonumber(ARGV[2*i])\n"
                                "  if cost > limit then cost = limit end\n"
                                "  tat[i] = tonumber(redis.call('GET', KEYS[i]) or '0')\n"
                                "  local base = tat[i]\n"
                                "  if base < now then base = now end\n"
                                "  nxt[i] = base + math.ceil(cost * W / limit)\n"
                                "end\n"
                                "local out = {1, 0, 0}\n"
                                "for i = 1, n do\n"
                                "  if nxt[i] - now > W then\n"
                                "    out = {0, i, nxt[i] - now - W}\n"
                                "    break\n"
                                "  end\n"
                                "end\n"
                                "for i = 1, n do\n"
                                "  local v = tat[i]\n"
                                "  if out[1] == 1 then\n"
                                "    v = nxt[i]\n"
                                "    if v ~= tat[i] and v > now then\n"
                                "      redis.call('SET', KEYS[i], string.format('%d', v), 'PX',\n"
                                "                 math.ceil((v - now) / 1000) + 1000)\n"
                                "    end\n"
                                "  end\n"
                                "  if v > now then out[3+i] = v - now else out[3+i] = 0 end\n"
                                "end\n"
                                "return out\n";

/* KEYS: tokens buckets. ARGV: limit and correction (signed tokens) of each:
 * positive charges more (the bucket may go into debt), negative gives back. */
static const char settle_lua[] = "local t = redis.call('TIME')\n"
                                 "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
                                 "local W = 60000000\n"
                                 "for i = 1, #KEYS do\n"
                                 "  local limit, d = tonumber(ARGV[2*i-1]), tonumber(ARGV[2*i])\n"
                                 "  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')\n"
                                 "  local inc = math.ceil(math.abs(d) * W / limit)\n"
                                 "  if d > 0 then\n"
                                 "    if tat < now then tat = now end\n"
                                 "    tat = tat + inc\n"
                                 "  else\n"
                                 "    tat = tat - inc\n"
                                 "  end\n"
                                 "  if tat > now then\n"
                                 "    redis.call('SET', KEYS[i], string.format('%d', tat), 'PX',\n"
                                 "               math.ceil((tat - now) / 1000) + 1000)\n"
                                 "  else\n"
                                 "    redis.call('DEL', KEYS[i])\n"
                                 "  end\n"
                                 "end\n"
                                 "return 0\n";

/* Arguments of one EVAL, in one allocation. */
struct args {
    int n;
    const char *v[1 + 3 * BREAKER_MAX_BUCKETS];
    size_t len[1 + 3 * BREAKER_MAX_BUCKETS];
    char *text; /* the strings, back to back */
    size_t used, cap;
};

static int args_init(struct args *a, const struct rl_bucket_ref *refs, size_t n)
{
    size_t cap = 32;
    for (size_t i = 0; i < n; i++)
        cap += strlen(refs[i].node) + 16 + 2 * 24;
    a->n = 0;
    a->used = 0;
    a->cap = cap;
    a->text = malloc(cap);
    return a->text ? 0 : -1;
}

static void args_add(struct args *a, const char *fmt, const char *s, long long v)
{
    char *p = a->text + a->used;
    int k = s ? snprintf(p, a->cap - a->used, fmt, s) : snprintf(p, a->cap - a->used, fmt, v);
    if (k < 0 || (size_t)k >= a->cap - a->used)
        k = 0; /* cannot happen: args_init sized it */
    a->v[a->n] = p;
    a->len[a->n++] = (size_t)k;
    a->used += (size_t)k + 1;
}

static void add_key(struct args *a, const struct rl_bucket_ref *r)
{
    args_add(a, r->tokens ? "pc:rl:%s:tok" : "pc:rl:%s:req", r->node, 0);
}

int breaker_rl_redis_reply(const struct rl_bucket_ref *refs, size_t nrefs, const long long *v,
                           size_t n, struct rl_admission *adm, struct rl_refusal *why)
{
    if (n != 3 + nrefs || (v[0] != 0 && v[0] != 1))
        return -1;
    uint64_t tokens = adm->tokens;
    memset(adm, 0, sizeof *adm);
    adm->tokens = tokens;
    for (size_t i = 0; i < nrefs; i++) {
        struct rl_view view;
        /* clamped: a day past now is already "no room" */
        long long us = v[3 + i] < 0 ? 0 : v[3 + i] > 86400000000LL ? 86400000000LL : v[3 + i];
        rl_view_fill(refs[i].limit, (uint64_t)us * 1000u, &view);
        if (refs[i].tokens)
            rl_view_keep_tighter(&adm->tokens_view, &adm->has_tokens, &view);
        else
            rl_view_keep_tighter(&adm->requests, &adm->has_requests, &view);
    }
    if (v[0] == 1)
        return 0;
    if (v[1] < 1 || (size_t)v[1] > nrefs || v[2] < 0)
        return -1;
    const struct rl_bucket_ref *r = &refs[v[1] - 1];
    long long retry = v[2] > 86400000000LL ? 86400000000LL : v[2];
    *why = (struct rl_refusal){r->node, r->tokens, r->limit, (uint64_t)retry * 1000u};
    return 1;
}

struct admit_op {
    struct breaker_set *s;
    const struct breaker_chain *c;
    struct rl_admission *adm;
    struct rl_refusal *why;
    breaker_rl_cb cb;
    void *arg;
};

static void on_admit(void *arg, struct redisReply *rep)
{
    struct admit_op *op = arg;
    int rc = -2;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 3 &&
        rep->elements <= 3 + BREAKER_MAX_BUCKETS) {
        long long v[3 + BREAKER_MAX_BUCKETS];
        size_t i;
        for (i = 0; i < rep->elements && rep->element[i]->type == REDIS_REPLY_INTEGER; i++)
            v[i] = rep->element[i]->integer;
        struct rl_bucket_ref refs[BREAKER_MAX_BUCKETS];
        size_t nrefs = breaker_chain_buckets(op->s, op->c, refs);
        if (i == rep->elements)
            rc = breaker_rl_redis_reply(refs, nrefs, v, i, op->adm, op->why);
        if (rc < 0) {
            rc = -2;
            log_msg(LOG_ERROR, NULL, "rate limits: unexpected reply from the Redis script");
        }
    } else if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
        log_msg(LOG_ERROR, NULL, "rate limits: Redis: %s", rep->str);
    }
    if (rc == 1)
        breaker_count_rate_limited(op->s, op->why->node);
    breaker_rl_cb cb = op->cb;
    void *cb_arg = op->arg;
    free(op);
    cb(cb_arg, rc);
}

int breaker_rl_admit_redis(struct budget_redis *r, struct breaker_set *s,
                           const struct breaker_chain *c, uint64_t tokens, struct rl_admission *adm,
                           struct rl_refusal *why, breaker_rl_cb cb, void *arg)
{
    struct rl_bucket_ref refs[BREAKER_MAX_BUCKETS];
    size_t n = breaker_chain_buckets(s, c, refs);
    memset(adm, 0, sizeof *adm);
    adm->tokens = tokens;
    if (n == 0)
        return 0;
    struct args a;
    struct admit_op *op = malloc(sizeof *op);
    if (op == NULL || args_init(&a, refs, n) < 0) {
        free(op);
        return -2;
    }
    *op = (struct admit_op){s, c, adm, why, cb, arg};
    args_add(&a, "%lld", NULL, (long long)n);
    for (size_t i = 0; i < n; i++)
        add_key(&a, &refs[i]);
    for (size_t i = 0; i < n; i++) {
        args_add(&a, "%lld", NULL, (long long)refs[i].limit);
        args_add(&a, "%lld", NULL, refs[i].tokens ? (long long)tokens : 1LL);
    }
    int rc = budget_redis_eval(r, admit_lua, a.n, a.v, a.len, on_admit, op);
    free(a.text);
    if (rc < 0) {
        free(op);
        return -2;
    }
    return 2;
}

static void on_settled(void *arg, struct redisReply *rep)
{
    (void)arg;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
        log_msg(LOG_WARN, NULL, "rate limits: a token correction was lost (%s)",
                rep ? rep->str : "no connection to Redis");
}

void breaker_rl_settle_redis(struct budget_redis *r, struct breaker_set *s,
                             const struct breaker_chain *c, struct rl_admission *adm,
                             uint64_t actual)
{
    struct rl_bucket_ref refs[BREAKER_MAX_BUCKETS], tok[BREAKER_MAX_BUCKETS];
    long long delta[BREAKER_MAX_BUCKETS];
    size_t n = breaker_chain_buckets(s, c, refs), m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!refs[i].tokens)
            continue;
        uint64_t reserved = adm->tokens > refs[i].limit ? refs[i].limit : adm->tokens;
        long long d = (long long)actual - (long long)reserved;
        if (d == 0)
            continue;
        tok[m] = refs[i];
        delta[m++] = d;
    }
    adm->tokens = actual;
    if (m == 0)
        return;
    struct args a;
    if (args_init(&a, tok, m) < 0)
        return;
    args_add(&a, "%lld", NULL, (long long)m);
    for (size_t i = 0; i < m; i++)
        add_key(&a, &tok[i]);
    for (size_t i = 0; i < m; i++) {
        args_add(&a, "%lld", NULL, (long long)tok[i].limit);
        args_add(&a, "%lld", NULL, delta[i]);
    }
    if (budget_redis_eval(r, settle_lua, a.n, a.v, a.len, on_settled, NULL) < 0)
        log_msg(LOG_WARN, NULL, "rate limits: Redis unavailable, a token correction was lost");
    free(a.text);
}
