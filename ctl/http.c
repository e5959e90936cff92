/* Blocking HTTP/1.1 GET for the CLI.
 * Happy path: resolve -> non-blocking connect (poll with deadline) -> send request -> read
 * until the framed body is complete or EOF -> parse. Failures: every wait is bounded by one
 * deadline; the socket is closed on every path. */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

int ctl_url_parse(const char *s, struct ctl_url *u, char *errmsg, size_t errlen)
{
    static const char scheme[] = "http://";
    memset(u, 0, sizeof(*u));
    if (s == NULL || strncasecmp(s, scheme, sizeof(scheme) - 1) != 0) {
        snprintf(errmsg, errlen, "gateway URL must start with http:// (got '%s')", s ? s : "");
        return CM_EINVAL;
    }
    const char *h = s + sizeof(scheme) - 1;
    const char *slash = strchr(h, '/');
    size_t authlen = slash ? (size_t)(slash - h) : strlen(h);
    const char *hend, *colon = NULL;
    if (h[0] == '[') {
        const char *close = memchr(h, ']', authlen);
        if (close == NULL)
            goto bad;
        hend = close;
        h++;
        if (close + 1 < h - 1 + authlen) {
            if (close[1] != ':')
                goto bad;
            colon = close + 1;
        }
    } else {
        colon = memchr(h, ':', authlen);
        hend = colon ? colon : h + authlen;
    }
    size_t hl = (size_t)(hend - h);
    if (hl == 0 || hl >= sizeof(u->host))
        goto bad;
    memcpy(u->host, h, hl);
    u->port = 80;
    if (colon != NULL) {
        const char *pe = (slash ? slash : h + strlen(h));
        long port = 0;
        if (colon + 1 == pe || pe - (colon + 1) > 5)
            goto bad;
        for (const char *q = colon + 1; q < pe; q++) {
            if (!isdigit((unsigned char)*q))
                goto bad;
            port = port * 10 + (*q - '0');
        }
        if (port < 1 || port > 65535)
            goto bad;
        u->port = (int)port;
    }
    if (slash != NULL) {
        size_t pl = strlen(slash);
        while (pl > 0 && slash[pl - 1] == '/')
            pl--;
        if (pl >= sizeof(u->path))
            goto bad;
        memcpy(u->path, slash, pl);
        u->path[pl] = '\0';
    }
    return 0;
bad:
    snprintf(errmsg, errlen, "bad gateway URL '%s' (want http://HOST:PORT)", s);
    return CM_EINVAL;
}

/* Next line in [*pos, len): returns its length without CR/LF and advances *pos past the LF,
 * or -1 when no LF is left. */
static long next_line(const char *buf, size_t len, size_t *pos, const char **line)
{
    const char *start = buf + *pos;
    const char *lf = memchr(start, '\n', len - *pos);
    if (lf == NULL)
        return -1;
    size_t n = (size_t)(lf - start);
    *pos += n + 1;
    if (n > 0 && start[n - 1] == '\r')
        n--;
    *line = start;
    return (long)n;
}

static int header_is(const char *line, size_t n, const char *name, const char **val, size_t *vlen)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return 0;
    const char *v = line + nl + 1, *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *val = v;
    *vlen = (size_t)(e - v);
    return 1;
}

/* Walk the chunked body in buf[off..len). With move == 0 only checks it (buf untouched): 0 when
 * complete, CM_EBUSY when bytes are missing. With move != 0 also de-chunks it in place; callers
 * do that only after a checking pass returned 0, so a partial buffer is never modified. */
static int dechunk(char *buf, size_t len, size_t off, int move, size_t *body_len, char *errmsg,
                   size_t errlen)
{
    size_t in = off, out = off;
    for (;;) {
        const char *line;
        long n = next_line(buf, len, &in, &line);
        if (n < 0)
            return CM_EBUSY;
        size_t size = 0;
        long i = 0;
        for (; i < n && isxdigit((unsigned char)line[i]); i++) {
            if (size > (SIZE_MAX >> 8)) {
                snprintf(errmsg, errlen, "chunk size too large");
                return CM_EPROTO;
            }
            int c = tolower((unsigned char)line[i]);
            size = size * 16 + (size_t)(isdigit(c) ? c - '0' : c - 'a' + 10);
        }
        if (i == 0 || (i < n && line[i] != ';' && line[i] != ' ')) {
            snprintf(errmsg, errlen, "bad chunk size line");
            return CM_EPROTO;
        }
        if (size == 0) {
            /* trailer fields, if any, are skipped up to the empty line that ends the message */
            do {
                n = next_line(buf, len, &in, &line);
                if (n < 0)
                    return CM_EBUSY;
            } while (n > 0);
            break;
        }
        if (len - in < size + 2)
            return CM_EBUSY;
        if (buf[in + size] != '\r' || buf[in + size + 1] != '\n') {
            snprintf(errmsg, errlen, "chunk not followed by CRLF");
            return CM_EPROTO;
        }
        if (move)
            memmove(buf + out, buf + in, size);
        out += size;
        in += size + 2;
    }
    *body_len = out - off;
    return 0;
}

static int parse_status_line(const char *line, long n, int *status)
{
    if (n < 12 || strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) ||
        line[8] != ' ')
        return CM_EPROTO;
    for (int i = 9; i < 12; i++) {
        if (!isdigit((unsigned char)line[i]))
            return CM_EPROTO;
    }
    if (n > 12 && line[12] != ' ')
        return CM_EPROTO;
    *status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    return 0;
}

int ctl_http_response_parse(char *buf, size_t len, int complete, struct ctl_http_response *r,
                            char *errmsg, size_t errlen)
{
    size_t pos = 0, clen = 0;
    int chunked = 0, have_clen = 0;
    const char *line;
    long n = next_line(buf, len, &pos, &line);
    memset(r, 0, sizeof(*r));
    if (n < 0) {
        /* Do not wait for a LF that a non-HTTP peer will never send. */
        if (len >= 5 && strncmp(buf, "HTTP/", 5) != 0)
            goto garbage;
        goto more;
    }
    if (parse_status_line(line, n, &r->status) != 0)
        goto garbage;
    for (;;) {
        n = next_line(buf, len, &pos, &line);
        if (n < 0)
            goto more;
        if (n == 0)
            break;
        const char *v;
        size_t vl;
        if (header_is(line, (size_t)n, "content-length", &v, &vl)) {
            if (vl == 0 || vl > 15 || have_clen)
                goto garbage;
            clen = 0;
            for (size_t i = 0; i < vl; i++) {
                if (!isdigit((unsigned char)v[i]))
                    goto garbage;
                clen = clen * 10 + (size_t)(v[i] - '0');
            }
            have_clen = 1;
        } else if (header_is(line, (size_t)n, "transfer-encoding", &v, &vl)) {
            chunked = vl >= 7 && strncasecmp(v + vl - 7, "chunked", 7) == 0;
        } else if (memchr(line, ':', (size_t)n) == NULL) {
            goto garbage;
        }
    }
    r->body_off = pos;
    if (chunked) {
        int rc = dechunk(buf, len, pos, 0, &r->body_len, errmsg, errlen);
        if (rc == CM_EBUSY)
            goto more;
        if (rc == 0)
            rc = dechunk(buf, len, pos, 1, &r->body_len, errmsg, errlen);
        return rc;
    }
    if (have_clen) {
        if (len - pos < clen)
            goto more;
        r->body_len = clen;
        return 0;
    }
    if (!complete)
        return CM_EBUSY; /* body runs to EOF */
    r->body_len = len - pos;
    return 0;
more:
    if (!complete)
        return CM_EBUSY;
    snprintf(errmsg, errlen, "truncated HTTP response (%zu bytes)", len);
    return CM_EPROTO;
garbage:
    snprintf(errmsg, errlen, "not an HTTP response");
    return CM_EPROTO;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for `events` on fd until the deadline. 0 when ready, CM_ETIMEDOUT otherwise. */
static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return CM_ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = events};
        int rc = poll(&pfd, 1, (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return CM_EIO;
    }
}

static int connect_one(const struct addrinfo *ai, long long deadline, int *fdout, int *syserr)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        *syserr = errno;
        return CM_EIO;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            *syserr = errno;
            goto err_after_socket;
        }
        int rc = wait_fd(fd, POLLOUT, deadline);
        if (rc != 0) {
            close(fd);
            *syserr = ETIMEDOUT;
            return rc;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
            *syserr = soerr ? soerr : errno;
            goto err_after_socket;
        }
    }
    *fdout = fd;
    return 0;
err_after_socket:
    close(fd);
    return CM_EUNAVAIL;
}

static int dial(const struct ctl_url *url, long long deadline, int *fd, char *errmsg, size_t errlen)
{
    char port[8];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    snprintf(port, sizeof(port), "%d", url->port);
    int gai = getaddrinfo(url->host, port, &hints, &res);
    if (gai != 0) {
        snprintf(errmsg, errlen, "cannot resolve %s: %s", url->host, gai_strerror(gai));
        return CM_EUNAVAIL;
    }
    int rc = CM_EUNAVAIL, syserr = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        rc = connect_one(ai, deadline, fd, &syserr);
        if (rc == 0 || rc == CM_ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    if (rc != 0)
        snprintf(errmsg, errlen, "cannot connect to %s:%d: %s", url->host, url->port,
                 rc == CM_ETIMEDOUT ? "timed out" : strerror(syserr));
    return rc;
}

static int send_all(int fd, const char *p, size_t n, long long deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return CM_EIO;
        int rc = wait_fd(fd, POLLOUT, deadline);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int read_response(int fd, long long deadline, struct cm_sbuf *raw,
                         struct ctl_http_response *r, char *errmsg, size_t errlen)
{
    char chunk[65536];
    for (;;) {
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc != 0) {
            snprintf(errmsg, errlen, "no complete answer before the deadline");
            return rc;
        }
        ssize_t got = recv(fd, chunk, sizeof(chunk), 0);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            continue;
        if (got < 0) {
            snprintf(errmsg, errlen, "read failed: %s", strerror(errno));
            return CM_EIO;
        }
        if (raw->len + (size_t)got > CTL_HTTP_MAX_RESPONSE) {
            snprintf(errmsg, errlen, "answer larger than %u bytes", CTL_HTTP_MAX_RESPONSE);
            return CM_ETOOBIG;
        }
        cm_sbuf_append(raw, chunk, (size_t)got);
        if (raw->oom) {
            snprintf(errmsg, errlen, "out of memory");
            return CM_ENOMEM;
        }
        if (raw->len == 0) {
            snprintf(errmsg, errlen, "connection closed without an answer");
            return CM_EPROTO;
        }
        rc = ctl_http_response_parse(raw->p, raw->len, got == 0, r, errmsg, errlen);
        if (rc != CM_EBUSY)
            return rc;
    }
}

int ctl_http_get(const struct ctl_url *url, const char *path, int timeout_ms, struct cm_sbuf *raw,
                 struct ctl_http_response *r, char *errmsg, size_t errlen)
{
    long long deadline = now_ms() + timeout_ms;
    struct cm_sbuf req;
    int fd = -1;
    int rc = dial(url, deadline, &fd, errmsg, errlen);
    if (rc != 0)
        return rc;
    cm_sbuf_init(&req);
    cm_sbuf_printf(&req, "GET %s%s HTTP/1.1\r\nHost: ", url->path, path);
    if (strchr(url->host, ':') != NULL)
        cm_sbuf_printf(&req, "[%s]", url->host);
    else
        cm_sbuf_puts(&req, url->host);
    cm_sbuf_printf(&req,
                   ":%d\r\nUser-Agent: headwaterctl\r\nAccept: application/json\r\n"
                   "Connection: close\r\n\r\n",
                   url->port);
    if (req.oom) {
        snprintf(errmsg, errlen, "out of memory");
        rc = CM_ENOMEM;
        goto out;
    }
    rc = send_all(fd, req.p, req.len, deadline);
    if (rc != 0) {
        snprintf(errmsg, errlen, "cannot send request to %s:%d: %s", url->host, url->port,
                 rc == CM_ETIMEDOUT ? "timed out" : "connection failed");
        goto out;
    }
    rc = read_response(fd, deadline, raw, r, errmsg, errlen);
out:
    cm_sbuf_free(&req);
    close(fd);
    return rc;
}
