/* Framed RPC connections over libuv TCP.
 *
 * Happy path (connect): cm_rpc_connect -> getaddrinfo -> tcp connect -> cluster handshake
 *   (auth.h; skipped when insecure) -> on_connect(c, 0) -> read loop: alloc from the frame
 *   decoder (payloads become slices of the read buffer, no copy) -> on_frame per frame ->
 *   cm_rpc_send queues envelope + payload slices (refs held until the write completes).
 * Happy path (accept): accept -> cluster handshake under a deadline (nothing is handed to the
 *   user before the peer proved the secret) -> on_accept -> read loop as above.
 * Limits (accepting side): connections (refused past the limit), the handshake deadline, an
 *   idle timeout (swept once a second), a cap on each connection's write queue; every refusal
 *   is counted and logged (rate-limited) through cm_auth_refuse.
 * Failures: resolve/connect error, timeout or failed handshake -> handles closed ->
 *   on_connect(NULL, err) once. Malformed/oversized frame, read or write error, EOF ->
 *   cm_rpc_close with that status.
 * Close: every handle (tcp, timer) is uv_close'd once; on_close fires after the last close
 *   callback, then the connection is freed. Pending writes are cancelled by libuv first. */
#include "rpc.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "auth.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "shed.h"
#include "timeutil.h"

enum conn_state { CONN_RESOLVING, CONN_CONNECTING, CONN_AUTH, CONN_OPEN, CONN_CLOSING };

struct cm_rpc_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* connect timeout, then deferred frame delivery after resume */
    uv_loop_t *loop;
    enum conn_state state;
    struct cm_rpc_handlers h;
    void *data;
    uint64_t id;
    char peer[80];
    struct cm_frame_decoder dec;
    size_t queued;
    int above_high;
    int paused;
    int reading;
    int tcp_inited;
    int handles_open;
    int close_status;
    int handed;            /* the user owns it: on_close will fire */
    struct cm_auth *auth;  /* borrowed; NULL = no accounting */
    struct cm_auth_hs *hs; /* owned, during CONN_AUTH only */
    size_t hs_bytes;       /* handshake bytes received (0: a bare connect-and-close) */
    uint64_t last_io_ms;   /* for the idle sweep */
    /* connecting side */
    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    cm_rpc_connect_cb on_connect;
    void *arg;
    int connect_status;
    /* accepting side */
    struct cm_rpc_server *server;
    struct cm_rpc_conn *prev, *next;
};

struct cm_rpc_server {
    uv_tcp_t tcp;
    uv_timer_t sweep; /* idle timeout sweep, once a second */
    cm_rpc_accept_cb on_accept;
    void *data;
    struct cm_auth *auth; /* borrowed */
    struct cm_rpc_limits lim;
    unsigned nconns;
    int closing;
    int tcp_closed;
    int sweep_open;
    struct cm_rpc_conn *conns;
    struct cm_shed shed; /* closes connections we have no memory for (shed.h) */
};

struct hs_wreq {
    uv_write_t req;
    uint8_t data[CM_AUTH_HELLO_MAX];
};

struct wreq {
    uv_write_t req;
    struct cm_rpc_conn *conn;
    struct cm_buf *head;
    size_t bytes;
    size_t n;
    struct cm_slice s[];
};

static atomic_ullong next_conn_id = 1;

static void conn_deliver(struct cm_rpc_conn *c);
static void conn_start_reading(struct cm_rpc_conn *c);

static struct cm_rpc_conn *conn_new(uv_loop_t *loop)
{
    struct cm_rpc_conn *c = cm_calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->id = atomic_fetch_add(&next_conn_id, 1);
    cm_frame_decoder_init(&c->dec, 256 * 1024);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 1;
    return c;
}

static void server_maybe_free(struct cm_rpc_server *s)
{
    if (s->closing && s->tcp_closed && !s->sweep_open && s->conns == NULL &&
        !cm_shed_busy(&s->shed))
        cm_free(s);
}

static void conn_finalize(struct cm_rpc_conn *c)
{
    if (c->handed && c->h.on_close)
        c->h.on_close(c, c->close_status);
    else if (!c->handed && c->on_connect)
        c->on_connect(NULL, c->connect_status ? c->connect_status : CM_ECLOSED, c->arg);
    cm_frame_decoder_close(&c->dec);
    cm_free(c->hs);
    struct cm_rpc_server *s = c->server;
    if (s != NULL) {
        s->nconns--;
        if (c->prev)
            c->prev->next = c->next;
        else
            s->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
    }
    cm_free(c);
    if (s != NULL)
        server_maybe_free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct cm_rpc_conn *c = h->data;
    assert(c->handles_open > 0);
    if (--c->handles_open == 0)
        conn_finalize(c);
}

static void conn_close_status(struct cm_rpc_conn *c, int status)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    c->close_status = status;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (c->tcp_inited)
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

void cm_rpc_close(struct cm_rpc_conn *c)
{
    conn_close_status(c, 0);
}

int cm_rpc_is_closing(struct cm_rpc_conn *c)
{
    return c->state == CONN_CLOSING;
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct cm_rpc_conn *c = h->data;
    size_t len = 0;
    if (c->state == CONN_AUTH) {
        /* Exactly the handshake bytes still wanted: nothing after them is consumed here. */
        uint8_t *hp = NULL;
        cm_auth_hs_space(c->hs, &hp, &len);
        *buf = uv_buf_init((char *)hp, (unsigned)len);
        return;
    }
    char *p = cm_frame_decoder_space(&c->dec, &len);
    *buf = uv_buf_init(p, p ? (unsigned)len : 0);
}

/* ---- cluster handshake (auth.h) ---- */

static void on_hs_write(uv_write_t *req, int status)
{
    struct cm_rpc_conn *c = req->data;
    cm_free(req);
    if (status != 0 && status != UV_ECANCELED)
        conn_close_status(c, CM_EIO);
}

static int hs_send(struct cm_rpc_conn *c, const uint8_t *p, size_t n)
{
    struct hs_wreq *w = cm_malloc(sizeof(*w));
    if (w == NULL)
        return CM_ENOMEM;
    memcpy(w->data, p, n);
    w->req.data = c;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_hs_write) != 0) {
        cm_free(w);
        return CM_EIO;
    }
    return 0;
}

static void hs_refuse(struct cm_rpc_conn *c, enum cm_auth_reason r, int status, const char *what)
{
    cm_auth_refuse(c->auth, r, c->peer, what);
    c->connect_status = status;
    conn_close_status(c, status);
}

/* Authenticated (or insecure): hand the connection to the user, then read frames. */
static void conn_ready(struct cm_rpc_conn *c)
{
    cm_free(c->hs);
    c->hs = NULL;
    uv_timer_stop(&c->timer);
    c->state = CONN_OPEN;
    c->handed = 1;
    c->last_io_ms = cm_mono_ms();
    if (c->server != NULL)
        c->server->on_accept(c->server, c);
    else
        c->on_connect(c, 0, c->arg);
    conn_start_reading(c);
}

static void on_hs_timeout(uv_timer_t *t)
{
    struct cm_rpc_conn *c = t->data;
    if (c->state == CONN_AUTH)
        hs_refuse(c, CM_AUTH_R_TIMEOUT, CM_ETIMEDOUT, "no handshake before the deadline");
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* A connected socket (either side): run the handshake, or go straight to OPEN if insecure. */
static void conn_begin(struct cm_rpc_conn *c)
{
    if (!cm_auth_enabled(c->auth)) {
        conn_ready(c);
        return;
    }
    int rv = CM_ENOMEM;
    c->hs = cm_malloc(sizeof(*c->hs));
    if (c->hs != NULL)
        rv = cm_auth_hs_init(c->hs, c->auth, c->server == NULL, CM_AUTH_CHAN_RPC, 0, "");
    if (rv == 0)
        rv = hs_send(c, c->hs->mine, c->hs->mine_len);
    if (rv == 0)
        rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0 ? 0 : CM_EIO;
    if (rv != 0) {
        c->connect_status = rv;
        conn_close_status(c, rv);
        return;
    }
    c->reading = 1;
    c->state = CONN_AUTH;
    unsigned ms = c->server != NULL ? c->server->lim.handshake_ms : 0;
    uv_timer_start(&c->timer, on_hs_timeout, ms ? ms : CM_AUTH_TIMEOUT_MS, 0);
}

static void hs_read(struct cm_rpc_conn *c, size_t n)
{
    const uint8_t *send = NULL;
    size_t sendlen = 0;
    c->hs_bytes += n;
    int rv = cm_auth_hs_advance(c->hs, n, &send, &sendlen);
    if (send != NULL && hs_send(c, send, sendlen) != 0) {
        conn_close_status(c, CM_EIO);
        return;
    }
    if (rv < 0)
        hs_refuse(c, c->hs->why, CM_EAUTH,
                  rv == CM_EAUTH ? "wrong cluster secret" : "not a cluster handshake");
    else if (rv == 1)
        conn_ready(c);
}

static void conn_deliver(struct cm_rpc_conn *c)
{
    while (c->state == CONN_OPEN && !c->paused) {
        struct cm_frame f;
        int rv = cm_frame_decoder_next(&c->dec, &f);
        if (rv == 0)
            return;
        if (rv < 0) {
            CM_WARN("msg=\"closing rpc connection: bad frame\" conn=%llu peer=%s err=\"%s\"",
                    (unsigned long long)c->id, c->peer, cm_strerror(rv));
            conn_close_status(c, rv);
            return;
        }
        if (c->h.on_frame)
            c->h.on_frame(c, f.env, &f.payload);
        cm_frame_release(&f);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct cm_rpc_conn *c = s->data;
    if (nread > 0 && c->state == CONN_AUTH) {
        hs_read(c, (size_t)nread);
        return;
    }
    if (nread < 0 && c->state == CONN_AUTH) {
        if (c->hs_bytes > 0 && c->server != NULL)
            hs_refuse(c, CM_AUTH_R_BAD_HELLO, CM_EAUTH, "closed during the handshake");
        else if (c->server == NULL && c->hs->state == CM_AUTH_HS_PROOF)
            hs_refuse(c, CM_AUTH_R_BAD_PROOF, CM_EAUTH,
                      "the node closed after our proof: a different cluster secret?");
        else
            hs_refuse(c, CM_AUTH_R_COUNT, c->hs_bytes > 0 ? CM_EAUTH : CM_ECLOSED, NULL);
        return;
    }
    if (nread > 0) {
        c->last_io_ms = cm_mono_ms();
        cm_frame_decoder_commit(&c->dec, (size_t)nread);
        conn_deliver(c);
        return;
    }
    if (nread == 0)
        return;
    if (nread != UV_EOF)
        CM_DEBUG("msg=\"rpc read error\" conn=%llu peer=%s err=\"%s\"", (unsigned long long)c->id,
                 c->peer, uv_strerror((int)nread));
    conn_close_status(c, nread == UV_ENOBUFS ? CM_ENOMEM : CM_ECLOSED);
}

static void conn_start_reading(struct cm_rpc_conn *c)
{
    if (c->reading || c->paused || c->state != CONN_OPEN)
        return;
    int rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rv != 0) {
        conn_close_status(c, CM_EIO);
        return;
    }
    c->reading = 1;
}

void cm_rpc_pause(struct cm_rpc_conn *c)
{
    c->paused = 1;
    if (c->reading && c->state == CONN_OPEN) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void on_resume_timer(uv_timer_t *t)
{
    struct cm_rpc_conn *c = t->data;
    conn_deliver(c);
    if (!c->paused)
        conn_start_reading(c);
}

void cm_rpc_resume(struct cm_rpc_conn *c)
{
    if (!c->paused || c->state != CONN_OPEN)
        return;
    c->paused = 0;
    /* Frames already decoded are delivered from the loop, not from inside this call. */
    uv_timer_start(&c->timer, on_resume_timer, 0, 0);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct cm_rpc_conn *c = w->conn;
    c->queued -= w->bytes;
    cm_buf_unref(w->head);
    for (size_t i = 0; i < w->n; i++)
        cm_slice_release(&w->s[i]);
    cm_free(w);
    if (status != 0) {
        if (status != UV_ECANCELED)
            conn_close_status(c, CM_EIO);
        return;
    }
    c->last_io_ms = cm_mono_ms();
    if (c->above_high && c->queued <= CM_RPC_LOW_WATER && c->state == CONN_OPEN) {
        c->above_high = 0;
        if (c->h.on_drain)
            c->h.on_drain(c);
    }
}

int cm_rpc_send(struct cm_rpc_conn *c, const Hw__Envelope *env, const struct cm_slice *payload,
                size_t npayload)
{
    if (c->state != CONN_OPEN)
        return CM_ECLOSED;
    size_t plen = 0;
    for (size_t i = 0; i < npayload; i++)
        plen += payload[i].len;
    if (c->queued + plen > CM_RPC_QUEUE_MAX) {
        cm_auth_refuse(c->auth, CM_AUTH_R_OVERSIZE, c->peer, "write queue over its cap");
        conn_close_status(c, CM_ETOOBIG);
        return CM_ETOOBIG;
    }
    struct wreq *w = cm_malloc(sizeof(*w) + npayload * sizeof(struct cm_slice));
    uv_buf_t *bufs = cm_malloc((npayload + 1) * sizeof(uv_buf_t));
    int rv = CM_ENOMEM;
    if (w == NULL || bufs == NULL)
        goto err_free;
    rv = cm_frame_encode_head(env, plen, &w->head);
    if (rv != 0)
        goto err_free;
    w->conn = c;
    w->n = 0;
    bufs[0] = uv_buf_init(w->head->data, (unsigned)w->head->len);
    for (size_t i = 0; i < npayload; i++) {
        if (payload[i].len == 0)
            continue;
        w->s[w->n] = cm_slice_dup(&payload[i]);
        bufs[w->n + 1] = uv_buf_init((char *)cm_slice_ptr(&payload[i]), (unsigned)payload[i].len);
        w->n++;
    }
    w->bytes = w->head->len + plen;
    rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, (unsigned)(w->n + 1), on_write);
    cm_free(bufs);
    if (rv != 0) {
        cm_buf_unref(w->head);
        for (size_t i = 0; i < w->n; i++)
            cm_slice_release(&w->s[i]);
        cm_free(w);
        conn_close_status(c, CM_EIO);
        return CM_EIO;
    }
    c->queued += w->bytes;
    if (c->queued > CM_RPC_HIGH_WATER)
        c->above_high = 1;
    return 0;

err_free:
    cm_free(bufs);
    cm_free(w);
    conn_close_status(c, rv); /* as rpc.h says; else the peer waits forever for this frame */
    return rv;
}

int cm_rpc_send_error(struct cm_rpc_conn *c, uint64_t req_id, uint32_t shard, Hw__Code code,
                      const char *message)
{
    Hw__Envelope env;
    cm_env_init(&env, HW__MSG_TYPE__MSG_ERROR, req_id, shard);
    env.code = code;
    env.message = (char *)(message ? message : "");
    return cm_rpc_send(c, &env, NULL, 0);
}

size_t cm_rpc_write_queue(struct cm_rpc_conn *c)
{
    return c->queued;
}

int cm_rpc_over_high_water(struct cm_rpc_conn *c)
{
    return c->queued > CM_RPC_HIGH_WATER;
}

/* ---- accessors ---- */

void cm_rpc_set_handlers(struct cm_rpc_conn *c, const struct cm_rpc_handlers *h)
{
    c->h = *h;
}

void cm_rpc_set_data(struct cm_rpc_conn *c, void *data)
{
    c->data = data;
}

void *cm_rpc_data(struct cm_rpc_conn *c)
{
    return c->data;
}

uint64_t cm_rpc_id(struct cm_rpc_conn *c)
{
    return c->id;
}

const char *cm_rpc_peer(struct cm_rpc_conn *c)
{
    return c->peer;
}

static void tcp_setup(struct cm_rpc_conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 30);
}

void cm_tcp_peer_name(uv_tcp_t *tcp, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(out, cap, "%s:%d", ip, port);
}

/* ---- accepting side ---- */

static void on_connection(uv_stream_t *ls, int status);

static void on_shed_done(void *arg, int pending)
{
    struct cm_rpc_server *s = arg;
    if (pending && !s->closing) {
        on_connection((uv_stream_t *)&s->tcp, 0); /* libuv still holds it: try again */
        return;
    }
    server_maybe_free(s);
}

/* No memory for a connection: shed it (shed.h), or libuv stops accepting here for good. */
static void server_shed(struct cm_rpc_server *s)
{
    CM_ERROR("msg=\"rpc accept: out of memory, connection closed\"");
    cm_shed(&s->shed);
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct cm_rpc_server *s = ls->data;
    if (status != 0 || s->closing)
        return;
    struct cm_rpc_conn *c = conn_new(ls->loop);
    if (c == NULL) {
        server_shed(s);
        return;
    }
    uv_tcp_init(ls->loop, &c->tcp);
    c->tcp.data = c;
    c->tcp_inited = 1;
    c->handles_open++;
    c->server = s;
    c->auth = s->auth;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        conn_close_status(c, CM_EIO);
        return;
    }
    tcp_setup(c);
    cm_tcp_peer_name(&c->tcp, c->peer, sizeof(c->peer));
    if (s->lim.max_conns != 0 && s->nconns > s->lim.max_conns) {
        hs_refuse(c, CM_AUTH_R_LIMIT, CM_EBUSY, "too many connections");
        return;
    }
    conn_begin(c);
}

static void on_sweep(uv_timer_t *t)
{
    struct cm_rpc_server *s = t->data;
    uint64_t now = cm_mono_ms();
    for (struct cm_rpc_conn *c = s->conns; c; c = c->next) {
        if (c->state != CONN_OPEN || c->paused || c->queued > 0 ||
            now - c->last_io_ms < s->lim.idle_ms)
            continue;
        cm_auth_refuse(c->auth, CM_AUTH_R_IDLE, c->peer, "idle connection closed");
        conn_close_status(c, CM_ETIMEDOUT);
    }
}

void cm_rpc_server_set_limits(struct cm_rpc_server *s, const struct cm_rpc_limits *lim)
{
    s->lim = *lim;
    if (s->lim.idle_ms != 0 && s->sweep_open && !s->closing)
        uv_timer_start(&s->sweep, on_sweep, 1000, 1000);
}

static int resolve_sync(const char *hostport, struct sockaddr_storage *ss, char *errmsg,
                        size_t errlen)
{
    char host[256];
    int port;
    if (cm_hostport_parse(hostport, host, sizeof(host), &port) != 0) {
        snprintf(errmsg, errlen, "bad address '%s' (want HOST:PORT)", hostport);
        return CM_EINVAL;
    }
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ||
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    snprintf(errmsg, errlen, "listen address '%s' must be a numeric IP", hostport);
    return CM_EINVAL;
}

int cm_rpc_listen(uv_loop_t *loop, const char *hostport, struct cm_auth *auth,
                  cm_rpc_accept_cb on_accept, void *data, struct cm_rpc_server **out, char *errmsg,
                  size_t errlen)
{
    struct sockaddr_storage ss;
    int rv = resolve_sync(hostport, &ss, errmsg, errlen);
    if (rv != 0)
        return rv;
    struct cm_rpc_server *s = cm_calloc(1, sizeof(*s));
    if (s == NULL)
        return CM_ENOMEM;
    s->on_accept = on_accept;
    s->data = data;
    s->auth = auth;
    s->lim.max_conns = CM_RPC_MAX_CONNS;
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    s->sweep_open = 1;
    uv_tcp_init(loop, &s->tcp);
    cm_shed_init(&s->shed, (uv_stream_t *)&s->tcp, on_shed_done, s);
    s->tcp.data = s;
    rv = uv_tcp_bind(&s->tcp, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&s->tcp, 511, on_connection);
    if (rv != 0) {
        snprintf(errmsg, errlen, "listen on %s: %s", hostport, uv_strerror(rv));
        cm_rpc_server_close(s);
        return CM_EIO;
    }
    *out = s;
    return 0;
}

void *cm_rpc_server_data(struct cm_rpc_server *s)
{
    return s->data;
}

static void on_server_closed(uv_handle_t *h)
{
    struct cm_rpc_server *s = h->data;
    s->tcp_closed = 1;
    server_maybe_free(s);
}

static void on_sweep_closed(uv_handle_t *h)
{
    struct cm_rpc_server *s = h->data;
    s->sweep_open = 0;
    server_maybe_free(s);
}

void cm_rpc_server_close(struct cm_rpc_server *s)
{
    if (uv_is_closing((uv_handle_t *)&s->tcp))
        return;
    s->closing = 1;
    for (struct cm_rpc_conn *c = s->conns; c; c = c->next)
        conn_close_status(c, 0);
    uv_close((uv_handle_t *)&s->sweep, on_sweep_closed);
    uv_close((uv_handle_t *)&s->tcp, on_server_closed);
}

/* ---- connecting side ---- */

static void connect_fail(struct cm_rpc_conn *c, int status)
{
    c->connect_status = status;
    conn_close_status(c, status);
}

static void on_connect_timeout(uv_timer_t *t)
{
    struct cm_rpc_conn *c = t->data;
    if (c->state == CONN_RESOLVING) {
        c->connect_status = CM_ETIMEDOUT;
        uv_cancel((uv_req_t *)&c->gai); /* if it already runs, on_resolved sees the status */
        return;
    }
    if (c->state == CONN_CONNECTING)
        connect_fail(c, CM_ETIMEDOUT);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct cm_rpc_conn *c = req->data;
    if (c->state == CONN_CLOSING)
        return; /* timed out: finalize reports it */
    if (status != 0) {
        connect_fail(c, status == UV_ECONNREFUSED ? CM_EUNAVAIL : CM_EIO);
        return;
    }
    uv_timer_stop(&c->timer);
    tcp_setup(c);
    conn_begin(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct cm_rpc_conn *c = req->data;
    if (status != 0 || c->connect_status != 0) {
        uv_freeaddrinfo(res);
        connect_fail(c, c->connect_status ? c->connect_status : CM_EUNAVAIL);
        return;
    }
    uv_tcp_init(c->loop, &c->tcp);
    c->tcp.data = c;
    c->tcp_inited = 1;
    c->handles_open++;
    c->state = CONN_CONNECTING;
    c->connect_req.data = c;
    int rv = uv_tcp_connect(&c->connect_req, &c->tcp, res->ai_addr, on_connected);
    uv_freeaddrinfo(res);
    if (rv != 0)
        connect_fail(c, CM_EIO);
}

int cm_rpc_connect(uv_loop_t *loop, const char *hostport, struct cm_auth *auth, unsigned timeout_ms,
                   const struct cm_rpc_handlers *h, cm_rpc_connect_cb on_connect, void *arg)
{
    char host[256], port_s[8];
    int port;
    if (cm_hostport_parse(hostport, host, sizeof(host), &port) != 0)
        return CM_EINVAL;
    snprintf(port_s, sizeof(port_s), "%d", port);
    struct cm_rpc_conn *c = conn_new(loop);
    if (c == NULL)
        return CM_ENOMEM;
    c->h = *h;
    c->auth = auth;
    c->on_connect = on_connect;
    c->arg = arg;
    c->state = CONN_RESOLVING;
    snprintf(c->peer, sizeof(c->peer), "%s", hostport);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    int rv = uv_getaddrinfo(loop, &c->gai, on_resolved, host, port_s, &hints);
    if (rv != 0) {
        /* Fails now: the callback must never fire. */
        c->on_connect = NULL;
        conn_close_status(c, CM_EIO);
        return CM_EIO;
    }
    uv_timer_start(&c->timer, on_connect_timeout, timeout_ms ? timeout_ms : 1000, 0);
    return 0;
}
