/* Authenticated Raft transport (see transport.h).
 *
 * Happy path (inbound): listener accepts -> a handshake object (hs) owns the new tcp handle
 *   (allocated with raft_malloc: raft frees it after its own uv_close) and a deadline timer ->
 *   both hellos, the peer's proof checked, its id/address checked against the membership ->
 *   our proof written -> reading stopped -> the tcp handle goes to a relay (relay.h), raft
 *   gets the relay's socket-pair end in accept_cb(id, address, stream) -> the timer closes,
 *   hs is freed.
 * Happy path (outbound): connect(id, address) -> tcp connect -> hellos, our proof, theirs
 *   checked, their id must be the one asked for -> connect cb(stream, 0).
 * Failures: a bad hello, a wrong proof, a non-member, the deadline, too many handshakes, a
 *   socket error -> tcp and timer closed -> (outbound) cb(NULL, RAFT_NOCONNECTION) once, after
 *   both close callbacks. The handshake reads exactly the bytes it wants (cm_auth_hs_space),
 *   so no raft byte is ever consumed here.
 * Close: stop listening, fail every handshake in progress (outbound ones with RAFT_CANCELED),
 *   close every relay; the transport's close callback fires once the listener, every
 *   handshake and every relay are closed. */
#include "transport.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "auth.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "rpc.h"
#include "shed.h"
#include "relay.h"

enum hs_state { HS_CONNECTING, HS_AUTH, HS_HANDED, HS_CLOSING };

struct tp;

struct hs {
    struct tp *tp;
    struct hs *prev, *next;
    enum hs_state state;
    int initiator;
    uv_tcp_t *tcp; /* raft_malloc'd; raft's after hand-over */
    uv_timer_t timer;
    uv_connect_t creq;
    int handles_open;
    int closing; /* hs_close ran */
    int status;  /* outbound: what the connect callback reports */
    struct raft_uv_connect *req;
    raft_uv_connect_cb cb;
    raft_id want_id;
    char peer[80];
    struct cm_auth_hs a;
};

struct tp {
    struct raft_uv_transport *t;
    uv_loop_t *loop;
    struct nd_transport_cfg cfg;
    raft_id id;
    char address[CM_AUTH_ADDR_MAX + 1];
    uv_tcp_t listener;
    int listener_inited;
    int listener_closed;
    struct cm_shed shed; /* closes inbound connections we have no memory for (shed.h) */
    raft_uv_accept_cb accept_cb;
    struct hs *hss;
    unsigned npending;
    struct nd_relays relays;
    int closing;
    raft_uv_transport_close_cb close_cb;
};

struct hs_wreq {
    uv_write_t req;
    uint8_t data[CM_AUTH_HELLO_MAX];
};

static void tp_maybe_closed(struct tp *tp)
{
    if (tp->closing && tp->hss == NULL && tp->relays.head == NULL &&
        (!tp->listener_inited || tp->listener_closed) && !cm_shed_busy(&tp->shed) &&
        tp->close_cb != NULL) {
        raft_uv_transport_close_cb cb = tp->close_cb;
        tp->close_cb = NULL;
        cb(tp->t);
    }
}

static void hs_unlink(struct hs *h)
{
    struct tp *tp = h->tp;
    if (h->prev)
        h->prev->next = h->next;
    else
        tp->hss = h->next;
    if (h->next)
        h->next->prev = h->prev;
    tp->npending--;
}

static void hs_finalize(struct hs *h)
{
    struct tp *tp = h->tp;
    hs_unlink(h);
    if (h->initiator && h->state != HS_HANDED && h->cb != NULL)
        h->cb(h->req, NULL, tp->closing ? RAFT_CANCELED : h->status);
    cm_free(h);
    tp_maybe_closed(tp);
}

static void on_hs_handle_closed(uv_handle_t *handle)
{
    struct hs *h = handle->data;
    if (handle == (uv_handle_t *)h->tcp) {
        raft_free(h->tcp);
        h->tcp = NULL;
    }
    assert(h->handles_open > 0);
    if (--h->handles_open == 0)
        hs_finalize(h);
}

static void hs_close(struct hs *h)
{
    if (h->closing)
        return;
    h->closing = 1;
    if (h->state != HS_HANDED)
        h->state = HS_CLOSING;
    uv_close((uv_handle_t *)&h->timer, on_hs_handle_closed);
    if (h->tcp != NULL)
        uv_close((uv_handle_t *)h->tcp, on_hs_handle_closed);
}

static void hs_refuse(struct hs *h, enum cm_auth_reason r, const char *what)
{
    cm_auth_refuse(h->tp->cfg.auth, r, h->peer, what);
    hs_close(h);
}

static struct hs *hs_new(struct tp *tp, int initiator)
{
    struct hs *h = cm_calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->tcp = raft_malloc(sizeof(*h->tcp));
    if (h->tcp == NULL) {
        cm_free(h);
        return NULL;
    }
    h->tp = tp;
    h->initiator = initiator;
    h->status = RAFT_NOCONNECTION;
    uv_tcp_init(tp->loop, h->tcp);
    uv_timer_init(tp->loop, &h->timer);
    h->tcp->data = h;
    h->timer.data = h;
    h->handles_open = 2;
    h->next = tp->hss;
    if (tp->hss)
        tp->hss->prev = h;
    tp->hss = h;
    tp->npending++;
    return h;
}

/* ---- handshake I/O ---- */

static void on_hs_write(uv_write_t *req, int status)
{
    cm_free(req); /* a failed write shows up as a read error, or as raft's own write error */
}

static int hs_send(struct hs *h, const uint8_t *p, size_t n)
{
    struct hs_wreq *w = cm_malloc(sizeof(*w));
    if (w == NULL)
        return CM_ENOMEM;
    memcpy(w->data, p, n);
    w->req.data = NULL; /* the callback must not touch h: it may run after the hand-over */
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)h->tcp, &b, 1, on_hs_write) != 0) {
        cm_free(w);
        return CM_EIO;
    }
    return 0;
}

static void on_hs_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct hs *h = handle->data;
    uint8_t *p = NULL;
    size_t len = 0;
    if (h->state == HS_AUTH)
        cm_auth_hs_space(&h->a, &p, &len);
    *buf = uv_buf_init((char *)p, (unsigned)len);
}

/* Authenticated: check who the peer says it is, then give raft the stream. */
static void hs_done(struct hs *h, const uint8_t *send, size_t sendlen)
{
    struct tp *tp = h->tp;
    const struct cm_auth_hello *p = &h->a.peer;
    char what[CM_AUTH_ADDR_MAX + 64];
    if (p->role != CM_AUTH_ROLE_NODE || p->node_id == 0) {
        hs_refuse(h, CM_AUTH_R_BAD_HELLO, "raft peer is not a node");
        return;
    }
    if (h->initiator ? p->node_id != h->want_id
                     : !tp->cfg.is_member(tp->cfg.arg, (raft_id)p->node_id, p->addr)) {
        snprintf(what, sizeof(what), "server id %llu at %s is not a member",
                 (unsigned long long)p->node_id, p->addr);
        hs_refuse(h, CM_AUTH_R_NOT_MEMBER, what);
        return;
    }
    if (!h->initiator && tp->relays.n >= tp->cfg.max_conns) {
        hs_refuse(h, CM_AUTH_R_LIMIT, "too many raft connections");
        return;
    }
    if (send != NULL && hs_send(h, send, sendlen) != 0) {
        hs_close(h);
        return;
    }
    uv_read_stop((uv_stream_t *)h->tcp);
    uv_timer_stop(&h->timer);
    uv_stream_t *stream = (uv_stream_t *)h->tcp;
    h->state = HS_HANDED;
    h->tcp = NULL; /* raft's now: it sets stream->data, uv_closes and raft_frees it */
    stream->data = NULL;
    h->handles_open--;
    CM_DEBUG("msg=\"raft peer authenticated\" peer=%s id=%llu dir=%s", h->peer,
             (unsigned long long)p->node_id, h->initiator ? "out" : "in");
    if (h->initiator) {
        h->cb(h->req, stream, 0);
    } else {
        uv_stream_t *raft_end = NULL; /* raft reads it; our relay checks what goes in */
        if (nd_relay_start(&tp->relays, tp->loop, (uv_tcp_t *)stream, h->peer, &raft_end) == 0)
            tp->accept_cb(tp->t, (raft_id)p->node_id, p->addr, raft_end);
    }
    hs_close(h); /* closes the timer only */
}

static void on_hs_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct hs *h = s->data;
    if (h->state != HS_AUTH)
        return;
    if (nread < 0) {
        if (h->a.have > 0 || h->a.state != CM_AUTH_HS_HELLO)
            hs_refuse(h, CM_AUTH_R_BAD_HELLO, "closed during the handshake");
        else
            hs_close(h);
        return;
    }
    if (nread == 0)
        return;
    const uint8_t *send = NULL;
    size_t sendlen = 0;
    int rv = cm_auth_hs_advance(&h->a, (size_t)nread, &send, &sendlen);
    if (rv < 0) {
        hs_refuse(h, h->a.why, rv == CM_EAUTH ? "wrong cluster secret" : "not a cluster handshake");
        return;
    }
    if (rv == 1) {
        hs_done(h, send, sendlen);
        return;
    }
    if (send != NULL && hs_send(h, send, sendlen) != 0)
        hs_close(h);
}

static void on_hs_timeout(uv_timer_t *t)
{
    struct hs *h = t->data;
    if (h->state == HS_AUTH)
        hs_refuse(h, CM_AUTH_R_TIMEOUT, "no raft handshake before the deadline");
    else if (h->state == HS_CONNECTING)
        hs_close(h); /* an unreachable peer, not a refusal */
}

static void hs_begin(struct hs *h)
{
    struct tp *tp = h->tp;
    int rv = cm_auth_hs_init(&h->a, tp->cfg.auth, h->initiator, CM_AUTH_CHAN_RAFT, tp->cfg.group,
                             tp->address);
    if (rv == 0)
        rv = hs_send(h, h->a.mine, h->a.mine_len);
    if (rv == 0)
        rv = uv_read_start((uv_stream_t *)h->tcp, on_hs_alloc, on_hs_read) == 0 ? 0 : CM_EIO;
    if (rv != 0) {
        hs_close(h);
        return;
    }
    h->state = HS_AUTH;
}

/* ---- inbound ---- */

static void on_connection(uv_stream_t *ls, int status)
{
    struct tp *tp = ls->data;
    if (status != 0 || tp->closing)
        return;
    struct hs *h = hs_new(tp, 0);
    if (h == NULL) {
        CM_ERROR("msg=\"raft accept: out of memory, connection closed\"");
        cm_shed(&tp->shed); /* left unaccepted, libuv would stop accepting here for good */
        return;
    }
    if (uv_accept(ls, (uv_stream_t *)h->tcp) != 0) {
        hs_close(h);
        return;
    }
    cm_tcp_peer_name(h->tcp, h->peer, sizeof(h->peer));
    uv_tcp_nodelay(h->tcp, 1);
    if (tp->npending > tp->cfg.max_pending) {
        hs_refuse(h, CM_AUTH_R_LIMIT, "too many raft handshakes in progress");
        return;
    }
    uv_timer_start(&h->timer, on_hs_timeout, tp->cfg.timeout_ms, 0);
    hs_begin(h);
}

static int parse_addr(const char *address, struct sockaddr_storage *ss)
{
    char host[256];
    int port;
    if (cm_hostport_parse(address, host, sizeof(host), &port) != 0)
        return CM_EINVAL;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return CM_EINVAL;
}

static void on_shed_done(void *arg, int pending)
{
    struct tp *tp = arg;
    if (pending && !tp->closing) {
        on_connection((uv_stream_t *)&tp->listener, 0); /* libuv still holds it: try again */
        return;
    }
    tp_maybe_closed(tp);
}

static int tp_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct tp *tp = t->impl;
    if (strlen(address) > CM_AUTH_ADDR_MAX) {
        snprintf(t->errmsg, sizeof(t->errmsg), "address too long");
        return RAFT_INVALID;
    }
    tp->id = id;
    snprintf(tp->address, sizeof(tp->address), "%s", address);
    uv_tcp_init(tp->loop, &tp->listener);
    tp->listener.data = tp;
    tp->listener_inited = 1;
    cm_shed_init(&tp->shed, (uv_stream_t *)&tp->listener, on_shed_done, tp);
    return 0;
}

static int tp_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct tp *tp = t->impl;
    struct sockaddr_storage ss;
    const char *where =
        tp->cfg.bind != NULL && tp->cfg.bind[0] != '\0' ? tp->cfg.bind : tp->address;
    if (parse_addr(where, &ss) != 0) {
        snprintf(t->errmsg, sizeof(t->errmsg), "raft address %.200s is not a numeric IP:port",
                 where);
        return RAFT_INVALID;
    }
    int rv = uv_tcp_bind(&tp->listener, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&tp->listener, 128, on_connection);
    if (rv != 0) {
        snprintf(t->errmsg, sizeof(t->errmsg), "listen on %.160s: %.60s", where, uv_strerror(rv));
        return RAFT_IOERR;
    }
    tp->accept_cb = cb;
    return 0;
}

/* ---- outbound ---- */

static void on_tcp_connected(uv_connect_t *req, int status)
{
    struct hs *h = req->data;
    if (h->state != HS_CONNECTING)
        return; /* timed out or closing */
    if (status != 0) {
        hs_close(h);
        return;
    }
    cm_tcp_peer_name(h->tcp, h->peer, sizeof(h->peer));
    uv_tcp_nodelay(h->tcp, 1);
    hs_begin(h);
}

static int tp_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    struct tp *tp = t->impl;
    struct sockaddr_storage ss;
    if (tp->closing)
        return RAFT_CANCELED;
    if (parse_addr(address, &ss) != 0)
        return RAFT_NOCONNECTION;
    struct hs *h = hs_new(tp, 1);
    if (h == NULL)
        return RAFT_NOMEM;
    h->req = req;
    h->want_id = id;
    snprintf(h->peer, sizeof(h->peer), "%s", address);
    h->creq.data = h;
    int rv = uv_tcp_connect(&h->creq, h->tcp, (struct sockaddr *)&ss, on_tcp_connected);
    if (rv != 0) {
        hs_close(h); /* the callback must not fire: the call fails now */
        return RAFT_NOCONNECTION;
    }
    h->cb = cb;
    uv_timer_start(&h->timer, on_hs_timeout, tp->cfg.timeout_ms, 0);
    return 0;
}

/* ---- close ---- */

static void on_relays_empty(void *arg)
{
    tp_maybe_closed(arg);
}

static void on_listener_closed(uv_handle_t *handle)
{
    struct tp *tp = handle->data;
    tp->listener_closed = 1;
    tp_maybe_closed(tp);
}

static void tp_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct tp *tp = t->impl;
    assert(!tp->closing);
    tp->closing = 1;
    tp->close_cb = cb;
    if (tp->listener_inited)
        uv_close((uv_handle_t *)&tp->listener, on_listener_closed);
    for (struct hs *h = tp->hss; h != NULL; h = h->next)
        hs_close(h);
    nd_relays_close_all(&tp->relays);
    tp_maybe_closed(tp);
}

int nd_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
                      const struct nd_transport_cfg *cfg)
{
    struct tp *tp = cm_calloc(1, sizeof(*tp));
    if (tp == NULL)
        return CM_ENOMEM;
    memset(t, 0, sizeof(*t));
    tp->t = t;
    tp->loop = loop;
    tp->cfg = *cfg;
    if (tp->cfg.max_pending == 0)
        tp->cfg.max_pending = 64;
    if (tp->cfg.timeout_ms == 0)
        tp->cfg.timeout_ms = CM_AUTH_TIMEOUT_MS;
    if (tp->cfg.max_conns == 0)
        tp->cfg.max_conns = 64;
    if (tp->cfg.idle_ms == 0)
        tp->cfg.idle_ms = 300000;
    tp->relays.auth = cfg->auth;
    tp->relays.idle_ms = tp->cfg.idle_ms;
    tp->relays.on_empty = on_relays_empty;
    tp->relays.arg = tp;
    t->impl = tp;
    t->init = tp_init;
    t->listen = tp_listen;
    t->connect = tp_connect;
    t->close = tp_close;
    return 0;
}

void nd_transport_close(struct raft_uv_transport *t)
{
    cm_free(t->impl);
    t->impl = NULL;
}
