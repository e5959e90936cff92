/* Internals of the gateway's HTTP connections, shared by server.c (accept, read, parse,
 * deadlines, close) and conn_write.c (the write path: plain zero-copy writes, TLS encryption
 * paced ahead of the socket, and the public gw_conn_* answer API). Not for other files. */
#ifndef GW_CONN_INTERNAL_H
#define GW_CONN_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/server.h"
#include "http/tls.h"

#define GW_RBUF_SIZE (64u * 1024u)
#define GW_TLS_SCRATCH (64u * 1024u)
#define GW_TLS_AHEAD (256u * 1024u) /* ciphertext in flight before we encrypt more */
#define GW_TLS_RECORD (16u * 1024u)
#define GW_LINGER_MS 1000

enum conn_state { CS_OPEN, CS_LINGER, CS_CLOSING };

/* What the read deadline means when it passes. */
enum conn_phase {
    PH_NONE,   /* no read deadline: a handler is working, or answers are being written */
    PH_IDLE,   /* fresh or keep-alive connection without request bytes: close silently */
    PH_HEADER, /* a request head has started: 408 */
    PH_BODY,   /* reading a request body: 408 */
};

struct wr;

struct gw_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* nearest of read / write deadline, then linger */
    uv_shutdown_t shut;
    struct gw_server *srv;
    struct gw_conn *prev, *next;
    uint64_t id;
    enum conn_state state;
    int handles_open;
    int counted;        /* holds one of srv->open_conns */
    struct gw_tls *tls; /* owned, NULL for plain */
    int in_pull;
    struct gw_http_in in;
    struct cm_buf *rbuf; /* ref */
    size_t pend_off, pend_len;
    int reading;
    int peer_eof; /* the client finished sending: serve what arrived, then close */
    int in_feed;
    /* deadlines (uv_now ms, 0 = none) */
    enum conn_phase phase;
    uint64_t read_deadline;
    uint64_t write_deadline;
    size_t wq_mark; /* bytes libuv had not yet written when the send timeout was armed */
    /* the active request */
    struct gw_http_req *req; /* borrowed from in */
    int active;
    int body_done;
    int responded;
    int head_sent;
    int sent_continue;
    int close_after;
    int flow_paused;
    int held;  /* answered; the next request waits for the write queue to drain */
    int fresh; /* no request yet: the head deadline runs from accept */
    int cors_added;
    const struct gw_handler_ops *ops;
    void *h;
    /* access log */
    uint64_t t0_ns;
    int status;
    uint64_t body_bytes;
    enum gw_cache_note cache;
    /* writes */
    size_t queued;
    int above_high;
    unsigned answers_queued; /* answered requests whose last write is still queued */
    struct wr *last_wr;
    /* TLS: plaintext waiting to be encrypted (refs), encrypted only GW_TLS_AHEAD bytes ahead of
     * the socket, so a slow reader never makes us hold a ciphertext copy of a whole object */
    struct cm_slice *tq;
    size_t tq_head, tq_n, tq_cap, tq_off, tq_bytes;
    int shutdown_deferred; /* LINGER: uv_shutdown once tq is encrypted and queued */
    /* Plain: the answer's head waits here for the first body bytes (or gw_conn_done), so head
     * and body leave in one write: one syscall, no lone head packet. */
    struct cm_slice head_pend;
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
    struct gw_tls_ctx *tls;
    const struct gw_cors *cors;
    struct gw_metrics *metrics;
    atomic_uint_fast64_t *open_conns;
    int access_log;
    uint64_t max_conns, max_head, max_url, max_pipeline;
    uint64_t header_ms, idle_ms, body_ms, send_ms;
    char *scratch;    /* TLS ciphertext reads (one loop: used by one read at a time) */
    uv_tcp_t shed;    /* takes a connection we have no memory for, to close it */
    int shed_busy;    /* shed is closing */
    int shed_pending; /* another such connection waits in libuv for shed */
    void (*on_free)(void *);
    void *on_free_arg;
};

struct wr {
    uv_write_t req;
    struct gw_conn *c;
    size_t bytes;
    unsigned answers; /* answers that end with this write */
    size_t n;
    struct cm_slice s[];
};

void gwc_advance(struct gw_conn *c);
void gwc_arm(struct gw_conn *c);
void gwc_close(struct gw_conn *c);
void gwc_finish_and_close(struct gw_conn *c);
int gwc_may_start_next(const struct gw_conn *c);
void gwc_phase(struct gw_conn *c, enum conn_phase p, uint64_t ms);
void gwc_request_end(struct gw_conn *c, int status);
void gwc_shutdown(struct gw_conn *c);
void gwc_update_reading(struct gw_conn *c);
int gwc_write_raw(struct gw_conn *c, const struct cm_slice *s, size_t n);
void gwc_on_timer(uv_timer_t *t);
int gwc_req_has_body(const struct gw_http_req *r);
int gwc_tls_flush(struct gw_conn *c);
void gwc_tls_pump(struct gw_conn *c);
void gwc_on_write(uv_write_t *req, int status);

#endif
