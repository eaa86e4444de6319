// SPDX-License-Identifier: Apache-2.0
// The identity stage: find the credential on a request (Authorization:
// Bearer, or x-api-key), resolve it to a principal (API key, external JWT,
// or a delegation token minted by this gateway), check the scope against
// the model asked for, and answer 401/403 in the protocol's error shape
// without ever echoing the credential.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/worker.h"
#include "guard/guard.h"
#include "http/server.h"
#include "identity/internal.h"

#define MAX_CHAIN 33

static char *adup(struct http_exchange *ex, const char *s)
{
    return s != NULL ? arena_strdup(&ex->arena, s) : NULL;
}

/* A printable id (agent, request id): 1..128 bytes, no controls or quotes. */
static int id_ok(const char *s)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > 128)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || *s == '"' || *s == '\\' || *s == 0x7f)
            return 0;
    return 1;
}

static struct identity_principal *principal_new(struct http_exchange *ex, const char *auth,
                                                const char *const *chain, size_t n)
{
    struct identity_principal *p = arena_alloc(&ex->arena, sizeof *p);
    const char **c = arena_alloc(&ex->arena, n * sizeof *c);
    if (p == NULL || c == NULL)
        return NULL;
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < n; i++)
        if ((c[i] = adup(ex, chain[i])) == NULL)
            return NULL;
    p->chain = c;
    p->chain_len = n;
    p->agent = c[n - 1];
    p->auth = auth;
    p->budget_usd = -1;
    return p;
}

static int resolve_api_key(struct identity *id, struct http_exchange *ex, const char *cred,
                           size_t len, struct identity_principal **out, const char **code,
                           char *why, size_t whylen)
{
    unsigned char h[32];
    apikey_hash(id->key_secret, cred, len, h);
    struct identity_keys *k = identity_keys_get(id);
    const struct apikey_entry *e = k ? apikey_table_find(&k->apikeys, h) : NULL;
    int rc = -1;
    *code = "invalid_api_key";
    if (e == NULL) {
        /* Perhaps created a moment ago by the CLI: look now, not at the tick. */
        identity_keys_wake(id);
        snprintf(why, whylen, "unknown API key");
    } else if (e->revoked != 0) {
        snprintf(why, whylen, "API key %s has been revoked", e->id);
    } else if (e->expires != 0 && (int64_t)time(NULL) >= e->expires) {
        *code = "expired_api_key";
        snprintf(why, whylen, "API key %s has expired", e->id);
    } else {
        const char *chain[1] = {e->agent};
        struct identity_principal *p = principal_new(ex, "api_key", chain, 1);
        if (p != NULL) {
            p->scope = adup(ex, e->scope);
            p->credential_id = adup(ex, e->id);
            p->root_key_id = p->credential_id;
            p->expires = e->expires;
            *out = p;
            rc = 0;
        } else {
            snprintf(why, whylen, "out of memory");
        }
    }
    identity_keys_put(k);
    return rc;
}

static const char *token_code(enum jwt_result r)
{
    switch (r) {
    case JWT_EXPIRED:
        return "expired_token";
    case JWT_UNKNOWN_KID:
        return "unknown_key_id";
    default:
        return "invalid_token";
    }
}

/* Chain from nested act claims: act.sub is the delegator, act.act.sub its
 * delegator, ...; returned root first, sub last. */
static int chain_of(const json_t *claims, const char *sub, const char **chain, size_t *n)
{
    const char *rev[MAX_CHAIN];
    size_t k = 0;
    rev[k++] = sub;
    const json_t *act = json_object_get(claims, "act");
    while (act != NULL) {
        const char *s = json_string_value(json_object_get(act, "sub"));
        if (!json_is_object(act) || !id_ok(s) || k == MAX_CHAIN)
            return -1;
        rev[k++] = s;
        act = json_object_get(act, "act");
    }
    for (size_t i = 0; i < k; i++)
        chain[i] = rev[k - 1 - i];
    *n = k;
    return 0;
}

static int resolve_jwt(struct identity *id, struct http_exchange *ex, const char *cred, size_t len,
                       struct identity_principal **out, const char **code, char *why, size_t whylen)
{
    const struct config *cfg = ex->cfg;
    const struct config_identity *ic = &cfg->identity;
    char *iss = jwt_peek_issuer(cred, len);
    json_t *claims = NULL;
    struct identity_keys *k = NULL;
    struct jwk_set *ks = NULL;
    int rc = -1;
    enum jwt_result r;
    *code = "invalid_token";
    struct jwt_rules rules = {.now = (int64_t)time(NULL), .require_exp = 1};
    const char *gw_aud[1] = {ic->issuer};
    static const char *const gw_algs[1] = {"ES256"};
    int delegated = iss != NULL && strcmp(iss, ic->issuer) == 0;

    if (delegated) {
        k = identity_keys_get(id);
        rules.issuer = ic->issuer;
        rules.audiences = gw_aud;
        rules.naudiences = 1;
        rules.algs = gw_algs;
        rules.nalgs = 1;
        rules.leeway_s = 5;
        r = jwt_verify(cred, len, k ? k->gateway_pub : NULL, &rules, &claims, why, whylen);
    } else if (ic->has_jwt && iss != NULL && ic->jwt.issuer != NULL &&
               strcmp(iss, ic->jwt.issuer) == 0) {
        ks = identity_jwks_get(id);
        rules.issuer = ic->jwt.issuer;
        rules.audiences = (const char *const *)ic->jwt.audiences;
        rules.naudiences = ic->jwt.naudiences;
        rules.algs = (const char *const *)ic->jwt.algorithms;
        rules.nalgs = ic->jwt.nalgorithms;
        rules.leeway_s = ic->jwt.leeway_ms / 1000;
        r = jwt_verify(cred, len, ks, &rules, &claims, why, whylen);
        /* an unknown kid: identity_authenticate refetches and waits for it */
        if (r == JWT_NO_KEY)
            identity_jwks_refetch(id); /* rate-limited by the refresher */
    } else {
        /* Verify against nothing: the token's own faults (malformed, alg
         * none) are reported first; otherwise, an untrusted issuer. */
        static const char *const any[] = {"RS256", "PS256", "ES256", "HS256"};
        json_t *hdr = NULL;
        char *payload = NULL;
        size_t plen;
        r = jws_verify_compact(cred, len, NULL, any, 4, &hdr, &payload, &plen, why, whylen);
        if (r != JWT_MALFORMED && r != JWT_ALG) {
            r = JWT_ISSUER;
            snprintf(why, whylen, "token issuer is not trusted by this gateway");
        }
        json_decref(hdr);
        free(payload);
    }
    if (r != JWT_OK) {
        *code = token_code(r);
        goto out;
    }
    const char *claim = delegated ? "sub" : ic->jwt.agent_claim;
    const char *agent = json_string_value(json_object_get(claims, claim));
    if (!id_ok(agent)) {
        snprintf(why, whylen, "token has no usable \"%.40s\" claim naming the agent", claim);
        goto out;
    }
    const char *chain[MAX_CHAIN];
    size_t n = 1;
    chain[0] = agent;
    if (delegated && chain_of(claims, agent, chain, &n) < 0) {
        snprintf(why, whylen, "token has a malformed act claim");
        goto out;
    }
    struct identity_principal *p = principal_new(ex, delegated ? "delegation" : "jwt", chain, n);
    if (p == NULL) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    const char *scope = json_string_value(json_object_get(claims, "scope"));
    if (scope != NULL && !scope_valid(scope)) {
        snprintf(why, whylen, "token has a malformed scope claim");
        goto out;
    }
    p->scope = adup(ex, scope);
    p->credential_id = adup(ex, json_string_value(json_object_get(claims, "jti")));
    json_t *exp = json_object_get(claims, "exp");
    p->expires = json_is_integer(exp) ? (int64_t)json_integer_value(exp) : 0;
    if (delegated) {
        json_t *pcl = json_object_get(claims, "pcl");
        json_t *budget = json_object_get(pcl, "budget_usd");
        if (json_is_number(budget))
            p->budget_usd = json_number_value(budget);
        const char *rid = json_string_value(json_object_get(pcl, "rid"));
        const char *root = json_string_value(json_object_get(pcl, "root"));
        p->parent_request_id = id_ok(rid) ? adup(ex, rid) : NULL;
        p->root_request_id = id_ok(root) ? adup(ex, root) : NULL;
        /* containment: what the session it was delegated from had read */
        json_t *taint = json_object_get(pcl, "taint");
        const char *tp = json_string_value(json_object_get(taint, "private_data"));
        const char *tu = json_string_value(json_object_get(taint, "untrusted"));
        if (tp != NULL) {
            p->taint |= GUARD_TAINT_PRIVATE_DATA;
            p->taint_private = arena_printf(&ex->arena, "%.95s", tp);
        }
        if (tu != NULL) {
            p->taint |= GUARD_TAINT_UNTRUSTED;
            p->taint_untrusted = arena_printf(&ex->arena, "%.159s", tu);
        }
        const char *key_id = json_string_value(json_object_get(pcl, "key"));
        if (key_id != NULL) {
            /* The chain started from an API key: it must still be good. */
            const struct apikey_entry *e = k ? apikey_table_find_id(&k->apikeys, key_id) : NULL;
            if (e == NULL || e->revoked != 0 ||
                (e->expires != 0 && (int64_t)time(NULL) >= e->expires)) {
                *code = "invalid_token";
                snprintf(why, whylen,
                         "the API key this delegation derives from (%.40s) is revoked or "
                         "expired",
                         key_id);
                goto out;
            }
            p->root_key_id = adup(ex, key_id);
        }
    }
    *out = p;
    rc = 0;
out:
    identity_keys_put(k);
    jwk_set_unref(ks);
    json_decref(claims);
    free(iss);
    return rc;
}

/* Two dots and base64url everywhere else: worth verifying as a JWT. */
static int jwt_shape(const char *s, size_t len)
{
    int dots = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.')
            dots++;
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_' || c == '='))
            return 0;
    }
    return dots == 2;
}

int identity_resolve(struct identity *id, struct http_exchange *ex, const char *cred, size_t len,
                     struct identity_principal **out, const char **code, char *why, size_t whylen)
{
    if (apikey_shape_ok(cred, len)) {
        if (!ex->cfg->identity.api_keys) {
            *code = "invalid_api_key";
            snprintf(why, whylen, "API keys are disabled (identity.api_keys: false)");
            return -1;
        }
        return resolve_api_key(id, ex, cred, len, out, code, why, whylen);
    }
    if (jwt_shape(cred, len))
        return resolve_jwt(id, ex, cred, len, out, code, why, whylen);
    *code = "invalid_credential";
    snprintf(why, whylen, "the credential is neither a portcullis API key nor a JWT");
    return -1;
}

/* ---- errors ---------------------------------------------------------------- */

static int jsonrpc_route(const struct http_request *r)
{
    return (r->path_len >= 4 && memcmp(r->path, "/mcp", 4) == 0) ||
           (r->path_len >= 4 && memcmp(r->path, "/a2a", 4) == 0);
}

/* 401/403 in the route's error shape; the message never holds the token. */
static void reject(struct http_exchange *ex, int status, const char *code, const char *msg)
{
    buf_t b;
    buf_init(&b, 8192);
    int rc;
    if (jsonrpc_route(ex->req) || (ex->route && strcmp(ex->route, "mcp") == 0)) {
        rc = buf_append_lit(&b, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":");
        rc |= buf_appendf(&b, "%d", status == 401 ? -32001 : -32003);
        rc |= buf_append_lit(&b, ",\"message\":");
        rc |= buf_append_json_string(&b, msg, strlen(msg));
        rc |= buf_append_lit(&b, ",\"data\":{\"code\":");
        rc |= buf_append_json_string(&b, code, strlen(code));
        rc |= buf_append_lit(&b, "}}}\n");
    } else {
        const char *type = status == 401 ? "invalid_request_error" : "permission_error";
        rc = buf_append_lit(&b, "{\"error\":{\"message\":");
        rc |= buf_append_json_string(&b, msg, strlen(msg));
        rc |= buf_append_lit(&b, ",\"type\":");
        rc |= buf_append_json_string(&b, type, strlen(type));
        rc |= buf_append_lit(&b, ",\"code\":");
        rc |= buf_append_json_string(&b, code, strlen(code));
        rc |= buf_append_lit(&b, ",\"param\":null}}\n");
    }
    ex->error_type = code;
    ex->decision = "deny";
    ex->decision_reason = arena_printf(&ex->arena, "identity: %s", msg);
    if (status == 401)
        http_add_header(ex, "WWW-Authenticate",
                        strcmp(code, "missing_credential") == 0
                            ? "Bearer realm=\"portcullis\""
                            : "Bearer realm=\"portcullis\", error=\"invalid_token\"");
    if (rc == 0)
        http_respond(ex, status, "application/json", b.data, b.len);
    else
        http_respond(ex, 500, "application/json", "{}\n", 3);
    buf_free(&b);
}

/* ---- the stage ------------------------------------------------------------- */

/* The credential on the request: "Authorization: Bearer X" or x-api-key. */
static int credential_of(const struct http_request *r, const char **cred, size_t *len)
{
    const struct http_header *h = http_request_header(r, "authorization");
    if (h != NULL) {
        const char *v = h->value;
        size_t n = h->value_len;
        if (n > 7 && strncasecmp(v, "Bearer ", 7) == 0) {
            v += 7;
            n -= 7;
            while (n > 0 && *v == ' ')
                v++, n--;
            *cred = v;
            *len = n;
            return n > 0;
        }
        *cred = v;
        *len = n;
        return -1; /* present, but not a bearer credential */
    }
    h = http_request_header(r, "x-api-key");
    if (h != NULL && h->value_len > 0) {
        *cred = h->value;
        *len = h->value_len;
        return 1;
    }
    return 0;
}

/* The "model" of a JSON body, copied into the arena; NULL when absent. */
static const char *body_model(struct http_exchange *ex)
{
    const buf_t *body = &ex->req->body;
    struct json_span root, m;
    struct json_error err;
    char name[256];
    size_t n;
    if (body->len == 0 || json_validate(body->data, body->len, &root, &err) != 0 ||
        root.kind != JS_OBJECT || json_get(&root, "model", &m) != 1 || m.kind != JS_STRING ||
        json_string_decode(&m, name, sizeof name, &n) != 0)
        return NULL;
    return arena_strndup(&ex->arena, name, n);
}

/* Paths whose body names a model the scope must allow. */
static int model_route(const struct http_request *r)
{
    static const char *const paths[] = {"/v1/chat/completions", "/chat/completions",
                                        "/v1/embeddings", "/embeddings", "/v1/messages"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (r->path_len == strlen(paths[i]) && memcmp(r->path, paths[i], r->path_len) == 0)
            return 1;
    return 0;
}

/* ---- waiting for a JWKS refetch ------------------------------------------- */

/* A token signed with a key the cached JWKS does not have yet (the IdP
 * rotated): rather than refuse it, the request waits on its loop until the
 * refetch it triggered has finished, then runs the pipeline again. Only when
 * the refetch rate limit lets a fetch start, once per request, and never
 * longer than the fetch timeout: a stream of made-up kids costs a timer each,
 * not a fetch each. */
#define KID_WAIT_POLL_MS 10
#define KID_WAIT_MAX_MS 6000

struct kid_wait {
    uv_timer_t timer;
    struct http_exchange *ex;
    struct identity *id;
    unsigned fetches; /* id->jwks_fetches when the request parked */
    uint64_t waited_ms;
};

static void kid_wait_closed(uv_handle_t *h)
{
    free(h->data);
}

static void kid_wait_tick(uv_timer_t *t)
{
    struct kid_wait *w = t->data;
    w->waited_ms += KID_WAIT_POLL_MS;
    if (!w->ex->aborted && atomic_load(&w->id->jwks_fetches) == w->fetches &&
        w->waited_ms < KID_WAIT_MAX_MS)
        return;
    uv_timer_stop(t);
    struct http_exchange *ex = w->ex;
    uv_close((uv_handle_t *)t, kid_wait_closed);
    http_exchange_redispatch(ex); /* authenticates again: stage_waits stops a second wait */
    http_exchange_unref(ex);
}

static int kid_wait_start(struct identity *id, struct http_exchange *ex)
{
    if (ex->stage_waits > 0 || ex->worker == NULL)
        return -1;
    unsigned before = atomic_load(&id->jwks_fetches);
    if (!identity_jwks_refetch(id))
        return -1; /* rate-limited: no fetch is coming, answer now */
    struct kid_wait *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -1;
    w->ex = ex;
    w->id = id;
    w->fetches = before;
    uv_timer_init(&ex->worker->loop, &w->timer);
    w->timer.data = w;
    ex->stage_waits++;
    http_exchange_ref(ex);
    uv_timer_start(&w->timer, kid_wait_tick, KID_WAIT_POLL_MS, KID_WAIT_POLL_MS);
    return 0;
}

int identity_authenticate(struct identity *id, struct http_exchange *ex)
{
    const struct config_identity *ic = &ex->cfg->identity;
    const char *cred = NULL, *code = NULL;
    size_t len = 0;
    char why[512];
    int has = credential_of(ex->req, &cred, &len);

    int ours = has == 1 && (apikey_shape_ok(cred, len) || jwt_shape(cred, len));
    if (!ours && !ic->required) {
        /* Unauthenticated mode (identity.required: false): a credential that
         * is not ours (a provider-style key an SDK always sends) is ignored
         * and the request runs as anonymous. */
        return 0;
    }
    if (has == 0) {
        reject(ex, 401, "missing_credential",
               "no credential: send \"Authorization: Bearer <API key or token>\"");
        return -1;
    }
    if (has < 0) {
        reject(ex, 401, "invalid_credential",
               "the Authorization header must use the Bearer scheme");
        return -1;
    }
    struct identity_principal *p = NULL;
    if (id == NULL) {
        reject(ex, 401, "invalid_credential", "identity is not available on this gateway");
        return -1;
    }
    if (identity_resolve(id, ex, cred, len, &p, &code, why, sizeof why) < 0) {
        if (strcmp(code, "unknown_key_id") == 0 && kid_wait_start(id, ex) == 0)
            return 1;
        reject(ex, 401, code, why);
        return -1;
    }
    ex->principal = p;
    if (p->scope != NULL && model_route(ex->req)) {
        const char *model = body_model(ex);
        /* A body without a model is the protocol stage's 400 to give. */
        if (model != NULL) {
            char *item = arena_printf(&ex->arena, "model:%s", model);
            if (item == NULL || !scope_allows(p->scope, item)) {
                snprintf(why, sizeof why, "agent %.64s may not use model %.100s (scope: %.100s)",
                         p->agent, model, p->scope);
                reject(ex, 403, "scope_denied", why);
                return -1;
            }
        }
    }
    return 0;
}
