// SPDX-License-Identifier: Apache-2.0
// Parser state shared by the expression parser (parser.c) and the policy
// parser (parse_policy.c). Private to those two files.
#ifndef PORTCULLIS_POLICY_PARSER_H
#define PORTCULLIS_POLICY_PARSER_H

#include "policy/internal.h"

struct pparser {
    arena_t *a;
    struct plexer lx;
    struct ptoken tok;  /* current token */
    struct ptoken peek; /* next one, when has_peek */
    bool has_peek;
    const char *file;
    struct policy_diags *diags;
    size_t nerrors;
    bool failed; /* an error was reported in the current policy */
    uint32_t depth;
};

void pp_advance(struct pparser *p);
const struct ptoken *pp_peek(struct pparser *p);
bool pp_is_ident(const struct ptoken *t, const char *word);
bool pp_is_reserved(const struct ptoken *t);
/* Reports an error at t (first one per policy only) and marks failure. */
void pp_error(struct pparser *p, const struct ptoken *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool pp_expect(struct pparser *p, int kind, const char *what);

/* Decodes the current string token (escapes); advances past it. */
int pp_string(struct pparser *p, pstr_t *out);
/* '::' STR after an entity type already read into type. */
int pp_finish_uid(struct pparser *p, pstr_t type, puid_t *out);

/* Expr (if/or/and/…); NULL after an error. */
struct pexpr *pp_expr(struct pparser *p);
/* Path '::' STR, the current token being the path's first identifier. */
int pp_entity(struct pparser *p, puid_t *out);
/* Path = IDENT {'::' IDENT}, stopping before a '::' that is followed by a
 * string. Stores the path text (with "::" separators) into out. */
int pp_path(struct pparser *p, pstr_t *out);

#endif
