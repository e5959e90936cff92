/* HTTP request framing without sockets: any fragmentation gives the same requests, pipelined
 * requests come out one at a time in order, chunked bodies arrive de-chunked, garbage fails. */
#include <criterion/criterion.h>
#include <string.h>

#include "buf.h"
#include "http/http.h"

struct rec {
    struct cm_sbuf log;
    int heads, ends;
    int zero_pieces;
    struct gw_http_req last;
};

static int r_head(void *arg, struct gw_http_req *req)
{
    struct rec *r = arg;
    r->heads++;
    cm_sbuf_printf(&r->log, "H %s %s v=1.%u ct=%s len=%d/%llu chunked=%d ka=%d expect=%d\n",
                   http_method_str((enum http_method)req->method), req->url.p ? req->url.p : "",
                   req->http_minor, req->content_type, req->has_length,
                   (unsigned long long)req->content_length, req->chunked, req->keep_alive,
                   req->expect_continue);
    r->last = *req;
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

/* Feed text in pieces of `step` bytes (each piece in its own buffer, like separate reads);
 * resume right away after each request. Returns the last feed result. */
static int feed_all(struct rec *r, const char *text, size_t len, size_t step, int *paused)
{
    struct gw_http_in in;
    gw_http_in_init(&in, &rec_sink, r);
    int rc = GW_HTTP_OK;
    *paused = 0;
    for (size_t off = 0; off < len && rc >= 0;) {
        size_t n = len - off < step ? len - off : step;
        struct cm_buf *b = cm_buf_copy(text + off, n);
        size_t pos = 0;
        while (pos < n) {
            size_t used;
            rc = gw_http_in_feed(&in, b, pos, n - pos, &used);
            pos += used;
            if (rc == GW_HTTP_PAUSED) {
                (*paused)++;
                gw_http_in_resume(&in);
                continue;
            }
            if (rc != GW_HTTP_OK)
                break;
        }
        cm_buf_unref(b);
        off += n;
    }
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
    cr_assert_str_eq(s.p, "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n");
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
        /* feed in random fragments, each its own buffer */
        struct rec rc;
        memset(&rc, 0, sizeof(rc));
        cm_sbuf_init(&rc.log);
        struct gw_http_in in;
        gw_http_in_init(&in, &rec_sink, &rc);
        int paused = 0;
        for (size_t off = 0; off < wire.len;) {
            size_t n = 1 + rnd(&st) % 300;
            if (n > wire.len - off)
                n = wire.len - off;
            struct cm_buf *b = cm_buf_copy(wire.p + off, n);
            for (size_t pos = 0; pos < n;) {
                size_t used;
                int rv = gw_http_in_feed(&in, b, pos, n - pos, &used);
                cr_assert_geq(rv, 0, "round %d: error %s", round, gw_http_in_error(&in));
                pos += used;
                if (rv == GW_HTTP_PAUSED) {
                    paused++;
                    gw_http_in_resume(&in);
                }
            }
            cm_buf_unref(b);
            off += n;
        }
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
    int rc = GW_HTTP_OK;
    for (size_t off = 0; off < strlen(text) && rc == GW_HTTP_OK; off += 3) {
        size_t n = strlen(text) - off < 3 ? strlen(text) - off : 3;
        struct cm_buf *b = cm_buf_copy(text + off, n);
        size_t used;
        rc = gw_http_in_feed(&in, b, 0, n, &used);
        cm_buf_unref(b);
    }
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
    cr_assert_str_eq(r.last.origin, "https://p.example");
    cr_assert_str_eq(r.last.acr_method, "PUT");
    cr_assert_str_eq(r.last.acr_headers, "authorization");
    cr_assert_str_eq(r.last.authorization, "Bearer xyz");
    cm_sbuf_free(&r.log);
}
