/* HTTP request framing without sockets: any fragmentation gives the same requests, pipelined
 * requests come out one at a time in order, chunked bodies arrive de-chunked, garbage fails. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "http/http.h"
#include "http/httpdate.h"

struct rec {
    struct cm_sbuf log;
    int heads, ends;
    int zero_pieces;
    struct gw_http_req last; /* its pointers are not valid after on_head: copied below */
    char origin[128], acr_method[64], acr_headers[128], authorization[128];
};

static void copy_header(const struct gw_http_req *req, enum gw_http_token t, char *out, size_t cap)
{
    size_t len;
    const char *v = gw_http_header(req, t, &len);
    cr_assert(v == NULL || strlen(v) == len, "value NUL-terminated in place");
    snprintf(out, cap, "%.*s", (int)len, v ? v : "");
}

static int r_head(void *arg, struct gw_http_req *req)
{
    struct rec *r = arg;
    r->heads++;
    cr_assert_eq(strlen(req->url.p), req->url.len);
    cm_sbuf_printf(&r->log, "H %s %.*s v=1.%u ct=%s len=%d/%llu chunked=%d ka=%d expect=%d\n",
                   http_method_str((enum http_method)req->method), (int)req->url.len, req->url.p,
                   req->http_minor, gw_http_header_str(req, GW_H_CONTENT_TYPE), req->has_length,
                   (unsigned long long)req->content_length, req->chunked, req->keep_alive,
                   req->expect_continue);
    r->last = *req;
    copy_header(req, GW_H_ORIGIN, r->origin, sizeof(r->origin));
    copy_header(req, GW_H_ACR_METHOD, r->acr_method, sizeof(r->acr_method));
    copy_header(req, GW_H_ACR_HEADERS, r->acr_headers, sizeof(r->acr_headers));
    copy_header(req, GW_H_AUTHORIZATION, r->authorization, sizeof(r->authorization));
    return 0;
}

static int r_body(void *arg, const struct cm_slice *s)
{
    struct rec *r = arg;
    if (s->len == 0)
        r->zero_pieces++;
    cm_sbuf_puts(&r->log, "B ");
    cm_sbuf_append(&r->log, cm_slice_ptr(s), s->len);
    cm_sbuf_puts(&r->log, "\n");
    return 0;
}

static int r_end(void *arg)
{
    struct rec *r = arg;
    r->ends++;
    cm_sbuf_puts(&r->log, "E\n");
    return 0;
}

static const struct gw_http_sink rec_sink = {r_head, r_body, r_end};

/* Body pieces are logged separately; join consecutive "B " lines so fragmentations compare. */
static void normalise(const char *in, struct cm_sbuf *out)
{
    int in_body = 0;
    while (*in) {
        const char *nl = strchr(in, '\n');
        size_t n = nl ? (size_t)(nl - in) : strlen(in);
        if (n >= 2 && in[0] == 'B' && in[1] == ' ') {
            if (!in_body)
                cm_sbuf_puts(out, "B ");
            cm_sbuf_append(out, in + 2, n - 2);
            in_body = 1;
        } else {
            if (in_body)
                cm_sbuf_puts(out, "\n");
            in_body = 0;
            cm_sbuf_append(out, in, n);
            cm_sbuf_puts(out, "\n");
        }
        in += n + (nl ? 1 : 0);
    }
    if (in_body)
        cm_sbuf_puts(out, "\n");
}

/* A connection's read buffer, as the stream keeps it: reads are appended; parsed bytes are
 * released except the ones a partial head pins; when a read does not fit, the unreleased bytes
 * move to a new buffer (small buffers here, so heads move often). */
struct region {
    struct cm_buf *b;
    size_t off, len, fed;
};

static void region_append(struct region *g, const char *p, size_t n)
{
    if (g->b == NULL || g->b->cap - g->b->len < n) {
        struct cm_buf *nb = cm_buf_new(g->len + n + 8);
        cr_assert_not_null(nb);
        if (g->len > 0)
            memcpy(nb->data, g->b->data + g->off, g->len);
        nb->len = g->len;
        if (g->b != NULL)
            memset(g->b->data, '#', g->b->cap); /* a stale pointer would read garbage */
        cm_buf_unref(g->b);
        g->b = nb;
        g->off = 0;
    }
    memcpy(g->b->data + g->b->len, p, n);
    g->b->len += n;
    g->len += n;
}

/* Feed what is unparsed, resuming after each request. Returns the last feed result. */
static int region_feed(struct region *g, struct gw_http_in *in, int *paused)
{
    int rc = GW_HTTP_OK;
    while (g->fed < g->len) {
        size_t used;
        rc = gw_http_in_feed(in, g->b, g->off + g->fed, g->len - g->fed, &used);
        g->fed += used;
        size_t done = g->fed - gw_http_in_pinned(in);
        g->off += done;
        g->len -= done;
        g->fed -= done;
        if (rc == GW_HTTP_PAUSED) {
            (*paused)++;
            gw_http_in_resume(in);
            continue;
        }
        if (rc != GW_HTTP_OK)
            break;
    }
    return rc;
}

/* Feed text in reads of `step` bytes; resume right away after each request. */
static int feed_all(struct rec *r, const char *text, size_t len, size_t step, int *paused)
{
    struct gw_http_in in;
    struct region g = {0};
    gw_http_in_init(&in, &rec_sink, r);
    int rc = GW_HTTP_OK;
    *paused = 0;
    for (size_t off = 0; off < len && rc >= 0;) {
        size_t n = len - off < step ? len - off : step;
        region_append(&g, text + off, n);
        rc = region_feed(&g, &in, paused);
        off += n;
    }
    cm_buf_unref(g.b);
    gw_http_in_close(&in);
    return rc;
}

static void check_all_fragmentations(const char *text, const char *want, int want_requests)
{
    size_t steps[] = {1, 2, 3, 5, 7, 13, 64, 100000};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct rec r;
        memset(&r, 0, sizeof(r));
        cm_sbuf_init(&r.log);
        int paused;
        int rc = feed_all(&r, text, strlen(text), steps[i], &paused);
        cr_assert_geq(rc, 0, "step %zu: error", steps[i]);
        struct cm_sbuf norm;
        cm_sbuf_init(&norm);
        normalise(r.log.p ? r.log.p : "", &norm);
        cr_assert_str_eq(norm.p ? norm.p : "", want, "step %zu", steps[i]);
        cr_assert_eq(paused, want_requests, "step %zu", steps[i]);
        cr_assert_eq(r.zero_pieces, 0);
        cm_sbuf_free(&norm);
        cm_sbuf_free(&r.log);
    }
}

Test(http, get_any_fragmentation)
{
    check_all_fragmentations("GET /live/a.m3u8?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
                             "H GET /live/a.m3u8?x=1 v=1.1 ct= len=0/0 chunked=0 ka=1 expect=0\n"
                             "E\n",
                             1);
}

Test(http, put_content_length_body)
{
    check_all_fragmentations("PUT /v/s.ts HTTP/1.1\r\nContent-Type: video/mp2t\r\n"
                             "Content-Length: 11\r\n\r\nhello world",
                             "H PUT /v/s.ts v=1.1 ct=video/mp2t len=1/11 chunked=0 ka=1 expect=0\n"
                             "B hello world\nE\n",
                             1);
}

Test(http, chunked_body_in_odd_fragments_ffmpeg_style)
{
    const char *req = "POST /live/ch1/seg_1.m4s HTTP/1.1\r\n"
                      "User-Agent: Lavf/60\r\nAccept: */*\r\nConnection: keep-alive\r\n"
                      "Icy-MetaData: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nabcde\r\n"
                      "1;ext=1\r\nf\r\n"
                      "A\r\n0123456789\r\n"
                      "0\r\n\r\n";
    check_all_fragmentations(req,
                             "H POST /live/ch1/seg_1.m4s v=1.1 ct= len=0/0 chunked=1 ka=1 "
                             "expect=0\nB abcdef0123456789\nE\n",
                             1);
}

Test(http, pipelined_requests_pause_in_order)
{
    const char *text = "GET /a HTTP/1.1\r\n\r\n"
                       "PUT /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
                       "DELETE /c HTTP/1.1\r\n\r\n";
    struct rec r;
    memset(&r, 0, sizeof(r));
    cm_sbuf_init(&r.log);
    struct gw_http_in in;
    gw_http_in_init(&in, &rec_sink, &r);
    struct cm_buf *b = cm_buf_copy(text, strlen(text));
    size_t pos = 0, used;
    int rc = gw_http_in_feed(&in, b, pos, b->len - pos, &used);
    cr_assert_eq(rc, GW_HTTP_PAUSED);
    pos += used;
    cr_assert_eq(pos, strlen("GET /a HTTP/1.1\r\n\r\n"));
    cr_assert_eq(r.heads, 1);
    cr_assert_eq(r.ends, 1);
    /* still paused: nothing more is parsed until resumed */
    rc = gw_http_in_feed(&in, b, pos, b->len - pos, &used);
    cr_assert_eq(used, 0);
    cr_assert_eq(r.heads, 1);
    gw_http_in_resume(&in);
    rc = gw_http_in_feed(&in, b, pos, b->len - pos, &used);
    cr_assert_eq(rc, GW_HTTP_PAUSED);
    pos += used;
    cr_assert_eq(r.heads, 2);
    cr_assert_eq(r.last.method, HTTP_PUT);
    gw_http_in_resume(&in);
    rc = gw_http_in_feed(&in, b, pos, b->len - pos, &used);
    cr_assert_eq(rc, GW_HTTP_PAUSED);
    pos += used;
    cr_assert_eq(pos, b->len);
    cr_assert_eq(r.last.method, HTTP_DELETE);
    cr_assert_str_eq(r.log.p, "H GET /a v=1.1 ct= len=0/0 chunked=0 ka=1 expect=0\nE\n"
                              "H PUT /b v=1.1 ct= len=1/3 chunked=0 ka=1 expect=0\nB xyz\nE\n"
                              "H DELETE /c v=1.1 ct= len=0/0 chunked=0 ka=1 expect=0\nE\n");
    cm_buf_unref(b);
    gw_http_in_close(&in);
    cm_sbuf_free(&r.log);
}

Test(http, pipelined_any_fragmentation)
{
    check_all_fragmentations("GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\n"
                             "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "2\r\nhi\r\n0\r\n\r\n",
                             "H GET /a v=1.1 ct= len=0/0 chunked=0 ka=1 expect=0\nE\n"
                             "H HEAD /b v=1.1 ct= len=0/0 chunked=0 ka=1 expect=0\nE\n"
                             "H POST /c v=1.1 ct= len=0/0 chunked=1 ka=1 expect=0\nB hi\nE\n",
                             3);
}

Test(http, http10_and_connection_close)
{
    check_all_fragmentations("GET /a HTTP/1.0\r\n\r\n",
                             "H GET /a v=1.0 ct= len=0/0 chunked=0 ka=0 expect=0\nE\n", 1);
    check_all_fragmentations("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                             "H GET /a v=1.0 ct= len=0/0 chunked=0 ka=1 expect=0\nE\n", 1);
    check_all_fragmentations("GET /a HTTP/1.1\r\nConnection: close\r\n\r\n",
                             "H GET /a v=1.1 ct= len=0/0 chunked=0 ka=0 expect=0\nE\n", 1);
}

Test(http, put_without_length_and_expect)
{
    check_all_fragmentations("PUT /a HTTP/1.1\r\n\r\n",
                             "H PUT /a v=1.1 ct= len=0/0 chunked=0 ka=1 expect=0\nE\n", 1);
    check_all_fragmentations("PUT /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
                             "H PUT /a v=1.1 ct= len=1/0 chunked=0 ka=1 expect=1\nE\n", 1);
}

Test(http, garbage_is_an_error)
{
    const char *bad[] = {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "HELLO THERE\r\n\r\n",
                         "GET /a HTTP/9.9\r\n\r\n",
                         "PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                         "PUT /a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rec r;
        memset(&r, 0, sizeof(r));
        cm_sbuf_init(&r.log);
        int paused;
        int rc = feed_all(&r, bad[i], strlen(bad[i]), 1, &paused);
        cr_assert_eq(rc, GW_HTTP_ERROR, "case %zu accepted", i);
        cr_assert_eq(r.ends, 0, "case %zu", i);
        cm_sbuf_free(&r.log);
    }
}

Test(http, long_target_flagged)
{
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    cm_sbuf_puts(&req, "GET /");
    for (int i = 0; i < GW_HTTP_URL_MAX; i++)
        cm_sbuf_puts(&req, "a");
    cm_sbuf_puts(&req, " HTTP/1.1\r\n\r\n");
    struct rec r;
    memset(&r, 0, sizeof(r));
    cm_sbuf_init(&r.log);
    int paused;
    int rc = feed_all(&r, req.p, req.len, 4096, &paused);
    cr_assert_geq(rc, 0);
    cr_assert_eq(r.heads, 1);
    cr_assert(r.last.url_overflow);
    cm_sbuf_free(&r.log);
    cm_sbuf_free(&req);
}

Test(http, body_slices_point_into_the_fed_buffer)
{
    const char *text = "PUT /a HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd";
    struct cm_buf *b = cm_buf_copy(text, strlen(text));
    struct rec r;
    memset(&r, 0, sizeof(r));
    cm_sbuf_init(&r.log);
    struct gw_http_in in;
    gw_http_in_init(&in, &rec_sink, &r);
    size_t used;
    cr_assert_eq(gw_http_in_feed(&in, b, 0, b->len, &used), GW_HTTP_PAUSED);
    cr_assert_eq(used, b->len);
    cr_assert_eq(b->refs, 1, "the framer keeps no reference");
    gw_http_in_close(&in);
    cm_buf_unref(b);
    cm_sbuf_free(&r.log);
}

Test(http, response_helpers)
{
    struct cm_sbuf s;
    cm_sbuf_init(&s);
    gw_http_error_body(&s, "no_quorum", "say \"hi\"", GW_COMMITTED_FALSE);
    cr_assert_str_eq(s.p, "{\"error\":\"no_quorum\",\"message\":\"say \\\"hi\\\"\","
                          "\"committed\":false}");
    cm_sbuf_reset(&s);
    gw_http_error_body(&s, "timeout", "x", GW_COMMITTED_NULL);
    cr_assert_str_eq(s.p, "{\"error\":\"timeout\",\"message\":\"x\",\"committed\":null}");
    cm_sbuf_reset(&s);
    gw_http_head_begin(&s, 503, 0);
    /* a Date of now (RFC 9110 §6.6.1), then Connection */
    static const char line[] = "HTTP/1.1 503 Service Unavailable\r\nDate: ";
    size_t n = sizeof(line) - 1;
    cr_assert(strncmp(s.p, line, n) == 0, "%s", s.p);
    int64_t when;
    cr_assert(gw_httpdate_parse(s.p + n, 29, &when) == 0, "%s", s.p);
    cr_assert(llabs(when - (int64_t)time(NULL)) <= 2);
    cr_assert_str_eq(s.p + n + 29, "\r\nConnection: close\r\n");
    cm_sbuf_free(&s);
    char d[40];
    gw_http_date(784111777000LL, d, sizeof(d));
    cr_assert_str_eq(d, "Sun, 06 Nov 1994 08:49:37 GMT");
}

/* Randomised: many pipelined requests (GET, PUT with Content-Length, chunked PUT with random
 * chunk sizes and extensions) fed in random fragments always parse to the generated requests. */
static unsigned rnd(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return (*state >> 8) & 0xffffff;
}

Test(http, randomised_pipelines_and_fragments)
{
    unsigned st = 42;
    for (int round = 0; round < 200; round++) {
        struct cm_sbuf wire, want;
        cm_sbuf_init(&wire);
        cm_sbuf_init(&want);
        int nreq = 1 + (int)(rnd(&st) % 6);
        for (int r = 0; r < nreq; r++) {
            unsigned kind = rnd(&st) % 3;
            char body[600];
            size_t blen = rnd(&st) % sizeof(body);
            for (size_t i = 0; i < blen; i++)
                body[i] = (char)('a' + rnd(&st) % 26);
            if (kind == 0) {
                cm_sbuf_printf(&wire, "GET /k/%d HTTP/1.1\r\nHost: h\r\n\r\n", r);
                cm_sbuf_printf(&want, "H GET /k/%d v=1.1 ct= len=0/0 chunked=0 ka=1 expect=0\nE\n",
                               r);
                continue;
            }
            if (kind == 1) {
                cm_sbuf_printf(&wire,
                               "PUT /k/%d HTTP/1.1\r\nContent-Type: t/%d\r\n"
                               "Content-Length: %zu\r\n\r\n",
                               r, r, blen);
                cm_sbuf_append(&wire, body, blen);
                cm_sbuf_printf(&want,
                               "H PUT /k/%d v=1.1 ct=t/%d len=1/%zu chunked=0 ka=1 expect=0\n", r,
                               r, blen);
            } else {
                cm_sbuf_printf(&wire, "POST /k/%d HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                               r);
                for (size_t off = 0; off < blen;) {
                    size_t n = 1 + rnd(&st) % 100;
                    if (n > blen - off)
                        n = blen - off;
                    cm_sbuf_printf(&wire, "%zx%s\r\n", n, rnd(&st) % 4 == 0 ? ";e=1" : "");
                    cm_sbuf_append(&wire, body + off, n);
                    cm_sbuf_puts(&wire, "\r\n");
                    off += n;
                }
                cm_sbuf_puts(&wire, "0\r\n\r\n");
                cm_sbuf_printf(&want, "H POST /k/%d v=1.1 ct= len=0/0 chunked=1 ka=1 expect=0\n",
                               r);
            }
            if (blen > 0) {
                cm_sbuf_puts(&want, "B ");
                cm_sbuf_append(&want, body, blen);
                cm_sbuf_puts(&want, "\n");
            }
            cm_sbuf_puts(&want, "E\n");
        }
        /* feed in random reads into a moving read buffer */
        struct rec rc;
        memset(&rc, 0, sizeof(rc));
        cm_sbuf_init(&rc.log);
        struct gw_http_in in;
        gw_http_in_init(&in, &rec_sink, &rc);
        int paused = 0;
        struct region g = {0};
        for (size_t off = 0; off < wire.len;) {
            size_t n = 1 + rnd(&st) % 300;
            if (n > wire.len - off)
                n = wire.len - off;
            region_append(&g, wire.p + off, n);
            int rv = region_feed(&g, &in, &paused);
            cr_assert_geq(rv, 0, "round %d: error %s", round, gw_http_in_error(&in));
            off += n;
        }
        cm_buf_unref(g.b);
        struct cm_sbuf norm;
        cm_sbuf_init(&norm);
        normalise(rc.log.p ? rc.log.p : "", &norm);
        cr_assert_str_eq(norm.p, want.p, "round %d", round);
        cr_assert_eq(paused, nreq);
        cm_sbuf_free(&norm);
        gw_http_in_close(&in);
        cm_sbuf_free(&rc.log);
        cm_sbuf_free(&wire);
        cm_sbuf_free(&want);
    }
}

/* ---- limits and targets (connection layer) ---- */

static int feed_limited(const char *text, size_t max_head, size_t max_url, struct rec *r,
                        int *status)
{
    struct gw_http_in in;
    gw_http_in_init(&in, &rec_sink, r);
    gw_http_in_limits(&in, max_head, max_url);
    int rc = GW_HTTP_OK, paused = 0;
    struct region g = {0};
    for (size_t off = 0; off < strlen(text) && rc == GW_HTTP_OK; off += 3) {
        size_t n = strlen(text) - off < 3 ? strlen(text) - off : 3;
        region_append(&g, text + off, n);
        rc = region_feed(&g, &in, &paused);
    }
    cm_buf_unref(g.b);
    *status = gw_http_in_error_status(&in);
    gw_http_in_close(&in);
    return rc;
}

Test(http, head_and_target_limits)
{
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    struct rec r;
    int status;
    cm_sbuf_puts(&req, "GET /a HTTP/1.1\r\nHost: x\r\nX-Big: ");
    for (int i = 0; i < 2000; i++)
        cm_sbuf_puts(&req, "b");
    cm_sbuf_puts(&req, "\r\n\r\n");
    memset(&r, 0, sizeof(r));
    cm_sbuf_init(&r.log);
    cr_assert_eq(feed_limited(req.p, 1024, 512, &r, &status), GW_HTTP_ERROR);
    cr_assert_eq(status, 431);
    cr_assert_eq(r.heads, 0, "stopped before the head completed");
    cm_sbuf_free(&r.log);
    memset(&r, 0, sizeof(r));
    cm_sbuf_init(&r.log);
    cr_assert_geq(feed_limited(req.p, 4096, 512, &r, &status), 0, "fits a larger limit");
    cr_assert_eq(r.heads, 1);
    cm_sbuf_free(&r.log);

    cm_sbuf_reset(&req);
    cm_sbuf_puts(&req, "GET /");
    for (int i = 0; i < 600; i++)
        cm_sbuf_puts(&req, "u");
    cm_sbuf_puts(&req, " HTTP/1.1\r\n\r\n");
    memset(&r, 0, sizeof(r));
    cm_sbuf_init(&r.log);
    cr_assert_geq(feed_limited(req.p, 4096, 512, &r, &status), 0);
    cr_assert(r.last.url_overflow, "over max_url: flagged, the head completes (414 there)");
    cm_sbuf_free(&r.log);
    memset(&r, 0, sizeof(r));
    cm_sbuf_init(&r.log);
    cr_assert_eq(feed_limited(req.p, 300, 200, &r, &status), GW_HTTP_ERROR);
    cr_assert_eq(status, 414, "a target past the whole head limit is still a 414");
    cm_sbuf_free(&r.log);
    cm_sbuf_free(&req);
}

Test(http, query_bearer_and_log_target)
{
    const char *v;
    size_t n;
    cr_assert(gw_http_query_param("/a/b.ts?x=1&token=abc&y", "token", &v, &n));
    cr_assert_eq(n, 3);
    cr_assert_eq(strncmp(v, "abc", 3), 0);
    cr_assert_not(gw_http_query_param("/a/b.ts?xtoken=abc", "token", &v, &n));
    cr_assert_not(gw_http_query_param("/a/token=abc", "token", &v, &n));
    cr_assert(gw_http_query_param("/a?token=", "token", &v, &n) && n == 0);
    cr_assert(gw_http_bearer("Bearer  k3y ", &v, &n));
    cr_assert_eq(n, 3);
    cr_assert_eq(strncmp(v, "k3y", 3), 0);
    cr_assert(gw_http_bearer("bearer x", &v, &n));
    cr_assert_not(gw_http_bearer("Basic eA==", &v, &n));
    cr_assert_not(gw_http_bearer("Bearer", &v, &n));
    cr_assert_not(gw_http_bearer("Bearerx y", &v, &n));
    char out[64];
    gw_http_log_target("/a/b.ts?x=1&token=SECRET&y=2", out, sizeof(out));
    cr_assert_str_eq(out, "/a/b.ts?x=1&y=2");
    gw_http_log_target("/a?token=SECRET", out, sizeof(out));
    cr_assert_str_eq(out, "/a");
    gw_http_log_target("/a b\"c\n", out, sizeof(out));
    cr_assert_str_eq(out, "/a%20b%22c%0A");
    gw_http_log_target("/0123456789012345678901234567890123456789", out, 16);
    cr_assert_eq(strlen(out), 15);
    /* found by fuzz_query: a cut is a prefix, later short pieces are not glued on after it */
    gw_http_log_target("/abc?x=\xff\xff&token&yy", out, 12);
    cr_assert_str_eq(out, "/abc?x=%FF");
}

Test(http, connection_layer_headers)
{
    const char *text = "OPTIONS /a HTTP/1.1\r\nOrigin: https://p.example\r\n"
                       "Access-Control-Request-Method: PUT\r\n"
                       "Access-Control-Request-Headers: authorization\r\n"
                       "Authorization: Bearer xyz\r\n\r\n";
    struct rec r;
    memset(&r, 0, sizeof(r));
    cm_sbuf_init(&r.log);
    int paused;
    cr_assert_geq(feed_all(&r, text, strlen(text), 5, &paused), 0);
    cr_assert_str_eq(r.origin, "https://p.example");
    cr_assert_str_eq(r.acr_method, "PUT");
    cr_assert_str_eq(r.acr_headers, "authorization");
    cr_assert_str_eq(r.authorization, "Bearer xyz");
    cm_sbuf_free(&r.log);
}

/* ---- header token table ---- */

struct slices {
    const char *buf_start, *buf_end;
    int checked;
    int if_match_present, ttl_present;
    size_t if_match_len;
    int overflow;
    const char *range;
    size_t range_len;
};

static int s_head(void *arg, struct gw_http_req *req)
{
    struct slices *s = arg;
    size_t len;
    s->checked = 1;
    s->range = gw_http_header(req, GW_H_RANGE, &s->range_len);
    cr_assert(s->range == NULL ||
                  (s->range >= s->buf_start && s->range + s->range_len < s->buf_end),
              "the value is a slice of the fed buffer, not a copy");
    cr_assert(req->url.p >= s->buf_start && req->url.p < s->buf_end);
    s->if_match_present = gw_http_has_header(req, GW_H_IF_MATCH);
    gw_http_header(req, GW_H_IF_MATCH, &s->if_match_len);
    s->ttl_present = gw_http_has_header(req, GW_H_TTL);
    cr_assert_null(gw_http_header(req, GW_H_TTL, &len), "absent: NULL");
    cr_assert_eq(len, 0);
    cr_assert_str_eq(gw_http_header_str(req, GW_H_TTL), "");
    s->overflow = req->header_overflow;
    return 0;
}

static int s_body(void *arg, const struct cm_slice *piece)
{
    return 0;
}

static int s_end(void *arg)
{
    return 0;
}

static const struct gw_http_sink slice_sink = {s_head, s_body, s_end};

Test(http, header_values_are_slices_of_the_read_buffer)
{
    const char *text = "GET /a?x HTTP/1.1\r\nrAnGe:  bytes=0-9\r\nIf-Match:\r\n"
                       "X-Other: ignored\r\n\r\n";
    struct cm_buf *b = cm_buf_copy(text, strlen(text));
    struct slices s;
    memset(&s, 0, sizeof(s));
    s.buf_start = b->data;
    s.buf_end = b->data + b->len;
    struct gw_http_in in;
    gw_http_in_init(&in, &slice_sink, &s);
    size_t used;
    cr_assert_eq(gw_http_in_feed(&in, b, 0, b->len, &used), GW_HTTP_PAUSED);
    cr_assert(s.checked);
    cr_assert_eq(s.range_len, strlen("bytes=0-9"));
    cr_assert_eq(memcmp(s.range, "bytes=0-9", s.range_len), 0, "names match in any case");
    cr_assert(s.if_match_present, "present with an empty value");
    cr_assert_eq(s.if_match_len, 0);
    cr_assert_not(s.ttl_present);
    cr_assert_not(s.overflow);
    gw_http_in_close(&in);
    cm_buf_unref(b);
}

Test(http, long_value_of_a_used_header_overflows)
{
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    cm_sbuf_puts(&req, "GET /a HTTP/1.1\r\nRange: ");
    for (int i = 0; i < GW_HTTP_VALUE_MAX; i++)
        cm_sbuf_puts(&req, "1");
    cm_sbuf_puts(&req, "\r\n\r\n");
    struct cm_buf *b = cm_buf_copy(req.p, req.len);
    struct slices s;
    memset(&s, 0, sizeof(s));
    s.buf_start = b->data;
    s.buf_end = b->data + b->len;
    struct gw_http_in in;
    gw_http_in_init(&in, &slice_sink, &s);
    size_t used;
    cr_assert_eq(gw_http_in_feed(&in, b, 0, b->len, &used), GW_HTTP_PAUSED);
    cr_assert(s.overflow, "a value of GW_HTTP_VALUE_MAX bytes is too long (400 there)");
    gw_http_in_close(&in);
    cm_buf_unref(b);
    cm_sbuf_free(&req);
}

Test(http, folded_value_of_a_used_header_is_refused)
{
    struct rec r;
    memset(&r, 0, sizeof(r));
    cm_sbuf_init(&r.log);
    int paused;
    const char *folded = "GET /a HTTP/1.1\r\nRange: bytes=0-\r\n 9\r\n\r\n";
    cr_assert_eq(feed_all(&r, folded, strlen(folded), 1000, &paused), GW_HTTP_ERROR,
                 "not one slice: refused, not glued");
    cr_assert_eq(r.heads, 0);
    cm_sbuf_free(&r.log);
}

Test(http, head_not_kept_in_front_is_an_error_not_a_crash)
{
    struct rec r;
    memset(&r, 0, sizeof(r));
    cm_sbuf_init(&r.log);
    struct gw_http_in in;
    gw_http_in_init(&in, &rec_sink, &r);
    struct cm_buf *a = cm_buf_copy("GET /abc", 8);
    struct cm_buf *b = cm_buf_copy("def HTTP/1.1\r\n\r\n", 17);
    size_t used;
    cr_assert_eq(gw_http_in_feed(&in, a, 0, a->len, &used), GW_HTTP_OK);
    cr_assert_eq(gw_http_in_pinned(&in), 4, "the target so far is pinned");
    cr_assert_eq(gw_http_in_feed(&in, b, 0, b->len, &used), GW_HTTP_ERROR);
    cr_assert_eq(r.heads, 0);
    cm_buf_unref(a);
    cm_buf_unref(b);
    gw_http_in_close(&in);
    cm_sbuf_free(&r.log);
}

/* ---- strict framing (RFC 9112): what a lenient parser accepts and a proxy in front reads
 * differently is refused with 400 before any of it reaches the sink as a complete request ---- */

/* Feed in reads of `step` bytes into a region kept as the stream keeps it (a partial head
 * stays pinned and contiguous); returns the final rc, the error status when it failed, and why
 * the framer refused (never "the head was not kept in front": that would be the test's fault). */
static int feed_status_n(struct rec *r, const char *text, size_t len, size_t step, int *status)
{
    struct gw_http_in in;
    struct region g = {0};
    gw_http_in_init(&in, &rec_sink, r);
    int rc = GW_HTTP_OK, paused = 0;
    for (size_t off = 0; off < len && rc >= 0;) {
        size_t n = len - off < step ? len - off : step;
        region_append(&g, text + off, n);
        rc = region_feed(&g, &in, &paused);
        off += n;
    }
    *status = rc == GW_HTTP_ERROR ? gw_http_in_error_status(&in) : 0;
    if (rc == GW_HTTP_ERROR)
        cr_assert_str_neq(gw_http_in_error(&in), "HPE_OK", "refused for a reason: %s",
                          gw_http_in_error(&in));
    cm_buf_unref(g.b);
    gw_http_in_close(&in);
    return rc;
}

static int feed_status(struct rec *r, const char *text, size_t step, int *status)
{
    return feed_status_n(r, text, strlen(text), step, status);
}

#define TE "Transfer-Encoding: chunked\r\n\r\n"

Test(http, smuggling_framings_are_refused)
{
    const char *bad[] = {
        /* obs-fold in Transfer-Encoding, and anywhere in the head */
        "PUT /a HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        "GET /a HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n",
        "GET /a HTTP/1.1\r\nX-A: 1\r\n\t2\r\n\r\n",
        "GET /a HTTP/1.1\r\n Host: h\r\n\r\n",
        "GET /a HTTP/1.1\nX-A: 1\n 2\n\n",
        /* a bare CR after an empty value swallows the next byte and reveals a hidden TE */
        "PUT /a HTTP/1.1\r\nX-A:\rXTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "PUT /a HTTP/1.1\r\nX-A: \r Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /a HTTP/1.1\r\nX-A: a\rb\r\n\r\n",
        "GET /a HTTP/1.1\rX\r\n\r\n",
        "\rGET /a HTTP/1.1\r\n\r\n",
        "GET /a HTTP/1.1\r\nX-A: 1\r\n\r\r\n",
        /* whitespace between a field name and the colon (RFC 9112 5.1) */
        "PUT /a HTTP/1.1\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc",
        /* chunk-size lines: bare CR, bare LF, no CRLF after the data, overflow */
        "PUT /a HTTP/1.1\r\n" TE "5\rXhello\r\n0\r\n\r\n",
        "PUT /a HTTP/1.1\r\n" TE "5;a\rb\r\nhello\r\n0\r\n\r\n",
        "PUT /a HTTP/1.1\r\n" TE "5;a\nhello\r\n0\r\n\r\n",
        "PUT /a HTTP/1.1\r\n" TE "5\r\nhelloXX0\r\n\r\n",
        "PUT /a HTTP/1.1\r\n" TE "5\r\nhello\n0\r\n\r\n",
        "PUT /a HTTP/1.1\r\n" TE "10000000000000001\r\nx\r\n0\r\n\r\n",
        "PUT /a HTTP/1.1\r\n" TE "\r\n",
        "PUT /a HTTP/1.1\r\n" TE "5;\x01\r\nhello\r\n0\r\n\r\n",
        /* trailers: bare CR, obs-fold */
        "PUT /a HTTP/1.1\r\n" TE "1\r\nx\r\n0\r\nX-T: a\rb\r\n\r\n",
        "PUT /a HTTP/1.1\r\n" TE "1\r\nx\r\n0\r\nX-T: a\r\n b\r\n\r\n",
        /* CL + TE, duplicate Content-Length */
        "PUT /a HTTP/1.1\r\nContent-Length: 3\r\n" TE "0\r\n\r\n",
        "PUT /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    };
    size_t steps[] = {1, 2, 3, 7, 100000};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
            struct rec r;
            memset(&r, 0, sizeof(r));
            cm_sbuf_init(&r.log);
            int status;
            int rc = feed_status(&r, bad[i], steps[k], &status);
            cr_assert_eq(rc, GW_HTTP_ERROR, "case %zu step %zu accepted: %s", i, steps[k],
                         r.log.p ? r.log.p : "");
            cr_assert_eq(status, 400, "case %zu", i);
            cr_assert_eq(r.ends, 0, "case %zu step %zu completed a request", i, steps[k]);
            cr_assert_eq(r.last.chunked && !strstr(bad[i], "\r\n" TE), 0, "case %zu", i);
            cm_sbuf_free(&r.log);
        }
    }
}

Test(http, control_bytes_in_a_head_are_refused)
{
    /* NUL, SOH, ESC and DEL in a value, a name and the target (NUL cannot sit in a C string) */
    static const char nul[] = "GET /a HTTP/1.1\r\nX-A: a\0Transfer-Encoding: chunked\r\n\r\n";
    const char *bad[] = {"GET /a HTTP/1.1\r\nX-A: a\x01b\r\n\r\n",
                         "GET /a HTTP/1.1\r\nX-A: a\x1b[2J\r\n\r\n",
                         "GET /a HTTP/1.1\r\nX-A: a\x7f\r\n\r\n",
                         "GET /a HTTP/1.1\r\nX\x01A: b\r\n\r\n", "GET /a\x01 HTTP/1.1\r\n\r\n",
                         /* http_parser itself lets this one through when fed byte by byte */
                         "PUT /a HTTP/1.1\r\nTransfer-Encoding: chun\x01ked\r\n\r\n"};
    size_t steps[] = {1, 3, 100000};
    for (size_t i = 0; i <= sizeof(bad) / sizeof(bad[0]); i++) {
        const char *t = i < sizeof(bad) / sizeof(bad[0]) ? bad[i] : nul;
        size_t len = t == nul ? sizeof(nul) - 1 : strlen(t);
        for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
            struct rec r;
            memset(&r, 0, sizeof(r));
            cm_sbuf_init(&r.log);
            int status;
            cr_assert_eq(feed_status_n(&r, t, len, steps[k], &status), GW_HTTP_ERROR,
                         "case %zu step %zu accepted", i, steps[k]);
            cr_assert_eq(status, 400);
            cr_assert_eq(r.heads, 0, "case %zu: a head reached the sink", i);
            cm_sbuf_free(&r.log);
        }
    }
}

Test(http, strict_framing_keeps_what_is_legal)
{
    /* empty values, chunk extensions with BWS, trailers, blank lines between pipelined
     * requests, bare LF line ends in the head (RFC 9112 2.2 lets a recipient accept them) */
    check_all_fragmentations("PUT /a HTTP/1.1\r\nX-Empty:\r\nX-B: \t\r\n" TE
                             "3 ; name=\"v\"\r\nabc\r\n2;x\r\nde\r\n0\r\nX-T: 1\r\n\r\n"
                             "\r\nGET /b HTTP/1.1\nHost: h\n\n",
                             "H PUT /a v=1.1 ct= len=0/0 chunked=1 ka=1 expect=0\n"
                             "B abcde\nE\n"
                             "H GET /b v=1.1 ct= len=0/0 chunked=0 ka=1 expect=0\nE\n",
                             2);
}
