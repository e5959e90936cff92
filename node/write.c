/* Leader-side requests: COMMIT and DELETE go through the shard's Raft log and are answered
 * after apply on this node; READ_INDEX confirms leadership with a barrier; STATUS reports
 * the cluster map and the shard's Raft state. A COMMIT's precondition travels in its entry and
 * is decided by the FSM at apply: a failed one is answered CODE_PRECONDITION_FAILED.
 *
 * raft_apply / raft_barrier either fail now (answered at once) or call back exactly once;
 * leadership lost after proposing -> CODE_LEADERSHIP_LOST (outcome unknown to the client). */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "auth.h"
#include "err.h"
#include "etag.h"
#include "log.h"
#include "server.h"
#include "shard/commit_check.h"
#include "timeutil.h"

struct apply_req {
    struct raft_apply apply; /* apply.data = this */
    struct raft_barrier barrier;
    struct nd_req req;
    int kind; /* HW__MSG_TYPE__MSG_COMMIT / _DELETE / _READ_INDEX */
};

static void answer_raft_failure(struct apply_req *a, int status)
{
    if (status == RAFT_LEADERSHIPLOST) {
        nd_req_error(&a->req, HW__CODE__CODE_LEADERSHIP_LOST,
                     "leadership lost before the entry was applied; outcome unknown");
    } else if (status == RAFT_NOTLEADER) {
        nd_req_not_leader(&a->req);
    } else {
        CM_WARN("raft request failed: %s", raft_strerror(status));
        nd_req_error(&a->req,
                     status == RAFT_SHUTDOWN ? HW__CODE__CODE_UNAVAILABLE : HW__CODE__CODE_INTERNAL,
                     raft_strerror(status));
    }
}

static void answer_commit(struct apply_req *a, const struct nd_apply_result *res)
{
    Hw__Envelope env;
    Hw__CommitOk ok = HW__COMMIT_OK__INIT;
    if (res->precondition_failed) { /* the entry changed nothing, on every replica */
        nd_req_error(&a->req, HW__CODE__CODE_PRECONDITION_FAILED,
                     "precondition failed: the object's current version does not match");
        return;
    }
    cm_env_init(&env, HW__MSG_TYPE__MSG_COMMIT_OK, 0, 0);
    ok.version = res->version;
    ok.created = res->created;
    env.commit_ok = &ok;
    nd_req_send(&a->req, &env, NULL, 0);
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
    struct apply_req *a = req->data;
    Hw__Envelope env;
    if (status != 0) {
        answer_raft_failure(a, status);
    } else if (a->kind == HW__MSG_TYPE__MSG_COMMIT) {
        answer_commit(a, result);
    } else {
        const struct nd_apply_result *res = result;
        Hw__DeleteOk ok = HW__DELETE_OK__INIT;
        cm_env_init(&env, HW__MSG_TYPE__MSG_DELETE_OK, 0, 0);
        ok.found = res->found;
        ok.version = res->version;
        env.delete_ok = &ok;
        nd_req_send(&a->req, &env, NULL, 0);
    }
    nd_req_end(&a->req);
    cm_free(a);
}

/* Only the leader proposes; others answer NOT_LEADER / NO_LEADER with what they know. */
static void propose(struct nd_sconn *sc, const Hw__Envelope *env, Hw__RaftEntry *entry)
{
    struct nd_node *n = sc->n;
    struct raft_buffer buf;
    if (!nd_node_is_leader(n)) {
        struct nd_req r;
        nd_req_begin(&r, sc, env);
        nd_req_not_leader(&r);
        nd_req_end(&r);
        return;
    }

    struct apply_req *a = cm_calloc(1, sizeof(*a));
    if (a == NULL || nd_fsm_encode(entry, &buf) != 0) {
        cm_free(a);
        cm_rpc_send_error(sc->conn, env->req_id, env->shard, HW__CODE__CODE_INTERNAL,
                          "out of memory");
        return;
    }
    a->kind = env->type;
    a->apply.data = a;
    nd_req_begin(&a->req, sc, env);
    int rv = raft_apply(&n->raft, &a->apply, &buf, 1, on_applied);
    if (rv != 0) {
        raft_free(buf.base);
        answer_raft_failure(a, rv);
        nd_req_end(&a->req);
        cm_free(a);
    }
}

static int precondition_valid(const Hw__Precondition *pc)
{
    return pc == NULL || (strlen(pc->if_match) <= CM_PRECOND_VALUE_MAX &&
                          strlen(pc->if_none_match) <= CM_PRECOND_VALUE_MAX);
}

void nd_handle_commit(struct nd_sconn *sc, const Hw__Envelope *env)
{
    struct nd_node *n = sc->n;
    const Hw__Commit *c = env->commit;
    uint32_t members[ND_MAX_PEERS];
    char why[160];
    for (unsigned i = 0; i < n->npeers; i++)
        members[i] = n->peers[i].id;
    int rv = nd_commit_check(c, members, n->npeers, (unsigned)n->cfg->replicas, why, sizeof(why));
    if (rv == 0 && !precondition_valid(c->precondition)) {
        snprintf(why, sizeof(why), "COMMIT precondition value too long");
        rv = CM_EINVAL;
    }
    if (rv != 0) {
        cm_auth_refuse(n->auth, CM_AUTH_R_BAD_COMMIT, cm_rpc_peer(sc->conn), why);
        cm_rpc_send_error(sc->conn, env->req_id, env->shard, HW__CODE__CODE_BAD_REQUEST, why);
        return;
    }
    Hw__RaftEntry e = HW__RAFT_ENTRY__INIT;
    Hw__ObjectMeta m = HW__OBJECT_META__INIT;
    int64_t now = cm_wall_ms();
    e.kind = HW__RAFT_ENTRY__KIND__KIND_PUT;
    e.shard = n->shard;
    e.meta = &m;
    m.key = c->key;
    m.upload_id = c->upload_id;
    m.size = c->size;
    m.checksum = c->checksum;
    m.content_type = c->content_type;
    m.n_holders = c->n_holders;
    m.holders = c->holders;
    m.created_ms = now;
    m.expires_ms = c->ttl_seconds > 0 ? now + c->ttl_seconds * 1000 : 0;
    m.cache_control = c->cache_control;
    e.precondition = c->precondition;
    propose(sc, env, &e);
}

void nd_handle_delete(struct nd_sconn *sc, const Hw__Envelope *env)
{
    struct nd_node *n = sc->n;
    if (env->delete_ == NULL || !nd_commit_key_ok(env->delete_->key)) {
        cm_rpc_send_error(sc->conn, env->req_id, env->shard, HW__CODE__CODE_BAD_REQUEST,
                          "DELETE needs a key");
        return;
    }
    Hw__RaftEntry e = HW__RAFT_ENTRY__INIT;
    Hw__ObjectMeta m = HW__OBJECT_META__INIT;
    e.kind = HW__RAFT_ENTRY__KIND__KIND_DELETE;
    e.shard = n->shard;
    e.meta = &m;
    m.key = env->delete_->key;
    propose(sc, env, &e);
}

static void on_barrier(struct raft_barrier *req, int status)
{
    struct apply_req *a = req->data;
    if (status != 0) {
        answer_raft_failure(a, status);
    } else {
        Hw__Envelope env;
        Hw__ReadIndexOk ok = HW__READ_INDEX_OK__INIT;
        cm_env_init(&env, HW__MSG_TYPE__MSG_READ_INDEX_OK, 0, 0);
        ok.index = raft_last_applied(&a->req.sc->n->raft);
        env.read_index_ok = &ok;
        nd_req_send(&a->req, &env, NULL, 0);
    }
    nd_req_end(&a->req);
    cm_free(a);
}

void nd_handle_read_index(struct nd_sconn *sc, const Hw__Envelope *env)
{
    struct nd_node *n = sc->n;
    struct apply_req *a = cm_calloc(1, sizeof(*a));
    if (a == NULL) {
        cm_rpc_send_error(sc->conn, env->req_id, env->shard, HW__CODE__CODE_INTERNAL,
                          "out of memory");
        return;
    }
    a->kind = env->type;
    a->barrier.data = a;
    nd_req_begin(&a->req, sc, env);
    if (!nd_node_is_leader(n)) {
        nd_req_not_leader(&a->req);
        nd_req_end(&a->req);
        cm_free(a);
        return;
    }
    int rv = raft_barrier(&n->raft, &a->barrier, on_barrier);
    if (rv != 0) {
        answer_raft_failure(a, rv);
        nd_req_end(&a->req);
        cm_free(a);
    }
}

static const char *role_name(struct nd_node *n)
{
    if (!n->raft_started)
        return "starting";
    switch (raft_state(&n->raft)) {
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

void nd_handle_status(struct nd_sconn *sc, const Hw__Envelope *env)
{
    struct nd_node *n = sc->n;
    Hw__Envelope out;
    Hw__StatusOk st = HW__STATUS_OK__INIT;
    Hw__NodeInfo infos[ND_MAX_PEERS], *pinfos[ND_MAX_PEERS];
    Hw__ShardInfo shard = HW__SHARD_INFO__INIT, *pshard = &shard;
    uint32_t replicas[ND_MAX_PEERS];

    for (unsigned i = 0; i < n->npeers; i++) {
        hw__node_info__init(&infos[i]);
        infos[i].id = n->peers[i].id;
        infos[i].rpc_address = n->peers[i].rpc;
        infos[i].raft_address = n->peers[i].raft;
        infos[i].zone = n->peers[i].id == n->id ? (char *)n->cfg->zone : "";
        pinfos[i] = &infos[i];
        replicas[i] = n->peers[i].id;
    }
    shard.id = n->shard;
    shard.n_replicas = n->npeers;
    shard.replicas = replicas;
    shard.leader_id = nd_node_leader(n, NULL);
    shard.role = (char *)role_name(n);
    if (n->raft_started) {
        shard.term = n->raft.current_term;
        shard.commit_index = n->raft.commit_index;
        shard.applied_index = raft_last_applied(&n->raft);
        shard.last_index = raft_last_index(&n->raft);
    }
    shard.repair_backlog = n->fsm.repair_backlog;
    st.node_id = n->id;
    st.rpc_address = (char *)n->cfg->listen;
    st.raft_address = (char *)n->cfg->raft_listen;
    st.zone = (char *)n->cfg->zone;
    st.epoch = 1;
    st.n_nodes = n->npeers;
    st.nodes = pinfos;
    st.n_shards = 1;
    st.shards = &pshard;
    st.shard_count = (uint32_t)n->cfg->shards;
    st.staged_uploads = n->nuploads;
    st.uptime_ms = cm_wall_ms() - n->started_ms;
    st.reads = n->reads;
    Hw__Refusal refusals[CM_AUTH_R_COUNT], *prefusals[CM_AUTH_R_COUNT];
    for (int r = 0; r < CM_AUTH_R_COUNT; r++) {
        hw__refusal__init(&refusals[r]);
        refusals[r].reason = (char *)cm_auth_reason_name((enum cm_auth_reason)r);
        refusals[r].count = cm_auth_refused(n->auth, (enum cm_auth_reason)r);
        prefusals[r] = &refusals[r];
    }
    st.n_refusals = CM_AUTH_R_COUNT;
    st.refusals = prefusals;
    st.refusals_total = cm_auth_refused_total(n->auth);
    st.authenticated = cm_auth_enabled(n->auth);
    cm_env_init(&out, HW__MSG_TYPE__MSG_STATUS_OK, env->req_id, env->shard);
    out.status_ok = &st;
    cm_rpc_send(sc->conn, &out, NULL, 0);
}
