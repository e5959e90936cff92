/* Leader-side requests: COMMIT and DELETE go through the shard's Raft log and are answered
 * after apply on this node; READ_INDEX confirms leadership with a barrier. A COMMIT's
 * precondition travels in its entry and is decided by the FSM at apply: a failed one is answered
 * CODE_PRECONDITION_FAILED.
 *
 * raft_apply / raft_barrier either fail now (answered at once) or call back exactly once;
 * leadership lost after proposing -> CODE_LEADERSHIP_LOST (outcome unknown to the client). */
#include "ops/write.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "auth.h"
#include "shard/commit_check.h"
#include "err.h"
#include "etag.h"
#include "log.h"
#include "ops/watch.h"
#include "rpc/call.h"
#include "timeutil.h"

#define RELAY_IDLE_MS 3000u /* a relayed write's answer: the leader holds it while leases end */

struct apply_req {
    struct raft_apply apply; /* apply.data = this */
    struct raft_barrier barrier;
    struct nd_req req;
    struct nd_host *h;
    struct nd_shard *sh;
    int kind;                   /* HW__MSG_TYPE__MSG_COMMIT / _DELETE / _READ_INDEX */
    struct nd_apply_result res; /* a held answer's result (ops/watch.h) */
};

static void answer_raft_failure(struct apply_req *a, int status)
{
    if (status == RAFT_IOERR || status == RAFT_NOSPACE) {
        /* This leader could not write the entry to its raft log (a full disk): it may still
         * commit through the followers, so the outcome is unknown; a voter that can write
         * takes over and the gateway retries there (the same upload id is idempotent). */
        nd_shard_step_down(a->sh, "raft log write failed");
        nd_req_error(&a->req, HW__CODE__CODE_LEADERSHIP_LOST,
                     "the leader cannot write its raft log; it steps down; outcome unknown");
    } else if (status == RAFT_LEADERSHIPLOST) {
        nd_req_error(&a->req, HW__CODE__CODE_LEADERSHIP_LOST,
                     "leadership lost before the entry was applied; outcome unknown");
    } else if (status == RAFT_NOTLEADER) {
        nd_host_not_leader(a->h, a->sh, &a->req);
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
    ok.created_ms = res->created_ms;
    ok.expires_ms = res->expires_ms;
    env.commit_ok = &ok;
    nd_req_send(&a->req, &env, NULL, 0);
}

static void answer_applied(struct apply_req *a, const struct nd_apply_result *res)
{
    Hw__Envelope env;
    if (a->kind == HW__MSG_TYPE__MSG_COMMIT) {
        answer_commit(a, res);
        return;
    }
    Hw__DeleteOk ok = HW__DELETE_OK__INIT;
    cm_env_init(&env, HW__MSG_TYPE__MSG_DELETE_OK, 0, 0);
    ok.found = res->found;
    ok.version = res->version;
    env.delete_ok = &ok;
    nd_req_send(&a->req, &env, NULL, 0);
}

/* The held write became safe (every gateway lease holder knows it), or leadership was lost. */
static void on_safe(void *arg, int ok)
{
    struct apply_req *a = arg;
    if (ok)
        answer_applied(a, &a->res);
    else
        nd_req_error(&a->req, HW__CODE__CODE_LEADERSHIP_LOST,
                     "leadership lost before the write was known to every gateway; it is "
                     "committed, outcome unknown to this request");
    nd_req_end(&a->req);
    cm_free(a);
}

/* The index whose safety the answer waits for. Every answer tells the client something about
 * the state it was applied to, also one that changed nothing: a DELETE answered "not found" or
 * a failed precondition reveals the writes before it (a delete through another gateway, say),
 * so it waits until every lease holder has seen the newest change before it; else a gateway
 * still holding the deleted object in its cache serves it after the client saw the 404. A
 * change (also a retried commit's version) waits for its own index. */
static uint64_t hold_index(const struct apply_req *a, const struct nd_apply_result *res)
{
    if (res->changed || (a->kind == HW__MSG_TYPE__MSG_COMMIT && !res->precondition_failed))
        return res->version;
    uint64_t newest = nd_watch_newest(a->sh->watch);
    return newest < res->index ? newest : res->index;
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
    struct apply_req *a = req->data;
    if (status != 0) {
        answer_raft_failure(a, status);
    } else if (((const struct nd_apply_result *)result)->deferred) {
        /* Committed, but this leader's store refused it (disk full): it waits here, and a
         * leader that can apply answers the gateway's retry (idempotent by upload id). */
        nd_shard_step_down(a->sh, "the store refused an apply");
        nd_req_error(&a->req, HW__CODE__CODE_LEADERSHIP_LOST,
                     "committed, but the leader's store is full; it steps down; retry");
    } else {
        a->res = *(const struct nd_apply_result *)result;
        uint64_t idx = a->sh->watch != NULL ? hold_index(a, &a->res) : 0;
        if (idx != 0 && a->sh->watch != NULL && nd_watch_hold(a->sh->watch, idx, on_safe, a) == 0)
            return; /* on_safe answers */
        answer_applied(a, &a->res);
    }
    nd_req_end(&a->req);
    cm_free(a);
}

/* A request that waits for raft (apply or barrier), begun on sc; NULL: answered INTERNAL. */
static struct apply_req *apply_req_new(struct nd_host *h, struct nd_shard *sh, struct nd_sconn *sc,
                                       const Hw__Envelope *env)
{
    struct apply_req *a = cm_calloc(1, sizeof(*a));
    if (a == NULL) {
        nd_sconn_error(sc, env, HW__CODE__CODE_INTERNAL, "out of memory");
        return NULL;
    }
    a->h = h;
    a->sh = sh;
    a->kind = env->type;
    a->apply.data = a;
    a->barrier.data = a;
    nd_req_begin(&a->req, sc, env);
    return a;
}

/* ---- relay (a gateway that cannot reach the leader asked a follower) ---- */

struct relay_req {
    struct nd_req req;
    struct nd_call *call;
};

static int on_relayed(struct nd_call *c, int status, const Hw__Envelope *env,
                      const struct cm_slice *pl, void *arg)
{
    struct relay_req *rr = arg;
    if (status != 0 || env == NULL) {
        /* It may have been proposed before the answer was lost: outcome unknown. */
        nd_req_error(&rr->req, HW__CODE__CODE_LEADERSHIP_LOST,
                     "relay to the leader failed; the outcome is unknown");
    } else {
        Hw__Envelope out = *env; /* the leader's answer, as it gave it */
        nd_req_send(&rr->req, &out, NULL, 0);
    }
    nd_req_end(&rr->req);
    cm_free(rr);
    return 1;
}

/* Forward env to the leader this node knows; 0 when there is none to forward to. */
static int relay(struct nd_host *h, struct nd_shard *sh, struct nd_sconn *sc,
                 const Hw__Envelope *env)
{
    const char *rpc = NULL;
    uint32_t leader = nd_host_leader(h, sh, &rpc);
    if (leader == 0 || leader == h->cfg.id || rpc == NULL)
        return 0;
    struct relay_req *rr = cm_calloc(1, sizeof(*rr));
    if (rr == NULL)
        return 0;
    Hw__Envelope fwd = *env;
    fwd.relay = 0; /* one hop: the leader never forwards it again */
    fwd.req_id = ++h->next_req_id;
    nd_req_begin(&rr->req, sc, env);
    if (nd_call_start(h->loop, h->auth, rpc, h->cfg.id, h->cfg.listen, &fwd, RELAY_IDLE_MS,
                      on_relayed, rr, &rr->call) != 0) {
        nd_req_end(&rr->req);
        cm_free(rr);
        return 0;
    }
    return 1;
}

/* Only the leader proposes; others relay a gateway's relay request to the leader, or answer
 * NOT_LEADER / NO_LEADER with what they know. */
static void propose(struct nd_host *h, struct nd_shard *sh, struct nd_sconn *sc,
                    const Hw__Envelope *env, Hw__RaftEntry *entry)
{
    if (!nd_shard_is_leader(sh) && env->relay && relay(h, sh, sc, env))
        return;
    if (!nd_shard_is_leader(sh)) {
        struct nd_req r;
        nd_req_begin(&r, sc, env);
        nd_host_not_leader(h, sh, &r);
        nd_req_end(&r);
        return;
    }
    struct apply_req *a = apply_req_new(h, sh, sc, env);
    if (a == NULL)
        return;
    int rv = nd_shard_apply(sh, entry, &a->apply, on_applied);
    if (rv != 0) {
        if (rv == RAFT_NOMEM)
            nd_req_error(&a->req, HW__CODE__CODE_INTERNAL, "out of memory");
        else
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

void nd_op_commit(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                  const struct cm_slice *pl)
{
    struct nd_host *h = ctx;
    struct nd_shard *sh = nd_host_shard(h, env->shard);
    const Hw__Commit *c = env->commit;
    uint32_t members[ND_HOST_MAX_PEERS];
    char why[160];
    for (unsigned i = 0; i < h->npeers; i++)
        members[i] = h->peers[i].id;
    int rv = nd_commit_check(c, members, h->npeers, h->cfg.replicas, why, sizeof(why));
    if (rv == 0 && !precondition_valid(c->precondition)) {
        snprintf(why, sizeof(why), "COMMIT precondition value too long");
        rv = CM_EINVAL;
    }
    if (rv != 0) {
        cm_auth_refuse(h->auth, CM_AUTH_R_BAD_COMMIT, sc->conn ? cm_rpc_peer(sc->conn) : "-", why);
        nd_sconn_error(sc, env, HW__CODE__CODE_BAD_REQUEST, why);
        return;
    }
    Hw__RaftEntry e = HW__RAFT_ENTRY__INIT;
    Hw__ObjectMeta m = HW__OBJECT_META__INIT;
    int64_t now = nd_now_ms(h->clock);
    e.kind = HW__RAFT_ENTRY__KIND__KIND_PUT;
    e.shard = sh->id;
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
    propose(h, sh, sc, env, &e);
}

void nd_op_delete(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                  const struct cm_slice *pl)
{
    struct nd_host *h = ctx;
    struct nd_shard *sh = nd_host_shard(h, env->shard);
    if (env->delete_ == NULL || !nd_commit_key_ok(env->delete_->key)) {
        nd_sconn_error(sc, env, HW__CODE__CODE_BAD_REQUEST, "DELETE needs a key");
        return;
    }
    Hw__RaftEntry e = HW__RAFT_ENTRY__INIT;
    Hw__ObjectMeta m = HW__OBJECT_META__INIT;
    e.kind = HW__RAFT_ENTRY__KIND__KIND_DELETE;
    e.shard = sh->id;
    e.meta = &m;
    m.key = env->delete_->key;
    if (env->delete_->op_id.len == ND_UPLOAD_ID_LEN) /* the fsm keeps it like an upload id */
        m.upload_id = env->delete_->op_id;
    propose(h, sh, sc, env, &e);
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
        ok.index = raft_last_applied(a->sh->raft); /* committed, even if the store lags */
        env.read_index_ok = &ok;
        nd_req_send(&a->req, &env, NULL, 0);
    }
    nd_req_end(&a->req);
    cm_free(a);
}

void nd_op_read_index(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                      const struct cm_slice *pl)
{
    struct nd_host *h = ctx;
    struct nd_shard *sh = nd_host_shard(h, env->shard);
    struct apply_req *a = apply_req_new(h, sh, sc, env);
    if (a == NULL)
        return;
    if (!nd_shard_is_leader(sh)) {
        nd_host_not_leader(h, sh, &a->req);
        nd_req_end(&a->req);
        cm_free(a);
        return;
    }
    int rv = raft_barrier(sh->raft, &a->barrier, on_barrier);
    if (rv != 0) {
        answer_raft_failure(a, rv);
        nd_req_end(&a->req);
        cm_free(a);
    }
}
