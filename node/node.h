/* One headwater-node process: store, shard Raft group(s), RPC server, repair and GC.
 *
 * Lifecycle: nd_node_start (open store, FSM, raft io, RPC server; bootstrap the group from
 * --peers on first start, learning peers' raft addresses over RPC) -> loop runs ->
 * nd_node_stop (async: server, timers and calls close, raft closes, in-flight store work
 * drains, then the store closes and the loop has no handles left). */
#ifndef ND_NODE_H
#define ND_NODE_H

#include <raft.h>
#include <raft/uv.h>
#include <stdint.h>
#include <uv.h>

#include "fsm.h"
#include "options.h"
#include "rpc.h"
#include "store.h"

struct nd_upload;
struct nd_call;

struct nd_peer {
    uint32_t id;
    char rpc[ND_ADDR_MAX];
    char raft[ND_ADDR_MAX]; /* learned via HELLO or from the raft configuration */
    struct nd_call *hello;  /* bootstrap discovery in flight */
};

struct nd_node {
    uv_loop_t *loop;
    const struct nd_config *cfg; /* borrowed, immutable */
    uint32_t id;
    uint32_t shard; /* the one shard this release hosts */
    struct nd_store store;
    struct nd_fsm fsm;
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    char raft_dir[4096];
    int raft_inited;
    int raft_started;
    int bootstrapped; /* the group was bootstrapped in an earlier run */
    int raft_closed;
    struct cm_rpc_server *server;
    struct cm_auth *auth; /* owned: cluster secret, refusal counters (common/auth.h) */
    struct nd_peer peers[ND_MAX_PEERS];
    unsigned npeers;
    struct nd_upload *uploads; /* staged uploads receiving chunks (list) */
    uint64_t nuploads;
    unsigned works;  /* uv_queue_work items in flight */
    uv_timer_t tick; /* bootstrap retries, repair, GC */
    int tick_open;
    int64_t started_ms;
    uint64_t next_req_id;
    uint64_t reads; /* GET requests received (STATUS reports it) */
    int stopping;
    void (*on_stopped)(struct nd_node *n);
    /* repair state */
    int repair_running;
    char *repair_cursor; /* owned: last key repaired or skipped */
    uint64_t last_gc_ms;
    uint64_t last_expire_ms;
    int expire_running;
    int gc_running;
};

int nd_node_start(struct nd_node *n, uv_loop_t *loop, const struct nd_config *cfg, char *errmsg,
                  size_t errlen);
void nd_node_stop(struct nd_node *n, void (*on_stopped)(struct nd_node *n));

/* Helpers shared by the node's modules. */
const char *nd_node_rpc_of(struct nd_node *n, uint32_t id); /* NULL when unknown */
/* Leader as this node sees it: id (0 = unknown) and its RPC address (NULL when unknown). */
uint32_t nd_node_leader(struct nd_node *n, const char **rpc);
int nd_node_is_leader(struct nd_node *n);

/* Run fn on the libuv thread pool, then done on the loop thread. Counted for shutdown. */
int nd_work(struct nd_node *n, void (*fn)(void *arg), void (*done)(void *arg, int status),
            void *arg);

/* Repair and GC (repair.c). */
void nd_repair_kick(struct nd_node *n);
void nd_repair_tick(struct nd_node *n);
/* TTL cleanup on the shard leader (expire.c). */
void nd_expire_tick(struct nd_node *n);

#endif
