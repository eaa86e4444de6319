// SPDX-License-Identifier: Apache-2.0
// With state.redis, spend lives in Redis, not in this process: a thread of
// its own copies every node's spend and reservations of the current periods
// from Redis into the store's ledger once per interval (one pipelined round
// trip over a blocking connection of its own), so /metrics shows the
// numbers every instance shares rather than what this one settled.
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget/budget.h"
#include "budget/internal.h"
#include "core/log.h"

struct budget_redis_mirror {
    char *host, *password;
    int port, db;
    unsigned interval_ms;
    struct ledger *lg; /* one ref */
    redisContext *c;   /* NULL while disconnected */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int stop;
    int warned; /* the last attempt failed and said so */
};

static int connect_redis(struct budget_redis_mirror *m)
{
    struct timeval tv = {1, 0};
    m->c = redisConnectWithTimeout(m->host, m->port, tv);
    if (m->c == NULL || m->c->err) {
        if (!m->warned)
            log_msg(LOG_WARN, NULL, "budgets: /metrics cannot read spend from Redis at %s:%d: %s",
                    m->host, m->port, m->c ? m->c->errstr : "out of memory");
        m->warned = 1;
        if (m->c)
            redisFree(m->c);
        m->c = NULL;
        return -1;
    }
    redisSetTimeout(m->c, tv);
    redisReply *rep;
    if (m->password && (rep = redisCommand(m->c, "AUTH %s", m->password)) != NULL)
        freeReplyObject(rep);
    if (m->db && (rep = redisCommand(m->c, "SELECT %d", m->db)) != NULL)
        freeReplyObject(rep);
    return 0;
}

/* One refresh: HMGET spent reserved of every node and period, pipelined.
 * 0, or -1 when the connection failed (dropped; the next round reconnects). */
static int refresh(struct budget_redis_mirror *m)
{
    if (m->c == NULL && connect_redis(m) < 0)
        return -1;
    time_t now = time(NULL);
    int64_t keys[BUDGET_NPERIODS];
    for (int p = 0; p < BUDGET_NPERIODS; p++)
        keys[p] = budget_period_key((enum budget_period)p, now);
    /* the ids (counters are never freed before the ledger, so their ids
     * stay valid; the list may grow while we read) */
    pthread_mutex_lock(&m->lg->lock);
    size_t n = m->lg->n;
    struct counters **items = n ? malloc(n * sizeof *items) : NULL;
    if (items)
        memcpy(items, m->lg->items, n * sizeof *items);
    pthread_mutex_unlock(&m->lg->lock);
    if (items == NULL)
        return 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        for (int p = 0; p < BUDGET_NPERIODS && rc == 0; p++)
            if (redisAppendCommand(m->c, "HMGET pc:b:%s:%d:%lld spent reserved", items[i]->id, p,
                                   (long long)keys[p]) != REDIS_OK)
                rc = -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        for (int p = 0; p < BUDGET_NPERIODS && rc == 0; p++) {
            redisReply *rep = NULL;
            if (redisGetReply(m->c, (void **)&rep) != REDIS_OK || rep == NULL) {
                rc = -1;
                break;
            }
            if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
                long long s = rep->element[0]->str ? atoll(rep->element[0]->str) : 0;
                long long r = rep->element[1]->str ? atoll(rep->element[1]->str) : 0;
                pthread_mutex_lock(&m->lg->lock);
                items[i]->key[p] = keys[p];
                items[i]->spent[p] = s;
                items[i]->reserved[p] = r;
                pthread_mutex_unlock(&m->lg->lock);
            }
            freeReplyObject(rep);
        }
    }
    free(items);
    if (rc < 0) {
        if (!m->warned)
            log_msg(LOG_WARN, NULL, "budgets: /metrics lost its Redis connection: %s",
                    m->c->errstr[0] ? m->c->errstr : "error");
        m->warned = 1;
        redisFree(m->c);
        m->c = NULL;
        return -1;
    }
    m->warned = 0;
    return 0;
}

static void *mirror_main(void *arg)
{
    struct budget_redis_mirror *m = arg;
    pthread_mutex_lock(&m->mu);
    while (!m->stop) {
        pthread_mutex_unlock(&m->mu);
        (void)refresh(m);
        pthread_mutex_lock(&m->mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += m->interval_ms / 1000;
        until.tv_nsec += (long)(m->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!m->stop && pthread_cond_timedwait(&m->wake, &m->mu, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

static void mirror_release(struct budget_redis_mirror *m)
{
    if (m->password) {
        explicit_bzero(m->password, strlen(m->password));
        free(m->password);
    }
    free(m->host);
    if (m->lg)
        budget_ledger_unref(m->lg);
    free(m);
}

struct budget_redis_mirror *budget_redis_mirror_start(const char *url, struct budget_store *s,
                                                      unsigned interval_ms, char *err,
                                                      size_t errlen)
{
    struct budget_redis_mirror *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (budget_redis_parse_url(url, &m->host, &m->port, &m->password, &m->db) < 0) {
        snprintf(err, errlen, "state.redis: expected redis://[:password@]host[:port][/db]");
        mirror_release(m);
        return NULL;
    }
    m->interval_ms = interval_ms ? interval_ms : 1000;
    m->lg = budget_store_ledger(s);
    if (m->lg == NULL) {
        snprintf(err, errlen, "no budget store");
        mirror_release(m);
        return NULL;
    }
    budget_ledger_ref(m->lg);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->wake, NULL);
    if (pthread_create(&m->thread, NULL, mirror_main, m) != 0) {
        snprintf(err, errlen, "cannot start the Redis mirror thread");
        pthread_cond_destroy(&m->wake);
        pthread_mutex_destroy(&m->mu);
        mirror_release(m);
        return NULL;
    }
    return m;
}

void budget_redis_mirror_stop(struct budget_redis_mirror *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    m->stop = 1;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    if (m->c)
        redisFree(m->c);
    pthread_cond_destroy(&m->wake);
    pthread_mutex_destroy(&m->mu);
    mirror_release(m);
}
