/* HTTP server connections.
 *
 * Happy path: accept -> read into c->rbuf (refcounted; body slices handed out point into it) ->
 *   gw_http_in_feed -> on_head: route (answer now, or install a handler) -> on_body pieces ->
 *   on_end: framer pauses -> handler answers (write_head / write_body / done) -> next request
 *   from the buffered bytes, then reading resumes.
 * Failures: bytes that are not HTTP -> 400 + close; an answer given before the body was fully
 *   read -> close after the answer; write error / client EOF mid-request -> handler on_abort,
 *   close.
 * Close: answer written -> uv_shutdown -> linger (read and discard until EOF or 1 s) -> close.
 *   Each connection has two handles (tcp, timer); it is freed after both close callbacks. */
#include "server.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "err.h"
#include "log.h"

#define GW_RBUF_SIZE (64u * 1024u)
#define GW_LINGER_MS 1000
#define GW_IDLE_MS 60000 /* keep-alive connection without a (complete) request head */

enum conn_state { CS_OPEN, CS_LINGER, CS_CLOSING };

struct gw_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* idle between requests, then linger */
    uv_shutdown_t shut;
    struct gw_server *srv;
    struct gw_conn *prev, *next;
    uint64_t id;
    enum conn_state state;
    int handles_open;
    struct gw_http_in in;
    struct cm_buf *rbuf; /* ref */
    size_t pend_off, pend_len;
    int reading;
    int in_feed;
    /* the active request */
    struct gw_http_req *req; /* borrowed from in */
    int active;
    int body_done;
    int responded;
    int head_sent;
    int sent_continue;
    int close_after;
    int flow_paused;
    const struct gw_handler_ops *ops;
    void *h;
    /* writes */
    size_t queued;
    int above_high;
};

struct gw_server {
    uv_tcp_t tcp;
    uv_loop_t *loop;
    char name[16];
    gw_route_fn route;
    void *arg;
    int closing;
    int tcp_closed;
    struct gw_conn *conns;
    uint64_t next_id;
};

struct wr {
    uv_write_t req;
    struct gw_conn *c;
    size_t bytes;
    size_t n;
    struct cm_slice s[];
};

static void conn_feed(struct gw_conn *c);
static void conn_close(struct gw_conn *c);
static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* ---- lifetime ---- */

static void server_maybe_free(struct gw_server *s)
{
    if (s->closing && s->tcp_closed && s->conns == NULL)
        cm_free(s);
}

static void on_conn_handle_closed(uv_handle_t *hd)
{
    struct gw_conn *c = hd->data;
    assert(c->handles_open > 0);
    if (--c->handles_open > 0)
        return;
    struct gw_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    gw_http_in_close(&c->in);
    cm_buf_unref(c->rbuf);
    cm_free(c);
    server_maybe_free(s);
}

/* The only place the connection state changes: OPEN -> LINGER -> CLOSING, OPEN -> CLOSING. */
static void conn_set(struct gw_conn *c, enum conn_state to)
{
    assert((c->state == CS_OPEN && (to == CS_LINGER || to == CS_CLOSING)) ||
           (c->state == CS_LINGER && to == CS_CLOSING));
    c->state = to;
}

static void conn_abort_handler(struct gw_conn *c)
{
    if (c->active && !c->responded && c->ops != NULL) {
        const struct gw_handler_ops *ops = c->ops;
        c->ops = NULL;
        c->responded = 1;
        ops->on_abort(c->h);
    }
}

static void conn_close(struct gw_conn *c)
{
    if (c->state == CS_CLOSING)
        return;
    conn_abort_handler(c);
    conn_set(c, CS_CLOSING);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

static void on_conn_timer(uv_timer_t *t)
{
    struct gw_conn *c = t->data;
    if (c->state == CS_LINGER || !c->active) {
        if (c->state == CS_OPEN)
            CM_DEBUG("msg=\"closing idle http connection\" conn=%llu", (unsigned long long)c->id);
        conn_close(c);
    }
}

static void conn_idle_timer(struct gw_conn *c)
{
    if (c->state == CS_OPEN && !c->active)
        uv_timer_start(&c->timer, on_conn_timer, GW_IDLE_MS, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct gw_conn *c = req->data;
    if (c->state != CS_LINGER)
        return;
    if (status != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_conn_timer, GW_LINGER_MS, 0);
}

/* The answer is (being) written: half-close once it is out, then linger. */
static void conn_finish_and_close(struct gw_conn *c)
{
    if (c->state != CS_OPEN)
        return;
    conn_set(c, CS_LINGER);
    c->pend_len = 0;
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    struct gw_conn *c = hd->data;
    struct cm_buf *b = c->rbuf;
    if (b != NULL && b->refs == 1 && c->pend_len == 0)
        b->len = 0; /* nobody holds a slice: reuse */
    if (b == NULL || b->cap - b->len < 4096) {
        struct cm_buf *nb = cm_buf_new(GW_RBUF_SIZE);
        if (nb == NULL) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        cm_buf_unref(b);
        c->rbuf = b = nb;
        c->pend_off = c->pend_len = 0;
    }
    *buf = uv_buf_init(b->data + b->len, (unsigned)(b->cap - b->len));
}

static void conn_update_reading(struct gw_conn *c)
{
    if (c->state == CS_CLOSING)
        return;
    int want = c->state == CS_LINGER ||
               (c->pend_len == 0 && !c->flow_paused && !(c->active && c->body_done));
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
            conn_close(c);
            return;
        }
        c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct gw_conn *c = st->data;
    if (c->state == CS_CLOSING)
        return;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            CM_DEBUG("msg=\"http read error\" conn=%llu err=\"%s\"", (unsigned long long)c->id,
                     uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    if (c->state == CS_LINGER)
        return; /* discard: the answer is out, we only wait for the client to finish */
    if (c->pend_len == 0)
        c->pend_off = c->rbuf->len;
    c->rbuf->len += (size_t)nread;
    c->pend_len += (size_t)nread;
    conn_idle_timer(c);
    conn_feed(c);
}

static int req_has_body(const struct gw_http_req *r)
{
    return r->chunked || (r->has_length && r->content_length > 0);
}

static void conn_next_request(struct gw_conn *c)
{
    c->active = 0;
    c->body_done = 0;
    c->responded = 0;
    c->head_sent = 0;
    c->sent_continue = 0;
    c->flow_paused = 0;
    c->ops = NULL;
    c->h = NULL;
    c->req = NULL;
    gw_http_in_resume(&c->in);
    conn_idle_timer(c);
}

static void conn_bad_request(struct gw_conn *c)
{
    CM_WARN("msg=\"malformed http request\" conn=%llu parser=%s", (unsigned long long)c->id,
            gw_http_in_error(&c->in));
    conn_abort_handler(c);
    if (c->head_sent) {
        conn_close(c);
        return;
    }
    c->close_after = 1;
    c->active = 1;
    c->responded = 0;
    gw_conn_error(c, 400, "bad_request", "malformed HTTP request", GW_COMMITTED_OMIT);
}

static void conn_feed(struct gw_conn *c)
{
    if (c->in_feed)
        return;
    c->in_feed = 1;
    while (c->state == CS_OPEN && c->pend_len > 0) {
        if (c->active && c->body_done && !c->responded)
            break; /* pipelined bytes wait for the answer */
        size_t used = 0;
        int rc = gw_http_in_feed(&c->in, c->rbuf, c->pend_off, c->pend_len, &used);
        c->pend_off += used;
        c->pend_len -= used;
        if (rc == GW_HTTP_PAUSED) {
            if (c->responded)
                conn_next_request(c);
            continue;
        }
        if (rc == GW_HTTP_ERROR) {
            conn_bad_request(c);
            break;
        }
        if (rc == GW_HTTP_STOPPED)
            break;
    }
    if (c->state == CS_OPEN && c->active && !c->responded && c->ops && c->ops->on_read_done)
        c->ops->on_read_done(c->h);
    c->in_feed = 0;
    conn_update_reading(c);
}

/* ---- framer sink ---- */

static int sink_head(void *arg, struct gw_http_req *req)
{
    struct gw_conn *c = arg;
    struct gw_server *s = c->srv;
    c->req = req;
    c->active = 1;
    c->body_done = 0;
    c->responded = 0;
    uv_timer_stop(&c->timer);
    s->route(s->arg, c, req);
    return c->state == CS_OPEN ? 0 : -1;
}

static int sink_body(void *arg, const struct cm_slice *piece)
{
    struct gw_conn *c = arg;
    if (c->state != CS_OPEN)
        return -1;
    if (!c->responded && c->ops != NULL)
        c->ops->on_body(c->h, piece);
    return c->state == CS_OPEN ? 0 : -1;
}

static int sink_end(void *arg)
{
    struct gw_conn *c = arg;
    c->body_done = 1;
    if (!c->responded && c->ops != NULL)
        c->ops->on_body_end(c->h);
    return c->state == CS_OPEN ? 0 : -1;
}

static const struct gw_http_sink conn_sink = {sink_head, sink_body, sink_end};

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
    struct wr *w = (struct wr *)req;
    struct gw_conn *c = w->c;
    c->queued -= w->bytes;
    for (size_t i = 0; i < w->n; i++)
        cm_slice_release(&w->s[i]);
    cm_free(w);
    if (status != 0) {
        if (status != UV_ECANCELED)
            conn_close(c);
        return;
    }
    if (c->above_high && c->queued <= GW_CONN_LOW_WATER && c->state == CS_OPEN) {
        c->above_high = 0;
        if (c->active && !c->responded && c->ops && c->ops->on_drain)
            c->ops->on_drain(c->h);
    }
}

static int conn_write(struct gw_conn *c, const struct cm_slice *s, size_t n)
{
    if (c->state != CS_OPEN)
        return CM_ECLOSED;
    struct wr *w = cm_malloc(sizeof(*w) + n * sizeof(struct cm_slice));
    uv_buf_t *bufs = cm_malloc((n ? n : 1) * sizeof(uv_buf_t));
    if (w == NULL || bufs == NULL) {
        cm_free(w);
        cm_free(bufs);
        conn_close(c);
        return CM_ENOMEM;
    }
    w->c = c;
    w->n = 0;
    w->bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].len == 0)
            continue;
        w->s[w->n] = cm_slice_dup(&s[i]);
        bufs[w->n] = uv_buf_init((char *)cm_slice_ptr(&s[i]), (unsigned)s[i].len);
        w->bytes += s[i].len;
        w->n++;
    }
    if (w->n == 0) {
        cm_free(w);
        cm_free(bufs);
        return 0;
    }
    int rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, (unsigned)w->n, on_write);
    cm_free(bufs);
    if (rv != 0) {
        for (size_t i = 0; i < w->n; i++)
            cm_slice_release(&w->s[i]);
        cm_free(w);
        conn_close(c);
        return CM_EIO;
    }
    c->queued += w->bytes;
    if (c->queued > GW_CONN_HIGH_WATER)
        c->above_high = 1;
    return 0;
}

static int conn_write_copy(struct gw_conn *c, const char *p, size_t len)
{
    struct cm_buf *b = cm_buf_copy(p, len);
    if (b == NULL) {
        conn_close(c);
        return CM_ENOMEM;
    }
    struct cm_slice s = cm_slice_take(b, 0, len);
    int rv = conn_write(c, &s, 1);
    cm_slice_release(&s);
    return rv;
}

/* ---- public: connection ---- */

void gw_conn_set_handler(struct gw_conn *c, const struct gw_handler_ops *ops, void *h)
{
    c->ops = ops;
    c->h = h;
}

uint64_t gw_conn_id(const struct gw_conn *c)
{
    return c->id;
}

int gw_conn_keep_alive(const struct gw_conn *c)
{
    if (c->close_after || c->state != CS_OPEN || c->req == NULL || !c->req->keep_alive)
        return 0;
    return c->body_done || !req_has_body(c->req);
}

void gw_conn_set_close(struct gw_conn *c)
{
    c->close_after = 1;
}

void gw_conn_continue(struct gw_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (c->req == NULL || !c->req->expect_continue || c->sent_continue || c->head_sent ||
        c->body_done)
        return;
    c->sent_continue = 1;
    conn_write_copy(c, cont, sizeof(cont) - 1);
}

int gw_conn_write_head(struct gw_conn *c, int status, const char *headers, size_t len)
{
    struct cm_sbuf sb;
    cm_sbuf_init(&sb);
    int keep = gw_conn_keep_alive(c);
    if (!keep)
        c->close_after = 1;
    gw_http_head_begin(&sb, status, keep);
    if (headers != NULL)
        cm_sbuf_append(&sb, headers, len);
    cm_sbuf_puts(&sb, "\r\n");
    int rv = CM_ENOMEM;
    if (!sb.oom)
        rv = conn_write_copy(c, sb.p, sb.len);
    else
        conn_close(c);
    cm_sbuf_free(&sb);
    c->head_sent = 1;
    return rv;
}

int gw_conn_write_body(struct gw_conn *c, const struct cm_slice *s, size_t n)
{
    return conn_write(c, s, n);
}

size_t gw_conn_write_queue(const struct gw_conn *c)
{
    return c->queued;
}

void gw_conn_done(struct gw_conn *c)
{
    if (c->responded || c->state != CS_OPEN)
        return;
    c->responded = 1;
    c->ops = NULL;
    c->h = NULL;
    if (!c->body_done && c->req != NULL && req_has_body(c->req))
        c->close_after = 1;
    if (c->close_after) {
        conn_finish_and_close(c);
        return;
    }
    if (c->in_feed)
        return; /* the feed loop moves on to the next request */
    conn_next_request(c);
    conn_feed(c);
}

void gw_conn_respond(struct gw_conn *c, int status, const char *ctype, const char *extra,
                     const char *body, size_t len)
{
    struct cm_sbuf h;
    cm_sbuf_init(&h);
    if (ctype != NULL)
        cm_sbuf_printf(&h, "Content-Type: %s\r\n", ctype);
    if (status != 204) /* RFC 9110: no Content-Length in a 204 */
        cm_sbuf_printf(&h, "Content-Length: %zu\r\n", len);
    if (extra != NULL)
        cm_sbuf_puts(&h, extra);
    if (!h.oom && gw_conn_write_head(c, status, h.p, h.len) == 0 && len > 0 &&
        !(c->req && c->req->method == HTTP_HEAD))
        conn_write_copy(c, body, len);
    cm_sbuf_free(&h);
    gw_conn_done(c);
}

void gw_conn_error(struct gw_conn *c, int status, const char *code, const char *message,
                   enum gw_committed committed)
{
    CM_LOG(status >= 500 ? CM_LOG_WARN : CM_LOG_INFO,
           "msg=\"request failed\" conn=%llu method=%s target=\"%.200s\" status=%d error=%s "
           "detail=\"%s\"",
           (unsigned long long)c->id,
           c->req ? http_method_str((enum http_method)c->req->method) : "-",
           c->req && c->req->url.p ? c->req->url.p : "", status, code, message);
    if (c->head_sent) {
        /* Too late for an error answer: cut the connection so the client sees a short body. */
        c->responded = 1;
        conn_close(c);
        return;
    }
    struct cm_sbuf b;
    cm_sbuf_init(&b);
    gw_http_error_body(&b, code, message, committed);
    if (status == 413 || status == 411)
        c->close_after = c->close_after || !c->body_done;
    gw_conn_respond(c, status, "application/json", status == 503 ? "Retry-After: 1\r\n" : NULL,
                    b.oom ? "{}" : b.p, b.oom ? 2 : b.len);
    cm_sbuf_free(&b);
}

void gw_conn_read_pause(struct gw_conn *c)
{
    c->flow_paused = 1;
    if (!c->in_feed)
        conn_update_reading(c);
}

void gw_conn_read_resume(struct gw_conn *c)
{
    if (!c->flow_paused)
        return;
    c->flow_paused = 0;
    if (!c->in_feed)
        conn_update_reading(c);
}

/* ---- server ---- */

static void on_connection(uv_stream_t *ls, int status)
{
    struct gw_server *s = ls->data;
    if (status != 0 || s->closing)
        return;
    struct gw_conn *c = cm_calloc(1, sizeof(*c));
    if (c == NULL) {
        CM_ERROR("msg=\"http accept: out of memory\" listener=%s", s->name);
        return;
    }
    c->srv = s;
    c->id = ++s->next_id;
    gw_http_in_init(&c->in, &conn_sink, c);
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_idle_timer(c);
    conn_update_reading(c);
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

int gw_server_listen(uv_loop_t *loop, const char *hostport, const char *name, int reuseport,
                     gw_route_fn route, void *arg, struct gw_server **out, char *errmsg,
                     size_t errlen)
{
    char host[256];
    int port;
    struct sockaddr_storage ss;
    if (cm_hostport_parse(hostport, host, sizeof(host), &port) != 0 ||
        (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
         uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)) {
        snprintf(errmsg, errlen, "%s listen address '%s' must be a numeric IP:PORT", name,
                 hostport);
        return CM_EINVAL;
    }
    struct gw_server *s = cm_calloc(1, sizeof(*s));
    if (s == NULL)
        return CM_ENOMEM;
    s->loop = loop;
    s->route = route;
    s->arg = arg;
    snprintf(s->name, sizeof(s->name), "%s", name);
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    int rv = reuseport ? bind_reuseport(&s->tcp, (struct sockaddr *)&ss)
                       : uv_tcp_bind(&s->tcp, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&s->tcp, 511, on_connection);
    if (rv != 0) {
        snprintf(errmsg, errlen, "%s listen on %s: %s", name, hostport, uv_strerror(rv));
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
    struct gw_conn *c = s->conns;
    while (c != NULL) {
        struct gw_conn *next = c->next;
        conn_close(c);
        c = next;
    }
    uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
}
