/* A tiny blocking HTTP/1.1 client for the CLI: one GET per connection, a deadline over the
 * whole exchange. URL and response parsing are pure functions (unit-tested without sockets). */
#ifndef CTL_HTTP_H
#define CTL_HTTP_H

#include <stddef.h>

#include "buf.h"

#define CTL_HTTP_MAX_RESPONSE (16u << 20) /* refuse answers bigger than this */

struct ctl_url {
    char host[256]; /* without brackets for IPv6 literals */
    int port;
    char path[512]; /* base path without trailing '/', "" for none */
};

/* Parse "http://HOST[:PORT][/base]" (port defaults to 80). Returns 0 or CM_EINVAL. */
int ctl_url_parse(const char *s, struct ctl_url *u, char *errmsg, size_t errlen);

struct ctl_http_response {
    int status;      /* e.g. 200 */
    size_t body_off; /* offset of the (de-chunked) body in the parsed buffer */
    size_t body_len;
};

/* Parse an HTTP/1.x response held in buf[0..len). A chunked body is de-chunked in place, so buf
 * is modified. Returns 0 when the response is complete, CM_EBUSY when more bytes are needed
 * (only while `complete` == 0; once the peer closed, pass complete = 1 and a short response is
 * CM_EPROTO), or CM_EPROTO with errmsg set for anything that is not an HTTP response. */
int ctl_http_response_parse(char *buf, size_t len, int complete, struct ctl_http_response *r,
                            char *errmsg, size_t errlen);

/* GET url->path + `path` from the server, waiting at most timeout_ms in total. On success
 * returns 0 with the raw response in *raw (owned by the caller) and *r describing it.
 * Errors: CM_EUNAVAIL (cannot connect), CM_ETIMEDOUT, CM_EPROTO (garbage), CM_ETOOBIG,
 * CM_ENOMEM; errmsg says what happened. */
int ctl_http_get(const struct ctl_url *url, const char *path, int timeout_ms, struct cm_sbuf *raw,
                 struct ctl_http_response *r, char *errmsg, size_t errlen);

#endif
