// SPDX-License-Identifier: Apache-2.0
// Scalar parsers shared by the config loader: sizes ("8MiB"), durations
// ("500ms", "1m30s"), numbers and "host:port". Pure functions, no YAML here;
// each returns 0, or -1 with a reason written to why[0..whylen) that reads
// after "key: " (e.g. "too large (at most 65535)").
#ifndef PORTCULLIS_CONFIG_VALUES_H
#define PORTCULLIS_CONFIG_VALUES_H

#include <stddef.h>
#include <stdint.h>

/* Decimal integer ("10000", "10_000"), at most `max`. */
int config_parse_uint(const char *s, uint64_t max, uint64_t *out, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* Bytes as an integer, or a number with a unit: B, K/KB (1000), KiB (1024),
 * M/MB, MiB, G/GB, GiB; units are case-insensitive ("8MiB", "1.5 GB"). */
int config_parse_size(const char *s, uint64_t max, uint64_t *out, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* Milliseconds as an integer, or one or more number+unit parts with units
 * ms, s, m, h ("500ms", "10s", "1m30s", "1.5h"). Rounded to the nearest ms. */
int config_parse_duration_ms(const char *s, uint64_t max, uint64_t *out, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* A finite decimal number without sign ("0.15", "2", "1e-3"). */
int config_parse_number(const char *s, double *out, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* "host:port" or "[ipv6]:port", port 1..65535. On success *host is a
 * malloc'ed copy without brackets (caller frees). */
int config_parse_hostport(const char *s, char **host, uint16_t *port, char *why, size_t whylen)
    __attribute__((warn_unused_result));

#endif
