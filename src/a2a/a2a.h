// SPDX-License-Identifier: Apache-2.0
// The A2A proxy: agents of the a2a: section are reached at /a2a/<name>
// (JSON-RPC, answers and event streams forwarded as they arrive) and
// /a2a/<name>/.well-known/agent-card.json (the agent's card, pointed at the
// gateway). Each call runs behind identity, is decided by Cedar
// (Action::"send_message" on Agent::"<name>"), carries a gateway-signed
// identity token and a traceparent upstream, and has its reply scanned.
#ifndef PORTCULLIS_A2A_A2A_H
#define PORTCULLIS_A2A_A2A_H

struct http_exchange;
struct identity;

/* Process-wide: the agent card cache, shared by the workers. */
struct a2a;

/* NULL on out of memory. Caller owns the result (a2a_free, after the
 * workers have stopped). */
struct a2a *a2a_new(void) __attribute__((warn_unused_result));
void a2a_free(struct a2a *a);

/* 1 when the request is for /a2a or below it. */
int a2a_route_match(const struct http_exchange *ex);

/* Answers the exchange (now or later, from its loop): identity (required on
 * these routes), the agent by name, policy, then the upstream call. */
void a2a_endpoint(struct a2a *a, struct identity *id, struct http_exchange *ex);

#endif
