/* The write side of HTTP connections (see conn_internal.h): answers become uv_writes of
 * the head copy + the caller's slices (plain: zero-copy), or TLS plaintext refs encrypted only
 * GW_TLS_AHEAD bytes ahead of the socket; write completion drives the next request. */
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
/* ---- writing ---- */

void gwc_on_write(uv_write_t *req, int status)
{
    struct wr *w = (struct wr *)req;
    struct gw_conn *c = w->c;
    c->queued -= w->bytes;
    c->answers_queued -= w->answers;
    if (c->last_wr == w)
        c->last_wr = NULL;
    if (status == 0 && c->srv->metrics != NULL)
        GW_METRIC_ADD(c->srv->metrics, bytes_out, w->bytes);
    for (size_t i = 0; i < w->n; i++)
        cm_slice_release(&w->s[i]);
    cm_free(w);
    if (status != 0) {
        if (status != UV_ECANCELED)
            gwc_close(c);
        return;
    }
    if (c->tls != NULL && c->state != CS_CLOSING)
        gwc_tls_pump(c);
    if (c->state == CS_CLOSING)
        return;
    c->wq_mark = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if (c->state == CS_LINGER && c->queued > 0) /* progress: restart the send timeout */
        uv_timer_start(&c->timer, gwc_on_timer, c->srv->send_ms, 0);
    if (c->state != CS_OPEN)
        return;
    c->write_deadline = c->queued > 0 ? uv_now(c->srv->loop) + c->srv->send_ms : 0;
    gwc_arm(c);
    if (c->above_high && gw_conn_write_queue(c) <= GW_CONN_LOW_WATER) {
        c->above_high = 0;
        if (c->active && !c->responded && c->ops && c->ops->on_drain)
            c->ops->on_drain(c->h);
    }
    if (c->held && gwc_may_start_next(c))
        gwc_advance(c);
}

/* Queue bytes for the socket as they are (plaintext or ciphertext). */
int gwc_write_raw(struct gw_conn *c, const struct cm_slice *s, size_t n)
{
    if (c->state == CS_CLOSING)
        return CM_ECLOSED;
    struct wr *w = cm_malloc(sizeof(*w) + n * sizeof(struct cm_slice));
    uv_buf_t stackbufs[8];
    uv_buf_t *bufs = n <= 8 ? stackbufs : cm_malloc(n * sizeof(uv_buf_t));
    if (w == NULL || bufs == NULL) {
        cm_free(w);
        if (bufs != stackbufs)
            cm_free(bufs);
        gwc_close(c);
        return CM_ENOMEM;
    }
    w->c = c;
    w->n = 0;
    w->bytes = 0;
    w->answers = 0;
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
        if (bufs != stackbufs)
            cm_free(bufs);
        return 0;
    }
    int rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, (unsigned)w->n, gwc_on_write);
    if (bufs != stackbufs)
        cm_free(bufs);
    if (rv != 0) {
        for (size_t i = 0; i < w->n; i++)
            cm_slice_release(&w->s[i]);
        cm_free(w);
        gwc_close(c);
        return CM_EIO;
    }
    if (c->srv->metrics != NULL)
        GW_METRIC_ADD(c->srv->metrics, socket_writes, 1);
    if (c->queued == 0) {
        c->write_deadline = uv_now(c->srv->loop) + c->srv->send_ms;
        c->wq_mark = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
        gwc_arm(c);
    } else {
        c->wq_mark += w->bytes; /* not progress: more to write */
    }
    c->queued += w->bytes;
    c->last_wr = w;
    if (gw_conn_write_queue(c) > GW_CONN_HIGH_WATER)
        c->above_high = 1;
    return 0;
}

static int tq_push(struct gw_conn *c, const struct cm_slice *sl)
{
    if (c->tq_n == c->tq_cap) {
        if (c->tq_head > 0) { /* slide down */
            memmove(c->tq, c->tq + c->tq_head, (c->tq_n - c->tq_head) * sizeof(*c->tq));
            c->tq_n -= c->tq_head;
            c->tq_head = 0;
        }
        if (c->tq_n == c->tq_cap) {
            size_t cap = c->tq_cap ? c->tq_cap * 2 : 8;
            struct cm_slice *nq = cm_realloc(c->tq, cap * sizeof(*nq));
            if (nq == NULL)
                return CM_ENOMEM;
            c->tq = nq;
            c->tq_cap = cap;
        }
    }
    c->tq[c->tq_n++] = cm_slice_dup(sl);
    c->tq_bytes += sl->len;
    return 0;
}

/* Encrypt queued plaintext while less than GW_TLS_AHEAD ciphertext is in flight. */
void gwc_tls_pump(struct gw_conn *c)
{
    while (c->tq_head < c->tq_n && c->queued + gw_tls_pending(c->tls) < GW_TLS_AHEAD) {
        struct cm_slice *sl = &c->tq[c->tq_head];
        size_t n = sl->len - c->tq_off;
        if (n > GW_TLS_RECORD)
            n = GW_TLS_RECORD;
        if (gw_tls_write(c->tls, cm_slice_ptr(sl) + c->tq_off, n) != 0) {
            gwc_close(c);
            return;
        }
        c->tq_off += n;
        c->tq_bytes -= n;
        if (c->tq_off == sl->len) {
            cm_slice_release(sl);
            c->tq_head++;
            c->tq_off = 0;
        }
    }
    if (c->tq_head == c->tq_n)
        c->tq_head = c->tq_n = 0;
    if (gwc_tls_flush(c) != 0)
        return;
    if (c->shutdown_deferred && c->tq_bytes == 0)
        gwc_shutdown(c);
}

/* Plain: the slices go out as they are (zero-copy). TLS: they are encrypted, and the
 * ciphertext goes out as one buffer. */
static int conn_write(struct gw_conn *c, const struct cm_slice *s, size_t n)
{
    if (c->tls == NULL && c->head_pend.buf != NULL) {
        struct cm_slice stack[4];
        struct cm_slice *all = n < 4 ? stack : cm_malloc((n + 1) * sizeof(*all));
        if (all == NULL) {
            gwc_close(c);
            return CM_ENOMEM;
        }
        all[0] = c->head_pend;
        if (n > 0)
            memcpy(all + 1, s, n * sizeof(*s));
        int rv = gwc_write_raw(c, all, n + 1);
        cm_slice_release(&c->head_pend);
        if (all != stack)
            cm_free(all);
        return rv;
    }
    if (c->tls == NULL)
        return gwc_write_raw(c, s, n);
    if (c->state != CS_OPEN)
        return CM_ECLOSED;
    for (size_t i = 0; i < n; i++) {
        if (s[i].len > 0 && tq_push(c, &s[i]) != 0) {
            gwc_close(c);
            return CM_ENOMEM;
        }
    }
    if (gw_conn_write_queue(c) > GW_CONN_HIGH_WATER)
        c->above_high = 1;
    gwc_tls_pump(c);
    return c->state == CS_CLOSING ? CM_ECLOSED : 0;
}

static int conn_write_copy(struct gw_conn *c, const char *p, size_t len)
{
    struct cm_buf *b = cm_buf_copy(p, len);
    if (b == NULL) {
        gwc_close(c);
        return CM_ENOMEM;
    }
    struct cm_slice s = cm_slice_take(b, 0, len);
    int rv = conn_write(c, &s, 1); /* TLS: behind any queued plaintext */
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

int gw_conn_is_tls(const struct gw_conn *c)
{
    return c->tls != NULL;
}

void gw_conn_note_cache(struct gw_conn *c, enum gw_cache_note note)
{
    c->cache = note;
}

int gw_conn_keep_alive(const struct gw_conn *c)
{
    if (c->close_after || c->state != CS_OPEN || c->req == NULL || !c->req->keep_alive)
        return 0;
    return c->body_done || !gwc_req_has_body(c->req);
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

void gw_conn_add_cors(struct gw_conn *c, struct cm_sbuf *headers)
{
    if (c->cors_added || c->srv->cors == NULL || c->req == NULL || c->req->method == HTTP_OPTIONS)
        return;
    c->cors_added = 1;
    gw_cors_headers(c->srv->cors, c->req->origin, headers);
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
    gw_conn_add_cors(c, &sb);
    cm_sbuf_puts(&sb, "\r\n");
    int rv = CM_ENOMEM;
    if (sb.oom) {
        gwc_close(c);
    } else if (c->tls == NULL && c->state != CS_CLOSING) {
        struct cm_buf *b = cm_buf_copy(sb.p, sb.len);
        if (b != NULL) {
            cm_slice_release(&c->head_pend);
            c->head_pend = cm_slice_take(b, 0, sb.len); /* goes out with the body */
            rv = 0;
        } else {
            gwc_close(c);
        }
    } else {
        rv = conn_write_copy(c, sb.p, sb.len); /* TLS: plaintext is batched before encryption */
    }
    cm_sbuf_free(&sb);
    c->head_sent = 1;
    c->status = status;
    return rv;
}

int gw_conn_write_body(struct gw_conn *c, const struct cm_slice *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        c->body_bytes += s[i].len;
    return conn_write(c, s, n);
}

size_t gw_conn_write_queue(const struct gw_conn *c)
{
    return c->queued + c->tq_bytes;
}

void gw_conn_done(struct gw_conn *c)
{
    if (c->responded || c->state != CS_OPEN)
        return;
    c->responded = 1;
    c->ops = NULL;
    c->h = NULL;
    if (c->head_pend.buf != NULL) /* a bodiless answer's head */
        conn_write(c, NULL, 0);
    if (c->state != CS_OPEN) {
        gwc_request_end(c, c->status);
        return;
    }
    if (c->last_wr != NULL) { /* the answer is complete once its last write is */
        c->last_wr->answers++;
        c->answers_queued++;
    }
    gwc_request_end(c, c->status);
    if (!c->body_done && c->req != NULL && gwc_req_has_body(c->req))
        c->close_after = 1;
    if (c->close_after) {
        gwc_finish_and_close(c);
        return;
    }
    gwc_advance(c);
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
    if (h.oom && c->state == CS_OPEN && !c->responded) {
        /* No memory to say anything: end the request (the handler is done with it) and cut
         * the connection; the client sees a close instead of waiting forever. */
        c->responded = 1;
        c->ops = NULL;
        c->h = NULL;
        gwc_request_end(c, 500);
        gwc_close(c);
    }
    if (!h.oom && gw_conn_write_head(c, status, h.p, h.len) == 0 && len > 0 &&
        !(c->req && c->req->method == HTTP_HEAD)) {
        c->body_bytes += len;
        conn_write_copy(c, body, len);
    }
    cm_sbuf_free(&h);
    gw_conn_done(c);
}

void gw_conn_error(struct gw_conn *c, int status, const char *code, const char *message,
                   enum gw_committed committed)
{
    if (cm_log_enabled(status >= 500 ? CM_LOG_WARN : CM_LOG_INFO)) {
        char target[256];
        gw_http_log_target(c->req && c->req->url.p ? c->req->url.p : "", target, sizeof(target));
        cm_log_write(status >= 500 ? CM_LOG_WARN : CM_LOG_INFO,
                     "msg=\"request failed\" conn=%llu method=%s target=\"%s\" status=%d "
                     "error=%s detail=\"%s\"",
                     (unsigned long long)c->id,
                     c->req ? http_method_str((enum http_method)c->req->method) : "-", target,
                     status, code, message);
    }
    if (c->head_sent && c->head_pend.buf != NULL) {
        /* The head never left (it waits for body bytes): the answer can still be this error. */
        cm_slice_release(&c->head_pend);
        c->head_sent = 0;
        c->cors_added = 0;
    }
    if (c->head_sent) {
        /* Too late for an error answer: cut the connection so the client sees a short body. */
        if (!c->responded) {
            c->responded = 1;
            c->ops = NULL;
            gwc_request_end(c, c->status);
        }
        gwc_close(c);
        return;
    }
    struct cm_sbuf b;
    cm_sbuf_init(&b);
    gw_http_error_body(&b, code, message, committed);
    if (status == 413 || status == 411 || status == 408)
        c->close_after = c->close_after || !c->body_done;
    const char *extra = NULL;
    if (status == 503)
        extra = "Retry-After: 1\r\n";
    else if (status == 401)
        extra = "WWW-Authenticate: Bearer\r\n";
    gw_conn_respond(c, status, "application/json", extra, b.oom ? "{}" : b.p, b.oom ? 2 : b.len);
    cm_sbuf_free(&b);
}

void gw_conn_read_pause(struct gw_conn *c)
{
    c->flow_paused = 1;
    if (c->phase == PH_BODY && c->read_deadline != 0) { /* not the client's fault */
        c->read_deadline = 0;
        gwc_arm(c);
    }
    if (!c->in_feed)
        gwc_update_reading(c);
}

void gw_conn_read_resume(struct gw_conn *c)
{
    if (!c->flow_paused)
        return;
    c->flow_paused = 0;
    if (c->phase == PH_BODY && c->state == CS_OPEN)
        gwc_phase(c, PH_BODY, c->srv->body_ms);
    if (!c->in_feed)
        gwc_update_reading(c);
}
