/* Authenticated Raft transport: a struct raft_uv_transport (raft/uv.h) over TCP whose every
 * connection, inbound and outbound, first runs the cluster handshake of common/auth.h on
 * channel RAFT with this shard's group id. Only then does raft get a stream: outbound, the TCP
 * stream itself (raft only writes there); inbound, its end of a local socket pair fed by a
 * relay (relay.h) that passes only bytes nd_raft_guard accepts (raft_guard.h), under an idle
 * timeout and a buffer cap.
 *
 * Inbound: the peer must prove the secret, claim role node and a server id that is a member
 * of the group at the address it claims (cfg.is_member); the address is at most
 * CM_AUTH_ADDR_MAX bytes and is checked before anything is allocated for it. Outbound: the
 * accepting side must prove the secret and answer as the server id raft asked for.
 * Limits: at most cfg.max_pending handshakes in progress and cfg.max_conns authenticated
 * inbound connections (more are refused), each handshake under a deadline of cfg.timeout_ms.
 * Refusals are counted and logged through cm_auth_refuse.
 *
 * This is the seam multi-shard work multiplexes: the handshake carries the group id (0 today),
 * and a connection for another group is refused. */
#ifndef ND_SHARD_TRANSPORT_H
#define ND_SHARD_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>
#include <stdint.h>
#include <uv.h>

struct cm_auth;

struct nd_transport_cfg {
    struct cm_auth *auth; /* borrowed; must be enabled (a secret) and outlive the transport */
    uint32_t group;       /* shard / raft group id */
    unsigned max_pending; /* handshakes in progress at once, both directions */
    unsigned max_conns;   /* authenticated inbound connections at once */
    unsigned timeout_ms;  /* deadline of one handshake */
    unsigned idle_ms;     /* an inbound connection silent this long is closed */
    const char *bind;     /* IP:PORT to listen on instead of raft's address (NULL: none) */
    /* Is server id a member of the group at address? Called on the loop thread. */
    int (*is_member)(void *arg, raft_id id, const char *address);
    void *arg;
};

/* Fill t (caller storage) with the transport's methods. 0 or CM_ENOMEM. */
int nd_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                      const struct nd_transport_cfg *cfg);
/* Free what nd_transport_init allocated; only after raft closed the transport (its close
 * callback ran, i.e. after raft_close's callback) or if raft never used it. */
void nd_transport_close(struct raft_uv_transport *t);

#endif
