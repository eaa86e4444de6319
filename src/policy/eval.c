// SPDX-License-Identifier: Apache-2.0
// Cedar expression evaluator: one AST walk per policy condition, values in
// the decision's arena, errors (type errors, overflow, missing attributes or
// entities) reported with the line:col of the expression that failed.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

static int fail(struct peval *ev, const struct pexpr *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct peval *ev, const struct pexpr *e, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ev->err = arena_printf(ev->arena, "%u:%u: %s", e->line, e->col, msg);
    if (!ev->err)
        ev->err = "out of memory";
    return -1;
}

static int type_error(struct peval *ev, const struct pexpr *e, const char *want, const pval_t *got)
{
    return fail(ev, e, "type error: expected %s, got %s", want, pkind_name(got->kind));
}

static int oom(struct peval *ev, const struct pexpr *e)
{
    return fail(ev, e, "out of memory");
}

static void set_bool(pval_t *out, bool b)
{
    memset(out, 0, sizeof(*out));
    out->kind = PV_BOOL;
    out->u.b = b;
}

static void set_long(pval_t *out, int64_t n)
{
    memset(out, 0, sizeof(*out));
    out->kind = PV_LONG;
    out->u.n = n;
}

bool peval_uid_in(const struct peval *ev, const puid_t *uid, const puid_t *target)
{
    if (puid_eq(uid, target))
        return true;
    const struct pentity *ent = ev->ents ? pentities_find(ev->ents, uid) : NULL;
    return ent && pentity_has_ancestor(ent, target);
}

/* lhs in rhs, rhs an entity or a set of entities (every element checked
 * to be an entity before any membership is tested, as the reference does). */
static int eval_in(struct peval *ev, const struct pexpr *e, const pval_t *l, const pval_t *r,
                   pval_t *out)
{
    if (l->kind != PV_ENTITY)
        return type_error(ev, e, "entity", l);
    if (r->kind == PV_ENTITY) {
        set_bool(out, peval_uid_in(ev, l->u.uid, r->u.uid));
        return 0;
    }
    if (r->kind != PV_SET)
        return type_error(ev, e, "entity or set of entities", r);
    const struct pset *s = r->u.set;
    for (uint32_t i = 0; i < s->n; i++)
        if (s->v[i].kind != PV_ENTITY)
            return type_error(ev, e, "set of entities", &s->v[i]);
    const struct pentity *ent = ev->ents ? pentities_find(ev->ents, l->u.uid) : NULL;
    for (uint32_t i = 0; i < s->n; i++)
        if (puid_eq(l->u.uid, s->v[i].u.uid) || (ent && pentity_has_ancestor(ent, s->v[i].u.uid))) {
            set_bool(out, true);
            return 0;
        }
    set_bool(out, false);
    return 0;
}

static int eval_bool(struct peval *ev, const struct pexpr *e, bool *b)
{
    pval_t v;
    if (peval_expr(ev, e, &v))
        return -1;
    if (v.kind != PV_BOOL)
        return type_error(ev, e, "bool", &v);
    *b = v.u.b;
    return 0;
}

static int compare(struct peval *ev, const struct pexpr *e, const pval_t *l, const pval_t *r,
                   pval_t *out)
{
    bool ok = l->kind == r->kind &&
              (l->kind == PV_LONG || l->kind == PV_DATETIME || l->kind == PV_DURATION);
    if (!ok)
        return fail(ev, e, "type error: cannot compare %s with %s (long, datetime or duration)",
                    pkind_name(l->kind), pkind_name(r->kind));
    int64_t a = l->u.n, b = r->u.n;
    switch (e->kind) {
    case EX_LT:
        set_bool(out, a < b);
        break;
    case EX_LE:
        set_bool(out, a <= b);
        break;
    case EX_GT:
        set_bool(out, a > b);
        break;
    default:
        set_bool(out, a >= b);
        break;
    }
    return 0;
}

static int arith(struct peval *ev, const struct pexpr *e, const pval_t *l, const pval_t *r,
                 pval_t *out)
{
    if (l->kind != PV_LONG)
        return type_error(ev, e, "long", l);
    if (r->kind != PV_LONG)
        return type_error(ev, e, "long", r);
    int64_t v;
    bool over = e->kind == EX_ADD   ? __builtin_add_overflow(l->u.n, r->u.n, &v)
                : e->kind == EX_SUB ? __builtin_sub_overflow(l->u.n, r->u.n, &v)
                                    : __builtin_mul_overflow(l->u.n, r->u.n, &v);
    if (over)
        return fail(ev, e, "integer overflow");
    set_long(out, v);
    return 0;
}

/* Attributes (or tags) of an entity or record; *rec NULL when the entity
 * does not exist. */
static int attrs_of(struct peval *ev, const struct pexpr *e, const pval_t *v, bool tags,
                    const struct prec **rec)
{
    if (v->kind == PV_RECORD && !tags) {
        *rec = v->u.rec;
        return 0;
    }
    if (v->kind != PV_ENTITY)
        return type_error(ev, e, tags ? "entity" : "entity or record", v);
    const struct pentity *ent = ev->ents ? pentities_find(ev->ents, v->u.uid) : NULL;
    *rec = ent ? (tags ? ent->tags : ent->attrs) : NULL;
    return 0;
}

static int missing(struct peval *ev, const struct pexpr *e, const pval_t *v, pstr_t name, bool tag,
                   bool no_entity)
{
    buf_t b;
    buf_init(&b, 1024);
    int rc = 0;
    if (v->kind == PV_ENTITY)
        rc = puid_print(&b, v->u.uid);
    else
        rc = buf_append_lit(&b, "record");
    const char *who = rc == 0 && b.data ? b.data : "value";
    if (no_entity)
        fail(ev, e, "entity %s does not exist", who);
    else
        fail(ev, e, "%s does not have the %s `%.*s`", who, tag ? "tag" : "attribute",
             (int)(name.len > 100 ? 100 : name.len), name.s);
    buf_free(&b);
    return -1;
}

static int eval_attr(struct peval *ev, const struct pexpr *e, pval_t *out)
{
    pval_t v;
    const struct prec *rec = NULL;
    if (peval_expr(ev, e->a, &v) || attrs_of(ev, e, &v, false, &rec))
        return -1;
    if (!rec)
        return missing(ev, e, &v, e->str, false, true);
    const pval_t *x = prec_get(rec, e->str.s, e->str.len);
    if (!x)
        return missing(ev, e, &v, e->str, false, false);
    *out = *x;
    return 0;
}

static int eval_has(struct peval *ev, const struct pexpr *e, pval_t *out)
{
    pval_t v;
    const struct prec *rec = NULL;
    if (peval_expr(ev, e->a, &v) || attrs_of(ev, e, &v, false, &rec))
        return -1;
    set_bool(out, rec && prec_get(rec, e->str.s, e->str.len) != NULL);
    return 0;
}

static int eval_is(struct peval *ev, const struct pexpr *e, pval_t *out)
{
    pval_t v;
    if (peval_expr(ev, e->a, &v))
        return -1;
    if (v.kind != PV_ENTITY)
        return type_error(ev, e, "entity", &v);
    if (pstr_cmp(v.u.uid->type, e->str) != 0 || !e->b) {
        set_bool(out, pstr_cmp(v.u.uid->type, e->str) == 0);
        return 0;
    }
    pval_t r;
    if (peval_expr(ev, e->b, &r))
        return -1;
    return eval_in(ev, e, &v, &r, out);
}

static int eval_set(struct peval *ev, const struct pexpr *e, pval_t *out)
{
    pval_t *tmp = arena_alloc(ev->arena, (e->n ? e->n : 1) * sizeof(pval_t));
    if (!tmp)
        return oom(ev, e);
    for (uint32_t i = 0; i < e->n; i++)
        if (peval_expr(ev, e->items[i], &tmp[i]))
            return -1;
    const struct pset *s = pset_make(ev->arena, tmp, e->n);
    if (!s)
        return oom(ev, e);
    memset(out, 0, sizeof(*out));
    out->kind = PV_SET;
    out->u.set = s;
    return 0;
}

static int eval_record(struct peval *ev, const struct pexpr *e, pval_t *out)
{
    struct pfield *f = arena_alloc(ev->arena, (e->n ? e->n : 1) * sizeof(*f));
    if (!f)
        return oom(ev, e);
    for (uint32_t i = 0; i < e->n; i++) {
        f[i].key = e->keys[i];
        if (peval_expr(ev, e->items[i], &f[i].val))
            return -1;
    }
    const pstr_t *dup;
    const struct prec *r = prec_make(ev->arena, f, e->n, &dup);
    if (!r)
        return dup ? fail(ev, e, "duplicate record key") : oom(ev, e);
    memset(out, 0, sizeof(*out));
    out->kind = PV_RECORD;
    out->u.rec = r;
    return 0;
}

static int eval_tag(struct peval *ev, const struct pexpr *e, const pval_t *a, pval_t *out)
{
    if (a[0].kind != PV_ENTITY)
        return type_error(ev, e, "entity", &a[0]);
    if (a[1].kind != PV_STRING)
        return type_error(ev, e, "string", &a[1]);
    const struct prec *tags = NULL;
    if (attrs_of(ev, e, &a[0], true, &tags))
        return -1;
    const pval_t *x = tags ? prec_get(tags, a[1].u.str.s, a[1].u.str.len) : NULL;
    if (e->sub == FN_HAS_TAG) {
        set_bool(out, x != NULL);
        return 0;
    }
    if (!x)
        return missing(ev, e, &a[0], a[1].u.str, true, tags == NULL);
    *out = *x;
    return 0;
}

static int eval_call(struct peval *ev, const struct pexpr *e, pval_t *out)
{
    pval_t small[4];
    pval_t *a = e->n <= 4 ? small : arena_alloc(ev->arena, e->n * sizeof(pval_t));
    if (!a)
        return oom(ev, e);
    for (uint32_t i = 0; i < e->n; i++)
        if (peval_expr(ev, e->items[i], &a[i]))
            return -1;
    switch (e->sub) {
    case FN_CONTAINS:
        if (a[0].kind != PV_SET)
            return type_error(ev, e, "set", &a[0]);
        set_bool(out, pset_has(a[0].u.set, &a[1]));
        return 0;
    case FN_CONTAINS_ALL:
    case FN_CONTAINS_ANY: {
        if (a[0].kind != PV_SET)
            return type_error(ev, e, "set", &a[0]);
        if (a[1].kind != PV_SET)
            return type_error(ev, e, "set", &a[1]);
        bool all = e->sub == FN_CONTAINS_ALL, r = all;
        const struct pset *hay = a[0].u.set, *needles = a[1].u.set;
        for (uint32_t i = 0; i < needles->n; i++)
            if (pset_has(hay, &needles->v[i]) != all) {
                r = !all;
                break;
            }
        set_bool(out, r);
        return 0;
    }
    case FN_IS_EMPTY:
        if (a[0].kind != PV_SET)
            return type_error(ev, e, "set", &a[0]);
        set_bool(out, a[0].u.set->n == 0);
        return 0;
    case FN_HAS_TAG:
    case FN_GET_TAG:
        return eval_tag(ev, e, a, out);
    default: {
        const char *err;
        if (pext_call(e->sub, a, e->n, out, &err))
            return fail(ev, e, "%s(): %s", pfn_table[e->sub].name, err);
        return 0;
    }
    }
}

int peval_expr(struct peval *ev, const struct pexpr *e, pval_t *out)
{
    pval_t l, r;
    bool b = false;
    switch (e->kind) {
    case EX_LIT:
        *out = e->lit;
        return 0;
    case EX_VAR:
        *out = e->sub == PVAR_PRINCIPAL  ? ev->principal
               : e->sub == PVAR_ACTION   ? ev->action
               : e->sub == PVAR_RESOURCE ? ev->resource
                                         : ev->context;
        return 0;
    case EX_NOT:
        if (eval_bool(ev, e->a, &b))
            return -1;
        set_bool(out, !b);
        return 0;
    case EX_NEG:
        if (peval_expr(ev, e->a, &l))
            return -1;
        if (l.kind != PV_LONG)
            return type_error(ev, e, "long", &l);
        if (l.u.n == INT64_MIN)
            return fail(ev, e, "integer overflow");
        set_long(out, -l.u.n);
        return 0;
    case EX_AND:
    case EX_OR:
        if (eval_bool(ev, e->a, &b))
            return -1;
        if (b == (e->kind == EX_OR)) {
            set_bool(out, b);
            return 0;
        }
        if (eval_bool(ev, e->b, &b))
            return -1;
        set_bool(out, b);
        return 0;
    case EX_IF:
        if (eval_bool(ev, e->a, &b))
            return -1;
        return peval_expr(ev, b ? e->b : e->c, out);
    case EX_HAS:
        return eval_has(ev, e, out);
    case EX_ATTR:
        return eval_attr(ev, e, out);
    case EX_LIKE:
        if (peval_expr(ev, e->a, &l))
            return -1;
        if (l.kind != PV_STRING)
            return type_error(ev, e, "string", &l);
        set_bool(out, ppattern_match(e->pat, l.u.str.s, l.u.str.len));
        return 0;
    case EX_IS:
        return eval_is(ev, e, out);
    case EX_SET:
        return eval_set(ev, e, out);
    case EX_RECORD:
        return eval_record(ev, e, out);
    case EX_CALL:
        return eval_call(ev, e, out);
    default:
        break;
    }
    /* binary operators: both operands first */
    if (peval_expr(ev, e->a, &l) || peval_expr(ev, e->b, &r))
        return -1;
    switch (e->kind) {
    case EX_EQ:
    case EX_NE:
        set_bool(out, pval_eq(&l, &r) == (e->kind == EX_EQ));
        return 0;
    case EX_LT:
    case EX_LE:
    case EX_GT:
    case EX_GE:
        return compare(ev, e, &l, &r, out);
    case EX_IN:
        return eval_in(ev, e, &l, &r, out);
    case EX_ADD:
    case EX_SUB:
    case EX_MUL:
        return arith(ev, e, &l, &r, out);
    }
    return fail(ev, e, "internal error: unknown expression kind %d", e->kind);
}

bool ppattern_match(const struct ppattern *p, const char *s, size_t len)
{
    if (p->n == 1 && !p->star_first)
        return p->chunk[0].len == len && memcmp(p->chunk[0].s, s, len) == 0;
    /* first chunk anchors the start (unless a wildcard precedes it), the
     * last anchors the end; the ones between match leftmost-first */
    size_t lo = 0, hi = len;
    uint32_t first = 0, last = p->n;
    if (!p->star_first) {
        const pstr_t *c = &p->chunk[0];
        if (c->len > len || memcmp(s, c->s, c->len) != 0)
            return false;
        lo = c->len;
        first = 1;
    }
    if (!p->star_last && last > first) {
        const pstr_t *c = &p->chunk[last - 1];
        if (c->len > hi - lo || memcmp(s + hi - c->len, c->s, c->len) != 0)
            return false;
        hi -= c->len;
        last--;
    }
    for (uint32_t i = first; i < last; i++) {
        const pstr_t *c = &p->chunk[i];
        if (c->len == 0)
            continue;
        const char *at = c->len <= hi - lo ? memmem(s + lo, hi - lo, c->s, c->len) : NULL;
        if (!at)
            return false;
        lo = (size_t)(at - s) + c->len;
    }
    return true;
}
