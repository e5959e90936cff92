/* The node's admin HTTP listener (--admin-listen): GET /healthz, /readyz and /metrics for
 * Kubernetes probes and Prometheus. Independent of the node's internals: what "ready" means
 * and what the metrics are come from an ops table of callbacks.
 *
 * One request per connection (every answer carries `Connection: close`); request bodies are
 * never read. Limits: at most max_conns connections (the next few get 503, beyond that they
 * are closed at once), a request head of at most ND_ADMIN_HEAD_MAX bytes (431), a target of
 * at most ND_ADMIN_TARGET_MAX bytes (414), head_timeout_ms to send the whole head (408, or a
 * silent close when nothing arrived), send_timeout_ms to take the answer. Errors are JSON:
 * {"error":"<code>","message":"<text>"}. */
#ifndef ND_ADMIN_H
#define ND_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"

#define ND_ADMIN_HEAD_MAX 8192
#define ND_ADMIN_TARGET_MAX 1024

struct nd_admin_ops {
    /* 1 when the node should receive traffic; 0 with a short reason appended to why. */
    int (*ready)(void *arg, struct cm_sbuf *why);
    /* Append the Prometheus text exposition (version 0.0.4) to out. */
    void (*metrics)(void *arg, struct cm_sbuf *out);
};

struct nd_admin_limits {
    unsigned max_conns;       /* 0: ND_ADMIN_DEFAULT_CONNS */
    uint64_t head_timeout_ms; /* 0: 5000 */
    uint64_t send_timeout_ms; /* 0: 5000 */
};
#define ND_ADMIN_DEFAULT_CONNS 32

enum nd_admin_method { ND_ADMIN_GET, ND_ADMIN_HEAD, ND_ADMIN_OTHER };

/* A parsed request head: the method and the path (query string cut off, NUL-terminated). */
struct nd_admin_req {
    enum nd_admin_method method;
    int has_body; /* Content-Length other than 0, or any Transfer-Encoding */
    char path[ND_ADMIN_TARGET_MAX + 1];
};

/* Pure. Parse the request head at the start of buf[0, len). Returns the head's length when it
 * is complete, 0 when more bytes are needed (and may still make a valid head), or a negated
 * HTTP status (-400, -414, -431) for bytes that cannot become a valid head. Accepts only CRLF
 * line ends, HTTP/1.0 and HTTP/1.1, no obs-fold, no control bytes. */
int nd_admin_parse(const char *buf, size_t len, struct nd_admin_req *req);

/* Pure over ops. Append the whole answer (status line, headers, body) for req to out and
 * return its status. */
int nd_admin_answer(const struct nd_admin_req *req, const struct nd_admin_ops *ops, void *arg,
                    struct cm_sbuf *out);
/* Append a JSON error answer with `Connection: close` (head only when head_only). */
void nd_admin_error(struct cm_sbuf *out, int status, const char *code, const char *message,
                    int head_only);

struct nd_admin;

/* Listen on hostport (numeric IP:PORT). ops and arg are borrowed until the close callback.
 * Returns 0, or CM_EINVAL / CM_EIO / CM_ENOMEM with errmsg (nothing is left open). */
int nd_admin_start(struct nd_admin **out, uv_loop_t *loop, const char *hostport,
                   const struct nd_admin_limits *limits, const struct nd_admin_ops *ops, void *arg,
                   char *errmsg, size_t errlen);
/* Close the listener and every connection; on_closed(arg) fires once, later, after the last
 * handle closed and the server was freed. */
void nd_admin_close(struct nd_admin *a, void (*on_closed)(void *arg), void *arg);

#endif
