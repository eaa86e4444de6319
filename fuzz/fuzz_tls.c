// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the server-side TLS helper. Byte 0 picks a mode:
//   0: raw bytes as the first flight (garbage ClientHello and friends)
//   1: a genuine ClientHello patched at positions the input chooses
//   2: a real handshake, then raw bytes as records (bad MACs, bad types)
//   3: a real handshake, then the input as application data, which must
//      arrive intact and echo back intact
// Byte 1 chooses the feed piece size. The certificate is made once at start.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "http/tls.h"

static struct tls_ctx *g_ctx;
static SSL_CTX *g_client_ctx;
static unsigned char g_hello[4096];
static size_t g_hello_len;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_tls: %s\n", what);
    ERR_print_errors_fp(stderr);
    abort();
}

static void make_cert_files(const char *cert, const char *key)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    if (!k || !x)
        die("keygen");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, n);
    if (X509_sign(x, k, EVP_sha256()) <= 0)
        die("sign");
    FILE *f = fopen(cert, "w");
    if (!f || !PEM_write_X509(f, x))
        die("write cert");
    fclose(f);
    f = fopen(key, "w");
    if (!f || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL))
        die("write key");
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

static SSL *client_new(void)
{
    SSL *ssl = SSL_new(g_client_ctx);
    BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
    if (!ssl || !r || !w)
        die("client");
    BIO_set_mem_eof_return(r, -1);
    SSL_set_bio(ssl, r, w);
    SSL_set_connect_state(ssl);
    return ssl;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[] = "/tmp/portcullis-fuzz-tls-XXXXXX", cert[64], key[64], err[256];
    if (!mkdtemp(dir))
        die("mkdtemp");
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    make_cert_files(cert, key);
    g_ctx = tls_ctx_new(cert, key, err, sizeof(err));
    unlink(cert);
    unlink(key);
    rmdir(dir);
    if (!g_ctx)
        die(err);

    g_client_ctx = SSL_CTX_new(TLS_client_method());
    if (!g_client_ctx)
        die("client ctx");
    SSL_CTX_set_verify(g_client_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_alpn_protos(g_client_ctx, (const unsigned char *)"\x08http/1.1", 9);

    /* one genuine ClientHello for mode 1 */
    SSL *c = client_new();
    SSL_do_handshake(c);
    int n = BIO_read(SSL_get_wbio(c), g_hello, sizeof(g_hello));
    if (n <= 0)
        die("client hello");
    g_hello_len = (size_t)n;
    SSL_free(c);
    ERR_clear_error();
    return 0;
}

struct srv {
    struct tls_conn *c;
    buf_t plain, net;
    int rc;
};

/* Feeds in pieces; drains plain_out into *collect (if given) under
 * backpressure. Returns the last feed result. */
static int feed(struct srv *s, const uint8_t *d, size_t len, size_t piece, buf_t *collect)
{
    size_t off = 0;
    while (off < len && s->rc >= 0) {
        size_t n = len - off < piece ? len - off : piece;
        s->rc = tls_conn_feed(s->c, (const char *)d + off, n, &s->plain, &s->net);
        off += n;
        for (int guard = 0; s->rc >= 0 && guard < 100000; guard++) {
            if (collect && s->plain.len && buf_append(collect, s->plain.data, s->plain.len) < 0)
                abort();
            buf_reset(&s->plain);
            if (!tls_conn_has_buffered(s->c) || s->rc == TLS_CLOSED)
                break;
            s->rc = tls_conn_feed(s->c, NULL, 0, &s->plain, &s->net);
        }
    }
    return s->rc;
}

/* Hands what the server queued (flights, tickets) to the client. */
static void forward(struct srv *s, SSL *cl)
{
    if (s->net.len) {
        BIO_write(SSL_get_rbio(cl), s->net.data, (int)s->net.len);
        buf_reset(&s->net);
    }
}

/* Runs a real handshake between a fresh client and s. 0 on success. */
static int handshake(struct srv *s, SSL *cl)
{
    for (int i = 0; i < 50; i++) {
        int r = SSL_do_handshake(cl);
        unsigned char tmp[8192];
        int n;
        while ((n = BIO_read(SSL_get_wbio(cl), tmp, sizeof(tmp))) > 0)
            if (feed(s, tmp, (size_t)n, (size_t)n, NULL) < 0)
                return -1;
        forward(s, cl);
        if (r == 1 && tls_conn_handshake_done(s->c))
            return 0;
    }
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int mode = data[0] & 3;
    size_t piece = 1 + (data[1] % 64) * (data[1] & 0x80 ? 64 : 1);
    data += 2;
    size--;
    size--;

    struct srv s = {.rc = 0};
    s.c = tls_conn_new(g_ctx);
    if (!s.c)
        abort();
    buf_init(&s.plain, 512);
    buf_init(&s.net, 1 << 20);
    SSL *cl = NULL;

    if (mode == 0) {
        feed(&s, data, size, piece, NULL);
    } else if (mode == 1) {
        unsigned char hello[sizeof(g_hello)];
        memcpy(hello, g_hello, g_hello_len);
        /* 3-byte patches: 16-bit position, value */
        for (size_t i = 0; i + 3 <= size; i += 3) {
            size_t pos = ((size_t)data[i] << 8 | data[i + 1]) % g_hello_len;
            hello[pos] = data[i + 2];
        }
        feed(&s, hello, g_hello_len, piece, NULL);
    } else {
        cl = client_new();
        if (handshake(&s, cl) != 0)
            abort(); /* a genuine client must always get through */
        if (mode == 2) {
            feed(&s, data, size, piece, NULL);
        } else {
            size_t w = 0;
            if (size && SSL_write_ex(cl, data, size, &w) != 1)
                abort();
            unsigned char tmp[4096];
            int n;
            buf_t got;
            buf_init(&got, size);
            while ((n = BIO_read(SSL_get_wbio(cl), tmp, sizeof(tmp))) > 0)
                feed(&s, tmp, (size_t)n, piece, &got);
            if (s.rc != 0 || got.len != size || (size && memcmp(got.data, data, size) != 0))
                abort(); /* application data must arrive intact */
            forward(&s, cl);
            /* echo it back through a tight net_out */
            buf_t small;
            buf_init(&small, 700);
            size_t sent = 0;
            for (int guard = 0; (sent < size || tls_conn_net_pending(s.c)) && guard < 100000;
                 guard++) {
                ssize_t k = tls_conn_write(s.c, (const char *)data + sent, size - sent, &small);
                if (k < 0)
                    abort();
                sent += (size_t)k;
                BIO_write(SSL_get_rbio(cl), small.data, (int)small.len);
                buf_reset(&small);
            }
            buf_free(&small);
            buf_reset(&got);
            size_t r = 0;
            unsigned char *back = malloc(size + 1);
            size_t total = 0;
            while (total < size && SSL_read_ex(cl, back + total, size - total, &r) == 1)
                total += r;
            if (sent != size || total != size || (size && memcmp(back, data, size) != 0))
                abort();
            free(back);
            buf_free(&got);
        }
    }

    /* whatever state it is in, these must be safe */
    ssize_t w = tls_conn_write(s.c, "x", 1, &s.net);
    (void)w;
    (void)tls_conn_shutdown(s.c, &s.net);
    (void)tls_conn_error(s.c);
    (void)tls_conn_alpn(s.c);
    tls_conn_free(s.c);
    SSL_free(cl);
    buf_free(&s.plain);
    buf_free(&s.net);
    ERR_clear_error();
    return 0;
}
