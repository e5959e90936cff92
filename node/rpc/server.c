/* Node RPC server: accept, handshake, dispatch (see server.h).
 *
 * Happy path: accept -> nd_sconn -> HELLO answered HELLO_OK -> each frame to its route.
 * Failures: a frame before HELLO or a wrong protocol version closes the connection; an
 * unknown type or an unhosted shard gets BAD_REQUEST; a stopping node UNAVAILABLE.
 * Close: on_close tells the node (on_conn_closed), wakes a stream waiting for drain (it sees
 * a closed request and ends), and drops the connection's reference. */
#include "rpc/server.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "frame.h"
#include "log.h"

struct nd_rpc_server {
    struct cm_rpc_server *rpc;
    const struct nd_rpc_server_cfg *cfg;
};

static void handle_hello(const struct nd_rpc_server_cfg *cfg, struct nd_sconn *sc,
                         const Hw__Envelope *env)
{
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
    ok.node_id = cfg->node_id;
    ok.rpc_address = (char *)cfg->listen;
    ok.raft_address = (char *)cfg->raft_listen;
    ok.max_frame = CM_FRAME_MAX;
    ok.finish_bytes = 1;
    out.hello_ok = &ok;
    nd_sconn_send(sc, &out, NULL, 0);
}

static const struct nd_rpc_route *route_of(const struct nd_rpc_server_cfg *cfg, Hw__MsgType t)
{
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (cfg->routes[i].type == t)
            return &cfg->routes[i];
    return NULL;
}

static void on_frame(struct cm_rpc_conn *c, const Hw__Envelope *env, const struct cm_slice *payload)
{
    struct nd_sconn *sc = cm_rpc_data(c);
    const struct nd_rpc_server_cfg *cfg = sc->ctx;
    if (env->type == HW__MSG_TYPE__MSG_HELLO) {
        handle_hello(cfg, sc, env);
        return;
    }
    if (!sc->hello) {
        CM_WARN("rpc request before handshake; closing conn=%llu peer=%s",
                (unsigned long long)cm_rpc_id(c), cm_rpc_peer(c));
        cm_rpc_send_error(c, env->req_id, env->shard, HW__CODE__CODE_BAD_REQUEST, "HELLO first");
        cm_rpc_close(c);
        return;
    }
    if (cfg->stopping(cfg->ctx)) {
        nd_sconn_error(sc, env, HW__CODE__CODE_UNAVAILABLE, "node shutting down");
        return;
    }
    const struct nd_rpc_route *r = route_of(cfg, env->type);
    if (r == NULL) {
        CM_WARN("rpc unknown request type=%d conn=%llu", (int)env->type,
                (unsigned long long)cm_rpc_id(c));
        nd_sconn_error(sc, env, HW__CODE__CODE_BAD_REQUEST, "unknown request type");
        return;
    }
    if (!r->any_shard && !cfg->hosts_shard(cfg->ctx, env->shard)) {
        nd_sconn_error(sc, env, HW__CODE__CODE_BAD_REQUEST, "this node does not host that shard");
        return;
    }
    r->fn(cfg->ctx, sc, env, payload);
}

static void wake_drain(struct nd_sconn *sc)
{
    if (sc->on_drain != NULL) {
        void (*fn)(void *) = sc->on_drain;
        sc->on_drain = NULL;
        fn(sc->drain_arg);
    }
}

static void on_drain(struct cm_rpc_conn *c)
{
    wake_drain(cm_rpc_data(c));
}

static void on_close(struct cm_rpc_conn *c, int status)
{
    struct nd_sconn *sc = cm_rpc_data(c);
    const struct nd_rpc_server_cfg *cfg = sc->ctx;
    sc->conn = NULL;
    sc->close_status = status;
    if (cfg->on_conn_closed != NULL)
        cfg->on_conn_closed(cfg->ctx, sc);
    wake_drain(sc); /* the waiting stream sees a closed request and ends */
    nd_sconn_unref(sc);
}

static const struct cm_rpc_handlers server_handlers = {on_frame, on_drain, on_close};

static void on_accept(struct cm_rpc_server *rs, struct cm_rpc_conn *c)
{
    struct nd_rpc_server *s = cm_rpc_server_data(rs);
    struct nd_sconn *sc = nd_sconn_new((void *)s->cfg, c);
    if (sc == NULL) {
        cm_rpc_close(c);
        return;
    }
    cm_rpc_set_data(c, sc);
    cm_rpc_set_handlers(c, &server_handlers);
}

int nd_rpc_server_start(uv_loop_t *loop, const struct nd_rpc_server_cfg *cfg,
                        struct nd_rpc_server **out, char *errmsg, size_t errlen)
{
    struct nd_rpc_server *s = cm_calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(errmsg, errlen, "rpc server: out of memory");
        return CM_ENOMEM;
    }
    s->cfg = cfg;
    int rv = cm_rpc_listen(loop, cfg->listen, cfg->auth, on_accept, s, &s->rpc, errmsg, errlen);
    if (rv != 0) {
        cm_free(s);
        return rv;
    }
    struct cm_rpc_limits lim = {.max_conns = cfg->max_conns, .idle_ms = cfg->idle_ms};
    cm_rpc_server_set_limits(s->rpc, &lim);
    *out = s;
    return 0;
}

void nd_rpc_server_close(struct nd_rpc_server *s)
{
    cm_rpc_server_close(s->rpc);
    cm_free(s);
}
