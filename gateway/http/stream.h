/* A byte stream over one accepted uv_tcp connection, plain or TLS (tls.h's memory BIOs are
 * hidden here): a read buffer, a write queue of refcounted slices, TLS encryption paced ahead
 * of the socket, half-close and linger, one timer. Nothing here knows HTTP: the protocol engine
 * on top (h1.c today, another later) is chosen per connection by the ops table it attaches, and
 * hears from the stream only through those callbacks.
 *
 * Reading: plaintext is appended to the stream's read buffer; the protocol sees the bytes it
 * has not released yet (gw_stream_region) and releases a prefix when done with it
 * (gw_stream_release). Unreleased bytes stay contiguous in one buffer (it grows or moves when
 * full). The stream holds no read buffer while every byte is released and nobody else holds a
 * ref to it (an idle keep-alive connection costs no buffer). Reading runs only while the
 * protocol wants bytes (gw_stream_want_read); TLS plaintext already decrypted is delivered
 * when it does.
 *
 * Writing: gw_stream_write takes refs to the caller's slices; plain: one socket write per call
 * (zero-copy); TLS: encrypted only GW_STREAM_TLS_AHEAD bytes ahead of the socket. No write
 * progress for send_ms closes the stream.
 *
 * Budget (budget.h): what a stream holds unsent (+ GW_STREAM_TLS_HANDSHAKE_COST while a TLS
 * handshake is unfinished) is charged to env->budget whenever it changes; a stream picked there
 * as the one holding most for longest is closed from its own timer (a lingering one other than
 * the writer at once), never inside the write that went over; the protocol hears on_close.
 *
 * Ending: gw_stream_finish = send what is queued, close_notify (TLS), half-close, read and
 * discard until the peer closes or a linger second passed, close. The protocol is detached at
 * once (no more callbacks but on_free). gw_stream_close = close now. Either way, or when the
 * stream fails by itself (on_close), the protocol's memory is released from ops->on_free, which
 * runs once, later, from the last handle's close callback. */
#ifndef GW_STREAM_H
#define GW_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "core/metrics.h"
#include "http/budget.h"
#include "http/tls.h"

#define GW_STREAM_RBUF (64u * 1024u)
#define GW_STREAM_TLS_AHEAD (256u * 1024u) /* ciphertext in flight before we encrypt more */
#define GW_STREAM_LINGER_MS 1000
/* charged to --max-buffered-bytes while a TLS handshake is unfinished (about what OpenSSL
 * holds for it) */
#define GW_STREAM_TLS_HANDSHAKE_COST (64u * 1024u)

struct gw_stream;

/* Callbacks to the protocol engine (proto is its pointer). None runs after finish/close,
 * except on_free. */
struct gw_stream_ops {
    void (*on_read)(void *proto);    /* new bytes at the end of the region */
    void (*on_eof)(void *proto);     /* the peer will send nothing more (EOF or read error) */
    void (*on_drain)(void *proto);   /* a socket write completed */
    void (*on_timeout)(void *proto); /* the gw_stream_deadline passed */
    void (*on_close)(void *proto);   /* closing (failure, gw_stream_close, server stop) */
    void (*on_free)(void *proto);    /* the last callback: free the protocol's memory */
};

/* What every stream of one listener shares (borrowed; outlives the streams). */
struct gw_stream_env {
    uv_loop_t *loop;
    struct gw_tls_ctx *tls;     /* NULL = plain */
    struct gw_metrics *metrics; /* NULL = not counted */
    uint64_t send_ms;           /* no write progress this long: close */
    char *scratch;              /* ciphertext reads and discarded bytes (one loop) */
    size_t scratch_len;
    struct gw_stream **list; /* every live stream of the owner (linked here) */
    /* --max-buffered-bytes: every stream of the owner charges what it holds unsent here;
     * NULL = not counted */
    struct gw_budget_list *budget;
    /* a stream is gone (after on_free, unlinked): called before its memory is freed */
    void (*on_gone)(void *owner);
    void *owner;
};

/* Accept one connection from a listening socket: 0 with a stream that ends through on_gone, or
 * an error with *out = NULL (no stream made) or the stream, already closing (on_gone follows).
 * TLS state is set up lazily, when the first bytes arrive. */
int gw_stream_accept(const struct gw_stream_env *env, uv_stream_t *listener, uint64_t id,
                     struct gw_stream **out);
/* gw_stream_close every stream of a list. */
void gw_stream_close_all(struct gw_stream **list);
/* Attach the protocol engine (before any read). */
void gw_stream_attach(struct gw_stream *st, const struct gw_stream_ops *ops, void *proto);

uint64_t gw_stream_id(const struct gw_stream *st);
int gw_stream_is_tls(const struct gw_stream *st);
/* Reading ended (on_eof) because no read buffer could be had (out of memory), not by the peer. */
int gw_stream_read_oom(const struct gw_stream *st);

/* ---- reading ---- */
void gw_stream_want_read(struct gw_stream *st, int want);
/* The unreleased bytes: buf->data[*off .. *off + *len); NULL (len 0) when there are none. */
struct cm_buf *gw_stream_region(const struct gw_stream *st, size_t *off, size_t *len);
/* The first n bytes of the region are no longer needed (n may be 0: only lets the stream drop
 * an idle buffer someone else stopped holding). */
void gw_stream_release(struct gw_stream *st, size_t n);

/* ---- writing ---- */
int gw_stream_write(struct gw_stream *st, const struct cm_slice *s, size_t n);
/* Bytes accepted but not yet written to the socket (TLS: plaintext waiting included). */
size_t gw_stream_queued(const struct gw_stream *st);
/* Count one mark that is cleared once everything queued so far has been written. */
void gw_stream_mark(struct gw_stream *st);
unsigned gw_stream_marks(const struct gw_stream *st);

/* ---- timer and ending ---- */
/* on_timeout after ms (0 = none). The send timeout runs by itself. */
void gw_stream_deadline(struct gw_stream *st, uint64_t ms);
void gw_stream_finish(struct gw_stream *st);
void gw_stream_close(struct gw_stream *st);

#endif
