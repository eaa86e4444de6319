// SPDX-License-Identifier: Apache-2.0
// Cedar policy parser: annotations, effect, scope (with template slots) and
// when/unless conditions, over the expression parser in parser.c. Collects
// file:line:col diagnostics and resumes after the next ';'.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/parser.h"

void pdiag_add(struct policy_diags *d, const char *file, unsigned line, unsigned col,
               const char *fmt, ...)
{
    if (!d)
        return;
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        struct policy_diag *v = realloc(d->v, cap * sizeof(*v));
        if (!v)
            return;
        d->v = v;
        d->cap = cap;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct policy_diag *g = &d->v[d->count];
    g->file = strdup(file ? file : "<string>");
    g->message = strdup(msg);
    g->line = line;
    g->col = col;
    if (!g->file || !g->message) {
        free(g->file);
        free(g->message);
        return;
    }
    d->count++;
}

void policy_diags_print(const struct policy_diags *d, FILE *out)
{
    for (size_t i = 0; d && i < d->count; i++)
        fprintf(out, "%s:%u:%u: %s\n", d->v[i].file, d->v[i].line, d->v[i].col, d->v[i].message);
}

void policy_diags_free(struct policy_diags *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->count; i++) {
        free(d->v[i].file);
        free(d->v[i].message);
    }
    free(d->v);
    memset(d, 0, sizeof(*d));
}

/* Entity literal, or the slot named `slot` when allowed. */
static int entity_or_slot(struct pparser *p, const char *slot, struct pscope *sc)
{
    if (p->tok.kind == T_SLOT) {
        if (!slot || strlen(slot) != p->tok.len || memcmp(p->tok.s, slot, p->tok.len) != 0) {
            pp_error(p, &p->tok, "slot `?%.*s` is not allowed here%s%s", (int)p->tok.len, p->tok.s,
                     slot ? "; expected ?" : "", slot ? slot : "");
            return -1;
        }
        pp_advance(p);
        sc->slot = true;
        sc->n = 0;
        return 0;
    }
    if (p->tok.kind != T_IDENT) {
        pp_error(p, &p->tok, "expected an entity, found %s", ptok_name(p->tok.kind));
        return -1;
    }
    puid_t *u = arena_alloc(p->a, sizeof(*u));
    if (!u || pp_entity(p, u))
        return -1;
    sc->uids = u;
    sc->n = 1;
    return 0;
}

static int action_entity(struct pparser *p, puid_t *u)
{
    struct ptoken at = p->tok;
    if (p->tok.kind != T_IDENT) {
        pp_error(p, &p->tok, "expected an action entity, found %s", ptok_name(p->tok.kind));
        return -1;
    }
    if (pp_entity(p, u))
        return -1;
    if (!pstr_is_action_type(u->type)) {
        pp_error(p, &at, "expected an entity of type `Action` in the action scope");
        return -1;
    }
    return 0;
}

/* principal | resource: [== E | in E | is T [in E]] with E possibly a slot */
static int parse_var_scope(struct pparser *p, const char *var, struct pscope *sc)
{
    if (!pp_is_ident(&p->tok, var)) {
        pp_error(p, &p->tok, "expected `%s` in the policy scope", var);
        return -1;
    }
    pp_advance(p);
    sc->op = SC_ANY;
    if (p->tok.kind == T_EQ) {
        pp_advance(p);
        sc->op = SC_EQ;
        return entity_or_slot(p, var, sc);
    }
    if (pp_is_ident(&p->tok, "is")) {
        pp_advance(p);
        sc->op = SC_IS;
        if (pp_path(p, &sc->is_type))
            return -1;
        if (!pp_is_ident(&p->tok, "in"))
            return 0;
        pp_advance(p);
        sc->op = SC_IS_IN;
        return entity_or_slot(p, var, sc);
    }
    if (pp_is_ident(&p->tok, "in")) {
        pp_advance(p);
        sc->op = SC_IN;
        if (p->tok.kind == T_LBRACKET) {
            pp_error(p, &p->tok, "a set of entities is only allowed in the action scope");
            return -1;
        }
        return entity_or_slot(p, var, sc);
    }
    return 0;
}

static int parse_action_scope(struct pparser *p, struct pscope *sc)
{
    if (!pp_is_ident(&p->tok, "action")) {
        pp_error(p, &p->tok, "expected `action` in the policy scope");
        return -1;
    }
    pp_advance(p);
    sc->op = SC_ANY;
    if (p->tok.kind == T_EQ || (pp_is_ident(&p->tok, "in") && pp_peek(p)->kind != T_LBRACKET)) {
        sc->op = p->tok.kind == T_EQ ? SC_EQ : SC_IN;
        pp_advance(p);
        if (p->tok.kind == T_SLOT) {
            pp_error(p, &p->tok, "template slots are not allowed in the action scope");
            return -1;
        }
        puid_t *u = arena_alloc(p->a, sizeof(*u));
        if (!u || action_entity(p, u))
            return -1;
        sc->uids = u;
        sc->n = 1;
        return 0;
    }
    if (pp_is_ident(&p->tok, "in")) {
        pp_advance(p);
        pp_advance(p); /* [ */
        size_t cap = 4, n = 0;
        puid_t *v = arena_alloc(p->a, cap * sizeof(*v));
        while (v && p->tok.kind != T_RBRACKET) {
            if (n == cap) {
                puid_t *w = arena_alloc(p->a, cap * 2 * sizeof(*v));
                if (!w)
                    break;
                memcpy(w, v, n * sizeof(*v));
                v = w;
                cap *= 2;
            }
            if (action_entity(p, &v[n]))
                return -1;
            n++;
            if (p->tok.kind == T_COMMA)
                pp_advance(p);
            else if (p->tok.kind != T_RBRACKET) {
                pp_error(p, &p->tok, "expected ',' or ']', found %s", ptok_name(p->tok.kind));
                return -1;
            }
        }
        if (!v || p->tok.kind != T_RBRACKET) {
            pp_error(p, &p->tok, "out of memory");
            return -1;
        }
        pp_advance(p);
        sc->op = SC_IN_SET;
        sc->uids = v;
        sc->n = (uint32_t)n;
        return 0;
    }
    if (pp_is_ident(&p->tok, "is")) {
        pp_error(p, &p->tok, "`is` is not allowed in the action scope");
        return -1;
    }
    return 0;
}

static int parse_annotations(struct pparser *p, struct ppolicy *pol)
{
    size_t cap = 0;
    struct panno *v = NULL;
    while (p->tok.kind == T_AT) {
        pp_advance(p);
        if (p->tok.kind != T_IDENT) {
            pp_error(p, &p->tok, "expected an annotation name, found %s", ptok_name(p->tok.kind));
            return -1;
        }
        struct ptoken kt = p->tok;
        pstr_t key = pstr_dup(p->a, p->tok.s, p->tok.len), val = pstr_dup(p->a, "", 0);
        pp_advance(p);
        if (p->tok.kind == T_LPAREN) {
            pp_advance(p);
            const char *err;
            if (p->tok.kind != T_STR) {
                pp_error(p, &p->tok, "expected a string annotation value, found %s",
                         ptok_name(p->tok.kind));
                return -1;
            }
            if (pstr_unescape(p->a, p->tok.s, p->tok.len, false, &val, NULL, &err)) {
                pp_error(p, &p->tok, "%s", err);
                return -1;
            }
            pp_advance(p);
            if (!pp_expect(p, T_RPAREN, "')'"))
                return -1;
        }
        for (uint32_t i = 0; i < pol->nannos; i++)
            if (pstr_cmp(v[i].key, key) == 0) {
                pp_error(p, &kt, "duplicate annotation @%.*s", (int)key.len, key.s);
                return -1;
            }
        if (pol->nannos == cap) {
            cap = cap ? cap * 2 : 4;
            struct panno *w = arena_alloc(p->a, cap * sizeof(*w));
            if (!w) {
                pp_error(p, &kt, "out of memory");
                return -1;
            }
            if (pol->nannos)
                memcpy(w, v, pol->nannos * sizeof(*w));
            v = w;
        }
        v[pol->nannos++] = (struct panno){key, val};
    }
    pol->annos = v;
    return 0;
}

static int parse_conditions(struct pparser *p, struct ppolicy *pol)
{
    size_t cap = 0;
    struct pcond *v = NULL;
    while (pp_is_ident(&p->tok, "when") || pp_is_ident(&p->tok, "unless")) {
        bool unless = p->tok.s[0] == 'u';
        pp_advance(p);
        if (!pp_expect(p, T_LBRACE, "'{'"))
            return -1;
        if (p->tok.kind == T_RBRACE) {
            pp_error(p, &p->tok, "empty condition");
            return -1;
        }
        p->depth = 0;
        struct pexpr *e = pp_expr(p);
        if (!e || !pp_expect(p, T_RBRACE, "'}'"))
            return -1;
        if (pol->nconds == cap) {
            cap = cap ? cap * 2 : 2;
            struct pcond *w = arena_alloc(p->a, cap * sizeof(*w));
            if (!w) {
                pp_error(p, &p->tok, "out of memory");
                return -1;
            }
            if (pol->nconds)
                memcpy(w, v, pol->nconds * sizeof(*w));
            v = w;
        }
        v[pol->nconds++] = (struct pcond){unless, e};
    }
    pol->conds = v;
    return 0;
}

static struct ppolicy *parse_policy(struct pparser *p)
{
    struct ppolicy *pol = arena_alloc(p->a, sizeof(*pol));
    if (!pol) {
        pp_error(p, &p->tok, "out of memory");
        return NULL;
    }
    memset(pol, 0, sizeof(*pol));
    pol->file = p->file;
    pol->line = p->tok.line;
    pol->col = p->tok.col;
    if (parse_annotations(p, pol))
        return NULL;
    if (pp_is_ident(&p->tok, "permit") || pp_is_ident(&p->tok, "forbid")) {
        pol->forbid = p->tok.s[0] == 'f';
        pp_advance(p);
    } else {
        pp_error(p, &p->tok, "expected `permit` or `forbid`, found %s", ptok_name(p->tok.kind));
        return NULL;
    }
    if (!pp_expect(p, T_LPAREN, "'('") || parse_var_scope(p, "principal", &pol->principal) ||
        !pp_expect(p, T_COMMA, "','") || parse_action_scope(p, &pol->action) ||
        !pp_expect(p, T_COMMA, "','") || parse_var_scope(p, "resource", &pol->resource))
        return NULL;
    if (p->tok.kind == T_COMMA) /* the reference accepts a trailing comma */
        pp_advance(p);
    if (!pp_expect(p, T_RPAREN, "')'") || parse_conditions(p, pol) || !pp_expect(p, T_SEMI, "';'"))
        return NULL;
    pol->is_template = pol->principal.slot || pol->resource.slot;
    return pol;
}

size_t pparse_policies(arena_t *a, const char *file, const char *src, size_t len,
                       struct pparse_out *out, struct policy_diags *diags)
{
    struct pparser p;
    memset(&p, 0, sizeof(p));
    p.a = a;
    p.file = file;
    p.diags = diags;
    plex_init(&p.lx, src, len);
    pp_advance(&p);
    while (p.tok.kind != T_EOF) {
        p.failed = false;
        p.depth = 0;
        struct ppolicy *pol = parse_policy(&p);
        if (pol) {
            if (out->n == out->cap) {
                size_t cap = out->cap ? out->cap * 2 : 16;
                struct ppolicy **v = realloc(out->v, cap * sizeof(*v));
                if (!v) {
                    pp_error(&p, &p.tok, "out of memory");
                    break;
                }
                out->v = v;
                out->cap = cap;
            }
            out->v[out->n++] = pol;
            continue;
        }
        if (p.nerrors >= PPOL_MAX_ERRORS)
            break;
        /* resume after the next ';' */
        while (p.tok.kind != T_SEMI && p.tok.kind != T_EOF)
            pp_advance(&p);
        if (p.tok.kind == T_SEMI)
            pp_advance(&p);
    }
    return p.nerrors;
}

int pparse_uid(arena_t *a, const char *src, size_t len, puid_t *out, const char **err)
{
    struct pparser p;
    struct policy_diags diags = {0};
    memset(&p, 0, sizeof(p));
    p.a = a;
    p.diags = &diags;
    plex_init(&p.lx, src, len);
    pp_advance(&p);
    int rc = pp_entity(&p, out);
    if (rc == 0 && p.tok.kind != T_EOF) {
        pp_error(&p, &p.tok, "unexpected text after the entity");
        rc = -1;
    }
    *err = rc == 0 ? NULL : "expected an entity uid such as User::\"alice\"";
    policy_diags_free(&diags);
    return rc;
}
