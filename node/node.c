/* Node lifecycle (see node.h).
 *
 * Start: store + FSM -> raft io/transport/init -> RPC server -> (first start) learn every
 * initial voter's raft address by HELLO over RPC, retrying, then raft_bootstrap -> raft_start.
 * Stop: RPC server closes, the tick timer closes, raft closes; when raft's close callback ran
 * and no store work is in flight, the store closes and on_stopped fires. */
#include "node.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "auth.h"
#include "call.h"
#include "err.h"
#include "log.h"
#include "server.h"
#include "shard/transport.h"
#include "timeutil.h"

#define TICK_MS 250

struct work {
    uv_work_t req;
    struct nd_node *n;
    void (*fn)(void *arg);
    void (*done)(void *arg, int status);
    void *arg;
};

static void maybe_stopped(struct nd_node *n);

static void work_fn(uv_work_t *req)
{
    struct work *w = req->data;
    w->fn(w->arg);
}

static void work_done(uv_work_t *req, int status)
{
    struct work *w = req->data;
    struct nd_node *n = w->n;
    w->done(w->arg, status);
    cm_free(w);
    n->works--;
    maybe_stopped(n);
}

int nd_work(struct nd_node *n, void (*fn)(void *arg), void (*done)(void *arg, int status),
            void *arg)
{
    struct work *w = cm_calloc(1, sizeof(*w));
    if (w == NULL)
        return CM_ENOMEM;
    w->req.data = w;
    w->n = n;
    w->fn = fn;
    w->done = done;
    w->arg = arg;
    if (uv_queue_work(n->loop, &w->req, work_fn, work_done) != 0) {
        cm_free(w);
        return CM_EIO;
    }
    n->works++;
    return 0;
}

const char *nd_node_rpc_of(struct nd_node *n, uint32_t id)
{
    for (unsigned i = 0; i < n->npeers; i++)
        if (n->peers[i].id == id)
            return n->peers[i].rpc;
    return NULL;
}

uint32_t nd_node_leader(struct nd_node *n, const char **rpc)
{
    raft_id id = 0;
    const char *addr = NULL;
    if (rpc != NULL)
        *rpc = NULL;
    if (!n->raft_started || n->raft_closed)
        return 0;
    raft_leader(&n->raft, &id, &addr);
    if (id != 0 && rpc != NULL)
        *rpc = nd_node_rpc_of(n, (uint32_t)id);
    return (uint32_t)id;
}

int nd_node_is_leader(struct nd_node *n)
{
    return n->raft_started && !n->raft_closed && raft_state(&n->raft) == RAFT_LEADER;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Learn raft addresses of the voters from the raft configuration (after start). */
static void peers_from_configuration(struct nd_node *n)
{
    for (unsigned i = 0; i < n->raft.configuration.n; i++) {
        const struct raft_server *s = &n->raft.configuration.servers[i];
        for (unsigned j = 0; j < n->npeers; j++)
            if (n->peers[j].id == s->id && s->address != NULL)
                snprintf(n->peers[j].raft, ND_ADDR_MAX, "%s", s->address);
    }
}

static int raft_go(struct nd_node *n)
{
    int rv = raft_start(&n->raft);
    if (rv != 0) {
        CM_ERROR("raft start failed: %s (%s)", raft_strerror(rv), raft_errmsg(&n->raft));
        return CM_EIO;
    }
    n->raft_started = 1;
    peers_from_configuration(n);
    CM_INFO("raft started id=%u raft=%s applied=%llu repair_backlog=%llu", n->id,
            n->cfg->raft_listen, (unsigned long long)n->fsm.applied,
            (unsigned long long)n->fsm.repair_backlog);
    nd_repair_kick(n);
    return 0;
}

static int try_bootstrap(struct nd_node *n)
{
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (unsigned i = 0; i < n->npeers; i++) {
        if (n->peers[i].raft[0] == '\0') {
            raft_configuration_close(&conf);
            return 1; /* not all known yet */
        }
        raft_configuration_add(&conf, n->peers[i].id, n->peers[i].raft, RAFT_VOTER);
    }
    int rv = raft_bootstrap(&n->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
        CM_ERROR("raft bootstrap failed: %s", raft_strerror(rv));
        return -1;
    }
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_put(b, "b", 1, "1", 1);
    nd_store_write(&n->store, b, 1);
    rocksdb_writebatch_destroy(b);
    CM_INFO("raft group bootstrapped voters=%u", n->npeers);
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
        snprintf(p->raft, ND_ADDR_MAX, "%s", env->hello_ok->raft_address);
        CM_INFO("learned peer id=%u rpc=%s raft=%s", p->id, p->rpc, p->raft);
    }
    return 1;
}

/* Bootstrap discovery: ask every peer whose raft address is unknown. The handshake itself
 * answers: a HELLO request gets HELLO_OK with the raft address. */
static void discover(struct nd_node *n)
{
    for (unsigned i = 0; i < n->npeers; i++) {
        struct nd_peer *p = &n->peers[i];
        if (p->raft[0] != '\0' || p->hello != NULL)
            continue;
        Hw__Envelope req;
        Hw__Hello h = HW__HELLO__INIT;
        cm_env_init(&req, HW__MSG_TYPE__MSG_HELLO, ++n->next_req_id, n->shard);
        h.proto_version = CM_PROTO_VERSION;
        h.node_id = n->id;
        h.rpc_address = (char *)n->cfg->listen;
        req.hello = &h;
        nd_call_start(n->loop, n->auth, p->rpc, n->id, n->cfg->listen, &req, 1000, on_hello, p,
                      &p->hello);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct nd_node *n = t->data;
    if (n->stopping)
        return;
    if (!n->raft_started) {
        if (n->bootstrapped) {
            if (raft_go(n) != 0)
                nd_node_stop(n, n->on_stopped);
        } else if (try_bootstrap(n) == 1) {
            discover(n);
        }
        return;
    }
    nd_repair_tick(n);
    nd_expire_tick(n);
}

static void fsm_on_missing(struct nd_fsm *f, void *data)
{
    nd_repair_kick(data);
}

/* Raft transport membership check: id is a voter/standby of the group at address (from the
 * raft configuration once started, else from --peers and the addresses learned by HELLO). */
static int raft_is_member(void *arg, raft_id id, const char *address)
{
    struct nd_node *n = arg;
    if (n->raft_started && n->raft.configuration.n > 0) {
        for (unsigned i = 0; i < n->raft.configuration.n; i++) {
            const struct raft_server *s = &n->raft.configuration.servers[i];
            if (s->id == id && s->address != NULL && strcmp(s->address, address) == 0)
                return 1;
        }
        return 0;
    }
    for (unsigned i = 0; i < n->npeers; i++)
        if (n->peers[i].id == id && strcmp(n->peers[i].raft, address) == 0)
            return 1;
    return 0;
}

/* Our authenticated transport, or raft's stock TCP one with --insecure. */
static int transport_init(struct nd_node *n)
{
    if (!cm_auth_enabled(n->auth))
        return raft_uv_tcp_init(&n->transport, n->loop) == 0 ? 0 : CM_EIO;
    struct nd_transport_cfg tc = {
        .auth = n->auth,
        .group = n->shard,
        .max_pending = (unsigned)n->cfg->raft_max_conns,
        .max_conns = (unsigned)n->cfg->raft_max_conns,
        .timeout_ms = CM_AUTH_TIMEOUT_MS,
        .idle_ms = (unsigned)n->cfg->raft_idle_ms,
        .is_member = raft_is_member,
        .arg = n,
    };
    return nd_transport_init(&n->transport, n->loop, &tc);
}

static void transport_close(struct nd_node *n)
{
    if (cm_auth_enabled(n->auth))
        nd_transport_close(&n->transport);
    else
        raft_uv_tcp_close(&n->transport);
}

int nd_node_start(struct nd_node *n, uv_loop_t *loop, const struct nd_config *cfg, char *errmsg,
                  size_t errlen)
{
    char path[4096];
    int rv;
    memset(n, 0, sizeof(*n));
    n->loop = loop;
    n->cfg = cfg;
    n->id = (uint32_t)cfg->id;
    n->shard = 0;
    n->started_ms = cm_wall_ms();
    for (unsigned i = 0; i < cfg->npeers; i++) {
        n->peers[i].id = cfg->peers[i].id;
        snprintf(n->peers[i].rpc, ND_ADDR_MAX, "%s", cfg->peers[i].rpc);
        if (cfg->peers[i].id == n->id)
            snprintf(n->peers[i].raft, ND_ADDR_MAX, "%s", cfg->raft_listen);
    }
    n->npeers = cfg->npeers;

    snprintf(path, sizeof(path), "%s/db", cfg->data_dir);
    snprintf(n->raft_dir, sizeof(n->raft_dir), "%s/raft/shard-%u", cfg->data_dir, n->shard);
    /* The secret first: without it nothing is created on disk. */
    rv = cm_auth_new(cfg->cluster_secret_file, cfg->insecure, CM_AUTH_ROLE_NODE, n->id, &n->auth,
                     errmsg, errlen);
    if (rv != 0)
        return rv;
    if (mkdir_p(path) != 0 || mkdir_p(n->raft_dir) != 0) {
        snprintf(errmsg, errlen, "cannot create %s: %s", cfg->data_dir, strerror(errno));
        rv = CM_EIO;
        goto err_after_auth;
    }
    rv = nd_store_open(path, &n->store, errmsg, errlen);
    if (rv != 0)
        goto err_after_auth;
    rv = nd_fsm_init(&n->fsm, &n->store, n->shard, &n->raft);
    if (rv != 0) {
        snprintf(errmsg, errlen, "cannot load the shard state: %s", cm_strerror(rv));
        goto err_after_store;
    }
    n->fsm.on_missing = fsm_on_missing;
    {
        struct nd_skey bk = {.len = 1, .b = {'b'}};
        char *v;
        size_t vlen;
        if (nd_store_get(&n->store, &bk, &v, &vlen) == 0) {
            n->bootstrapped = 1; /* restart: raft's own files hold the configuration */
            rocksdb_free(v);
        }
    }
    n->fsm.data = n;
    if (transport_init(n) != 0) {
        snprintf(errmsg, errlen, "raft transport init failed");
        rv = CM_EIO;
        goto err_after_store;
    }
    if (raft_uv_init(&n->io, loop, n->raft_dir, &n->transport) != 0) {
        snprintf(errmsg, errlen, "raft io init failed for %s", n->raft_dir);
        rv = CM_EIO;
        goto err_after_transport;
    }
    if (raft_init(&n->raft, &n->io, &n->fsm.raft, n->id, cfg->raft_listen) != 0) {
        snprintf(errmsg, errlen, "raft init failed: %s", raft_errmsg(&n->raft));
        rv = CM_EIO;
        goto err_after_io;
    }
    n->raft_inited = 1;
    n->raft.data = n;
    raft_set_pre_vote(&n->raft, true);
    raft_set_election_timeout(&n->raft, 1000);
    raft_set_heartbeat_timeout(&n->raft, 100);
    raft_set_snapshot_threshold(&n->raft, (unsigned)cfg->snapshot_threshold);
    raft_set_snapshot_trailing(&n->raft, (unsigned)cfg->snapshot_threshold / 4);
    rv = nd_server_start(n, errmsg, errlen);
    if (rv != 0)
        return rv; /* raft is initialised: the caller stops the node to unwind */
    uv_timer_init(loop, &n->tick);
    n->tick.data = n;
    n->tick_open = 1;
    uv_timer_start(&n->tick, on_tick, 0, TICK_MS);
    CM_INFO("node started id=%u rpc=%s raft=%s data=%s", n->id, cfg->listen, cfg->raft_listen,
            cfg->data_dir);
    return 0;

err_after_io:
    raft_uv_close(&n->io);
err_after_transport:
    transport_close(n);
err_after_store:
    nd_store_close(&n->store);
err_after_auth:
    cm_auth_free(n->auth);
    n->auth = NULL;
    return rv;
}

static void maybe_stopped(struct nd_node *n)
{
    if (!n->stopping || n->works > 0 || (n->raft_inited && !n->raft_closed) || n->tick_open)
        return;
    if (n->store.db == NULL)
        return;
    nd_uploads_free(n);
    cm_free(n->repair_cursor);
    n->repair_cursor = NULL;
    nd_store_close(&n->store);
    cm_auth_free(n->auth);
    n->auth = NULL;
    CM_INFO("node stopped id=%u", n->id);
    if (n->on_stopped != NULL)
        n->on_stopped(n);
}

static void on_raft_closed(struct raft *r)
{
    struct nd_node *n = r->data;
    raft_uv_close(&n->io);
    transport_close(n);
    n->raft_closed = 1;
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
    n->on_stopped = on_stopped;
    for (unsigned i = 0; i < n->npeers; i++)
        if (n->peers[i].hello != NULL) {
            nd_call_cancel(n->peers[i].hello);
            n->peers[i].hello = NULL;
        }
    if (n->server != NULL) {
        cm_rpc_server_close(n->server);
        n->server = NULL;
    }
    if (n->tick_open)
        uv_close((uv_handle_t *)&n->tick, on_tick_closed);
    if (n->raft_inited)
        raft_close(&n->raft, on_raft_closed);
    maybe_stopped(n);
}
