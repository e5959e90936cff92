/* Byte streams over accepted TCP connections, plain or TLS (see stream.h).
 *
 * Happy path: accept -> want_read -> bytes (plain: straight into rbuf; TLS: ciphertext into
 *   the scratch -> gw_tls_feed -> handshake records sent -> gw_tls_read plaintext into rbuf)
 *   -> ops->on_read; writes: plain = one uv_write of the caller's slices (zero-copy); TLS = the
 *   slices are queued as plaintext refs and encrypted only GW_STREAM_TLS_AHEAD bytes ahead of
 *   the socket, each batch taken into one buffer per uv_write -> on_drain per completed write.
 * Limits: no write progress (libuv's write queue did not shrink) for send_ms: close; one timer
 *   carries the protocol's deadline, the send deadline, and the linger second.
 *   --max-buffered-bytes: budget_sync wherever the write queue changes (write_raw, on_write,
 *   TLS plaintext queued / encrypted) and while a TLS handshake is unfinished; the stream the
 *   budget picks gets budget_kill: its timer fires at once and closes it (a lingering stream
 *   that is not the writer closes at once; a picked stream never lingers), and no other
 *   deadline re-arms that timer.
 * Failures: read error / EOF -> on_eof (the protocol decides); write error -> on_close; TLS
 *   error -> the alert is sent, on_close, then the linger path; TLS close_notify -> on_close.
 * Close: finish = queued bytes out -> close_notify (TLS) -> uv_shutdown -> read and discard
 *   until EOF or GW_STREAM_LINGER_MS -> close. Two handles (tcp, timer); freed after both close
 *   callbacks, after ops->on_free and env->on_gone. */
#include "http/stream.h"

#include <assert.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"

#define TLS_RECORD (16u * 1024u)
#define RBUF_MIN_ROOM 4096u

enum st_state { ST_OPEN, ST_LINGER, ST_CLOSING };

struct wr {
    uv_write_t req;
    struct gw_stream *st;
    size_t bytes;
    unsigned marks; /* gw_stream_mark()s that end with this write */
    size_t n;
    struct cm_slice s[];
};

struct tq_item {
    struct cm_slice s;
    unsigned marks;
};

/* TLS state, taken when the first ciphertext arrives: the engine, and plaintext waiting to be
 * encrypted (refs), encrypted only GW_STREAM_TLS_AHEAD bytes ahead of the socket. */
struct st_tls {
    struct gw_tls *tls; /* owned */
    struct tq_item *tq;
    size_t tq_bytes, tq_off;
    uint32_t tq_head, tq_n, tq_cap;
    unsigned enc_marks; /* of plaintext encrypted but not yet in a write */
};

struct gw_stream {
    uv_tcp_t tcp;
    uv_timer_t timer;
    const struct gw_stream_env *env;
    const struct gw_stream_ops *ops;
    void *proto;
    struct gw_stream *prev, *next; /* env->list */
    uv_shutdown_t *shut;           /* owned, while a shutdown is pending */
    uint64_t id;
    uint8_t state;        /* enum st_state */
    uint8_t handles_open; /* tcp, timer */
    unsigned detached : 1, want : 1, reading : 1, peer_eof : 1, in_pull : 1, shut_deferred : 1;
    unsigned budget_kill : 1; /* picked over --max-buffered-bytes: closing from its timer */
    unsigned read_oom : 1;    /* reading ended: no memory for a read buffer */
    unsigned marks;           /* marks not yet written */
    /* read region: rbuf->data[roff .. roff + rlen) (at most a few head limits: 32 bits) */
    struct cm_buf *rbuf; /* ref */
    uint32_t roff, rlen;
    /* deadlines (uv_now ms, 0 = none) */
    uint64_t proto_deadline, write_deadline;
    size_t wq_mark; /* bytes libuv had not yet written when the send timeout was (re)armed */
    size_t queued;  /* socket bytes in uv_writes */
    struct wr *last_wr;
    struct st_tls *t;           /* owned; NULL for plain, or before the first TLS bytes arrived */
    struct gw_budget_member bm; /* in env->budget while not closing */
};

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);
static void budget_close(struct gw_stream *st);
static void budget_sync(struct gw_stream *st);
static int tls_flush(struct gw_stream *st);
static void tls_pump(struct gw_stream *st);

static void *proto_of(const struct gw_stream *st)
{
    return st->detached ? NULL : st->proto;
}

/* ---- lifetime ---- */

/* The only place the state changes: OPEN -> LINGER -> CLOSING, OPEN -> CLOSING. */
static void stream_set(struct gw_stream *st, enum st_state to)
{
    assert((st->state == ST_OPEN && (to == ST_LINGER || to == ST_CLOSING)) ||
           (st->state == ST_LINGER && to == ST_CLOSING));
    st->state = (uint8_t)to;
}

static void on_handle_closed(uv_handle_t *hd)
{
    struct gw_stream *st = hd->data;
    assert(st->handles_open > 0);
    if (--st->handles_open > 0)
        return;
    if (st->t != NULL) {
        for (uint32_t i = st->t->tq_head; i < st->t->tq_n; i++)
            cm_slice_release(&st->t->tq[i].s);
        cm_free(st->t->tq);
        gw_tls_free(st->t->tls);
        cm_free(st->t);
    }
    cm_buf_unref(st->rbuf);
    if (st->ops != NULL)
        st->ops->on_free(st->proto);
    if (st->prev)
        st->prev->next = st->next;
    else
        *st->env->list = st->next;
    if (st->next)
        st->next->prev = st->prev;
    void (*on_gone)(void *) = st->env->on_gone;
    void *owner = st->env->owner;
    cm_free(st);
    on_gone(owner); /* may free the env */
}

static void stream_close(struct gw_stream *st)
{
    if (st->state == ST_CLOSING)
        return;
    stream_set(st, ST_CLOSING);
    gw_budget_leave(&st->bm); /* what it holds is about to be freed: never pick it */
    void *p = proto_of(st);
    st->detached = 1;
    if (p != NULL)
        st->ops->on_close(p);
    uv_close((uv_handle_t *)&st->timer, on_handle_closed);
    uv_close((uv_handle_t *)&st->tcp, on_handle_closed);
}

void gw_stream_close(struct gw_stream *st)
{
    stream_close(st);
}

void gw_stream_close_all(struct gw_stream **list)
{
    for (struct gw_stream *st = *list; st != NULL; st = st->next)
        stream_close(st);
}

int gw_stream_accept(const struct gw_stream_env *env, uv_stream_t *listener, uint64_t id,
                     struct gw_stream **out)
{
    struct gw_stream *st = cm_calloc(1, sizeof(*st));
    *out = st;
    if (st == NULL)
        return CM_ENOMEM;
    st->env = env;
    st->id = id;
    uv_tcp_init(env->loop, &st->tcp);
    uv_timer_init(env->loop, &st->timer);
    st->tcp.data = st;
    st->timer.data = st;
    st->handles_open = 2;
    st->next = *env->list;
    if (*env->list)
        (*env->list)->prev = st;
    *env->list = st;
    if (env->budget != NULL)
        gw_budget_join(env->budget, &st->bm);
    if (uv_accept(listener, (uv_stream_t *)&st->tcp) != 0) {
        stream_close(st);
        return CM_EIO;
    }
    uv_tcp_nodelay(&st->tcp, 1);
    if (env->tls != NULL)
        budget_sync(st); /* the handshake's memory counts until it is done */
    return 0;
}

void gw_stream_attach(struct gw_stream *st, const struct gw_stream_ops *ops, void *proto)
{
    st->ops = ops;
    st->proto = proto;
}

uint64_t gw_stream_id(const struct gw_stream *st)
{
    return st->id;
}

int gw_stream_read_oom(const struct gw_stream *st)
{
    return st->read_oom;
}

int gw_stream_is_tls(const struct gw_stream *st)
{
    return st->env->tls != NULL;
}

/* ---- timer ---- */

/* Every (re)start of the timer but the budget's: a stream picked over the budget keeps its 0 ms
 * timer. */
static void timer_start(struct gw_stream *st, uint64_t ms)
{
    if (!st->budget_kill)
        uv_timer_start(&st->timer, on_timer, ms, 0);
}

static void stream_arm(struct gw_stream *st)
{
    if (st->state != ST_OPEN || st->budget_kill)
        return;
    uint64_t dl = st->proto_deadline;
    if (st->write_deadline != 0 && (dl == 0 || st->write_deadline < dl))
        dl = st->write_deadline;
    if (dl == 0) {
        uv_timer_stop(&st->timer);
        return;
    }
    uint64_t now = uv_now(st->env->loop);
    timer_start(st, dl > now ? dl - now : 0);
}

void gw_stream_deadline(struct gw_stream *st, uint64_t ms)
{
    st->proto_deadline = ms == 0 ? 0 : uv_now(st->env->loop) + ms;
    stream_arm(st);
}

/* The send timeout passed: progress inside one large uv_write counts too. 1 = closed. */
static int send_check(struct gw_stream *st, int linger)
{
    size_t wq = uv_stream_get_write_queue_size((uv_stream_t *)&st->tcp);
    if (wq < st->wq_mark) {
        st->wq_mark = wq;
        if (linger) {
            timer_start(st, st->env->send_ms);
        } else {
            st->write_deadline = uv_now(st->env->loop) + st->env->send_ms;
            stream_arm(st);
        }
        return 0;
    }
    CM_DEBUG("msg=\"client stopped reading: closing\" conn=%llu queued=%zu",
             (unsigned long long)st->id, st->queued);
    stream_close(st);
    return 1;
}

static void on_timer(uv_timer_t *t)
{
    struct gw_stream *st = t->data;
    uint64_t now = uv_now(st->env->loop);
    if (st->budget_kill) {
        budget_close(st);
        return;
    }
    int linger_send = st->state == ST_LINGER && st->queued > 0;
    if (linger_send || (st->write_deadline != 0 && now >= st->write_deadline)) {
        send_check(st, linger_send);
        return;
    }
    if (st->state == ST_LINGER) {
        stream_close(st);
        return;
    }
    if (st->proto_deadline == 0 || now < st->proto_deadline) {
        stream_arm(st);
        return;
    }
    st->proto_deadline = 0;
    stream_arm(st);
    void *p = proto_of(st);
    if (p != NULL)
        st->ops->on_timeout(p);
}

/* ---- budget ---- */

static void budget_close(struct gw_stream *st)
{
    CM_INFO("msg=\"closing the slowest reader over --max-buffered-bytes\" conn=%llu queued=%zu",
            (unsigned long long)st->id, gw_stream_queued(st));
    if (st->env->metrics != NULL)
        GW_METRIC_ADD(st->env->metrics, budget_closes, 1);
    stream_close(st);
}

/* Picked by the budget while `writer` wrote: a lingering stream other than the writer has no
 * protocol and closes now; else it closes from its timer (0 ms), never inside the write that
 * found the process over --max-buffered-bytes. */
static void budget_kill(struct gw_stream *st, const struct gw_stream *writer)
{
    if (st->budget_kill || st->state == ST_CLOSING)
        return;
    if (st != writer && st->state == ST_LINGER) {
        budget_close(st);
        return;
    }
    st->budget_kill = 1;
    uv_timer_start(&st->timer, on_timer, 0, 0);
}

/* Tell the budget what the stream holds now: unsent bytes, + GW_STREAM_TLS_HANDSHAKE_COST while
 * a TLS handshake is unfinished. Over the budget, the stream of this owner holding the most
 * for the longest (maybe this one) is closed, never from here. */
static void budget_sync(struct gw_stream *st)
{
    if (st->bm.list == NULL)
        return;
    size_t n = gw_stream_queued(st);
    if (st->env->tls != NULL && (st->t == NULL || !gw_tls_handshake_done(st->t->tls)))
        n += GW_STREAM_TLS_HANDSHAKE_COST;
    struct gw_budget_member *m = gw_budget_set(&st->bm, n, uv_now(st->env->loop));
    struct gw_stream *victim =
        m != NULL ? (struct gw_stream *)(void *)((char *)m - offsetof(struct gw_stream, bm)) : NULL;
    if (victim != NULL)
        budget_kill(victim, st);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
    struct wr *w = (struct wr *)req;
    struct gw_stream *st = w->st;
    st->queued -= w->bytes;
    st->marks -= w->marks;
    budget_sync(st);
    if (st->last_wr == w)
        st->last_wr = NULL;
    if (status == 0 && st->env->metrics != NULL)
        GW_METRIC_ADD(st->env->metrics, bytes_out, w->bytes);
    for (size_t i = 0; i < w->n; i++)
        cm_slice_release(&w->s[i]);
    cm_free(w);
    if (status != 0) {
        if (status != UV_ECANCELED)
            stream_close(st);
        return;
    }
    if (st->t != NULL && st->state != ST_CLOSING)
        tls_pump(st);
    if (st->state == ST_CLOSING)
        return;
    st->wq_mark = uv_stream_get_write_queue_size((uv_stream_t *)&st->tcp);
    if (st->state == ST_LINGER) {
        if (st->queued > 0) /* progress: restart the send timeout */
            timer_start(st, st->env->send_ms);
        return;
    }
    st->write_deadline = st->queued > 0 ? uv_now(st->env->loop) + st->env->send_ms : 0;
    stream_arm(st);
    if (st->t != NULL && st->queued == 0 && st->rlen == 0 && st->t->tq_bytes == 0)
        gw_tls_trim(st->t->tls); /* everything went out: drop grown TLS buffers */
    void *p = proto_of(st);
    if (p != NULL)
        st->ops->on_drain(p);
}

/* Queue bytes for the socket as they are (plaintext or ciphertext) in one uv_write. */
static int write_raw(struct gw_stream *st, const struct cm_slice *s, size_t n, unsigned marks)
{
    if (st->state == ST_CLOSING)
        return CM_ECLOSED;
    struct wr *w = cm_malloc(sizeof(*w) + n * sizeof(struct cm_slice));
    uv_buf_t stackbufs[8];
    uv_buf_t *bufs = n <= 8 ? stackbufs : cm_malloc(n * sizeof(uv_buf_t));
    if (w == NULL || bufs == NULL) {
        cm_free(w);
        if (bufs != stackbufs)
            cm_free(bufs);
        stream_close(st);
        return CM_ENOMEM;
    }
    w->st = st;
    w->n = 0;
    w->bytes = 0;
    w->marks = marks;
    for (size_t i = 0; i < n; i++) {
        if (s[i].len == 0)
            continue;
        w->s[w->n] = cm_slice_dup(&s[i]);
        bufs[w->n] = uv_buf_init((char *)cm_slice_ptr(&s[i]), (unsigned)s[i].len);
        w->bytes += s[i].len;
        w->n++;
    }
    int rv =
        w->n == 0 ? 0 : uv_write(&w->req, (uv_stream_t *)&st->tcp, bufs, (unsigned)w->n, on_write);
    if (bufs != stackbufs)
        cm_free(bufs);
    if (w->n == 0 || rv != 0) {
        for (size_t i = 0; i < w->n; i++)
            cm_slice_release(&w->s[i]);
        int empty = w->n == 0;
        cm_free(w);
        if (empty)
            return 0;
        stream_close(st);
        return CM_EIO;
    }
    if (st->env->metrics != NULL)
        GW_METRIC_ADD(st->env->metrics, socket_writes, 1);
    if (st->queued == 0) {
        st->wq_mark = uv_stream_get_write_queue_size((uv_stream_t *)&st->tcp);
        if (st->state == ST_OPEN) {
            st->write_deadline = uv_now(st->env->loop) + st->env->send_ms;
            stream_arm(st);
        } else {
            timer_start(st, st->env->send_ms);
        }
    } else {
        st->wq_mark += w->bytes; /* not progress: more to write */
    }
    st->queued += w->bytes;
    st->last_wr = w;
    budget_sync(st);
    return 0;
}

static int tls_start(struct gw_stream *st)
{
    st->t = cm_calloc(1, sizeof(*st->t));
    if (st->t == NULL)
        return CM_ENOMEM;
    int rv = gw_tls_new(st->env->tls, &st->t->tls);
    if (rv != 0) {
        cm_free(st->t);
        st->t = NULL;
    }
    return rv;
}

/* Send the ciphertext the TLS engine has produced (handshake records, alerts, data). */
static int tls_flush(struct gw_stream *st)
{
    size_t n = gw_tls_pending(st->t->tls);
    if (n == 0)
        return 0;
    struct cm_buf *b = cm_buf_new(n);
    if (b == NULL) {
        stream_close(st);
        return CM_ENOMEM;
    }
    b->len = gw_tls_take(st->t->tls, b->data, n);
    struct cm_slice sl = cm_slice_take(b, 0, b->len);
    unsigned marks = st->t->enc_marks;
    st->t->enc_marks = 0;
    int rv = write_raw(st, &sl, 1, marks);
    cm_slice_release(&sl);
    return rv;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct gw_stream *st = req->data;
    cm_free(req);
    st->shut = NULL;
    if (st->state != ST_LINGER)
        return;
    if (status != 0) {
        stream_close(st);
        return;
    }
    timer_start(st, GW_STREAM_LINGER_MS);
}

/* LINGER, every byte queued: close_notify (TLS), then half-close after the writes. */
static void stream_shutdown(struct gw_stream *st)
{
    st->shut_deferred = 0;
    if (st->t != NULL) {
        gw_tls_shutdown(st->t->tls);
        if (tls_flush(st) != 0)
            return;
    }
    st->shut = cm_malloc(sizeof(*st->shut));
    if (st->shut == NULL) {
        stream_close(st);
        return;
    }
    st->shut->data = st;
    if (uv_shutdown(st->shut, (uv_stream_t *)&st->tcp, on_shutdown) != 0) {
        cm_free(st->shut);
        st->shut = NULL;
        stream_close(st);
    }
}

static int tq_push(struct gw_stream *st, const struct cm_slice *sl)
{
    if (st->t->tq_n == st->t->tq_cap) {
        if (st->t->tq_head > 0) { /* slide down */
            memmove(st->t->tq, st->t->tq + st->t->tq_head,
                    (st->t->tq_n - st->t->tq_head) * sizeof(*st->t->tq));
            st->t->tq_n -= st->t->tq_head;
            st->t->tq_head = 0;
        }
        if (st->t->tq_n == st->t->tq_cap) {
            uint32_t cap = st->t->tq_cap ? st->t->tq_cap * 2 : 8;
            struct tq_item *nq = cm_realloc(st->t->tq, cap * sizeof(*nq));
            if (nq == NULL)
                return CM_ENOMEM;
            st->t->tq = nq;
            st->t->tq_cap = cap;
        }
    }
    st->t->tq[st->t->tq_n].s = cm_slice_dup(sl);
    st->t->tq[st->t->tq_n].marks = 0;
    st->t->tq_n++;
    st->t->tq_bytes += sl->len;
    return 0;
}

/* Encrypt queued plaintext while less than GW_STREAM_TLS_AHEAD ciphertext is in flight. */
static void tls_pump(struct gw_stream *st)
{
    while (st->t->tq_head < st->t->tq_n &&
           st->queued + gw_tls_pending(st->t->tls) < GW_STREAM_TLS_AHEAD) {
        struct tq_item *it = &st->t->tq[st->t->tq_head];
        size_t n = it->s.len - st->t->tq_off;
        if (n > TLS_RECORD)
            n = TLS_RECORD;
        if (gw_tls_write(st->t->tls, cm_slice_ptr(&it->s) + st->t->tq_off, n) != 0) {
            stream_close(st);
            return;
        }
        st->t->tq_off += n;
        st->t->tq_bytes -= n;
        if (st->t->tq_off == it->s.len) {
            st->t->enc_marks += it->marks;
            cm_slice_release(&it->s);
            st->t->tq_head++;
            st->t->tq_off = 0;
        }
    }
    if (st->t->tq_head == st->t->tq_n) {
        st->t->tq_head = st->t->tq_n = 0;
        if (st->t->tq_cap > 8) { /* a large answer went out: do not keep its queue */
            cm_free(st->t->tq);
            st->t->tq = NULL;
            st->t->tq_cap = 0;
        }
    }
    if (tls_flush(st) != 0)
        return;
    if (st->shut_deferred && st->t->tq_bytes == 0)
        stream_shutdown(st);
}

int gw_stream_write(struct gw_stream *st, const struct cm_slice *s, size_t n)
{
    if (st->state != ST_OPEN)
        return CM_ECLOSED;
    if (st->t == NULL)
        return write_raw(st, s, n, 0);
    for (size_t i = 0; i < n; i++) {
        if (s[i].len > 0 && tq_push(st, &s[i]) != 0) {
            stream_close(st);
            return CM_ENOMEM;
        }
    }
    tls_pump(st);
    budget_sync(st); /* the plaintext queued (what was encrypted synced in write_raw) */
    return st->state == ST_CLOSING ? CM_ECLOSED : 0;
}

size_t gw_stream_queued(const struct gw_stream *st)
{
    return st->queued + (st->t != NULL ? st->t->tq_bytes : 0);
}

void gw_stream_mark(struct gw_stream *st)
{
    if (st->t != NULL && st->t->tq_head < st->t->tq_n)
        st->t->tq[st->t->tq_n - 1].marks++;
    else if (st->last_wr != NULL)
        st->last_wr->marks++;
    else
        return; /* everything is written already */
    st->marks++;
}

unsigned gw_stream_marks(const struct gw_stream *st)
{
    return st->marks;
}

void gw_stream_finish(struct gw_stream *st)
{
    if (st->state != ST_OPEN)
        return;
    if (st->budget_kill) { /* picked over the budget: its timer must not turn into a linger */
        budget_close(st);
        return;
    }
    stream_set(st, ST_LINGER);
    st->detached = 1;
    st->rlen = 0;
    st->proto_deadline = st->write_deadline = 0;
    uv_timer_stop(&st->timer);
    if (st->queued > 0) { /* the shutdown waits for the writes: the send timeout still applies */
        st->wq_mark = uv_stream_get_write_queue_size((uv_stream_t *)&st->tcp);
        timer_start(st, st->env->send_ms);
    }
    if (st->t != NULL && st->t->tq_bytes > 0)
        st->shut_deferred = 1; /* the pump shuts down once the plaintext is encrypted */
    else
        stream_shutdown(st);
    if (st->state == ST_LINGER && !st->reading &&
        uv_read_start((uv_stream_t *)&st->tcp, on_alloc, on_read) == 0)
        st->reading = 1;
}

/* ---- reading ---- */

/* Room at the end of the read buffer (a fresh buffer when there is none, nobody else holds the
 * old one and it has no unreleased bytes, or it is nearly full: unreleased bytes move along). */
static int rbuf_room(struct gw_stream *st, char **p, size_t *cap)
{
    struct cm_buf *b = st->rbuf;
    if (b != NULL && b->refs == 1 && st->rlen == 0) {
        b->len = 0; /* nobody holds a slice: reuse */
        st->roff = 0;
    }
    if (b == NULL || b->cap - b->len < RBUF_MIN_ROOM) {
        size_t size =
            st->rlen + RBUF_MIN_ROOM > GW_STREAM_RBUF ? st->rlen + GW_STREAM_RBUF : GW_STREAM_RBUF;
        struct cm_buf *nb = cm_buf_new(size);
        if (nb == NULL)
            return CM_ENOMEM;
        if (st->rlen > 0) { /* keep unreleased bytes contiguous */
            memcpy(nb->data, b->data + st->roff, st->rlen);
            nb->len = st->rlen;
        }
        cm_buf_unref(b);
        st->rbuf = b = nb;
        st->roff = 0;
    }
    *p = b->data + b->len;
    *cap = b->cap - b->len;
    return 0;
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    struct gw_stream *st = hd->data;
    char *p;
    size_t cap;
    (void)suggested;
    if (st->env->tls != NULL || st->state != ST_OPEN) { /* ciphertext, or bytes to discard */
        *buf = uv_buf_init(st->env->scratch, (unsigned)st->env->scratch_len);
        return;
    }
    if (rbuf_room(st, &p, &cap) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init(p, (unsigned)cap);
}

struct cm_buf *gw_stream_region(const struct gw_stream *st, size_t *off, size_t *len)
{
    *off = st->roff;
    *len = st->rlen;
    return st->rlen > 0 ? st->rbuf : NULL;
}

void gw_stream_release(struct gw_stream *st, size_t n)
{
    assert(n <= st->rlen);
    st->roff += n;
    st->rlen -= n;
    if (st->rlen > 0 || st->in_pull)
        return;
    if (st->rbuf != NULL && st->rbuf->refs == 1) {
        cm_buf_unref(st->rbuf); /* idle: hold no read buffer */
        st->rbuf = NULL;
        st->roff = 0;
    }
    if (st->t != NULL && st->t->tq_bytes == 0 && st->queued == 0)
        gw_tls_trim(st->t->tls); /* nor large TLS buffers */
}

static void got_bytes(struct gw_stream *st, size_t n)
{
    st->rbuf->len += n;
    st->rlen += n;
    void *p = proto_of(st);
    if (p != NULL)
        st->ops->on_read(p);
}

static void tls_fail(struct gw_stream *st)
{
    if (!gw_tls_handshake_done(st->t->tls) && st->env->metrics != NULL)
        GW_METRIC_ADD(st->env->metrics, tls_handshake_failures, 1);
    CM_DEBUG("msg=\"tls error: closing\" conn=%llu", (unsigned long long)st->id);
    if (tls_flush(st) != 0) /* the alert, if any */
        return;
    void *p = proto_of(st);
    st->detached = 1;
    if (p != NULL)
        st->ops->on_close(p);
    gw_stream_finish(st);
}

/* TLS: decrypt what the engine holds into the read buffer while the protocol wants bytes. */
static void tls_pull(struct gw_stream *st)
{
    st->in_pull = 1;
    while (st->state == ST_OPEN && st->want && !st->detached) {
        char *p;
        size_t cap;
        if (rbuf_room(st, &p, &cap) != 0) {
            stream_close(st);
            break;
        }
        ssize_t n = gw_tls_read(st->t->tls, p, cap);
        if (n == 0)
            break;
        if (n == CM_ECLOSED) {
            stream_close(st);
            break;
        }
        if (n < 0) {
            tls_fail(st);
            break;
        }
        got_bytes(st, (size_t)n);
    }
    st->in_pull = 0;
    if (st->state == ST_OPEN) {
        gw_stream_release(st, 0);
        tls_flush(st);
    }
}

static void stream_update(struct gw_stream *st)
{
    if (st->state == ST_CLOSING)
        return;
    if (st->t != NULL && st->want && !st->in_pull && st->state == ST_OPEN)
        tls_pull(st); /* plaintext may already be waiting inside the engine */
    if (st->state == ST_CLOSING)
        return;
    int want = st->state == ST_LINGER || (st->want && !st->peer_eof);
    if (want && !st->reading) {
        if (uv_read_start((uv_stream_t *)&st->tcp, on_alloc, on_read) != 0) {
            stream_close(st);
            return;
        }
        st->reading = 1;
    } else if (!want && st->reading) {
        uv_read_stop((uv_stream_t *)&st->tcp);
        st->reading = 0;
    }
}

void gw_stream_want_read(struct gw_stream *st, int want)
{
    st->want = want != 0;
    stream_update(st);
}

static void read_ended(struct gw_stream *st, ssize_t nread)
{
    if (nread != UV_EOF)
        CM_DEBUG("msg=\"http read error\" conn=%llu err=\"%s\"", (unsigned long long)st->id,
                 uv_strerror((int)nread));
    if (st->state != ST_OPEN) {
        stream_close(st);
        return;
    }
    st->peer_eof = 1;
    st->read_oom = nread == UV_ENOBUFS;
    if (st->reading) {
        uv_read_stop((uv_stream_t *)&st->tcp);
        st->reading = 0;
    }
    if (st->t != NULL && !st->in_pull)
        tls_pull(st); /* the engine may still hold the end of a request */
    void *p = proto_of(st);
    if (st->state == ST_OPEN && p != NULL)
        st->ops->on_eof(p);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct gw_stream *st = s->data;
    if (st->state == ST_CLOSING || nread == 0)
        return;
    if (nread < 0) {
        read_ended(st, nread);
        return;
    }
    if (st->env->metrics != NULL)
        GW_METRIC_ADD(st->env->metrics, bytes_in, nread);
    if (st->state == ST_LINGER)
        return; /* discard: the answer is out, we only wait for the peer to finish */
    if (st->env->tls == NULL) {
        got_bytes(st, (size_t)nread);
        return;
    }
    if (st->t == NULL && tls_start(st) != 0) {
        stream_close(st);
        return;
    }
    if (gw_tls_feed(st->t->tls, buf->base, (size_t)nread) != 0) {
        tls_fail(st);
        return;
    }
    if (tls_flush(st) != 0)
        return;
    stream_update(st); /* pulls the plaintext */
    budget_sync(st);   /* a finished handshake stops counting */
}
