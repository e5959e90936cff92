/* HTTP/1.1 request framing over http_parser, kept pure: bytes in, callbacks out, no sockets.
 *
 * Feed the bytes of one connection in any fragmentation (even one byte at a time). For each
 * request the sink sees on_head once (method, target, the headers we use), then on_body per
 * contiguous body piece (a borrowed slice of the fed buffer: take a ref to keep it; chunk
 * framing already removed, zero-length pieces never reported), then on_end. After on_end the
 * framer pauses: gw_http_in_feed returns GW_HTTP_PAUSED with the bytes consumed so far, and
 * the caller answers the request before gw_http_in_resume + feeding the rest (pipelining in
 * order). A sink callback returning non-zero stops the framer (GW_HTTP_STOPPED). Anything that
 * is not HTTP/1.x returns GW_HTTP_ERROR; the stream is then unusable.
 *
 * Also here: response head / error body formatting (pure). */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define GW_HTTP_URL_MAX 8192
#define GW_HTTP_VALUE_MAX 1024

enum gw_http_rc {
    GW_HTTP_OK = 0,      /* every byte consumed, more may come */
    GW_HTTP_PAUSED = 1,  /* a request ended (on_end ran); *consumed tells where */
    GW_HTTP_STOPPED = 2, /* a sink callback returned non-zero */
    GW_HTTP_ERROR = -1,  /* not HTTP: answer 400 and close */
};

struct gw_http_req {
    unsigned method; /* enum http_method */
    unsigned short http_major, http_minor;
    struct cm_sbuf url;                    /* request target as sent (NUL-terminated) */
    int url_overflow;                      /* target longer than GW_HTTP_URL_MAX (url truncated) */
    char content_type[GW_HTTP_VALUE_MAX];  /* "" when absent */
    char cache_control[GW_HTTP_VALUE_MAX]; /* "" when absent */
    int header_overflow;                   /* an interesting header value was too long */
    int expect_continue;                   /* Expect: 100-continue */
    int chunked;                           /* Transfer-Encoding: chunked */
    int has_length;                        /* Content-Length given */
    uint64_t content_length;
    int keep_alive; /* the connection may carry another request after this one */
};

struct gw_http_sink {
    int (*on_head)(void *arg, struct gw_http_req *req);
    int (*on_body)(void *arg, const struct cm_slice *piece);
    int (*on_end)(void *arg);
};

struct gw_http_in {
    http_parser parser;
    http_parser_settings settings;
    const struct gw_http_sink *sink;
    void *arg;
    struct gw_http_req req;
    struct cm_buf *feeding; /* borrowed, only during gw_http_in_feed */
    char field[64];
    size_t field_len;
    int field_long;
    char value[GW_HTTP_VALUE_MAX];
    size_t value_len;
    int value_long;
    int in_value;
    int in_message; /* between message begin and end */
    int stopped;
};

void gw_http_in_init(struct gw_http_in *in, const struct gw_http_sink *sink, void *arg);
void gw_http_in_close(struct gw_http_in *in);
/* Parse buf->data[off .. off+len). */
int gw_http_in_feed(struct gw_http_in *in, struct cm_buf *buf, size_t off, size_t len,
                    size_t *consumed);
/* Continue after GW_HTTP_PAUSED. */
void gw_http_in_resume(struct gw_http_in *in);
/* A request has started but not ended (on_head may not have run yet). */
int gw_http_in_mid_request(const struct gw_http_in *in);
/* http_parser's name of the last error. */
const char *gw_http_in_error(const struct gw_http_in *in);

/* ---- responses (pure formatting) ---- */

const char *gw_http_reason(int status);
/* "HTTP/1.1 <status> <reason>\r\n" + Connection: close when !keep_alive. The caller appends
 * header lines and the blank line. */
void gw_http_head_begin(struct cm_sbuf *s, int status, int keep_alive);

enum gw_committed { GW_COMMITTED_OMIT = 0, GW_COMMITTED_FALSE, GW_COMMITTED_NULL };
/* {"error":"<code>","message":"<text>"[,"committed":false|null]} */
void gw_http_error_body(struct cm_sbuf *s, const char *code, const char *message,
                        enum gw_committed committed);
/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") of a unix ms time; out >= 32 bytes. */
void gw_http_date(int64_t unix_ms, char *out, size_t outlen);

#endif
