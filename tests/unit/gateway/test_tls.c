/* The memory-BIO TLS server against an OpenSSL client, both in memory: handshake, data both
 * ways in odd fragments, TLS 1.1 refused, garbage refused, close_notify seen. The test CA-less
 * certificate is made with the openssl command at test time. */
#include <criterion/criterion.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "http/tls.h"

static char dir[64];
static char cert[128], key[128];

static void setup(void)
{
    char cmd[512];
    strcpy(dir, "/tmp/hw-tls-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
             "-subj /CN=localhost -keyout %s -out %s 2>/dev/null",
             key, cert);
    cr_assert_eq(system(cmd), 0);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(tls, .init = setup, .fini = teardown);

struct client {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *in, *out;
};

static void client_new(struct client *c, int max_version)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(c->ctx, 0);
    if (max_version)
        SSL_CTX_set_max_proto_version(c->ctx, max_version);
    c->ssl = SSL_new(c->ctx);
    c->in = BIO_new(BIO_s_mem());
    c->out = BIO_new(BIO_s_mem());
    SSL_set_bio(c->ssl, c->in, c->out);
    SSL_set_connect_state(c->ssl);
}

static void client_free(struct client *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
}

/* Move bytes both ways in small fragments until neither side has anything to say. */
static int pump(struct client *c, struct gw_tls *s)
{
    char buf[7];
    for (int round = 0; round < 10000; round++) {
        int moved = 0;
        SSL_do_handshake(c->ssl);
        int n;
        while ((n = BIO_read(c->out, buf, sizeof(buf))) > 0) {
            if (gw_tls_feed(s, buf, (size_t)n) != 0)
                return CM_EPROTO;
            moved = 1;
        }
        size_t m;
        while ((m = gw_tls_take(s, buf, sizeof(buf))) > 0) {
            BIO_write(c->in, buf, (int)m);
            moved = 1;
        }
        if (!moved)
            return 0;
    }
    return 0;
}

Test(tls, handshake_and_data_both_ways)
{
    struct gw_tls_ctx *ctx;
    struct gw_tls *s;
    struct client c;
    char err[256], buf[4096];
    cr_assert_eq(gw_tls_ctx_new(cert, key, &ctx, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_tls_new(ctx, &s), 0);
    client_new(&c, 0);
    cr_assert_eq(pump(&c, s), 0);
    cr_assert(gw_tls_handshake_done(s));
    cr_assert(SSL_is_init_finished(c.ssl));
    cr_assert_eq(SSL_write(c.ssl, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    cr_assert_eq(pump(&c, s), 0);
    ssize_t n = gw_tls_read(s, buf, sizeof(buf));
    cr_assert_eq(n, 18);
    cr_assert(memcmp(buf, "GET / HTTP/1.1\r\n\r\n", 18) == 0);
    cr_assert_eq(gw_tls_read(s, buf, sizeof(buf)), 0, "nothing more yet");
    static char big[100000];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(gw_tls_write(s, big, sizeof(big)), 0);
    cr_assert_eq(pump(&c, s), 0);
    size_t got = 0;
    int r;
    while ((r = SSL_read(c.ssl, buf, sizeof(buf))) > 0)
        got += (size_t)r;
    cr_assert_eq(got, sizeof(big));
    SSL_shutdown(c.ssl);
    pump(&c, s);
    cr_assert_eq(gw_tls_read(s, buf, sizeof(buf)), CM_ECLOSED);
    client_free(&c);
    gw_tls_free(s);
    gw_tls_ctx_free(ctx);
}

/* An idle connection may give back its grown buffers; the session goes on unchanged. */
Test(tls, trim_when_idle_keeps_the_session)
{
    struct gw_tls_ctx *ctx;
    struct gw_tls *s;
    struct client c;
    char err[256], buf[4096];
    cr_assert_eq(gw_tls_ctx_new(cert, key, &ctx, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_tls_new(ctx, &s), 0);
    client_new(&c, 0);
    gw_tls_trim(s); /* before the handshake: nothing to give back */
    cr_assert_eq(pump(&c, s), 0);
    cr_assert(gw_tls_handshake_done(s));
    static char big[100000];
    for (int round = 0; round < 3; round++) {
        memset(big, 'a' + round, sizeof(big));
        cr_assert_eq(gw_tls_write(s, big, sizeof(big)), 0); /* grows the outgoing BIO */
        gw_tls_trim(s);                                     /* ciphertext pending: must keep it */
        cr_assert_gt(gw_tls_pending(s), sizeof(big));
        cr_assert_eq(pump(&c, s), 0);
        gw_tls_trim(s); /* idle now */
        size_t got = 0;
        int r;
        while ((r = SSL_read(c.ssl, buf, sizeof(buf))) > 0) {
            cr_assert_eq(buf[0], 'a' + round);
            got += (size_t)r;
        }
        cr_assert_eq(got, sizeof(big), "round %d", round);
        cr_assert_eq(SSL_write(c.ssl, "ping", 4), 4);
        cr_assert_eq(pump(&c, s), 0);
        cr_assert_eq(gw_tls_read(s, buf, sizeof(buf)), 4);
        cr_assert(memcmp(buf, "ping", 4) == 0);
    }
    client_free(&c);
    gw_tls_free(s);
    gw_tls_ctx_free(ctx);
}

Test(tls, old_versions_and_garbage_are_refused)
{
    struct gw_tls_ctx *ctx;
    struct gw_tls *s;
    struct client c;
    char err[256], buf[64];
    cr_assert_eq(gw_tls_ctx_new(cert, key, &ctx, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_tls_new(ctx, &s), 0);
    client_new(&c, TLS1_1_VERSION);
    cr_assert_eq(pump(&c, s), CM_EPROTO);
    client_free(&c);
    gw_tls_free(s);
    cr_assert_eq(gw_tls_new(ctx, &s), 0);
    cr_assert_eq(gw_tls_feed(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27), CM_EPROTO);
    cr_assert_eq(gw_tls_read(s, buf, sizeof(buf)), CM_EPROTO);
    gw_tls_free(s);
    gw_tls_ctx_free(ctx);
    cr_assert_eq(gw_tls_ctx_new("/nonexistent.pem", key, &ctx, err, sizeof(err)), CM_EINVAL);
    cr_assert(strstr(err, "certificate") != NULL, "%s", err);
    ERR_clear_error();
}
