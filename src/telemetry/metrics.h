// SPDX-License-Identifier: Apache-2.0
// Prometheus metrics. Each worker records into its own shard with plain
// (relaxed-atomic) stores and no locks; GET /metrics sums every shard and
// renders the text exposition format 0.0.4. Last stage of every request.
#ifndef PORTCULLIS_TELEMETRY_METRICS_H
#define PORTCULLIS_TELEMETRY_METRICS_H

#include <stdint.h>

#include "core/buf.h"

struct metrics;
typedef struct metrics metrics_t;

/* Limits on label cardinality, per shard. A value past the limit is counted
 * under the label value "other". Strings longer than METRICS_LABEL_MAX bytes
 * or not valid UTF-8 also count as "other". */
#define METRICS_MAX_ROUTES 16
#define METRICS_MAX_MODELS 64
#define METRICS_MAX_PROVIDERS 32
#define METRICS_LABEL_MAX 200

/* One shard per worker, indexes 0..nworkers-1. Returns NULL on OOM or when
 * nworkers is 0. Caller owns the result; free with metrics_free. */
struct metrics *metrics_new(unsigned nworkers) __attribute__((warn_unused_result));
void metrics_free(struct metrics *m);

/*
 * Recording. Worker `w` may only be recorded by one thread at a time (its own
 * loop); a `w` outside 0..nworkers-1 is ignored. None of these allocate,
 * lock or format; after the first sight of a label value they do not copy.
 *
 * route:    short name such as "chat", "embeddings", "models", "messages",
 *           "metrics", "other" (NULL counts as "").
 * status:   HTTP status sent to the client; outside 0..999 it counts as 0.
 * model:    client-supplied model name or NULL (label value "").
 * *_seconds: total_seconds < 0 or NaN counts as 0; upstream_seconds < 0 or NaN
 *           means no upstream call was made and is not observed.
 */
void metrics_request_done(struct metrics *m, unsigned w, const char *route, int status,
                          const char *model, double total_seconds, double upstream_seconds,
                          uint64_t tokens_in, uint64_t tokens_out);

/* Requests being served: +1 when one starts, -1 when it ends (same worker). */
void metrics_inflight(struct metrics *m, unsigned w, int delta);

/* Open client connections: +1 on accept, -1 on close (same worker). */
void metrics_connections(struct metrics *m, unsigned w, int delta);

/* One attempt to reach an upstream provider. outcome is one of "ok", "error",
 * "timeout", "status_5xx", "status_429"; anything else counts as "other". */
void metrics_upstream_attempt(struct metrics *m, unsigned w, const char *provider,
                              const char *outcome);

/* Appends the whole exposition (text format 0.0.4, series sorted by labels)
 * to out. Safe to call from any thread while workers record; concurrent
 * renders are fine too. Returns 0 or a negative errno (-ENOMEM, -E2BIG from
 * out's limit); on failure out is left as it was. */
int metrics_render(struct metrics *m, buf_t *out) __attribute__((warn_unused_result));

/* Content-Type for the rendered text. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
