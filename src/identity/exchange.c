// SPDX-License-Identifier: Apache-2.0
// POST /oauth/token: RFC 8693 token exchange. The caller presents its own
// credential as subject_token and names a sub-agent; the gateway mints a
// short-lived ES256 JWT for it whose nested act claims carry the chain, and
// whose scope and budget can only be narrower than the caller's. Also
// GET /.well-known/jwks.json, the keys that verify those tokens.
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/hex.h"
#include "guard/guard.h"
#include "http/server.h"
#include "identity/internal.h"
#include "policy/policy.h"

#define GRANT_TOKEN_EXCHANGE "urn:ietf:params:oauth:grant-type:token-exchange"
#define TT_ACCESS "urn:ietf:params:oauth:token-type:access_token"
#define TT_JWT "urn:ietf:params:oauth:token-type:jwt"
#define MAX_PARAMS 32

void identity_oauth_error(struct http_exchange *ex, int status, const char *error, const char *fmt,
                          ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    buf_t b;
    buf_init(&b, 4096);
    int rc = buf_append_lit(&b, "{\"error\":");
    rc |= buf_append_json_string(&b, error, strlen(error));
    rc |= buf_append_lit(&b, ",\"error_description\":");
    rc |= buf_append_json_string(&b, msg, strlen(msg));
    rc |= buf_append_lit(&b, "}\n");
    ex->error_type = error;
    if (ex->decision == NULL)
        ex->decision = "deny";
    ex->decision_reason = arena_printf(&ex->arena, "%s: %s", error, msg);
    http_add_header(ex, "Cache-Control", "no-store");
    if (rc == 0)
        http_respond(ex, status, "application/json", b.data, b.len);
    else
        http_respond(ex, 500, "application/json", "{}\n", 3);
    buf_free(&b);
}

/* ---- application/x-www-form-urlencoded ------------------------------------ */

struct param {
    const char *name, *value;
};

/* Decodes s[0..n) into the arena; NULL on a bad escape or a NUL byte. */
static char *form_decode(struct http_exchange *ex, const char *s, size_t n)
{
    char *out = arena_alloc(&ex->arena, n + 1);
    size_t k = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return NULL;
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return NULL;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0')
            return NULL;
        out[k++] = c;
    }
    out[k] = '\0';
    return out;
}

/* -1 malformed, -2 duplicate parameter (*dup names it), else the count. */
static int form_parse(struct http_exchange *ex, const char *s, size_t len, struct param *out,
                      const char **dup)
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(s + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - s) : len;
        if (end > i) {
            const char *eq = memchr(s + i, '=', end - i);
            if (eq == NULL || n == MAX_PARAMS)
                return -1;
            char *name = form_decode(ex, s + i, (size_t)(eq - (s + i)));
            char *value = form_decode(ex, eq + 1, end - (size_t)(eq + 1 - s));
            if (name == NULL || value == NULL)
                return -1;
            for (int k = 0; k < n; k++) {
                if (strcmp(out[k].name, name) == 0) {
                    *dup = out[k].name;
                    return -2;
                }
            }
            out[n].name = name;
            out[n].value = value;
            n++;
        }
        i = end + 1;
    }
    return n;
}

static const char *param(const struct param *p, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(p[i].name, name) == 0)
            return p[i].value[0] != '\0' ? p[i].value : NULL;
    return NULL;
}

static int token_type_ok(const char *t)
{
    return strcmp(t, TT_ACCESS) == 0 || strcmp(t, TT_JWT) == 0;
}

/* {"sub": chain[i], "act": <chain[i-1]...>} down to the root. */
/* The first n agents of p's chain as nested RFC 8693 "act" claims: the
 * outermost is chain[n-1], the innermost the root caller. */
static json_t *act_claim(const struct identity_principal *p, size_t n)
{
    json_t *act = NULL;
    for (size_t i = 0; i < n && i < p->chain_len; i++) {
        json_t *a = json_pack("{s:s}", "sub", p->chain[i]);
        if (a == NULL) {
            json_decref(act);
            return NULL;
        }
        if (act != NULL)
            json_object_set_new(a, "act", act);
        act = a;
    }
    return act;
}

#define JTI_LEN 24 /* 96 random bits in hex */

/* A fresh token id. 0, or -1 when the RNG fails. */
static int make_jti(char out[JTI_LEN + 1])
{
    unsigned char rnd[JTI_LEN / 2];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return -1;
    hex_encode(rnd, sizeof rnd, out);
    return 0;
}

static int agent_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

/* policy: may p delegate to target? Action::"delegate" on Agent::"target",
 * with the caller's chain, the depth the child would have, and the scope and
 * budget the child asks for in the context. 0 when allowed (or no policy
 * set); -1 when it has answered (403 access_denied naming the permission and
 * the determining policies, or 500). */
static int delegate_allowed(struct http_exchange *ex, const struct identity_principal *p,
                            const char *target, const char *scope, double budget)
{
    const struct config_policy *pol = &ex->cfg->policy;
    if (pol->set == NULL)
        return 0;
    json_t *ctx = policy_chain_context(p->chain, p->chain_len, p->chain_len);
    if (ctx != NULL) {
        json_object_set_new(ctx, "scope", json_string(scope ? scope : ""));
        if (budget >= 0)
            json_object_set_new(ctx, "budget_micro_usd", json_integer((json_int_t)(budget * 1e6)));
    }
    struct policy_request req = {
        .principal = policy_uid_make("Agent", p->agent),
        .action = policy_uid_make("Action", "delegate"),
        .resource = policy_uid_make("Agent", target),
        .context = ctx,
    };
    struct policy_decision d;
    int rc = ctx ? policy_decide(pol->set, pol->entities, &req, &d) : -1;
    json_decref(ctx);
    if (rc < 0) {
        if (ctx)
            policy_decision_free(&d);
        ex->decision = "error";
        identity_oauth_error(ex, 500, "server_error", "the policy decision for this request failed");
        return -1;
    }
    int deny = policy_denies(&d, pol->default_allow);
    int forbid = !d.allow && d.nreasons > 0;
    ex->policy_ids = policy_ids_dup(&d, &ex->arena);
    policy_decision_free(&d);
    if (!deny)
        return 0;
    if (forbid)
        identity_oauth_error(ex, 403, "access_denied",
                             "permission denied: Action::\"delegate\" on Agent::\"%.64s\" for "
                             "Agent::\"%.64s\" is forbidden by policy %.200s",
                             target, p->agent, ex->policy_ids ? ex->policy_ids : "");
    else
        identity_oauth_error(ex, 403, "access_denied",
                             "permission denied: no policy permits Action::\"delegate\" on "
                             "Agent::\"%.64s\" for Agent::\"%.64s\"",
                             target, p->agent);
    return -1;
}

void identity_token_endpoint(struct identity *id, struct http_exchange *ex)
{
    const struct config *cfg = ex->cfg;
    const struct config_identity *ic = &cfg->identity;
    const struct http_request *r = ex->req;
    struct param ps[MAX_PARAMS];
    const char *dup = NULL, *code = NULL;
    char why[256];

    ex->route = "oauth_token";
    ex->action = "token_exchange";
    if (strcmp(r->method, "POST") != 0) {
        http_add_header(ex, "Allow", "POST");
        identity_oauth_error(ex, 405, "invalid_request", "use POST");
        return;
    }
    const struct http_header *ct = http_request_header(r, "content-type");
    if (ct == NULL || strncasecmp(ct->value, "application/x-www-form-urlencoded", 33) != 0) {
        identity_oauth_error(ex, 400, "invalid_request",
                             "the body must be application/x-www-form-urlencoded");
        return;
    }
    int n = form_parse(ex, r->body.data ? r->body.data : "", r->body.len, ps, &dup);
    if (n == -2) {
        identity_oauth_error(ex, 400, "invalid_request", "parameter %.40s is repeated", dup);
        return;
    }
    if (n < 0) {
        identity_oauth_error(ex, 400, "invalid_request", "malformed form body");
        return;
    }
    const char *grant = param(ps, n, "grant_type");
    if (grant == NULL || strcmp(grant, GRANT_TOKEN_EXCHANGE) != 0) {
        identity_oauth_error(ex, 400, "unsupported_grant_type",
                             "grant_type must be " GRANT_TOKEN_EXCHANGE);
        return;
    }
    const char *subject = param(ps, n, "subject_token");
    const char *subject_type = param(ps, n, "subject_token_type");
    const char *requested = param(ps, n, "requested_token_type");
    const char *actor = param(ps, n, "actor_token");
    const char *actor_type = param(ps, n, "actor_token_type");
    const char *scope = param(ps, n, "scope");
    const char *budget_s = param(ps, n, "budget_usd");
    const char *target = param(ps, n, "audience");
    if (target == NULL)
        target = param(ps, n, "resource");
    if (subject == NULL || subject_type == NULL || !token_type_ok(subject_type)) {
        identity_oauth_error(ex, 400, "invalid_request",
                             "subject_token and subject_token_type (" TT_ACCESS " or " TT_JWT
                             ") are required");
        return;
    }
    if (requested != NULL && !token_type_ok(requested)) {
        identity_oauth_error(ex, 400, "invalid_request",
                             "requested_token_type must be " TT_ACCESS " or " TT_JWT);
        return;
    }
    if (target == NULL) {
        identity_oauth_error(ex, 400, "invalid_request",
                             "name the sub-agent with audience=ID or resource=agent:ID");
        return;
    }
    if (strncmp(target, "agent:", 6) == 0)
        target += 6;
    ex->resource = arena_printf(&ex->arena, "agent:%s", target);
    if (!agent_id_ok(target)) {
        identity_oauth_error(ex, 400, "invalid_target",
                             "the sub-agent id must be 1-64 of A-Z a-z 0-9 . _ -");
        return;
    }
    if (scope != NULL && !scope_valid(scope)) {
        identity_oauth_error(ex, 400, "invalid_scope", "malformed scope");
        return;
    }
    double budget = -1;
    if (budget_s != NULL) {
        char *end;
        budget = strtod(budget_s, &end);
        if (*end != '\0' || !(budget >= 0 && budget < 1e12)) {
            identity_oauth_error(ex, 400, "invalid_request",
                                 "budget_usd must be a non-negative number");
            return;
        }
    }

    /* Who is asking: the subject token authenticates the caller. */
    struct identity_principal *p = NULL;
    if (identity_resolve(id, ex, subject, strlen(subject), &p, &code, why, sizeof why) < 0) {
        identity_oauth_error(ex, 400, "invalid_request", "subject_token: %s", why);
        return;
    }
    ex->principal = p;
    if (actor != NULL) {
        struct identity_principal *a = NULL;
        if (actor_type == NULL || !token_type_ok(actor_type)) {
            identity_oauth_error(ex, 400, "invalid_request", "actor_token needs actor_token_type");
            return;
        }
        if (identity_resolve(id, ex, actor, strlen(actor), &a, &code, why, sizeof why) < 0) {
            identity_oauth_error(ex, 400, "invalid_request", "actor_token: %s", why);
            return;
        }
        if (strcmp(a->agent, target) != 0) {
            identity_oauth_error(ex, 400, "invalid_request",
                                 "actor_token authenticates %.64s, not the sub-agent %.64s",
                                 a->agent, target);
            return;
        }
    }
    for (size_t i = 0; i < p->chain_len; i++) {
        if (strcmp(p->chain[i], target) == 0) {
            identity_oauth_error(ex, 400, "invalid_target",
                                 "agent %.64s is already in the delegation chain", target);
            return;
        }
    }
    if (cfg->nagents > 0 && config_find_agent(cfg, target) == NULL) {
        identity_oauth_error(ex, 400, "invalid_target", "unknown agent %.64s (not in agents:)",
                             target);
        return;
    }
    if (p->chain_len > ic->max_depth) {
        identity_oauth_error(ex, 400, "invalid_request",
                             "delegation depth %zu would exceed identity.delegation.max_depth "
                             "(%u)",
                             p->chain_len, ic->max_depth);
        return;
    }
    /* Attenuation: the child gets at most what the parent has. */
    const char *bad;
    size_t bad_len;
    if (scope == NULL)
        scope = p->scope;
    else if (!scope_covers(p->scope, scope, &bad, &bad_len)) {
        identity_oauth_error(
            ex, 400, "invalid_scope", "scope '%.*s' is not within the scope of %.64s (%.200s)",
            (int)(bad_len > 100 ? 100 : bad_len), bad, p->agent, p->scope ? p->scope : "");
        return;
    }
    if (p->budget_usd >= 0 && budget > p->budget_usd) {
        identity_oauth_error(ex, 400, "invalid_scope",
                             "budget_usd %.4f exceeds the cap of %.64s (%.4f)", budget, p->agent,
                             p->budget_usd);
        return;
    }
    if (budget < 0)
        budget = p->budget_usd;
    if (delegate_allowed(ex, p, target, scope, budget) < 0)
        return;

    /* Containment: a token delegated from an MCP session (named by Mcp-Session-Id, one
     * of the caller's own) carries what that session read, on top of what the caller's
     * token carried already. */
    unsigned taint = p->taint;
    const char *taint_private = p->taint_private, *taint_untrusted = p->taint_untrusted;
    char sess_private[96], sess_untrusted[160];
    const struct http_header *sh = http_request_header(r, "mcp-session-id");
    if (sh != NULL) {
        buf_t owner;
        unsigned f = 0;
        buf_init(&owner, 1 << 16);
        int orc = buf_appendf(&owner, "%s", p->agent);
        for (size_t i = 0; i < p->chain_len; i++)
            orc |= buf_appendf(&owner, "\n%s", p->chain[i]);
        if (orc == 0 && identity_session_taint_get(id, sh->value, owner.data, &f, sess_private,
                                                   sizeof sess_private, sess_untrusted,
                                                   sizeof sess_untrusted) == 0) {
            if ((f & GUARD_TAINT_PRIVATE_DATA) && !(taint & GUARD_TAINT_PRIVATE_DATA))
                taint_private = sess_private;
            if ((f & GUARD_TAINT_UNTRUSTED) && !(taint & GUARD_TAINT_UNTRUSTED))
                taint_untrusted = sess_untrusted;
            taint |= f;
        }
        buf_free(&owner);
    }

    struct identity_keys *k = identity_keys_get(id);
    if (k == NULL || k->signing_jwk == NULL) {
        identity_keys_put(k);
        ex->decision = "error";
        identity_oauth_error(ex, 500, "server_error", "no signing key");
        return;
    }
    int64_t now = (int64_t)time(NULL);
    int64_t exp = now + ic->delegation_ttl_ms / 1000;
    if (p->expires != 0 && p->expires < exp)
        exp = p->expires;
    char jti[JTI_LEN + 1];
    if (make_jti(jti) < 0) {
        identity_keys_put(k);
        ex->decision = "error";
        identity_oauth_error(ex, 500, "server_error", "no randomness");
        return;
    }
    const char *root = p->root_request_id ? p->root_request_id : ex->request_id;
    json_t *pcl = json_pack("{s:s,s:s}", "rid", ex->request_id, "root", root);
    if (pcl != NULL && p->root_key_id != NULL)
        json_object_set_new(pcl, "key", json_string(p->root_key_id));
    if (pcl != NULL && budget >= 0)
        json_object_set_new(pcl, "budget_usd", json_real(budget));
    if (pcl != NULL && taint != 0) {
        json_t *t = json_object();
        if (taint & GUARD_TAINT_PRIVATE_DATA)
            json_object_set_new(t, "private_data", json_string(taint_private ? taint_private : ""));
        if (taint & GUARD_TAINT_UNTRUSTED)
            json_object_set_new(t, "untrusted",
                                json_string(taint_untrusted ? taint_untrusted : ""));
        json_object_set_new(pcl, "taint", t);
    }
    json_t *claims =
        json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:o,s:o}", "iss", ic->issuer, "aud", ic->issuer,
                  "sub", target, "iat", (json_int_t)now, "nbf", (json_int_t)now, "exp",
                  (json_int_t)exp, "jti", jti, "act", act_claim(p, p->chain_len), "pcl", pcl);
    if (claims != NULL && scope != NULL)
        json_object_set_new(claims, "scope", json_string(scope));
    char *token = claims ? jwt_sign(claims, k->signing_jwk, k->signing_kid) : NULL;
    identity_keys_put(k);
    json_decref(claims);
    if (token == NULL) {
        ex->decision = "error";
        identity_oauth_error(ex, 500, "server_error", "could not sign the token");
        return;
    }
    json_t *resp =
        json_pack("{s:s,s:s,s:s,s:I}", "access_token", token, "issued_token_type", TT_ACCESS,
                  "token_type", "Bearer", "expires_in", (json_int_t)(exp - now));
    if (resp != NULL && scope != NULL)
        json_object_set_new(resp, "scope", json_string(scope));
    char *text = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
    json_decref(resp);
    explicit_bzero(token, strlen(token));
    free(token);
    if (text == NULL) {
        ex->decision = "error";
        identity_oauth_error(ex, 500, "server_error", "out of memory");
        return;
    }
    ex->decision = "allow";
    ex->decision_reason =
        ex->policy_ids
            ? arena_printf(&ex->arena, "delegated %s -> %s (depth %zu), permitted by %s", p->agent,
                           target, p->chain_len, ex->policy_ids)
            : arena_printf(&ex->arena, "delegated %s -> %s (depth %zu)", p->agent, target,
                           p->chain_len);
    if (taint != 0 && ex->decision_reason != NULL)
        ex->decision_reason = arena_printf(&ex->arena, "%s; carries taint%s%s", ex->decision_reason,
                                           taint & GUARD_TAINT_PRIVATE_DATA ? " private_data" : "",
                                           taint & GUARD_TAINT_UNTRUSTED ? " untrusted" : "");
    http_add_header(ex, "Cache-Control", "no-store");
    http_respond(ex, 200, "application/json", text, strlen(text));
    explicit_bzero(text, strlen(text));
    free(text);
}

void identity_jwks_endpoint(struct identity *id, struct http_exchange *ex)
{
    ex->route = "jwks";
    struct identity_keys *k = identity_keys_get(id);
    if (k == NULL || k->jwks_text == NULL) {
        identity_keys_put(k);
        http_respond(ex, 500, "application/json", "{}\n", 3);
        return;
    }
    http_add_header(ex, "Cache-Control", "max-age=300");
    http_respond(ex, 200, "application/json", k->jwks_text, strlen(k->jwks_text));
    identity_keys_put(k);
}

char *identity_outbound_token(struct identity *id, const char *issuer,
                              const struct identity_principal *p, const char *audience,
                              const char *request_id, int64_t ttl_s)
{
    if (id == NULL || issuer == NULL || audience == NULL || request_id == NULL || ttl_s <= 0)
        return NULL;
    struct identity_keys *k = identity_keys_get(id);
    if (k == NULL || k->signing_jwk == NULL) {
        identity_keys_put(k);
        return NULL;
    }
    char jti[JTI_LEN + 1];
    if (make_jti(jti) < 0) {
        identity_keys_put(k);
        return NULL;
    }
    int64_t now = (int64_t)time(NULL);
    int64_t exp = now + ttl_s;
    if (p != NULL && p->expires != 0 && p->expires < exp)
        exp = p->expires;
    const char *root = p && p->root_request_id ? p->root_request_id : request_id;
    json_t *pcl = json_pack("{s:s,s:s}", "rid", request_id, "root", root);
    json_t *claims = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:o}", "iss", issuer, "aud", audience,
                               "sub", p && p->agent ? p->agent : "anonymous", "iat",
                               (json_int_t)now, "nbf", (json_int_t)now, "exp", (json_int_t)exp,
                               "jti", jti, "pcl", pcl);
    /* sub is the agent itself (the chain's last); act names who it acts for */
    if (claims != NULL && p != NULL && p->chain_len > 1) {
        json_t *act = act_claim(p, p->chain_len - 1);
        if (act == NULL) {
            json_decref(claims);
            claims = NULL;
        } else {
            json_object_set_new(claims, "act", act);
        }
    }
    if (claims != NULL && p != NULL && p->scope != NULL)
        json_object_set_new(claims, "scope", json_string(p->scope));
    char *token = claims ? jwt_sign(claims, k->signing_jwk, k->signing_kid) : NULL;
    identity_keys_put(k);
    json_decref(claims);
    return token;
}
