// SPDX-License-Identifier: Apache-2.0
// Types shared by the files of the policy module (lexer, parser, evaluator,
// entities, authorizer). Nothing outside src/policy/ includes this header:
// other modules see only policy.h.
#ifndef PORTCULLIS_POLICY_INTERNAL_H
#define PORTCULLIS_POLICY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "policy/policy.h"

/* Bounds on what a policy file, an entity file or a request may make us
 * build; past them loading fails with a message instead of exhausting memory
 * or the stack. */
#define PPOL_MAX_DEPTH 200      /* nesting of expressions in a policy */
#define PPOL_MAX_JSON_DEPTH 200 /* nesting of values in entity/context JSON */
#define PPOL_MAX_ERRORS 20      /* parse errors collected before giving up */

/* A string that may contain NUL bytes (Cedar strings can: "\0"). */
typedef struct pstr {
    const char *s;
    uint32_t len;
} pstr_t;

/* An entity uid: type ("NS::User") and id; hash covers both. */
typedef struct puid {
    pstr_t type;
    pstr_t id;
    uint64_t hash;
} puid_t;

enum pkind {
    PV_BOOL,
    PV_LONG,
    PV_STRING,
    PV_ENTITY,
    PV_SET,
    PV_RECORD,
    PV_DECIMAL,  /* n = value * 10^4 */
    PV_IP,       /* ip_v6, ip_prefix, u.ip */
    PV_DATETIME, /* n = ms since the Unix epoch */
    PV_DURATION, /* n = ms */
};

/* A Cedar value, 24 bytes, copied by value. What it points at lives in an
 * arena (the policy set's, the entity store's or the decision's). */
typedef struct pval {
    uint8_t kind;
    uint8_t ip_v6;
    uint8_t ip_prefix;
    union {
        bool b;
        int64_t n;
        pstr_t str;
        const puid_t *uid;
        const struct pset *set;
        const struct prec *rec;
        uint8_t ip[16]; /* IPv4 in the first 4 bytes */
    } u;
} pval_t;

/* Sets are sorted by pval_cmp and hold no duplicates. */
struct pset {
    uint32_t n;
    pval_t v[];
};

/* Records are sorted by key (bytewise) and hold no duplicate keys. */
struct pfield {
    pstr_t key;
    pval_t val;
};
struct prec {
    uint32_t n;
    struct pfield f[];
};

/* ---- value.c ------------------------------------------------------------ */

uint64_t puid_hash(const char *type, size_t tlen, const char *id, size_t ilen);
int puid_cmp(const puid_t *a, const puid_t *b);
static inline bool puid_eq(const puid_t *a, const puid_t *b)
{
    return a->hash == b->hash && puid_cmp(a, b) == 0;
}
int pstr_cmp(pstr_t a, pstr_t b);
static inline bool pstr_eq_lit(pstr_t a, const char *lit, size_t n)
{
    return a.len == n && __builtin_memcmp(a.s, lit, n) == 0;
}
pstr_t pstr_dup(arena_t *a, const char *s, size_t len);
/* "Action" or "NS::Action": the types of action entities. */
bool pstr_is_action_type(pstr_t type);

/* Total order over all values: kind first, then contents. Equal (0) exactly
 * when Cedar's == holds. */
int pval_cmp(const pval_t *a, const pval_t *b);
static inline bool pval_eq(const pval_t *a, const pval_t *b)
{
    return pval_cmp(a, b) == 0;
}

/* Builds a set from items (reordered in place): sorted, deduplicated,
 * copied into the arena. NULL when out of memory. */
const struct pset *pset_make(arena_t *a, pval_t *items, size_t n);
bool pset_has(const struct pset *s, const pval_t *v);
extern const struct pset pset_empty;

/* Builds a record from fields (reordered in place). NULL when out of
 * memory; *dup set to a duplicated key (and NULL returned) when one occurs. */
const struct prec *prec_make(arena_t *a, struct pfield *f, size_t n, const pstr_t **dup);
const pval_t *prec_get(const struct prec *r, const char *key, size_t len);
extern const struct prec prec_empty;

const char *pkind_name(int kind);

/* Appends v in Cedar syntax (for messages and `policy eval`). */
int pval_print(buf_t *b, const pval_t *v);
int puid_print(buf_t *b, const puid_t *u);
int pstr_print_quoted(buf_t *b, pstr_t s);

/* ---- ext.c: extension types ------------------------------------------- */

int pext_decimal_parse(const char *s, size_t len, int64_t *out);
int pext_ip_parse(const char *s, size_t len, pval_t *out);
int pext_datetime_parse(const char *s, size_t len, int64_t *out);
int pext_duration_parse(const char *s, size_t len, int64_t *out);
bool pext_ip_in_range(const pval_t *a, const pval_t *range);
bool pext_ip_is_loopback(const pval_t *a);
bool pext_ip_is_multicast(const pval_t *a);

/* Functions and methods callable in policies. */
enum pfn {
    FN_IP,
    FN_DECIMAL,
    FN_DATETIME,
    FN_DURATION,
    FN_CONTAINS,
    FN_CONTAINS_ALL,
    FN_CONTAINS_ANY,
    FN_IS_EMPTY,
    FN_HAS_TAG,
    FN_GET_TAG,
    FN_IS_IPV4,
    FN_IS_IPV6,
    FN_IS_LOOPBACK,
    FN_IS_MULTICAST,
    FN_IS_IN_RANGE,
    FN_LESS_THAN,
    FN_LESS_THAN_OR_EQUAL,
    FN_GREATER_THAN,
    FN_GREATER_THAN_OR_EQUAL,
    FN_OFFSET,
    FN_DURATION_SINCE,
    FN_TO_DATE,
    FN_TO_TIME,
    FN_TO_MILLISECONDS,
    FN_TO_SECONDS,
    FN_TO_MINUTES,
    FN_TO_HOURS,
    FN_TO_DAYS,
    FN__COUNT
};

struct pfn_info {
    const char *name;
    bool method;   /* called as receiver.name(args) */
    bool builtin;  /* arity checked by the parser (set and tag methods) */
    uint8_t nargs; /* including the receiver */
};
extern const struct pfn_info pfn_table[FN__COUNT];
/* -1 when no function of that name exists. */
int pfn_lookup(const char *name, size_t len);

/* Runs an extension function on already evaluated arguments (receiver
 * first). 0 with *out, or -1 with a static message in *err. */
int pext_call(int fn, const pval_t *args, size_t nargs, pval_t *out, const char **err);

struct ptype;

/* ---- lexer.c --------------------------------------------------------------- */

enum ptok {
    T_EOF,
    T_IDENT,
    T_INT,
    T_STR,
    T_SLOT, /* ?principal, ?resource: s/len hold the name after '?' */
    T_LPAREN,
    T_RPAREN,
    T_LBRACKET,
    T_RBRACKET,
    T_LBRACE,
    T_RBRACE,
    T_COMMA,
    T_SEMI,
    T_COLON,
    T_COLONCOLON,
    T_DOT,
    T_AT,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_AND,
    T_OR,
    T_NOT,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_ERROR, /* s points at the offending byte; msg in the lexer */
};

struct ptoken {
    uint8_t kind;
    uint32_t line, col;
    const char *s; /* raw text: for T_STR the contents between the quotes */
    uint32_t len;
};

struct plexer {
    const char *p, *end;
    const char *line_start;
    uint32_t line;
    const char *cpos; /* column cache: ccol is the column of cpos */
    uint32_t ccol;
    const char *msg; /* for T_ERROR */
};

void plex_init(struct plexer *lx, const char *src, size_t len);
void plex_next(struct plexer *lx, struct ptoken *t);
const char *ptok_name(int kind);

/* Decodes the escapes of a string literal's raw contents. With pattern set,
 * `\*` yields a literal star and an unescaped '*' is a wildcard: stars holds
 * a flag per output byte (1 = wildcard). 0, or -1 with a static *err. */
int pstr_unescape(arena_t *a, const char *raw, size_t len, bool pattern, pstr_t *out,
                  uint8_t **stars, const char **err);

/* ---- AST -------------------------------------------------------------- */

enum pexpr_kind {
    EX_LIT,
    EX_VAR, /* sub: PVAR_* */
    EX_NOT,
    EX_NEG,
    EX_AND,
    EX_OR,
    EX_IF,
    EX_EQ,
    EX_NE,
    EX_LT,
    EX_LE,
    EX_GT,
    EX_GE,
    EX_IN,
    EX_ADD,
    EX_SUB,
    EX_MUL,
    EX_HAS,  /* a has str */
    EX_ATTR, /* a.str */
    EX_LIKE, /* a like pat */
    EX_IS,   /* a is str [in b] */
    EX_SET,  /* items */
    EX_RECORD,
    EX_CALL, /* sub: enum pfn; items: args, receiver first for methods */
};

enum pvar { PVAR_PRINCIPAL, PVAR_ACTION, PVAR_RESOURCE, PVAR_CONTEXT };

/* A `like` pattern: literal chunks separated by wildcards. */
struct ppattern {
    bool star_first, star_last; /* a wildcard before the first / after the last chunk */
    uint32_t n;                 /* chunks; n-1 wildcards sit between them */
    pstr_t chunk[];
};
bool ppattern_match(const struct ppattern *p, const char *s, size_t len);

struct pexpr {
    uint8_t kind;
    uint8_t sub;
    uint16_t height; /* 1 for leaves; bounded by the parser */
    uint32_t n;      /* items / keys */
    uint32_t line, col;
    struct pexpr *a, *b, *c;
    struct pexpr **items;
    pstr_t *keys;
    pstr_t str;
    const struct ppattern *pat;
    pval_t lit;
};

enum pscope_op { SC_ANY, SC_EQ, SC_IN, SC_IS, SC_IS_IN, SC_IN_SET };

struct pscope {
    uint8_t op;
    bool slot;      /* rhs is ?principal / ?resource (templates) */
    pstr_t is_type; /* SC_IS, SC_IS_IN */
    uint32_t n;     /* uids: 1 for EQ/IN/IS_IN, any for IN_SET */
    const puid_t *uids;
};

struct pcond {
    bool unless;
    const struct pexpr *e;
};

struct panno {
    pstr_t key, val;
};

struct ppolicy {
    const char *id;
    bool forbid;
    bool is_template;
    struct pscope principal, action, resource;
    uint32_t nconds;
    const struct pcond *conds;
    uint32_t nannos;
    const struct panno *annos;
    const char *file;
    uint32_t line, col;
    const struct ppolicy *tmpl; /* linked policies: their template */
    uint32_t index;             /* position in the set, for ordering */
};

/* ---- parse_policy.c ------------------------------------------------------ */

/* Appends "file:line:col: message" to d (copies everything). */
void pdiag_add(struct policy_diags *d, const char *file, unsigned line, unsigned col,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Parses policies from src into arena-allocated ppolicy structs, appended to
 * *out (a malloc'd array the caller frees). Errors are added to diags with
 * file:line:col; returns the number of errors added. */
struct pparse_out {
    struct ppolicy **v;
    size_t n, cap;
};
size_t pparse_policies(arena_t *a, const char *file, const char *src, size_t len,
                       struct pparse_out *out, struct policy_diags *diags);
/* Parses one entity uid in Cedar syntax (`NS::Type::"id"`). */
int pparse_uid(arena_t *a, const char *src, size_t len, puid_t *out, const char **err);

/* ---- json.c: a JSON reader that keeps NUL bytes in keys ----------------- */

enum pj_type { PJ_NULL, PJ_BOOL, PJ_INT, PJ_FLOAT, PJ_STRING, PJ_ARRAY, PJ_OBJECT };

struct pjnode {
    uint8_t type;
    bool b;
    int64_t i;  /* PJ_INT */
    pstr_t s;   /* PJ_STRING; PJ_FLOAT: the number's text */
    uint32_t n; /* PJ_ARRAY, PJ_OBJECT */
    struct pjnode **items;
    pstr_t *keys; /* PJ_OBJECT, in document order, unique */
};

/* Parses text into nodes in the arena. 0, or -1 with "line:col: msg". */
int pj_parse(arena_t *a, const char *text, size_t len, const struct pjnode **out, char *err,
             size_t err_len);
/* The same; with last_dup_wins a key repeated in an object keeps its last
 * value (how the reference reads request contexts) instead of failing. */
int pj_parse_ex(arena_t *a, const char *text, size_t len, bool last_dup_wins,
                const struct pjnode **out, char *err, size_t err_len);
const struct pjnode *pj_get(const struct pjnode *obj, const char *key);
/* A view of a jansson value (strings borrowed from it); NULL on OOM. */
const struct pjnode *pj_from_jansson(arena_t *a, const json_t *v, int depth);

/* ---- entities.c -------------------------------------------------------- */

struct pentity {
    puid_t uid;
    const struct prec *attrs;
    const struct prec *tags;
    uint32_t nparents;
    const puid_t *parents;
    uint32_t nanc; /* transitive ancestors, sorted by puid_cmp */
    const puid_t **anc;
};

const struct pentity *pentities_find(const struct policy_entities *es, const puid_t *uid);
bool pentity_has_ancestor(const struct pentity *e, const puid_t *anc);

/* Converts a JSON value in Cedar's entity-attribute format (with __entity
 * and __extn escapes) to a value in the arena. 0, or -1 with *err (arena). */
int pjson_to_val(arena_t *a, const struct pjnode *j, pval_t *out, char **err, int depth);
/* The same, reading implicit entity references and extension values where
 * the schema type t expects them (t NULL: no schema). */
int pjson_to_val_typed(arena_t *a, const struct pjnode *j, const policy_schema_t *s,
                       const struct ptype *t, pval_t *out, char **err, int depth);
int pjson_to_uid(arena_t *a, const struct pjnode *j, puid_t *out, char **err);
/* Loads entities from a parsed JSON array. */
policy_entities_t *pentities_load(const struct pjnode *array, const policy_schema_t *schema,
                                  char *err, size_t err_len);
/* Reads a whole file into b (initialised here, at most max bytes). */
int pread_file(const char *path, buf_t *b, size_t max, char *err, size_t err_len);

/* ---- schema.c ------------------------------------------------------------ */

enum ptype_kind {
    TY_ANY,
    TY_BOOL,
    TY_LONG,
    TY_STRING,
    TY_ENTITY,
    TY_SET,
    TY_RECORD,
    TY_EXT,
    TY_REF
};

/* A schema type, as far as schema-based parsing needs it. */
struct ptype {
    uint8_t kind;
    uint8_t ext;              /* TY_EXT: FN_IP, FN_DECIMAL, … */
    pstr_t name, ns;          /* TY_REF: the name as written and its namespace */
    const struct ptype *elem; /* TY_SET */
    uint32_t n;               /* TY_RECORD */
    pstr_t *keys;
    const struct ptype **vals;
};

struct pschema_action {
    puid_t uid;
    uint32_t nparents;
    const puid_t *parents;
    const struct ptype *context;
};

/* The attribute (or tag) type of an entity type; NULL when undeclared. */
const struct ptype *pschema_entity_attrs(const policy_schema_t *s, pstr_t type, bool tags);
const struct pschema_action *pschema_action(const policy_schema_t *s, const puid_t *uid);
size_t pschema_action_count(const policy_schema_t *s);
const struct pschema_action *pschema_action_at(const policy_schema_t *s, size_t i);
/* Follows type references to a concrete type (TY_ANY when unknown). */
int pschema_resolve(const policy_schema_t *s, const struct ptype *t, struct ptype *out);

/* ---- authorizer.c --------------------------------------------------------- */

/* policy_decide with the context given as parsed JSON (overrides req's). */
int pdecide_node(const policy_set_t *s, const policy_entities_t *entities,
                 const struct policy_request *req, const struct pjnode *context,
                 struct policy_decision *out);

/* ---- eval.c ------------------------------------------------------------ */

struct peval {
    arena_t *arena;
    const struct policy_entities *ents;
    pval_t principal, action, resource, context;
    const char *err; /* message of the last error (arena) */
    uint32_t depth;
};

/* 0 with *out, or -1 with ev->err set. */
int peval_expr(struct peval *ev, const struct pexpr *e, pval_t *out);
/* `uid in target`, with the entity store's hierarchy. */
bool peval_uid_in(const struct peval *ev, const puid_t *uid, const puid_t *target);

#endif
