/* HTTP server connections, plain or TLS.
 *
 * Happy path: accept -> bytes in (plain: straight into c->rbuf; TLS: ciphertext -> gw_tls_feed
 *   -> gw_tls_read -> plaintext into c->rbuf) -> gw_http_in_feed -> on_head: route (answer now,
 *   or install a handler) -> on_body pieces (slices of c->rbuf) -> on_end: framer pauses ->
 *   handler answers (write_head / write_body / done) -> next request from the buffered bytes,
 *   then reading resumes. Writes: plain = the head copy + the caller's slices (zero-copy);
 *   TLS = the slices are queued as plaintext refs and encrypted (gw_tls_write) only
 *   GW_TLS_AHEAD bytes ahead of the socket, each batch taken into one buffer per uv_write.
 * Limits: head > max-header-size 431, target > max-url-length 414 (both + close); timers per
 *   phase (one uv_timer, re-armed to the nearest deadline): fresh connection / keep-alive idle
 *   (close silently), head started but not complete (408 + close), no body bytes for
 *   body-timeout while reading a body (408 + close), no write progress for send-timeout (close).
 *   At most max-pipeline answers in the write queue (or > GW_CONN_HIGH_WATER bytes) before the
 *   next request is parsed; reading stops meanwhile. Over --max-connections: 503 + close (TLS:
 *   closed at once).
 * Failures: bytes that are not HTTP -> 400 + close; an answer given before the body was fully
 *   read -> close after the answer; write error / client EOF mid-request -> handler on_abort,
 *   close; TLS errors -> the alert is sent, then close.
 * Close: answer written -> (TLS close_notify) -> uv_shutdown -> linger (read and discard until
 *   EOF or 1 s) -> close. Each connection has two handles (tcp, timer); it is freed after both
 *   close callbacks. Every answered or abandoned request gives one access log line. */
#include "http/server.h"

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

#include "http/conn_internal.h"
static void conn_feed(struct gw_conn *c);
static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* ---- lifetime ---- */

static void server_maybe_free(struct gw_server *s)
{
    if (s->closing && s->tcp_closed && s->conns == NULL && !s->shed_busy) {
        void (*on_free)(void *) = s->on_free;
        void *arg = s->on_free_arg;
        cm_free(s->scratch);
        cm_free(s);
        if (on_free != NULL)
            on_free(arg);
    }
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
    if (c->counted)
        atomic_fetch_sub(s->open_conns, 1);
    for (size_t i = c->tq_head; i < c->tq_n; i++)
        cm_slice_release(&c->tq[i]);
    cm_free(c->tq);
    cm_slice_release(&c->head_pend);
    gw_tls_free(c->tls);
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

/* ---- access log and metrics: once per request ---- */

void gwc_request_end(struct gw_conn *c, int status)
{
    struct gw_server *s = c->srv;
    const char *method = c->req ? http_method_str((enum http_method)c->req->method) : "-";
    if (s->metrics != NULL) {
        unsigned m = c->req ? gw_metric_method(c->req->method) : GW_M_OTHER;
        int cls = status >= 100 && status < 600 ? status / 100 : 0;
        GW_METRIC_ADD(s->metrics, requests[m][cls], 1);
    }
    if (!s->access_log)
        return;
    static const char *cache[] = {"-", "hit", "miss", "coalesced"};
    char target[512];
    gw_http_log_target(c->req && c->req->url.p ? c->req->url.p : "-", target, sizeof(target));
    uint64_t us = c->t0_ns ? (uv_hrtime() - c->t0_ns) / 1000 : 0;
    /* no level check: the access log is switched by --access-log, not by --log-level */
    cm_log_write(CM_LOG_INFO,
                 "msg=access listener=%s conn=%llu method=%s path=\"%s\" status=%d bytes=%llu "
                 "ms=%llu.%03llu cache=%s",
                 s->name, (unsigned long long)c->id, method, target, status,
                 (unsigned long long)c->body_bytes, (unsigned long long)(us / 1000),
                 (unsigned long long)(us % 1000), cache[c->cache & 3]);
}

/* log: the request ends here (499 = no complete answer); else another answer follows. */
static void conn_abort_handler(struct gw_conn *c, int log)
{
    if (c->active && !c->responded) {
        const struct gw_handler_ops *ops = c->ops;
        c->ops = NULL;
        c->responded = 1;
        if (log)
            gwc_request_end(c, 499);
        if (ops != NULL)
            ops->on_abort(c->h);
    }
}

void gwc_close(struct gw_conn *c)
{
    if (c->state == CS_CLOSING)
        return;
    conn_abort_handler(c, 1);
    conn_set(c, CS_CLOSING);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

/* ---- deadlines ---- */

void gwc_arm(struct gw_conn *c)
{
    if (c->state == CS_CLOSING)
        return;
    uint64_t dl = c->read_deadline;
    if (c->write_deadline != 0 && (dl == 0 || c->write_deadline < dl))
        dl = c->write_deadline;
    if (dl == 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->srv->loop);
    uv_timer_start(&c->timer, gwc_on_timer, dl > now ? dl - now : 0, 0);
}

void gwc_phase(struct gw_conn *c, enum conn_phase p, uint64_t ms)
{
    c->phase = p;
    c->read_deadline = p == PH_NONE ? 0 : uv_now(c->srv->loop) + ms;
    gwc_arm(c);
}

/* An answer that closes the connection before or instead of a request (408, 414, 431, 400,
 * 503 over the connection limit). */
static void conn_reject(struct gw_conn *c, int status, const char *code, const char *message)
{
    conn_abort_handler(c, c->head_sent);
    if (c->head_sent || c->state != CS_OPEN) {
        gwc_close(c);
        return;
    }
    c->close_after = 1;
    c->active = 1;
    c->responded = 0;
    c->ops = NULL;
    if (c->t0_ns == 0)
        c->t0_ns = uv_hrtime();
    gw_conn_error(c, status, code, message, GW_COMMITTED_OMIT);
}

void gwc_on_timer(uv_timer_t *t)
{
    struct gw_conn *c = t->data;
    uint64_t now = uv_now(c->srv->loop);
    int linger_send = c->state == CS_LINGER && c->queued > 0;
    if (linger_send || (c->write_deadline != 0 && now >= c->write_deadline)) {
        /* One uv_write may carry a whole cached object: progress inside it counts too. */
        size_t wq = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
        if (wq < c->wq_mark) {
            c->wq_mark = wq;
            if (linger_send) {
                uv_timer_start(&c->timer, gwc_on_timer, c->srv->send_ms, 0);
            } else {
                c->write_deadline = now + c->srv->send_ms;
                gwc_arm(c);
            }
            return;
        }
        CM_DEBUG("msg=\"client stopped reading: closing\" conn=%llu queued=%zu",
                 (unsigned long long)c->id, c->queued);
        gwc_close(c);
        return;
    }
    if (c->state == CS_LINGER) {
        gwc_close(c);
        return;
    }
    if (c->read_deadline == 0 || now < c->read_deadline) {
        gwc_arm(c);
        return;
    }
    c->read_deadline = 0;
    switch (c->phase) {
    case PH_IDLE:
        if (gw_conn_write_queue(c) > 0) { /* the last answer is still going out */
            gwc_phase(c, PH_IDLE, c->srv->idle_ms);
            return;
        }
        CM_DEBUG("msg=\"closing idle http connection\" conn=%llu", (unsigned long long)c->id);
        gwc_close(c);
        return;
    case PH_HEADER:
        conn_reject(c, 408, "timeout", "request head not received in time");
        return;
    case PH_BODY:
        conn_reject(c, 408, "timeout", "request body stalled");
        return;
    case PH_NONE:
        return;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct gw_conn *c = req->data;
    if (c->state != CS_LINGER)
        return;
    if (status != 0) {
        gwc_close(c);
        return;
    }
    uv_timer_start(&c->timer, gwc_on_timer, GW_LINGER_MS, 0);
}

/* Send the ciphertext the TLS engine has produced (handshake records, alerts, data). */
int gwc_tls_flush(struct gw_conn *c)
{
    size_t n = gw_tls_pending(c->tls);
    if (n == 0)
        return 0;
    struct cm_buf *b = cm_buf_new(n);
    if (b == NULL) {
        gwc_close(c);
        return CM_ENOMEM;
    }
    b->len = gw_tls_take(c->tls, b->data, n);
    struct cm_slice sl = cm_slice_take(b, 0, b->len);
    int rv = gwc_write_raw(c, &sl, 1);
    cm_slice_release(&sl);
    return rv;
}

/* LINGER: every answer byte is queued: close_notify (TLS), then half-close after the writes. */
void gwc_shutdown(struct gw_conn *c)
{
    c->shutdown_deferred = 0;
    if (c->tls != NULL) {
        gw_tls_shutdown(c->tls);
        if (gwc_tls_flush(c) != 0)
            return;
    }
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        gwc_close(c);
}

/* The answer is (being) written: half-close once it is out, then linger. */
void gwc_finish_and_close(struct gw_conn *c)
{
    if (c->state != CS_OPEN)
        return;
    conn_set(c, CS_LINGER);
    c->pend_len = 0;
    c->read_deadline = c->write_deadline = 0;
    uv_timer_stop(&c->timer);
    if (c->queued > 0) { /* the shutdown waits for the writes: the send timeout still applies */
        c->wq_mark = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
        uv_timer_start(&c->timer, gwc_on_timer, c->srv->send_ms, 0);
    }
    if (c->tq_bytes > 0)
        c->shutdown_deferred = 1; /* gwc_tls_pump shuts down once the plaintext is encrypted */
    else
        gwc_shutdown(c);
    if (c->state == CS_LINGER && !c->reading &&
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
}

/* ---- reading ---- */

/* Room at the end of c->rbuf for more plaintext (a fresh buffer when nobody holds a slice of
 * the old one, or it is nearly full). */
static int rbuf_room(struct gw_conn *c, char **p, size_t *cap)
{
    struct cm_buf *b = c->rbuf;
    if (b != NULL && b->refs == 1 && c->pend_len == 0)
        b->len = 0; /* nobody holds a slice: reuse */
    if (b == NULL || b->cap - b->len < 4096) {
        struct cm_buf *nb = cm_buf_new(GW_RBUF_SIZE);
        if (nb == NULL)
            return CM_ENOMEM;
        if (c->pend_len > 0) { /* keep unparsed bytes contiguous */
            memcpy(nb->data, b->data + c->pend_off, c->pend_len);
            nb->len = c->pend_len;
        }
        cm_buf_unref(b);
        c->rbuf = b = nb;
        c->pend_off = 0;
    }
    *p = b->data + b->len;
    *cap = b->cap - b->len;
    return 0;
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    struct gw_conn *c = hd->data;
    char *p;
    size_t cap;
    if (c->tls != NULL || c->state != CS_OPEN) { /* ciphertext, or bytes to discard */
        *buf = uv_buf_init(c->srv->scratch, GW_TLS_SCRATCH);
        return;
    }
    if (rbuf_room(c, &p, &cap) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init(p, (unsigned)cap);
}

/* May more request bytes be taken in now? */
static int conn_wants_bytes(const struct gw_conn *c)
{
    return c->state == CS_OPEN && c->pend_len == 0 && !c->flow_paused && !c->held &&
           !(c->active && c->body_done);
}

/* Plaintext bytes appended at the end of c->rbuf. */
static void conn_got_bytes(struct gw_conn *c, size_t n)
{
    if (c->pend_len == 0)
        c->pend_off = c->rbuf->len;
    c->rbuf->len += n;
    c->pend_len += n;
    if (c->phase == PH_IDLE && c->fresh)
        c->phase = PH_HEADER; /* keeps the deadline set at accept */
    else if (c->phase == PH_IDLE)
        gwc_phase(c, PH_HEADER, c->srv->header_ms);
    else if (c->phase == PH_BODY && !c->flow_paused)
        gwc_phase(c, PH_BODY, c->srv->body_ms);
    conn_feed(c);
}

static void tls_fail(struct gw_conn *c)
{
    struct gw_server *s = c->srv;
    if (!gw_tls_handshake_done(c->tls) && s->metrics != NULL)
        GW_METRIC_ADD(s->metrics, tls_handshake_failures, 1);
    CM_DEBUG("msg=\"tls error: closing\" conn=%llu", (unsigned long long)c->id);
    if (gwc_tls_flush(c) == 0) /* the alert, if any */
        gwc_finish_and_close(c);
}

/* TLS: decrypt what the engine holds into c->rbuf while the connection wants bytes. */
static void conn_tls_pull(struct gw_conn *c)
{
    c->in_pull = 1;
    while (conn_wants_bytes(c)) {
        char *p;
        size_t cap;
        if (rbuf_room(c, &p, &cap) != 0) {
            gwc_close(c);
            break;
        }
        ssize_t n = gw_tls_read(c->tls, p, cap);
        if (n == 0)
            break;
        if (n == CM_ECLOSED) {
            gwc_close(c);
            break;
        }
        if (n < 0) {
            tls_fail(c);
            break;
        }
        conn_got_bytes(c, (size_t)n);
    }
    c->in_pull = 0;
    if (c->state == CS_OPEN)
        gwc_tls_flush(c); /* e.g. TLS 1.3 session tickets after the handshake */
}

void gwc_update_reading(struct gw_conn *c)
{
    if (c->state == CS_CLOSING)
        return;
    if (c->tls != NULL && !c->in_pull && conn_wants_bytes(c))
        conn_tls_pull(c); /* plaintext may already be waiting inside the engine */
    if (c->state == CS_CLOSING)
        return;
    int want = c->state == CS_LINGER || conn_wants_bytes(c);
    if (c->peer_eof && c->state == CS_OPEN) {
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        if (want) /* every request that arrived is answered; nothing more will come */
            gwc_finish_and_close(c);
        return;
    }
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
            gwc_close(c);
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
        if (c->tls != NULL && c->state == CS_OPEN && !c->in_pull)
            conn_tls_pull(c); /* the engine may still hold the end of the request */
        if (c->state == CS_OPEN && !(c->active && !c->body_done)) {
            /* A half-close after complete requests (ffmpeg ends its last PUT this way, and
             * over TLS those bytes may still sit in the engine): answer them, then close. An
             * upload cut short before its body ended is still an abort. */
            c->peer_eof = 1;
            gwc_update_reading(c);
            return;
        }
        gwc_close(c);
        return;
    }
    if (c->srv->metrics != NULL)
        GW_METRIC_ADD(c->srv->metrics, bytes_in, nread);
    if (c->state == CS_LINGER)
        return; /* discard: the answer is out, we only wait for the client to finish */
    if (c->tls == NULL) {
        conn_got_bytes(c, (size_t)nread);
        return;
    }
    if (gw_tls_feed(c->tls, buf->base, (size_t)nread) != 0) {
        tls_fail(c);
        return;
    }
    if (gwc_tls_flush(c) != 0)
        return;
    gwc_update_reading(c); /* pulls the plaintext */
}

int gwc_req_has_body(const struct gw_http_req *r)
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
    c->held = 0;
    c->fresh = 0;
    c->cors_added = 0;
    c->ops = NULL;
    c->h = NULL;
    c->req = NULL;
    c->t0_ns = 0;
    c->status = 0;
    c->body_bytes = 0;
    c->cache = GW_NOTE_NONE;
    gw_http_in_resume(&c->in);
    if (c->pend_len > 0)
        gwc_phase(c, PH_HEADER, c->srv->header_ms);
    else
        gwc_phase(c, PH_IDLE, c->srv->idle_ms);
}

static void conn_bad_request(struct gw_conn *c)
{
    int status = gw_http_in_error_status(&c->in);
    if (status == 400)
        CM_INFO("msg=\"malformed http request\" conn=%llu parser=%s", (unsigned long long)c->id,
                gw_http_in_error(&c->in));
    if (status == 431)
        conn_reject(c, 431, "bad_request", "request header fields too large");
    else if (status == 414)
        conn_reject(c, 414, "bad_request", "request target too long");
    else if (status == 503)
        conn_reject(c, 503, "unavailable", "out of memory");
    else
        conn_reject(c, 400, "bad_request", "malformed HTTP request");
}

/* The previous request is answered and its body read: may the next one start? */
int gwc_may_start_next(const struct gw_conn *c)
{
    return c->answers_queued < c->srv->max_pipeline && gw_conn_write_queue(c) <= GW_CONN_HIGH_WATER;
}

static void conn_feed(struct gw_conn *c)
{
    if (c->in_feed)
        return;
    c->in_feed = 1;
    while (c->state == CS_OPEN) {
        if (c->active && c->body_done) {
            if (!c->responded)
                break; /* pipelined bytes wait for the answer */
            if (!gwc_may_start_next(c)) {
                c->held = 1; /* gwc_on_write resumes */
                gwc_phase(c, PH_NONE, 0);
                break;
            }
            conn_next_request(c);
        }
        if (c->pend_len == 0)
            break;
        size_t used = 0;
        int rc = gw_http_in_feed(&c->in, c->rbuf, c->pend_off, c->pend_len, &used);
        c->pend_off += used;
        c->pend_len -= used;
        if (rc == GW_HTTP_PAUSED)
            continue;
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
    gwc_update_reading(c);
}

/* After an answer completed outside the feed loop, or the write queue drained. */
void gwc_advance(struct gw_conn *c)
{
    if (c->in_feed || c->state != CS_OPEN)
        return;
    c->held = 0;
    conn_feed(c);
}

/* ---- framer sink ---- */

static int sink_head(void *arg, struct gw_http_req *req)
{
    struct gw_conn *c = arg;
    struct gw_server *s = c->srv;
    c->req = req;
    c->t0_ns = uv_hrtime();
    if (req->url_overflow) {
        conn_reject(c, 414, "bad_request", "request target too long");
        return -1;
    }
    c->active = 1;
    c->body_done = 0;
    c->responded = 0;
    if (gwc_req_has_body(req))
        gwc_phase(c, PH_BODY, s->body_ms);
    else
        gwc_phase(c, PH_NONE, 0);
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
    gwc_phase(c, PH_NONE, 0);
    if (!c->responded && c->ops != NULL)
        c->ops->on_body_end(c->h);
    return c->state == CS_OPEN ? 0 : -1;
}

static const struct gw_http_sink conn_sink = {sink_head, sink_body, sink_end};

/* ---- server ---- */

static void on_connection(uv_stream_t *ls, int status);

static void on_shed_closed(uv_handle_t *hd)
{
    struct gw_server *s = hd->data;
    s->shed_busy = 0;
    if (s->shed_pending && !s->closing) {
        s->shed_pending = 0;
        on_connection((uv_stream_t *)&s->tcp, 0); /* libuv still holds it: try again */
        return;
    }
    server_maybe_free(s);
}

/* No memory for a connection: accept it into the server's own handle and close it at once.
 * (Left unaccepted, libuv would stop accepting on this listener for good.) */
static void server_shed(struct gw_server *s)
{
    CM_ERROR("msg=\"http accept: out of memory, connection closed\" listener=%s", s->name);
    if (s->shed_busy) {
        s->shed_pending = 1;
        return;
    }
    uv_tcp_init(s->loop, &s->shed);
    s->shed.data = s;
    s->shed_busy = 1;
    uv_accept((uv_stream_t *)&s->tcp, (uv_stream_t *)&s->shed);
    uv_close((uv_handle_t *)&s->shed, on_shed_closed);
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct gw_server *s = ls->data;
    if (status != 0 || s->closing)
        return;
    struct gw_conn *c = cm_calloc(1, sizeof(*c));
    if (c == NULL) {
        server_shed(s);
        return;
    }
    c->srv = s;
    c->id = ++s->next_id;
    gw_http_in_init(&c->in, &conn_sink, c);
    gw_http_in_limits(&c->in, s->max_head, s->max_url);
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
        gwc_close(c);
        return;
    }
    if (s->metrics != NULL)
        GW_METRIC_ADD(s->metrics, conns_accepted, 1);
    int over = 0;
    if (s->open_conns != NULL) {
        c->counted = 1;
        over = atomic_fetch_add(s->open_conns, 1) >= s->max_conns;
    }
    if (!over && s->tls != NULL && gw_tls_new(s->tls, &c->tls) != 0)
        over = 1;
    uv_tcp_nodelay(&c->tcp, 1);
    if (over) {
        if (s->metrics != NULL)
            GW_METRIC_ADD(s->metrics, conns_rejected, 1);
        if (s->tls != NULL) {
            gwc_close(c);
            return;
        }
        conn_reject(c, 503, "unavailable", "too many connections");
        return;
    }
    c->fresh = 1;
    gwc_phase(c, PH_IDLE, s->header_ms);
    gwc_update_reading(c);
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
    s->max_conns = cfg && cfg->max_connections ? cfg->max_connections : 16384;
    s->max_head = cfg && cfg->max_header_size ? cfg->max_header_size : 16384;
    s->max_url = cfg && cfg->max_url_length ? cfg->max_url_length : 8192;
    s->max_pipeline = cfg && cfg->max_pipeline ? cfg->max_pipeline : 16;
    s->header_ms = cfg && cfg->header_timeout_ms ? cfg->header_timeout_ms : 10000;
    s->idle_ms = cfg && cfg->idle_timeout_ms ? cfg->idle_timeout_ms : 60000;
    s->body_ms = cfg && cfg->body_timeout_ms ? cfg->body_timeout_ms : 30000;
    s->send_ms = cfg && cfg->send_timeout_ms ? cfg->send_timeout_ms : 60000;
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
    s->loop = loop;
    s->route = route;
    s->arg = arg;
    snprintf(s->name, sizeof(s->name), "%s", o->name);
    s->tls = o->tls;
    s->cors = o->cors;
    s->metrics = o->metrics;
    s->open_conns = o->open_conns;
    s->access_log = o->access_log;
    s->on_free = o->on_free;
    s->on_free_arg = o->on_free_arg;
    server_set_limits(s, o->cfg);
    if ((s->scratch = cm_malloc(GW_TLS_SCRATCH)) == NULL) {
        cm_free(s);
        return CM_ENOMEM;
    }
    uv_tcp_init(loop, &s->tcp);
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
    struct gw_conn *c = s->conns;
    while (c != NULL) {
        struct gw_conn *next = c->next;
        gwc_close(c);
        c = next;
    }
    uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
}
