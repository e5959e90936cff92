/* One hosted shard replica: its raft, raft_io and transport, FSM and directory. A node
 * hosts a table of them (host/host.h).
 *
 * Lifecycle: nd_shard_init (raft io + transport + raft_init; nothing runs yet) ->
 * nd_shard_bootstrap on a first start -> nd_shard_start -> ... -> nd_shard_close (async:
 * on_closed fires once, later, after raft and its io closed). A shard whose raft is run by
 * someone else (raft_fixture in unit tests) is set up with nd_shard_attach instead. */
#ifndef ND_SHARD_SHARD_H
#define ND_SHARD_SHARD_H

#include <raft.h>
#include <raft/uv.h>
#include <stdint.h>
#include <uv.h>

#include "shard/fsm.h"
#include "store/store.h"

struct nd_shard_cfg {
    uint32_t id;                 /* shard id */
    uint32_t self_id;            /* this node's raft server id */
    const char *raft_listen;     /* this node's raft address */
    const char *data_dir;        /* the node's data directory; raft lives in raft/shard-<id> */
    unsigned snapshot_threshold; /* raft entries between snapshots */
    const char *raft_bind;       /* IP:PORT to bind instead of raft_listen (NULL/"": none) */
    /* The authenticated transport (transport.h); auth NULL or not enabled: raft's stock TCP
     * transport (--insecure). */
    struct cm_auth *auth;
    unsigned raft_max_conns, raft_idle_ms;
    /* Raft timing (bounded by the node's options): election timeout T, which raft randomises
     * in [T, 2T]; heartbeat and tick H, below T / 2. */
    unsigned election_timeout_ms, heartbeat_ms;
    int (*is_member)(void *arg, raft_id id, const char *address);
    void *member_arg;
};

struct nd_watch;

struct nd_shard {
    uint32_t id;
    struct raft *raft; /* &own_raft, or the raft that nd_shard_attach was given */
    struct nd_fsm fsm;
    struct nd_store *store; /* borrowed */
    int inited, started, closed, bootstrapped;
    void (*on_closed)(struct nd_shard *sh);
    void *data;             /* the owner's */
    struct nd_watch *watch; /* the shard's commit watch (ops/watch.h), NULL: none */
    struct raft own_raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    int secure;                    /* transport is ours (transport.h), not raft_uv_tcp */
    struct raft_transfer transfer; /* a step-down in progress (nd_shard_step_down) */
    int transferring;
    char dir[4096];
};

/* A leader that cannot write (its disk is full: raft log or store) hands leadership to the
 * most up-to-date voter; no-op when not leader or a hand-over is already under way. */
void nd_shard_step_down(struct nd_shard *sh, const char *why);

/* Blocking (loads the FSM state, creates the directory): call before the loop runs. */
int nd_shard_init(struct nd_shard *sh, uv_loop_t *loop, struct nd_store *store,
                  const struct nd_shard_cfg *cfg, char *errmsg, size_t errlen);
/* Tests: a shard over a raft someone else runs; its FSM (sh->fsm.raft) is theirs to hand to
 * that raft. Call nd_shard_attach_raft once the raft exists. */
int nd_shard_attach(struct nd_shard *sh, struct nd_store *store, uint32_t id);
void nd_shard_attach_raft(struct nd_shard *sh, struct raft *r);
/* First start: bootstrap the group with these voters (RAFT_CANTBOOTSTRAP is fine) and
 * remember that it was. */
int nd_shard_bootstrap(struct nd_shard *sh, const struct raft_configuration *conf);
int nd_shard_start(struct nd_shard *sh);
void nd_shard_close(struct nd_shard *sh, void (*on_closed)(struct nd_shard *sh));

int nd_shard_is_leader(const struct nd_shard *sh);
/* Leader as this replica sees it (0 = unknown). */
uint32_t nd_shard_leader(const struct nd_shard *sh);
uint64_t nd_shard_applied(const struct nd_shard *sh);
const char *nd_shard_role(const struct nd_shard *sh); /* "leader", "follower", ... */
/* Encode e and propose it: 0 (cb fires once, later) or a raft error (cb never fires). */
int nd_shard_apply(struct nd_shard *sh, const Hw__RaftEntry *e, struct raft_apply *req,
                   raft_apply_cb cb);

#endif
