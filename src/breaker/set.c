// SPDX-License-Identifier: Apache-2.0
// The rate limits and breakers of one config snapshot: a node per agent of
// the tree (buckets + breaker, parent links for roll-up) and a breaker per
// provider. State objects are reference-counted so a reload can carry them
// over; /metrics and GET /admin/breakers render from here.
#include <stdlib.h>
#include <string.h>

#include "breaker/breaker.h"

/* Bucket state shared across reloads. */
struct rl_state {
    atomic_int refs;
    struct rl_bucket req, tok, tool; /* an MCP server's calls use req */
    _Atomic uint64_t refused;
};

struct rl_node {
    char *id;
    int parent;          /* index, -1 for a root */
    struct rl_state *rl; /* NULL when the node has no rate limit */
    struct breaker *br;  /* NULL when the node has no breaker */
};

struct prov {
    size_t index;
    struct breaker *br;
};

struct server {
    char *name;
    struct rl_state *rl; /* req: calls per minute (limit 0 = none) */
    struct breaker *br;  /* NULL when the server has no breaker */
};

struct breaker_set {
    struct rl_node *nodes;
    size_t nnodes, capnodes;
    struct prov *provs;
    size_t nprovs, capprovs;
    struct server *servers; /* MCP servers with a rate limit or a breaker */
    size_t nservers;
};

struct breaker_set *breaker_set_new(void)
{
    return calloc(1, sizeof(struct breaker_set));
}

static void rl_state_unref(struct rl_state *r)
{
    if (r != NULL && atomic_fetch_sub(&r->refs, 1) == 1)
        free(r);
}

void breaker_set_free(struct breaker_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nnodes; i++) {
        free(s->nodes[i].id);
        rl_state_unref(s->nodes[i].rl);
        breaker_unref(s->nodes[i].br);
    }
    for (size_t i = 0; i < s->nprovs; i++)
        breaker_unref(s->provs[i].br);
    for (size_t i = 0; i < s->nservers; i++) {
        free(s->servers[i].name);
        rl_state_unref(s->servers[i].rl);
        breaker_unref(s->servers[i].br);
    }
    free(s->servers);
    free(s->nodes);
    free(s->provs);
    free(s);
}

static int find_node(const struct breaker_set *s, const char *id)
{
    for (size_t i = 0; i < s->nnodes; i++)
        if (strcmp(s->nodes[i].id, id) == 0)
            return (int)i;
    return -1;
}

static char *prefixed(const char *prefix, const char *name)
{
    size_t lp = strlen(prefix), ln = strlen(name);
    char *s = malloc(lp + ln + 1);
    if (s) {
        memcpy(s, prefix, lp);
        memcpy(s + lp, name, ln + 1);
    }
    return s;
}

int breaker_set_add_agent(struct breaker_set *s, const char *id, const char *parent,
                          const struct rl_limits *limits, const struct breaker_params *bp)
{
    int pi = -1;
    if (find_node(s, id) >= 0)
        return -1;
    if (parent != NULL && (pi = find_node(s, parent)) < 0)
        return -1;
    if (s->nnodes == s->capnodes) {
        size_t cap = s->capnodes ? s->capnodes * 2 : 8;
        struct rl_node *n = realloc(s->nodes, cap * sizeof *n);
        if (n == NULL)
            return -1;
        s->nodes = n;
        s->capnodes = cap;
    }
    struct rl_node node = {.parent = pi};
    node.id = strdup(id);
    if (node.id == NULL)
        return -1;
    if (limits != NULL && (limits->requests_per_minute || limits->tokens_per_minute ||
                           limits->tool_calls_per_minute)) {
        node.rl = calloc(1, sizeof *node.rl);
        if (node.rl == NULL)
            goto fail;
        atomic_init(&node.rl->refs, 1);
        node.rl->req.limit = limits->requests_per_minute;
        node.rl->tok.limit = limits->tokens_per_minute;
        node.rl->tool.limit = limits->tool_calls_per_minute;
    }
    if (bp != NULL) {
        char *bid = prefixed("agent:", id);
        node.br = bid ? breaker_new(bid, bp) : NULL;
        free(bid);
        if (node.br == NULL)
            goto fail;
    }
    s->nodes[s->nnodes++] = node;
    return 0;
fail:
    free(node.id);
    free(node.rl);
    return -1;
}

int breaker_set_add_provider(struct breaker_set *s, size_t index, const char *name,
                             const struct breaker_params *bp)
{
    if (s->nprovs == s->capprovs) {
        size_t cap = s->capprovs ? s->capprovs * 2 : 4;
        struct prov *p = realloc(s->provs, cap * sizeof *p);
        if (p == NULL)
            return -1;
        s->provs = p;
        s->capprovs = cap;
    }
    char *bid = prefixed("provider:", name);
    struct breaker *b = bid ? breaker_new(bid, bp) : NULL;
    free(bid);
    if (b == NULL)
        return -1;
    s->provs[s->nprovs++] = (struct prov){index, b};
    return 0;
}

static int find_server(const struct breaker_set *s, const char *name)
{
    for (size_t i = 0; i < s->nservers; i++)
        if (strcmp(s->servers[i].name, name) == 0)
            return (int)i;
    return -1;
}

int breaker_set_add_mcp_server(struct breaker_set *s, const char *name, uint64_t calls_per_minute,
                               const struct breaker_params *bp)
{
    if (find_server(s, name) >= 0)
        return -1;
    struct server *ns = realloc(s->servers, (s->nservers + 1) * sizeof *ns);
    if (ns == NULL)
        return -1;
    s->servers = ns;
    struct server sv = {strdup(name), calloc(1, sizeof(struct rl_state)), NULL};
    if (bp != NULL) {
        char *bid = prefixed("mcp:", name);
        sv.br = bid ? breaker_new(bid, bp) : NULL;
        free(bid);
    }
    if (sv.name == NULL || sv.rl == NULL || (bp != NULL && sv.br == NULL)) {
        free(sv.name);
        free(sv.rl);
        breaker_unref(sv.br);
        return -1;
    }
    atomic_init(&sv.rl->refs, 1);
    sv.rl->req.limit = calls_per_minute;
    s->servers[s->nservers++] = sv;
    return 0;
}

int breaker_set_active(const struct breaker_set *s)
{
    if (s == NULL)
        return 0;
    if (s->nprovs > 0 || s->nservers > 0)
        return 1;
    for (size_t i = 0; i < s->nnodes; i++)
        if (s->nodes[i].rl || s->nodes[i].br)
            return 1;
    return 0;
}

static int params_same(const struct breaker_params *a, const struct breaker_params *b)
{
    return a->consecutive_errors == b->consecutive_errors && a->pause_ms == b->pause_ms &&
           a->latency_p90_ms == b->latency_p90_ms && a->window_ms == b->window_ms &&
           a->error_rate == b->error_rate && a->alert_window_ms == b->alert_window_ms &&
           a->min_calls == b->min_calls && (a->webhook == NULL) == (b->webhook == NULL) &&
           (a->webhook == NULL || strcmp(a->webhook, b->webhook) == 0);
}

static uint64_t clamp(uint64_t tokens, const struct rl_bucket *b)
{
    return tokens > b->limit ? b->limit : tokens;
}

/* Moves PREV's state objects into S where ids match; S's params win. */
void breaker_set_adopt(struct breaker_set *s, struct breaker_set *prev)
{
    if (s == NULL || prev == NULL)
        return;
    for (size_t i = 0; i < s->nnodes; i++) {
        struct rl_node *n = &s->nodes[i];
        int j = find_node(prev, n->id);
        if (j < 0)
            continue;
        struct rl_node *o = &prev->nodes[j];
        if (n->rl && o->rl && n->rl->req.limit == o->rl->req.limit &&
            n->rl->tok.limit == o->rl->tok.limit && n->rl->tool.limit == o->rl->tool.limit) {
            /* same limits: share the buckets, calls under PREV included */
            rl_state_unref(n->rl);
            n->rl = o->rl;
            atomic_fetch_add(&n->rl->refs, 1);
        } else if (n->rl && o->rl) {
            /* new limits: fresh buckets that start where the old ones were in
             * time (never shared: PREV's workers read their limits unlocked) */
            atomic_store(&n->rl->req.tat_ns, atomic_load(&o->rl->req.tat_ns));
            atomic_store(&n->rl->tok.tat_ns, atomic_load(&o->rl->tok.tat_ns));
            atomic_store(&n->rl->tool.tat_ns, atomic_load(&o->rl->tool.tat_ns));
        }
        if (n->br && o->br && params_same(breaker_params(n->br), breaker_params(o->br))) {
            breaker_unref(n->br);
            n->br = breaker_ref(o->br);
        }
    }
    for (size_t i = 0; i < s->nservers; i++) {
        int j = find_server(prev, s->servers[i].name);
        if (j < 0)
            continue;
        struct rl_state *o = prev->servers[j].rl;
        if (o->req.limit == s->servers[i].rl->req.limit) {
            rl_state_unref(s->servers[i].rl);
            s->servers[i].rl = o;
            atomic_fetch_add(&o->refs, 1);
        } else
            atomic_store(&s->servers[i].rl->req.tat_ns, atomic_load(&o->req.tat_ns));
        struct breaker *nb = s->servers[i].br, *ob = prev->servers[j].br;
        if (nb && ob && params_same(breaker_params(nb), breaker_params(ob))) {
            s->servers[i].br = breaker_ref(ob);
            breaker_unref(nb);
        }
    }
    for (size_t i = 0; i < s->nprovs; i++) {
        struct breaker *nb = s->provs[i].br;
        struct breaker *ob = breaker_set_find(prev, breaker_id(nb));
        if (ob == NULL)
            continue;
        if (params_same(breaker_params(nb), breaker_params(ob))) {
            s->provs[i].br = breaker_ref(ob);
            breaker_unref(nb);
        }
    }
}

struct breaker *breaker_set_provider(struct breaker_set *s, size_t index)
{
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < s->nprovs; i++)
        if (s->provs[i].index == index)
            return s->provs[i].br;
    return NULL;
}

struct breaker *breaker_set_find(struct breaker_set *s, const char *id)
{
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < s->nprovs; i++)
        if (strcmp(breaker_id(s->provs[i].br), id) == 0)
            return s->provs[i].br;
    for (size_t i = 0; i < s->nnodes; i++)
        if (s->nodes[i].br && strcmp(breaker_id(s->nodes[i].br), id) == 0)
            return s->nodes[i].br;
    for (size_t i = 0; i < s->nservers; i++)
        if (s->servers[i].br && strcmp(breaker_id(s->servers[i].br), id) == 0)
            return s->servers[i].br;
    return NULL;
}

struct breaker *breaker_set_mcp_server(struct breaker_set *s, const char *name)
{
    int j = s && name ? find_server(s, name) : -1;
    return j >= 0 ? s->servers[j].br : NULL;
}

int breaker_chain_resolve(struct breaker_set *s, const char *const *ids, size_t nids,
                          struct breaker_chain *out)
{
    out->n = 0;
    for (size_t k = 0; k < nids; k++) {
        int i = ids[k] ? find_node(s, ids[k]) : -1;
        for (; i >= 0; i = s->nodes[i].parent) {
            size_t j;
            for (j = 0; j < out->n; j++)
                if (out->nodes[j] == i)
                    break;
            if (j < out->n)
                break; /* this node and its ancestors are in already */
            if (out->n == BREAKER_MAX_NODES)
                return -1;
            out->nodes[out->n++] = i;
        }
    }
    return 0;
}

int breaker_chain_limits(const struct breaker_set *s, const struct breaker_chain *c)
{
    int kinds = 0;
    for (size_t k = 0; k < c->n; k++) {
        const struct rl_state *r = s->nodes[c->nodes[k]].rl;
        if (r != NULL)
            kinds |= (r->req.limit ? 1 : 0) | (r->tok.limit ? 2 : 0);
    }
    return kinds;
}

size_t breaker_chain_buckets(const struct breaker_set *s, const struct breaker_chain *c,
                             struct rl_bucket_ref *out)
{
    size_t n = 0;
    for (size_t k = 0; k < c->n && k < BREAKER_MAX_NODES; k++) {
        const struct rl_node *node = &s->nodes[c->nodes[k]];
        if (node->rl == NULL)
            continue;
        if (node->rl->req.limit)
            out[n++] = (struct rl_bucket_ref){node->id, 0, node->rl->req.limit};
        if (node->rl->tok.limit)
            out[n++] = (struct rl_bucket_ref){node->id, 1, node->rl->tok.limit};
    }
    return n;
}

/* Keeps the view with the least remaining. */
void rl_view_keep_tighter(struct rl_view *best, int *has, const struct rl_view *v)
{
    if (!*has || v->remaining < best->remaining ||
        (v->remaining == best->remaining && v->reset_ns > best->reset_ns)) {
        *best = *v;
        *has = 1;
    }
}

int breaker_rl_admit(struct breaker_set *s, const struct breaker_chain *c, uint64_t tokens,
                     uint64_t now_ns, struct rl_admission *adm, struct rl_refusal *why)
{
    memset(adm, 0, sizeof *adm);
    adm->tokens = tokens;
    size_t k;
    for (k = 0; k < c->n; k++) {
        struct rl_node *n = &s->nodes[c->nodes[k]];
        struct rl_view v;
        if (n->rl == NULL)
            continue;
        if (n->rl->req.limit) {
            if (rl_take(&n->rl->req, 1, now_ns, &v) != 0) {
                rl_view_keep_tighter(&adm->requests, &adm->has_requests, &v);
                *why = (struct rl_refusal){n->id, 0, v.limit, v.retry_after_ns};
                goto refuse;
            }
            rl_view_keep_tighter(&adm->requests, &adm->has_requests, &v);
        }
        if (n->rl->tok.limit) {
            if (rl_take(&n->rl->tok, tokens, now_ns, &v) != 0) {
                rl_view_keep_tighter(&adm->tokens_view, &adm->has_tokens, &v);
                rl_give(&n->rl->req, 1);
                *why = (struct rl_refusal){n->id, 1, v.limit, v.retry_after_ns};
                goto refuse;
            }
            rl_view_keep_tighter(&adm->tokens_view, &adm->has_tokens, &v);
        }
    }
    return 0;
refuse:
    atomic_fetch_add(&s->nodes[c->nodes[k]].rl->refused, 1);
    while (k-- > 0) {
        struct rl_node *n = &s->nodes[c->nodes[k]];
        if (n->rl == NULL)
            continue;
        rl_give(&n->rl->req, 1);
        rl_give(&n->rl->tok, clamp(tokens, &n->rl->tok));
    }
    return 1;
}

int breaker_tool_admit(struct breaker_set *s, const char *const *ids, size_t nids,
                       const char *server, uint64_t now_ns, struct rl_view *view,
                       struct rl_refusal *why)
{
    struct breaker_chain c;
    struct rl_view best = {0}, v;
    int has = 0;
    if (breaker_chain_resolve(s, ids, nids, &c) < 0)
        return -1;
    size_t k;
    for (k = 0; k < c.n; k++) {
        struct rl_node *n = &s->nodes[c.nodes[k]];
        if (n->rl == NULL || n->rl->tool.limit == 0)
            continue;
        if (rl_take(&n->rl->tool, 1, now_ns, &v) != 0) {
            *why = (struct rl_refusal){n->id, 2, v.limit, v.retry_after_ns};
            atomic_fetch_add(&n->rl->refused, 1);
            goto refuse;
        }
        rl_view_keep_tighter(&best, &has, &v);
    }
    int j = server ? find_server(s, server) : -1;
    if (j >= 0 && s->servers[j].rl->req.limit > 0) {
        struct server *sv = &s->servers[j];
        if (rl_take(&sv->rl->req, 1, now_ns, &v) != 0) {
            *why = (struct rl_refusal){sv->name, 3, v.limit, v.retry_after_ns};
            atomic_fetch_add(&sv->rl->refused, 1);
            goto refuse;
        }
        rl_view_keep_tighter(&best, &has, &v);
    }
    if (view != NULL)
        *view = best;
    return 0;
refuse:
    while (k-- > 0) {
        struct rl_node *n = &s->nodes[c.nodes[k]];
        if (n->rl != NULL)
            rl_give(&n->rl->tool, 1);
    }
    return 1;
}

void breaker_rl_settle(struct breaker_set *s, const struct breaker_chain *c,
                       struct rl_admission *adm, uint64_t actual, uint64_t now_ns)
{
    for (size_t k = 0; k < c->n; k++) {
        struct rl_node *n = &s->nodes[c->nodes[k]];
        if (n->rl == NULL || n->rl->tok.limit == 0)
            continue;
        uint64_t reserved = clamp(adm->tokens, &n->rl->tok);
        if (actual > reserved)
            rl_charge(&n->rl->tok, actual - reserved, now_ns);
        else
            rl_give(&n->rl->tok, reserved - actual);
    }
    adm->tokens = actual;
}

struct breaker *breaker_chain_breaker(struct breaker_set *s, const struct breaker_chain *c,
                                      size_t i)
{
    return i < c->n ? s->nodes[c->nodes[i]].br : NULL;
}

void breaker_count_rate_limited(struct breaker_set *s, const char *node)
{
    int i = find_node(s, node);
    if (i >= 0 && s->nodes[i].rl)
        atomic_fetch_add(&s->nodes[i].rl->refused, 1);
}

/* ---- rendering ------------------------------------------------------------ */

/* Label values here are ids the config checked (agent ids: [A-Za-z0-9._-];
 * provider names: the same set), so they need no escaping. */
static int each_breaker(struct breaker_set *s, size_t i, struct breaker **out)
{
    if (i < s->nprovs) {
        *out = s->provs[i].br;
        return 1;
    }
    i -= s->nprovs;
    size_t seen = 0;
    for (size_t k = 0; k < s->nnodes; k++) {
        if (s->nodes[k].br == NULL)
            continue;
        if (seen++ == i) {
            *out = s->nodes[k].br;
            return 1;
        }
    }
    for (size_t k = 0; k < s->nservers; k++) {
        if (s->servers[k].br == NULL)
            continue;
        if (seen++ == i) {
            *out = s->servers[k].br;
            return 1;
        }
    }
    return 0;
}

#define RATE_LIMITED_HEAD                                                                          \
    "# HELP portcullis_rate_limited_total Calls refused by an agent's or an MCP server's rate "    \
    "limit.\n# TYPE portcullis_rate_limited_total counter\n"

int breaker_set_render_metrics(struct breaker_set *s, uint64_t now_ms, buf_t *out)
{
    static const char *const heads[] = {
        "# HELP portcullis_breaker_state Circuit breaker state: 0 closed, 1 open, 2 half-open.\n"
        "# TYPE portcullis_breaker_state gauge\n",
        "# HELP portcullis_breaker_concurrency_limit Concurrency allowed while backing off on "
        "latency (0 = no limit).\n# TYPE portcullis_breaker_concurrency_limit gauge\n",
        "# HELP portcullis_breaker_trips_total Times the breaker opened.\n"
        "# TYPE portcullis_breaker_trips_total counter\n",
        "# HELP portcullis_breaker_refused_total Calls the breaker refused or skipped.\n"
        "# TYPE portcullis_breaker_refused_total counter\n",
        "# HELP portcullis_breaker_alerts_total Error-rate alerts fired.\n"
        "# TYPE portcullis_breaker_alerts_total counter\n",
    };
    static const char *const names[] = {
        "portcullis_breaker_state",        "portcullis_breaker_concurrency_limit",
        "portcullis_breaker_trips_total",  "portcullis_breaker_refused_total",
        "portcullis_breaker_alerts_total",
    };
    int rc = 0;
    if (s == NULL)
        return 0;
    struct breaker *b;
    if (each_breaker(s, 0, &b)) {
        for (int m = 0; m < 5 && rc == 0; m++) {
            rc |= buf_append(out, heads[m], strlen(heads[m]));
            for (size_t i = 0; each_breaker(s, i, &b) && rc == 0; i++) {
                struct breaker_status st;
                breaker_status(b, now_ms, &st);
                uint64_t v = m == 0   ? (uint64_t)st.state
                             : m == 1 ? st.concurrency_limit
                             : m == 2 ? st.trips
                             : m == 3 ? st.refused
                                      : st.alerts;
                rc |= buf_appendf(out, "%s{breaker=\"%s\"} %llu\n", names[m], breaker_id(b),
                                  (unsigned long long)v);
            }
        }
    }
    int any_rl = 0;
    for (size_t i = 0; i < s->nnodes && rc == 0; i++) {
        if (s->nodes[i].rl == NULL)
            continue;
        if (!any_rl++)
            rc |= buf_append_lit(out, RATE_LIMITED_HEAD);
        rc |= buf_appendf(out, "portcullis_rate_limited_total{agent=\"%s\"} %llu\n", s->nodes[i].id,
                          (unsigned long long)atomic_load(&s->nodes[i].rl->refused));
    }
    for (size_t i = 0; i < s->nservers && rc == 0; i++) {
        if (s->servers[i].rl->req.limit == 0)
            continue;
        if (!any_rl++)
            rc |= buf_append_lit(out, RATE_LIMITED_HEAD);
        rc |= buf_appendf(out, "portcullis_rate_limited_total{mcp_server=\"%s\"} %llu\n",
                          s->servers[i].name,
                          (unsigned long long)atomic_load(&s->servers[i].rl->refused));
    }
    return rc ? -1 : 0;
}

int breaker_render_json(struct breaker *b, uint64_t now_ms, buf_t *out)
{
    struct breaker_status st;
    const struct breaker_params *p = breaker_params(b);
    breaker_status(b, now_ms, &st);
    int rc = buf_appendf(
        out,
        "{\"id\":\"%s\",\"state\":\"%s\",\"state_code\":%d,\"consecutive_errors\":%u,"
        "\"retry_after_ms\":%llu,\"concurrency_limit\":%u,\"inflight\":%u,"
        "\"window\":{\"calls\":%llu,\"errors\":%llu},\"latency\":{\"measured\":%llu,"
        "\"slow\":%llu},\"trips\":%llu,\"alerts\":%llu,\"refused\":%llu,"
        "\"config\":{\"consecutive_errors\":%u,\"pause_ms\":%u,\"latency_p90_ms\":%u,"
        "\"window_ms\":%u,\"error_rate\":%g,\"alert_window_ms\":%u,\"min_calls\":%u,"
        "\"webhook\":%s}}",
        breaker_id(b), breaker_state_name(st.state), (int)st.state, st.consecutive,
        (unsigned long long)st.retry_after_ms, st.concurrency_limit, st.inflight,
        (unsigned long long)st.calls, (unsigned long long)st.errors, (unsigned long long)st.timed,
        (unsigned long long)st.slow, (unsigned long long)st.trips, (unsigned long long)st.alerts,
        (unsigned long long)st.refused, p->consecutive_errors, p->pause_ms, p->latency_p90_ms,
        p->window_ms, p->error_rate, p->alert_window_ms, p->min_calls,
        p->webhook ? "true" : "false");
    return rc ? -1 : 0;
}

int breaker_set_render_json(struct breaker_set *s, uint64_t now_ms, buf_t *out)
{
    int rc = buf_append_lit(out, "{\"breakers\":[");
    struct breaker *b;
    for (size_t i = 0; s != NULL && each_breaker(s, i, &b) && rc == 0; i++) {
        if (i > 0)
            rc |= buf_append_lit(out, ",");
        rc |= breaker_render_json(b, now_ms, out);
    }
    rc |= buf_append_lit(out, "]}");
    return rc ? -1 : 0;
}
