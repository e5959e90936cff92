/* HTTP/1.1 connections on a byte stream (see h1.h, server.h).
 *
 * Happy path: stream on_read -> gw_http_in_feed over the stream's unreleased bytes -> on_head
 *   (the head's bytes are slices of the read buffer: we hold a ref on that buffer until the
 *   answer is done) -> route (answer now, or install a handler) -> on_body pieces (slices of
 *   the read buffer) -> on_end: framer pauses -> handler answers (write_head / write_body /
 *   done: the head waits for the first body bytes so both leave in one stream write) -> next
 *   request from the buffered bytes, then reading resumes. Parsed bytes are released to the
 *   stream at once, except a partial head's (the framer pins them, so a head that spans reads
 *   ends up contiguous); with nothing unparsed and no request active the stream drops its
 *   read buffer.
 * Limits: head > max-header-size 431, target > max-url-length 414 (both + close); deadlines
 *   per phase (the stream's one timer): fresh connection / keep-alive idle (close silently),
 *   head started but not complete (408 + close), no body bytes for body-timeout while reading
 *   a body (408 + close); the send timeout is the stream's. At most max-pipeline answers in the
 *   write queue (or more bytes than gw_conn_high_water: GW_CONN_HIGH_WATER, shrinking as the
 *   process nears --max-buffered-bytes) before the next request is parsed; reading stops
 *   meanwhile; handlers get on_drain under an eighth of the mark. busy (over
 *   --max-connections): 503 + close. Closing the connection the budget picks is the stream's
 *   (we hear on_close).
 * Failures: bytes that are not HTTP -> 400 + close; an answer given before the body was fully
 *   read -> close after the answer; stream failure / client EOF mid-request -> handler
 *   on_abort, close.
 * Close: answer done with close_after -> gw_stream_finish (the stream sends, half-closes,
 *   lingers); or gw_stream_close. Our memory goes in the stream's on_free. Every answered or
 *   abandoned request gives one access log line. */
#include "http/h1.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"

/* What the read deadline means when it passes. */
enum h1_phase {
    PH_NONE,   /* no read deadline: a handler is working, or answers are being written */
    PH_IDLE,   /* fresh or keep-alive connection without request bytes: close silently */
    PH_HEADER, /* a request head has started: 408 */
    PH_BODY,   /* reading a request body: 408 */
};

struct gw_conn {
    struct gw_stream *st;
    const struct gw_h1_env *env;
    struct gw_http_in in;
    size_t fed;              /* bytes of the stream's region already framed */
    struct cm_buf *head_buf; /* ref: the buffer the active request's head points into */
    struct gw_http_req *req; /* borrowed from in */
    const struct gw_handler_ops *ops;
    void *h;
    /* access log */
    uint64_t t0_ns;
    uint64_t body_bytes;
    int status;
    uint8_t cache; /* enum gw_cache_note */
    uint8_t phase; /* enum h1_phase */
    /* the answer's head waits here for the first body bytes (or gw_conn_done), so head and
     * body leave in one write: one syscall, no lone head packet */
    struct cm_slice head_pend;
    unsigned closed : 1;   /* the stream is finishing or gone: no more stream calls */
    unsigned peer_eof : 1; /* the client finished sending: serve what arrived, then close */
    unsigned in_feed : 1, active : 1, body_done : 1, responded : 1, head_sent : 1;
    unsigned sent_continue : 1, close_after : 1, flow_paused : 1, cors_added : 1;
    unsigned held : 1;  /* answered; the next request waits for the write queue to drain */
    unsigned fresh : 1; /* no request yet: the head deadline runs from accept */
    unsigned above_high : 1;
};

static void conn_feed(struct gw_conn *c);
static void conn_update_reading(struct gw_conn *c);

/* ---- lifetime ---- */

static void request_end(struct gw_conn *c, int status)
{
    const struct gw_h1_env *e = c->env;
    const char *method = c->req ? http_method_str((enum http_method)c->req->method) : "-";
    if (e->metrics != NULL) {
        unsigned m = c->req ? gw_metric_method(c->req->method) : GW_M_OTHER;
        int cls = status >= 100 && status < 600 ? status / 100 : 0;
        GW_METRIC_ADD(e->metrics, requests[m][cls], 1);
    }
    if (!e->access_log)
        return;
    static const char *cache[] = {"-", "hit", "miss", "coalesced"};
    char target[512];
    gw_http_log_target(c->req && c->req->url.p ? c->req->url.p : "-", target, sizeof(target));
    uint64_t us = c->t0_ns ? (uv_hrtime() - c->t0_ns) / 1000 : 0;
    /* no level check: the access log is switched by --access-log, not by --log-level */
    cm_log_write(CM_LOG_INFO,
                 "msg=access listener=%s conn=%llu method=%s path=\"%s\" status=%d bytes=%llu "
                 "ms=%llu.%03llu cache=%s",
                 e->name, (unsigned long long)gw_stream_id(c->st), method, target, status,
                 (unsigned long long)c->body_bytes, (unsigned long long)(us / 1000),
                 (unsigned long long)(us % 1000), cache[c->cache & 3]);
}

/* log: the request ends here (499 = no complete answer); else another answer follows. */
static void abort_handler(struct gw_conn *c, int log)
{
    if (c->active && !c->responded) {
        const struct gw_handler_ops *ops = c->ops;
        c->ops = NULL;
        c->responded = 1;
        if (log)
            request_end(c, 499);
        if (ops != NULL)
            ops->on_abort(c->h);
    }
}

static void conn_close(struct gw_conn *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    abort_handler(c, 1);
    gw_stream_close(c->st);
}

/* The answer is (being) written: the stream sends it, half-closes and lingers. */
static void finish_and_close(struct gw_conn *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    abort_handler(c, 1);
    gw_stream_finish(c->st);
}

static void h1_on_close(void *proto)
{
    struct gw_conn *c = proto;
    c->closed = 1;
    abort_handler(c, 1);
}

static void h1_on_free(void *proto)
{
    struct gw_conn *c = proto;
    cm_slice_release(&c->head_pend);
    cm_buf_unref(c->head_buf);
    gw_http_in_close(&c->in);
    cm_free(c);
}

/* ---- deadlines ---- */

static void conn_phase(struct gw_conn *c, enum h1_phase p, uint64_t ms)
{
    c->phase = p;
    if (!c->closed)
        gw_stream_deadline(c->st, p == PH_NONE ? 0 : ms);
}

/* An answer that closes the connection before or instead of a request (408, 414, 431, 400,
 * 503 over the connection limit). */
static void conn_reject(struct gw_conn *c, int status, const char *code, const char *message)
{
    abort_handler(c, c->head_sent);
    if (c->head_sent || c->closed) {
        conn_close(c);
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

static void h1_on_timeout(void *proto)
{
    struct gw_conn *c = proto;
    switch (c->phase) {
    case PH_IDLE:
        if (gw_stream_queued(c->st) > 0) { /* the last answer is still going out */
            conn_phase(c, PH_IDLE, c->env->idle_ms);
            return;
        }
        CM_DEBUG("msg=\"closing idle http connection\" conn=%llu",
                 (unsigned long long)gw_stream_id(c->st));
        conn_close(c);
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

/* ---- reading ---- */

static size_t unparsed(const struct gw_conn *c)
{
    size_t off, len;
    gw_stream_region(c->st, &off, &len);
    return len - c->fed;
}

/* May more request bytes be taken in now? */
static int conn_wants_bytes(const struct gw_conn *c)
{
    return !c->closed && unparsed(c) == 0 && !c->flow_paused && !c->held &&
           !(c->active && c->body_done);
}

static void conn_update_reading(struct gw_conn *c)
{
    if (c->closed)
        return;
    gw_stream_want_read(c->st, conn_wants_bytes(c)); /* TLS: may deliver plaintext now */
    if (c->peer_eof && conn_wants_bytes(c))
        finish_and_close(c); /* every request that arrived is answered; nothing more comes */
}

static void h1_on_read(void *proto)
{
    struct gw_conn *c = proto;
    if (c->phase == PH_IDLE && c->fresh)
        c->phase = PH_HEADER; /* keeps the deadline set at accept */
    else if (c->phase == PH_IDLE)
        conn_phase(c, PH_HEADER, c->env->header_ms);
    else if (c->phase == PH_BODY && !c->flow_paused)
        conn_phase(c, PH_BODY, c->env->body_ms);
    conn_feed(c);
}

static void h1_on_eof(void *proto)
{
    struct gw_conn *c = proto;
    if (c->closed)
        return;
    if (c->active && !c->body_done) { /* an upload cut short before its body ended */
        conn_close(c);
        return;
    }
    if (!c->active && gw_stream_read_oom(c->st)) { /* the next head could not be read */
        conn_reject(c, 503, "unavailable", "out of memory");
        return;
    }
    /* A half-close after complete requests (ffmpeg ends its last PUT this way): answer them,
     * then close. */
    c->peer_eof = 1;
    if (!c->in_feed)
        conn_update_reading(c);
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
    cm_buf_unref(c->head_buf);
    c->head_buf = NULL;
    gw_http_in_resume(&c->in);
    gw_stream_release(c->st, 0); /* idle: the stream may drop its read buffer now */
    if (unparsed(c) > 0)
        conn_phase(c, PH_HEADER, c->env->header_ms);
    else
        conn_phase(c, PH_IDLE, c->env->idle_ms);
}

static void conn_bad_request(struct gw_conn *c)
{
    int status = gw_http_in_error_status(&c->in);
    if (status == 400)
        CM_INFO("msg=\"malformed http request\" conn=%llu parser=%s",
                (unsigned long long)gw_stream_id(c->st), gw_http_in_error(&c->in));
    if (status == 431)
        conn_reject(c, 431, "bad_request", "request header fields too large");
    else if (status == 414)
        conn_reject(c, 414, "bad_request", "request target too long");
    else
        conn_reject(c, 400, "bad_request", "malformed HTTP request");
}

/* The previous request is answered and its body read: may the next one start? */
static int conn_may_start_next(const struct gw_conn *c)
{
    return gw_stream_marks(c->st) < c->env->max_pipeline &&
           gw_stream_queued(c->st) <= gw_conn_high_water(c);
}

/* Frame the unparsed bytes; give the stream back what no request points into. */
static int conn_frame(struct gw_conn *c)
{
    size_t off, len, used = 0;
    struct cm_buf *b = gw_stream_region(c->st, &off, &len);
    int rc = gw_http_in_feed(&c->in, b, off + c->fed, len - c->fed, &used);
    if (c->closed)
        return GW_HTTP_STOPPED;
    c->fed += used;
    size_t done = c->fed - gw_http_in_pinned(&c->in);
    gw_stream_release(c->st, done);
    c->fed -= done;
    return rc;
}

static void conn_feed(struct gw_conn *c)
{
    if (c->in_feed)
        return;
    c->in_feed = 1;
    while (!c->closed) {
        if (c->active && c->body_done) {
            if (!c->responded)
                break; /* pipelined bytes wait for the answer */
            if (!conn_may_start_next(c)) {
                c->held = 1; /* on_drain resumes */
                conn_phase(c, PH_NONE, 0);
                break;
            }
            conn_next_request(c);
        }
        if (unparsed(c) == 0)
            break;
        int rc = conn_frame(c);
        if (rc == GW_HTTP_PAUSED)
            continue;
        if (rc == GW_HTTP_ERROR) {
            conn_bad_request(c);
            break;
        }
        if (rc == GW_HTTP_STOPPED)
            break;
    }
    if (!c->closed && c->active && !c->responded && c->ops && c->ops->on_read_done)
        c->ops->on_read_done(c->h);
    c->in_feed = 0;
    conn_update_reading(c);
}

/* After an answer completed outside the feed loop, or the write queue drained. */
static void conn_advance(struct gw_conn *c)
{
    if (c->in_feed || c->closed)
        return;
    c->held = 0;
    conn_feed(c);
}

static void h1_on_drain(void *proto)
{
    struct gw_conn *c = proto;
    if (c->closed)
        return;
    if (c->above_high && gw_stream_queued(c->st) <= gw_conn_high_water(c) / 8) {
        c->above_high = 0;
        if (c->active && !c->responded && c->ops && c->ops->on_drain)
            c->ops->on_drain(c->h);
    }
    if (c->held && conn_may_start_next(c))
        conn_advance(c);
}

/* ---- framer sink ---- */

static int sink_head(void *arg, struct gw_http_req *req)
{
    struct gw_conn *c = arg;
    c->req = req;
    c->t0_ns = uv_hrtime();
    cm_buf_unref(c->head_buf);
    c->head_buf = cm_buf_ref(c->in.feeding); /* req points into it until answered */
    if (req->url_overflow) {
        conn_reject(c, 414, "bad_request", "request target too long");
        return -1;
    }
    c->active = 1;
    c->body_done = 0;
    c->responded = 0;
    if (req_has_body(req))
        conn_phase(c, PH_BODY, c->env->body_ms);
    else
        conn_phase(c, PH_NONE, 0);
    c->env->route(c->env->arg, c, req);
    return c->closed ? -1 : 0;
}

static int sink_body(void *arg, const struct cm_slice *piece)
{
    struct gw_conn *c = arg;
    if (c->closed)
        return -1;
    if (!c->responded && c->ops != NULL)
        c->ops->on_body(c->h, piece);
    return c->closed ? -1 : 0;
}

static int sink_end(void *arg)
{
    struct gw_conn *c = arg;
    c->body_done = 1;
    conn_phase(c, PH_NONE, 0);
    if (!c->responded && c->ops != NULL)
        c->ops->on_body_end(c->h);
    return c->closed ? -1 : 0;
}

static const struct gw_http_sink conn_sink = {sink_head, sink_body, sink_end};

static const struct gw_stream_ops h1_ops = {
    .on_read = h1_on_read,
    .on_eof = h1_on_eof,
    .on_drain = h1_on_drain,
    .on_timeout = h1_on_timeout,
    .on_close = h1_on_close,
    .on_free = h1_on_free,
};

int gw_h1_start(struct gw_stream *st, const struct gw_h1_env *env, int busy)
{
    struct gw_conn *c = cm_calloc(1, sizeof(*c));
    if (c == NULL) {
        gw_stream_close(st);
        return CM_ENOMEM;
    }
    c->st = st;
    c->env = env;
    gw_http_in_init(&c->in, &conn_sink, c);
    gw_http_in_limits(&c->in, env->max_head, env->max_url);
    gw_stream_attach(st, &h1_ops, c);
    if (busy) {
        conn_reject(c, 503, "unavailable", "too many connections");
        return 0;
    }
    c->fresh = 1;
    conn_phase(c, PH_IDLE, env->header_ms);
    conn_update_reading(c);
    return 0;
}

/* ---- writing ---- */

/* The pending head (if any) and the slices, in one stream write. */
static int conn_write(struct gw_conn *c, const struct cm_slice *s, size_t n)
{
    if (c->closed)
        return CM_ECLOSED;
    int rv;
    if (c->head_pend.buf != NULL) {
        struct cm_slice stack[4];
        struct cm_slice *all = n < 4 ? stack : cm_malloc((n + 1) * sizeof(*all));
        if (all == NULL) {
            conn_close(c);
            return CM_ENOMEM;
        }
        all[0] = c->head_pend;
        if (n > 0)
            memcpy(all + 1, s, n * sizeof(*s));
        rv = gw_stream_write(c->st, all, n + 1);
        cm_slice_release(&c->head_pend);
        if (all != stack)
            cm_free(all);
    } else {
        rv = gw_stream_write(c->st, s, n);
    }
    if (rv == 0 && gw_stream_queued(c->st) > gw_conn_high_water(c))
        c->above_high = 1;
    return rv;
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
    return gw_stream_id(c->st);
}

int gw_conn_is_tls(const struct gw_conn *c)
{
    return gw_stream_is_tls(c->st);
}

void gw_conn_note_cache(struct gw_conn *c, enum gw_cache_note note)
{
    c->cache = note;
}

int gw_conn_keep_alive(const struct gw_conn *c)
{
    if (c->close_after || c->closed || c->req == NULL || !c->req->keep_alive)
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

void gw_conn_add_cors(struct gw_conn *c, struct cm_sbuf *headers)
{
    if (c->cors_added || c->env->cors == NULL || c->req == NULL || c->req->method == HTTP_OPTIONS)
        return;
    c->cors_added = 1;
    gw_cors_headers(c->env->cors, gw_http_header_str(c->req, GW_H_ORIGIN), headers);
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
    if (c->env->nosniff)
        cm_sbuf_puts(&sb, "X-Content-Type-Options: nosniff\r\n");
    cm_sbuf_puts(&sb, "\r\n");
    int rv = CM_ENOMEM;
    struct cm_buf *b = sb.oom || c->closed ? NULL : cm_buf_copy(sb.p, sb.len);
    if (b != NULL) {
        cm_slice_release(&c->head_pend);
        c->head_pend = cm_slice_take(b, 0, sb.len); /* goes out with the body */
        rv = 0;
    } else if (c->closed) {
        rv = CM_ECLOSED;
    } else {
        conn_close(c);
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
    return c->closed ? 0 : gw_stream_queued(c->st);
}

size_t gw_conn_high_water(const struct gw_conn *c)
{
    return gw_budget_mark(c->env->budget, GW_CONN_HIGH_WATER);
}

int gw_conn_over_high_water(struct gw_conn *c)
{
    if (gw_conn_write_queue(c) <= gw_conn_high_water(c))
        return 0;
    c->above_high = 1; /* the mark moves with the budget: promise the drain now */
    return 1;
}

void gw_conn_done(struct gw_conn *c)
{
    if (c->responded || c->closed)
        return;
    c->responded = 1;
    c->ops = NULL;
    c->h = NULL;
    if (c->head_pend.buf != NULL) /* a bodiless answer's head */
        conn_write(c, NULL, 0);
    if (c->closed) {
        request_end(c, c->status);
        return;
    }
    gw_stream_mark(c->st); /* the answer is complete once its last write is */
    request_end(c, c->status);
    if (!c->body_done && c->req != NULL && req_has_body(c->req))
        c->close_after = 1;
    if (c->close_after) {
        finish_and_close(c);
        return;
    }
    conn_advance(c);
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
    if (h.oom && !c->closed && !c->responded) {
        /* No memory to say anything: end the request (the handler is done with it) and cut
         * the connection; the client sees a close instead of waiting forever. */
        c->responded = 1;
        c->ops = NULL;
        c->h = NULL;
        request_end(c, 500);
        conn_close(c);
    }
    if (!h.oom && gw_conn_write_head(c, status, h.p, h.len) == 0 && len > 0 &&
        !(c->req && c->req->method == HTTP_HEAD)) {
        c->body_bytes += len;
        conn_write_copy(c, body, len);
    }
    cm_sbuf_free(&h);
    gw_conn_done(c);
}

static void error_log(const struct gw_conn *c, int status, const char *code, const char *message)
{
    int level = status >= 500 ? CM_LOG_WARN : CM_LOG_INFO;
    if (!cm_log_enabled(level))
        return;
    char target[256];
    gw_http_log_target(c->req && c->req->url.p ? c->req->url.p : "", target, sizeof(target));
    cm_log_write(level,
                 "msg=\"request failed\" conn=%llu method=%s target=\"%s\" status=%d "
                 "error=%s detail=\"%s\"",
                 (unsigned long long)gw_stream_id(c->st),
                 c->req ? http_method_str((enum http_method)c->req->method) : "-", target, status,
                 code, message);
}

void gw_conn_error(struct gw_conn *c, int status, const char *code, const char *message,
                   enum gw_committed committed)
{
    error_log(c, status, code, message);
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
            request_end(c, c->status);
        }
        conn_close(c);
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
    if (c->phase == PH_BODY && !c->closed) /* not the client's fault */
        gw_stream_deadline(c->st, 0);
    if (!c->in_feed)
        conn_update_reading(c);
}

void gw_conn_read_resume(struct gw_conn *c)
{
    if (!c->flow_paused)
        return;
    c->flow_paused = 0;
    if (c->phase == PH_BODY && !c->closed)
        conn_phase(c, PH_BODY, c->env->body_ms);
    if (!c->in_feed)
        conn_update_reading(c);
}
