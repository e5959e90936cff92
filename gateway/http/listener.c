/* Listening sockets (gw_server_* of server.h): bind (optionally SO_REUSEPORT), accept each
 * connection as a byte stream (stream.h) and start the HTTP/1.1 engine on it (h1.h).
 *
 * Happy path: on_connection -> gw_stream_accept -> counted in --max-connections ->
 *   gw_h1_start. Over the limit: plain = 503 + close (h1), TLS = closed at once.
 *   --max-buffered-bytes: this server's streams are one budget list (budget.h; the streams
 *   join, charge and leave it themselves) and h1 reads its high-water marks from the budget.
 * Close: gw_server_close stops listening and closes every stream (handlers get on_abort);
 *   the server frees itself after the listener handle and the last stream are gone. */
#include "http/server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "err.h"
#include "http/h1.h"
#include "http/stream.h"
#include "log.h"
#include "shed.h"

#define SCRATCH_LEN (64u * 1024u)

struct gw_server {
    uv_tcp_t tcp;
    uv_loop_t *loop;
    int closing;
    int tcp_closed;
    struct gw_stream *streams;
    struct gw_budget_list budget; /* this server's streams (one loop) */
    uint64_t live;                /* streams not yet gone */
    uint64_t next_id;
    uint64_t max_conns;
    atomic_uint_fast64_t *open_conns;
    struct gw_stream_env senv;
    struct gw_h1_env h1;
    char *scratch;       /* TLS ciphertext reads (one loop: used by one read at a time) */
    struct cm_shed shed; /* closes connections we have no memory for (shed.h) */
    void (*on_free)(void *);
    void *on_free_arg;
};

static void server_maybe_free(struct gw_server *s)
{
    if (s->closing && s->tcp_closed && s->live == 0 && !cm_shed_busy(&s->shed)) {
        void (*on_free)(void *) = s->on_free;
        void *arg = s->on_free_arg;
        cm_free(s->scratch);
        cm_free(s);
        if (on_free != NULL)
            on_free(arg);
    }
}

static void on_stream_gone(void *owner)
{
    struct gw_server *s = owner;
    s->live--;
    if (s->open_conns != NULL)
        atomic_fetch_sub(s->open_conns, 1);
    server_maybe_free(s);
}

static void on_connection(uv_stream_t *ls, int status);

static void on_shed_done(void *arg, int pending)
{
    struct gw_server *s = arg;
    if (pending && !s->closing) {
        on_connection((uv_stream_t *)&s->tcp, 0); /* libuv still holds it: try again */
        return;
    }
    server_maybe_free(s);
}

/* No memory for a connection: shed it (shed.h), or libuv stops accepting here for good. */
static void server_shed(struct gw_server *s)
{
    CM_ERROR("msg=\"http accept: out of memory, connection closed\" listener=%s", s->h1.name);
    cm_shed(&s->shed);
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct gw_server *s = ls->data;
    if (status != 0 || s->closing)
        return;
    struct gw_stream *st;
    int over = 0;
    /* every stream that gw_stream_accept made ends in on_stream_gone: count it first */
    s->live++;
    if (s->open_conns != NULL)
        over = atomic_fetch_add(s->open_conns, 1) >= s->max_conns;
    if (gw_stream_accept(&s->senv, ls, ++s->next_id, &st) != 0) {
        if (st == NULL) { /* no stream was made */
            s->live--;
            if (s->open_conns != NULL)
                atomic_fetch_sub(s->open_conns, 1);
            server_shed(s);
        }
        return;
    }
    if (s->h1.metrics != NULL)
        GW_METRIC_ADD(s->h1.metrics, conns_accepted, 1);
    if (over) {
        if (s->h1.metrics != NULL)
            GW_METRIC_ADD(s->h1.metrics, conns_rejected, 1);
        if (s->senv.tls != NULL) {
            gw_stream_close(st);
            return;
        }
    }
    gw_h1_start(st, &s->h1, over);
}

/* libuv 1.44 has no SO_REUSEPORT flag: make the socket here and hand it over. */
static int bind_reuseport(uv_tcp_t *tcp, const struct sockaddr *sa)
{
    socklen_t len =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    int rv = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 || bind(fd, sa, len) != 0)
        rv = -errno;
    if (rv == 0)
        rv = uv_tcp_open(tcp, fd);
    if (rv != 0)
        close(fd);
    return rv;
}

static void server_set_limits(struct gw_server *s, const struct gw_config *cfg)
{
    struct gw_h1_env *h = &s->h1;
    s->max_conns = cfg && cfg->max_connections ? cfg->max_connections : 16384;
    h->max_head = cfg && cfg->max_header_size ? cfg->max_header_size : 16384;
    h->max_url = cfg && cfg->max_url_length ? cfg->max_url_length : 8192;
    h->max_pipeline = cfg && cfg->max_pipeline ? cfg->max_pipeline : 16;
    h->header_ms = cfg && cfg->header_timeout_ms ? cfg->header_timeout_ms : 10000;
    h->idle_ms = cfg && cfg->idle_timeout_ms ? cfg->idle_timeout_ms : 60000;
    h->body_ms = cfg && cfg->body_timeout_ms ? cfg->body_timeout_ms : 30000;
    s->senv.send_ms = cfg && cfg->send_timeout_ms ? cfg->send_timeout_ms : 60000;
}

static void server_init(struct gw_server *s, uv_loop_t *loop, const struct gw_server_opts *o,
                        gw_route_fn route, void *arg)
{
    s->loop = loop;
    s->open_conns = o->open_conns;
    s->on_free = o->on_free;
    s->on_free_arg = o->on_free_arg;
    snprintf(s->h1.name, sizeof(s->h1.name), "%s", o->name);
    s->h1.route = route;
    s->h1.arg = arg;
    s->h1.cors = o->cors;
    s->h1.metrics = o->metrics;
    s->h1.budget = o->budget;
    s->h1.access_log = o->access_log;
    s->h1.nosniff = o->nosniff;
    s->senv.loop = loop;
    s->senv.tls = o->tls;
    s->senv.metrics = o->metrics;
    s->senv.scratch = s->scratch;
    s->senv.scratch_len = SCRATCH_LEN;
    s->senv.list = &s->streams;
    gw_budget_list_init(&s->budget, o->budget);
    s->senv.budget = o->budget != NULL ? &s->budget : NULL;
    s->senv.on_gone = on_stream_gone;
    s->senv.owner = s;
    server_set_limits(s, o->cfg);
}

int gw_server_listen(uv_loop_t *loop, const char *hostport, const struct gw_server_opts *o,
                     gw_route_fn route, void *arg, struct gw_server **out, char *errmsg,
                     size_t errlen)
{
    char host[256];
    int port;
    struct sockaddr_storage ss;
    if (cm_hostport_parse(hostport, host, sizeof(host), &port) != 0 ||
        (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
         uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)) {
        snprintf(errmsg, errlen, "%s listen address '%s' must be a numeric IP:PORT", o->name,
                 hostport);
        return CM_EINVAL;
    }
    struct gw_server *s = cm_calloc(1, sizeof(*s));
    if (s == NULL)
        return CM_ENOMEM;
    if ((s->scratch = cm_malloc(SCRATCH_LEN)) == NULL) {
        cm_free(s);
        return CM_ENOMEM;
    }
    server_init(s, loop, o, route, arg);
    uv_tcp_init(loop, &s->tcp);
    cm_shed_init(&s->shed, (uv_stream_t *)&s->tcp, on_shed_done, s);
    s->tcp.data = s;
    int rv = o->reuseport ? bind_reuseport(&s->tcp, (struct sockaddr *)&ss)
                          : uv_tcp_bind(&s->tcp, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&s->tcp, 511, on_connection);
    if (rv != 0) {
        snprintf(errmsg, errlen, "%s listen on %s: %s", o->name, hostport, uv_strerror(rv));
        gw_server_close(s);
        return CM_EIO;
    }
    *out = s;
    return 0;
}

static void on_listener_closed(uv_handle_t *hd)
{
    struct gw_server *s = hd->data;
    s->tcp_closed = 1;
    server_maybe_free(s);
}

void gw_server_close(struct gw_server *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    gw_stream_close_all(&s->streams);
    uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
}
