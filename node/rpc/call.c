/* Outbound peer requests (see call.h).
 *
 * States: CONNECTING -> OPEN (HELLO and the request sent back to back) -> DONE.
 * The timer bounds connect + every wait for the next frame. Memory is freed once both the
 * connection (if any) and the timer are closed. */
#include "rpc/call.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "rpc.h"

enum call_state { CALL_CONNECTING, CALL_OPEN, CALL_DONE };

struct nd_call {
    enum call_state state;
    int cancelled;
    uv_timer_t timer;
    int timer_closed;
    struct cm_rpc_conn *conn; /* NULL until connected and after its close */
    unsigned idle_ms;
    int handshaken; /* the HELLO_OK of our own handshake arrived */
    int connecting; /* on_connect has not run yet: it will, and needs c */
    nd_call_cb cb;
    void *arg;
    uint32_t self_id;
    char self_rpc[256];
    Hw__Envelope *req; /* owned copy until sent */
};

static void maybe_free(struct nd_call *c)
{
    if (c->state == CALL_DONE && c->conn == NULL && c->timer_closed && !c->connecting) {
        if (c->req != NULL)
            hw__envelope__free_unpacked(c->req, NULL);
        cm_free(c);
    }
}

static void on_timer_close(uv_handle_t *h)
{
    struct nd_call *c = h->data;
    c->timer_closed = 1;
    maybe_free(c);
}

/* Finish: report status (unless cancelled or status is the caller's own "done"). */
static void finish(struct nd_call *c, int status)
{
    if (c->state == CALL_DONE)
        return;
    int connecting = c->state == CALL_CONNECTING;
    c->state = CALL_DONE;
    if (status != 0 && !c->cancelled)
        c->cb(c, status, NULL, NULL, c->arg);
    uv_close((uv_handle_t *)&c->timer, on_timer_close);
    /* Still connecting: on_connect will arrive and close the connection it gets. */
    (void)connecting;
    if (c->conn != NULL)
        cm_rpc_close(c->conn);
}

static void on_timeout(uv_timer_t *t)
{
    struct nd_call *c = t->data;
    finish(c, CM_ETIMEDOUT);
}

static void on_frame(struct cm_rpc_conn *conn, const Hw__Envelope *env,
                     const struct cm_slice *payload)
{
    struct nd_call *c = cm_rpc_data(conn);
    if (c->state != CALL_OPEN)
        return;
    if (!c->handshaken) {
        c->handshaken = 1;
        if (env->type != HW__MSG_TYPE__MSG_HELLO_OK || env->hello_ok == NULL ||
            env->hello_ok->proto_version != CM_PROTO_VERSION)
            finish(c, CM_EPROTO);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, c->idle_ms, 0);
    if (c->cancelled) {
        finish(c, 0);
        return;
    }
    int done = c->cb(c, 0, env, payload, c->arg);
    if (done && c->state == CALL_OPEN)
        finish(c, 0);
}

static void on_close(struct cm_rpc_conn *conn, int status)
{
    struct nd_call *c = cm_rpc_data(conn);
    c->conn = NULL;
    finish(c, status ? status : CM_ECLOSED);
    maybe_free(c);
}

static const struct cm_rpc_handlers call_handlers = {on_frame, NULL, on_close};

static void on_connect(struct cm_rpc_conn *conn, int status, void *arg)
{
    struct nd_call *c = arg;
    c->connecting = 0;
    if (status != 0) {
        finish(c, status);
        maybe_free(c);
        return;
    }
    cm_rpc_set_data(conn, c);
    if (c->state == CALL_DONE) { /* cancelled or timed out while connecting */
        c->conn = conn;
        cm_rpc_close(conn);
        return;
    }
    c->conn = conn;
    c->state = CALL_OPEN;
    Hw__Envelope hello;
    Hw__Hello h = HW__HELLO__INIT;
    cm_env_init(&hello, HW__MSG_TYPE__MSG_HELLO, 0, 0);
    h.proto_version = CM_PROTO_VERSION;
    h.node_id = c->self_id;
    h.rpc_address = c->self_rpc;
    hello.hello = &h;
    if (cm_rpc_send(conn, &hello, NULL, 0) != 0 || cm_rpc_send(conn, c->req, NULL, 0) != 0) {
        cm_rpc_close(conn); /* (out of memory leaves it open) on_close reports */
        return;
    }
    hw__envelope__free_unpacked(c->req, NULL);
    c->req = NULL;
}

int nd_call_start(uv_loop_t *loop, struct cm_auth *auth, const char *addr, uint32_t self_id,
                  const char *self_rpc, const Hw__Envelope *req, unsigned idle_ms, nd_call_cb cb,
                  void *arg, struct nd_call **out)
{
    struct nd_call *c = cm_calloc(1, sizeof(*c));
    if (c == NULL)
        return CM_ENOMEM;
    size_t len = hw__envelope__get_packed_size(req);
    uint8_t *tmp = cm_malloc(len ? len : 1);
    if (tmp == NULL) {
        cm_free(c);
        return CM_ENOMEM;
    }
    hw__envelope__pack(req, tmp);
    c->req = hw__envelope__unpack(NULL, len, tmp);
    cm_free(tmp);
    if (c->req == NULL) {
        cm_free(c);
        return CM_ENOMEM;
    }
    c->cb = cb;
    c->arg = arg;
    c->idle_ms = idle_ms;
    c->self_id = self_id;
    snprintf(c->self_rpc, sizeof(c->self_rpc), "%s", self_rpc ? self_rpc : "");
    c->connecting = 1;
    int rv = cm_rpc_connect(loop, addr, auth, idle_ms, &call_handlers, on_connect, c);
    if (rv != 0) {
        hw__envelope__free_unpacked(c->req, NULL);
        cm_free(c);
        return rv;
    }
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, on_timeout, idle_ms + 1000, 0);
    if (out != NULL)
        *out = c;
    return 0;
}

void nd_call_cancel(struct nd_call *c)
{
    c->cancelled = 1;
    finish(c, 0);
}

void nd_call_pause(struct nd_call *c)
{
    if (c->conn != NULL && c->state == CALL_OPEN) {
        cm_rpc_pause(c->conn);
        uv_timer_stop(&c->timer);
    }
}

void nd_call_resume(struct nd_call *c)
{
    if (c->conn != NULL && c->state == CALL_OPEN) {
        cm_rpc_resume(c->conn);
        uv_timer_start(&c->timer, on_timeout, c->idle_ms, 0);
    }
}
