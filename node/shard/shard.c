/* One shard replica (see shard.h).
 *
 * Init: directory -> raft io over the transport (shard_io_init, the one place the transport
 * is chosen) -> raft_init with the FSM. Close: raft_close -> its callback closes the io and
 * transport -> on_closed. */
#include "shard/shard.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "auth.h"
#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "shard/transport.h"

static int transport_init(struct nd_shard *sh, uv_loop_t *loop, const struct nd_shard_cfg *cfg,
                          char *errmsg, size_t errlen)
{
    struct nd_transport_cfg tc = {
        .auth = cfg->auth,
        .group = cfg->id,
        .max_pending = cfg->raft_max_conns,
        .max_conns = cfg->raft_max_conns,
        .timeout_ms = CM_AUTH_TIMEOUT_MS,
        .idle_ms = cfg->raft_idle_ms,
        .bind = cfg->raft_bind,
        .is_member = cfg->is_member,
        .arg = cfg->member_arg,
    };
    if (nd_transport_init(&sh->transport, loop, &tc) != 0) {
        snprintf(errmsg, errlen, "raft transport init failed: out of memory");
        return CM_ENOMEM;
    }
    sh->secure = 1;
    return 0;
}

static void transport_close(struct nd_shard *sh)
{
    if (sh->secure)
        nd_transport_close(&sh->transport);
    else
        raft_uv_tcp_close(&sh->transport);
}

/* The raft I/O of this replica: raft_uv over the authenticated transport (transport.h), or
 * over raft's stock TCP one with --insecure. */
static int shard_io_init(struct nd_shard *sh, uv_loop_t *loop, const struct nd_shard_cfg *cfg,
                         char *errmsg, size_t errlen)
{
    const char *bind = cfg->raft_bind;
    if (cm_auth_enabled(cfg->auth)) {
        int rv = transport_init(sh, loop, cfg, errmsg, errlen);
        if (rv != 0)
            return rv;
    } else if (raft_uv_tcp_init(&sh->transport, loop) != 0) {
        snprintf(errmsg, errlen, "raft transport init failed");
        return CM_EIO;
    }
    if (!sh->secure && bind != NULL && bind[0] != '\0' &&
        raft_uv_tcp_set_bind_address(&sh->transport, bind) != 0) {
        snprintf(errmsg, errlen, "--raft-bind %s: not an IPv4 IP:PORT", bind);
        transport_close(sh);
        return CM_EINVAL;
    }
    if (raft_uv_init(&sh->io, loop, sh->dir, &sh->transport) != 0) {
        snprintf(errmsg, errlen, "raft io init failed for %s", sh->dir);
        transport_close(sh);
        return CM_EIO;
    }
    return 0;
}

static void shard_io_close(struct nd_shard *sh)
{
    raft_uv_close(&sh->io);
    transport_close(sh);
}

static int load_state(struct nd_shard *sh, struct nd_store *store, uint32_t id)
{
    struct nd_skey bk;
    char *v;
    size_t vlen;
    memset(sh, 0, sizeof(*sh));
    sh->id = id;
    sh->store = store;
    sh->raft = &sh->own_raft;
    int rv = nd_fsm_init(&sh->fsm, store, id, sh->raft);
    if (rv != 0)
        return rv;
    nd_skey_bootstrapped(&bk);
    if (id == 0 && nd_store_get(store, &bk, &v, &vlen) == 0) {
        sh->bootstrapped = 1; /* restart: raft's own files hold the configuration */
        cm_free(v);
    }
    return 0;
}

int nd_shard_attach(struct nd_shard *sh, struct nd_store *store, uint32_t id)
{
    int rv = load_state(sh, store, id);
    sh->raft = NULL;
    sh->fsm.r = NULL;
    return rv;
}

void nd_shard_attach_raft(struct nd_shard *sh, struct raft *r)
{
    sh->raft = r;
    sh->fsm.r = r;
    sh->started = 1;
}

int nd_shard_init(struct nd_shard *sh, uv_loop_t *loop, struct nd_store *store,
                  const struct nd_shard_cfg *cfg, char *errmsg, size_t errlen)
{
    /* raft_start asserts these; the node's option table and validate() already bound them. */
    if (cfg->heartbeat_ms == 0 || 2 * cfg->heartbeat_ms >= cfg->election_timeout_ms) {
        snprintf(errmsg, errlen,
                 "shard %u: heartbeat %u ms not below half the election timeout %u ms", cfg->id,
                 cfg->heartbeat_ms, cfg->election_timeout_ms);
        return CM_EINVAL;
    }
    int rv = load_state(sh, store, cfg->id);
    if (rv != 0) {
        snprintf(errmsg, errlen, "cannot load the state of shard %u: %s", cfg->id, cm_strerror(rv));
        return rv;
    }
    snprintf(sh->dir, sizeof(sh->dir), "%s/raft/shard-%u", cfg->data_dir, cfg->id);
    if (cm_mkdir_p(sh->dir) != 0) {
        snprintf(errmsg, errlen, "cannot create %s: %s", sh->dir, strerror(errno));
        return CM_EIO;
    }
    rv = shard_io_init(sh, loop, cfg, errmsg, errlen);
    if (rv != 0)
        return rv;
    if (raft_init(sh->raft, &sh->io, &sh->fsm.raft, cfg->self_id, cfg->raft_listen) != 0) {
        snprintf(errmsg, errlen, "raft init failed: %s", raft_errmsg(sh->raft));
        shard_io_close(sh);
        return CM_EIO;
    }
    sh->inited = 1;
    sh->raft->data = sh;
    raft_set_pre_vote(sh->raft, true);
    raft_set_election_timeout(sh->raft, cfg->election_timeout_ms);
    raft_set_heartbeat_timeout(sh->raft, cfg->heartbeat_ms);
    raft_set_snapshot_threshold(sh->raft, cfg->snapshot_threshold);
    raft_set_snapshot_trailing(sh->raft, cfg->snapshot_threshold / 4);
    return 0;
}

int nd_shard_bootstrap(struct nd_shard *sh, const struct raft_configuration *conf)
{
    struct nd_skey bk;
    struct nd_batch b;
    int rv = raft_bootstrap(sh->raft, conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
        CM_ERROR("raft bootstrap failed shard=%u: %s", sh->id, raft_strerror(rv));
        return CM_EIO;
    }
    if (sh->id == 0) {
        nd_skey_bootstrapped(&bk);
        nd_batch_init(&b);
        nd_batch_put(&b, &bk, "1", 1);
        rv = nd_store_write(sh->store, &b, 1);
        nd_batch_close(&b);
        if (rv != 0)
            return rv;
    }
    sh->bootstrapped = 1;
    CM_INFO("raft group bootstrapped shard=%u voters=%u", sh->id, conf->n);
    return 0;
}

int nd_shard_start(struct nd_shard *sh)
{
    int rv = raft_start(sh->raft);
    if (rv != 0) {
        CM_ERROR("raft start failed shard=%u: %s (%s)", sh->id, raft_strerror(rv),
                 raft_errmsg(sh->raft));
        return CM_EIO;
    }
    sh->started = 1;
    return 0;
}

static void on_raft_closed(struct raft *r)
{
    struct nd_shard *sh = r->data;
    nd_fsm_close(&sh->fsm); /* raft replays what waited on the next start */
    shard_io_close(sh);
    sh->closed = 1;
    if (sh->on_closed != NULL)
        sh->on_closed(sh);
}

void nd_shard_close(struct nd_shard *sh, void (*on_closed)(struct nd_shard *sh))
{
    sh->on_closed = on_closed;
    if (!sh->inited) {
        sh->closed = 1;
        return; /* nothing to wait for: the caller sees closed at once */
    }
    raft_close(sh->raft, on_raft_closed);
}

static int running(const struct nd_shard *sh)
{
    return sh->raft != NULL && sh->started && !sh->closed;
}

int nd_shard_is_leader(const struct nd_shard *sh)
{
    return running(sh) && raft_state(sh->raft) == RAFT_LEADER;
}

uint32_t nd_shard_leader(const struct nd_shard *sh)
{
    raft_id id = 0;
    const char *addr = NULL;
    if (!running(sh))
        return 0;
    raft_leader(sh->raft, &id, &addr);
    return (uint32_t)id;
}

uint64_t nd_shard_applied(const struct nd_shard *sh)
{
    if (sh->raft == NULL)
        return 0;
    /* While the store refuses applies (disk full) it lags raft: answer what it holds. */
    return sh->fsm.pending_head != NULL ? nd_fsm_applied(&sh->fsm) : raft_last_applied(sh->raft);
}

const char *nd_shard_role(const struct nd_shard *sh)
{
    if (!sh->started)
        return "starting";
    switch (raft_state(sh->raft)) {
    case RAFT_LEADER:
        return "leader";
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_CANDIDATE:
        return "candidate";
    default:
        return "unavailable";
    }
}

int nd_shard_apply(struct nd_shard *sh, const Hw__RaftEntry *e, struct raft_apply *req,
                   raft_apply_cb cb)
{
    struct raft_buffer buf;
    if (!running(sh))
        return RAFT_NOTLEADER;
    if (nd_fsm_encode(e, &buf) != 0)
        return RAFT_NOMEM;
    int rv = raft_apply(sh->raft, req, &buf, 1, cb);
    if (rv != 0)
        raft_free(buf.base);
    return rv;
}

static void on_transferred(struct raft_transfer *req)
{
    struct nd_shard *sh = req->data;
    sh->transferring = 0;
}

void nd_shard_step_down(struct nd_shard *sh, const char *why)
{
    if (!nd_shard_is_leader(sh) || sh->transferring)
        return;
    sh->transfer.data = sh;
    int rv = raft_transfer(sh->raft, &sh->transfer, 0, on_transferred);
    CM_WARN("leader steps down shard=%u why=\"%s\" transfer=%s", sh->id, why,
            rv == 0 ? "started" : raft_strerror(rv));
    sh->transferring = rv == 0;
}
