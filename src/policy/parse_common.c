// SPDX-License-Identifier: Apache-2.0
// Token-level helpers shared by the expression, policy and schema parsers:
// lookahead, keywords, errors with line:col, string literals, names and
// entity uids.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy/parser.h"

void pp_advance(struct pparser *p)
{
    if (p->has_peek) {
        p->tok = p->peek;
        p->has_peek = false;
    } else {
        plex_next(&p->lx, &p->tok);
    }
}

const struct ptoken *pp_peek(struct pparser *p)
{
    if (!p->has_peek) {
        plex_next(&p->lx, &p->peek);
        p->has_peek = true;
    }
    return &p->peek;
}

bool pp_is_ident(const struct ptoken *t, const char *word)
{
    size_t n = strlen(word);
    return t->kind == T_IDENT && t->len == n && memcmp(t->s, word, n) == 0;
}

bool pp_is_reserved(const struct ptoken *t)
{
    static const char *const words[] = {"true", "false", "if",  "then", "else",
                                        "in",   "like",  "has", "is",   "__cedar"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (pp_is_ident(t, words[i]))
            return true;
    return false;
}

void pp_error(struct pparser *p, const struct ptoken *t, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    p->nerrors++;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (t->kind == T_ERROR && p->lx.msg)
        snprintf(msg, sizeof(msg), "%s", p->lx.msg);
    pdiag_add(p->diags, p->file, t->line, t->col, "%s", msg);
}

bool pp_expect(struct pparser *p, int kind, const char *what)
{
    if (p->tok.kind == kind) {
        pp_advance(p);
        return true;
    }
    pp_error(p, &p->tok, "expected %s, found %s", what, ptok_name(p->tok.kind));
    return false;
}

/* Decodes the current string token; advances past it. */
int pp_string(struct pparser *p, pstr_t *out)
{
    const char *err;
    if (pstr_unescape(p->a, p->tok.s, p->tok.len, false, out, NULL, &err)) {
        pp_error(p, &p->tok, "%s", err);
        return -1;
    }
    pp_advance(p);
    return 0;
}

int pp_path(struct pparser *p, pstr_t *out)
{
    const char *start = p->tok.s;
    const char *end = start;
    for (;;) {
        if (p->tok.kind != T_IDENT || pp_is_reserved(&p->tok)) {
            pp_error(p, &p->tok, "expected an identifier, found %s",
                     p->tok.kind == T_IDENT ? "a reserved word" : ptok_name(p->tok.kind));
            return -1;
        }
        end = p->tok.s + p->tok.len;
        pp_advance(p);
        if (p->tok.kind != T_COLONCOLON || pp_peek(p)->kind != T_IDENT)
            break;
        pp_advance(p);
    }
    /* normalise: no whitespace or comments inside the stored name */
    char *buf = arena_alloc(p->a, (size_t)(end - start) + 1);
    if (!buf) {
        pp_error(p, &p->tok, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (const char *q = start; q < end;) {
        if (q + 1 < end && q[0] == '/' && q[1] == '/') {
            while (q < end && *q != '\n')
                q++;
        } else if (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r' || *q == '\f' ||
                   *q == '\v') {
            q++;
        } else {
            buf[k++] = *q++;
        }
    }
    buf[k] = '\0';
    out->s = buf;
    out->len = (uint32_t)k;
    return 0;
}

int pp_finish_uid(struct pparser *p, pstr_t type, puid_t *out)
{
    if (!pp_expect(p, T_COLONCOLON, "'::'"))
        return -1;
    if (p->tok.kind != T_STR) {
        pp_error(p, &p->tok, "expected an entity id string, found %s", ptok_name(p->tok.kind));
        return -1;
    }
    pstr_t id;
    if (pp_string(p, &id))
        return -1;
    out->type = type;
    out->id = id;
    out->hash = puid_hash(type.s, type.len, id.s, id.len);
    return 0;
}

int pp_entity(struct pparser *p, puid_t *out)
{
    pstr_t type;
    if (pp_path(p, &type))
        return -1;
    return pp_finish_uid(p, type, out);
}
