/* The node's RPC server, handed a dispatch table: accept, HELLO handshake, then every
 * request frame goes to the handler its type names (node/ops registers them, node.c builds
 * the table). Knows nothing of shards or raft: the hooks answer for the node. */
#ifndef ND_RPC_SERVER_H
#define ND_RPC_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rpc/req.h"

typedef void (*nd_rpc_handler)(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                               const struct cm_slice *payload);

struct nd_rpc_route {
    Hw__MsgType type;
    nd_rpc_handler fn;
    int any_shard; /* accepted for a shard this node does not host (the shard is not its key) */
};

struct nd_rpc_server_cfg {
    uint32_t node_id;
    const char *listen;      /* RPC address, also announced in HELLO_OK */
    const char *raft_listen; /* announced in HELLO_OK */
    const struct nd_rpc_route *routes;
    size_t nroutes;
    void *ctx;                                              /* handed to handlers and hooks */
    int (*hosts_shard)(void *ctx, uint32_t shard);          /* else BAD_REQUEST */
    int (*stopping)(void *ctx);                             /* then UNAVAILABLE */
    void (*on_conn_closed)(void *ctx, struct nd_sconn *sc); /* before its last unref */
    struct cm_auth *auth; /* borrowed: every connection proves the cluster secret first */
    unsigned max_conns;   /* open connections at once (0 = no limit) */
    unsigned idle_ms;     /* close a connection idle this long (0 = never) */
};

struct nd_rpc_server;

/* cfg is borrowed and must outlive the server. */
int nd_rpc_server_start(uv_loop_t *loop, const struct nd_rpc_server_cfg *cfg,
                        struct nd_rpc_server **out, char *errmsg, size_t errlen);
void nd_rpc_server_close(struct nd_rpc_server *s);

#endif
