/* TLS for the gateway's HTTP connections (OpenSSL, TLS 1.2+), socket-free: the connection
 * layer feeds it the ciphertext it read and sends the ciphertext it produces, so the same
 * libuv stream code carries plain and TLS connections (memory BIOs; no blocking calls).
 *
 *   read path:   bytes from the socket -> gw_tls_feed -> gw_tls_read -> plaintext (HTTP parser)
 *   write path:  plaintext -> gw_tls_write -> gw_tls_take -> bytes for the socket
 * After every feed, also send what gw_tls_take returns (handshake records). */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct gw_tls_ctx;
struct gw_tls;

/* Load a certificate chain and private key (PEM). Errors carry OpenSSL's reason. */
int gw_tls_ctx_new(const char *cert_file, const char *key_file, struct gw_tls_ctx **out,
                   char *errmsg, size_t errlen);
void gw_tls_ctx_free(struct gw_tls_ctx *c);

int gw_tls_new(struct gw_tls_ctx *c, struct gw_tls **out);
void gw_tls_free(struct gw_tls *t);

/* Ciphertext from the peer. 0, or CM_EPROTO (handshake or record error: close). */
int gw_tls_feed(struct gw_tls *t, const void *data, size_t len);
/* Plaintext that the fed records carried: > 0 bytes, 0 = none yet, CM_ECLOSED = the peer sent
 * close_notify, CM_EPROTO = broken stream. */
ssize_t gw_tls_read(struct gw_tls *t, void *buf, size_t cap);
/* Encrypt plaintext (all of it, or an error). Only after the handshake completed. */
int gw_tls_write(struct gw_tls *t, const void *data, size_t len);
/* Queue a close_notify. */
void gw_tls_shutdown(struct gw_tls *t);
/* Ciphertext waiting to be sent. gw_tls_take copies up to cap bytes out and returns how many. */
size_t gw_tls_pending(struct gw_tls *t);
size_t gw_tls_take(struct gw_tls *t, void *buf, size_t cap);
int gw_tls_handshake_done(struct gw_tls *t);
/* Idle (no ciphertext either way): give back the memory BIOs' buffers if they grew large. */
void gw_tls_trim(struct gw_tls *t);

#endif
