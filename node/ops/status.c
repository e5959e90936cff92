/* STATUS (see status.h): answered at once from the host's state. */
#include "ops/status.h"

#include "auth.h"
#include "frame.h"

static void shard_info(struct nd_host *h, struct nd_shard *sh, Hw__ShardInfo *si,
                       uint32_t *replicas)
{
    hw__shard_info__init(si);
    for (unsigned i = 0; i < h->npeers; i++)
        replicas[i] = h->peers[i].id;
    si->id = sh->id;
    si->n_replicas = h->npeers;
    si->replicas = replicas;
    si->leader_id = nd_host_leader(h, sh, NULL);
    si->role = (char *)nd_shard_role(sh);
    if (sh->started) {
        si->term = sh->raft->current_term;
        si->commit_index = sh->raft->commit_index;
        si->applied_index = nd_shard_applied(sh); /* the store's, while a full disk stalls it */
        si->last_index = raft_last_index(sh->raft);
    }
    si->repair_backlog = sh->fsm.repair_backlog;
}

void nd_op_status(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                  const struct cm_slice *pl)
{
    struct nd_host *h = ctx;
    Hw__Envelope out;
    Hw__StatusOk st = HW__STATUS_OK__INIT;
    Hw__NodeInfo infos[ND_HOST_MAX_PEERS], *pinfos[ND_HOST_MAX_PEERS];
    Hw__ShardInfo shards[ND_HOST_MAX_SHARDS], *pshards[ND_HOST_MAX_SHARDS];
    uint32_t replicas[ND_HOST_MAX_SHARDS][ND_HOST_MAX_PEERS];

    for (unsigned i = 0; i < h->npeers; i++) {
        hw__node_info__init(&infos[i]);
        infos[i].id = h->peers[i].id;
        infos[i].rpc_address = h->peers[i].rpc;
        infos[i].raft_address = h->peers[i].raft;
        infos[i].zone = h->peers[i].id == h->cfg.id ? (char *)h->cfg.zone : "";
        pinfos[i] = &infos[i];
    }
    for (unsigned i = 0; i < h->nshards; i++) {
        shard_info(h, h->shards[i], &shards[i], replicas[i]);
        pshards[i] = &shards[i];
    }
    st.node_id = h->cfg.id;
    st.rpc_address = (char *)h->cfg.listen;
    st.raft_address = (char *)h->cfg.raft_listen;
    st.zone = (char *)h->cfg.zone;
    st.epoch = 1;
    st.n_nodes = h->npeers;
    st.nodes = pinfos;
    st.n_shards = h->nshards;
    st.shards = pshards;
    st.shard_count = h->cfg.shard_count;
    st.staged_uploads = h->uploads.n;
    st.uptime_ms = nd_now_ms(h->clock) - h->started_ms;
    st.reads = h->reads;
    Hw__Refusal refusals[CM_AUTH_R_COUNT], *prefusals[CM_AUTH_R_COUNT];
    for (int r = 0; r < CM_AUTH_R_COUNT; r++) {
        hw__refusal__init(&refusals[r]);
        refusals[r].reason = (char *)cm_auth_reason_name((enum cm_auth_reason)r);
        refusals[r].count = cm_auth_refused(h->auth, (enum cm_auth_reason)r);
        prefusals[r] = &refusals[r];
    }
    st.n_refusals = CM_AUTH_R_COUNT;
    st.refusals = prefusals;
    st.refusals_total = cm_auth_refused_total(h->auth);
    st.authenticated = cm_auth_enabled(h->auth);
    cm_env_init(&out, HW__MSG_TYPE__MSG_STATUS_OK, env->req_id, env->shard);
    out.status_ok = &st;
    nd_sconn_send(sc, &out, NULL, 0);
}
