// SPDX-License-Identifier: Apache-2.0
// Server-side TLS termination over memory BIOs (OpenSSL 3), no I/O of its own:
// socket bytes -> tls_conn_feed -> plaintext for the HTTP parser; plaintext
// response -> tls_conn_write -> bytes for the socket. TLS 1.2+, ALPN http/1.1.
#ifndef PORTCULLIS_HTTP_TLS_H
#define PORTCULLIS_HTTP_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "core/buf.h"

struct tls_ctx;  /* certificate, key and settings; shared by a listener's connections */
struct tls_conn; /* one connection's TLS state */

/* tls_conn_feed result when the peer sent close_notify (after delivering
 * everything before it). Negative results are errors:
 *   -EPROTO  TLS failure (bad handshake, bad record, alert); see tls_conn_error
 *   -ENOMEM  out of memory
 *   -E2BIG   too much undecrypted input buffered (caller ignored backpressure)
 *   -EPIPE   the connection already failed or was shut down */
#define TLS_CLOSED 1

/* Loads a PEM certificate chain (leaf first) and its PEM private key. NULL on
 * failure with a message in err (never contains key material). Caller owns
 * the result; free with tls_ctx_free. Connections hold their own reference,
 * so the ctx may be freed (e.g. on certificate reload) while they live. */
struct tls_ctx *tls_ctx_new(const char *cert_file, const char *key_file, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void tls_ctx_free(struct tls_ctx *ctx);

/* A server-side connection in the accept state. NULL on OOM. Caller owns it;
 * free with tls_conn_free. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx) __attribute__((warn_unused_result));
void tls_conn_free(struct tls_conn *c);

/* Feeds bytes received from the socket (in may be NULL when len is 0).
 * Drives the handshake, appends decrypted application data to plain_out
 * (never past plain_out->max) and bytes that must be sent to the peer
 * (handshake flights, alerts, session tickets) to net_out (never past its
 * max; what does not fit stays queued, see tls_conn_net_pending).
 * When plain_out fills up, the rest stays buffered inside: consume plain_out,
 * then call feed again with len 0 before reading more from the socket
 * (tls_conn_has_buffered tells whether that is needed).
 * Returns 0, TLS_CLOSED, or a negative error (see above). On -EPROTO, net_out
 * may hold an alert worth sending before closing. */
int tls_conn_feed(struct tls_conn *c, const char *in, size_t len, buf_t *plain_out, buf_t *net_out)
    __attribute__((warn_unused_result));

/* Encrypts plaintext into net_out, record by record, while net_out has room.
 * Returns how many plaintext bytes were taken (may be fewer than len: send
 * net_out, then call again with the rest), 0 before the handshake is done,
 * or a negative error. Even when all of len was taken, the tail of the last
 * record may still be queued when net_out is small: while
 * tls_conn_net_pending() is nonzero, send net_out and call again (len 0 only
 * moves queued bytes). */
ssize_t tls_conn_write(struct tls_conn *c, const char *plain, size_t len, buf_t *net_out)
    __attribute__((warn_unused_result));

/* Queues a close_notify into net_out. Returns 1 when the peer's close_notify
 * was already received (shutdown complete), 0 when only ours is sent, or a
 * negative error. Safe to call before the handshake finished (sends nothing). */
int tls_conn_shutdown(struct tls_conn *c, buf_t *net_out);

/* Handshake finished; application data may flow. */
int tls_conn_handshake_done(const struct tls_conn *c);
/* Bytes generated for the peer that did not fit in net_out yet (feed, write
 * and shutdown move them out first, before anything new). */
size_t tls_conn_net_pending(const struct tls_conn *c);
/* Decrypted or undecrypted input still held inside (see tls_conn_feed). */
int tls_conn_has_buffered(const struct tls_conn *c);
/* Negotiated ALPN protocol ("http/1.1") or NULL when none. */
const char *tls_conn_alpn(const struct tls_conn *c);
/* Negotiated protocol version name ("TLSv1.3", ...), "" before handshake. */
const char *tls_conn_version(const struct tls_conn *c);
/* Why the connection failed; "" when it did not. Static or owned by c. */
const char *tls_conn_error(const struct tls_conn *c);
/* True when the failure was a plain HTTP request sent to the TLS port (the
 * caller may answer 400 in clear text, as nginx does). */
int tls_conn_plain_http(const struct tls_conn *c);

#endif
