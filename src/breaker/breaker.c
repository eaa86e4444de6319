// SPDX-License-Identifier: Apache-2.0
// One circuit breaker: closed -> open after N consecutive errors, half-open
// after the pause with exactly one probe, closed again when it succeeds.
// Sliding windows (BREAKER_SLOTS slots) count calls and errors for the
// error-rate alert and slow answers for the latency backoff. One mutex each.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "breaker/breaker.h"

struct slot {
    uint64_t epoch; /* which slot-width interval these counts are for */
    uint64_t a, b;  /* calls and errors, or measured and slow */
};

struct window {
    uint64_t width_ms; /* window / BREAKER_SLOTS, at least 1 */
    struct slot s[BREAKER_SLOTS];
};

struct breaker {
    atomic_int refs;
    char *id;
    struct breaker_params p;
    pthread_mutex_t mu;
    enum breaker_state state;
    uint32_t consecutive;
    uint32_t opened_errors; /* the run that opened it */
    uint64_t opened_at_ms;
    int probe_inflight;
    uint32_t inflight;
    uint32_t peak_inflight; /* since the last backoff adjustment */
    uint32_t limit;         /* concurrency limit; 0 = none */
    uint32_t backoff_from;  /* the concurrency seen when the backoff began */
    uint64_t adjusted_at_ms;
    uint64_t last_alert_ms;
    int alerted;
    struct window errwin, latwin;
    uint64_t trips, alerts, refused;
};

void breaker_params_default(struct breaker_params *p)
{
    *p = (struct breaker_params){
        .consecutive_errors = 10,
        .pause_ms = 60000,
        .latency_p90_ms = 0,
        .window_ms = 30000,
        .error_rate = 0.5,
        .alert_window_ms = 300000,
        .min_calls = 10,
        .webhook = NULL,
    };
}

static void window_init(struct window *w, uint64_t window_ms)
{
    memset(w, 0, sizeof *w);
    w->width_ms = window_ms / BREAKER_SLOTS;
    if (w->width_ms == 0)
        w->width_ms = 1;
}

static void window_add(struct window *w, uint64_t now_ms, uint64_t a, uint64_t b)
{
    uint64_t e = now_ms / w->width_ms;
    struct slot *s = &w->s[e % BREAKER_SLOTS];
    if (s->epoch != e) {
        s->epoch = e;
        s->a = s->b = 0;
    }
    s->a += a;
    s->b += b;
}

/* Sums of the slots still inside the window at now_ms. */
static void window_sum(const struct window *w, uint64_t now_ms, uint64_t *a, uint64_t *b)
{
    uint64_t e = now_ms / w->width_ms;
    *a = *b = 0;
    for (int i = 0; i < BREAKER_SLOTS; i++) {
        const struct slot *s = &w->s[i];
        if (s->epoch + BREAKER_SLOTS > e && s->epoch <= e) {
            *a += s->a;
            *b += s->b;
        }
    }
}

struct breaker *breaker_new(const char *id, const struct breaker_params *p)
{
    struct breaker *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->id = strdup(id);
    b->p = *p;
    b->p.webhook = p->webhook ? strdup(p->webhook) : NULL;
    if (b->id == NULL || (p->webhook && b->p.webhook == NULL) ||
        pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b->id);
        free(b->p.webhook);
        free(b);
        return NULL;
    }
    atomic_init(&b->refs, 1);
    window_init(&b->errwin, p->alert_window_ms);
    window_init(&b->latwin, p->window_ms);
    return b;
}

struct breaker *breaker_ref(struct breaker *b)
{
    if (b)
        atomic_fetch_add(&b->refs, 1);
    return b;
}

void breaker_unref(struct breaker *b)
{
    if (b == NULL || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b->id);
    free(b->p.webhook);
    free(b);
}

const char *breaker_id(const struct breaker *b)
{
    return b->id;
}

const struct breaker_params *breaker_params(const struct breaker *b)
{
    return &b->p;
}

/* open -> half-open once the pause is over. Under the lock. */
static void tick(struct breaker *b, uint64_t now_ms)
{
    if (b->state == BREAKER_OPEN && now_ms >= b->opened_at_ms + b->p.pause_ms) {
        b->state = BREAKER_HALF_OPEN;
        b->probe_inflight = 0;
    }
}

int breaker_admit(struct breaker *b, uint64_t now_ms, struct breaker_ticket *t,
                  struct breaker_why *why)
{
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    tick(b, now_ms);
    memset(why, 0, sizeof *why);
    t->b = b;
    t->probe = 0;
    if (b->state == BREAKER_OPEN) {
        why->reason = BREAKER_REFUSED_OPEN;
        why->retry_after_ms = b->opened_at_ms + b->p.pause_ms - now_ms;
        why->errors = b->opened_errors;
        rc = 1;
    } else if (b->state == BREAKER_HALF_OPEN) {
        if (b->probe_inflight) {
            why->reason = BREAKER_REFUSED_PROBING;
            why->retry_after_ms = 1000;
            why->errors = b->opened_errors;
            rc = 1;
        } else {
            b->probe_inflight = 1;
            t->probe = 1;
        }
    } else if (b->limit > 0 && b->inflight >= b->limit) {
        why->reason = BREAKER_REFUSED_BACKOFF;
        why->retry_after_ms = 1000;
        why->concurrency = b->limit;
        rc = 1;
    }
    if (rc == 0) {
        b->inflight++;
        if (b->inflight > b->peak_inflight)
            b->peak_inflight = b->inflight;
    } else {
        b->refused++;
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* Latency backoff: halve the concurrency limit while more than a tenth of the
 * answers in the window are slower than latency_p90 (p90 above it), at most
 * once per window; double it back (then lift it) once they are not. */
static int adjust_backoff(struct breaker *b, uint64_t now_ms)
{
    uint64_t timed, slow;
    if (b->p.latency_p90_ms == 0)
        return 0;
    window_sum(&b->latwin, now_ms, &timed, &slow);
    int judged = timed >= b->p.min_calls && timed > 0;
    int over = judged && slow * 10 > timed;
    int settled = b->limit == 0 || now_ms >= b->adjusted_at_ms + b->p.window_ms;
    if (over && settled) {
        uint32_t base = b->limit ? b->limit : b->peak_inflight;
        uint32_t next = base / 2 > 0 ? base / 2 : 1;
        if (b->limit != 0 && next == b->limit)
            return 0;
        if (b->limit == 0)
            b->backoff_from = base;
        b->limit = next;
        b->adjusted_at_ms = now_ms;
        b->peak_inflight = b->inflight;
        return BREAKER_EV_BACKOFF;
    }
    /* recover on a judged window, or on one without any answer at all */
    if (!over && (judged || timed == 0) && b->limit > 0 && settled) {
        uint64_t next = (uint64_t)b->limit * 2;
        b->limit = next >= b->backoff_from ? 0 : (uint32_t)next;
        b->adjusted_at_ms = now_ms;
        return BREAKER_EV_RECOVERED;
    }
    return 0;
}

static int check_alert(struct breaker *b, uint64_t now_ms)
{
    uint64_t calls, errors;
    if (b->p.error_rate <= 0)
        return 0;
    window_sum(&b->errwin, now_ms, &calls, &errors);
    if (calls == 0 || calls < b->p.min_calls || (double)errors <= b->p.error_rate * (double)calls)
        return 0;
    if (b->alerted && now_ms < b->last_alert_ms + b->p.alert_window_ms)
        return 0;
    b->alerted = 1;
    b->last_alert_ms = now_ms;
    b->alerts++;
    return BREAKER_EV_ALERT;
}

int breaker_done(struct breaker_ticket *t, enum breaker_outcome o, uint64_t latency_ms,
                 uint64_t now_ms)
{
    struct breaker *b = t->b;
    int ev = 0;
    if (b == NULL)
        return 0;
    t->b = NULL;
    pthread_mutex_lock(&b->mu);
    if (b->inflight > 0)
        b->inflight--;
    tick(b, now_ms);
    if (o == BREAKER_ABANDON) {
        if (t->probe && b->state == BREAKER_HALF_OPEN)
            b->probe_inflight = 0;
        pthread_mutex_unlock(&b->mu);
        return 0;
    }
    int err = o == BREAKER_ERROR;
    window_add(&b->errwin, now_ms, 1, (uint64_t)err);
    if (!err && b->p.latency_p90_ms > 0)
        window_add(&b->latwin, now_ms, 1, latency_ms > b->p.latency_p90_ms);
    if (t->probe && b->state == BREAKER_HALF_OPEN) {
        if (err) {
            b->state = BREAKER_OPEN;
            b->opened_at_ms = now_ms;
            b->trips++;
            ev |= BREAKER_EV_OPENED;
        } else {
            b->state = BREAKER_CLOSED;
            b->consecutive = 0;
            ev |= BREAKER_EV_CLOSED;
        }
        b->probe_inflight = 0;
    } else if (b->state == BREAKER_CLOSED) {
        if (err) {
            b->consecutive++;
            if (b->p.consecutive_errors > 0 && b->consecutive >= b->p.consecutive_errors) {
                b->state = BREAKER_OPEN;
                b->opened_at_ms = now_ms;
                b->opened_errors = b->consecutive;
                b->trips++;
                ev |= BREAKER_EV_OPENED;
            }
        } else {
            b->consecutive = 0;
        }
    }
    if (err)
        ev |= check_alert(b, now_ms);
    ev |= adjust_backoff(b, now_ms);
    pthread_mutex_unlock(&b->mu);
    return ev;
}

void breaker_reset(struct breaker *b)
{
    pthread_mutex_lock(&b->mu);
    b->state = BREAKER_CLOSED;
    b->consecutive = 0;
    b->probe_inflight = 0;
    b->limit = 0;
    b->peak_inflight = b->inflight;
    window_init(&b->errwin, b->p.alert_window_ms);
    window_init(&b->latwin, b->p.window_ms);
    pthread_mutex_unlock(&b->mu);
}

void breaker_status(struct breaker *b, uint64_t now_ms, struct breaker_status *st)
{
    pthread_mutex_lock(&b->mu);
    tick(b, now_ms);
    memset(st, 0, sizeof *st);
    st->state = b->state;
    st->consecutive = b->consecutive;
    if (b->state == BREAKER_OPEN)
        st->retry_after_ms = b->opened_at_ms + b->p.pause_ms - now_ms;
    st->concurrency_limit = b->limit;
    st->inflight = b->inflight;
    window_sum(&b->errwin, now_ms, &st->calls, &st->errors);
    window_sum(&b->latwin, now_ms, &st->timed, &st->slow);
    st->trips = b->trips;
    st->alerts = b->alerts;
    st->refused = b->refused;
    pthread_mutex_unlock(&b->mu);
}

const char *breaker_state_name(enum breaker_state s)
{
    switch (s) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return "open";
    case BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "?";
}
