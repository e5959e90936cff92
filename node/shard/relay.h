/* The inbound half of an authenticated Raft connection once the handshake is done: raft reads
 * its end of a local socket pair, and every byte from the peer passes nd_raft_guard before it is
 * written there (raft never writes on an inbound connection, so this is one-way).
 *
 * Limits: reading the peer stops while more than ND_RELAY_HIGH_WATER bytes wait for raft
 * (resumes below ND_RELAY_LOW_WATER); nothing from the peer for idle_ms closes it; a message
 * the guard refuses closes it. Both ends close together; refusals go to cm_auth_refuse. */
#ifndef ND_SHARD_RELAY_H
#define ND_SHARD_RELAY_H

#include <stddef.h>
#include <uv.h>

#define ND_RELAY_HIGH_WATER (4u * 1024u * 1024u)
#define ND_RELAY_LOW_WATER (1u * 1024u * 1024u)
#define ND_RELAY_READ_CHUNK (64u * 1024u)

struct cm_auth;
struct nd_relay;

/* The relays of one transport: when the last one has closed after nd_relays_close_all,
 * on_empty runs. */
struct nd_relays {
    struct nd_relay *head;
    unsigned n;
    int closing;
    struct cm_auth *auth; /* borrowed */
    unsigned idle_ms;
    void (*on_empty)(void *arg);
    void *arg;
};

/* Takes tcp (raft_malloc'd, connected, not reading; freed with raft_free after its close).
 * On 0, *raft_end is raft's end of the pair (raft_malloc'd uv_pipe_t, for raft to uv_close and
 * raft_free). On error tcp is closed and freed here. */
int nd_relay_start(struct nd_relays *set, uv_loop_t *loop, uv_tcp_t *tcp, const char *peer,
                   uv_stream_t **raft_end);
/* Close every relay (transport close); on_empty follows once they are gone. */
void nd_relays_close_all(struct nd_relays *set);

#endif
