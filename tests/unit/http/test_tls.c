// SPDX-License-Identifier: Apache-2.0
// Tests for server-side TLS over memory BIOs: an in-memory OpenSSL client
// talks to tls_conn through byte pumps (no sockets). The certificate is a
// throwaway self-signed one made at setup in a temp directory.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "http/tls.h"

#define MIB (1024 * 1024)

struct fixture {
    char dir[64];
    char cert[96], key[96], other_key[96];
    X509 *x509;
    struct tls_ctx *ctx;
};

/* ---- throwaway certificate ------------------------------------------------ */

static EVP_PKEY *make_key(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k);
    return k;
}

static X509 *make_cert(EVP_PKEY *k)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_true(X509_set_version(x, 2));
    assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 1));
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
    assert_true(X509_set_pubkey(x, k));
    X509_NAME *n = X509_get_subject_name(x);
    assert_true(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                                           (const unsigned char *)"localhost", -1, -1, 0));
    assert_true(X509_set_issuer_name(x, n));
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost");
    assert_non_null(ext);
    assert_true(X509_add_ext(x, ext, -1));
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    return x;
}

static void write_key(const char *path, EVP_PKEY *k)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
    fclose(f);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/portcullis-tls-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->cert, sizeof(fx->cert), "%s/cert.pem", fx->dir);
    snprintf(fx->key, sizeof(fx->key), "%s/key.pem", fx->dir);
    snprintf(fx->other_key, sizeof(fx->other_key), "%s/other.pem", fx->dir);
    EVP_PKEY *k = make_key(), *k2 = make_key();
    fx->x509 = make_cert(k);
    write_key(fx->key, k);
    write_key(fx->other_key, k2);
    FILE *f = fopen(fx->cert, "w");
    assert_non_null(f);
    assert_true(PEM_write_X509(f, fx->x509));
    fclose(f);
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
    char err[256];
    fx->ctx = tls_ctx_new(fx->cert, fx->key, err, sizeof(err));
    if (!fx->ctx) {
        fprintf(stderr, "tls_ctx_new: %s\n", err);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    tls_ctx_free(fx->ctx);
    X509_free(fx->x509);
    unlink(fx->cert);
    unlink(fx->key);
    unlink(fx->other_key);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* ---- in-memory client ----------------------------------------------------- */

struct client {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio, *wbio;
};

struct client_opts {
    int max_version;           /* 0 = library default */
    const char *ciphers;       /* TLS 1.2 cipher list or NULL */
    const unsigned char *alpn; /* wire format, or NULL for none */
    size_t alpn_len;
    int seclevel0; /* allow ancient protocol versions on the client */
};

static const unsigned char ALPN_H2_H11[] = "\x02h2\x08http/1.1";

static void client_init(struct client *cl, const struct fixture *fx, const struct client_opts *o)
{
    cl->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(cl->ctx);
    /* verify the server against the throwaway cert, by name */
    assert_true(X509_STORE_add_cert(SSL_CTX_get_cert_store(cl->ctx), fx->x509));
    SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_PEER, NULL);
    if (o && o->seclevel0) {
        SSL_CTX_set_security_level(cl->ctx, 0);
        SSL_CTX_set_min_proto_version(cl->ctx, TLS1_VERSION);
        assert_true(SSL_CTX_set_cipher_list(cl->ctx, "DEFAULT:@SECLEVEL=0"));
    }
    if (o && o->max_version)
        assert_true(SSL_CTX_set_max_proto_version(cl->ctx, o->max_version));
    if (o && o->ciphers)
        assert_true(SSL_CTX_set_cipher_list(cl->ctx, o->ciphers));
    const unsigned char *alpn = o ? o->alpn : ALPN_H2_H11;
    size_t alpn_len = o ? o->alpn_len : sizeof(ALPN_H2_H11) - 1;
    if (alpn)
        assert_int_equal(SSL_CTX_set_alpn_protos(cl->ctx, alpn, (unsigned)alpn_len), 0);
    cl->ssl = SSL_new(cl->ctx);
    cl->rbio = BIO_new(BIO_s_mem());
    cl->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(cl->rbio, -1);
    SSL_set_bio(cl->ssl, cl->rbio, cl->wbio);
    assert_true(SSL_set1_host(cl->ssl, "localhost"));
    SSL_set_tlsext_host_name(cl->ssl, "localhost");
    SSL_set_connect_state(cl->ssl);
}

static void client_free(struct client *cl)
{
    SSL_free(cl->ssl);
    SSL_CTX_free(cl->ctx);
    ERR_clear_error();
}

/* ---- pumping ---------------------------------------------------------------- */

struct pipe {
    struct client *cl;
    struct tls_conn *srv;
    buf_t plain;  /* what the server decrypted */
    buf_t net;    /* what the server wants to send */
    size_t piece; /* client->server bytes per feed (0 = all) */
    int srv_rc;   /* last tls_conn_feed result */
    int cl_failed;
};

static void pipe_init(struct pipe *pp, struct client *cl, struct tls_conn *srv, size_t plain_max,
                      size_t net_max)
{
    memset(pp, 0, sizeof(*pp));
    pp->cl = cl;
    pp->srv = srv;
    buf_init(&pp->plain, plain_max);
    buf_init(&pp->net, net_max);
}

static void pipe_free(struct pipe *pp)
{
    buf_free(&pp->plain);
    buf_free(&pp->net);
}

/* One round: client step, client->server bytes, server->client bytes.
 * Returns whether anything moved. */
static int pump_once(struct pipe *pp)
{
    int moved = 0;
    struct client *cl = pp->cl;
    if (!SSL_is_init_finished(cl->ssl) && !pp->cl_failed) {
        int r = SSL_do_handshake(cl->ssl);
        if (r != 1) {
            int e = SSL_get_error(cl->ssl, r);
            if (e != SSL_ERROR_WANT_READ)
                pp->cl_failed = 1;
        }
    }
    size_t n = BIO_ctrl_pending(cl->wbio);
    if (n > 0 && pp->srv_rc >= 0) {
        if (pp->piece && n > pp->piece)
            n = pp->piece;
        char *tmp = malloc(n);
        int got = BIO_read(cl->wbio, tmp, (int)n);
        assert_true(got > 0);
        pp->srv_rc = tls_conn_feed(pp->srv, tmp, (size_t)got, &pp->plain, &pp->net);
        free(tmp);
        moved = 1;
        /* room left in plain_out means nothing usable waits inside (callers
         * loop on has_buffered) */
        if (pp->srv_rc == 0 && pp->plain.len < pp->plain.max)
            assert_false(tls_conn_has_buffered(pp->srv));
    } else if (tls_conn_net_pending(pp->srv) > 0 && pp->net.len == 0 && pp->srv_rc >= 0) {
        pp->srv_rc = tls_conn_feed(pp->srv, NULL, 0, &pp->plain, &pp->net);
        moved = 1;
    }
    if (pp->net.len > 0) {
        assert_int_equal(BIO_write(cl->rbio, pp->net.data, (int)pp->net.len), (int)pp->net.len);
        buf_reset(&pp->net);
        moved = 1;
    }
    return moved;
}

static void pump(struct pipe *pp)
{
    for (long i = 0; i < 100000000 && pump_once(pp); i++)
        ;
}

static void handshake(struct pipe *pp)
{
    pump(pp);
    assert_int_equal(pp->srv_rc, 0);
    assert_false(pp->cl_failed);
    assert_true(SSL_is_init_finished(pp->cl->ssl));
    assert_true(tls_conn_handshake_done(pp->srv));
    assert_int_equal(SSL_get_verify_result(pp->cl->ssl), X509_V_OK);
}

static void fill_pattern(char *d, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        d[i] = (char)(seed >> 16);
    }
}

/* ---- tests ------------------------------------------------------------------ */

static void test_handshake_tls13_alpn_http11(void **state)
{
    struct fixture *fx = *state;
    struct client cl;
    client_init(&cl, fx, NULL);
    struct tls_conn *srv = tls_conn_new(fx->ctx);
    assert_non_null(srv);
    assert_false(tls_conn_handshake_done(srv));
    assert_string_equal(tls_conn_version(srv), "");
    struct pipe pp;
    pipe_init(&pp, &cl, srv, 64 * 1024, 64 * 1024);
    handshake(&pp);
    assert_string_equal(tls_conn_version(srv), "TLSv1.3");
    assert_string_equal(tls_conn_alpn(srv), "http/1.1");
    const unsigned char *p;
    unsigned n;
    SSL_get0_alpn_selected(cl.ssl, &p, &n);
    assert_int_equal(n, 8);
    assert_memory_equal(p, "http/1.1", 8);
    assert_string_equal(tls_conn_error(srv), "");
    pipe_free(&pp);
    tls_conn_free(srv);
    client_free(&cl);
}

static void test_handshake_tls12_aead_cipher(void **state)
{
    struct fixture *fx = *state;
    struct client cl;
    struct client_opts o = {
        .max_version = TLS1_2_VERSION, .alpn = ALPN_H2_H11, .alpn_len = sizeof(ALPN_H2_H11) - 1};
    client_init(&cl, fx, &o);
    struct tls_conn *srv = tls_conn_new(fx->ctx);
    struct pipe pp;
    pipe_init(&pp, &cl, srv, 64 * 1024, 64 * 1024);
    handshake(&pp);
    assert_string_equal(tls_conn_version(srv), "TLSv1.2");
    const char *cipher = SSL_get_cipher_name(cl.ssl);
    assert_non_null(strstr(cipher, "ECDHE-ECDSA"));
    assert_true(strstr(cipher, "GCM") || strstr(cipher, "CHACHA20"));
    pipe_free(&pp);
    tls_conn_free(srv);
    client_free(&cl);
}

static void test_handshake_without_alpn_is_fine(void **state)
{
    struct fixture *fx = *state;
    struct client cl;
    struct client_opts o = {0};
    client_init(&cl, fx, &o);
    struct tls_conn *srv = tls_conn_new(fx->ctx);
    struct pipe pp;
    pipe_init(&pp, &cl, srv, 64 * 1024, 64 * 1024);
    handshake(&pp);
    assert_null(tls_conn_alpn(srv));
    pipe_free(&pp);
    tls_conn_free(srv);
    client_free(&cl);
}

static void expect_handshake_refused(struct fixture *fx, const struct client_opts *o)
{
    struct client cl;
    client_init(&cl, fx, o);
    struct tls_conn *srv = tls_conn_new(fx->ctx);
    struct pipe pp;
    pipe_init(&pp, &cl, srv, 64 * 1024, 64 * 1024);
    pump(&pp);
    assert_int_equal(pp.srv_rc, -EPROTO);
    assert_false(tls_conn_handshake_done(srv));
    assert_true(strlen(tls_conn_error(srv)) > 0);
    /* the client got an alert and failed too */
    pump_once(&pp);
    assert_true(pp.cl_failed);
    buf_t plain, net;
    buf_init(&plain, 100);
    buf_init(&net, 100);
    assert_int_equal(tls_conn_feed(srv, "x", 1, &plain, &net), -EPIPE);
    assert_int_equal(tls_conn_write(srv, "x", 1, &net), -EPIPE);
    pipe_free(&pp);
    tls_conn_free(srv);
    client_free(&cl);
}

static void test_alpn_without_http11_is_refused(void **state)
{
    static const unsigned char h2[] = "\x02h2";
    struct client_opts o = {.alpn = h2, .alpn_len = 3};
    expect_handshake_refused(*state, &o);
}

static void test_tls11_client_is_refused(void **state)
{
    struct client_opts o = {.max_version = TLS1_1_VERSION, .seclevel0 = 1};
    expect_handshake_refused(*state, &o);
}

static void test_tls12_cbc_only_client_is_refused(void **state)
{
    struct client_opts o = {.max_version = TLS1_2_VERSION,
                            .ciphers = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"};
    expect_handshake_refused(*state, &o);
}

/* 1 MiB up (fed in odd-sized pieces) and 1 MiB down, byte-exact. */
static void round_trip(struct fixture *fx, size_t piece, size_t net_max)
{
    struct client cl;
    client_init(&cl, fx, NULL);
    struct tls_conn *srv = tls_conn_new(fx->ctx);
    struct pipe pp;
    pipe_init(&pp, &cl, srv, 2 * MIB, net_max);
    handshake(&pp);

    char *up = malloc(MIB), *down = malloc(MIB), *got = malloc(MIB);
    fill_pattern(up, MIB, 1);
    fill_pattern(down, MIB, 2);

    /* client -> server */
    size_t off = 0;
    while (off < MIB) {
        size_t w = 0;
        assert_int_equal(SSL_write_ex(cl.ssl, up + off, MIB - off, &w), 1);
        off += w;
    }
    pp.piece = piece;
    pump(&pp);
    assert_int_equal(pp.srv_rc, 0);
    assert_int_equal(pp.plain.len, MIB);
    assert_memory_equal(pp.plain.data, up, MIB);

    /* server -> client, through a net_out of net_max bytes */
    size_t sent = 0, recvd = 0;
    while (recvd < MIB) {
        if (sent < MIB) {
            ssize_t w = tls_conn_write(srv, down + sent, MIB - sent, &pp.net);
            assert_true(w >= 0);
            assert_true(pp.net.len <= net_max);
            sent += (size_t)w;
        }
        pump(&pp);
        size_t r = 0;
        while (SSL_read_ex(cl.ssl, got + recvd, MIB - recvd, &r) == 1)
            recvd += r;
        assert_int_equal(SSL_get_error(cl.ssl, 0), SSL_ERROR_WANT_READ);
    }
    assert_int_equal(sent, MIB);
    assert_memory_equal(got, down, MIB);
    free(up);
    free(down);
    free(got);
    pipe_free(&pp);
    tls_conn_free(srv);
    client_free(&cl);
}

static void test_round_trip_1mib_whole(void **state)
{
    round_trip(*state, 0, 4 * MIB);
}

static void test_round_trip_1mib_odd_pieces_small_net_out(void **state)
{
    round_trip(*state, 977, 3000);
}

static void test_round_trip_1mib_one_byte_pieces(void **state)
{
    round_trip(*state, 1, 64 * 1024);
}

/* plain_out smaller than what arrives: the rest waits inside until drained. */
static void test_plain_out_backpressure(void **state)
{
    struct fixture *fx = *state;
    struct client cl;
    client_init(&cl, fx, NULL);
    struct tls_conn *srv = tls_conn_new(fx->ctx);
    struct pipe pp;
    pipe_init(&pp, &cl, srv, 1000, 64 * 1024);
    handshake(&pp);
    size_t total = 100000;
    char *up = malloc(total);
    fill_pattern(up, total, 3);
    size_t w;
    assert_int_equal(SSL_write_ex(cl.ssl, up, total, &w), 1);
    assert_int_equal(w, total);
    pump(&pp);
    assert_int_equal(pp.plain.len, 1000);
    assert_true(tls_conn_has_buffered(srv));
    buf_t all;
    buf_init(&all, total);
    for (int guard = 0; guard < 1000; guard++) {
        assert_int_equal(buf_append(&all, pp.plain.data, pp.plain.len), 0);
        buf_reset(&pp.plain);
        if (!tls_conn_has_buffered(srv))
            break;
        assert_int_equal(tls_conn_feed(srv, NULL, 0, &pp.plain, &pp.net), 0);
        assert_true(pp.plain.len <= 1000);
    }
    assert_int_equal(all.len, total);
    assert_memory_equal(all.data, up, total);
    free(up);
    buf_free(&all);
    pipe_free(&pp);
    tls_conn_free(srv);
    client_free(&cl);
}

/* The connection code loops "feed(NULL, 0) while has_buffered": a record
 * that has only partly arrived must not count as buffered, or it would spin. */
static void test_partial_record_is_not_reported_as_buffered(void **state)
{
    struct fixture *fx = *state;
    struct client cl;
    client_init(&cl, fx, NULL);
    struct tls_conn *srv = tls_conn_new(fx->ctx);
    struct pipe pp;
    pipe_init(&pp, &cl, srv, 4096, 64 * 1024);
    handshake(&pp);
    size_t w;
    assert_int_equal(SSL_write_ex(cl.ssl, "0123456789", 10, &w), 1);
    char rec[256];
    int n = BIO_read(cl.wbio, rec, sizeof(rec));
    assert_true(n > 10);
    assert_int_equal(tls_conn_feed(srv, rec, 3, &pp.plain, &pp.net), 0);
    assert_false(tls_conn_has_buffered(srv));
    assert_int_equal(tls_conn_feed(srv, rec + 3, 8, &pp.plain, &pp.net), 0);
    assert_false(tls_conn_has_buffered(srv));
    assert_int_equal(pp.plain.len, 0);
    assert_int_equal(tls_conn_feed(srv, rec + 11, (size_t)n - 11, &pp.plain, &pp.net), 0);
    assert_false(tls_conn_has_buffered(srv));
    assert_int_equal(pp.plain.len, 10);
    pipe_free(&pp);
    tls_conn_free(srv);
    client_free(&cl);
}

static void test_handshake_through_tiny_net_out(void **state)
{
    struct fixture *fx = *state;
    struct client cl;
    client_init(&cl, fx, NULL);
    struct tls_conn *srv = tls_conn_new(fx->ctx);
    struct pipe pp;
    pipe_init(&pp, &cl, srv, 1000, 7);
    handshake(&pp);
    assert_int_equal(tls_conn_net_pending(srv), 0);
    pipe_free(&pp);
    tls_conn_free(srv);
    client_free(&cl);
}

static void test_garbage_client_hello_is_an_error(void **state)
{
    struct fixture *fx = *state;
    static const char *garbage[] = {
        "\x16\x03\x01\x00\x05hello",                    /* handshake record, junk body */
        "\x16\x03\x01\xff\xff",                         /* oversized record length */
        "\x17\x03\x03\x00\x10xxxxxxxxxxxxxxxx",         /* app data before handshake */
        "\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10", /* SSLv2-style hello */
        "\x00\x00\x00\x00\x00\x00\x00\x00",
    };
    static const size_t glen[] = {10, 5, 21, 11, 8};
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        struct tls_conn *srv = tls_conn_new(fx->ctx);
        buf_t plain, net;
        buf_init(&plain, 4096);
        buf_init(&net, 4096);
        int rc = tls_conn_feed(srv, garbage[i], glen[i], &plain, &net);
        if (rc == 0) { /* the record may still be incomplete: end it with junk */
            char junk[256];
            memset(junk, 0xff, sizeof(junk));
            rc = tls_conn_feed(srv, junk, sizeof(junk), &plain, &net);
        }
        if (rc != -EPROTO)
            fail_msg("garbage %zu: rc %d", i, rc);
        assert_true(strlen(tls_conn_error(srv)) > 0);
        assert_int_equal(plain.len, 0);
        assert_int_equal(tls_conn_feed(srv, "x", 1, &plain, &net), -EPIPE);
        assert_int_equal(tls_conn_shutdown(srv, &net), -EPIPE);
        buf_free(&plain);
        buf_free(&net);
        tls_conn_free(srv);
    }
}

static void test_plain_http_on_tls_port_is_recognised(void **state)
{
    struct fixture *fx = *state;
    struct tls_conn *srv = tls_conn_new(fx->ctx);
    buf_t plain, net;
    buf_init(&plain, 4096);
    buf_init(&net, 4096);
    const char *req = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_int_equal(tls_conn_feed(srv, req, strlen(req), &plain, &net), -EPROTO);
    assert_true(tls_conn_plain_http(srv));
    buf_free(&plain);
    buf_free(&net);
    tls_conn_free(srv);
}

static void test_client_close_notify_reaches_server(void **state)
{
    struct fixture *fx = *state;
    struct client cl;
    client_init(&cl, fx, NULL);
    struct tls_conn *srv = tls_conn_new(fx->ctx);
    struct pipe pp;
    pipe_init(&pp, &cl, srv, 4096, 64 * 1024);
    handshake(&pp);
    size_t w;
    assert_int_equal(SSL_write_ex(cl.ssl, "bye", 3, &w), 1);
    assert_int_equal(SSL_shutdown(cl.ssl), 0);
    pump(&pp);
    assert_int_equal(pp.srv_rc, TLS_CLOSED);
    assert_int_equal(pp.plain.len, 3);
    assert_memory_equal(pp.plain.data, "bye", 3);
    /* our answer completes the shutdown */
    assert_int_equal(tls_conn_shutdown(srv, &pp.net), 1);
    assert_true(pp.net.len > 0);
    pump(&pp);
    assert_int_equal(SSL_shutdown(cl.ssl), 1);
    assert_int_equal(tls_conn_write(srv, "x", 1, &pp.net), -EPIPE);
    pipe_free(&pp);
    tls_conn_free(srv);
    client_free(&cl);
}

static void test_server_shutdown_reaches_client(void **state)
{
    struct fixture *fx = *state;
    struct client cl;
    client_init(&cl, fx, NULL);
    struct tls_conn *srv = tls_conn_new(fx->ctx);
    struct pipe pp;
    pipe_init(&pp, &cl, srv, 4096, 64 * 1024);
    handshake(&pp);
    assert_int_equal(tls_conn_write(srv, "last", 4, &pp.net), 4);
    assert_int_equal(tls_conn_shutdown(srv, &pp.net), 0);
    pump(&pp);
    char b[16];
    size_t r = 0;
    assert_int_equal(SSL_read_ex(cl.ssl, b, sizeof(b), &r), 1);
    assert_int_equal(r, 4);
    assert_memory_equal(b, "last", 4);
    assert_int_equal(SSL_read_ex(cl.ssl, b, sizeof(b), &r), 0);
    assert_int_equal(SSL_get_error(cl.ssl, 0), SSL_ERROR_ZERO_RETURN);
    pipe_free(&pp);
    tls_conn_free(srv);
    client_free(&cl);
}

static void test_shutdown_and_write_before_handshake(void **state)
{
    struct fixture *fx = *state;
    struct tls_conn *srv = tls_conn_new(fx->ctx);
    buf_t net;
    buf_init(&net, 4096);
    assert_int_equal(tls_conn_write(srv, "x", 1, &net), 0);
    assert_int_equal(tls_conn_shutdown(srv, &net), 0);
    assert_int_equal(net.len, 0);
    buf_free(&net);
    tls_conn_free(srv);
    tls_conn_free(NULL);
}

static void test_ctx_freed_while_connection_lives(void **state)
{
    struct fixture *fx = *state;
    char err[256];
    struct tls_ctx *ctx = tls_ctx_new(fx->cert, fx->key, err, sizeof(err));
    assert_non_null(ctx);
    struct tls_conn *srv = tls_conn_new(ctx);
    tls_ctx_free(ctx);
    struct client cl;
    client_init(&cl, fx, NULL);
    struct pipe pp;
    pipe_init(&pp, &cl, srv, 4096, 64 * 1024);
    handshake(&pp);
    pipe_free(&pp);
    tls_conn_free(srv);
    client_free(&cl);
}

static void test_ctx_errors_name_the_file(void **state)
{
    struct fixture *fx = *state;
    char err[512];
    assert_null(tls_ctx_new("/nonexistent/cert.pem", fx->key, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/cert.pem"));
    assert_null(tls_ctx_new(fx->cert, "/nonexistent/key.pem", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/key.pem"));
    assert_null(tls_ctx_new(fx->cert, fx->other_key, err, sizeof(err)));
    assert_non_null(strstr(err, "does not match"));
    /* a key file given as the certificate */
    assert_null(tls_ctx_new(fx->key, fx->key, err, sizeof(err)));
    assert_non_null(strstr(err, "certificate"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_tls13_alpn_http11),
        cmocka_unit_test(test_handshake_tls12_aead_cipher),
        cmocka_unit_test(test_handshake_without_alpn_is_fine),
        cmocka_unit_test(test_alpn_without_http11_is_refused),
        cmocka_unit_test(test_tls11_client_is_refused),
        cmocka_unit_test(test_tls12_cbc_only_client_is_refused),
        cmocka_unit_test(test_round_trip_1mib_whole),
        cmocka_unit_test(test_round_trip_1mib_odd_pieces_small_net_out),
        cmocka_unit_test(test_round_trip_1mib_one_byte_pieces),
        cmocka_unit_test(test_plain_out_backpressure),
        cmocka_unit_test(test_partial_record_is_not_reported_as_buffered),
        cmocka_unit_test(test_handshake_through_tiny_net_out),
        cmocka_unit_test(test_garbage_client_hello_is_an_error),
        cmocka_unit_test(test_plain_http_on_tls_port_is_recognised),
        cmocka_unit_test(test_client_close_notify_reaches_server),
        cmocka_unit_test(test_server_shutdown_reaches_client),
        cmocka_unit_test(test_shutdown_and_write_before_handshake),
        cmocka_unit_test(test_ctx_freed_while_connection_lives),
        cmocka_unit_test(test_ctx_errors_name_the_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
