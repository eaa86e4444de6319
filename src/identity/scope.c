// SPDX-License-Identifier: Apache-2.0
// Scopes of principals and delegation tokens: what a token allows and the
// subset test that makes delegation attenuating (a child never gets an item
// its parent's scope does not cover).
#include <string.h>

#include "identity/internal.h"

#define SCOPE_MAX 4096

static int item_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
           c == '.' || c == '_' || c == '-' || c == '/' || c == '*' || c == '@';
}

int scope_valid(const char *scope)
{
    if (scope == NULL)
        return 1;
    size_t n = strlen(scope);
    if (n == 0 || n > SCOPE_MAX || scope[0] == ' ' || scope[n - 1] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (scope[i] == ' ') {
            if (scope[i + 1] == ' ')
                return 0;
        } else if (!item_char_ok(scope[i])) {
            return 0;
        }
    }
    return 1;
}

/* The protocol an item belongs to ("model:x" -> "llm"), or NULL. */
static const char *protocol_of(const char *item, size_t n)
{
    if (n > 6 && memcmp(item, "model:", 6) == 0)
        return "llm";
    if (n > 5 && memcmp(item, "tool:", 5) == 0)
        return "mcp";
    if (n > 6 && memcmp(item, "agent:", 6) == 0)
        return "a2a";
    return NULL;
}

/* Does the single item p[0..pn) cover c[0..cn)? */
static int item_covers(const char *p, size_t pn, const char *c, size_t cn)
{
    if (pn == 1 && p[0] == '*')
        return 1;
    if (pn == cn && memcmp(p, c, pn) == 0)
        return 1;
    if (pn > 0 && p[pn - 1] == '*') {
        /* Prefix pattern: covers items, and narrower patterns, under it. */
        size_t pre = pn - 1;
        if (cn >= pre && memcmp(p, c, pre) == 0)
            return 1;
    }
    const char *proto = protocol_of(c, cn);
    if (proto != NULL && strlen(proto) == pn && memcmp(p, proto, pn) == 0)
        return 1;
    return 0;
}

static int set_covers_item(const char *set, const char *c, size_t cn)
{
    const char *p = set;
    while (*p != '\0') {
        const char *e = strchr(p, ' ');
        size_t pn = e ? (size_t)(e - p) : strlen(p);
        if (item_covers(p, pn, c, cn))
            return 1;
        p += pn;
        while (*p == ' ')
            p++;
    }
    return 0;
}

int scope_allows(const char *scope, const char *item)
{
    if (scope == NULL)
        return 1;
    return set_covers_item(scope, item, strlen(item));
}

int scope_covers(const char *parent, const char *child, const char **offending, size_t *off_len)
{
    if (parent == NULL)
        return 1;
    if (child == NULL) {
        if (offending != NULL) {
            *offending = "*";
            *off_len = 1;
        }
        return 0;
    }
    const char *c = child;
    while (*c != '\0') {
        const char *e = strchr(c, ' ');
        size_t cn = e ? (size_t)(e - c) : strlen(c);
        if (cn > 0 && !set_covers_item(parent, c, cn)) {
            if (offending != NULL) {
                *offending = c;
                *off_len = cn;
            }
            return 0;
        }
        c += cn;
        while (*c == ' ')
            c++;
    }
    return 1;
}

int identity_scope_allows(const struct identity_principal *p, const char *item)
{
    return p == NULL || scope_allows(p->scope, item);
}
