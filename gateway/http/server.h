/* HTTP/1.1 server connections on libuv, plain or TLS (listener.c accepts, stream.c is the byte
 * stream that hides TLS, h1.c is the HTTP/1.1 engine behind the gw_conn_* calls below): accept,
 * read into refcounted buffers, frame requests with gw_http_in, hand
 * each request to a route function, write responses in order. Limits and timeouts come from the
 * config (431, 414, 408, idle / send timeouts, --max-connections, --max-pipeline); every request
 * ends in one access log line and the listener's metrics; CORS headers are added to every answer
 * of a listener that has CORS rules (cors.h).
 *
 * One request per connection is active at a time; pipelined requests wait (their bytes stay
 * buffered and the socket stops reading) until the active one has been answered, so answers
 * go out in request order. A route answers at once (gw_conn_respond / gw_conn_error) or installs
 * a handler (gw_conn_set_handler) that receives the body and later answers. When the handler's
 * answer is complete it calls gw_conn_done; from then on the handler must not touch the conn.
 * If the connection dies first, the handler's on_abort runs (once) and the conn is gone.
 *
 * An answer sent before the request body was fully read closes the connection afterwards
 * (after a short linger that drains the client's bytes, so the answer is not lost to a RST). */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "http/cors.h"
#include "core/gwconfig.h"
#include "http/http.h"
#include "core/metrics.h"
#include "http/tls.h"

struct gw_server;
struct gw_conn;

/* Called for every request head. req (and the header slices it points to) is borrowed until
 * the answer is done. */
typedef void (*gw_route_fn)(void *arg, struct gw_conn *c, struct gw_http_req *req);

struct gw_handler_ops {
    void (*on_body)(void *h, const struct cm_slice *piece); /* borrowed slice */
    void (*on_read_done)(void *h); /* after the body pieces of one socket read */
    void (*on_body_end)(void *h);
    void (*on_drain)(void *h); /* the response write queue fell below the low mark */
    void (*on_abort)(void *h); /* connection gone: drop every reference to it */
};

#define GW_CONN_HIGH_WATER (8u * 1024u * 1024u)
#define GW_CONN_LOW_WATER (1u * 1024u * 1024u)

/* A listener's settings (everything borrowed; must outlive the server). */
struct gw_server_opts {
    const char *name;
    /* bind with SO_REUSEPORT so several loops (threads) can listen on one port and the kernel
     * spreads connections over them */
    int reuseport;
    struct gw_tls_ctx *tls;           /* NULL = plain HTTP */
    const struct gw_config *cfg;      /* limits and timeouts; NULL = built-in defaults */
    const struct gw_cors *cors;       /* NULL = no CORS headers (admin port) */
    struct gw_metrics *metrics;       /* NULL = not counted */
    atomic_uint_fast64_t *open_conns; /* shared by every loop; NULL = no --max-connections */
    struct gw_budget *budget;         /* shared by every loop; NULL = no --max-buffered-bytes */
    int access_log;
    int nosniff; /* X-Content-Type-Options: nosniff on every answer (data and TLS ports) */
    /* called once the server has freed itself (drop what the borrowed fields point into) */
    void (*on_free)(void *arg);
    void *on_free_arg;
};

int gw_server_listen(uv_loop_t *loop, const char *hostport, const struct gw_server_opts *opts,
                     gw_route_fn route, void *arg, struct gw_server **out, char *errmsg,
                     size_t errlen);
/* Stop listening and close every connection (handlers get on_abort). Frees itself once its
 * handles are closed. */
void gw_server_close(struct gw_server *s);

void gw_conn_set_handler(struct gw_conn *c, const struct gw_handler_ops *ops, void *h);
uint64_t gw_conn_id(const struct gw_conn *c);
/* Would the connection stay open after this answer (client keep-alive, body fully read)? */
int gw_conn_keep_alive(const struct gw_conn *c);
/* Answer with Connection: close and close afterwards. */
void gw_conn_set_close(struct gw_conn *c);
/* Send "100 Continue" when the client asked for it (idempotent). */
void gw_conn_continue(struct gw_conn *c);

/* Response pieces: the status line (+ Connection: close when needed) and the caller's header
 * lines (each ending in \r\n; the blank line is added here). */
int gw_conn_write_head(struct gw_conn *c, int status, const char *headers, size_t len);
/* Body slices: refs are taken until written. */
int gw_conn_write_body(struct gw_conn *c, const struct cm_slice *s, size_t n);
size_t gw_conn_write_queue(const struct gw_conn *c);
/* Where a handler should stop producing: GW_CONN_HIGH_WATER, less as the process nears
 * --max-buffered-bytes. */
size_t gw_conn_high_water(const struct gw_conn *c);
/* Is the write queue over the high-water mark now? When it is, on_drain is due once the queue
 * is back under an eighth of the mark (or empty): a handler that pauses on this gets it. */
int gw_conn_over_high_water(struct gw_conn *c);
/* The answer is complete; the handler is detached. */
void gw_conn_done(struct gw_conn *c);

/* Whole answers (then done). extra: more header lines or NULL. */
void gw_conn_respond(struct gw_conn *c, int status, const char *ctype, const char *extra,
                     const char *body, size_t len);
/* JSON error answer + one log line. Retry-After: 1 is added for 503. */
void gw_conn_error(struct gw_conn *c, int status, const char *code, const char *message,
                   enum gw_committed committed);

/* For the access log: how the read cache served this request. */
enum gw_cache_note { GW_NOTE_NONE = 0, GW_NOTE_HIT, GW_NOTE_MISS, GW_NOTE_COALESCED };
void gw_conn_note_cache(struct gw_conn *c, enum gw_cache_note note);
/* Is this connection TLS? */
int gw_conn_is_tls(const struct gw_conn *c);

/* Request-body flow control. */
void gw_conn_read_pause(struct gw_conn *c);
void gw_conn_read_resume(struct gw_conn *c);

#endif
