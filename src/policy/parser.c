// SPDX-License-Identifier: Apache-2.0
// Cedar expression parser: tokens to an AST (struct pexpr) in the policy
// set's arena. Precedence follows the grammar: if, ||, &&, relations
// (==, <, in, has, like, is), + -, *, unary ! -, member access.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/parser.h"

static struct pexpr *node(struct pparser *p, int kind, const struct ptoken *at)
{
    struct pexpr *e = arena_alloc(p->a, sizeof(*e));
    if (!e) {
        pp_error(p, at, "out of memory");
        return NULL;
    }
    memset(e, 0, sizeof(*e));
    e->kind = (uint8_t)kind;
    e->height = 1;
    e->line = at->line;
    e->col = at->col;
    return e;
}

/* Sets e's height from its children's; an AST deeper than the limit is
 * refused here so the evaluator's recursion stays bounded. */
static struct pexpr *grown(struct pparser *p, struct pexpr *e)
{
    if (!e)
        return NULL;
    uint32_t h = 0;
    const struct pexpr *kids[3] = {e->a, e->b, e->c};
    for (int i = 0; i < 3; i++)
        if (kids[i] && kids[i]->height > h)
            h = kids[i]->height;
    for (uint32_t i = 0; i < e->n; i++)
        if (e->items[i]->height > h)
            h = e->items[i]->height;
    if (h + 1 > PPOL_MAX_DEPTH * 4) {
        pp_error(p, &p->tok, "expression nested too deeply (limit %d)", PPOL_MAX_DEPTH * 4);
        return NULL;
    }
    e->height = h + 1;
    return e;
}

static struct pexpr *binary(struct pparser *p, int kind, const struct ptoken *at, struct pexpr *l,
                            struct pexpr *r)
{
    if (!l || !r)
        return NULL;
    struct pexpr *e = node(p, kind, at);
    if (e) {
        e->a = l;
        e->b = r;
    }
    return grown(p, e);
}

/* A growable list of expressions, moved into the arena when complete. */
struct elist {
    struct pexpr **v;
    pstr_t *keys;
    size_t n, cap;
};

static int elist_push(struct pparser *p, struct elist *l, struct pexpr *e, pstr_t key)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct pexpr **v = realloc(l->v, cap * sizeof(*v));
        if (v)
            l->v = v;
        pstr_t *k = v ? realloc(l->keys, cap * sizeof(*k)) : NULL;
        if (k)
            l->keys = k;
        if (!v || !k) {
            pp_error(p, &p->tok, "out of memory");
            return -1;
        }
        l->cap = cap;
    }
    l->v[l->n] = e;
    l->keys[l->n] = key;
    l->n++;
    return 0;
}

static int elist_finish(struct pparser *p, struct elist *l, struct pexpr *into, bool keys)
{
    into->n = (uint32_t)l->n;
    into->items = arena_alloc(p->a, (l->n ? l->n : 1) * sizeof(*into->items));
    if (into->items && l->n)
        memcpy(into->items, l->v, l->n * sizeof(*l->v));
    if (keys) {
        into->keys = arena_alloc(p->a, (l->n ? l->n : 1) * sizeof(*into->keys));
        if (into->keys && l->n)
            memcpy(into->keys, l->keys, l->n * sizeof(*l->keys));
    }
    free(l->v);
    free(l->keys);
    memset(l, 0, sizeof(*l));
    if (!into->items || (keys && !into->keys)) {
        pp_error(p, &p->tok, "out of memory");
        return -1;
    }
    return 0;
}

static void elist_drop(struct elist *l)
{
    free(l->v);
    free(l->keys);
    memset(l, 0, sizeof(*l));
}

/* ---- expressions ----------------------------------------------------------- */

static struct pexpr *parse_or(struct pparser *p);
static struct pexpr *parse_add(struct pparser *p);

/* Replaces a set literal or an extension constructor whose arguments are
 * all literals by the value it evaluates to (when that cannot fail). */
static struct pexpr *fold(struct pparser *p, struct pexpr *e)
{
    if (!e)
        return NULL;
    for (uint32_t i = 0; i < e->n; i++)
        if (e->items[i]->kind != EX_LIT)
            return e;
    if (e->kind == EX_SET) {
        pval_t *tmp = arena_alloc(p->a, (e->n ? e->n : 1) * sizeof(pval_t));
        if (!tmp)
            return e;
        for (uint32_t i = 0; i < e->n; i++)
            tmp[i] = e->items[i]->lit;
        const struct pset *s = pset_make(p->a, tmp, e->n);
        if (!s)
            return e;
        e->kind = EX_LIT;
        e->lit.kind = PV_SET;
        e->lit.u.set = s;
    } else if (e->kind == EX_CALL && e->sub <= FN_DURATION && e->n == 1) {
        pval_t v;
        const char *err;
        if (pext_call(e->sub, &e->items[0]->lit, 1, &v, &err) == 0) {
            e->kind = EX_LIT;
            e->lit = v;
        }
    }
    return e;
}

/* '(' [Expr {',' Expr} [',']] ')' after a function or method name */
static int parse_args(struct pparser *p, struct elist *l)
{
    pp_advance(p); /* ( */
    while (p->tok.kind != T_RPAREN) {
        struct pexpr *a = pp_expr(p);
        if (!a || elist_push(p, l, a, (pstr_t){0}))
            return -1;
        if (p->tok.kind == T_COMMA)
            pp_advance(p);
        else if (p->tok.kind != T_RPAREN) {
            pp_error(p, &p->tok, "expected ',' or ')', found %s", ptok_name(p->tok.kind));
            return -1;
        }
    }
    pp_advance(p);
    return 0;
}

static struct pexpr *parse_call(struct pparser *p, const struct ptoken *at, pstr_t name,
                                struct pexpr *receiver)
{
    int fn = pfn_lookup(name.s, name.len);
    if (fn < 0) {
        pp_error(p, at, "`%.*s` is not a known %s", (int)name.len, name.s,
                 receiver ? "method" : "function");
        return NULL;
    }
    if (pfn_table[fn].method != (receiver != NULL)) {
        pp_error(p, at, "`%.*s` is a %s, not a %s", (int)name.len, name.s,
                 receiver ? "function" : "method", receiver ? "method" : "function");
        return NULL;
    }
    struct elist l = {0};
    if (receiver && elist_push(p, &l, receiver, (pstr_t){0}))
        goto fail;
    if (parse_args(p, &l))
        goto fail;
    if (pfn_table[fn].builtin && l.n != pfn_table[fn].nargs) {
        pp_error(p, at, "`%.*s` takes %u argument%s", (int)name.len, name.s,
                 pfn_table[fn].nargs - 1u, pfn_table[fn].nargs == 2 ? "" : "s");
        goto fail;
    }
    struct pexpr *e = node(p, EX_CALL, at);
    if (!e || elist_finish(p, &l, e, false))
        goto fail;
    e->sub = (uint8_t)fn;
    return fold(p, grown(p, e));
fail:
    elist_drop(&l);
    return NULL;
}

static struct pexpr *parse_set(struct pparser *p)
{
    struct ptoken at = p->tok;
    pp_advance(p); /* [ */
    struct elist l = {0};
    while (p->tok.kind != T_RBRACKET) {
        struct pexpr *x = pp_expr(p);
        if (!x || elist_push(p, &l, x, (pstr_t){0}))
            goto fail;
        if (p->tok.kind == T_COMMA)
            pp_advance(p);
        else if (p->tok.kind != T_RBRACKET) {
            pp_error(p, &p->tok, "expected ',' or ']', found %s", ptok_name(p->tok.kind));
            goto fail;
        }
    }
    pp_advance(p);
    struct pexpr *e = node(p, EX_SET, &at);
    if (!e || elist_finish(p, &l, e, false))
        goto fail;
    return fold(p, grown(p, e));
fail:
    elist_drop(&l);
    return NULL;
}

static struct pexpr *parse_record(struct pparser *p)
{
    struct ptoken at = p->tok;
    pp_advance(p); /* { */
    struct elist l = {0};
    while (p->tok.kind != T_RBRACE) {
        pstr_t key;
        struct ptoken kt = p->tok;
        if (p->tok.kind == T_STR) {
            if (pp_string(p, &key))
                goto fail;
        } else if (p->tok.kind == T_IDENT && !pp_is_reserved(&p->tok)) {
            key = pstr_dup(p->a, p->tok.s, p->tok.len);
            pp_advance(p);
        } else {
            pp_error(p, &p->tok, "expected a record key, found %s",
                     p->tok.kind == T_IDENT ? "a reserved word" : ptok_name(p->tok.kind));
            goto fail;
        }
        for (size_t i = 0; i < l.n; i++)
            if (pstr_cmp(l.keys[i], key) == 0) {
                pp_error(p, &kt, "duplicate key in record literal");
                goto fail;
            }
        if (!pp_expect(p, T_COLON, "':'"))
            goto fail;
        struct pexpr *x = pp_expr(p);
        if (!x || elist_push(p, &l, x, key))
            goto fail;
        if (p->tok.kind == T_COMMA)
            pp_advance(p);
        else if (p->tok.kind != T_RBRACE) {
            pp_error(p, &p->tok, "expected ',' or '}', found %s", ptok_name(p->tok.kind));
            goto fail;
        }
    }
    pp_advance(p);
    struct pexpr *e = node(p, EX_RECORD, &at);
    if (!e || elist_finish(p, &l, e, true))
        goto fail;
    return grown(p, e);
fail:
    elist_drop(&l);
    return NULL;
}

static struct pexpr *lit_long(struct pparser *p, const struct ptoken *at, int64_t v)
{
    struct pexpr *e = node(p, EX_LIT, at);
    if (e) {
        e->lit.kind = PV_LONG;
        e->lit.u.n = v;
    }
    return e;
}

/* The digits of an INT token as an unsigned value; -1 beyond 2^63. */
static int int_token(const struct ptoken *t, uint64_t *out)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < t->len; i++) {
        if (v > (UINT64_C(1) << 63) / 10)
            return -1;
        v = v * 10 + (uint64_t)(t->s[i] - '0');
        if (v > (UINT64_C(1) << 63))
            return -1;
    }
    *out = v;
    return 0;
}

static struct pexpr *parse_primary(struct pparser *p)
{
    struct ptoken at = p->tok;
    switch (p->tok.kind) {
    case T_INT: {
        uint64_t v;
        if (int_token(&p->tok, &v) || v > INT64_MAX) {
            pp_error(p, &at, "integer literal out of range");
            return NULL;
        }
        pp_advance(p);
        return lit_long(p, &at, (int64_t)v);
    }
    case T_STR: {
        struct pexpr *e = node(p, EX_LIT, &at);
        if (!e || pp_string(p, &e->lit.u.str))
            return NULL;
        e->lit.kind = PV_STRING;
        return e;
    }
    case T_LPAREN: {
        pp_advance(p);
        struct pexpr *e = pp_expr(p);
        if (!e || !pp_expect(p, T_RPAREN, "')'"))
            return NULL;
        return e;
    }
    case T_LBRACKET:
        return parse_set(p);
    case T_LBRACE:
        return parse_record(p);
    case T_SLOT:
        pp_error(p, &at, "template slots are only allowed in the policy scope");
        return NULL;
    case T_IDENT:
        break;
    default:
        pp_error(p, &at, "expected an expression, found %s", ptok_name(p->tok.kind));
        return NULL;
    }
    if (pp_is_ident(&at, "true") || pp_is_ident(&at, "false")) {
        pp_advance(p);
        struct pexpr *e = node(p, EX_LIT, &at);
        if (e) {
            e->lit.kind = PV_BOOL;
            e->lit.u.b = at.s[0] == 't';
        }
        return e;
    }
    static const char *const vars[] = {"principal", "action", "resource", "context"};
    for (int i = 0; i < 4; i++)
        if (pp_is_ident(&at, vars[i]) && pp_peek(p)->kind != T_COLONCOLON) {
            pp_advance(p);
            struct pexpr *e = node(p, EX_VAR, &at);
            if (e)
                e->sub = (uint8_t)i;
            return e;
        }
    pstr_t path;
    if (pp_path(p, &path))
        return NULL;
    if (p->tok.kind == T_COLONCOLON) {
        puid_t *uid = arena_alloc(p->a, sizeof(*uid));
        struct pexpr *e = node(p, EX_LIT, &at);
        if (!uid || !e || pp_finish_uid(p, path, uid))
            return NULL;
        e->lit.kind = PV_ENTITY;
        e->lit.u.uid = uid;
        return e;
    }
    if (p->tok.kind == T_LPAREN)
        return parse_call(p, &at, path, NULL);
    pp_error(p, &at, "unexpected identifier `%.*s`", (int)path.len, path.s);
    return NULL;
}

static struct pexpr *parse_access(struct pparser *p, struct pexpr *e)
{
    while (e && (p->tok.kind == T_DOT || p->tok.kind == T_LBRACKET)) {
        struct ptoken at = p->tok;
        if (p->tok.kind == T_LBRACKET) {
            pp_advance(p);
            if (p->tok.kind != T_STR) {
                pp_error(p, &p->tok, "expected a string attribute name, found %s",
                         ptok_name(p->tok.kind));
                return NULL;
            }
            struct pexpr *g = node(p, EX_ATTR, &at);
            if (!g || pp_string(p, &g->str) || !pp_expect(p, T_RBRACKET, "']'"))
                return NULL;
            g->a = e;
            e = grown(p, g);
            continue;
        }
        pp_advance(p); /* . */
        struct ptoken name = p->tok;
        if (name.kind != T_IDENT || pp_is_reserved(&name)) {
            pp_error(p, &name, "expected an attribute or method name, found %s",
                     name.kind == T_IDENT ? "a reserved word" : ptok_name(name.kind));
            return NULL;
        }
        pp_advance(p);
        if (p->tok.kind == T_LPAREN) {
            e = parse_call(p, &name, (pstr_t){name.s, name.len}, e);
            continue;
        }
        struct pexpr *g = node(p, EX_ATTR, &at);
        if (!g)
            return NULL;
        g->a = e;
        g->str = pstr_dup(p->a, name.s, name.len);
        e = grown(p, g);
    }
    return e;
}

static struct pexpr *parse_unary(struct pparser *p)
{
    struct ptoken at = p->tok;
    int op = p->tok.kind;
    if (op != T_NOT && op != T_MINUS)
        return parse_access(p, parse_primary(p));
    int count = 0;
    while (p->tok.kind == op) {
        count++;
        pp_advance(p);
    }
    if (count > 4) {
        pp_error(p, &at, "too many unary operators in a row (at most 4)");
        return NULL;
    }
    struct pexpr *e;
    if (op == T_MINUS && p->tok.kind == T_INT && pp_peek(p)->kind != T_DOT &&
        p->peek.kind != T_LBRACKET) {
        /* a negative literal: -9223372036854775808 is representable */
        uint64_t v;
        struct ptoken it = p->tok;
        if (int_token(&it, &v)) {
            pp_error(p, &it, "integer literal out of range");
            return NULL;
        }
        pp_advance(p);
        e = lit_long(p, &at, v == (UINT64_C(1) << 63) ? INT64_MIN : -(int64_t)v);
        count--;
    } else {
        e = parse_access(p, parse_primary(p));
    }
    while (e && count-- > 0) {
        struct pexpr *u = node(p, op == T_NOT ? EX_NOT : EX_NEG, &at);
        if (u)
            u->a = e;
        e = grown(p, u);
    }
    return e;
}

static struct pexpr *parse_mult(struct pparser *p)
{
    struct pexpr *e = parse_unary(p);
    while (e && p->tok.kind == T_STAR) {
        struct ptoken at = p->tok;
        pp_advance(p);
        e = binary(p, EX_MUL, &at, e, parse_unary(p));
    }
    return e;
}

static struct pexpr *parse_add(struct pparser *p)
{
    struct pexpr *e = parse_mult(p);
    while (e && (p->tok.kind == T_PLUS || p->tok.kind == T_MINUS)) {
        struct ptoken at = p->tok;
        int kind = p->tok.kind == T_PLUS ? EX_ADD : EX_SUB;
        pp_advance(p);
        e = binary(p, kind, &at, e, parse_mult(p));
    }
    return e;
}

static const struct ppattern *parse_pattern(struct pparser *p)
{
    pstr_t s;
    uint8_t *stars;
    const char *err;
    if (pstr_unescape(p->a, p->tok.s, p->tok.len, true, &s, &stars, &err)) {
        pp_error(p, &p->tok, "%s", err);
        return NULL;
    }
    pp_advance(p);
    uint32_t nstars = 0;
    for (uint32_t i = 0; i < s.len; i++)
        nstars += stars[i];
    struct ppattern *pat = arena_alloc(p->a, sizeof(*pat) + (nstars + 1) * sizeof(pstr_t));
    if (!pat) {
        pp_error(p, &p->tok, "out of memory");
        return NULL;
    }
    /* chunks between wildcards; runs of wildcards collapse */
    uint32_t n = 0, start = 0;
    pat->star_first = s.len > 0 && stars[0];
    pat->star_last = s.len > 0 && stars[s.len - 1];
    for (uint32_t i = 0; i <= s.len; i++) {
        if (i == s.len || stars[i]) {
            if (i > start || i == s.len || n == 0)
                pat->chunk[n++] = (pstr_t){s.s + start, i - start};
            start = i + 1;
        }
    }
    pat->n = n;
    return pat;
}

/* `e has a.b.c` is `e has a && e.a has b && e.a.b has c` */
static struct pexpr *parse_has(struct pparser *p, struct pexpr *e, const struct ptoken *at)
{
    pstr_t name;
    if (p->tok.kind == T_STR) {
        if (pp_string(p, &name))
            return NULL;
        struct pexpr *h = node(p, EX_HAS, at);
        if (h) {
            h->a = e;
            h->str = name;
        }
        return grown(p, h);
    }
    struct pexpr *result = NULL, *base = e;
    for (;;) {
        if (p->tok.kind != T_IDENT || pp_is_reserved(&p->tok)) {
            pp_error(p, &p->tok, "expected an attribute name after `has`, found %s",
                     p->tok.kind == T_IDENT ? "a reserved word" : ptok_name(p->tok.kind));
            return NULL;
        }
        name = pstr_dup(p->a, p->tok.s, p->tok.len);
        pp_advance(p);
        struct pexpr *h = node(p, EX_HAS, at);
        if (!h)
            return NULL;
        h->a = base;
        h->str = name;
        if (!grown(p, h))
            return NULL;
        result = result ? binary(p, EX_AND, at, result, h) : h;
        if (!result || p->tok.kind != T_DOT)
            return result;
        pp_advance(p);
        struct pexpr *g = node(p, EX_ATTR, at);
        if (!g)
            return NULL;
        g->a = base;
        g->str = name;
        if (!(base = grown(p, g)))
            return NULL;
    }
}

static struct pexpr *parse_relation(struct pparser *p)
{
    struct pexpr *e = parse_add(p);
    if (!e)
        return NULL;
    struct ptoken at = p->tok;
    int kind = -1;
    switch (p->tok.kind) {
    case T_EQ:
        kind = EX_EQ;
        break;
    case T_NE:
        kind = EX_NE;
        break;
    case T_LT:
        kind = EX_LT;
        break;
    case T_LE:
        kind = EX_LE;
        break;
    case T_GT:
        kind = EX_GT;
        break;
    case T_GE:
        kind = EX_GE;
        break;
    case T_IDENT:
        if (pp_is_ident(&at, "in"))
            kind = EX_IN;
        break;
    }
    if (kind >= 0) {
        pp_advance(p);
        return binary(p, kind, &at, e, parse_add(p));
    }
    if (pp_is_ident(&at, "has")) {
        pp_advance(p);
        return parse_has(p, e, &at);
    }
    if (pp_is_ident(&at, "like")) {
        pp_advance(p);
        if (p->tok.kind != T_STR) {
            pp_error(p, &p->tok, "expected a pattern string after `like`, found %s",
                     ptok_name(p->tok.kind));
            return NULL;
        }
        struct pexpr *l = node(p, EX_LIKE, &at);
        if (!l || !(l->pat = parse_pattern(p)))
            return NULL;
        l->a = e;
        return grown(p, l);
    }
    if (pp_is_ident(&at, "is")) {
        pp_advance(p);
        struct pexpr *x = node(p, EX_IS, &at);
        if (!x || pp_path(p, &x->str))
            return NULL;
        x->a = e;
        if (pp_is_ident(&p->tok, "in")) {
            pp_advance(p);
            if (!(x->b = parse_add(p)))
                return NULL;
        }
        return grown(p, x);
    }
    return e;
}

static struct pexpr *parse_and(struct pparser *p)
{
    struct pexpr *e = parse_relation(p);
    while (e && p->tok.kind == T_AND) {
        struct ptoken at = p->tok;
        pp_advance(p);
        e = binary(p, EX_AND, &at, e, parse_relation(p));
    }
    return e;
}

static struct pexpr *parse_or(struct pparser *p)
{
    struct pexpr *e = parse_and(p);
    while (e && p->tok.kind == T_OR) {
        struct ptoken at = p->tok;
        pp_advance(p);
        e = binary(p, EX_OR, &at, e, parse_and(p));
    }
    return e;
}

struct pexpr *pp_expr(struct pparser *p)
{
    if (p->failed)
        return NULL;
    if (++p->depth > PPOL_MAX_DEPTH) {
        pp_error(p, &p->tok, "expression nested too deeply (limit %d)", PPOL_MAX_DEPTH);
        p->depth--;
        return NULL;
    }
    struct pexpr *e;
    if (pp_is_ident(&p->tok, "if")) {
        struct ptoken at = p->tok;
        pp_advance(p);
        struct pexpr *c = pp_expr(p), *t = NULL, *f = NULL;
        e = NULL;
        if (c && !pp_is_ident(&p->tok, "then"))
            pp_error(p, &p->tok, "expected `then`, found %s", ptok_name(p->tok.kind));
        else if (c) {
            pp_advance(p);
            t = pp_expr(p);
        }
        if (t && !pp_is_ident(&p->tok, "else"))
            pp_error(p, &p->tok, "expected `else`, found %s", ptok_name(p->tok.kind));
        else if (t) {
            pp_advance(p);
            f = pp_expr(p);
        }
        if (f && (e = node(p, EX_IF, &at))) {
            e->a = c;
            e->b = t;
            e->c = f;
            e = grown(p, e);
        }
    } else {
        e = parse_or(p);
    }
    p->depth--;
    return p->failed ? NULL : e;
}
