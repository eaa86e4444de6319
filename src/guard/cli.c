// SPDX-License-Identifier: Apache-2.0
// `portcullis guard scan [--rules FILE]`: scans stdin and prints the verdict as JSON;
// `portcullis guard rules`: lists the rule pack. For debugging rules and evaluation.
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard/guard.h"

/* Largest input `guard scan` reads from stdin. */
#define GUARD_CLI_MAX_INPUT (64u << 20)

static void usage(FILE *out)
{
    fprintf(out, "usage:\n"
                 "  portcullis guard scan [--rules FILE]   scan stdin, print the verdict as JSON\n"
                 "  portcullis guard scan --lines          each stdin line is a JSON string;\n"
                 "                                         one verdict line per input line\n"
                 "  portcullis guard rules [--rules FILE]  list the rule pack\n");
}

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void print_result(const struct guard_result *r)
{
    printf("{\"injection\": %s, \"score\": %.4g, \"findings\": [", r->injection ? "true" : "false",
           r->score);
    for (size_t i = 0; i < r->nfindings; i++) {
        const struct guard_finding *f = &r->findings[i];
        printf("%s{\"rule\": ", i ? ", " : "");
        json_str(stdout, f->rule);
        printf(", \"category\": ");
        json_str(stdout, f->category);
        printf(", \"start\": %zu, \"end\": %zu}", f->start, f->end);
    }
    printf("]%s}\n", r->truncated ? ", \"truncated\": true" : "");
}

/* --lines: one JSON string per stdin line, one verdict per output line
 * (an {"error": …} line for a line that is not a JSON string). */
static int scan_lines(const struct guard *g)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        json_error_t jerr;
        json_t *j = json_loadb(line, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        struct guard_result r;
        if (!j || !json_is_string(j)) {
            printf("{\"error\": \"line is not a JSON string\"}\n");
            rc = 1;
        } else if (guard_scan(g, json_string_value(j), json_string_length(j), &r) < 0) {
            printf("{\"error\": \"scan failed\"}\n");
            rc = 1;
        } else {
            print_result(&r);
        }
        json_decref(j);
    }
    free(line);
    return rc;
}

/* Reads all of stdin; caller frees. NULL when too large or out of memory. */
static char *read_stdin(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0)
            break;
        if (n == cap) {
            if (cap >= GUARD_CLI_MAX_INPUT) {
                free(buf);
                return NULL;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    *len = n;
    return buf;
}

int guard_cli_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *rules = NULL;
    int lines = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--rules") == 0 && i + 1 < argc)
            rules = argv[++i];
        else if (strcmp(argv[i], "--lines") == 0)
            lines = 1;
        else {
            fprintf(stderr, "portcullis guard: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    char err[512] = "";
    struct guard *g =
        rules ? guard_load(rules, err, sizeof(err)) : guard_new_builtin(err, sizeof(err));
    if (!g) {
        fprintf(stderr, "portcullis guard: %s\n", err);
        return 1;
    }
    int rc = 0;
    if (strcmp(argv[1], "rules") == 0) {
        for (size_t i = 0; i < guard_rule_count(g); i++)
            printf("%-36s %s\n", guard_rule_id(g, i), guard_rule_category(g, i));
    } else if (strcmp(argv[1], "scan") == 0 && lines) {
        rc = scan_lines(g);
    } else if (strcmp(argv[1], "scan") == 0) {
        size_t len = 0;
        char *text = read_stdin(&len);
        struct guard_result r;
        if (!text) {
            fprintf(stderr, "portcullis guard scan: input larger than %u bytes\n",
                    GUARD_CLI_MAX_INPUT);
            rc = 1;
        } else if (guard_scan(g, text, len, &r) < 0) {
            fprintf(stderr, "portcullis guard scan: scan failed\n");
            rc = 1;
        } else {
            print_result(&r);
        }
        free(text);
    } else {
        fprintf(stderr, "portcullis guard: unknown command '%s'\n", argv[1]);
        usage(stderr);
        rc = 2;
    }
    guard_free(g);
    return rc;
}
