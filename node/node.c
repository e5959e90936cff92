/* Node lifecycle (see node.h): the orchestration of the layers below.
 *
 * Start: store -> seams (work queue, clock) -> host context -> shard replica (FSM, raft io,
 * raft_init) -> RPC server with the ops dispatch table -> (first start) learn every initial
 * voter's raft address by HELLO over RPC, retrying, then bootstrap -> raft start.
 * Stop: RPC server closes, the tick timer closes, raft closes; when raft's close callback ran
 * and no store work is in flight, the store closes and on_stopped fires. */
#include "node.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "auth.h"
#include "err.h"
#include "frame.h"
#include "fsutil.h"
#include "log.h"
#include "ops/list.h"
#include "ops/read.h"
#include "ops/status.h"
#include "ops/upload.h"
#include "ops/write.h"
#include "rpc/call.h"
#include "store/rocks.h"
#include "store/vol.h"

#define TICK_MS 250

_Static_assert(ND_MAX_PEERS <= ND_HOST_MAX_PEERS, "peer tables");
_Static_assert(ND_ADDR_MAX == ND_HOST_ADDR_MAX, "peer address length");

static const struct nd_rpc_route routes[] = {
    {HW__MSG_TYPE__MSG_STAGE, nd_op_stage, 1},
    {HW__MSG_TYPE__MSG_FINISH, nd_op_finish, 1},
    {HW__MSG_TYPE__MSG_COMMIT, nd_op_commit, 0},
    {HW__MSG_TYPE__MSG_DELETE, nd_op_delete, 0},
    {HW__MSG_TYPE__MSG_GET, nd_op_get, 0},
    {HW__MSG_TYPE__MSG_HEAD, nd_op_head, 0},
    {HW__MSG_TYPE__MSG_FETCH, nd_op_fetch, 1},
    {HW__MSG_TYPE__MSG_STATUS, nd_op_status, 1},
    {HW__MSG_TYPE__MSG_READ_INDEX, nd_op_read_index, 0},
    {HW__MSG_TYPE__MSG_LIST, nd_op_list, 0},
    {HW__MSG_TYPE__MSG_WATCH, nd_op_watch, 0},
    {HW__MSG_TYPE__MSG_WATCH_ACK, nd_op_watch_ack, 0},
    {HW__MSG_TYPE__MSG_LEASE_QUERY, nd_op_lease_query, 0},
};

static void maybe_stopped(struct nd_node *n);

static int hosts_shard(void *ctx, uint32_t shard)
{
    return nd_host_shard(ctx, shard) != NULL;
}

static int host_stopping(void *ctx)
{
    return ((struct nd_host *)ctx)->stopping;
}

static void on_work_idle(void *data)
{
    maybe_stopped(data);
}

static void on_repair_needed(void *data, struct nd_shard *sh)
{
    struct nd_node *n = data;
    nd_repair_kick(&n->repair);
}

static void fsm_on_missing(struct nd_fsm *f, void *data)
{
    on_repair_needed(data, NULL);
}

static void fsm_on_event(struct nd_fsm *f, uint64_t index, int kind, const Hw__ObjectMeta *meta,
                         void *data)
{
    struct nd_node *n = data;
    if (n->watch_open)
        nd_watch_publish(&n->watch, index, kind, meta);
}

static void fsm_on_restored(struct nd_fsm *f, uint64_t index, void *data)
{
    struct nd_node *n = data;
    if (n->watch_open)
        nd_watch_restored(&n->watch, index);
}

static void on_conn_closed(void *ctx, struct nd_sconn *sc)
{
    nd_watch_conn_closed(sc);
    nd_op_conn_closed(ctx, sc);
}

static int raft_go(struct nd_node *n)
{
    int rv = nd_shard_start(&n->shard);
    if (rv != 0)
        return rv;
    nd_host_learn_peers(&n->host, &n->shard);
    CM_INFO("raft started id=%u raft=%s applied=%llu repair_backlog=%llu", n->host.cfg.id,
            n->cfg->raft_listen, (unsigned long long)n->shard.fsm.applied,
            (unsigned long long)n->shard.fsm.repair_backlog);
    nd_repair_kick(&n->repair);
    return 0;
}

/* 1: not every voter's raft address is known yet; 0: bootstrapped and started; -1: failed. */
static int try_bootstrap(struct nd_node *n)
{
    struct nd_host *h = &n->host;
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (unsigned i = 0; i < h->npeers; i++) {
        if (h->peers[i].raft[0] == '\0') {
            raft_configuration_close(&conf);
            return 1;
        }
        raft_configuration_add(&conf, h->peers[i].id, h->peers[i].raft, RAFT_VOTER);
    }
    int rv = nd_shard_bootstrap(&n->shard, &conf);
    raft_configuration_close(&conf);
    if (rv != 0)
        return -1;
    return raft_go(n) == 0 ? 0 : -1;
}

static int on_hello(struct nd_call *c, int status, const Hw__Envelope *env,
                    const struct cm_slice *payload, void *arg)
{
    struct nd_peer *p = arg;
    p->hello = NULL;
    if (status == 0 && env->type == HW__MSG_TYPE__MSG_HELLO_OK && env->hello_ok != NULL &&
        env->hello_ok->node_id == p->id && env->hello_ok->raft_address != NULL &&
        env->hello_ok->raft_address[0] != '\0') {
        snprintf(p->raft, ND_HOST_ADDR_MAX, "%s", env->hello_ok->raft_address);
        CM_INFO("learned peer id=%u rpc=%s raft=%s", p->id, p->rpc, p->raft);
    }
    return 1;
}

/* Bootstrap discovery: ask every peer whose raft address is unknown. The handshake itself
 * answers: a HELLO request gets HELLO_OK with the raft address. */
static void discover(struct nd_node *n)
{
    struct nd_host *h = &n->host;
    for (unsigned i = 0; i < h->npeers; i++) {
        struct nd_peer *p = &h->peers[i];
        if (p->raft[0] != '\0' || p->hello != NULL)
            continue;
        Hw__Envelope req;
        Hw__Hello hello = HW__HELLO__INIT;
        cm_env_init(&req, HW__MSG_TYPE__MSG_HELLO, ++h->next_req_id, n->shard.id);
        hello.proto_version = CM_PROTO_VERSION;
        hello.node_id = h->cfg.id;
        hello.rpc_address = (char *)n->cfg->listen;
        req.hello = &hello;
        nd_call_start(n->loop, n->auth, p->rpc, h->cfg.id, n->cfg->listen, &req, 1000, on_hello, p,
                      &p->hello);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct nd_node *n = t->data;
    if (n->stopping)
        return;
    if (!n->shard.started) {
        if (n->shard.bootstrapped) {
            if (raft_go(n) != 0)
                nd_node_stop(n, n->on_stopped);
        } else if (try_bootstrap(n) == 1) {
            discover(n);
        }
        return;
    }
    nd_fsm_retry(&n->shard.fsm); /* entries the store refused (disk full) */
    nd_repair_tick(&n->repair);
    nd_gc_tick(&n->gc);
    nd_expire_tick(&n->expire);
}

static void host_setup(struct nd_node *n, uv_loop_t *loop, const struct nd_config *cfg)
{
    struct nd_host_cfg hc = {
        .id = (uint32_t)cfg->id,
        .listen = cfg->listen,
        .raft_listen = cfg->raft_listen,
        .zone = cfg->zone,
        .shard_count = (uint32_t)cfg->shards,
        .replicas = (unsigned)cfg->replicas,
        .staged_ttl_s = cfg->staged_ttl,
    };
    nd_workq_uv_init(&n->work, loop);
    n->work.on_idle = on_work_idle;
    n->work.idle_data = n;
    nd_clock_system(&n->clock, &n->clock_seed);
    nd_host_init(&n->host, loop, &hc, &n->store, &n->work, &n->clock);
    n->host.auth = n->auth;
    n->host.on_repair_needed = on_repair_needed;
    n->host.hook_data = n;
    for (unsigned i = 0; i < cfg->npeers; i++)
        nd_host_add_peer(&n->host, cfg->peers[i].id, cfg->peers[i].rpc);
}

/* Raft transport membership check: id is a member of the group at address (from the raft
 * configuration once started, else from --peers and the raft addresses learned by HELLO). */
static int raft_is_member(void *arg, raft_id id, const char *address)
{
    struct nd_node *n = arg;
    const struct raft *r = n->shard.raft;
    if (n->shard.started && r != NULL && r->configuration.n > 0) {
        for (unsigned i = 0; i < r->configuration.n; i++) {
            const struct raft_server *s = &r->configuration.servers[i];
            if (s->id == id && s->address != NULL && strcmp(s->address, address) == 0)
                return 1;
        }
        return 0;
    }
    for (unsigned i = 0; i < n->host.npeers; i++)
        if (n->host.peers[i].id == id && strcmp(n->host.peers[i].raft, address) == 0)
            return 1;
    return 0;
}

static int rpc_setup(struct nd_node *n, char *errmsg, size_t errlen)
{
    struct nd_rpc_server_cfg *rc = &n->rpc_cfg;
    rc->node_id = n->host.cfg.id;
    rc->listen = n->cfg->listen;
    rc->raft_listen = n->cfg->raft_listen;
    rc->routes = routes;
    rc->nroutes = sizeof(routes) / sizeof(routes[0]);
    rc->ctx = &n->host;
    rc->hosts_shard = hosts_shard;
    rc->stopping = host_stopping;
    rc->on_conn_closed = on_conn_closed;
    rc->auth = n->auth;
    rc->max_conns = (unsigned)n->cfg->rpc_max_conns;
    rc->idle_ms = (unsigned)n->cfg->rpc_idle_ms;
    return nd_rpc_server_start(n->loop, rc, &n->server, errmsg, errlen);
}

int nd_node_start(struct nd_node *n, uv_loop_t *loop, const struct nd_config *cfg, char *errmsg,
                  size_t errlen)
{
    char path[4096];
    memset(n, 0, sizeof(*n));
    n->loop = loop;
    n->cfg = cfg;
    /* The secret first: without it nothing is created on disk. */
    int rv = cm_auth_new(cfg->cluster_secret_file, cfg->insecure, CM_AUTH_ROLE_NODE,
                         (uint32_t)cfg->id, &n->auth, errmsg, errlen);
    if (rv != 0)
        return rv;
    host_setup(n, loop, cfg);
    snprintf(path, sizeof(path), "%s/db", cfg->data_dir);
    if (cm_mkdir_p(path) != 0) {
        snprintf(errmsg, errlen, "cannot create %s: %s", path, strerror(errno));
        rv = CM_EIO;
        goto err_after_auth;
    }
    struct nd_store index;
    rv = nd_store_rocks_open(&index, path, errmsg, errlen);
    if (rv == CM_ESTORE && strstr(errmsg, "No space left") != NULL)
        rv = CM_ENOSPC; /* RocksDB's open replays the WAL into new files: a full disk refuses */
    if (rv != 0)
        goto err_after_auth;
    /* object bytes in volumes, RocksDB the index (store/vol.h) */
    struct nd_vol_opts vo;
    nd_vol_opts_default(&vo);
    snprintf(path, sizeof(path), "%s/volumes", cfg->data_dir);
    rv = nd_store_vol_open(&n->store, &index, path, &vo, errmsg, errlen);
    if (rv != 0)
        goto err_after_auth;
    rv = nd_commitq_open(&n->commit, loop, &n->store, on_work_idle, n);
    if (rv != 0) {
        snprintf(errmsg, errlen, "store write queue: cannot start its threads");
        n->commit = NULL;
        goto err_after_store;
    }
    n->host.commit = n->commit;
    struct nd_shard_cfg sc = {
        .id = 0,
        .self_id = n->host.cfg.id,
        .raft_listen = cfg->raft_listen,
        .data_dir = cfg->data_dir,
        .snapshot_threshold = (unsigned)cfg->snapshot_threshold,
        .election_timeout_ms = (unsigned)cfg->election_timeout_ms,
        .heartbeat_ms = (unsigned)cfg->heartbeat_ms,
        .raft_bind = cfg->raft_bind,
        .auth = n->auth,
        .raft_max_conns = (unsigned)cfg->raft_max_conns,
        .raft_idle_ms = (unsigned)cfg->raft_idle_ms,
        .is_member = raft_is_member,
        .member_arg = n,
    };
    rv = nd_shard_init(&n->shard, loop, &n->store, &sc, errmsg, errlen);
    if (rv != 0)
        goto err_after_store;
    n->shard.data = n;
    n->shard.fsm.on_missing = fsm_on_missing;
    n->shard.fsm.on_event = fsm_on_event;
    n->shard.fsm.on_restored = fsm_on_restored;
    n->shard.fsm.data = n;
    nd_host_add_shard(&n->host, &n->shard);
    rv = nd_watch_init(&n->watch, &n->host, &n->shard, (unsigned)cfg->lease_ms,
                       n->shard.fsm.applied);
    if (rv != 0) {
        snprintf(errmsg, errlen, "commit watch: out of memory");
        return rv; /* raft is initialised: the caller stops the node to unwind */
    }
    n->watch_open = 1;
    nd_repair_init(&n->repair, &n->host, &n->shard);
    nd_gc_init(&n->gc, &n->host);
    nd_expire_init(&n->expire, &n->host, &n->shard);
    rv = rpc_setup(n, errmsg, errlen);
    if (rv == 0)
        rv = nd_health_start(n, errmsg, errlen);
    if (rv != 0)
        return rv; /* raft is initialised: the caller stops the node to unwind */
    uv_timer_init(loop, &n->tick);
    n->tick.data = n;
    n->tick_open = 1;
    uv_timer_start(&n->tick, on_tick, 0, TICK_MS);
    CM_INFO("node started id=%u rpc=%s raft=%s data=%s", n->host.cfg.id, cfg->listen,
            cfg->raft_listen, cfg->data_dir);
    return 0;

err_after_store:
    if (n->commit != NULL)
        nd_commitq_close(n->commit, NULL, NULL);
    n->commit = n->host.commit = NULL;
    nd_store_close(&n->store);
err_after_auth:
    cm_auth_free(n->auth);
    n->auth = NULL;
    return rv;
}

int nd_node_needs_stop(const struct nd_node *n)
{
    return n->shard.inited;
}

static void maybe_stopped(struct nd_node *n)
{
    if (!n->stopping || n->work.pending > 0 || nd_commitq_pending(n->commit) > 0 ||
        (n->shard.inited && !n->shard.closed) || n->tick_open || n->admin_open || n->watch_open)
        return;
    if (n->store.ops == NULL)
        return;
    nd_uploads_free(&n->host.uploads);
    nd_repair_close(&n->repair);
    if (n->commit != NULL)
        nd_commitq_close(n->commit, NULL, NULL);
    n->commit = n->host.commit = NULL;
    nd_store_close(&n->store);
    nd_workq_close(&n->work);
    cm_auth_free(n->auth);
    n->auth = NULL;
    CM_INFO("node stopped id=%u", n->host.cfg.id);
    if (n->on_stopped != NULL)
        n->on_stopped(n);
}

static void on_admin_closed(void *arg)
{
    struct nd_node *n = arg;
    n->admin_open = 0;
    maybe_stopped(n);
}

static void on_shard_closed(struct nd_shard *sh)
{
    maybe_stopped(sh->data);
}

static void on_watch_closed(void *arg)
{
    struct nd_node *n = arg;
    n->watch_open = 0;
    maybe_stopped(n);
}

static void on_tick_closed(uv_handle_t *h)
{
    struct nd_node *n = h->data;
    n->tick_open = 0;
    maybe_stopped(n);
}

void nd_node_stop(struct nd_node *n, void (*on_stopped)(struct nd_node *n))
{
    if (n->stopping)
        return;
    n->stopping = 1;
    n->host.stopping = 1;
    n->on_stopped = on_stopped;
    for (unsigned i = 0; i < n->host.npeers; i++)
        if (n->host.peers[i].hello != NULL) {
            nd_call_cancel(n->host.peers[i].hello);
            n->host.peers[i].hello = NULL;
        }
    if (n->server != NULL) {
        nd_rpc_server_close(n->server);
        n->server = NULL;
    }
    nd_health_close(n, on_admin_closed);
    if (n->watch_open)
        nd_watch_close(&n->watch, on_watch_closed, n);
    if (n->tick_open)
        uv_close((uv_handle_t *)&n->tick, on_tick_closed);
    if (n->shard.inited)
        nd_shard_close(&n->shard, on_shard_closed);
    maybe_stopped(n);
}
