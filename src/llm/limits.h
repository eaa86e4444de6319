// SPDX-License-Identifier: Apache-2.0
// Internal to the llm module: the guard-in stage of an LLM call — rate
// limits and agent breakers at admission, a provider's breaker per attempt
// (src/breaker). proxy.c calls these hooks; limits.c holds the glue.
#ifndef PORTCULLIS_LLM_LIMITS_H
#define PORTCULLIS_LLM_LIMITS_H

#include <stdint.h>

#include "breaker/breaker.h"

struct llm_call;

/* Per call, in the call (the arena). Zero = nothing admitted. */
struct llm_limits {
    struct breaker_set *set;    /* the snapshot's, NULL when none */
    struct breaker_chain chain; /* caller and ancestors */
    int has_rl;
    struct rl_admission rl;
    struct rl_refusal why;
    struct breaker_ticket agent[8]; /* agent breakers of the chain */
    size_t nagent;
    struct breaker_ticket target; /* the current attempt's provider breaker */
    uint64_t ttfb_ns;             /* the attempt's answer headers arrived */
    int attempt_error;            /* a committed stream broke */
    int refused_by_breaker;       /* no target left: every one was skipped */
    const char *skipped;          /* id of the last breaker that skipped a target */
    struct breaker_why skipped_why;
};

/* Agent breakers and rate limits of the caller's chain, after the budget
 * reservation. 0: go on (x-ratelimit-* headers added). -1: answered (429
 * rate_limit_exceeded, 503 circuit_breaker_open, 503
 * rate_limit_store_unavailable); the call is gone. 1: pending on Redis
 * (state.redis): llm_call_admitted continues the call, or it is answered. */
int llm_limits_admit(struct llm_call *call) __attribute__((warn_unused_result));

/* The breaker of call->target's provider. 0: attempt it; 1: skip it (its
 * breaker is open or backing off). */
int llm_limits_target(struct llm_call *call) __attribute__((warn_unused_result));

/* Every remaining target was skipped by its breaker: answers 503 naming the
 * breaker and releases the call. */
void llm_limits_no_target(struct llm_call *call);

/* The current attempt failed (before anything reached the client). */
void llm_limits_attempt_failed(struct llm_call *call);

/* The call ends (from llm_call_release): the attempt's and the agents'
 * outcomes, and the tokens corrected with the real usage. */
void llm_limits_finish(struct llm_call *call);

#endif
