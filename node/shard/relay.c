/* Inbound Raft relay (see relay.h).
 *
 * Happy path: start -> socketpair: raft gets end 0 (a uv_pipe_t), we keep end 1 -> read the
 *   peer into a chunk (one allocation per read, written to raft's end as is, no copy) -> guard
 *   -> uv_write to our end -> freed in the write callback.
 * Limits: over ND_RELAY_HIGH_WATER queued towards raft -> stop reading the peer until below
 *   ND_RELAY_LOW_WATER; the idle timer restarts on every read.
 * Failures: the guard refuses, the peer closes or errs, raft closes its end (our end reads
 *   EOF), the idle timer fires -> relay_close.
 * Close: tcp, our pipe end and the timer each uv_close'd once; pending writes are cancelled
 *   first; the relay is freed after the third close callback; on_empty when the set drained. */
#include "relay.h"

#include <raft.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "auth.h"
#include "err.h"
#include "log.h"
#include "raft_guard.h"

struct nd_relay {
    struct nd_relays *set;
    struct nd_relay *prev, *next;
    uv_tcp_t *tcp; /* raft_malloc'd */
    uv_pipe_t pipe;
    uv_timer_t idle;
    int handles_open;
    int closing;
    int reading;
    size_t queued;
    struct nd_raft_guard guard;
    char peer[80];
    char sink[64]; /* what raft's end might send: nothing, but we read to see EOF */
};

struct chunk {
    uv_write_t req;
    struct nd_relay *r;
    size_t len;
    char data[ND_RELAY_READ_CHUNK];
};

static void on_closed(uv_handle_t *h)
{
    struct nd_relay *r = h->data;
    if (h == (uv_handle_t *)r->tcp)
        raft_free(r->tcp);
    if (--r->handles_open > 0)
        return;
    struct nd_relays *set = r->set;
    if (r->prev)
        r->prev->next = r->next;
    else
        set->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    set->n--;
    cm_free(r);
    if (set->closing && set->head == NULL && set->on_empty != NULL)
        set->on_empty(set->arg);
}

static void relay_close(struct nd_relay *r)
{
    if (r->closing)
        return;
    r->closing = 1;
    uv_close((uv_handle_t *)r->tcp, on_closed);
    uv_close((uv_handle_t *)&r->pipe, on_closed);
    uv_close((uv_handle_t *)&r->idle, on_closed);
}

static void on_idle(uv_timer_t *t)
{
    struct nd_relay *r = t->data;
    cm_auth_refuse(r->set->auth, CM_AUTH_R_IDLE, r->peer, "idle raft connection closed");
    relay_close(r);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct chunk *c = cm_malloc(sizeof(*c));
    *buf = uv_buf_init(c ? c->data : NULL, c ? (unsigned)sizeof(c->data) : 0);
}

static void peer_read_start(struct nd_relay *r);

static void on_written(uv_write_t *req, int status)
{
    struct chunk *c = (struct chunk *)req;
    struct nd_relay *r = c->r;
    r->queued -= c->len;
    cm_free(c);
    if (r->closing)
        return;
    if (status != 0) {
        relay_close(r);
        return;
    }
    if (!r->reading && r->queued <= ND_RELAY_LOW_WATER)
        peer_read_start(r);
}

static void on_peer_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct nd_relay *r = s->data;
    struct chunk *c = buf->base ? (struct chunk *)(buf->base - offsetof(struct chunk, data)) : NULL;
    if (nread <= 0 || r->closing) {
        cm_free(c);
        if (nread < 0 && !r->closing)
            relay_close(r);
        return;
    }
    uv_timer_start(&r->idle, on_idle, r->set->idle_ms, 0);
    if (nd_raft_guard_feed(&r->guard, (const uint8_t *)c->data, (size_t)nread) != 0) {
        cm_free(c);
        cm_auth_refuse(r->set->auth, CM_AUTH_R_BAD_RAFT, r->peer, r->guard.why);
        relay_close(r);
        return;
    }
    c->r = r;
    c->len = (size_t)nread;
    uv_buf_t out = uv_buf_init(c->data, (unsigned)nread);
    if (uv_write(&c->req, (uv_stream_t *)&r->pipe, &out, 1, on_written) != 0) {
        cm_free(c);
        relay_close(r);
        return;
    }
    r->queued += c->len;
    if (r->queued > ND_RELAY_HIGH_WATER) {
        uv_read_stop((uv_stream_t *)r->tcp);
        r->reading = 0;
    }
}

static void peer_read_start(struct nd_relay *r)
{
    if (uv_read_start((uv_stream_t *)r->tcp, on_alloc, on_peer_read) != 0) {
        relay_close(r);
        return;
    }
    r->reading = 1;
}

static void on_sink_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct nd_relay *r = h->data;
    *buf = uv_buf_init(r->sink, sizeof(r->sink));
}

static void on_sink_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct nd_relay *r = s->data;
    if (nread < 0)
        relay_close(r); /* raft closed its end */
}

static void on_raft_handle_closed(uv_handle_t *h)
{
    raft_free(h);
}

/* The socket pair: our end in r->pipe (initialised by the caller), raft's in *raft_end. */
static int pair_open(struct nd_relay *r, uv_loop_t *loop, uv_stream_t **raft_end)
{
    uv_os_sock_t fds[2];
    if (uv_socketpair(SOCK_STREAM, 0, fds, 0, 0) != 0)
        return CM_EIO;
    uv_pipe_t *rp = raft_malloc(sizeof(*rp));
    if (rp == NULL) {
        close(fds[0]);
        close(fds[1]);
        return CM_ENOMEM;
    }
    uv_pipe_init(loop, rp, 0);
    int rv0 = uv_pipe_open(rp, fds[0]);
    if (rv0 != 0)
        close(fds[0]);
    int rv1 = uv_pipe_open(&r->pipe, fds[1]);
    if (rv1 != 0)
        close(fds[1]);
    if (rv1 == 0)
        rv1 = uv_read_start((uv_stream_t *)&r->pipe, on_sink_alloc, on_sink_read);
    if (rv0 != 0 || rv1 != 0) {
        uv_close((uv_handle_t *)rp, on_raft_handle_closed);
        return CM_EIO;
    }
    *raft_end = (uv_stream_t *)rp;
    return 0;
}

int nd_relay_start(struct nd_relays *set, uv_loop_t *loop, uv_tcp_t *tcp, const char *peer,
                   uv_stream_t **raft_end)
{
    struct nd_relay *r = cm_calloc(1, sizeof(*r));
    if (r == NULL) {
        uv_close((uv_handle_t *)tcp, on_raft_handle_closed);
        return CM_ENOMEM;
    }
    r->set = set;
    r->tcp = tcp;
    tcp->data = r;
    uv_pipe_init(loop, &r->pipe, 0);
    r->pipe.data = r;
    uv_timer_init(loop, &r->idle);
    r->idle.data = r;
    r->handles_open = 3;
    nd_raft_guard_init(&r->guard);
    snprintf(r->peer, sizeof(r->peer), "%s", peer);
    r->next = set->head;
    if (set->head)
        set->head->prev = r;
    set->head = r;
    set->n++;
    int rv = pair_open(r, loop, raft_end);
    if (rv != 0) {
        relay_close(r);
        return rv;
    }
    uv_timer_start(&r->idle, on_idle, set->idle_ms, 0);
    peer_read_start(r);
    return 0;
}

void nd_relays_close_all(struct nd_relays *set)
{
    set->closing = 1;
    for (struct nd_relay *r = set->head; r != NULL; r = r->next)
        relay_close(r);
}
