/* Real loopback sockets: a server echoes STAGE payloads back as DATA; a client connects, sends,
 * checks bytes and order, then everything closes and the loop closes cleanly. */
#include <criterion/criterion.h>
#include <string.h>

#include "auth.h"
#include "err.h"
#include "rpc.h"

struct ctx {
    uv_loop_t loop;
    struct cm_rpc_server *server;
    struct cm_rpc_conn *client;
    int port;
    int got;
    int client_closed;
    int server_conn_closed;
    int connect_failed;
    int connect_status;
    int accepted;
    uv_timer_t deadline;
};

static void srv_on_frame(struct cm_rpc_conn *c, const Hw__Envelope *env,
                         const struct cm_slice *payload)
{
    Hw__Envelope out;
    Hw__Data data = HW__DATA__INIT;
    cm_env_init(&out, HW__MSG_TYPE__MSG_DATA, env->req_id, env->shard);
    data.offset = env->stage ? env->stage->offset : 0;
    out.data = &data;
    cm_rpc_send(c, &out, payload, 1);
}

static void srv_on_close(struct cm_rpc_conn *c, int status)
{
    struct ctx *x = cm_rpc_data(c);
    x->server_conn_closed++;
}

static void on_accept(struct cm_rpc_server *s, struct cm_rpc_conn *c)
{
    static const struct cm_rpc_handlers h = {srv_on_frame, NULL, srv_on_close};
    cm_rpc_set_handlers(c, &h);
    cm_rpc_set_data(c, cm_rpc_server_data(s));
    ((struct ctx *)cm_rpc_server_data(s))->accepted++;
}

static void cli_on_frame(struct cm_rpc_conn *c, const Hw__Envelope *env,
                         const struct cm_slice *payload)
{
    struct ctx *x = cm_rpc_data(c);
    cr_assert_eq(env->type, HW__MSG_TYPE__MSG_DATA);
    cr_assert_eq(env->req_id, (uint64_t)x->got);
    cr_assert_eq(payload->len, 1000 + env->req_id);
    for (size_t i = 0; i < payload->len; i++)
        cr_assert_eq((unsigned char)cm_slice_ptr(payload)[i], (unsigned char)(env->req_id + i));
    if (++x->got == 50) {
        cm_rpc_close(c);
        cm_rpc_server_close(x->server);
        uv_close((uv_handle_t *)&x->deadline, NULL);
    }
}

static void cli_on_close(struct cm_rpc_conn *c, int status)
{
    struct ctx *x = cm_rpc_data(c);
    x->client_closed++;
}

static void on_connect(struct cm_rpc_conn *c, int status, void *arg)
{
    struct ctx *x = arg;
    cr_assert_eq(status, 0);
    cm_rpc_set_data(c, x);
    for (uint64_t i = 0; i < 50; i++) {
        struct cm_buf *b = cm_buf_new(1000 + i);
        for (size_t k = 0; k < 1000 + i; k++)
            b->data[k] = (char)(i + k);
        b->len = 1000 + i;
        struct cm_slice s = cm_slice_take(b, 0, b->len);
        Hw__Envelope env;
        Hw__Stage st = HW__STAGE__INIT;
        cm_env_init(&env, HW__MSG_TYPE__MSG_STAGE, i, 0);
        env.stage = &st;
        cr_assert_eq(cm_rpc_send(c, &env, &s, 1), 0);
        cm_slice_release(&s);
    }
}

static void on_deadline(uv_timer_t *t)
{
    cr_assert_fail("rpc test timed out");
}

static int listen_auth(struct ctx *x, struct cm_auth *a)
{
    char err[128], addr[64];
    for (int port = 20000 + (getpid() % 20000); port < 65000; port += 7) {
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
        if (cm_rpc_listen(&x->loop, addr, a, on_accept, x, &x->server, err, sizeof(err)) == 0)
            return port;
    }
    return -1;
}

static int listen_free_port(struct ctx *x)
{
    return listen_auth(x, NULL);
}

Test(rpc, echo_roundtrip_and_clean_close)
{
    struct ctx x;
    memset(&x, 0, sizeof(x));
    uv_loop_init(&x.loop);
    x.port = listen_free_port(&x);
    cr_assert_gt(x.port, 0);
    uv_timer_init(&x.loop, &x.deadline);
    uv_timer_start(&x.deadline, on_deadline, 10000, 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", x.port);
    static const struct cm_rpc_handlers h = {cli_on_frame, NULL, cli_on_close};
    cr_assert_eq(cm_rpc_connect(&x.loop, addr, NULL, 2000, &h, on_connect, &x), 0);
    uv_run(&x.loop, UV_RUN_DEFAULT);
    cr_assert_eq(x.got, 50);
    cr_assert_eq(x.client_closed, 1);
    cr_assert_eq(x.server_conn_closed, 1);
    cr_assert_eq(uv_loop_close(&x.loop), 0);
}

static void on_connect_refused(struct cm_rpc_conn *c, int status, void *arg)
{
    struct ctx *x = arg;
    cr_assert_null(c);
    x->connect_failed++;
    x->connect_status = status;
}

Test(rpc, connect_refused_reports_once)
{
    struct ctx x;
    memset(&x, 0, sizeof(x));
    uv_loop_init(&x.loop);
    /* Bind a port, close it, then connect to it: refused. */
    int port = listen_free_port(&x);
    cm_rpc_server_close(x.server);
    uv_run(&x.loop, UV_RUN_DEFAULT);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    static const struct cm_rpc_handlers h = {cli_on_frame, NULL, cli_on_close};
    cr_assert_eq(cm_rpc_connect(&x.loop, addr, NULL, 2000, &h, on_connect_refused, &x), 0);
    cr_assert_eq(x.connect_failed, 0, "callback must not fire from inside the call");
    uv_run(&x.loop, UV_RUN_DEFAULT);
    cr_assert_eq(x.connect_failed, 1);
    cr_assert_neq(x.connect_status, 0);
    cr_assert_eq(x.client_closed, 0);
    cr_assert_eq(uv_loop_close(&x.loop), 0);
}

Test(rpc, bad_address_fails_now)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    static const struct cm_rpc_handlers h = {cli_on_frame, NULL, cli_on_close};
    cr_assert_eq(cm_rpc_connect(&loop, "nonsense", NULL, 100, &h, on_connect_refused, NULL),
                 CM_EINVAL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

static void garbage_on_accept(struct cm_rpc_server *s, struct cm_rpc_conn *c)
{
    static const struct cm_rpc_handlers h = {srv_on_frame, NULL, srv_on_close};
    cm_rpc_set_handlers(c, &h);
    cm_rpc_set_data(c, cm_rpc_server_data(s));
}

static void on_garbage_written(uv_write_t *req, int status)
{
    uv_close((uv_handle_t *)req->handle, NULL);
}

static void on_raw_connect(uv_connect_t *req, int status)
{
    static char junk[] = "GET / HTTP/1.1\r\n\r\n";
    static uv_write_t w;
    cr_assert_eq(status, 0);
    uv_buf_t b = uv_buf_init(junk, sizeof(junk) - 1);
    uv_write(&w, req->handle, &b, 1, on_garbage_written);
}

static void server_closer(uv_timer_t *t)
{
    struct ctx *x = t->data;
    if (x->server_conn_closed == 1) {
        cm_rpc_server_close(x->server);
        uv_close((uv_handle_t *)t, NULL);
    }
}

Test(rpc, garbage_closes_connection_server_survives)
{
    struct ctx x;
    memset(&x, 0, sizeof(x));
    uv_loop_init(&x.loop);
    char err[128], addr[64];
    int port;
    for (port = 30000 + (getpid() % 20000); port < 65000; port += 11) {
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
        if (cm_rpc_listen(&x.loop, addr, NULL, garbage_on_accept, &x, &x.server, err, 128) == 0)
            break;
    }
    uv_tcp_t raw;
    uv_connect_t creq;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", port, &sa);
    uv_tcp_init(&x.loop, &raw);
    uv_tcp_connect(&creq, &raw, (struct sockaddr *)&sa, on_raw_connect);
    uv_timer_t poll;
    uv_timer_init(&x.loop, &poll);
    poll.data = &x;
    uv_timer_start(&poll, server_closer, 10, 10);
    uv_run(&x.loop, UV_RUN_DEFAULT);
    cr_assert_eq(x.server_conn_closed, 1);
    cr_assert_eq(uv_loop_close(&x.loop), 0);
}

static const char secret[] = "the-cluster-secret-for-rpc-tests";

Test(rpc, authenticated_echo_roundtrip)
{
    struct ctx x;
    struct cm_auth *node = NULL, *gw = NULL;
    memset(&x, 0, sizeof(x));
    cr_assert_eq(cm_auth_new_secret(secret, strlen(secret), CM_AUTH_ROLE_NODE, 1, &node), 0);
    cr_assert_eq(cm_auth_new_secret(secret, strlen(secret), CM_AUTH_ROLE_GATEWAY, 0, &gw), 0);
    uv_loop_init(&x.loop);
    x.port = listen_auth(&x, node);
    cr_assert_gt(x.port, 0);
    uv_timer_init(&x.loop, &x.deadline);
    uv_timer_start(&x.deadline, on_deadline, 10000, 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", x.port);
    static const struct cm_rpc_handlers h = {cli_on_frame, NULL, cli_on_close};
    cr_assert_eq(cm_rpc_connect(&x.loop, addr, gw, 2000, &h, on_connect, &x), 0);
    uv_run(&x.loop, UV_RUN_DEFAULT);
    cr_assert_eq(x.got, 50);
    cr_assert_eq(x.accepted, 1);
    cr_assert_eq(x.server_conn_closed, 1);
    cr_assert_eq(cm_auth_refused_total(node) + cm_auth_refused_total(gw), 0);
    cr_assert_eq(uv_loop_close(&x.loop), 0);
    cm_auth_free(node);
    cm_auth_free(gw);
}

static void on_connect_refused_stop(struct cm_rpc_conn *c, int status, void *arg)
{
    struct ctx *x = arg;
    on_connect_refused(c, status, arg);
    cm_rpc_server_close(x->server);
    uv_close((uv_handle_t *)&x->deadline, NULL);
}

Test(rpc, a_wrong_secret_never_reaches_the_handlers)
{
    struct ctx x;
    struct cm_auth *node = NULL, *gw = NULL;
    const char other[] = "some-other-secret-entirely";
    memset(&x, 0, sizeof(x));
    cr_assert_eq(cm_auth_new_secret(secret, strlen(secret), CM_AUTH_ROLE_NODE, 1, &node), 0);
    cr_assert_eq(cm_auth_new_secret(other, strlen(other), CM_AUTH_ROLE_GATEWAY, 0, &gw), 0);
    uv_loop_init(&x.loop);
    x.port = listen_auth(&x, node);
    cr_assert_gt(x.port, 0);
    uv_timer_init(&x.loop, &x.deadline);
    uv_timer_start(&x.deadline, on_deadline, 10000, 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", x.port);
    static const struct cm_rpc_handlers h = {cli_on_frame, NULL, cli_on_close};
    cr_assert_eq(cm_rpc_connect(&x.loop, addr, gw, 2000, &h, on_connect_refused_stop, &x), 0);
    uv_run(&x.loop, UV_RUN_DEFAULT);
    cr_assert_eq(x.connect_failed, 1);
    cr_assert_eq(x.connect_status, CM_EAUTH);
    cr_assert_eq(x.accepted, 0, "an unauthenticated connection reached on_accept");
    cr_assert_eq(x.server_conn_closed, 0);
    cr_assert_eq(cm_auth_refused(node, CM_AUTH_R_BAD_PROOF), 1);
    cr_assert_eq(cm_auth_refused(gw, CM_AUTH_R_BAD_PROOF), 1);
    cr_assert_eq(uv_loop_close(&x.loop), 0);
    cm_auth_free(node);
    cm_auth_free(gw);
}

/* Limits: a silent raw connection (handshake deadline), an authenticated idle one (idle
 * timeout), and a third connection past --rpc-max-conns 2 (refused). */
struct lim_ctx {
    struct ctx x;
    struct cm_auth *gw;
    char addr[64];
    uv_tcp_t raw;
    uv_connect_t raw_req;
    int raw_eof;
    int a_closed;
    int b_status;
    int b_done;
    char rawbuf[512];
};

static void lim_maybe_done(struct lim_ctx *l)
{
    if (l->raw_eof && l->a_closed && l->b_done) {
        cm_rpc_server_close(l->x.server);
        uv_close((uv_handle_t *)&l->x.deadline, NULL);
    }
}

static void lim_b_connect(struct cm_rpc_conn *c, int status, void *arg)
{
    struct lim_ctx *l = arg;
    cr_assert_null(c, "a third connection was accepted past the limit");
    l->b_status = status;
    l->b_done = 1;
    lim_maybe_done(l);
}

static void lim_a_close(struct cm_rpc_conn *c, int status)
{
    struct lim_ctx *l = cm_rpc_data(c);
    l->a_closed = 1;
    lim_maybe_done(l);
}

static void lim_a_connect(struct cm_rpc_conn *c, int status, void *arg)
{
    struct lim_ctx *l = arg;
    static const struct cm_rpc_handlers hb = {cli_on_frame, NULL, cli_on_close};
    cr_assert_eq(status, 0);
    cm_rpc_set_data(c, l);
    cr_assert_eq(cm_rpc_connect(&l->x.loop, l->addr, l->gw, 2000, &hb, lim_b_connect, l), 0);
}

static void raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct lim_ctx *l = h->data;
    *buf = uv_buf_init(l->rawbuf, sizeof(l->rawbuf));
}

static void raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct lim_ctx *l = s->data;
    if (nread < 0) {
        l->raw_eof = 1;
        uv_close((uv_handle_t *)&l->raw, NULL);
        lim_maybe_done(l);
    }
}

static void raw_connected(uv_connect_t *req, int status)
{
    struct lim_ctx *l = req->data;
    static const struct cm_rpc_handlers ha = {cli_on_frame, NULL, lim_a_close};
    cr_assert_eq(status, 0);
    uv_read_start((uv_stream_t *)&l->raw, raw_alloc, raw_read);
    cr_assert_eq(cm_rpc_connect(&l->x.loop, l->addr, l->gw, 2000, &ha, lim_a_connect, l), 0);
}

Test(rpc, limits_close_silent_and_idle_connections_and_refuse_extra_ones)
{
    static struct lim_ctx l;
    struct cm_auth *node = NULL;
    memset(&l, 0, sizeof(l));
    cr_assert_eq(cm_auth_new_secret(secret, strlen(secret), CM_AUTH_ROLE_NODE, 1, &node), 0);
    cr_assert_eq(cm_auth_new_secret(secret, strlen(secret), CM_AUTH_ROLE_GATEWAY, 0, &l.gw), 0);
    uv_loop_init(&l.x.loop);
    l.x.port = listen_auth(&l.x, node);
    cr_assert_gt(l.x.port, 0);
    struct cm_rpc_limits lim = {.max_conns = 2, .idle_ms = 200, .handshake_ms = 1000};
    cm_rpc_server_set_limits(l.x.server, &lim);
    uv_timer_init(&l.x.loop, &l.x.deadline);
    uv_timer_start(&l.x.deadline, on_deadline, 10000, 0);
    snprintf(l.addr, sizeof(l.addr), "127.0.0.1:%d", l.x.port);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", l.x.port, &sa);
    uv_tcp_init(&l.x.loop, &l.raw);
    l.raw.data = &l;
    l.raw_req.data = &l;
    cr_assert_eq(uv_tcp_connect(&l.raw_req, &l.raw, (struct sockaddr *)&sa, raw_connected), 0);
    uv_run(&l.x.loop, UV_RUN_DEFAULT);
    cr_assert(l.raw_eof && l.a_closed && l.b_done);
    cr_assert_neq(l.b_status, 0);
    cr_assert_eq(cm_auth_refused(node, CM_AUTH_R_LIMIT), 1);
    cr_assert_eq(cm_auth_refused(node, CM_AUTH_R_TIMEOUT), 1);
    cr_assert_eq(cm_auth_refused(node, CM_AUTH_R_IDLE), 1);
    cr_assert_eq(uv_loop_close(&l.x.loop), 0);
    cm_auth_free(node);
    cm_auth_free(l.gw);
}
