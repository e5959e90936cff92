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
    /* read/write semantics (get.c, put.c); "" when absent */
    char range[GW_HTTP_VALUE_MAX];
    char if_range[GW_HTTP_VALUE_MAX];
    char if_match[GW_HTTP_VALUE_MAX];
    char if_none_match[GW_HTTP_VALUE_MAX];
    char if_modified_since[GW_HTTP_VALUE_MAX];
    char if_unmodified_since[GW_HTTP_VALUE_MAX];
    int has_if_match, has_if_none_match; /* present (even with an empty value) */
    char ttl[GW_HTTP_VALUE_MAX];         /* X-Headwater-TTL */
    int has_ttl;
    /* connection layer (server.c, cors.c, auth); "" when absent */
    char origin[GW_HTTP_VALUE_MAX];
    char acr_method[64];                 /* Access-Control-Request-Method */
    char acr_headers[GW_HTTP_VALUE_MAX]; /* Access-Control-Request-Headers */
    char authorization[GW_HTTP_VALUE_MAX];
    int header_overflow; /* an interesting header value was too long */
    int expect_continue; /* Expect: 100-continue */
    int chunked;         /* Transfer-Encoding: chunked */
    int has_length;      /* Content-Length given */
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
    size_t max_head; /* request line + headers, bytes (431 beyond) */
    size_t max_url;  /* target bytes (414 beyond) */
    size_t head_bytes;
    int limit_status; /* 414 / 431 when a limit stopped the framer */
};

void gw_http_in_init(struct gw_http_in *in, const struct gw_http_sink *sink, void *arg);
void gw_http_in_close(struct gw_http_in *in);
/* Parse buf->data[off .. off+len). */
int gw_http_in_feed(struct gw_http_in *in, struct cm_buf *buf, size_t off, size_t len,
                    size_t *consumed);
/* Limits (defaults: 64 KiB head, GW_HTTP_URL_MAX target). A target over max_url sets
 * url_overflow (the head still completes); a head over max_head stops the framer with
 * GW_HTTP_ERROR and gw_http_in_error_status 431 (414 when the target itself is too long). */
void gw_http_in_limits(struct gw_http_in *in, size_t max_head, size_t max_url);
/* The status to answer a GW_HTTP_ERROR with: 400, 414, 431, or 503 (out of memory). */
int gw_http_in_error_status(const struct gw_http_in *in);
/* Continue after GW_HTTP_PAUSED. */
void gw_http_in_resume(struct gw_http_in *in);
/* A request has started but not ended (on_head may not have run yet). */
int gw_http_in_mid_request(const struct gw_http_in *in);
/* http_parser's name of the last error. */
const char *gw_http_in_error(const struct gw_http_in *in);

/* ---- targets (pure) ---- */

/* The value of query parameter `name` in a request target (not decoded): 1 found, else 0. */
int gw_http_query_param(const char *target, const char *name, const char **val, size_t *len);
/* Find query parameter `name` in a request target. Returns 0 absent, 1 present (value
 * percent-decoded into out, "" when it has no value), -1 malformed (bad escape, NUL, too long). */
int gw_query_param(const char *target, const char *name, char *out, size_t outcap);
/* The credential of "Authorization: Bearer <token>": 1 found, else 0. */
int gw_http_bearer(const char *authorization, const char **tok, size_t *len);
/* The target for a log line: `token` query parameters removed, quotes, backslashes, spaces and
 * control bytes %-escaped, cut to cap - 1 bytes. */
void gw_http_log_target(const char *target, char *out, size_t cap);

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
