// SPDX-License-Identifier: Apache-2.0
// Zero-allocation JSON scanning for the hot path: validate a body once, then
// find the few members the gateway reads (model, stream, usage, …) as spans
// into the original bytes, so a body can be forwarded or spliced without a
// DOM. jansson remains the tool wherever a whole document is built or read.
#ifndef PORTCULLIS_CORE_JSON_H
#define PORTCULLIS_CORE_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 256

enum json_kind {
    JS_NONE = 0,
    JS_OBJECT,
    JS_ARRAY,
    JS_STRING,
    JS_NUMBER,
    JS_TRUE,
    JS_FALSE,
    JS_NULL,
};

/* A value inside a buffer the caller owns: p points at its first byte
 * ('{', '[', '"', digit, …) and len covers it whole (quotes included). */
struct json_span {
    const char *p;
    size_t len;
    enum json_kind kind;
};

struct json_error {
    size_t offset;              /* byte offset of the problem */
    unsigned line, column;      /* 1-based */
    const char *msg;            /* static text */
};

/* Checks that s[0..len) is exactly one JSON value (RFC 8259: strict
 * grammar, valid UTF-8, escapes checked, nesting at most JSON_MAX_DEPTH),
 * with optional surrounding whitespace. 0 and *root set, or -1 with *err. */
int json_validate(const char *s, size_t len, struct json_span *root, struct json_error *err)
    __attribute__((warn_unused_result));

/* json_validate and json_lookup on the root object in one pass (no second
 * walk over a large body). 0, -1 when invalid (*err), -2 when one of the
 * keys occurs twice (*dup_index). out[i] is JS_NONE for absent keys. At
 * most 16 keys (more is -1). */
int json_validate_lookup(const char *s, size_t len, struct json_span *root,
                         const char *const *keys, size_t nkeys, struct json_span *out,
                         size_t *dup_index, struct json_error *err)
    __attribute__((warn_unused_result));

/* Looks up several members of an object span (from json_validate) in one
 * pass. Member names are compared after decoding their escapes, so
 * "mod\u0065l" is "model", as any upstream will read it. out[i] gets kind
 * JS_NONE when keys[i] is absent. Returns 0, or -1 when one of the keys
 * occurs twice (*dup_index says which): a request whose meaning depends on
 * which duplicate a parser keeps must be refused, not guessed at. */
int json_lookup(const struct json_span *obj, const char *const *keys, size_t nkeys,
                struct json_span *out, size_t *dup_index) __attribute__((warn_unused_result));

/* One member; same rules. 1 found, 0 absent, -1 duplicated. */
int json_get(const struct json_span *obj, const char *key, struct json_span *out);

/* Decodes a string span into out (NUL-terminated). -1 when it needs more
 * than cap-1 bytes or decodes to a NUL byte. */
int json_string_decode(const struct json_span *str, char *out, size_t cap, size_t *out_len);

/* A number span that is an integer within int64 range. */
int json_int(const struct json_span *num, int64_t *out);

#endif
