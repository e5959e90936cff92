/* TLS over memory BIOs (see tls.h). The SSL object reads ciphertext from `in` (filled by
 * gw_tls_feed) and writes ciphertext to `out` (drained by gw_tls_take). */
#include "http/tls.h"

#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

struct gw_tls_ctx {
    SSL_CTX *ssl;
};

struct gw_tls {
    SSL *ssl;
    BIO *in;  /* ciphertext from the peer */
    BIO *out; /* ciphertext for the peer */
    int failed;
};

static void ssl_errmsg(char *errmsg, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[256];
    ERR_error_string_n(e, reason, sizeof(reason));
    snprintf(errmsg, errlen, "%s: %s", what, e ? reason : "unknown error");
    ERR_clear_error();
}

int gw_tls_ctx_new(const char *cert_file, const char *key_file, struct gw_tls_ctx **out,
                   char *errmsg, size_t errlen)
{
    struct gw_tls_ctx *c = cm_calloc(1, sizeof(*c));
    if (c == NULL)
        return CM_ENOMEM;
    c->ssl = SSL_CTX_new(TLS_server_method());
    if (c->ssl == NULL) {
        ssl_errmsg(errmsg, errlen, "TLS context");
        goto err;
    }
    SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
    /* No TLS 1.3 session tickets: they are records the server sends unasked. An encoder that
     * never reads them (ffmpeg/gnutls ends its last PUT and closes) leaves them unread, its
     * kernel answers with a RST, and the RST destroys request bytes still in flight. */
    SSL_CTX_set_num_tickets(c->ssl, 0);
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_TICKET);
    if (SSL_CTX_use_certificate_chain_file(c->ssl, cert_file) != 1) {
        ssl_errmsg(errmsg, errlen, "TLS certificate");
        goto err;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ssl, key_file, SSL_FILETYPE_PEM) != 1) {
        ssl_errmsg(errmsg, errlen, "TLS private key");
        goto err;
    }
    if (SSL_CTX_check_private_key(c->ssl) != 1) {
        ssl_errmsg(errmsg, errlen, "TLS key does not match the certificate");
        goto err;
    }
    *out = c;
    return 0;
err:
    gw_tls_ctx_free(c);
    return CM_EINVAL;
}

void gw_tls_ctx_free(struct gw_tls_ctx *c)
{
    if (c == NULL)
        return;
    SSL_CTX_free(c->ssl);
    cm_free(c);
}

int gw_tls_new(struct gw_tls_ctx *c, struct gw_tls **out)
{
    struct gw_tls *t = cm_calloc(1, sizeof(*t));
    if (t == NULL)
        return CM_ENOMEM;
    t->ssl = SSL_new(c->ssl);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->in == NULL || t->out == NULL) {
        BIO_free(t->in);
        BIO_free(t->out);
        SSL_free(t->ssl);
        cm_free(t);
        ERR_clear_error();
        return CM_ENOMEM;
    }
    BIO_set_mem_eof_return(t->in, -1);  /* empty = "want more", not EOF */
    SSL_set_bio(t->ssl, t->in, t->out); /* the SSL owns both BIOs now */
    SSL_set_accept_state(t->ssl);
    *out = t;
    return 0;
}

void gw_tls_free(struct gw_tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    cm_free(t);
}

/* Drive the handshake; 0 = done or waiting for bytes, CM_EPROTO = failed. */
static int handshake(struct gw_tls *t)
{
    if (SSL_is_init_finished(t->ssl))
        return 0;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1)
        return 0;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    ERR_clear_error();
    t->failed = 1;
    return CM_EPROTO;
}

int gw_tls_feed(struct gw_tls *t, const void *data, size_t len)
{
    if (t->failed)
        return CM_EPROTO;
    if (len > 0 && BIO_write(t->in, data, (int)len) != (int)len)
        return CM_ENOMEM;
    return handshake(t);
}

ssize_t gw_tls_read(struct gw_tls *t, void *buf, size_t cap)
{
    if (t->failed)
        return CM_EPROTO;
    if (!SSL_is_init_finished(t->ssl) && handshake(t) != 0)
        return CM_EPROTO;
    if (!SSL_is_init_finished(t->ssl))
        return 0;
    int r = SSL_read(t->ssl, buf, cap > 0x7fffffff ? 0x7fffffff : (int)cap);
    if (r > 0)
        return r;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN)
        return CM_ECLOSED;
    t->failed = 1;
    return CM_EPROTO;
}

int gw_tls_write(struct gw_tls *t, const void *data, size_t len)
{
    const char *p = data;
    if (t->failed || !SSL_is_init_finished(t->ssl))
        return CM_EPROTO;
    while (len > 0) {
        int n = len > (1u << 30) ? (1 << 30) : (int)len;
        int r = SSL_write(t->ssl, p, n);
        if (r <= 0) {
            ERR_clear_error();
            t->failed = 1;
            return CM_EPROTO;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

void gw_tls_shutdown(struct gw_tls *t)
{
    if (!t->failed && SSL_is_init_finished(t->ssl))
        SSL_shutdown(t->ssl);
    ERR_clear_error();
}

size_t gw_tls_pending(struct gw_tls *t)
{
    return BIO_ctrl_pending(t->out);
}

size_t gw_tls_take(struct gw_tls *t, void *buf, size_t cap)
{
    int n = BIO_read(t->out, buf, cap > 0x7fffffff ? 0x7fffffff : (int)cap);
    return n > 0 ? (size_t)n : 0;
}

int gw_tls_handshake_done(struct gw_tls *t)
{
    return SSL_is_init_finished(t->ssl);
}

static size_t bio_cap(BIO *b)
{
    BUF_MEM *m = NULL;
    BIO_get_mem_ptr(b, &m);
    return m != NULL ? m->max : 0;
}

#define TRIM_ABOVE (16u * 1024u)

void gw_tls_trim(struct gw_tls *t)
{
    if (t->failed || BIO_ctrl_pending(t->in) > 0 || BIO_ctrl_pending(t->out) > 0 ||
        (bio_cap(t->in) <= TRIM_ABOVE && bio_cap(t->out) <= TRIM_ABOVE))
        return;
    BIO *in = BIO_new(BIO_s_mem());
    BIO *out = BIO_new(BIO_s_mem());
    if (in == NULL || out == NULL) { /* keep the old ones */
        BIO_free(in);
        BIO_free(out);
        ERR_clear_error();
        return;
    }
    BIO_set_mem_eof_return(in, -1);
    SSL_set_bio(t->ssl, in, out); /* frees the old pair */
    t->in = in;
    t->out = out;
}
