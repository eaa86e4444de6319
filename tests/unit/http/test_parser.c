// SPDX-License-Identifier: Apache-2.0
// Data-driven tests for the inbound HTTP/1.1 request parser: every file in
// tests/unit/http/data/*.test holds raw request bytes and the expected
// outcomes (format in data/README). Each case is replayed whole, one byte at
// a time, and in pseudo-random splits; all must give the same outcomes.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/parser.h"

#define MAX_EXPECT 16
#define MAX_CHECKS 32

struct check {
    char key[32];
    char *val; /* decoded (escapes applied) */
    size_t val_len;
};

struct outcome {
    struct check checks[MAX_CHECKS];
    int nchecks;
};

struct tcase {
    char *path;
    char *name;
    struct http_limits limits;
    char *input;
    size_t input_len;
    struct outcome expect[MAX_EXPECT];
    int nexpect;
};

/* ---- file format -------------------------------------------------------- */

static int hexdig(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Appends the decoded form of s[0..n) to *out. Escapes: \r \n \t \0 \s (space)
 * \\ \xHH. */
static void decode(const char *s, size_t n, char **out, size_t *len, size_t *cap)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            char e = s[++i];
            switch (e) {
            case 'r':
                c = '\r';
                break;
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case '0':
                c = '\0';
                break;
            case 's':
                c = ' ';
                break;
            case '\\':
                c = '\\';
                break;
            case 'x':
                if (i + 2 < n && hexdig(s[i + 1]) >= 0 && hexdig(s[i + 2]) >= 0) {
                    c = (char)(hexdig(s[i + 1]) * 16 + hexdig(s[i + 2]));
                    i += 2;
                    break;
                }
                /* fall through */
            default:
                fail_msg("bad escape \\%c", e);
            }
        }
        if (*len + 2 > *cap) {
            *cap = *cap ? *cap * 2 : 256;
            *out = realloc(*out, *cap);
            assert_non_null(*out);
        }
        (*out)[(*len)++] = c;
        (*out)[*len] = '\0';
    }
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = malloc((size_t)n + 1);
    if (d && fread(d, 1, (size_t)n, f) != (size_t)n) {
        free(d);
        d = NULL;
    }
    fclose(f);
    if (d) {
        d[n] = '\0';
        *len = (size_t)n;
    }
    return d;
}

static void load_case(struct tcase *tc)
{
    size_t flen;
    char *text = read_file(tc->path, &flen);
    if (!text)
        fail_msg("cannot read %s", tc->path);
    enum { NONE, REQUEST, EXPECT } sec = NONE;
    size_t cap = 0;
    tc->limits =
        (struct http_limits){.max_header_bytes = 8192, .max_headers = 64, .max_body_bytes = 65536};
    tc->input = NULL;
    tc->input_len = 0;
    tc->nexpect = 0;

    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(line);
        if (line[0] == '#')
            continue;
        if (strcmp(line, "=== request") == 0) {
            sec = REQUEST;
            continue;
        }
        if (strcmp(line, "=== expect") == 0) {
            assert_true(tc->nexpect < MAX_EXPECT);
            tc->nexpect++;
            sec = EXPECT;
            continue;
        }
        if (sec == NONE) {
            unsigned long long hb, nh, bb;
            if (sscanf(line, "limits %llu %llu %llu", &hb, &nh, &bb) == 3) {
                tc->limits.max_header_bytes = (uint32_t)hb;
                tc->limits.max_headers = (uint32_t)nh;
                tc->limits.max_body_bytes = bb;
                continue;
            }
            if (n == 0)
                continue;
            fail_msg("%s: unknown line before sections: %s", tc->name, line);
        }
        if (sec == REQUEST) {
            unsigned long times;
            int off = 0;
            if (sscanf(line, "@repeat %lu %n", &times, &off) == 1 && off > 0) {
                for (unsigned long k = 0; k < times; k++)
                    decode(line + off, n - (size_t)off, &tc->input, &tc->input_len, &cap);
            } else {
                decode(line, n, &tc->input, &tc->input_len, &cap);
            }
            continue;
        }
        /* EXPECT: "key value" */
        if (n == 0)
            continue;
        struct outcome *o = &tc->expect[tc->nexpect - 1];
        assert_true(o->nchecks < MAX_CHECKS);
        struct check *c = &o->checks[o->nchecks++];
        const char *sp = strchr(line, ' ');
        size_t klen = sp ? (size_t)(sp - line) : n;
        assert_true(klen < sizeof(c->key));
        memcpy(c->key, line, klen);
        c->key[klen] = '\0';
        c->val = NULL;
        c->val_len = 0;
        size_t vcap = 0;
        decode("", 0, &c->val, &c->val_len, &vcap);
        if (sp)
            decode(sp + 1, n - klen - 1, &c->val, &c->val_len, &vcap);
        if (!c->val)
            c->val = calloc(1, 1);
    }
    free(text);
    if (tc->nexpect == 0)
        fail_msg("%s: no === expect section", tc->name);
}

static void free_case(struct tcase *tc)
{
    for (int i = 0; i < tc->nexpect; i++)
        for (int j = 0; j < tc->expect[i].nchecks; j++)
            free(tc->expect[i].checks[j].val);
    free(tc->input);
    tc->input = NULL;
    tc->nexpect = 0;
    memset(tc->expect, 0, sizeof(tc->expect));
}

/* ---- checking ------------------------------------------------------------ */

struct run {
    const struct tcase *tc;
    const char *mode;
    int next; /* index of the next expected outcome */
};

static void mismatch(const struct run *rn, const char *key, const char *want, const char *got)
{
    fail_msg("%s [%s] outcome %d: %s: want '%s' got '%s'", rn->tc->name, rn->mode, rn->next + 1,
             key, want, got);
}

static void check_str(const struct run *rn, const struct check *c, const char *got, size_t glen)
{
    if (c->val_len != glen || memcmp(c->val, got, glen) != 0)
        mismatch(rn, c->key, c->val, got);
}

static void check_num(const struct run *rn, const struct check *c, long long got)
{
    char b[32];
    snprintf(b, sizeof(b), "%lld", got);
    if (strcmp(c->val, b) != 0)
        mismatch(rn, c->key, c->val, b);
}

static const struct http_header *find_in(const struct http_header *h, size_t n, const char *name,
                                         size_t nlen)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].name_len == nlen && strncasecmp(h[i].name, name, nlen) == 0)
            return &h[i];
    return NULL;
}

/* "Name: value" -> the named field must exist with exactly that value. */
static void check_field(const struct run *rn, const struct check *c, const struct http_header *h,
                        size_t n)
{
    const char *colon = strchr(c->val, ':');
    if (!colon)
        fail_msg("%s: bad %s check '%s'", rn->tc->name, c->key, c->val);
    size_t nlen = (size_t)(colon - c->val);
    const char *v = colon + 1;
    while (*v == ' ')
        v++;
    const struct http_header *f = find_in(h, n, c->val, nlen);
    if (!f)
        mismatch(rn, c->key, c->val, "(absent)");
    /* returned strings must be NUL-terminated at their length */
    assert_int_equal(f->name[f->name_len], '\0');
    assert_int_equal(f->value[f->value_len], '\0');
    if (strlen(v) != f->value_len || memcmp(v, f->value, f->value_len) != 0)
        mismatch(rn, c->key, v, f->value);
}

static const char *result_name(enum http_parse_status st)
{
    switch (st) {
    case HTTP_PARSE_DONE:
        return "done";
    case HTTP_PARSE_ERROR:
        return "error";
    default:
        return "incomplete";
    }
}

static void check_outcome(struct run *rn, struct http_reqparser *p, enum http_parse_status st)
{
    if (rn->next >= rn->tc->nexpect)
        fail_msg("%s [%s]: unexpected extra outcome %s (status %d, %s)", rn->tc->name, rn->mode,
                 result_name(st), http_reqparser_error_status(p), http_reqparser_error_reason(p));
    const struct outcome *o = &rn->tc->expect[rn->next];
    const struct http_request *r = http_reqparser_request(p);
    if (getenv("HTTP_TEST_VERBOSE") && !strcmp(rn->mode, "whole"))
        fprintf(stderr, "  %s: %s %d %s\n", rn->tc->name, result_name(st),
                http_reqparser_error_status(p), http_reqparser_error_reason(p));
    for (int i = 0; i < o->nchecks; i++) {
        const struct check *c = &o->checks[i];
        const char *k = c->key;
        if (!strcmp(k, "result")) {
            if (strcmp(c->val, result_name(st)) != 0) {
                char got[160];
                snprintf(got, sizeof(got), "%s (status %d: %s)", result_name(st),
                         http_reqparser_error_status(p), http_reqparser_error_reason(p));
                mismatch(rn, k, c->val, got);
            }
        } else if (!strcmp(k, "status")) {
            check_num(rn, c, http_reqparser_error_status(p));
        } else if (!strcmp(k, "reason")) {
            if (!strstr(http_reqparser_error_reason(p), c->val))
                mismatch(rn, k, c->val, http_reqparser_error_reason(p));
        } else if (!strcmp(k, "method")) {
            check_str(rn, c, r->method, strlen(r->method));
        } else if (!strcmp(k, "target")) {
            check_str(rn, c, r->target, r->target_len);
            assert_int_equal(strlen(r->target), r->target_len);
        } else if (!strcmp(k, "path")) {
            check_str(rn, c, r->path, r->path_len);
            assert_int_equal(strlen(r->path), r->path_len);
        } else if (!strcmp(k, "query")) {
            check_str(rn, c, r->query, strlen(r->query));
        } else if (!strcmp(k, "version")) {
            char b[16];
            snprintf(b, sizeof(b), "%u.%u", r->http_major, r->http_minor);
            check_str(rn, c, b, strlen(b));
        } else if (!strcmp(k, "keep_alive")) {
            check_num(rn, c, r->keep_alive);
        } else if (!strcmp(k, "expect_continue")) {
            check_num(rn, c, r->expect_continue);
        } else if (!strcmp(k, "chunked")) {
            check_num(rn, c, r->chunked);
        } else if (!strcmp(k, "content_length")) {
            check_num(rn, c, r->content_length);
        } else if (!strcmp(k, "body")) {
            check_str(rn, c, r->body.len ? r->body.data : "", r->body.len);
        } else if (!strcmp(k, "body_len")) {
            check_num(rn, c, (long long)r->body.len);
        } else if (!strcmp(k, "nheaders")) {
            check_num(rn, c, (long long)r->nheaders);
        } else if (!strcmp(k, "header")) {
            check_field(rn, c, r->headers, r->nheaders);
        } else if (!strcmp(k, "no_header")) {
            if (find_in(r->headers, r->nheaders, c->val, c->val_len))
                mismatch(rn, k, c->val, "(present)");
        } else if (!strcmp(k, "ntrailers")) {
            check_num(rn, c, (long long)r->ntrailers);
        } else if (!strcmp(k, "trailer")) {
            check_field(rn, c, r->trailers, r->ntrailers);
        } else {
            fail_msg("%s: unknown check '%s'", rn->tc->name, k);
        }
    }
    rn->next++;
}

/* ---- driving --------------------------------------------------------------- */

/* Feeds the case input in pieces whose sizes come from next_piece(); every
 * piece is copied into a scratch buffer that is scribbled over after each
 * feed, so the parser must not keep pointers into the caller's bytes. */
static void run_case(const struct tcase *tc, const char *mode, size_t (*next_piece)(void *),
                     void *arg)
{
    struct run rn = {.tc = tc, .mode = mode, .next = 0};
    struct http_reqparser *p = http_reqparser_new(&tc->limits);
    assert_non_null(p);
    char *pending = malloc(tc->input_len + 1); /* fed but not yet consumed */
    size_t plen = 0, off = 0;
    int headers_seen = 0, stopped = 0;
    assert_non_null(pending);

    while (!stopped && off < tc->input_len) {
        size_t n = next_piece(arg);
        if (n > tc->input_len - off)
            n = tc->input_len - off;
        memcpy(pending + plen, tc->input + off, n);
        plen += n;
        off += n;
        for (;;) {
            size_t used = 0;
            enum http_parse_status st = http_reqparser_feed(p, pending, plen, &used);
            assert_true(used <= plen);
            memset(pending, 0xA5, used); /* the parser must have copied what it keeps */
            memmove(pending, pending + used, plen - used);
            plen -= used;
            if (st == HTTP_PARSE_AGAIN) {
                if (plen != 0)
                    fail_msg("%s [%s]: AGAIN left %zu bytes unconsumed", tc->name, mode, plen);
                break;
            }
            if (st == HTTP_PARSE_HEADERS) {
                const struct http_request *r = http_reqparser_request(p);
                if (headers_seen)
                    fail_msg("%s [%s]: HEADERS returned twice", tc->name, mode);
                if (r->body.len != 0)
                    fail_msg("%s [%s]: body bytes before HEADERS", tc->name, mode);
                headers_seen = 1;
                continue;
            }
            if (st == HTTP_PARSE_ERROR) {
                check_outcome(&rn, p, st);
                stopped = 1;
                break;
            }
            /* DONE */
            if (!headers_seen)
                fail_msg("%s [%s]: DONE without HEADERS", tc->name, mode);
            check_outcome(&rn, p, st);
            http_reqparser_reset(p);
            headers_seen = 0;
            if (plen == 0)
                break;
        }
    }
    if (!stopped && http_reqparser_started(p))
        check_outcome(&rn, p, HTTP_PARSE_AGAIN);
    if (rn.next != tc->nexpect)
        fail_msg("%s [%s]: %d outcomes, expected %d", tc->name, mode, rn.next, tc->nexpect);
    free(pending);
    http_reqparser_free(p);
}

static size_t piece_all(void *arg)
{
    return SIZE_MAX;
}

static size_t piece_one(void *arg)
{
    return 1;
}

static size_t piece_random(void *arg)
{
    uint32_t *s = arg; /* xorshift32 */
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return 1 + *s % 23;
}

static void test_data_case(void **state)
{
    struct tcase *tc = *state;
    load_case(tc);
    run_case(tc, "whole", piece_all, NULL);
    run_case(tc, "1-byte", piece_one, NULL);
    for (uint32_t seed = 1; seed <= 8; seed++) {
        uint32_t s = seed * 2654435761u;
        run_case(tc, "random-split", piece_random, &s);
    }
    free_case(tc);
}

/* ---- a few API properties that are not about one request --------------- */

static void test_reset_reuses_parser_for_many_requests(void **state)
{
    struct http_limits lim = {.max_header_bytes = 1024, .max_headers = 8, .max_body_bytes = 16};
    struct http_reqparser *p = http_reqparser_new(&lim);
    assert_non_null(p);
    const char *req = "POST /x?y=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
    for (int i = 0; i < 1000; i++) {
        size_t used, len = strlen(req);
        assert_int_equal(http_reqparser_started(p), 0);
        assert_int_equal(http_reqparser_feed(p, req, len, &used), HTTP_PARSE_HEADERS);
        assert_int_equal(http_reqparser_started(p), 1);
        size_t used2;
        assert_int_equal(http_reqparser_feed(p, req + used, len - used, &used2), HTTP_PARSE_DONE);
        assert_int_equal(used + used2, len);
        const struct http_request *r = http_reqparser_request(p);
        assert_string_equal(r->path, "/x");
        assert_string_equal(r->query, "y=1");
        assert_string_equal(r->body.data, "abc");
        assert_non_null(http_request_header(r, "HOST"));
        assert_null(http_request_header(r, "Hos"));
        http_reqparser_reset(p);
    }
    http_reqparser_free(p);
}

static void test_error_is_sticky_until_reset(void **state)
{
    struct http_limits lim = {.max_header_bytes = 1024, .max_headers = 8, .max_body_bytes = 16};
    struct http_reqparser *p = http_reqparser_new(&lim);
    size_t used;
    assert_int_equal(http_reqparser_feed(p, "GET / HTTP/1.1\n", 15, &used), HTTP_PARSE_ERROR);
    assert_int_equal(http_reqparser_error_status(p), 400);
    assert_int_equal(http_reqparser_feed(p, "GET", 3, &used), HTTP_PARSE_ERROR);
    assert_int_equal(used, 0);
    http_reqparser_reset(p);
    assert_int_equal(http_reqparser_error_status(p), 0);
    const char *ok = "GET / HTTP/1.0\r\n\r\n";
    assert_int_equal(http_reqparser_feed(p, ok, strlen(ok), &used), HTTP_PARSE_HEADERS);
    assert_int_equal(http_reqparser_feed(p, ok + used, 0, &used), HTTP_PARSE_DONE);
    /* DONE stays DONE, consuming nothing, until reset */
    assert_int_equal(http_reqparser_feed(p, "GET", 3, &used), HTTP_PARSE_DONE);
    assert_int_equal(used, 0);
    http_reqparser_free(p);
    http_reqparser_free(NULL);
}

static void test_body_can_be_moved_out(void **state)
{
    struct http_limits lim = {.max_header_bytes = 1024, .max_headers = 8, .max_body_bytes = 16};
    struct http_reqparser *p = http_reqparser_new(&lim);
    const char *req = "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi";
    size_t used, used2;
    assert_int_equal(http_reqparser_feed(p, req, strlen(req), &used), HTTP_PARSE_HEADERS);
    assert_int_equal(http_reqparser_feed(p, req + used, strlen(req) - used, &used2),
                     HTTP_PARSE_DONE);
    struct http_request *r = http_reqparser_request(p);
    buf_t body = r->body;
    buf_init(&r->body, body.max);
    http_reqparser_reset(p);
    assert_string_equal(body.data, "hi");
    buf_free(&body);
    http_reqparser_free(p);
}

/* ---- main: one cmocka test per data file --------------------------------- */

static int by_name(const void *a, const void *b)
{
    const struct CMUnitTest *x = a, *y = b;
    return strcmp(x->name, y->name);
}

int main(void)
{
    DIR *d = opendir(TEST_DATA_DIR);
    if (!d) {
        fprintf(stderr, "cannot open %s\n", TEST_DATA_DIR);
        return 1;
    }
    size_t n = 0, cap = 64;
    struct CMUnitTest *tests = calloc(cap, sizeof(*tests));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".test") != 0)
            continue;
        if (n == cap) {
            cap *= 2;
            tests = realloc(tests, cap * sizeof(*tests));
        }
        struct tcase *tc = calloc(1, sizeof(*tc));
        tc->name = strndup(e->d_name, l - 5);
        if (asprintf(&tc->path, "%s/%s", TEST_DATA_DIR, e->d_name) < 0)
            return 1;
        tests[n++] =
            (struct CMUnitTest){.name = tc->name, .test_func = test_data_case, .initial_state = tc};
    }
    closedir(d);
    qsort(tests, n, sizeof(*tests), by_name);
    if (n + 3 > cap)
        tests = realloc(tests, (n + 3) * sizeof(*tests));
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_reset_reuses_parser_for_many_requests);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_error_is_sticky_until_reset);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_body_can_be_moved_out);

    int rc = _cmocka_run_group_tests("http_parser", tests, n, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        struct tcase *tc = tests[i].initial_state;
        if (tc) {
            free(tc->name);
            free(tc->path);
            free(tc);
        }
    }
    free(tests);
    return rc;
}
