// SPDX-License-Identifier: Apache-2.0
// Cedar lexer: policy text to tokens with line:col, and the decoding of
// string literals (Rust-style escapes; `\*` in `like` patterns).
#include <string.h>

#include "policy/internal.h"
#include "core/hex.h"

void plex_init(struct plexer *lx, const char *src, size_t len)
{
    lx->p = src;
    lx->end = src + len;
    lx->line_start = src;
    lx->line = 1;
    lx->msg = NULL;
    lx->cpos = src;
    lx->ccol = 1;
}

/* Column in characters: UTF-8 continuation bytes do not count. */
static uint32_t column(struct plexer *lx, const char *at)
{
    /* resume from the last token on this line: long lines stay linear */
    if (lx->cpos < lx->line_start || lx->cpos > at) {
        lx->cpos = lx->line_start;
        lx->ccol = 1;
    }
    for (const char *q = lx->cpos; q < at; q++)
        if (((unsigned char)*q & 0xc0) != 0x80)
            lx->ccol++;
    lx->cpos = at;
    return lx->ccol;
}

static bool ident_start(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool ident_char(char c)
{
    return ident_start(c) || (c >= '0' && c <= '9');
}

/* Length of a Unicode White_Space character other than ASCII at p (as the
 * reference lexer skips them), or 0. */
static size_t unicode_space(const char *p, const char *end)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t n = (size_t)(end - p);
    if (n >= 2 && u[0] == 0xc2 && (u[1] == 0x85 || u[1] == 0xa0))
        return 2; /* U+0085, U+00A0 */
    if (n >= 3 && u[0] == 0xe1 && u[1] == 0x9a && u[2] == 0x80)
        return 3; /* U+1680 */
    if (n >= 3 && u[0] == 0xe2 && u[1] == 0x80 &&
        (u[2] <= 0x8a || u[2] == 0xa8 || u[2] == 0xa9 || u[2] == 0xaf))
        return 3; /* U+2000..U+200A, U+2028, U+2029, U+202F */
    if (n >= 3 && u[0] == 0xe2 && u[1] == 0x81 && u[2] == 0x9f)
        return 3; /* U+205F */
    if (n >= 3 && u[0] == 0xe3 && u[1] == 0x80 && u[2] == 0x80)
        return 3; /* U+3000 */
    return 0;
}

static void skip_space(struct plexer *lx)
{
    while (lx->p < lx->end) {
        char c = *lx->p;
        size_t u;
        if (c == '\n') {
            lx->p++;
            lx->line++;
            lx->line_start = lx->p;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            lx->p++;
        } else if (c == '/' && lx->p + 1 < lx->end && lx->p[1] == '/') {
            while (lx->p < lx->end && *lx->p != '\n')
                lx->p++;
        } else if ((u = unicode_space(lx->p, lx->end)) > 0) {
            lx->p += u;
        } else {
            return;
        }
    }
}

void plex_next(struct plexer *lx, struct ptoken *t)
{
    skip_space(lx);
    t->line = lx->line;
    t->col = column(lx, lx->p);
    t->s = lx->p;
    t->len = 0;
    if (lx->p >= lx->end) {
        t->kind = T_EOF;
        return;
    }
    const char *p = lx->p;
    char c = *p;
    char n = p + 1 < lx->end ? p[1] : '\0';
    int kind = T_ERROR;
    size_t len = 1;
    if (ident_start(c)) {
        while (p + len < lx->end && ident_char(p[len]))
            len++;
        kind = T_IDENT;
    } else if (c >= '0' && c <= '9') {
        while (p + len < lx->end && p[len] >= '0' && p[len] <= '9')
            len++;
        kind = T_INT;
    } else if (c == '"') {
        /* contents up to the closing quote; escapes decoded later */
        size_t i = 1;
        while (p + i < lx->end && p[i] != '"') {
            if (p[i] == '\\' && p + i + 1 < lx->end)
                i++;
            if (p[i] == '\n') {
                lx->line++;
                lx->line_start = p + i + 1;
            }
            i++;
        }
        if (p + i >= lx->end) {
            lx->msg = "unterminated string literal";
            t->kind = T_ERROR;
            lx->p = lx->end;
            return;
        }
        t->kind = T_STR;
        t->s = p + 1;
        t->len = (uint32_t)(i - 1);
        lx->p = p + i + 1;
        return;
    } else if (c == '?' && p + 1 < lx->end && ident_start(n)) {
        while (p + len < lx->end && ident_char(p[len]))
            len++;
        t->kind = T_SLOT;
        t->s = p + 1;
        t->len = (uint32_t)(len - 1);
        lx->p = p + len;
        return;
    } else {
        switch (c) {
        case '(':
            kind = T_LPAREN;
            break;
        case ')':
            kind = T_RPAREN;
            break;
        case '[':
            kind = T_LBRACKET;
            break;
        case ']':
            kind = T_RBRACKET;
            break;
        case '{':
            kind = T_LBRACE;
            break;
        case '}':
            kind = T_RBRACE;
            break;
        case ',':
            kind = T_COMMA;
            break;
        case ';':
            kind = T_SEMI;
            break;
        case '.':
            kind = T_DOT;
            break;
        case '@':
            kind = T_AT;
            break;
        case '+':
            kind = T_PLUS;
            break;
        case '-':
            kind = T_MINUS;
            break;
        case '*':
            kind = T_STAR;
            break;
        case ':':
            kind = n == ':' ? T_COLONCOLON : T_COLON;
            len = n == ':' ? 2 : 1;
            break;
        case '=':
            if (n == '=') {
                kind = T_EQ;
                len = 2;
            }
            break;
        case '!':
            kind = n == '=' ? T_NE : T_NOT;
            len = n == '=' ? 2 : 1;
            break;
        case '<':
            kind = n == '=' ? T_LE : T_LT;
            len = n == '=' ? 2 : 1;
            break;
        case '>':
            kind = n == '=' ? T_GE : T_GT;
            len = n == '=' ? 2 : 1;
            break;
        case '&':
            if (n == '&') {
                kind = T_AND;
                len = 2;
            }
            break;
        case '|':
            if (n == '|') {
                kind = T_OR;
                len = 2;
            }
            break;
        }
        if (kind == T_ERROR)
            lx->msg = "unexpected character";
    }
    t->kind = (uint8_t)kind;
    t->len = (uint32_t)len;
    lx->p = p + len;
}

const char *ptok_name(int kind)
{
    static const char *const names[] = {
        [T_EOF] = "end of input", [T_IDENT] = "identifier", [T_INT] = "integer",
        [T_STR] = "string",       [T_SLOT] = "slot",        [T_LPAREN] = "'('",
        [T_RPAREN] = "')'",       [T_LBRACKET] = "'['",     [T_RBRACKET] = "']'",
        [T_LBRACE] = "'{'",       [T_RBRACE] = "'}'",       [T_COMMA] = "','",
        [T_SEMI] = "';'",         [T_COLON] = "':'",        [T_COLONCOLON] = "'::'",
        [T_DOT] = "'.'",          [T_AT] = "'@'",           [T_EQ] = "'=='",
        [T_NE] = "'!='",          [T_LT] = "'<'",           [T_LE] = "'<='",
        [T_GT] = "'>'",           [T_GE] = "'>='",          [T_AND] = "'&&'",
        [T_OR] = "'||'",          [T_NOT] = "'!'",          [T_PLUS] = "'+'",
        [T_MINUS] = "'-'",        [T_STAR] = "'*'",         [T_ERROR] = "invalid token",
    };
    return kind >= 0 && kind <= T_ERROR ? names[kind] : "token";
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int pstr_unescape(arena_t *a, const char *raw, size_t len, bool pattern, pstr_t *out,
                  uint8_t **stars, const char **err)
{
    /* decoding never grows the text */
    char *o = arena_alloc(a, len + 1);
    uint8_t *st = pattern ? arena_alloc(a, len + 1) : NULL;
    if (!o || (pattern && !st)) {
        *err = "out of memory";
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        char c = raw[i];
        if (c == '\r') {
            *err = "bare carriage return in string literal";
            return -1;
        }
        if (c != '\\') {
            if (st)
                st[k] = c == '*';
            o[k++] = c;
            i++;
            continue;
        }
        if (i + 1 >= len) {
            *err = "invalid escape at end of string";
            return -1;
        }
        char e = raw[i + 1];
        i += 2;
        uint32_t cp;
        switch (e) {
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case '\\':
            cp = '\\';
            break;
        case '0':
            cp = 0;
            break;
        case '\'':
            cp = '\'';
            break;
        case '"':
            cp = '"';
            break;
        case '*':
            if (!pattern) {
                *err = "invalid escape `\\*` outside a `like` pattern";
                return -1;
            }
            st[k] = 0;
            o[k++] = '*';
            continue;
        case 'x': {
            int h1 = i < len ? hex_value(raw[i]) : -1;
            int h2 = i + 1 < len ? hex_value(raw[i + 1]) : -1;
            if (h1 < 0 || h2 < 0 || h1 > 7) {
                *err = "invalid `\\x` escape (two hex digits, at most 7f)";
                return -1;
            }
            cp = (uint32_t)(h1 * 16 + h2);
            i += 2;
            break;
        }
        case 'u': {
            if (i >= len || raw[i] != '{') {
                *err = "invalid `\\u` escape: expected `{`";
                return -1;
            }
            i++;
            cp = 0;
            int nd = 0;
            while (i < len && raw[i] != '}') {
                if (raw[i] == '_' && nd > 0) {
                    i++;
                    continue;
                }
                int h = hex_value(raw[i]);
                if (h < 0 || ++nd > 6) {
                    *err = "invalid `\\u{…}` escape";
                    return -1;
                }
                cp = cp * 16 + (uint32_t)h;
                i++;
            }
            if (i >= len || nd == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                *err = "invalid `\\u{…}` escape";
                return -1;
            }
            i++;
            break;
        }
        default:
            *err = "invalid escape sequence";
            return -1;
        }
        size_t w = put_utf8(o + k, cp);
        if (st)
            memset(st + k, 0, w);
        k += w;
    }
    o[k] = '\0';
    out->s = o;
    out->len = (uint32_t)k;
    if (stars)
        *stars = st;
    return 0;
}
