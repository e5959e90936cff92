/* Framed RPC connections over libuv TCP, shared by nodes (server and peer client) and gateways.
 *
 * Happy path: cm_rpc_listen / cm_rpc_connect -> on_frame per decoded frame -> cm_rpc_send.
 * Failures: a malformed or oversized frame, a read/write error or EOF closes the connection
 * (logged once). Close: cm_rpc_close (idempotent); handlers.on_close fires exactly once per
 * connection that was handed to the user (after on_connect succeeded / for accepted
 * connections), and the memory is freed right after it returns.
 *
 * All functions run on the connection's loop thread. */
#ifndef CM_RPC_H
#define CM_RPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "frame.h"

struct cm_auth;
struct cm_rpc_conn;
struct cm_rpc_server;

struct cm_rpc_handlers {
    /* A decoded frame. env and payload are borrowed for the call; take cm_buf_ref on
     * payload->buf to keep the bytes. The handler may call cm_rpc_close(c). */
    void (*on_frame)(struct cm_rpc_conn *c, const Hw__Envelope *env,
                     const struct cm_slice *payload);
    /* The write queue fell below the low-water mark after having been above the high one. */
    void (*on_drain)(struct cm_rpc_conn *c);
    /* Last call for this connection; status 0 = closed by cm_rpc_close, else why. */
    void (*on_close)(struct cm_rpc_conn *c, int status);
};

/* Cluster authentication: auth (borrowed, outlives the server / connection) holds the secret;
 * when cm_auth_enabled(auth) every connection first runs the handshake of auth.h, and no
 * frame is read, nor the connection handed to the user, before the peer proved the secret.
 * NULL or an insecure auth: no handshake (NULL also counts no refusals). */

/* Accepting side. on_accept gets each new authenticated connection (already reading) and must
 * set its handlers via cm_rpc_set_handlers before returning. */
typedef void (*cm_rpc_accept_cb)(struct cm_rpc_server *s, struct cm_rpc_conn *c);
int cm_rpc_listen(uv_loop_t *loop, const char *hostport, struct cm_auth *auth,
                  cm_rpc_accept_cb on_accept, void *data, struct cm_rpc_server **out, char *errmsg,
                  size_t errlen);
/* Listener limits: connections (handshaking ones included; 0 = no limit) and the idle
 * timeout of an open connection with nothing queued and no request in flight (0 = none). */
struct cm_rpc_limits {
    unsigned max_conns;
    unsigned idle_ms;
    unsigned handshake_ms; /* deadline of the cluster handshake; 0 = CM_AUTH_TIMEOUT_MS */
};
void cm_rpc_server_set_limits(struct cm_rpc_server *s, const struct cm_rpc_limits *lim);
void *cm_rpc_server_data(struct cm_rpc_server *s);
/* Stop listening; close all connections it accepted that are still open. */
void cm_rpc_server_close(struct cm_rpc_server *s);

/* Connecting side: resolves host:port (async), connects with a timeout, then authenticates
 * (deadline CM_AUTH_TIMEOUT_MS). on_connect fires exactly once later: status 0 with a
 * connection (handlers set at creation) or status < 0 and NULL (CM_EAUTH: the handshake
 * failed; on_close never fires then). */
typedef void (*cm_rpc_connect_cb)(struct cm_rpc_conn *c, int status, void *arg);
int cm_rpc_connect(uv_loop_t *loop, const char *hostport, struct cm_auth *auth, unsigned timeout_ms,
                   const struct cm_rpc_handlers *h, cm_rpc_connect_cb on_connect, void *arg);

void cm_rpc_set_handlers(struct cm_rpc_conn *c, const struct cm_rpc_handlers *h);
void cm_rpc_set_data(struct cm_rpc_conn *c, void *data);
void *cm_rpc_data(struct cm_rpc_conn *c);
uint64_t cm_rpc_id(struct cm_rpc_conn *c);      /* for log lines: conn=N */
const char *cm_rpc_peer(struct cm_rpc_conn *c); /* "host:port" text */
int cm_rpc_is_closing(struct cm_rpc_conn *c);

/* Queue one frame: envelope + payload slices (refs are added, the caller keeps its own).
 * Returns 0 or an error (the connection is then closing). */
int cm_rpc_send(struct cm_rpc_conn *c, const Hw__Envelope *env, const struct cm_slice *payload,
                size_t npayload);
/* Convenience: answer a request with an ERROR frame. */
int cm_rpc_send_error(struct cm_rpc_conn *c, uint64_t req_id, uint32_t shard, Hw__Code code,
                      const char *message);
size_t cm_rpc_write_queue(struct cm_rpc_conn *c); /* bytes queued, not yet written */
int cm_rpc_over_high_water(struct cm_rpc_conn *c);
void cm_rpc_pause(struct cm_rpc_conn *c);  /* stop reading */
void cm_rpc_resume(struct cm_rpc_conn *c); /* start reading again */
void cm_rpc_close(struct cm_rpc_conn *c);
/* "ip:port" of a connected TCP handle's peer ("?:0" when unknown), cut to cap - 1 bytes. */
void cm_tcp_peer_name(uv_tcp_t *tcp, char *out, size_t cap);

#define CM_RPC_HIGH_WATER (8u * 1024u * 1024u)
#define CM_RPC_LOW_WATER (2u * 1024u * 1024u)
#define CM_RPC_QUEUE_MAX (64u * 1024u * 1024u) /* a connection's write queue cap */
#define CM_RPC_MAX_CONNS 1024u                 /* default listener connection limit */

#endif
