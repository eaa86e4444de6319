// SPDX-License-Identifier: Apache-2.0
// The audit trail: one record per request (allowed, denied or failed) with
// the principal and its whole delegation chain, written off the event loop.
// Workers hand records to a bounded queue; one writer thread drains it into
// the state store (SQLite, WAL) in batches and, optionally, a JSONL file.
// `portcullis trace` and `portcullis audit tail` read the store back.
#ifndef PORTCULLIS_AUDIT_AUDIT_H
#define PORTCULLIS_AUDIT_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct http_exchange;

/* The most records one writer transaction takes from the queue. With the
 * queue bound (audit.buffer, default 4096) this is the whole of what a
 * kill -9 can lose: records still queued or in the batch being written. A
 * committed batch survives the process (WAL, synchronous=NORMAL). */
#define AUDIT_BATCH_MAX 1024

struct audit;

/* Opens the store at cfg->state_path (and cfg->audit.jsonl_path when set)
 * and starts the writer thread. NULL with a message in err. Caller owns the
 * result; audit_free drains what is queued, then stops the thread. */
struct audit *audit_new(const struct config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void audit_free(struct audit *a);

/* Builds the record of a finished exchange and queues it. Safe from any
 * worker thread; never waits for the writer and never drops a record while
 * running. Workers hold new requests once audit_should_hold says the queue is
 * past its high-water mark (3/4 of audit.buffer) until audit_still_held(a)
 * turns 0 (back under 1/4): http_server_hold. Records of requests already in
 * flight that still find the queue full wait in an overflow list behind it
 * (counted by audit_overflowed); it holds at most the requests in flight
 * when the workers began to hold. */
void audit_exchange(struct audit *a, const struct http_exchange *ex);
int audit_should_hold(const struct audit *a);
int audit_still_held(void *a);

/* Records dropped (only a record that could not be built, out of memory, or
 * one finished after shutdown began), records written, and records that
 * found the queue full and went to the overflow list. */
uint64_t audit_dropped(const struct audit *a);
uint64_t audit_written(const struct audit *a);
uint64_t audit_overflowed(const struct audit *a);
/* Blocks until every record queued so far is written (tests, shutdown). */
void audit_flush(struct audit *a);

/* `portcullis trace -c FILE REQUEST_ID` and `portcullis audit tail ...`
 * (argv[0] is the subcommand). Return the exit code. */
int audit_trace_cli(int argc, char **argv);
int audit_cli(int argc, char **argv);

#endif
