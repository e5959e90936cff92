/* Server connections and request contexts (see req.h). */
#include "rpc/req.h"

#include "alloc.h"
#include "frame.h"

struct nd_sconn *nd_sconn_new(void *ctx, struct cm_rpc_conn *conn)
{
    struct nd_sconn *sc = cm_calloc(1, sizeof(*sc));
    if (sc == NULL)
        return NULL;
    sc->ctx = ctx;
    sc->conn = conn;
    sc->refs = 1;
    return sc;
}

void nd_sconn_unref(struct nd_sconn *sc)
{
    if (--sc->refs == 0)
        cm_free(sc);
}

/* A frame that cannot be queued (out of memory) closes the connection in cm_rpc_send (rpc.h),
 * so the peer fails fast and retries elsewhere instead of waiting for the answer. */
void nd_sconn_send(struct nd_sconn *sc, Hw__Envelope *env, const struct cm_slice *payload, size_t n)
{
    if (sc->conn != NULL)
        (void)cm_rpc_send(sc->conn, env, payload, n);
}

void nd_sconn_error(struct nd_sconn *sc, const Hw__Envelope *env, Hw__Code code, const char *msg)
{
    if (sc->conn != NULL)
        (void)cm_rpc_send_error(sc->conn, env->req_id, env->shard, code, msg);
}

void nd_req_begin(struct nd_req *r, struct nd_sconn *sc, const Hw__Envelope *env)
{
    r->sc = sc;
    r->req_id = env->req_id;
    r->shard = env->shard;
    sc->refs++;
    if (sc->conn != NULL)
        cm_rpc_pause(sc->conn);
}

void nd_req_end(struct nd_req *r)
{
    struct nd_sconn *sc = r->sc;
    if (sc == NULL)
        return;
    r->sc = NULL;
    if (sc->conn != NULL)
        cm_rpc_resume(sc->conn);
    nd_sconn_unref(sc);
}

int nd_req_open(const struct nd_req *r)
{
    return r->sc != NULL && r->sc->conn != NULL && !cm_rpc_is_closing(r->sc->conn);
}

void nd_req_send(struct nd_req *r, Hw__Envelope *env, const struct cm_slice *payload, size_t n)
{
    if (!nd_req_open(r))
        return;
    env->req_id = r->req_id;
    env->shard = r->shard;
    (void)cm_rpc_send(r->sc->conn, env, payload, n);
}

void nd_req_error(struct nd_req *r, Hw__Code code, const char *msg)
{
    if (!nd_req_open(r))
        return;
    (void)cm_rpc_send_error(r->sc->conn, r->req_id, r->shard, code, msg);
}

void nd_req_not_leader(struct nd_req *r, uint32_t leader_id, const char *leader_rpc)
{
    Hw__Envelope env;
    cm_env_init(&env, HW__MSG_TYPE__MSG_ERROR, r->req_id, r->shard);
    if (leader_id == 0) {
        env.code = HW__CODE__CODE_NO_LEADER;
        env.message = "no leader known; retry";
    } else {
        env.code = HW__CODE__CODE_NOT_LEADER;
        env.message = "not the leader";
        env.leader_id = leader_id;
        env.leader_address = (char *)(leader_rpc ? leader_rpc : "");
    }
    nd_req_send(r, &env, NULL, 0);
}
