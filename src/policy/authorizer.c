// SPDX-License-Identifier: Apache-2.0
// Policy sets and decisions: loading text into a set, template linking, a
// scope index (policies bucketed by the entity their scope names), and
// policy_decide(): forbid overrides permit, default deny, errors skipped.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

/* Policies bucketed by one uid from their scope (principal first, then
 * resource, then action); the rest are checked for every request. */
struct bucket {
    puid_t uid;
    uint32_t n, cap;
    uint32_t *idx;
};

struct scope_index {
    struct bucket *b; /* open addressing on uid hash; b[i].idx NULL = empty */
    size_t mask;
};

enum { IX_PRINCIPAL, IX_RESOURCE, IX_ACTION, IX_COUNT };

struct policy_set {
    arena_t arena;
    unsigned flags;
    struct ppolicy **v; /* in load order, templates included */
    size_t n, cap;
    size_t ntemplates;
    size_t nlinked;
    struct scope_index ix[IX_COUNT];
    uint32_t *general; /* policies no index holds */
    size_t ngeneral;
    uint32_t *ids; /* policy id hash: index + 1, 0 = empty */
    size_t ids_mask;
};

policy_set_t *policy_set_new(unsigned flags)
{
    struct policy_set *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    arena_init(&s->arena, 64 * 1024);
    s->flags = flags;
    return s;
}

static void index_free(struct policy_set *s)
{
    for (int k = 0; k < IX_COUNT; k++) {
        for (size_t i = 0; s->ix[k].b && i <= s->ix[k].mask; i++)
            free(s->ix[k].b[i].idx);
        free(s->ix[k].b);
        s->ix[k].b = NULL;
        s->ix[k].mask = 0;
    }
    free(s->general);
    s->general = NULL;
    s->ngeneral = 0;
}

void policy_set_free(policy_set_t *s)
{
    if (!s)
        return;
    index_free(s);
    free(s->ids);
    free(s->v);
    arena_free(&s->arena);
    free(s);
}

size_t policy_set_count(const policy_set_t *s)
{
    return s ? s->n - s->ntemplates : 0;
}

size_t policy_set_template_count(const policy_set_t *s)
{
    return s ? s->ntemplates : 0;
}

static uint64_t id_hash(const char *id)
{
    return puid_hash("", 0, id, strlen(id));
}

static struct ppolicy *find_policy(const struct policy_set *s, const char *id)
{
    if (!s->ids)
        return NULL;
    for (size_t i = id_hash(id) & s->ids_mask; s->ids[i]; i = (i + 1) & s->ids_mask)
        if (strcmp(s->v[s->ids[i] - 1]->id, id) == 0)
            return s->v[s->ids[i] - 1];
    return NULL;
}

/* Rebuilds the id hash; *dup is the first policy whose id is taken. */
static int ids_build(struct policy_set *s, const struct ppolicy **dup)
{
    size_t cap = 16;
    while (cap < s->n * 2)
        cap *= 2;
    free(s->ids);
    s->ids = calloc(cap, sizeof(*s->ids));
    s->ids_mask = cap - 1;
    *dup = NULL;
    if (!s->ids)
        return -1;
    for (size_t k = 0; k < s->n; k++) {
        size_t i = id_hash(s->v[k]->id) & s->ids_mask;
        for (; s->ids[i]; i = (i + 1) & s->ids_mask)
            if (strcmp(s->v[s->ids[i] - 1]->id, s->v[k]->id) == 0) {
                *dup = s->v[k];
                return -1;
            }
        s->ids[i] = (uint32_t)(k + 1);
    }
    return 0;
}

const char *policy_set_annotation(const policy_set_t *s, const char *id, const char *key)
{
    const struct ppolicy *p = find_policy(s, id);
    if (p && p->tmpl)
        p = p->tmpl;
    for (uint32_t i = 0; p && i < p->nannos; i++)
        if (strlen(key) == p->annos[i].key.len &&
            memcmp(key, p->annos[i].key.s, p->annos[i].key.len) == 0)
            return p->annos[i].val.s;
    return NULL;
}

/* ---- scope index ------------------------------------------------------- */

static struct bucket *bucket_for(struct scope_index *x, const puid_t *u, bool create)
{
    if (!x->b)
        return NULL;
    for (size_t i = u->hash & x->mask;; i = (i + 1) & x->mask) {
        struct bucket *b = &x->b[i];
        if (!b->idx) {
            if (!create)
                return NULL;
            b->uid = *u;
            b->cap = 4;
            b->idx = malloc(b->cap * sizeof(*b->idx));
            return b->idx ? b : NULL;
        }
        if (puid_eq(&b->uid, u))
            return b;
    }
}

static int bucket_add(struct scope_index *x, const puid_t *u, uint32_t policy)
{
    struct bucket *b = bucket_for(x, u, true);
    if (!b)
        return -1;
    if (b->n && b->idx[b->n - 1] == policy)
        return 0;
    if (b->n == b->cap) {
        uint32_t *v = realloc(b->idx, b->cap * 2 * sizeof(*v));
        if (!v)
            return -1;
        b->idx = v;
        b->cap *= 2;
    }
    b->idx[b->n++] = policy;
    return 0;
}

static bool has_uid(const struct pscope *sc)
{
    return !sc->slot && sc->n > 0 &&
           (sc->op == SC_EQ || sc->op == SC_IN || sc->op == SC_IS_IN || sc->op == SC_IN_SET);
}

static int index_build(struct policy_set *s)
{
    index_free(s);
    size_t cap = 16;
    while (cap < s->n * 2)
        cap *= 2;
    for (int k = 0; k < IX_COUNT; k++) {
        s->ix[k].b = calloc(cap, sizeof(struct bucket));
        s->ix[k].mask = cap - 1;
        if (!s->ix[k].b)
            return -1;
    }
    s->general = malloc((s->n ? s->n : 1) * sizeof(*s->general));
    if (!s->general)
        return -1;
    for (size_t i = 0; i < s->n; i++) {
        const struct ppolicy *p = s->v[i];
        if (p->is_template)
            continue;
        const struct pscope *sc[IX_COUNT] = {&p->principal, &p->resource, &p->action};
        int k = 0;
        while (k < IX_COUNT && !has_uid(sc[k]))
            k++;
        if (k == IX_COUNT) {
            s->general[s->ngeneral++] = (uint32_t)i;
            continue;
        }
        for (uint32_t j = 0; j < sc[k]->n; j++)
            if (bucket_add(&s->ix[k], &sc[k]->uids[j], (uint32_t)i))
                return -1;
    }
    return 0;
}

/* ---- loading ------------------------------------------------------------- */

static const pstr_t *annotation(const struct ppolicy *p, const char *key)
{
    for (uint32_t i = 0; i < p->nannos; i++)
        if (pstr_eq_lit(p->annos[i].key, key, strlen(key)))
            return &p->annos[i].val;
    return NULL;
}

static int push_policy(struct policy_set *s, struct ppolicy *p)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct ppolicy **v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    p->index = (uint32_t)s->n;
    s->v[s->n++] = p;
    if (p->is_template)
        s->ntemplates++;
    return 0;
}

int policy_set_add_text(policy_set_t *s, const char *file, const char *text, size_t len,
                        struct policy_diags *diags)
{
    struct pparse_out out = {0};
    size_t nerr = pparse_policies(&s->arena, file, text, len, &out, diags);
    int rc = -1;
    if (nerr)
        goto done;
    /* ids: positional, or @id; unique across the set */
    for (size_t i = 0; i < out.n; i++) {
        struct ppolicy *p = out.v[i];
        const pstr_t *aid = (s->flags & POLICY_SET_POSITIONAL_IDS) ? NULL : annotation(p, "id");
        if (aid && memchr(aid->s, '\0', aid->len)) {
            pdiag_add(diags, file, p->line, p->col, "@id must not contain NUL");
            goto done;
        }
        p->id = aid ? aid->s : arena_printf(&s->arena, "policy%zu", s->n + i);
        if (!p->id) {
            pdiag_add(diags, file, p->line, p->col, "out of memory");
            goto done;
        }
    }
    size_t before = s->n, templates = s->ntemplates;
    for (size_t i = 0; i < out.n; i++)
        if (push_policy(s, out.v[i])) {
            pdiag_add(diags, file, 1, 1, "out of memory");
            goto undo;
        }
    const struct ppolicy *dup;
    if (ids_build(s, &dup)) {
        if (dup)
            pdiag_add(diags, file, dup->line, dup->col, "duplicate policy id \"%s\"", dup->id);
        else
            pdiag_add(diags, file, 1, 1, "out of memory");
        goto undo;
    }
    if (index_build(s)) {
        pdiag_add(diags, file, 1, 1, "out of memory");
        goto undo;
    }
    rc = 0;
    goto done;
undo:
    /* nothing of this text stays: the set is as it was */
    s->n = before;
    s->ntemplates = templates;
    if (ids_build(s, &dup) || index_build(s)) {
        free(s->ids);
        s->ids = NULL; /* lookups then find nothing rather than stale slots */
    }
done:
    free(out.v);
    return rc;
}

int policy_set_add_file(policy_set_t *s, const char *path, struct policy_diags *diags)
{
    buf_t b;
    char err[512];
    if (pread_file(path, &b, (size_t)64 << 20, err, sizeof(err))) {
        pdiag_add(diags, path, 0, 0, "%s", err);
        return -1;
    }
    int rc = policy_set_add_text(s, path, b.data ? b.data : "", b.len, diags);
    buf_free(&b);
    return rc;
}

/* ---- uids and templates ------------------------------------------------- */

struct policy_uid policy_uid_make(const char *type, const char *id)
{
    struct policy_uid u = {type, strlen(type), id, strlen(id)};
    return u;
}

int policy_uid_parse(arena_t *arena, const char *text, struct policy_uid *out, const char **err)
{
    puid_t u;
    if (pparse_uid(arena, text, strlen(text), &u, err))
        return -1;
    out->type = u.type.s;
    out->type_len = u.type.len;
    out->id = u.id.s;
    out->id_len = u.id.len;
    return 0;
}

static int fill_slot(struct policy_set *s, struct pscope *sc, const struct policy_uid *u)
{
    puid_t *x = arena_alloc(&s->arena, sizeof(*x));
    if (!x)
        return -1;
    x->type = pstr_dup(&s->arena, u->type, u->type_len);
    x->id = pstr_dup(&s->arena, u->id, u->id_len);
    if (!x->type.s || !x->id.s)
        return -1;
    x->hash = puid_hash(u->type, u->type_len, u->id, u->id_len);
    sc->uids = x;
    sc->n = 1;
    sc->slot = false;
    return 0;
}

int policy_set_link(policy_set_t *s, const char *template_id, const char *new_id,
                    const struct policy_uid *principal, const struct policy_uid *resource,
                    char *err, size_t err_len)
{
    const struct ppolicy *t = find_policy(s, template_id);
    if (!t || !t->is_template) {
        snprintf(err, err_len, "no template with id \"%s\"", template_id);
        return -1;
    }
    if (find_policy(s, new_id)) {
        snprintf(err, err_len, "policy id \"%s\" is already in use", new_id);
        return -1;
    }
    if (t->principal.slot != (principal != NULL) || t->resource.slot != (resource != NULL)) {
        snprintf(err, err_len, "template \"%s\" needs %s%s%s", template_id,
                 t->principal.slot ? "?principal" : "",
                 t->principal.slot && t->resource.slot ? " and " : "",
                 t->resource.slot ? "?resource" : (t->principal.slot ? "" : "no slot values"));
        return -1;
    }
    struct ppolicy *p = arena_alloc(&s->arena, sizeof(*p));
    if (!p)
        goto oom;
    *p = *t;
    p->is_template = false;
    p->tmpl = t;
    p->id = arena_strdup(&s->arena, new_id);
    if (!p->id || (principal && fill_slot(s, &p->principal, principal)) ||
        (resource && fill_slot(s, &p->resource, resource)) || push_policy(s, p))
        goto oom;
    s->nlinked++;
    const struct ppolicy *dup;
    if (ids_build(s, &dup) || index_build(s))
        goto oom;
    return 0;
oom:
    snprintf(err, err_len, "out of memory");
    return -1;
}

/* ---- decisions --------------------------------------------------------- */

/* u in target, with u's entity (or NULL) already looked up. */
static bool uid_in(const puid_t *u, const struct pentity *ent, const puid_t *target)
{
    return puid_eq(u, target) || (ent && pentity_has_ancestor(ent, target));
}

static bool scope_match(const struct pscope *sc, const puid_t *u, const struct pentity *ent)
{
    switch (sc->op) {
    case SC_ANY:
        return true;
    case SC_EQ:
        return puid_eq(u, &sc->uids[0]);
    case SC_IN:
        return uid_in(u, ent, &sc->uids[0]);
    case SC_IS:
        return pstr_cmp(u->type, sc->is_type) == 0;
    case SC_IS_IN:
        return pstr_cmp(u->type, sc->is_type) == 0 && uid_in(u, ent, &sc->uids[0]);
    case SC_IN_SET:
        for (uint32_t i = 0; i < sc->n; i++)
            if (uid_in(u, ent, &sc->uids[i]))
                return true;
        return false;
    }
    return false;
}

/* 1 satisfied, 0 not, -1 erred (ev->err set). */
static int policy_holds(struct peval *ev, const struct ppolicy *p,
                        const puid_t *const uids[IX_COUNT],
                        const struct pentity *const ents[IX_COUNT])
{
    if (!scope_match(&p->principal, uids[IX_PRINCIPAL], ents[IX_PRINCIPAL]) ||
        !scope_match(&p->action, uids[IX_ACTION], ents[IX_ACTION]) ||
        !scope_match(&p->resource, uids[IX_RESOURCE], ents[IX_RESOURCE]))
        return 0;
    for (uint32_t i = 0; i < p->nconds; i++) {
        pval_t v;
        if (peval_expr(ev, p->conds[i].e, &v))
            return -1;
        if (v.kind != PV_BOOL) {
            const struct pexpr *e = p->conds[i].e;
            ev->err =
                arena_printf(ev->arena, "%u:%u: type error: %s condition is %s, not bool", e->line,
                             e->col, p->conds[i].unless ? "unless" : "when", pkind_name(v.kind));
            return -1;
        }
        if (v.u.b == p->conds[i].unless)
            return 0;
    }
    return 1;
}

struct idlist {
    const char **v;
    size_t n, cap;
};

static int idlist_push(arena_t *a, struct idlist *l, const char *id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        const char **v = arena_alloc(a, cap * sizeof(*v));
        if (!v)
            return -1;
        if (l->n)
            memcpy(v, l->v, l->n * sizeof(*v));
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = id;
    return 0;
}

static int push_error(struct policy_decision *d, size_t *cap, const char *id, const char *msg)
{
    if (d->nerrors == *cap) {
        size_t c = *cap ? *cap * 2 : 4;
        struct policy_eval_error *v = arena_alloc(&d->arena, c * sizeof(*v));
        if (!v)
            return -1;
        if (d->nerrors)
            memcpy(v, d->errors, d->nerrors * sizeof(*v));
        d->errors = v;
        *cap = c;
    }
    d->errors[d->nerrors].policy_id = id;
    d->errors[d->nerrors].message = msg ? msg : "error";
    d->nerrors++;
    return 0;
}

/* Candidate policies for the request, in set order, without duplicates:
 * the unindexed ones and the buckets of the request's entities and their
 * ancestors, merged (each list is already in set order). NULL when there
 * are too many lists: the caller then scans every policy. */
static uint32_t *candidates(const struct policy_set *s, const struct pentity *const ents[IX_COUNT],
                            const puid_t *const uids[IX_COUNT], arena_t *a, size_t *count)
{
    enum { MAXL = 64 };
    const uint32_t *list[MAXL];
    uint32_t len[MAXL], pos[MAXL];
    size_t nl = 0, total = 0;
    if (s->ngeneral) {
        list[nl] = s->general;
        len[nl++] = (uint32_t)s->ngeneral;
        total += s->ngeneral;
    }
    for (int k = 0; k < IX_COUNT; k++) {
        const struct pentity *ent = ents[k];
        for (uint32_t j = 0; j <= (ent ? ent->nanc : 0); j++) {
            const struct bucket *b =
                bucket_for((struct scope_index *)&s->ix[k], j ? ent->anc[j - 1] : uids[k], false);
            if (!b)
                continue;
            if (nl == MAXL)
                return NULL;
            list[nl] = b->idx;
            len[nl++] = b->n;
            total += b->n;
        }
    }
    uint32_t *v = arena_alloc(a, (total ? total : 1) * sizeof(*v));
    if (!v)
        return NULL;
    size_t n = 0;
    memset(pos, 0, nl * sizeof(*pos));
    for (;;) {
        size_t best = MAXL;
        for (size_t i = 0; i < nl; i++)
            if (pos[i] < len[i] && (best == MAXL || list[i][pos[i]] < list[best][pos[best]]))
                best = i;
        if (best == MAXL)
            break;
        uint32_t x = list[best][pos[best]++];
        if (n == 0 || v[n - 1] != x)
            v[n++] = x;
    }
    *count = n;
    return v;
}

static void to_puid(const struct policy_uid *u, puid_t *out)
{
    out->type.s = u->type ? u->type : "";
    out->type.len = u->type ? (uint32_t)u->type_len : 0;
    out->id.s = u->id ? u->id : "";
    out->id.len = u->id ? (uint32_t)u->id_len : 0;
    out->hash = puid_hash(out->type.s, out->type.len, out->id.s, out->id.len);
}

int policy_decide(const policy_set_t *s, const policy_entities_t *entities,
                  const struct policy_request *req, struct policy_decision *out)
{
    return pdecide_node(s, entities, req, NULL, out);
}

int pdecide_node(const policy_set_t *s, const policy_entities_t *entities,
                 const struct policy_request *req, const struct pjnode *context,
                 struct policy_decision *out)
{
    memset(out, 0, sizeof(*out));
    arena_init(&out->arena, 4096);
    size_t ecap = 0;
    puid_t pr, ac, re;
    to_puid(&req->principal, &pr);
    to_puid(&req->action, &ac);
    to_puid(&req->resource, &re);
    struct peval ev = {.arena = &out->arena, .ents = entities};
    ev.principal = (pval_t){.kind = PV_ENTITY, .u.uid = &pr};
    ev.action = (pval_t){.kind = PV_ENTITY, .u.uid = &ac};
    ev.resource = (pval_t){.kind = PV_ENTITY, .u.uid = &re};
    ev.context = (pval_t){.kind = PV_RECORD, .u.rec = &prec_empty};
    if (context || req->context || req->context_json) {
        char *msg = NULL, jerr[256];
        const struct pjnode *j = context;
        if (!j && req->context)
            j = pj_from_jansson(&out->arena, req->context, 0);
        else if (!j && pj_parse_ex(&out->arena, req->context_json, req->context_json_len, true, &j,
                                   jerr, sizeof(jerr)))
            msg = arena_strdup(&out->arena, jerr);
        const struct pschema_action *sa = req->schema ? pschema_action(req->schema, &ac) : NULL;
        if (!j ||
            pjson_to_val_typed(&out->arena, j, req->schema, sa ? sa->context : NULL, &ev.context,
                               &msg, 0) ||
            ev.context.kind != PV_RECORD) {
            push_error(out, &ecap, NULL,
                       arena_printf(&out->arena, "context: %s", msg ? msg : "must be a record"));
            return -1;
        }
    }
    const puid_t *uids[IX_COUNT] = {&pr, &re, &ac};
    const struct pentity *ents[IX_COUNT];
    for (int k = 0; k < IX_COUNT; k++)
        ents[k] = entities ? pentities_find(entities, uids[k]) : NULL;
    size_t ncand = 0;
    uint32_t *cand = candidates(s, ents, uids, &out->arena, &ncand);
    struct idlist permits = {0}, forbids = {0};
    size_t limit = cand ? ncand : s->n;
    for (size_t i = 0; i < limit; i++) {
        const struct ppolicy *p = s->v[cand ? cand[i] : i];
        if (p->is_template)
            continue;
        int r = policy_holds(&ev, p, uids, ents);
        int rc = 0;
        if (r < 0)
            rc = push_error(out, &ecap, p->id, ev.err);
        else if (r > 0)
            rc = idlist_push(&out->arena, p->forbid ? &forbids : &permits, p->id);
        if (rc) {
            out->allow = false;
            return -1;
        }
    }
    if (forbids.n) {
        out->allow = false;
        out->reasons = forbids.v;
        out->nreasons = forbids.n;
    } else {
        out->allow = permits.n > 0;
        out->reasons = permits.v;
        out->nreasons = permits.n;
    }
    return 0;
}

void policy_decision_free(struct policy_decision *d)
{
    if (!d)
        return;
    arena_free(&d->arena);
    memset(d, 0, sizeof(*d));
}

json_t *policy_chain_context(const char *const *chain, size_t n, size_t depth)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++)
        if (json_array_append_new(arr, json_string(chain[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    if (arr == NULL)
        return NULL;
    return json_pack("{s:o, s:I}", "chain", arr, "depth", (json_int_t)depth);
}

size_t policy_ids_join(const struct policy_decision *d, char *out, size_t cap)
{
    size_t off = 0;
    if (cap == 0)
        return 0;
    out[0] = '\0';
    for (size_t i = 0; i < d->nreasons; i++) {
        int w = snprintf(out + off, cap - off, "%s%s", i ? ", " : "", d->reasons[i]);
        if (w < 0 || (size_t)w >= cap - off) {
            off = strlen(out);
            break;
        }
        off += (size_t)w;
    }
    return off;
}

const char *policy_ids_dup(const struct policy_decision *d, arena_t *a)
{
    char ids[4096];
    if (d->nreasons == 0 || policy_ids_join(d, ids, sizeof ids) == 0)
        return NULL;
    return arena_strdup(a, ids);
}
