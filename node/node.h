/* One headwater-node process: store, hosted shard replicas, RPC server, repair and GC.
 *
 * Lifecycle: nd_node_start (open store, shard replicas, RPC server; bootstrap the group from
 * --peers on first start, learning peers' raft addresses over RPC) -> loop runs ->
 * nd_node_stop (async: server, timers and calls close, raft closes, in-flight store work
 * drains, then the store closes and the loop has no handles left). */
#ifndef ND_NODE_H
#define ND_NODE_H

#include <stdint.h>
#include <uv.h>

#include "bg/expire.h"
#include "bg/gc.h"
#include "bg/repair.h"
#include "ops/watch.h"
#include "host/host.h"
#include "options.h"
#include "rpc/server.h"

struct nd_admin;

struct nd_node {
    uv_loop_t *loop;
    const struct nd_config *cfg; /* borrowed, immutable */
    struct nd_store store;
    struct nd_workq work;
    struct nd_commitq *commit; /* uploads' store writes (host/commitq.h) */
    struct nd_clock clock;
    uint64_t clock_seed;
    struct nd_host host;
    struct nd_shard shard; /* the one shard this release hosts */
    struct nd_repair repair;
    struct nd_gc gc;
    struct nd_expire expire;
    struct nd_watch watch; /* the shard's commit watch and gateway leases */
    int watch_open;        /* until its close callback */
    struct nd_rpc_server_cfg rpc_cfg;
    struct nd_rpc_server *server;
    struct cm_auth *auth;   /* owned: cluster secret, refusal counters (common/auth.h) */
    uv_timer_t tick;        /* bootstrap retries, repair, GC, expiry */
    struct nd_admin *admin; /* --admin-listen (NULL when none or closing) */
    int admin_open;         /* until the admin listener's close callback */
    int tick_open;
    int stopping;
    void (*on_stopped)(struct nd_node *n);
};

int nd_node_start(struct nd_node *n, uv_loop_t *loop, const struct nd_config *cfg, char *errmsg,
                  size_t errlen);
/* Also after a failed start, when nd_node_needs_stop says so. */
void nd_node_stop(struct nd_node *n, void (*on_stopped)(struct nd_node *n));
/* After a failed nd_node_start: whether nd_node_stop must run to unwind (raft is up). */
int nd_node_needs_stop(const struct nd_node *n);

/* Admin HTTP listener (health.c): nothing when --admin-listen is empty. Close is async:
 * on_closed(n) fires once, later. */
int nd_health_start(struct nd_node *n, char *errmsg, size_t errlen);
void nd_health_close(struct nd_node *n, void (*on_closed)(void *arg));

#endif
