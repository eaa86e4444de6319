// SPDX-License-Identifier: Apache-2.0
// The identity stage of the pipeline: who is calling, on whose behalf. A
// request presents a portcullis API key, a JWT from an external IdP, or a
// delegation token the gateway minted itself (RFC 8693 token exchange); the
// stage turns it into a principal with the whole delegation chain and
// answers 401 (or 403 for scope) before any protocol handler runs.
#ifndef PORTCULLIS_IDENTITY_IDENTITY_H
#define PORTCULLIS_IDENTITY_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct http_exchange;
struct state;

/* Who is calling. Lives in the exchange's arena (ex->principal). */
struct identity_principal {
    const char *agent;             /* the agent this request runs as */
    const char *auth;              /* "api_key" | "jwt" | "delegation" */
    const char **chain;            /* root caller first, agent last */
    size_t chain_len;              /* >= 1 */
    const char *scope;             /* space-separated; NULL = unrestricted */
    double budget_usd;             /* cap carried by the token; < 0 = none */
    const char *credential_id;     /* API key id or token jti (never the secret) */
    const char *parent_request_id; /* request that minted the token, or NULL */
    const char *root_request_id;   /* first request of the chain, or NULL */
    int64_t expires;               /* unix seconds; 0 = never */
    const char *root_key_id;       /* API key the chain started from, or NULL:
                                    * revoking it revokes every token minted from it */
    /* containment: what the session a delegation token was minted from had read
     * (pcl.taint): guard_taint_flag bits and the tools that set them, or 0 / NULL */
    unsigned taint;
    const char *taint_private, *taint_untrusted;
};

/* Process-wide identity context: API key snapshot, JWKS, gateway signing
 * keys, and a background thread that keeps them fresh (revocations and key
 * rotations made by the CLI reach a running gateway within a second). */
struct identity;

/* Opens its own connection to the state at cfg->state_path, creates the
 * per-install secret and the first signing key when absent, loads keys and
 * the JWKS, and starts the refresher thread. NULL with a message in err.
 * Caller owns the result; free with identity_free. */
struct identity *identity_new(const struct config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void identity_free(struct identity *id);

/* The stage. Returns 0 when the request may go on (ex->principal set, or
 * NULL for an anonymous request when identity.required is false), -1 when it
 * has already answered (401 no/invalid credential, 403 scope), or 1 when the
 * request waits for a JWKS refetch (a token names a key id the cached set
 * lacks): the caller returns, and the exchange is dispatched again through
 * the server's handler once the fetch has finished. */
int identity_authenticate(struct identity *id, struct http_exchange *ex);

/* 1 when p's scope covers item ("model:NAME", "tool:SERVER/TOOL",
 * "agent:NAME"; a protocol name or a trailing '*' covers a family); p NULL
 * or without a scope is unrestricted. For stages that check the scope of
 * what a request names themselves (the A2A agent in the path). */
int identity_scope_allows(const struct identity_principal *p, const char *item);

/* POST /oauth/token (RFC 8693 token exchange). Always answers. */
void identity_token_endpoint(struct identity *id, struct http_exchange *ex);

/* GET /.well-known/jwks.json: the gateway's public signing keys. */
void identity_jwks_endpoint(struct identity *id, struct http_exchange *ex);

/* A short-lived gateway-signed JWT (ES256, verifiable with the keys at
 * /.well-known/jwks.json) telling an upstream — an MCP server, an A2A agent —
 * who is really calling: iss = issuer (identity.issuer), aud = audience (the
 * upstream), sub = the calling agent ("anonymous" when p is NULL), act = the
 * delegation chain back to the root caller (nested, innermost = root),
 * scope = the caller's scope, pcl = {rid: request_id, root: the chain's first
 * request}. Expires after ttl_s seconds, or with the caller's own token.
 * Thread-safe. A malloc'd string, or NULL (no signing key, bad arguments). */
char *identity_outbound_token(struct identity *id, const char *issuer,
                              const struct identity_principal *p, const char *audience,
                              const char *request_id, int64_t ttl_s);

/* Containment across agents. The MCP hub publishes what each session has read (flags:
 * guard_taint_flag bits, with the tools that set them; flags 0 forgets the session), so
 * that POST /oauth/token with an Mcp-Session-Id header mints a token carrying them.
 * Thread-safe. get: 0 with the flags when session is a tainted session of owner (the
 * MCP session owner string: agent, then each agent of the chain, '\n'-separated),
 * else -1 with *flags = 0. */
void identity_session_taint_set(struct identity *id, const char *session, const char *owner,
                                unsigned flags, const char *private_src, const char *untrusted_src);
int identity_session_taint_get(struct identity *id, const char *session, const char *owner,
                               unsigned *flags, char *private_src, size_t pcap, char *untrusted_src,
                               size_t ucap);
/* ORs flags into session's entry (creating it when absent) when owner owns it; an
 * entry of another owner is left as it is. set merges too (a flag once recorded stays
 * until flags 0 forgets the session); set by the hub re-owns an entry another owner
 * made under that id. */
void identity_session_taint_add(struct identity *id, const char *session, const char *owner,
                                unsigned flags, const char *private_src, const char *untrusted_src);

/* `portcullis keys ...` (argv[0] == "keys"). Returns the exit code. */
int identity_keys_cli(int argc, char **argv);

#endif
