/* Node RPC server: accept, handshake, dispatch (see server.h). */
#include "server.h"

#include <string.h>

#include "alloc.h"
#include "crc32c.h"
#include "err.h"
#include "log.h"

uint32_t nd_shard_of(const char *key, uint32_t shard_count)
{
    const char *slash = strrchr(key, '/');
    size_t n = slash ? (size_t)(slash - key) : 0;
    return shard_count ? cm_crc32c(0, key, n) % shard_count : 0;
}

int nd_key_valid(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    return n > 0 && n <= 1024 && key[0] == '/';
}

static void sconn_unref(struct nd_sconn *sc)
{
    if (--sc->refs == 0)
        cm_free(sc);
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
    sconn_unref(sc);
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
    cm_rpc_send(r->sc->conn, env, payload, n);
}

void nd_req_error(struct nd_req *r, Hw__Code code, const char *msg)
{
    if (!nd_req_open(r))
        return;
    cm_rpc_send_error(r->sc->conn, r->req_id, r->shard, code, msg);
}

void nd_req_not_leader(struct nd_req *r)
{
    const char *rpc = NULL;
    uint32_t leader = nd_node_leader(r->sc->n, &rpc);
    Hw__Envelope env;
    cm_env_init(&env, HW__MSG_TYPE__MSG_ERROR, r->req_id, r->shard);
    if (leader == 0) {
        env.code = HW__CODE__CODE_NO_LEADER;
        env.message = "no leader known; retry";
    } else {
        env.code = HW__CODE__CODE_NOT_LEADER;
        env.message = "not the leader";
        env.leader_id = leader;
        env.leader_address = (char *)(rpc ? rpc : "");
    }
    nd_req_send(r, &env, NULL, 0);
}

static void handle_hello(struct nd_sconn *sc, const Hw__Envelope *env)
{
    struct nd_node *n = sc->n;
    if (env->hello == NULL || env->hello->proto_version != CM_PROTO_VERSION) {
        CM_WARN("rpc handshake refused: protocol version conn=%llu peer=%s",
                (unsigned long long)cm_rpc_id(sc->conn), cm_rpc_peer(sc->conn));
        cm_rpc_send_error(sc->conn, env->req_id, 0, HW__CODE__CODE_VERSION,
                          "unsupported protocol version");
        cm_rpc_close(sc->conn);
        return;
    }
    sc->hello = 1;
    Hw__Envelope out;
    Hw__HelloOk ok = HW__HELLO_OK__INIT;
    cm_env_init(&out, HW__MSG_TYPE__MSG_HELLO_OK, env->req_id, 0);
    ok.proto_version = CM_PROTO_VERSION;
    ok.node_id = n->id;
    ok.rpc_address = (char *)n->cfg->listen;
    ok.raft_address = (char *)n->cfg->raft_listen;
    ok.max_frame = CM_FRAME_MAX;
    out.hello_ok = &ok;
    cm_rpc_send(sc->conn, &out, NULL, 0);
}

static void on_frame(struct cm_rpc_conn *c, const Hw__Envelope *env, const struct cm_slice *payload)
{
    struct nd_sconn *sc = cm_rpc_data(c);
    if (env->type == HW__MSG_TYPE__MSG_HELLO) {
        handle_hello(sc, env);
        return;
    }
    if (!sc->hello) {
        CM_WARN("rpc request before handshake; closing conn=%llu peer=%s",
                (unsigned long long)cm_rpc_id(c), cm_rpc_peer(c));
        cm_rpc_send_error(c, env->req_id, env->shard, HW__CODE__CODE_BAD_REQUEST, "HELLO first");
        cm_rpc_close(c);
        return;
    }
    if (sc->n->stopping) {
        cm_rpc_send_error(c, env->req_id, env->shard, HW__CODE__CODE_UNAVAILABLE,
                          "node shutting down");
        return;
    }
    if (env->shard != sc->n->shard && env->type != HW__MSG_TYPE__MSG_STATUS &&
        env->type != HW__MSG_TYPE__MSG_STAGE && env->type != HW__MSG_TYPE__MSG_FINISH &&
        env->type != HW__MSG_TYPE__MSG_FETCH) {
        cm_rpc_send_error(c, env->req_id, env->shard, HW__CODE__CODE_BAD_REQUEST,
                          "this node does not host that shard");
        return;
    }
    switch (env->type) {
    case HW__MSG_TYPE__MSG_STAGE:
        nd_handle_stage(sc, env, payload);
        break;
    case HW__MSG_TYPE__MSG_FINISH:
        nd_handle_finish(sc, env);
        break;
    case HW__MSG_TYPE__MSG_COMMIT:
        nd_handle_commit(sc, env);
        break;
    case HW__MSG_TYPE__MSG_DELETE:
        nd_handle_delete(sc, env);
        break;
    case HW__MSG_TYPE__MSG_GET:
        nd_handle_get(sc, env, 0);
        break;
    case HW__MSG_TYPE__MSG_HEAD:
        nd_handle_get(sc, env, 1);
        break;
    case HW__MSG_TYPE__MSG_FETCH:
        nd_handle_fetch(sc, env);
        break;
    case HW__MSG_TYPE__MSG_STATUS:
        nd_handle_status(sc, env);
        break;
    case HW__MSG_TYPE__MSG_READ_INDEX:
        nd_handle_read_index(sc, env);
        break;
    case HW__MSG_TYPE__MSG_LIST:
        nd_handle_list(sc, env);
        break;
    default:
        CM_WARN("rpc unknown request type=%d conn=%llu", (int)env->type,
                (unsigned long long)cm_rpc_id(c));
        cm_rpc_send_error(c, env->req_id, env->shard, HW__CODE__CODE_BAD_REQUEST,
                          "unknown request type");
        break;
    }
}

static void on_drain(struct cm_rpc_conn *c)
{
    struct nd_sconn *sc = cm_rpc_data(c);
    if (sc->on_drain != NULL) {
        void (*fn)(void *) = sc->on_drain;
        sc->on_drain = NULL;
        fn(sc->drain_arg);
    }
}

static void on_close(struct cm_rpc_conn *c, int status)
{
    struct nd_sconn *sc = cm_rpc_data(c);
    sc->conn = NULL;
    nd_uploads_drop_conn(sc->n, sc);
    if (sc->on_drain != NULL) {
        void (*fn)(void *) = sc->on_drain;
        sc->on_drain = NULL;
        fn(sc->drain_arg); /* the waiting stream sees a closed request and ends */
    }
    sconn_unref(sc);
}

static const struct cm_rpc_handlers server_handlers = {on_frame, on_drain, on_close};

static void on_accept(struct cm_rpc_server *s, struct cm_rpc_conn *c)
{
    struct nd_node *n = cm_rpc_server_data(s);
    struct nd_sconn *sc = cm_calloc(1, sizeof(*sc));
    if (sc == NULL) {
        cm_rpc_close(c);
        return;
    }
    sc->n = n;
    sc->conn = c;
    sc->refs = 1;
    cm_rpc_set_data(c, sc);
    cm_rpc_set_handlers(c, &server_handlers);
}

int nd_server_start(struct nd_node *n, char *errmsg, size_t errlen)
{
    int rv =
        cm_rpc_listen(n->loop, n->cfg->listen, n->auth, on_accept, n, &n->server, errmsg, errlen);
    if (rv != 0)
        return rv;
    struct cm_rpc_limits lim = {.max_conns = (unsigned)n->cfg->rpc_max_conns,
                                .idle_ms = (unsigned)n->cfg->rpc_idle_ms};
    cm_rpc_server_set_limits(n->server, &lim);
    return 0;
}
