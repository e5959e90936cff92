/* Node admin HTTP listener (see admin.h).
 *
 * Happy path: accept -> HEAD (bytes into c->rbuf, nd_admin_parse after every read) -> the
 *   head is complete: reading stops, nd_admin_answer builds the whole answer -> WRITE (one
 *   uv_write) -> uv_shutdown -> LINGER (read and discard until EOF or 1 s) -> close.
 * Limits: over max_conns the connection gets 503 (up to ND_ADMIN_REFUSE_EXTRA more at once;
 *   beyond that it is closed without an answer); a head that does not fit rbuf gets 431; one
 *   timer per connection re-armed per state: HEAD head_timeout_ms (408 when some bytes came,
 *   silent close when none), WRITE send_timeout_ms (close), LINGER 1 s (close).
 * Failures: bytes that cannot be a request -> 400 / 414 / 431 + close; read or write errors
 *   -> close; out of memory -> close without an answer.
 * Close: each connection has two handles (tcp, timer) and is freed after both close
 *   callbacks; the server is freed after its listener and every connection closed, then
 *   on_closed fires. */
#include "admin.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "err.h"
#include "log.h"

#define ND_ADMIN_REFUSE_EXTRA 8
#define ND_ADMIN_LINGER_MS 1000

enum conn_state { CS_HEAD, CS_WRITE, CS_LINGER, CS_CLOSING };

struct conn {
    struct nd_admin *a;
    struct conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    uv_shutdown_t sd;
    enum conn_state state;
    int handles_open;
    size_t rlen;
    struct cm_sbuf out; /* the answer, owned */
    char rbuf[ND_ADMIN_HEAD_MAX];
};

struct nd_admin {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    struct nd_admin_limits lim;
    const struct nd_admin_ops *ops; /* borrowed */
    void *arg;
    struct conn *conns;
    unsigned nconns;
    int closing;
    int tcp_closed;
    void (*on_closed)(void *arg);
    void *on_closed_arg;
};

/* ---- pure: request head parsing ---- */

static int is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Every byte is legal so far: CR only before LF, LF only after CR, no other control byte. */
static int bytes_ok(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '\r' && i + 1 < len && buf[i + 1] != '\n')
            return 0;
        if (ch == '\n' && (i == 0 || buf[i - 1] != '\r'))
            return 0;
        if ((ch < 0x20 && ch != '\r' && ch != '\n' && ch != '\t') || ch == 0x7f)
            return 0;
    }
    return 1;
}

/* "METHOD SP /target SP HTTP/1.x" (without CRLF). */
static int parse_request_line(const char *p, size_t n, struct nd_admin_req *req)
{
    size_t i = 0;
    while (i < n && i < 32 && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i >= n || p[i] != ' ')
        return -400;
    req->method = i == 3 && memcmp(p, "GET", 3) == 0    ? ND_ADMIN_GET
                  : i == 4 && memcmp(p, "HEAD", 4) == 0 ? ND_ADMIN_HEAD
                                                        : ND_ADMIN_OTHER;
    const char *t = p + i + 1;
    const char *sp = memchr(t, ' ', n - (size_t)(t - p));
    if (sp == NULL || sp == t || t[0] != '/')
        return -400;
    size_t tlen = (size_t)(sp - t);
    if (tlen > ND_ADMIN_TARGET_MAX)
        return -414;
    for (size_t k = 0; k < tlen; k++)
        if ((unsigned char)t[k] <= 0x20 || (unsigned char)t[k] >= 0x7f)
            return -400;
    size_t rest = n - (size_t)(sp + 1 - p);
    if (rest != 8 || (memcmp(sp + 1, "HTTP/1.1", 8) != 0 && memcmp(sp + 1, "HTTP/1.0", 8) != 0))
        return -400;
    const char *q = memchr(t, '?', tlen);
    size_t plen = q ? (size_t)(q - t) : tlen;
    memcpy(req->path, t, plen);
    req->path[plen] = '\0';
    return 0;
}

static int name_is(const char *p, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

/* "Name: value" (without CRLF); notes a body when Content-Length/Transfer-Encoding says so. */
static int parse_header(const char *p, size_t n, struct nd_admin_req *req)
{
    const char *colon = memchr(p, ':', n);
    if (colon == NULL || colon == p)
        return -400;
    size_t nlen = (size_t)(colon - p);
    for (size_t i = 0; i < nlen; i++)
        if (!is_tchar((unsigned char)p[i]))
            return -400; /* also obs-fold and whitespace before the colon */
    const char *v = colon + 1, *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (name_is(p, nlen, "Transfer-Encoding"))
        req->has_body = 1;
    if (name_is(p, nlen, "Content-Length")) {
        if (v == end)
            return -400;
        for (const char *d = v; d < end; d++)
            if (*d < '0' || *d > '9')
                return -400;
        for (const char *d = v; d < end; d++)
            if (*d != '0')
                req->has_body = 1;
    }
    return 0;
}

int nd_admin_parse(const char *buf, size_t len, struct nd_admin_req *req)
{
    memset(req, 0, sizeof(*req));
    if (!bytes_ok(buf, len))
        return -400;
    size_t off = 0;
    for (unsigned line = 0;; line++) {
        const char *eol = memchr(buf + off, '\n', len - off);
        if (eol == NULL) {
            if (line == 0 && len > ND_ADMIN_TARGET_MAX + 64)
                return -414; /* a request line this long cannot fit our limits */
            return len >= ND_ADMIN_HEAD_MAX ? -431 : 0;
        }
        size_t n = (size_t)(eol - (buf + off)) - 1; /* without CR (bytes_ok: CR before LF) */
        size_t next = (size_t)(eol - buf) + 1;
        if (next > ND_ADMIN_HEAD_MAX)
            return -431;
        if (n == 0) {
            if (line == 0)
                return -400;
            return (int)next;
        }
        int rv =
            line == 0 ? parse_request_line(buf + off, n, req) : parse_header(buf + off, n, req);
        if (rv != 0)
            return rv;
        off = next;
    }
}

/* ---- pure: answers ---- */

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

static void put_answer(struct cm_sbuf *out, int status, const char *type, const char *extra,
                       const char *body, size_t blen, int head_only)
{
    cm_sbuf_printf(out,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                   status, reason_of(status), type, blen, extra ? extra : "");
    if (!head_only)
        cm_sbuf_append(out, body, blen);
}

void nd_admin_error(struct cm_sbuf *out, int status, const char *code, const char *message,
                    int head_only)
{
    struct cm_sbuf b;
    cm_sbuf_init(&b);
    cm_sbuf_puts(&b, "{\"error\":");
    cm_sbuf_json_str(&b, code);
    cm_sbuf_puts(&b, ",\"message\":");
    cm_sbuf_json_str(&b, message);
    cm_sbuf_puts(&b, "}\n");
    const char *extra = status == 405   ? "Allow: GET, HEAD\r\n"
                        : status == 503 ? "Retry-After: 1\r\n"
                                        : NULL;
    if (b.oom)
        out->oom = 1;
    else
        put_answer(out, status, "application/json", extra, b.p, b.len, head_only);
    cm_sbuf_free(&b);
}

static int answer_ready(const struct nd_admin_ops *ops, void *arg, struct cm_sbuf *out,
                        int head_only)
{
    struct cm_sbuf why, b;
    cm_sbuf_init(&why);
    cm_sbuf_init(&b);
    int ready = ops->ready(arg, &why);
    if (ready) {
        cm_sbuf_puts(&b, "{\"ready\":true}\n");
    } else {
        cm_sbuf_puts(&b, "{\"ready\":false,\"reason\":");
        cm_sbuf_json_str(&b, why.p ? why.p : "not ready");
        cm_sbuf_puts(&b, "}\n");
    }
    int status = ready ? 200 : 503;
    if (b.oom || why.oom)
        out->oom = 1;
    else
        put_answer(out, status, "application/json", ready ? NULL : "Retry-After: 1\r\n", b.p, b.len,
                   head_only);
    cm_sbuf_free(&why);
    cm_sbuf_free(&b);
    return status;
}

int nd_admin_answer(const struct nd_admin_req *req, const struct nd_admin_ops *ops, void *arg,
                    struct cm_sbuf *out)
{
    static const char alive[] = "{\"ok\":true}\n";
    int head_only = req->method == ND_ADMIN_HEAD;
    int known = strcmp(req->path, "/healthz") == 0 || strcmp(req->path, "/readyz") == 0 ||
                strcmp(req->path, "/metrics") == 0;
    if (!known) {
        nd_admin_error(out, 404, "not_found", "unknown admin endpoint", head_only);
        return 404;
    }
    if (req->method == ND_ADMIN_OTHER) {
        nd_admin_error(out, 405, "method_not_allowed", "admin endpoints accept GET and HEAD", 0);
        return 405;
    }
    if (req->has_body) {
        nd_admin_error(out, 400, "bad_request", "admin requests carry no body", head_only);
        return 400;
    }
    if (strcmp(req->path, "/healthz") == 0) {
        put_answer(out, 200, "application/json", NULL, alive, sizeof(alive) - 1, head_only);
        return 200;
    }
    if (strcmp(req->path, "/readyz") == 0)
        return answer_ready(ops, arg, out, head_only);
    struct cm_sbuf m;
    cm_sbuf_init(&m);
    ops->metrics(arg, &m);
    if (m.oom)
        out->oom = 1;
    else
        put_answer(out, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, m.p ? m.p : "",
                   m.len, head_only);
    cm_sbuf_free(&m);
    return 200;
}

/* ---- server: lifetime ---- */

static void server_maybe_free(struct nd_admin *a)
{
    if (!a->closing || !a->tcp_closed || a->conns != NULL)
        return;
    void (*on_closed)(void *) = a->on_closed;
    void *arg = a->on_closed_arg;
    cm_free(a);
    if (on_closed != NULL)
        on_closed(arg);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    assert(c->handles_open > 0);
    if (--c->handles_open > 0)
        return;
    struct nd_admin *a = c->a;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->nconns--;
    cm_sbuf_free(&c->out);
    cm_free(c);
    server_maybe_free(a);
}

/* The only place the state changes: HEAD -> WRITE -> LINGER, and any -> CLOSING once. */
static void conn_set(struct conn *c, enum conn_state to)
{
    assert((c->state == CS_HEAD && to == CS_WRITE) || (c->state == CS_WRITE && to == CS_LINGER) ||
           (c->state != CS_CLOSING && to == CS_CLOSING));
    c->state = to;
}

static void conn_close(struct conn *c)
{
    if (c->state == CS_CLOSING)
        return;
    conn_set(c, CS_CLOSING);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* ---- server: one connection ---- */

static void on_timer(uv_timer_t *t);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void arm(struct conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_linger_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0)
        conn_close(st->data); /* EOF or error: the client has the answer */
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    if (c->state != CS_WRITE)
        return; /* closing already */
    if (status != 0) {
        conn_close(c);
        return;
    }
    conn_set(c, CS_LINGER);
    c->rlen = 0;
    arm(c, ND_ADMIN_LINGER_MS);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_linger_read) != 0)
        conn_close(c);
}

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (c->state != CS_WRITE)
        return;
    c->sd.data = c;
    if (status != 0 || uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

/* The answer is in c->out: stop reading and send it in one write. */
static void conn_send(struct conn *c)
{
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (c->out.oom || c->out.len == 0) {
        conn_close(c);
        return;
    }
    conn_set(c, CS_WRITE);
    arm(c, c->a->lim.send_timeout_ms);
    uv_buf_t b = uv_buf_init(c->out.p, (unsigned)c->out.len);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        conn_close(c);
}

static void conn_fail(struct conn *c, int status)
{
    static const char *msgs[] = {"the request head is malformed", "the request target is too long",
                                 "the request head is too large", "the request head took too long"};
    const char *m = status == 414   ? msgs[1]
                    : status == 431 ? msgs[2]
                    : status == 408 ? msgs[3]
                                    : msgs[0];
    const char *code = status == 408 ? "timeout" : status == 400 ? "bad_request" : "too_large";
    nd_admin_error(&c->out, status, code, m, 0);
    conn_send(c);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->state == CS_HEAD && c->rlen > 0)
        conn_fail(c, 408);
    else
        conn_close(c); /* idle, stuck writing, or done lingering */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    if (c->state == CS_LINGER) {
        *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf)); /* read and discard */
        return;
    }
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(sizeof(c->rbuf) - c->rlen));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    if (nread == 0 || c->state != CS_HEAD)
        return;
    if (nread < 0) {
        conn_close(c); /* EOF or error before a whole head: nobody to answer */
        return;
    }
    c->rlen += (size_t)nread;
    struct nd_admin_req req;
    int rv = nd_admin_parse(c->rbuf, c->rlen, &req);
    if (rv < 0) {
        conn_fail(c, -rv);
    } else if (rv > 0) {
        nd_admin_answer(&req, c->a->ops, c->a->arg, &c->out);
        conn_send(c);
    } else if (c->rlen == sizeof(c->rbuf)) {
        conn_fail(c, 431); /* parse says so too; kept so a full buffer never reads on */
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct nd_admin *a = server->data;
    if (status != 0 || a->closing)
        return;
    struct conn *c = cm_calloc(1, sizeof(*c));
    if (c == NULL) {
        /* libuv holds the connection until an accept: the listener waits for the next one */
        CM_WARN("admin: out of memory accepting a connection");
        return;
    }
    c->a = a;
    cm_sbuf_init(&c->out);
    uv_tcp_init(a->loop, &c->tcp);
    uv_timer_init(a->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles_open = 2;
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        a->nconns > a->lim.max_conns + ND_ADMIN_REFUSE_EXTRA) {
        conn_close(c);
        return;
    }
    if (a->nconns > a->lim.max_conns) {
        nd_admin_error(&c->out, 503, "busy", "too many admin connections", 0);
        conn_send(c); /* answered before the request: the client reads it after sending */
        return;
    }
    arm(c, a->lim.head_timeout_ms);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

/* ---- server: start and close ---- */

static void on_listener_closed(uv_handle_t *h)
{
    struct nd_admin *a = h->data;
    a->tcp_closed = 1;
    server_maybe_free(a);
}

static int resolve(const char *hostport, struct sockaddr_storage *ss, char *errmsg, size_t errlen)
{
    char host[256];
    int port;
    if (cm_hostport_parse(hostport, host, sizeof(host), &port) != 0 ||
        (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) != 0 &&
         uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) != 0)) {
        snprintf(errmsg, errlen, "admin listen address \"%s\" is not a numeric IP:PORT", hostport);
        return CM_EINVAL;
    }
    return 0;
}

int nd_admin_start(struct nd_admin **out, uv_loop_t *loop, const char *hostport,
                   const struct nd_admin_limits *limits, const struct nd_admin_ops *ops, void *arg,
                   char *errmsg, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rv = resolve(hostport, &ss, errmsg, errlen);
    if (rv != 0)
        return rv;
    struct nd_admin *a = cm_calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(errmsg, errlen, "admin listener: out of memory");
        return CM_ENOMEM;
    }
    a->loop = loop;
    a->ops = ops;
    a->arg = arg;
    a->lim = limits ? *limits : (struct nd_admin_limits){0};
    a->lim.max_conns = a->lim.max_conns ? a->lim.max_conns : ND_ADMIN_DEFAULT_CONNS;
    a->lim.head_timeout_ms = a->lim.head_timeout_ms ? a->lim.head_timeout_ms : 5000;
    a->lim.send_timeout_ms = a->lim.send_timeout_ms ? a->lim.send_timeout_ms : 5000;
    uv_tcp_init(loop, &a->tcp);
    a->tcp.data = a;
    rv = uv_tcp_bind(&a->tcp, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&a->tcp, 128, on_connection);
    if (rv != 0) {
        snprintf(errmsg, errlen, "admin listen on %s: %s", hostport, uv_strerror(rv));
        nd_admin_close(a, NULL, NULL);
        return CM_EIO;
    }
    CM_INFO("admin listening addr=%s max_conns=%u", hostport, a->lim.max_conns);
    *out = a;
    return 0;
}

void nd_admin_close(struct nd_admin *a, void (*on_closed)(void *arg), void *arg)
{
    assert(!a->closing);
    a->closing = 1;
    a->on_closed = on_closed;
    a->on_closed_arg = arg;
    for (struct conn *c = a->conns; c != NULL; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&a->tcp, on_listener_closed);
}
