// SPDX-License-Identifier: Apache-2.0
// Cedar schemas (the human-readable .cedarschema format), read for
// schema-based parsing of entities and contexts: implicit entity
// references and extension values, and action entities with their groups.
// Validation of policies against the schema is not done here.
#include <stdlib.h>
#include <string.h>

#include "policy/parser.h"

struct sdecl {
    pstr_t name;              /* fully qualified */
    bool common;              /* `type X = …` rather than `entity X` */
    const struct ptype *type; /* common: the type; entity: attrs record (or NULL) */
    const struct ptype *tags;
};

struct policy_schema {
    arena_t arena;
    struct sdecl *decls;
    size_t ndecls, cap;
    struct pschema_action *actions;
    size_t nactions, acap;
};

static int push(void **v, size_t *n, size_t *cap, size_t size)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        void *w = realloc(*v, c * size);
        if (!w)
            return -1;
        *v = w;
        *cap = c;
    }
    return 0;
}

struct sparser {
    struct pparser p;
    struct policy_schema *s;
    pstr_t ns;
};

static pstr_t qualify(struct sparser *sp, pstr_t name)
{
    if (!sp->ns.len)
        return name;
    char *q = arena_printf(sp->p.a, "%.*s::%.*s", (int)sp->ns.len, sp->ns.s, (int)name.len, name.s);
    return q ? (pstr_t){q, (uint32_t)strlen(q)} : name;
}

static void skip_annotations(struct sparser *sp)
{
    struct pparser *p = &sp->p;
    while (p->tok.kind == T_AT) {
        pp_advance(p);
        if (p->tok.kind == T_IDENT)
            pp_advance(p);
        if (p->tok.kind == T_LPAREN) {
            pp_advance(p);
            if (p->tok.kind == T_STR)
                pp_advance(p);
            pp_expect(p, T_RPAREN, "')'");
        }
    }
}

/* A name as written (IDENT {'::' IDENT}); resolved later. */
static int raw_path(struct sparser *sp, pstr_t *out)
{
    struct pparser *p = &sp->p;
    const char *start = p->tok.s;
    if (p->tok.kind != T_IDENT) {
        pp_error(p, &p->tok, "expected a name, found %s", ptok_name(p->tok.kind));
        return -1;
    }
    const char *end = p->tok.s + p->tok.len;
    pp_advance(p);
    while (p->tok.kind == T_COLONCOLON && pp_peek(p)->kind == T_IDENT) {
        pp_advance(p);
        end = p->tok.s + p->tok.len;
        pp_advance(p);
    }
    *out = pstr_dup(sp->p.a, start, (size_t)(end - start));
    return out->s ? 0 : -1;
}

static const struct ptype *parse_type(struct sparser *sp);

static const struct ptype *parse_record(struct sparser *sp)
{
    struct pparser *p = &sp->p;
    struct ptype *t = arena_alloc(p->a, sizeof(*t));
    if (!t)
        return NULL;
    memset(t, 0, sizeof(*t));
    t->kind = TY_RECORD;
    pp_advance(p); /* { */
    size_t cap = 0;
    while (!p->failed && p->tok.kind != T_RBRACE) {
        skip_annotations(sp);
        pstr_t key;
        const char *err;
        if (p->tok.kind == T_STR) {
            if (pstr_unescape(p->a, p->tok.s, p->tok.len, false, &key, NULL, &err)) {
                pp_error(p, &p->tok, "%s", err);
                return NULL;
            }
        } else if (p->tok.kind == T_IDENT) {
            key = pstr_dup(p->a, p->tok.s, p->tok.len);
        } else {
            pp_error(p, &p->tok, "expected an attribute name, found %s", ptok_name(p->tok.kind));
            return NULL;
        }
        pp_advance(p);
        /* '?' marks an optional attribute; the lexer reads "?:" as a slot-less '?' */
        if (p->tok.kind == T_ERROR && p->tok.s[0] == '?')
            pp_advance(p);
        if (!pp_expect(p, T_COLON, "':'"))
            return NULL;
        const struct ptype *at = parse_type(sp);
        if (!at)
            return NULL;
        if (t->n == cap) {
            cap = cap ? cap * 2 : 8;
            pstr_t *k = arena_alloc(p->a, cap * sizeof(*k));
            const struct ptype **v = arena_alloc(p->a, cap * sizeof(*v));
            if (!k || !v)
                return NULL;
            if (t->n) {
                memcpy(k, t->keys, t->n * sizeof(*k));
                memcpy(v, t->vals, t->n * sizeof(*v));
            }
            t->keys = k;
            t->vals = v;
        }
        t->keys[t->n] = key;
        t->vals[t->n] = at;
        t->n++;
        if (p->tok.kind == T_COMMA)
            pp_advance(p);
        else if (p->tok.kind != T_RBRACE) {
            pp_error(p, &p->tok, "expected ',' or '}', found %s", ptok_name(p->tok.kind));
            return NULL;
        }
    }
    if (!pp_expect(p, T_RBRACE, "'}'"))
        return NULL;
    return t;
}

static const struct ptype *parse_type(struct sparser *sp)
{
    struct pparser *p = &sp->p;
    if (p->tok.kind == T_LBRACE)
        return parse_record(sp);
    struct ptype *t = arena_alloc(p->a, sizeof(*t));
    if (!t)
        return NULL;
    memset(t, 0, sizeof(*t));
    if (pp_is_ident(&p->tok, "Set") && pp_peek(p)->kind == T_LT) {
        pp_advance(p);
        pp_advance(p);
        t->kind = TY_SET;
        if (!(t->elem = parse_type(sp)) || !pp_expect(p, T_GT, "'>'"))
            return NULL;
        return t;
    }
    t->kind = TY_REF;
    t->ns = sp->ns;
    return raw_path(sp, &t->name) ? NULL : t;
}

static int add_decl(struct sparser *sp, pstr_t name, bool common, const struct ptype *type,
                    const struct ptype *tags)
{
    struct policy_schema *s = sp->s;
    if (push((void **)&s->decls, &s->ndecls, &s->cap, sizeof(*s->decls)))
        return -1;
    s->decls[s->ndecls++] = (struct sdecl){qualify(sp, name), common, type, tags};
    return 0;
}

static int action_ref(struct sparser *sp, puid_t *out)
{
    struct pparser *p = &sp->p;
    const char *err;
    pstr_t type = qualify(sp, (pstr_t){"Action", 6}), id;
    if (p->tok.kind == T_IDENT) {
        pstr_t path;
        if (raw_path(sp, &path))
            return -1;
        if (p->tok.kind == T_COLONCOLON) {
            pp_advance(p);
            type = path;
        } else {
            id = path;
            goto done;
        }
    }
    if (p->tok.kind != T_STR) {
        pp_error(p, &p->tok, "expected an action name, found %s", ptok_name(p->tok.kind));
        return -1;
    }
    if (pstr_unescape(p->a, p->tok.s, p->tok.len, false, &id, NULL, &err)) {
        pp_error(p, &p->tok, "%s", err);
        return -1;
    }
    pp_advance(p);
done:
    out->type = type;
    out->id = id;
    out->hash = puid_hash(type.s, type.len, id.s, id.len);
    return 0;
}

static int parse_action(struct sparser *sp)
{
    struct pparser *p = &sp->p;
    struct policy_schema *s = sp->s;
    size_t first = s->nactions;
    pp_advance(p); /* action */
    do {
        if (s->nactions > first)
            pp_advance(p); /* , */
        if (push((void **)&s->actions, &s->nactions, &s->acap, sizeof(*s->actions)))
            return -1;
        struct pschema_action *a = &s->actions[s->nactions];
        memset(a, 0, sizeof(*a));
        pstr_t type = qualify(sp, (pstr_t){"Action", 6}), id;
        const char *err;
        if (p->tok.kind == T_STR) {
            if (pstr_unescape(p->a, p->tok.s, p->tok.len, false, &id, NULL, &err)) {
                pp_error(p, &p->tok, "%s", err);
                return -1;
            }
        } else if (p->tok.kind == T_IDENT) {
            id = pstr_dup(p->a, p->tok.s, p->tok.len);
        } else {
            pp_error(p, &p->tok, "expected an action name, found %s", ptok_name(p->tok.kind));
            return -1;
        }
        pp_advance(p);
        a->uid = (puid_t){type, id, puid_hash(type.s, type.len, id.s, id.len)};
        s->nactions++;
    } while (p->tok.kind == T_COMMA);
    puid_t *parents = NULL;
    uint32_t np = 0;
    if (pp_is_ident(&p->tok, "in")) {
        pp_advance(p);
        bool list = p->tok.kind == T_LBRACKET;
        if (list)
            pp_advance(p);
        size_t cap = 0;
        while (!p->failed && (!list || p->tok.kind != T_RBRACKET)) {
            if (np == cap) {
                cap = cap ? cap * 2 : 4;
                puid_t *w = arena_alloc(p->a, cap * sizeof(*w));
                if (!w)
                    return -1;
                if (np)
                    memcpy(w, parents, np * sizeof(*w));
                parents = w;
            }
            if (action_ref(sp, &parents[np]))
                return -1;
            np++;
            if (!list)
                break;
            if (p->tok.kind == T_COMMA)
                pp_advance(p);
        }
        if (list && !pp_expect(p, T_RBRACKET, "']'"))
            return -1;
    }
    const struct ptype *context = NULL;
    if (pp_is_ident(&p->tok, "appliesTo")) {
        pp_advance(p);
        if (!pp_expect(p, T_LBRACE, "'{'"))
            return -1;
        while (!p->failed && p->tok.kind != T_RBRACE) {
            bool is_ctx = pp_is_ident(&p->tok, "context");
            pp_advance(p);
            if (!pp_expect(p, T_COLON, "':'"))
                return -1;
            if (is_ctx) {
                if (!(context = parse_type(sp)))
                    return -1;
            } else if (p->tok.kind == T_LBRACKET) {
                while (!p->failed && p->tok.kind != T_RBRACKET && p->tok.kind != T_EOF)
                    pp_advance(p);
                pp_expect(p, T_RBRACKET, "']'");
            } else {
                pstr_t ignored;
                if (raw_path(sp, &ignored))
                    return -1;
            }
            if (p->tok.kind == T_COMMA)
                pp_advance(p);
        }
        if (!pp_expect(p, T_RBRACE, "'}'"))
            return -1;
    }
    for (size_t i = first; i < s->nactions; i++) {
        s->actions[i].parents = parents;
        s->actions[i].nparents = np;
        s->actions[i].context = context;
    }
    return pp_expect(p, T_SEMI, "';'") ? 0 : -1;
}

static int parse_entity(struct sparser *sp)
{
    struct pparser *p = &sp->p;
    pp_advance(p); /* entity */
    pstr_t names[64];
    size_t nn = 0;
    do {
        if (nn)
            pp_advance(p);
        if (p->tok.kind != T_IDENT || nn == 64) {
            pp_error(p, &p->tok, "expected an entity type name, found %s", ptok_name(p->tok.kind));
            return -1;
        }
        names[nn++] = pstr_dup(p->a, p->tok.s, p->tok.len);
        pp_advance(p);
    } while (p->tok.kind == T_COMMA);
    const struct ptype *attrs = NULL, *tags = NULL;
    if (pp_is_ident(&p->tok, "enum")) {
        while (!p->failed && p->tok.kind != T_SEMI && p->tok.kind != T_EOF)
            pp_advance(p);
    } else {
        if (pp_is_ident(&p->tok, "in")) {
            pp_advance(p);
            if (p->tok.kind == T_LBRACKET) {
                while (!p->failed && p->tok.kind != T_RBRACKET && p->tok.kind != T_EOF)
                    pp_advance(p);
                pp_expect(p, T_RBRACKET, "']'");
            } else {
                pstr_t ignored;
                if (raw_path(sp, &ignored))
                    return -1;
            }
        }
        if (p->tok.kind == T_ERROR && p->tok.s[0] == '=')
            pp_advance(p);
        if (p->tok.kind == T_LBRACE && !(attrs = parse_record(sp)))
            return -1;
        if (pp_is_ident(&p->tok, "tags")) {
            pp_advance(p);
            if (!(tags = parse_type(sp)))
                return -1;
        }
    }
    if (!pp_expect(p, T_SEMI, "';'"))
        return -1;
    for (size_t i = 0; i < nn; i++)
        if (add_decl(sp, names[i], false, attrs, tags))
            return -1;
    return 0;
}

static int parse_decl(struct sparser *sp)
{
    struct pparser *p = &sp->p;
    skip_annotations(sp);
    if (pp_is_ident(&p->tok, "entity"))
        return parse_entity(sp);
    if (pp_is_ident(&p->tok, "action"))
        return parse_action(sp);
    if (pp_is_ident(&p->tok, "type")) {
        pp_advance(p);
        if (p->tok.kind != T_IDENT) {
            pp_error(p, &p->tok, "expected a type name");
            return -1;
        }
        pstr_t name = pstr_dup(p->a, p->tok.s, p->tok.len);
        pp_advance(p);
        if (!(p->tok.kind == T_ERROR && p->tok.s[0] == '=')) {
            pp_error(p, &p->tok, "expected '='");
            return -1;
        }
        pp_advance(p);
        const struct ptype *t = parse_type(sp);
        if (!t || !pp_expect(p, T_SEMI, "';'"))
            return -1;
        return add_decl(sp, name, true, t, NULL);
    }
    pp_error(p, &p->tok, "expected `entity`, `action`, `type` or `namespace`, found %s",
             ptok_name(p->tok.kind));
    return -1;
}

policy_schema_t *policy_schema_load_text(const char *file, const char *text, size_t len,
                                         struct policy_diags *diags)
{
    struct policy_schema *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    arena_init(&s->arena, 16384);
    struct sparser sp;
    memset(&sp, 0, sizeof(sp));
    sp.s = s;
    sp.p.a = &s->arena;
    sp.p.file = file;
    sp.p.diags = diags;
    plex_init(&sp.p.lx, text, len);
    pp_advance(&sp.p);
    while (!sp.p.failed && sp.p.tok.kind != T_EOF) {
        skip_annotations(&sp);
        if (pp_is_ident(&sp.p.tok, "namespace")) {
            pp_advance(&sp.p);
            if (raw_path(&sp, &sp.ns) || !pp_expect(&sp.p, T_LBRACE, "'{'"))
                break;
            while (!sp.p.failed && sp.p.tok.kind != T_RBRACE && sp.p.tok.kind != T_EOF)
                parse_decl(&sp);
            pp_expect(&sp.p, T_RBRACE, "'}'");
            sp.ns = (pstr_t){0};
        } else {
            parse_decl(&sp);
        }
    }
    if (sp.p.failed) {
        policy_schema_free(s);
        return NULL;
    }
    return s;
}

policy_schema_t *policy_schema_load_file(const char *path, struct policy_diags *diags)
{
    buf_t b;
    char err[512];
    if (pread_file(path, &b, (size_t)64 << 20, err, sizeof(err))) {
        pdiag_add(diags, path, 0, 0, "%s", err);
        return NULL;
    }
    policy_schema_t *s = policy_schema_load_text(path, b.data ? b.data : "", b.len, diags);
    buf_free(&b);
    return s;
}

void policy_schema_free(policy_schema_t *s)
{
    if (!s)
        return;
    free(s->decls);
    free(s->actions);
    arena_free(&s->arena);
    free(s);
}

static const struct sdecl *find_decl(const struct policy_schema *s, pstr_t name, bool common)
{
    for (size_t i = 0; i < s->ndecls; i++)
        if (s->decls[i].common == common && pstr_cmp(s->decls[i].name, name) == 0)
            return &s->decls[i];
    return NULL;
}

const struct sdecl *pschema_entity_decl(const policy_schema_t *s, pstr_t type)
{
    return find_decl(s, type, false);
}

const struct ptype *pschema_entity_attrs(const policy_schema_t *s, pstr_t type, bool tags)
{
    const struct sdecl *d = s ? find_decl(s, type, false) : NULL;
    return d ? (tags ? d->tags : d->type) : NULL;
}

const struct pschema_action *pschema_action(const policy_schema_t *s, const puid_t *uid)
{
    for (size_t i = 0; s && i < s->nactions; i++)
        if (puid_eq(&s->actions[i].uid, uid))
            return &s->actions[i];
    return NULL;
}

size_t pschema_action_count(const policy_schema_t *s)
{
    return s ? s->nactions : 0;
}

const struct pschema_action *pschema_action_at(const policy_schema_t *s, size_t i)
{
    return &s->actions[i];
}

/* Resolves a TY_REF: common type, then entity type, in the reference's
 * namespace and then in the empty one; then the built-in types. What
 * cannot be resolved is TY_ANY (read without a schema). */
int pschema_resolve(const policy_schema_t *s, const struct ptype *t, struct ptype *out)
{
    *out = *t;
    if (t->kind != TY_REF)
        return 0;
    for (int depth = 0; depth < 32 && out->kind == TY_REF; depth++) {
        pstr_t name = out->name, ns = out->ns;
        const struct sdecl *d = NULL;
        char buf[512];
        if (ns.len && ns.len + name.len + 3 < sizeof(buf)) {
            int n =
                snprintf(buf, sizeof(buf), "%.*s::%.*s", (int)ns.len, ns.s, (int)name.len, name.s);
            pstr_t q = {buf, (uint32_t)n};
            if ((d = find_decl(s, q, true)) == NULL && find_decl(s, q, false)) {
                out->kind = TY_ENTITY;
                return 0;
            }
        }
        if (!d && (d = find_decl(s, name, true)) == NULL && find_decl(s, name, false)) {
            out->kind = TY_ENTITY;
            return 0;
        }
        if (d) {
            *out = *d->type;
            continue;
        }
        static const struct {
            const char *name;
            int kind, ext;
        } builtins[] = {{"Long", TY_LONG, 0},
                        {"String", TY_STRING, 0},
                        {"Bool", TY_BOOL, 0},
                        {"Boolean", TY_BOOL, 0},
                        {"ipaddr", TY_EXT, FN_IP},
                        {"decimal", TY_EXT, FN_DECIMAL},
                        {"datetime", TY_EXT, FN_DATETIME},
                        {"duration", TY_EXT, FN_DURATION}};
        const char *base = name.s;
        size_t blen = name.len;
        if (blen > 9 && memcmp(base, "__cedar::", 9) == 0) {
            base += 9;
            blen -= 9;
        }
        for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
            if (strlen(builtins[i].name) == blen && memcmp(builtins[i].name, base, blen) == 0) {
                out->kind = (uint8_t)builtins[i].kind;
                out->ext = (uint8_t)builtins[i].ext;
                return 0;
            }
        /* an entity type declared elsewhere, or unknown: treat as entity
         * when qualified, else as anything */
        out->kind = TY_ANY;
        return 0;
    }
    if (out->kind == TY_REF)
        out->kind = TY_ANY; /* a cycle of type references */
    return 0;
}
