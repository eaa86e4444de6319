// SPDX-License-Identifier: Apache-2.0
// Server-side TLS over memory BIOs (see tls.h). Sits between the socket and
// the HTTP parser on TLS listeners; never touches the network itself.
#include "http/tls.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Largest TLS plaintext record. */
#define TLS_RECORD_MAX 16384
/* Undecrypted input a connection may hold while plain_out is full. */
#define TLS_MAX_BUFFERED (256 * 1024)

/* Mozilla "intermediate": forward secrecy and AEAD only (TLS 1.2); TLS 1.3
 * suites are OpenSSL's defaults, all AEAD. */
static const char TLS12_CIPHERS[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char TLS_GROUPS[] = "X25519:P-256:P-384";

struct tls_ctx {
    SSL_CTX *ssl_ctx;
};

struct tls_conn {
    SSL *ssl;
    BIO *rbio; /* network -> OpenSSL (owned by ssl) */
    BIO *wbio; /* OpenSSL -> network (owned by ssl) */
    int handshake_done;
    int failed;
    int closed; /* peer's close_notify seen */
    int plain_http;
    char err[160];
};

/* ---- context ----------------------------------------------------------- */

static void openssl_reason(char *out, size_t outlen)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, out, outlen);
    else
        snprintf(out, outlen, "unknown error");
    ERR_clear_error();
}

/* ALPN: only HTTP/1.1 is spoken here. A client that offers ALPN without it
 * gets the fatal no_application_protocol alert (RFC 7301, 3.2). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char h11[] = "http/1.1";
    unsigned int i = 0;
    while (i < inlen) {
        unsigned int n = in[i];
        if (n == 0 || n > inlen - i - 1)
            break;
        if (n == sizeof(h11) - 1 && memcmp(in + i + 1, h11, n) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

struct tls_ctx *tls_ctx_new(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    char why[160];
    struct tls_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ERR_clear_error();
    SSL_CTX *s = SSL_CTX_new(TLS_server_method());
    if (!s) {
        openssl_reason(why, sizeof(why));
        snprintf(err, errlen, "cannot create TLS context: %s", why);
        goto fail;
    }
    ctx->ssl_ctx = s;
    if (!SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION) ||
        !SSL_CTX_set_cipher_list(s, TLS12_CIPHERS) || !SSL_CTX_set1_groups_list(s, TLS_GROUPS)) {
        openssl_reason(why, sizeof(why));
        snprintf(err, errlen, "cannot configure TLS: %s", why);
        goto fail;
    }
    SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* idle connections give their 34 KiB of record buffers back */
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_alpn_select_cb(s, alpn_select, NULL);

    if (SSL_CTX_use_certificate_chain_file(s, cert_file) != 1) {
        openssl_reason(why, sizeof(why));
        snprintf(err, errlen, "cannot load certificate %s: %s", cert_file, why);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(s, key_file, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            snprintf(err, errlen, "private key %s does not match certificate %s", key_file,
                     cert_file);
            goto fail;
        }
        openssl_reason(why, sizeof(why));
        snprintf(err, errlen, "cannot load private key %s: %s", key_file, why);
        goto fail;
    }
    if (SSL_CTX_check_private_key(s) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "private key %s does not match certificate %s", key_file, cert_file);
        goto fail;
    }
    return ctx;

fail:
    tls_ctx_free(ctx);
    return NULL;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl_ctx); /* connections keep their own reference */
    free(ctx);
}

/* ---- connection -------------------------------------------------------- */

struct tls_conn *tls_conn_new(struct tls_ctx *ctx)
{
    struct tls_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->ssl = SSL_new(ctx->ssl_ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->rbio || !c->wbio) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return NULL;
    }
    /* an empty memory BIO reports "retry", not EOF */
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
    return c;
}

void tls_conn_free(struct tls_conn *c)
{
    if (!c)
        return;
    SSL_free(c->ssl); /* frees both BIOs */
    free(c);
}

/* Records a fatal error from the last SSL call that returned rc. */
static int conn_fail(struct tls_conn *c, int rc)
{
    int e = SSL_get_error(c->ssl, rc);
    unsigned long ev = ERR_peek_last_error();
    if (ev && ERR_GET_LIB(ev) == ERR_LIB_SSL && ERR_GET_REASON(ev) == SSL_R_HTTP_REQUEST)
        c->plain_http = 1;
    if (ev)
        ERR_error_string_n(ev, c->err, sizeof(c->err));
    else if (e == SSL_ERROR_SYSCALL)
        snprintf(c->err, sizeof(c->err), "TLS: unexpected end of data");
    else
        snprintf(c->err, sizeof(c->err), "TLS error %d", e);
    ERR_clear_error();
    c->failed = 1;
    return -EPROTO;
}

/* Moves what OpenSSL wants to send into net_out, as far as it has room. */
static int flush_net(struct tls_conn *c, buf_t *net_out)
{
    size_t pending = BIO_ctrl_pending(c->wbio);
    while (pending > 0 && net_out->len < net_out->max) {
        size_t room = net_out->max - net_out->len;
        size_t n = pending < room ? pending : room;
        if (n > INT_MAX)
            n = INT_MAX;
        if (buf_reserve(net_out, n) < 0)
            return -ENOMEM;
        int got = BIO_read(c->wbio, net_out->data + net_out->len, (int)n);
        if (got <= 0)
            break;
        net_out->len += (size_t)got;
        net_out->data[net_out->len] = '\0';
        pending = BIO_ctrl_pending(c->wbio);
    }
    return 0;
}

static int feed_input(struct tls_conn *c, const char *in, size_t len)
{
    /* more input while earlier input still waits for plain_out room */
    if (len > 0 && BIO_ctrl_pending(c->rbio) > TLS_MAX_BUFFERED)
        return -E2BIG;
    while (len > 0) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        int w = BIO_write(c->rbio, in, n);
        if (w <= 0)
            return -ENOMEM;
        in += w;
        len -= (size_t)w;
    }
    return 0;
}

int tls_conn_feed(struct tls_conn *c, const char *in, size_t len, buf_t *plain_out, buf_t *net_out)
{
    int rc;
    if (c->failed)
        return -EPIPE;
    ERR_clear_error();
    if ((rc = feed_input(c, in, len)) < 0)
        return rc;

    if (!c->handshake_done) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                rc = conn_fail(c, r);
                (void)flush_net(c, net_out); /* the alert, if any */
                return rc;
            }
            return flush_net(c, net_out);
        }
        c->handshake_done = 1;
    }

    while (!c->closed && plain_out->len < plain_out->max) {
        size_t room = plain_out->max - plain_out->len;
        int n = room < TLS_RECORD_MAX ? (int)room : TLS_RECORD_MAX;
        if (buf_reserve(plain_out, (size_t)n) < 0)
            return -ENOMEM;
        int r = SSL_read(c->ssl, plain_out->data + plain_out->len, n);
        if (r > 0) {
            plain_out->len += (size_t)r;
            plain_out->data[plain_out->len] = '\0';
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            c->closed = 1;
            break;
        }
        rc = conn_fail(c, r);
        (void)flush_net(c, net_out);
        return rc;
    }
    if ((rc = flush_net(c, net_out)) < 0)
        return rc;
    return c->closed ? TLS_CLOSED : 0;
}

ssize_t tls_conn_write(struct tls_conn *c, const char *plain, size_t len, buf_t *net_out)
{
    size_t done = 0;
    int rc;
    if (c->failed || (SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN))
        return -EPIPE;
    if (!c->handshake_done)
        return 0;
    ERR_clear_error();
    if ((rc = flush_net(c, net_out)) < 0)
        return rc;
    /* one record at a time, and only while the previous one left completely,
     * so nothing piles up inside when net_out is full */
    while (done < len && BIO_ctrl_pending(c->wbio) == 0) {
        size_t n = len - done < TLS_RECORD_MAX ? len - done : TLS_RECORD_MAX;
        int r = SSL_write(c->ssl, plain + done, (int)n);
        if (r <= 0) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                break;
            rc = conn_fail(c, r);
            (void)flush_net(c, net_out);
            return rc;
        }
        done += (size_t)r;
        if ((rc = flush_net(c, net_out)) < 0)
            return rc;
    }
    return (ssize_t)done;
}

int tls_conn_shutdown(struct tls_conn *c, buf_t *net_out)
{
    if (c->failed)
        return -EPIPE;
    if (!c->handshake_done)
        return 0;
    ERR_clear_error();
    int r = SSL_shutdown(c->ssl);
    if (r < 0) {
        int e = SSL_get_error(c->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return conn_fail(c, r);
        ERR_clear_error();
    }
    int rc = flush_net(c, net_out);
    if (rc < 0)
        return rc;
    return r == 1 ? 1 : 0;
}

int tls_conn_handshake_done(const struct tls_conn *c)
{
    return c->handshake_done;
}

size_t tls_conn_net_pending(const struct tls_conn *c)
{
    return BIO_ctrl_pending(c->wbio);
}

int tls_conn_has_buffered(const struct tls_conn *c)
{
    return SSL_pending(c->ssl) > 0 || BIO_ctrl_pending(c->rbio) > 0;
}

const char *tls_conn_alpn(const struct tls_conn *c)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(c->ssl, &p, &n);
    if (!p || n != 8 || memcmp(p, "http/1.1", 8) != 0)
        return NULL;
    return "http/1.1";
}

const char *tls_conn_version(const struct tls_conn *c)
{
    return c->handshake_done ? SSL_get_version(c->ssl) : "";
}

const char *tls_conn_error(const struct tls_conn *c)
{
    return c->err;
}

int tls_conn_plain_http(const struct tls_conn *c)
{
    return c->plain_http;
}
