/* Request framing on http_parser. http_parser calls back with fragments; we record where the
 * target and the header values we use sit (stream positions, turned into slices of the fed
 * buffer once the head is complete: the caller keeps a head's bytes contiguous), and hand body
 * pieces through as slices of the caller's buffer (no copy). */
#include "http/http.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http/httpdate.h"

static const struct {
    const char *name;
    size_t len;
} tokens[GW_H__COUNT] = {
#define T(s)                                                                                       \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
    [GW_H_CONTENT_TYPE] = T("Content-Type"),
    [GW_H_CACHE_CONTROL] = T("Cache-Control"),
    [GW_H_RANGE] = T("Range"),
    [GW_H_IF_RANGE] = T("If-Range"),
    [GW_H_IF_MATCH] = T("If-Match"),
    [GW_H_IF_NONE_MATCH] = T("If-None-Match"),
    [GW_H_IF_MODIFIED_SINCE] = T("If-Modified-Since"),
    [GW_H_IF_UNMODIFIED_SINCE] = T("If-Unmodified-Since"),
    [GW_H_TTL] = T("X-Headwater-TTL"),
    [GW_H_ORIGIN] = T("Origin"),
    [GW_H_ACR_METHOD] = T("Access-Control-Request-Method"),
    [GW_H_ACR_HEADERS] = T("Access-Control-Request-Headers"),
    [GW_H_AUTHORIZATION] = T("Authorization"),
    [GW_H_EXPECT] = T("Expect"),
#undef T
};

#define FIELD_MAX 63 /* longer field names are none we use */
#define ACR_METHOD_MAX 63

static size_t span_len(uint32_t span)
{
    return span & ((1u << GW_HTTP_LEN_BITS) - 1);
}

static size_t span_off(uint32_t span)
{
    return span >> GW_HTTP_LEN_BITS;
}

static void sc_reset(struct gw_http_in *in);
static void sc_body(struct gw_http_in *in, const struct gw_http_req *r);

static struct gw_http_in *in_of(http_parser *p)
{
    return p->data;
}

/* Offset from the head's first byte of a fragment of the current feed. */
static uint32_t rel(const struct gw_http_in *in, const char *at)
{
    return (uint32_t)(in->pos + (uint64_t)(at - in->chunk) - in->head_pos);
}

/* A byte of the current head, by offset (valid: the caller keeps the head contiguous). */
static const char *head_at(const struct gw_http_in *in, uint32_t off)
{
    return in->chunk - (ptrdiff_t)(in->pos - in->head_pos) + off;
}

static void header_reset(struct gw_http_in *in)
{
    in->field_len = 0;
    in->field_long = 0;
    in->value_len = 0;
    in->in_value = 0;
    in->token = -1;
}

static int token_of(const char *name, size_t len)
{
    for (int t = 0; t < GW_H__COUNT; t++)
        if (tokens[t].len == len && strncasecmp(tokens[t].name, name, len) == 0)
            return t;
    return -1;
}

static int field_token(const struct gw_http_in *in)
{
    if (in->field_long || in->field_len == 0)
        return -1;
    return token_of(head_at(in, in->field_off), in->field_len);
}

/* A complete header line (field + value) has been seen. */
static void header_done(struct gw_http_in *in)
{
    struct gw_http_req *r = &in->req;
    if (!in->in_value) /* no value bytes at all */
        in->token = field_token(in);
    int t = in->token;
    if (t < 0)
        goto out;
    if (t == GW_H_ACR_METHOD && in->value_len > ACR_METHOD_MAX)
        goto out; /* ignored, as a value that did not fit */
    if (t == GW_H_EXPECT) {
        if (in->value_len == 12 && strncasecmp(head_at(in, in->value_off), "100-continue", 12) == 0)
            r->expect_continue = 1;
        goto out;
    }
    if (in->value_len >= GW_HTTP_VALUE_MAX) {
        r->header_overflow = 1;
        goto out;
    }
    r->present |= 1u << t;
    r->hdr[t] = (in->value_len > 0 ? in->value_off : 0) << GW_HTTP_LEN_BITS | in->value_len;
out:
    header_reset(in);
}

static int on_message_begin(http_parser *p)
{
    struct gw_http_in *in = in_of(p);
    memset(&in->req, 0, sizeof(in->req));
    header_reset(in);
    in->in_message = 1;
    in->pinning = 0;
    in->head_bytes = 0;
    return 0;
}

/* Count head bytes (+4 per header line for ": " and CRLF); stop past the limit. */
static int head_count(struct gw_http_in *in, size_t n)
{
    in->head_bytes += (uint32_t)n;
    if (in->head_bytes <= in->max_head)
        return 0;
    in->limit_status = in->req.url_overflow ? 414 : 431;
    return -1;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct gw_http_in *in = in_of(p);
    if (head_count(in, n) != 0) {
        in->limit_status = 414; /* the target alone is past the head limit */
        return -1;
    }
    if (!in->pinning) {
        in->pinning = 1;
        in->head_pos = in->pos + (uint64_t)(at - in->chunk);
    }
    if (rel(in, at) != in->req.url.len)
        return -1; /* fragments of one target are adjacent */
    in->req.url.len += n;
    if (in->req.url.len > in->max_url)
        in->req.url_overflow = 1;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct gw_http_in *in = in_of(p);
    if (in->in_value)
        header_done(in);
    if (head_count(in, n + (in->field_len == 0 ? 4 : 0)) != 0)
        return -1;
    if (in->field_len == 0)
        in->field_off = rel(in, at);
    else if (rel(in, at) != in->field_off + in->field_len)
        return -1;
    in->field_len += (uint32_t)n;
    if (in->field_len > FIELD_MAX)
        in->field_long = 1;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct gw_http_in *in = in_of(p);
    if (!in->in_value) {
        in->in_value = 1;
        in->token = field_token(in);
        in->value_off = rel(in, at);
    }
    if (head_count(in, n) != 0)
        return -1;
    if (rel(in, at) != in->value_off + in->value_len)
        return in->token < 0 ? 0 : -1; /* a folded value we use: not a slice, refused */
    in->value_len += (uint32_t)n;
    return 0;
}

/* The head is complete: point the request into the fed bytes and NUL-terminate in place. */
static void head_publish(struct gw_http_in *in)
{
    struct gw_http_req *r = &in->req;
    char *h = (char *)head_at(in, 0);
    r->head = h;
    r->url.p = h;
    h[r->url.len] = '\0';
    for (int t = 0; t < GW_H__COUNT; t++)
        if ((r->present & (1u << t)) && span_len(r->hdr[t]) > 0)
            h[span_off(r->hdr[t]) + span_len(r->hdr[t])] = '\0';
    in->pinning = 0;
}

static int on_headers_complete(http_parser *p)
{
    struct gw_http_in *in = in_of(p);
    if (in->in_value || in->field_len > 0)
        header_done(in);
    struct gw_http_req *r = &in->req;
    if (p->http_major != 1 || !in->pinning)
        return -1; /* not HTTP/1.x: a framing error, not a sink stop */
    r->method = p->method;
    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->has_length = !r->chunked && p->content_length != ULLONG_MAX;
    r->keep_alive = http_should_keep_alive(p) != 0;
    r->content_length = r->has_length ? p->content_length : 0;
    head_publish(in);
    sc_body(in, r);
    if (in->sink->on_head(in->arg, r) != 0) {
        in->stopped = 1;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct gw_http_in *in = in_of(p);
    if (n == 0)
        return 0;
    struct cm_slice s = {in->feeding, (size_t)(at - in->feeding->data), n};
    if (in->sink->on_body(in->arg, &s) != 0) {
        in->stopped = 1;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct gw_http_in *in = in_of(p);
    in->in_message = 0;
    sc_reset(in);
    if (in->sink->on_end(in->arg) != 0) {
        in->stopped = 1;
        return -1;
    }
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void gw_http_in_init(struct gw_http_in *in, const struct gw_http_sink *sink, void *arg)
{
    memset(in, 0, sizeof(*in));
    http_parser_init(&in->parser, HTTP_REQUEST);
    in->parser.data = in;
    in->sink = sink;
    in->arg = arg;
    in->max_head = 65536;
    in->max_url = GW_HTTP_URL_MAX;
    in->token = -1;
}

void gw_http_in_close(struct gw_http_in *in)
{
    (void)in;
}

/* ---- strict framing: the raw bytes of heads, chunk-size lines and trailers are checked
 * here before http_parser sees them (it may be a lenient build). The scan stops where the parser
 * must run first: at the end of a head (on_headers_complete tells how the body is framed) and at
 * the end of a message (the parser pauses there), so both always stand at the same byte. ---- */

enum { SC_HEAD = 0, SC_AWAIT, SC_DATA, SC_CSIZE, SC_CDATA, SC_CDATA_CR, SC_CDATA_LF, SC_TRAILER };

static void sc_line_reset(struct gw_http_in *in)
{
    in->sc_cr = 0;
    in->sc_line = 0;
    in->sc_colon = 0;
}

static void sc_reset(struct gw_http_in *in)
{
    in->sc_state = SC_HEAD;
    in->sc_field = 0;
    sc_line_reset(in);
}

static void sc_chunk_line(struct gw_http_in *in)
{
    in->sc_state = SC_CSIZE;
    in->sc_left = 0; /* the size, while its line is read */
    in->sc_digit = 0;
    in->sc_ext = 0;
    sc_line_reset(in);
}

/* The head is parsed (on_headers_complete): how its body is framed. */
static void sc_body(struct gw_http_in *in, const struct gw_http_req *r)
{
    if (r->chunked) {
        sc_chunk_line(in);
    } else if (r->has_length && r->content_length > 0) {
        in->sc_state = SC_DATA;
        in->sc_left = r->content_length;
    } else {
        sc_reset(in);
    }
}

static int sc_refuse(struct gw_http_in *in, const char *why)
{
    in->sc_why = why;
    return -1;
}

/* One byte of a head or trailer line: 0 fine, 1 it ended the section, -1 refused. */
static int sc_field_byte(struct gw_http_in *in, unsigned char ch, int trailer)
{
    int field_line = trailer || in->sc_field; /* not the request line */
    if (in->sc_cr && ch != '\n')
        return sc_refuse(in, "bare CR in a request head");
    if (ch == '\r') {
        in->sc_cr = 1;
        return 0;
    }
    if (ch == '\n') {
        int empty = in->sc_line == 0;
        sc_line_reset(in);
        if (!empty) {
            in->sc_field = 1;
            return 0;
        }
        return field_line ? 1 : 0; /* blank lines before a request line are skipped */
    }
    if (field_line && in->sc_line == 0 && (ch == ' ' || ch == '\t'))
        return sc_refuse(in, "obs-fold in a request head");
    if (field_line && !in->sc_colon) {
        if (ch == ':')
            in->sc_colon = 1;
        else if (ch == ' ' || ch == '\t')
            return sc_refuse(in, "whitespace before a field's colon");
    }
    /* a field value is VCHAR / obs-text / SP / HTAB (RFC 9110 5.5): a NUL would make the value
     * read as a shorter C string, any other control byte is garbage a proxy may read otherwise */
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
        return sc_refuse(in, "control byte in a request head");
    in->sc_line = 1; /* not empty */
    return 0;
}

/* One byte of a chunk-size line (size [BWS ";" ext] CRLF): 0 fine, 1 it ended the line. */
static int sc_size_byte(struct gw_http_in *in, unsigned char ch)
{
    if (in->sc_cr) {
        if (ch != '\n')
            return sc_refuse(in, "bare CR in a chunk-size line");
        return 1;
    }
    if (++in->sc_line > GW_HTTP_CHUNK_LINE_MAX)
        return sc_refuse(in, "chunk-size line too long");
    if (ch == '\r') {
        if (!in->sc_digit)
            return sc_refuse(in, "empty chunk size");
        in->sc_cr = 1;
        return 0;
    }
    if (ch == '\n')
        return sc_refuse(in, "chunk-size line not ended by CRLF");
    int h = gw_http_hexdigit((char)ch);
    if (!in->sc_ext && h >= 0) {
        if (in->sc_left > (UINT64_C(1) << 56))
            return sc_refuse(in, "chunk size too large");
        in->sc_left = in->sc_left * 16 + (uint64_t)h;
        in->sc_digit = 1;
        return 0;
    }
    if (!in->sc_digit || (!in->sc_ext && ch != ';' && ch != ' ' && ch != '\t'))
        return sc_refuse(in, "bad chunk size");
    in->sc_ext = 1; /* the rest is extensions: visible bytes, SP, HTAB */
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
        return sc_refuse(in, "control byte in a chunk extension");
    return 0;
}

/* Data bytes (Content-Length body or chunk data) pass unchecked. Returns 1 when they ended. */
static int sc_data(struct gw_http_in *in, size_t avail, size_t *i)
{
    size_t n = in->sc_left < avail ? (size_t)in->sc_left : avail;
    *i += n;
    in->sc_left -= n;
    if (in->sc_left > 0)
        return 0;
    if (in->sc_state == SC_DATA)
        sc_reset(in);
    else
        in->sc_state = SC_CDATA_CR;
    return 1;
}

/* One byte at a line-oriented state: 0 go on, 1 stop after it (the parser runs first). */
static int sc_byte(struct gw_http_in *in, unsigned char ch)
{
    int r;
    switch (in->sc_state) {
    case SC_HEAD:
    case SC_TRAILER:
        r = sc_field_byte(in, ch, in->sc_state == SC_TRAILER);
        if (r == 1 && in->sc_state == SC_TRAILER)
            sc_reset(in); /* message end */
        else if (r == 1)
            in->sc_state = SC_AWAIT;
        return r;
    case SC_CDATA_CR:
    case SC_CDATA_LF:
        if (ch != (in->sc_state == SC_CDATA_CR ? '\r' : '\n'))
            return sc_refuse(in, "chunk data not followed by CRLF");
        if (in->sc_state == SC_CDATA_CR)
            in->sc_state = SC_CDATA_LF;
        else
            sc_chunk_line(in);
        return 0;
    default:
        r = sc_size_byte(in, ch);
        if (r == 1 && in->sc_left == 0) {
            sc_reset(in);
            in->sc_state = SC_TRAILER;
        } else if (r == 1) {
            in->sc_state = SC_CDATA; /* sc_left: the size just read */
        }
        return r < 0 ? -1 : 0;
    }
}

/* Check data[0 .. len) ahead of the parser. *ok: the bytes it may parse now; returns -1 when
 * data[*ok] is refused (sc_why says why), else 0. */
static int sc_scan(struct gw_http_in *in, const char *data, size_t len, size_t *ok)
{
    size_t i = 0;
    int r = 0;
    while (i < len && r == 0 && in->sc_state != SC_AWAIT) {
        if (in->sc_state == SC_DATA || in->sc_state == SC_CDATA) {
            r = sc_data(in, len - i, &i) && in->sc_state == SC_HEAD;
            continue;
        }
        r = sc_byte(in, (unsigned char)data[i]);
        if (r >= 0)
            i++; /* r == 1: a head or a trailer section ended with this byte */
    }
    *ok = i;
    return r < 0 ? -1 : 0;
}

static int parse(struct gw_http_in *in, struct cm_buf *buf, size_t off, size_t len,
                 size_t *consumed)
{
    in->feeding = buf;
    in->chunk = buf->data + off;
    size_t n = http_parser_execute(&in->parser, &settings, buf->data + off, len);
    in->feeding = NULL;
    in->pos += n;
    *consumed = n;
    enum http_errno e = HTTP_PARSER_ERRNO(&in->parser);
    if (in->stopped)
        return GW_HTTP_STOPPED;
    if (e == HPE_PAUSED)
        return GW_HTTP_PAUSED;
    if (e != HPE_OK || n != len)
        return GW_HTTP_ERROR;
    return GW_HTTP_OK;
}

int gw_http_in_feed(struct gw_http_in *in, struct cm_buf *buf, size_t off, size_t len,
                    size_t *consumed)
{
    *consumed = 0;
    if (in->stopped)
        return GW_HTTP_STOPPED;
    if (HTTP_PARSER_ERRNO(&in->parser) == HPE_PAUSED)
        return GW_HTTP_PAUSED;
    if (in->sc_why != NULL)
        return GW_HTTP_ERROR;
    if (in->pinning && in->pos - in->head_pos > off)
        return GW_HTTP_ERROR; /* the caller did not keep the head in front of this feed */
    size_t done = 0;
    while (done < len) {
        size_t ok = 0, n = 0;
        int bad = sc_scan(in, buf->data + off + done, len - done, &ok);
        if (ok == 0 && !bad)
            bad = sc_refuse(in, "framing out of step with the parser");
        if (ok > 0) {
            int rc = parse(in, buf, off + done, ok, &n);
            done += n;
            if (rc != GW_HTTP_OK) {
                *consumed = done;
                return rc;
            }
        }
        if (bad) {
            *consumed = done;
            return GW_HTTP_ERROR;
        }
    }
    *consumed = done;
    return GW_HTTP_OK;
}

size_t gw_http_in_pinned(const struct gw_http_in *in)
{
    return in->pinning ? (size_t)(in->pos - in->head_pos) : 0;
}

void gw_http_in_limits(struct gw_http_in *in, size_t max_head, size_t max_url)
{
    in->max_head = max_head > UINT32_MAX ? UINT32_MAX : (uint32_t)max_head;
    in->max_url = max_url > UINT32_MAX ? UINT32_MAX : (uint32_t)max_url;
}

int gw_http_in_error_status(const struct gw_http_in *in)
{
    if (in->limit_status != 0)
        return in->limit_status;
    if (HTTP_PARSER_ERRNO(&in->parser) == HPE_HEADER_OVERFLOW)
        return in->req.url_overflow ? 414 : 431;
    return 400;
}

const char *gw_http_header(const struct gw_http_req *r, enum gw_http_token t, size_t *len)
{
    *len = 0;
    if (r->head == NULL || !(r->present & (1u << t)))
        return NULL;
    *len = span_len(r->hdr[t]);
    return *len > 0 ? r->head + span_off(r->hdr[t]) : "";
}

const char *gw_http_header_str(const struct gw_http_req *r, enum gw_http_token t)
{
    size_t len;
    const char *v = gw_http_header(r, t, &len);
    return v != NULL ? v : "";
}

int gw_http_has_header(const struct gw_http_req *r, enum gw_http_token t)
{
    return r->head != NULL && (r->present & (1u << t)) != 0;
}

int gw_http_query_param(const char *target, const char *name, const char **val, size_t *len)
{
    const char *q = strchr(target, '?');
    size_t nlen = strlen(name);
    if (q == NULL)
        return 0;
    const char *p = q + 1;
    while (*p != '\0' && *p != '#') {
        size_t plen = strcspn(p, "&#");
        if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            *val = p + nlen + 1;
            *len = plen - nlen - 1;
            return 1;
        }
        p += plen;
        if (*p == '&')
            p++;
    }
    return 0;
}

int gw_http_bearer(const char *authorization, const char **tok, size_t *len)
{
    const char *a = authorization;
    if (strncasecmp(a, "Bearer", 6) != 0 || (a[6] != ' ' && a[6] != '\t'))
        return 0;
    a += 6;
    while (*a == ' ' || *a == '\t')
        a++;
    size_t n = strlen(a);
    while (n > 0 && (a[n - 1] == ' ' || a[n - 1] == '\t'))
        n--;
    if (n == 0)
        return 0;
    *tok = a;
    *len = n;
    return 1;
}

/* Append p[0..n) escaped; once something does not fit, nothing more is added (*o = cap - 1
 * marks the output full), so the result is always a prefix of the whole escaped target. */
static void log_put(char *out, size_t cap, size_t *o, const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        int esc = c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '%';
        if (*o + (esc ? 3 : 1) >= cap) {
            out[*o] = '\0';
            *o = cap - 1; /* full */
            return;
        }
        if (esc) {
            out[(*o)++] = '%';
            out[(*o)++] = hex[c >> 4];
            out[(*o)++] = hex[c & 15];
        } else {
            out[(*o)++] = (char)c;
        }
    }
}

void gw_http_log_target(const char *target, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return;
    const char *q = strchr(target, '?');
    log_put(out, cap, &o, target, q ? (size_t)(q - target) : strlen(target));
    if (q != NULL) {
        const char *p = q + 1;
        int first = 1;
        while (*p != '\0') {
            size_t plen = strcspn(p, "&");
            int secret = strncmp(p, "token=", 6) == 0 || (plen == 5 && strncmp(p, "token", 5) == 0);
            if (!secret) {
                log_put(out, cap, &o, first ? "?" : "&", 1);
                log_put(out, cap, &o, p, plen);
                first = 0;
            }
            p += plen;
            if (*p == '&')
                p++;
        }
    }
    out[o] = '\0';
}

void gw_http_in_resume(struct gw_http_in *in)
{
    http_parser_pause(&in->parser, 0);
}

int gw_http_in_mid_request(const struct gw_http_in *in)
{
    return in->in_message;
}

const char *gw_http_in_error(const struct gw_http_in *in)
{
    if (in->sc_why != NULL)
        return in->sc_why;
    return http_errno_name(HTTP_PARSER_ERRNO(&in->parser));
}

const char *gw_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 416:
        return "Range Not Satisfiable";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 507:
        return "Insufficient Storage";
    default:
        return "Unknown";
    }
}

/* Every answer carries Date (RFC 9110 §6.6.1: an origin with a clock must): caches compute an
 * answer's age from it. Without it a browser counts a playlist's max-age from when it got the
 * answer, and a player sees the next playlist up to a second later than from an origin that
 * sends one (tests/e2e: hls.js's buffer halved). Formatted once a second per thread. */
static const char *date_now(void)
{
    static _Thread_local time_t last = -1;
    static _Thread_local char text[GW_HTTPDATE_LEN];
    time_t now = time(NULL);
    if (now != last) {
        gw_httpdate_format((int64_t)now, text);
        last = now;
    }
    return text;
}

void gw_http_head_begin(struct cm_sbuf *s, int status, int keep_alive)
{
    cm_sbuf_printf(s, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, gw_http_reason(status), date_now());
    if (!keep_alive)
        cm_sbuf_puts(s, "Connection: close\r\n");
}

void gw_http_error_body(struct cm_sbuf *s, const char *code, const char *message,
                        enum gw_committed committed)
{
    cm_sbuf_puts(s, "{\"error\":");
    cm_sbuf_json_str(s, code);
    cm_sbuf_puts(s, ",\"message\":");
    cm_sbuf_json_str(s, message);
    if (committed == GW_COMMITTED_FALSE)
        cm_sbuf_puts(s, ",\"committed\":false");
    else if (committed == GW_COMMITTED_NULL)
        cm_sbuf_puts(s, ",\"committed\":null");
    cm_sbuf_puts(s, "}");
}

void gw_http_date(int64_t unix_ms, char *out, size_t outlen)
{
    static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---- decoded query parameters ---- */

int gw_http_hexdigit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int decode(const char *s, size_t len, char *out, size_t outcap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= len || gw_http_hexdigit(s[i + 1]) < 0 || gw_http_hexdigit(s[i + 2]) < 0)
                return -1;
            ch = (char)(gw_http_hexdigit(s[i + 1]) * 16 + gw_http_hexdigit(s[i + 2]));
            i += 2;
            if (ch == '\0')
                return -1;
        }
        if (o + 1 >= outcap)
            return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 1;
}

int gw_query_param(const char *target, const char *name, char *out, size_t outcap)
{
    const char *q = strchr(target, '?');
    if (q == NULL)
        return 0;
    const char *end = strchr(q, '#');
    if (end == NULL)
        end = q + strlen(q);
    size_t nlen = strlen(name);
    const char *p = q + 1;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *nend = eq ? eq : stop;
        if ((size_t)(nend - p) == nlen && memcmp(p, name, nlen) == 0) {
            if (eq == NULL) {
                if (outcap > 0)
                    out[0] = '\0';
                return 1;
            }
            return decode(eq + 1, (size_t)(stop - eq - 1), out, outcap);
        }
        p = stop + 1;
    }
    return 0;
}
