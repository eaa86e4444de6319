// SPDX-License-Identifier: Apache-2.0
// Entity store: Cedar entities JSON (uid, attrs, parents, tags, with the
// __entity and __extn escapes) loaded into an arena, a hash index by uid,
// and each entity's transitive ancestors precomputed for `in`.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

struct policy_entities {
    arena_t arena;
    struct pentity *v;
    size_t n;
    uint32_t *slots; /* open addressing: entity index + 1, 0 = empty */
    size_t mask;
};

const struct pentity *pentities_find(const struct policy_entities *es, const puid_t *uid)
{
    if (!es->n)
        return NULL;
    for (size_t i = uid->hash & es->mask;; i = (i + 1) & es->mask) {
        uint32_t s = es->slots[i];
        if (s == 0)
            return NULL;
        if (puid_eq(&es->v[s - 1].uid, uid))
            return &es->v[s - 1];
    }
}

bool pentity_has_ancestor(const struct pentity *e, const puid_t *anc)
{
    size_t lo = 0, hi = e->nanc;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = puid_cmp(e->anc[mid], anc);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* ---- JSON values -------------------------------------------------------- */

static char *errf(arena_t *a, const char *msg, const char *detail)
{
    char *s = arena_printf(a, "%s%s%s", msg, detail ? ": " : "", detail ? detail : "");
    return s ? s : (char *)"out of memory";
}

/* Entity type names are normalised: identifiers joined by "::", none of
 * them a reserved word. */
static bool valid_type_name(const char *s, size_t len)
{
    static const char *const reserved[] = {"true", "false", "if",  "then", "else",
                                           "in",   "like",  "has", "is",   "__cedar"};
    size_t i = 0;
    for (;;) {
        if (i >= len ||
            !(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
        size_t start = i;
        while (i < len && (s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') ||
                           (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
            i++;
        for (size_t r = 0; r < sizeof(reserved) / sizeof(reserved[0]); r++)
            if (strlen(reserved[r]) == i - start && memcmp(reserved[r], s + start, i - start) == 0)
                return false;
        if (i == len)
            return true;
        if (len - i < 2 || s[i] != ':' || s[i + 1] != ':')
            return false;
        i += 2;
    }
}

static const struct pjnode *escape(const struct pjnode *j, const char *key)
{
    return j && j->type == PJ_OBJECT && j->n == 1 ? pj_get(j, key) : NULL;
}

int pjson_to_uid(arena_t *a, const struct pjnode *j, puid_t *out, char **err)
{
    /* the reference reads a uid's __entity even beside other keys */
    const struct pjnode *inner = pj_get(j, "__entity");
    if (inner)
        j = inner;
    const struct pjnode *type = pj_get(j, "type"), *id = pj_get(j, "id");
    if (!type || type->type != PJ_STRING || !id || id->type != PJ_STRING) {
        *err = errf(a, "expected an entity reference {\"type\": …, \"id\": …}", NULL);
        return -1;
    }
    if (!valid_type_name(type->s.s, type->s.len)) {
        *err = errf(a, "invalid entity type name", type->s.s);
        return -1;
    }
    out->type = pstr_dup(a, type->s.s, type->s.len);
    out->id = pstr_dup(a, id->s.s, id->s.len);
    if (!out->type.s || !out->id.s) {
        *err = errf(a, "out of memory", NULL);
        return -1;
    }
    out->hash = puid_hash(type->s.s, type->s.len, id->s.s, id->s.len);
    return 0;
}

static int extn_to_val(arena_t *a, const struct pjnode *x, pval_t *out, char **err, int depth)
{
    const struct pjnode *fn = pj_get(x, "fn"), *arg = pj_get(x, "arg"), *args = pj_get(x, "args");
    if (!fn || fn->type != PJ_STRING || (!arg && (!args || args->type != PJ_ARRAY))) {
        *err = errf(a, "expected __extn to be {\"fn\": …, \"arg\": …}", NULL);
        return -1;
    }
    int f = pfn_lookup(fn->s.s, fn->s.len);
    if (f < 0 || pfn_table[f].builtin) {
        *err = errf(a, "unknown extension function", fn->s.s);
        return -1;
    }
    pval_t v[4];
    size_t n = arg ? 1 : args->n;
    if (n > 4 || n != pfn_table[f].nargs) {
        *err = errf(a, "wrong number of arguments to extension function", fn->s.s);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (pjson_to_val(a, arg ? arg : args->items[i], &v[i], err, depth + 1))
            return -1;
    const char *msg;
    if (pext_call(f, v, n, out, &msg)) {
        *err = errf(a, fn->s.s, msg);
        return -1;
    }
    return 0;
}

int pjson_to_val(arena_t *a, const struct pjnode *j, pval_t *out, char **err, int depth)
{
    memset(out, 0, sizeof(*out));
    if (depth > PPOL_MAX_JSON_DEPTH) {
        *err = errf(a, "value nested too deeply", NULL);
        return -1;
    }
    switch (j->type) {
    case PJ_STRING:
        out->kind = PV_STRING;
        out->u.str = pstr_dup(a, j->s.s, j->s.len);
        if (!out->u.str.s) {
            *err = errf(a, "out of memory", NULL);
            return -1;
        }
        return 0;
    case PJ_INT:
        out->kind = PV_LONG;
        out->u.n = j->i;
        return 0;
    case PJ_BOOL:
        out->kind = PV_BOOL;
        out->u.b = j->b;
        return 0;
    case PJ_FLOAT:
        *err = errf(a, "not a Cedar value (floating point, or beyond 64 bits)", NULL);
        return -1;
    case PJ_NULL:
        *err = errf(a, "null is not a Cedar value", NULL);
        return -1;
    case PJ_ARRAY: {
        pval_t *tmp = arena_alloc(a, (j->n ? j->n : 1) * sizeof(pval_t));
        if (!tmp) {
            *err = errf(a, "out of memory", NULL);
            return -1;
        }
        for (uint32_t i = 0; i < j->n; i++)
            if (pjson_to_val(a, j->items[i], &tmp[i], err, depth + 1))
                return -1;
        out->kind = PV_SET;
        out->u.set = pset_make(a, tmp, j->n);
        if (!out->u.set) {
            *err = errf(a, "out of memory", NULL);
            return -1;
        }
        return 0;
    }
    default:
        break;
    }
    if (escape(j, "__entity")) {
        puid_t *u = arena_alloc(a, sizeof(*u));
        if (!u) {
            *err = errf(a, "out of memory", NULL);
            return -1;
        }
        if (pjson_to_uid(a, j, u, err))
            return -1;
        out->kind = PV_ENTITY;
        out->u.uid = u;
        return 0;
    }
    if (escape(j, "__extn"))
        return extn_to_val(a, escape(j, "__extn"), out, err, depth);
    if (escape(j, "__expr")) {
        *err = errf(a, "the __expr escape is no longer supported", NULL);
        return -1;
    }
    struct pfield *f = arena_alloc(a, (j->n ? j->n : 1) * sizeof(*f));
    if (!f) {
        *err = errf(a, "out of memory", NULL);
        return -1;
    }
    for (uint32_t i = 0; i < j->n; i++) {
        f[i].key = pstr_dup(a, j->keys[i].s, j->keys[i].len);
        if (pjson_to_val(a, j->items[i], &f[i].val, err, depth + 1))
            return -1;
    }
    const pstr_t *dup;
    out->kind = PV_RECORD;
    out->u.rec = prec_make(a, f, j->n, &dup);
    if (!out->u.rec) {
        *err = errf(a, dup ? "duplicate key" : "out of memory", NULL);
        return -1;
    }
    return 0;
}

static bool is_ref_object(const struct pjnode *j)
{
    const struct pjnode *t = pj_get(j, "type"), *i = pj_get(j, "id");
    return j->type == PJ_OBJECT && j->n == 2 && t && t->type == PJ_STRING && i &&
           i->type == PJ_STRING;
}

int pjson_to_val_typed(arena_t *a, const struct pjnode *j, const policy_schema_t *s,
                       const struct ptype *t, pval_t *out, char **err, int depth)
{
    struct ptype r;
    if (!s || !t || depth > PPOL_MAX_JSON_DEPTH || pschema_resolve(s, t, &r))
        return pjson_to_val(a, j, out, err, depth);
    memset(out, 0, sizeof(*out));
    switch (r.kind) {
    case TY_ENTITY:
        if (is_ref_object(j)) {
            puid_t *u = arena_alloc(a, sizeof(*u));
            if (!u || pjson_to_uid(a, j, u, err))
                return -1;
            out->kind = PV_ENTITY;
            out->u.uid = u;
            return 0;
        }
        break;
    case TY_EXT:
        if (j->type == PJ_STRING) {
            const char *msg;
            pval_t arg = {.kind = PV_STRING, .u.str = j->s};
            if (pext_call(r.ext, &arg, 1, out, &msg)) {
                *err = errf(a, pfn_table[r.ext].name, msg);
                return -1;
            }
            return 0;
        }
        if (j->type == PJ_OBJECT && !pj_get(j, "__extn") && pj_get(j, "fn"))
            return extn_to_val(a, j, out, err, depth);
        break;
    case TY_SET:
        if (j->type == PJ_ARRAY) {
            pval_t *tmp = arena_alloc(a, (j->n ? j->n : 1) * sizeof(pval_t));
            if (!tmp) {
                *err = errf(a, "out of memory", NULL);
                return -1;
            }
            for (uint32_t i = 0; i < j->n; i++)
                if (pjson_to_val_typed(a, j->items[i], s, r.elem, &tmp[i], err, depth + 1))
                    return -1;
            out->kind = PV_SET;
            if (!(out->u.set = pset_make(a, tmp, j->n))) {
                *err = errf(a, "out of memory", NULL);
                return -1;
            }
            return 0;
        }
        break;
    case TY_RECORD:
        if (j->type == PJ_OBJECT && !escape(j, "__entity") && !escape(j, "__extn")) {
            struct pfield *f = arena_alloc(a, (j->n ? j->n : 1) * sizeof(*f));
            if (!f) {
                *err = errf(a, "out of memory", NULL);
                return -1;
            }
            for (uint32_t i = 0; i < j->n; i++) {
                const struct ptype *ft = NULL;
                for (uint32_t k = 0; k < r.n && !ft; k++)
                    if (pstr_cmp(r.keys[k], j->keys[i]) == 0)
                        ft = r.vals[k];
                f[i].key = pstr_dup(a, j->keys[i].s, j->keys[i].len);
                if (pjson_to_val_typed(a, j->items[i], s, ft, &f[i].val, err, depth + 1))
                    return -1;
            }
            const pstr_t *dup;
            out->kind = PV_RECORD;
            if (!(out->u.rec = prec_make(a, f, j->n, &dup))) {
                *err = errf(a, dup ? "duplicate key" : "out of memory", NULL);
                return -1;
            }
            return 0;
        }
        break;
    default:
        break;
    }
    return pjson_to_val(a, j, out, err, depth);
}

/* ---- the store ---------------------------------------------------------- */

static int index_entities(struct policy_entities *es, char *err, size_t err_len)
{
    size_t cap = 16;
    while (cap < es->n * 2)
        cap *= 2;
    es->slots = calloc(cap, sizeof(*es->slots));
    if (!es->slots) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    es->mask = cap - 1;
    for (size_t k = 0; k < es->n; k++) {
        const puid_t *u = &es->v[k].uid;
        size_t i = u->hash & es->mask;
        for (; es->slots[i]; i = (i + 1) & es->mask) {
            if (puid_eq(&es->v[es->slots[i] - 1].uid, u)) {
                snprintf(err, err_len, "entity %.*s::\"%.*s\" appears twice", (int)u->type.len,
                         u->type.s, (int)(u->id.len > 200 ? 200 : u->id.len), u->id.s);
                return -1;
            }
        }
        es->slots[i] = (uint32_t)(k + 1);
    }
    return 0;
}

static int cmp_uidp(const void *x, const void *y)
{
    return puid_cmp(*(const puid_t *const *)x, *(const puid_t *const *)y);
}

/* Ancestors of every entity: a walk up `parents` from each one. */
static int close_hierarchy(struct policy_entities *es, char *err, size_t err_len)
{
    int rc = -1;
    uint32_t *seen = calloc(es->n ? es->n : 1, sizeof(*seen)); /* stamp = k + 1 */
    size_t qcap = 64;
    const puid_t **queue = malloc(qcap * sizeof(*queue));
    if (!seen || !queue)
        goto out;
    for (size_t k = 0; k < es->n; k++) {
        struct pentity *e = &es->v[k];
        size_t qn = 0;
        seen[k] = (uint32_t)(k + 1);
        /* queue holds each ancestor once; entities not in the store have no
         * parents of their own, so they are only recorded */
        for (size_t head = 0, from = k;; head++) {
            const struct pentity *src = &es->v[from];
            for (uint32_t p = 0; p < src->nparents; p++) {
                const puid_t *pu = &src->parents[p];
                const struct pentity *pe = pentities_find(es, pu);
                if (pe) {
                    size_t pi = (size_t)(pe - es->v);
                    if (pi == k) {
                        snprintf(err, err_len,
                                 "the entity hierarchy has a cycle through %.*s::\"%.*s\"",
                                 (int)e->uid.type.len, e->uid.type.s,
                                 (int)(e->uid.id.len > 200 ? 200 : e->uid.id.len), e->uid.id.s);
                        rc = -2;
                        goto out;
                    }
                    if (seen[pi] == k + 1)
                        continue;
                    seen[pi] = (uint32_t)(k + 1);
                    pu = &pe->uid;
                }
                if (qn == qcap) {
                    const puid_t **q2 = realloc(queue, qcap * 2 * sizeof(*queue));
                    if (!q2)
                        goto out;
                    queue = q2;
                    qcap *= 2;
                }
                queue[qn++] = pu;
            }
            /* next queued ancestor that is in the store */
            const struct pentity *nx = NULL;
            while (head < qn && !(nx = pentities_find(es, queue[head])))
                head++;
            if (!nx)
                break;
            from = (size_t)(nx - es->v);
        }
        if (qn > 1)
            qsort(queue, qn, sizeof(*queue), cmp_uidp);
        size_t m = 0;
        for (size_t i = 0; i < qn; i++)
            if (m == 0 || puid_cmp(queue[m - 1], queue[i]) != 0)
                queue[m++] = queue[i];
        e->anc = arena_alloc(&es->arena, (m ? m : 1) * sizeof(*e->anc));
        if (!e->anc)
            goto out;
        memcpy(e->anc, queue, m * sizeof(*queue));
        e->nanc = (uint32_t)m;
    }
    rc = 0;
out:
    if (rc == -1)
        snprintf(err, err_len, "out of memory");
    free(seen);
    free(queue);
    return rc;
}

/* Tags: a record whose every value has the declared tag type. */
static int tags_to_val(arena_t *a, const struct pjnode *j, const policy_schema_t *s,
                       const struct ptype *t, pval_t *out, char **err)
{
    if (!s || !t)
        return pjson_to_val(a, j, out, err, 0);
    struct pfield *f = arena_alloc(a, (j->n ? j->n : 1) * sizeof(*f));
    if (!f) {
        *err = errf(a, "out of memory", NULL);
        return -1;
    }
    for (uint32_t i = 0; i < j->n; i++) {
        f[i].key = pstr_dup(a, j->keys[i].s, j->keys[i].len);
        if (pjson_to_val_typed(a, j->items[i], s, t, &f[i].val, err, 1))
            return -1;
    }
    const pstr_t *dup;
    memset(out, 0, sizeof(*out));
    out->kind = PV_RECORD;
    if (!(out->u.rec = prec_make(a, f, j->n, &dup))) {
        *err = errf(a, dup ? "duplicate key" : "out of memory", NULL);
        return -1;
    }
    return 0;
}

static int load_entity(struct policy_entities *es, const policy_schema_t *schema,
                       const struct pjnode *j, struct pentity *e, char *err, size_t err_len)
{
    char *msg = NULL;
    arena_t *a = &es->arena;
    memset(e, 0, sizeof(*e));
    const struct pjnode *uid = pj_get(j, "uid"), *attrs = pj_get(j, "attrs"),
                        *parents = pj_get(j, "parents"), *tags = pj_get(j, "tags");
    if (j->type != PJ_OBJECT || !uid || !attrs || !parents) {
        snprintf(err, err_len, "expected an entity object with \"uid\", \"attrs\" and \"parents\"");
        return -1;
    }
    if (pjson_to_uid(a, uid, &e->uid, &msg))
        goto fail;
    e->attrs = &prec_empty;
    e->tags = &prec_empty;
    const struct pjnode *recs[2] = {attrs, tags};
    const struct prec **outs[2] = {&e->attrs, &e->tags};
    for (int r = 0; r < 2; r++) {
        if (!recs[r])
            continue;
        pval_t v;
        if (recs[r]->type != PJ_OBJECT) {
            msg = errf(a, r ? "\"tags\" must be an object" : "\"attrs\" must be an object", NULL);
            goto fail;
        }
        const struct ptype *rt = pschema_entity_attrs(schema, e->uid.type, false);
        if (r == 0 ? pjson_to_val_typed(a, recs[r], schema, rt, &v, &msg, 0)
                   : tags_to_val(a, recs[r], schema,
                                 pschema_entity_attrs(schema, e->uid.type, true), &v, &msg))
            goto fail;
        if (v.kind != PV_RECORD) {
            msg = errf(a, r ? "\"tags\" must be a record" : "\"attrs\" must be a record", NULL);
            goto fail;
        }
        *outs[r] = v.u.rec;
    }
    {
        if (parents->type != PJ_ARRAY) {
            msg = errf(a, "\"parents\" must be an array", NULL);
            goto fail;
        }
        size_t n = parents->n;
        puid_t *pv = arena_alloc(a, (n ? n : 1) * sizeof(*pv));
        if (!pv) {
            msg = errf(a, "out of memory", NULL);
            goto fail;
        }
        bool action = pstr_is_action_type(e->uid.type);
        for (size_t i = 0; i < n; i++) {
            if (pjson_to_uid(a, parents->items[i], &pv[i], &msg))
                goto fail;
            if (action && !pstr_is_action_type(pv[i].type)) {
                msg = errf(a, "an action's parents must be actions", pv[i].type.s);
                goto fail;
            }
        }
        e->parents = pv;
        e->nparents = (uint32_t)n;
    }
    return 0;
fail:
    snprintf(err, err_len, "%s", msg ? msg : "invalid entity");
    return -1;
}

policy_entities_t *policy_entities_new_empty(void)
{
    struct policy_entities *es = calloc(1, sizeof(*es));
    if (es)
        arena_init(&es->arena, 16384);
    return es;
}

policy_entities_t *pentities_load(const struct pjnode *array, const policy_schema_t *schema,
                                  char *err, size_t err_len)
{
    if (!array || array->type != PJ_ARRAY) {
        snprintf(err, err_len, "entities: expected a JSON array");
        return NULL;
    }
    struct policy_entities *es = policy_entities_new_empty();
    if (!es) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    size_t n = array->n, nact = pschema_action_count(schema);
    es->v = calloc(n + nact ? n + nact : 1, sizeof(*es->v));
    if (!es->v) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        char msg[512];
        if (load_entity(es, schema, array->items[i], &es->v[i], msg, sizeof(msg))) {
            snprintf(err, err_len, "entities[%zu]: %s", i, msg);
            goto fail;
        }
        es->n++;
    }
    if (index_entities(es, err, err_len))
        goto fail;
    if (nact) {
        /* the schema's actions, with their groups, unless given explicitly */
        for (size_t i = 0; i < nact; i++) {
            const struct pschema_action *sa = pschema_action_at(schema, i);
            if (pentities_find(es, &sa->uid))
                continue;
            struct pentity *e = &es->v[es->n++];
            memset(e, 0, sizeof(*e));
            e->uid = sa->uid;
            e->attrs = &prec_empty;
            e->tags = &prec_empty;
            e->parents = sa->parents;
            e->nparents = sa->nparents;
        }
        free(es->slots);
        if (index_entities(es, err, err_len))
            goto fail;
    }
    if (close_hierarchy(es, err, err_len))
        goto fail;
    return es;
fail:
    policy_entities_free(es);
    return NULL;
}

policy_entities_t *policy_entities_load_json(const json_t *array, char *err, size_t err_len)
{
    arena_t tmp;
    arena_init(&tmp, 16384);
    const struct pjnode *j = pj_from_jansson(&tmp, array, 0);
    policy_entities_t *es = j ? pentities_load(j, NULL, err, err_len) : NULL;
    if (!j)
        snprintf(err, err_len, "out of memory");
    arena_free(&tmp);
    return es;
}

static policy_entities_t *load_text(const char *text, size_t len, const policy_schema_t *schema,
                                    char *err, size_t err_len)
{
    arena_t tmp;
    arena_init(&tmp, 65536);
    const struct pjnode *j;
    policy_entities_t *es = NULL;
    if (pj_parse(&tmp, text, len, &j, err, err_len) == 0)
        es = pentities_load(j, schema, err, err_len);
    arena_free(&tmp);
    return es;
}

policy_entities_t *policy_entities_load_text(const char *text, size_t len, char *err,
                                             size_t err_len)
{
    return load_text(text, len, NULL, err, err_len);
}

int pread_file(const char *path, buf_t *b, size_t max, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: %m", path);
        return -1;
    }
    buf_init(b, max);
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = buf_append(b, chunk, n);
    if (rc || ferror(f)) {
        snprintf(err, err_len, "%s: %s", path, rc ? "file too large" : "read error");
        buf_free(b);
        fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

policy_entities_t *policy_entities_load_file(const char *path, char *err, size_t err_len)
{
    return policy_entities_load_file_schema(path, NULL, err, err_len);
}

policy_entities_t *policy_entities_load_file_schema(const char *path, const policy_schema_t *schema,
                                                    char *err, size_t err_len)
{
    buf_t b;
    if (pread_file(path, &b, (size_t)1 << 30, err, err_len))
        return NULL;
    char msg[512];
    policy_entities_t *es = load_text(b.data ? b.data : "", b.len, schema, msg, sizeof(msg));
    if (!es)
        snprintf(err, err_len, "%s: %s", path, msg);
    buf_free(&b);
    return es;
}

size_t policy_entities_count(const policy_entities_t *es)
{
    return es ? es->n : 0;
}

void policy_entities_free(policy_entities_t *es)
{
    if (!es)
        return;
    arena_free(&es->arena);
    free(es->v);
    free(es->slots);
    free(es);
}
