/* HTTP/1.1 request framing over http_parser, kept pure: bytes in, callbacks out, no sockets.
 *
 * Feed the bytes of one connection in any fragmentation (even one byte at a time), appending to
 * one buffer while a head is incomplete (gw_http_in_pinned). For each request the sink sees
 * on_head once (method, target, the headers we use as slices of that buffer), then on_body per
 * contiguous body piece (a borrowed slice of the fed buffer: take a ref to keep it; chunk
 * framing already removed, zero-length pieces never reported), then on_end. After on_end the
 * framer pauses: gw_http_in_feed returns GW_HTTP_PAUSED with the bytes consumed so far, and
 * the caller answers the request before gw_http_in_resume + feeding the rest (pipelining in
 * order). A sink callback returning non-zero stops the framer (GW_HTTP_STOPPED). Anything that
 * is not HTTP/1.x returns GW_HTTP_ERROR; the stream is then unusable.
 *
 * Framing is strict (RFC 9112) whatever http_parser build is linked: the raw bytes of the head,
 * chunk-size lines and trailers are checked before the parser sees them, and a bare CR, obs-fold
 * (a field line starting with SP/HT), whitespace before a field's colon, a chunk-size line not
 * ended by CRLF (or longer than GW_HTTP_CHUNK_LINE_MAX, or a size past 2^60), chunk data not
 * followed by CRLF are GW_HTTP_ERROR (400) before the request they are in reaches on_end (and a
 * head with one never reaches on_head). A bare LF ends a head line (RFC 9112 2.2 allows it).
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
#define GW_HTTP_CHUNK_LINE_MAX 4096 /* a chunk-size line with its extensions, bytes */

enum gw_http_rc {
    GW_HTTP_OK = 0,      /* every byte consumed, more may come */
    GW_HTTP_PAUSED = 1,  /* a request ended (on_end ran); *consumed tells where */
    GW_HTTP_STOPPED = 2, /* a sink callback returned non-zero */
    GW_HTTP_ERROR = -1,  /* not HTTP: answer 400 and close */
};

/* The request headers we use, as tokens (like h2o's h2o_find_header): one slot each, the last
 * occurrence wins. Values are slices of the fed buffer, not copies. */
enum gw_http_token {
    GW_H_CONTENT_TYPE,
    GW_H_CACHE_CONTROL,
    GW_H_RANGE,
    GW_H_IF_RANGE,
    GW_H_IF_MATCH,
    GW_H_IF_NONE_MATCH,
    GW_H_IF_MODIFIED_SINCE,
    GW_H_IF_UNMODIFIED_SINCE,
    GW_H_TTL, /* X-Headwater-TTL */
    GW_H_ORIGIN,
    GW_H_ACR_METHOD,  /* Access-Control-Request-Method (values of 64 bytes or more ignored) */
    GW_H_ACR_HEADERS, /* Access-Control-Request-Headers */
    GW_H_AUTHORIZATION,
    GW_H_EXPECT,
    GW_H__COUNT
};

/* A value's place in the head: offset from req->head << GW_HTTP_LEN_BITS | length (values are
 * shorter than GW_HTTP_VALUE_MAX; a head is at most http_parser's 80 KiB). */
#define GW_HTTP_LEN_BITS 10

struct gw_http_str {
    const char *p; /* NULL until a head has been parsed */
    size_t len;
};

/* One request head. Every pointer is borrowed from the buffer that was fed: the caller keeps
 * that buffer (and its bytes) alive and unchanged until the request is answered. The target and
 * each header value are NUL-terminated in place (the byte after each is the CR/LF or space the
 * framer has already consumed), so they read as slices and as C strings. */
struct gw_http_req {
    unsigned method; /* enum http_method */
    unsigned short http_major, http_minor;
    struct gw_http_str url; /* request target as sent */
    const char *head;       /* base of the values: the first byte of the target */
    uint32_t present;       /* bit (1 << token) per header seen (even with an empty value) */
    uint32_t hdr[GW_H__COUNT];
    uint64_t content_length;
    unsigned url_overflow : 1;    /* target longer than the max_url limit */
    unsigned header_overflow : 1; /* a value we use was GW_HTTP_VALUE_MAX bytes or more */
    unsigned expect_continue : 1; /* Expect: 100-continue */
    unsigned chunked : 1;         /* Transfer-Encoding: chunked */
    unsigned has_length : 1;      /* Content-Length given */
    unsigned keep_alive : 1;      /* the connection may carry another request after this one */
};

/* A header's value: pointer + length (also NUL-terminated), or NULL (len 0) when absent. */
const char *gw_http_header(const struct gw_http_req *r, enum gw_http_token t, size_t *len);
/* The same as a C string: "" when absent. */
const char *gw_http_header_str(const struct gw_http_req *r, enum gw_http_token t);
int gw_http_has_header(const struct gw_http_req *r, enum gw_http_token t);

struct gw_http_sink {
    int (*on_head)(void *arg, struct gw_http_req *req);
    int (*on_body)(void *arg, const struct cm_slice *piece);
    int (*on_end)(void *arg);
};

/* Framer state. The bytes of a request head may arrive over several feeds; the caller keeps
 * them contiguous: the bytes fed since the head began (gw_http_in_pinned of them, ending where
 * the next feed starts) stay in place just before buf->data + off. */
struct gw_http_in {
    http_parser parser;
    const struct gw_http_sink *sink;
    void *arg;
    struct gw_http_req req;
    struct cm_buf *feeding; /* borrowed, only during gw_http_in_feed */
    const char *chunk;      /* buf->data + off of the current feed */
    uint64_t pos;           /* bytes fed so far (position of chunk) */
    uint64_t head_pos;      /* position of the current head's first target byte */
    uint32_t field_off, field_len, value_off, value_len;
    int token; /* of the header being read, -1 = not one we use */
    unsigned pinning : 1, in_value : 1, field_long : 1, in_message : 1, stopped : 1;
    uint32_t max_head; /* request line + headers, bytes (431 beyond) */
    uint32_t max_url;  /* target bytes (414 beyond) */
    uint32_t head_bytes;
    int limit_status; /* 414 / 431 when a limit stopped the framer */
    /* strict framing (RFC 9112), checked on the raw bytes before http_parser sees them */
    uint64_t sc_left;      /* body / chunk-data bytes still to come; the chunk size on its line */
    const char *sc_why;    /* why the framing was refused (static), NULL */
    uint32_t sc_line;      /* bytes on the chunk-size line; head and trailer lines: 0 = empty */
    unsigned sc_state : 3; /* enum in http.c */
    unsigned sc_field : 1; /* a non-empty line was seen: field lines follow */
    unsigned sc_cr : 1;    /* the previous byte was CR: the next must be LF */
    unsigned sc_colon : 1; /* a ':' was seen on this field line */
    unsigned sc_digit : 1, sc_ext : 1; /* chunk size: a hex digit seen; in its extension */
};

void gw_http_in_init(struct gw_http_in *in, const struct gw_http_sink *sink, void *arg);
void gw_http_in_close(struct gw_http_in *in);
/* Parse buf->data[off .. off+len). */
int gw_http_in_feed(struct gw_http_in *in, struct cm_buf *buf, size_t off, size_t len,
                    size_t *consumed);
/* Bytes already fed that the current, unfinished head still points into (0 when no head is
 * in progress): the caller keeps them, contiguous, in front of the next feed. */
size_t gw_http_in_pinned(const struct gw_http_in *in);
/* Limits (defaults: 64 KiB head, GW_HTTP_URL_MAX target). A target over max_url sets
 * url_overflow (the head still completes); a head over max_head stops the framer with
 * GW_HTTP_ERROR and gw_http_in_error_status 431 (414 when the target itself is too long). */
void gw_http_in_limits(struct gw_http_in *in, size_t max_head, size_t max_url);
/* The status to answer a GW_HTTP_ERROR with: 400, 414 or 431. */
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
/* Value of a hexadecimal digit (either case), -1 for any other byte. */
int gw_http_hexdigit(char c);
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
