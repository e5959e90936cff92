/* Request framing on http_parser. http_parser calls back with fragments; we accumulate the
 * target and the few header values we need, and hand body pieces through as slices of the
 * caller's buffer (no copy). */
#include "http/http.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static struct gw_http_in *in_of(http_parser *p)
{
    return p->data;
}

static void header_reset(struct gw_http_in *in)
{
    in->field_len = 0;
    in->field_long = 0;
    in->value_len = 0;
    in->value_long = 0;
    in->in_value = 0;
}

/* Copy the value when the field is `name` (1), else 0. dst holds GW_HTTP_VALUE_MAX bytes. */
static int header_copy(struct gw_http_in *in, const char *name, char *dst)
{
    if (strcasecmp(in->field, name) != 0)
        return 0;
    if (in->value_long)
        in->req.header_overflow = 1;
    else
        memcpy(dst, in->value, in->value_len + 1);
    return 1;
}

/* A complete header line (field + value) has been seen. */
static void header_done(struct gw_http_in *in)
{
    if (in->field_long)
        goto out;
    in->field[in->field_len] = '\0';
    in->value[in->value_len] = '\0';
    if (strcasecmp(in->field, "Content-Type") == 0) {
        if (in->value_long)
            in->req.header_overflow = 1;
        else
            memcpy(in->req.content_type, in->value, in->value_len + 1);
    } else if (strcasecmp(in->field, "Cache-Control") == 0) {
        if (in->value_long)
            in->req.header_overflow = 1;
        else
            memcpy(in->req.cache_control, in->value, in->value_len + 1);
    } else if (header_copy(in, "Range", in->req.range) ||
               header_copy(in, "If-Range", in->req.if_range) ||
               header_copy(in, "If-Modified-Since", in->req.if_modified_since) ||
               header_copy(in, "If-Unmodified-Since", in->req.if_unmodified_since)) {
    } else if (header_copy(in, "If-Match", in->req.if_match)) {
        in->req.has_if_match = 1;
    } else if (header_copy(in, "If-None-Match", in->req.if_none_match)) {
        in->req.has_if_none_match = 1;
    } else if (header_copy(in, "X-Headwater-TTL", in->req.ttl)) {
        in->req.has_ttl = 1;
    } else if (header_copy(in, "Origin", in->req.origin) ||
               header_copy(in, "Access-Control-Request-Headers", in->req.acr_headers) ||
               header_copy(in, "Authorization", in->req.authorization)) {
    } else if (strcasecmp(in->field, "Access-Control-Request-Method") == 0) {
        if (in->value_len < sizeof(in->req.acr_method))
            memcpy(in->req.acr_method, in->value, in->value_len + 1);
    } else if (strcasecmp(in->field, "Expect") == 0) {
        if (strcasecmp(in->value, "100-continue") == 0)
            in->req.expect_continue = 1;
    }
out:
    header_reset(in);
}

static void append_bounded(char *dst, size_t cap, size_t *len, int *overflow, const char *at,
                           size_t n)
{
    if (*len + n >= cap) {
        *overflow = 1;
        return;
    }
    memcpy(dst + *len, at, n);
    *len += n;
}

static int on_message_begin(http_parser *p)
{
    struct gw_http_in *in = in_of(p);
    struct cm_sbuf url = in->req.url;
    memset(&in->req, 0, sizeof(in->req));
    cm_sbuf_reset(&url);
    url.oom = 0;
    in->req.url = url;
    header_reset(in);
    in->in_message = 1;
    in->head_bytes = 0;
    return 0;
}

/* Count head bytes (+4 per header line for ": " and CRLF); stop past the limit. */
static int head_count(struct gw_http_in *in, size_t n)
{
    in->head_bytes += n;
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
    if (in->req.url_overflow || in->req.url.len + n > in->max_url) {
        in->req.url_overflow = 1;
        return 0;
    }
    cm_sbuf_append(&in->req.url, at, n);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct gw_http_in *in = in_of(p);
    if (in->in_value)
        header_done(in);
    if (head_count(in, n + (in->field_len == 0 ? 4 : 0)) != 0)
        return -1;
    append_bounded(in->field, sizeof(in->field), &in->field_len, &in->field_long, at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct gw_http_in *in = in_of(p);
    in->in_value = 1;
    if (head_count(in, n) != 0)
        return -1;
    append_bounded(in->value, sizeof(in->value), &in->value_len, &in->value_long, at, n);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct gw_http_in *in = in_of(p);
    if (in->in_value || in->field_len > 0)
        header_done(in);
    struct gw_http_req *r = &in->req;
    if (p->http_major != 1)
        return -1; /* not HTTP/1.x: a framing error, not a sink stop */
    r->method = p->method;
    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->has_length = !r->chunked && p->content_length != ULLONG_MAX;
    r->content_length = r->has_length ? p->content_length : 0;
    r->keep_alive = http_should_keep_alive(p);
    if (r->url.oom) {
        in->limit_status = 503; /* out of memory for the target: not the client's fault */
        return -1;
    }
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
    if (in->sink->on_end(in->arg) != 0) {
        in->stopped = 1;
        return -1;
    }
    http_parser_pause(p, 1);
    return 0;
}

void gw_http_in_init(struct gw_http_in *in, const struct gw_http_sink *sink, void *arg)
{
    memset(in, 0, sizeof(*in));
    http_parser_init(&in->parser, HTTP_REQUEST);
    in->parser.data = in;
    http_parser_settings_init(&in->settings);
    in->settings.on_message_begin = on_message_begin;
    in->settings.on_url = on_url;
    in->settings.on_header_field = on_header_field;
    in->settings.on_header_value = on_header_value;
    in->settings.on_headers_complete = on_headers_complete;
    in->settings.on_body = on_body;
    in->settings.on_message_complete = on_message_complete;
    in->sink = sink;
    in->arg = arg;
    in->max_head = 65536;
    in->max_url = GW_HTTP_URL_MAX;
    cm_sbuf_init(&in->req.url);
}

void gw_http_in_close(struct gw_http_in *in)
{
    cm_sbuf_free(&in->req.url);
}

int gw_http_in_feed(struct gw_http_in *in, struct cm_buf *buf, size_t off, size_t len,
                    size_t *consumed)
{
    *consumed = 0;
    if (in->stopped)
        return GW_HTTP_STOPPED;
    if (len == 0)
        return GW_HTTP_OK;
    in->feeding = buf;
    size_t n = http_parser_execute(&in->parser, &in->settings, buf->data + off, len);
    in->feeding = NULL;
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

void gw_http_in_limits(struct gw_http_in *in, size_t max_head, size_t max_url)
{
    in->max_head = max_head;
    in->max_url = max_url;
}

int gw_http_in_error_status(const struct gw_http_in *in)
{
    if (in->limit_status != 0)
        return in->limit_status;
    if (HTTP_PARSER_ERRNO(&in->parser) == HPE_HEADER_OVERFLOW)
        return in->req.url_overflow ? 414 : 431;
    return 400;
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
    default:
        return "Unknown";
    }
}

void gw_http_head_begin(struct cm_sbuf *s, int status, int keep_alive)
{
    cm_sbuf_printf(s, "HTTP/1.1 %d %s\r\n", status, gw_http_reason(status));
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

static int hexdigit(char c)
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
            if (i + 2 >= len || hexdigit(s[i + 1]) < 0 || hexdigit(s[i + 2]) < 0)
                return -1;
            ch = (char)(hexdigit(s[i + 1]) * 16 + hexdigit(s[i + 2]));
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
