/* GET/HEAD answers from metadata: Range -> 206/416/200, conditionals -> 304/412 in RFC 9110's
 * order, If-Range, and the header lines (Cache-Control by kind/rule/object, Expires with a TTL,
 * Accept-Ranges, no Content-Length on a 304). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "object/objresp.h"
#include "test_req.h"

static struct gw_objinfo info(const char *key, uint64_t size)
{
    struct gw_objinfo o = {key, size, 0x2a, "video/mp4", "", 784111777000LL, 0, NULL, NULL};
    return o;
}

/* A request parsed from its head (the header values point into a static buffer). */
static struct gw_http_req req_with(const char *range, const char *if_range)
{
    return gw_test_req(range[0] ? "Range" : NULL, range, if_range[0] ? "If-Range" : NULL, if_range);
}

Test(objresp, ranges)
{
    struct gw_objinfo o = info("/a/s.m4s", 1000);
    struct gw_objresp p;
    struct gw_http_req r = req_with("bytes=10-19", "");
    gw_objresp_plan(&r, 0, &o, &p);
    cr_assert_eq(p.status, 206);
    cr_assert_eq(p.first, 10);
    cr_assert_eq(p.length, 10);
    r = req_with("bytes=-5000", "");
    gw_objresp_plan(&r, 0, &o, &p);
    cr_assert_eq(p.status, 206);
    cr_assert_eq(p.first, 0);
    cr_assert_eq(p.length, 1000);
    r = req_with("bytes=1000-", "");
    gw_objresp_plan(&r, 0, &o, &p);
    cr_assert_eq(p.status, 416);
    r = req_with("bytes=0-1,4-5", "");
    gw_objresp_plan(&r, 0, &o, &p);
    cr_assert_eq(p.status, 200);
    cr_assert_eq(p.length, 1000);
    r = req_with("bytes=10-19", "");
    gw_objresp_plan(&r, 1, &o, &p);
    cr_assert_eq(p.status, 200, "HEAD ignores Range");
    r = req_with("bytes=10-19", "\"2a\"");
    gw_objresp_plan(&r, 0, &o, &p);
    cr_assert_eq(p.status, 206, "If-Range with the current ETag");
    r = req_with("bytes=10-19", "\"2b\"");
    gw_objresp_plan(&r, 0, &o, &p);
    cr_assert_eq(p.status, 200, "If-Range with another ETag: whole object");
    r = req_with("bytes=10-19", "Sun, 06 Nov 1994 08:49:37 GMT");
    gw_objresp_plan(&r, 0, &o, &p);
    cr_assert_eq(p.status, 206, "If-Range with Last-Modified");
    struct gw_objinfo e = info("/a/e.ts", 0);
    r = req_with("bytes=0-", "");
    gw_objresp_plan(&r, 0, &e, &p);
    cr_assert_eq(p.status, 416);
}

Test(objresp, conditionals)
{
    struct gw_objinfo o = info("/a/s.m4s", 10);
    struct gw_objresp p;
    struct gw_http_req r = gw_test_req("Range", "bytes=0-1", "If-None-Match", "W/\"2a\"");
    gw_objresp_plan(&r, 0, &o, &p);
    cr_assert_eq(p.status, 304, "304 wins over Range");
    r = gw_test_req("If-Match", "\"1\"", NULL, NULL);
    gw_objresp_plan(&r, 0, &o, &p);
    cr_assert_eq(p.status, 412);
    r = gw_test_req("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT", NULL, NULL);
    gw_objresp_plan(&r, 1, &o, &p);
    cr_assert_eq(p.status, 304);
}

Test(objresp, headers)
{
    struct gw_rules rules;
    char err[64];
    gw_rules_init(&rules);
    cr_assert_eq(gw_rules_parse(&rules, "/live/=max-age=2", err, sizeof(err)), 0);
    struct gw_objinfo o = info("/live/s.m4s", 100);
    o.expires_ms = 784111777000LL + 60000;
    struct gw_objresp p = {206, 10, 19, 10};
    struct cm_sbuf h;
    cm_sbuf_init(&h);
    gw_objresp_headers(&p, &o, &rules, &h);
    cr_assert_str_eq(h.p,
                     "Content-Type: video/mp4\r\nContent-Length: 10\r\nAccept-Ranges: bytes\r\n"
                     "Content-Range: bytes 10-19/100\r\nETag: \"2a\"\r\n"
                     "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                     "Cache-Control: max-age=2\r\n"
                     "Expires: Sun, 06 Nov 1994 08:50:37 GMT\r\n");
    cm_sbuf_reset(&h);
    struct gw_objinfo pl = info("/vod/index.m3u8", 5);
    pl.cache_control = "";
    struct gw_objresp nm = {304, 0, 0, 0};
    gw_objresp_headers(&nm, &pl, &rules, &h);
    cr_assert_str_eq(h.p, "ETag: \"2a\"\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                          "Cache-Control: max-age=1\r\n");
    cm_sbuf_reset(&h);
    struct gw_objresp bad = {416, 0, 0, 0};
    gw_objresp_headers(&bad, &pl, NULL, &h);
    cr_assert_str_eq(h.p, "Content-Range: bytes */5\r\nAccept-Ranges: bytes\r\n");
    cm_sbuf_free(&h);
    gw_rules_free(&rules);
}

Test(objresp, immutable_kinds)
{
    cr_assert(gw_key_immutable_kind("/l/seg_1.ts"));
    cr_assert(gw_key_immutable_kind("/l/seg_1.M4S"));
    cr_assert(gw_key_immutable_kind("/l/init.mp4"));
    cr_assert(gw_key_immutable_kind("/l/init-stream0"));
    cr_assert(gw_key_immutable_kind("/l/a.key"));
    cr_assert(!gw_key_immutable_kind("/l/index.m3u8"));
    cr_assert(!gw_key_immutable_kind("/l/manifest.mpd"));
    cr_assert(!gw_key_immutable_kind("/l/notes.txt"));
}

/* Issue 8 §5: stored metadata never becomes header text with a control byte in it. */
Test(objresp, stored_values_with_control_bytes_are_not_emitted)
{
    struct gw_objinfo o = info("/live/s.m4s", 3);
    o.content_type = "text/html\r\nSet-Cookie: a=b";
    o.cache_control = "max-age=5\r\nSet-Cookie: c=d";
    struct gw_objresp p = {200, 0, 2, 3};
    struct cm_sbuf h;
    cm_sbuf_init(&h);
    int bad = gw_objresp_headers(&p, &o, NULL, &h);
    cr_assert_str_eq(h.p, "Content-Type: application/octet-stream\r\nContent-Length: 3\r\n"
                          "Accept-Ranges: bytes\r\nETag: \"2a\"\r\n"
                          "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                          "Cache-Control: max-age=31536000, immutable\r\n");
    cr_assert_eq(bad, GW_OBJRESP_BAD_CTYPE | GW_OBJRESP_BAD_CC);
    cm_sbuf_reset(&h);
    o.content_type = "text/plain\x01";
    o.cache_control = "no-cache\x7f";
    bad = gw_objresp_headers(&p, &o, NULL, &h);
    cr_assert(strstr(h.p, "\x01") == NULL && strstr(h.p, "\x7f") == NULL, "%s", h.p);
    cr_assert_eq(bad, GW_OBJRESP_BAD_CTYPE | GW_OBJRESP_BAD_CC);
    cm_sbuf_reset(&h);
    o.content_type = "text/plain;\tcharset=utf-8"; /* HTAB is allowed in a field value */
    o.cache_control = "max-age=5";
    cr_assert_eq(gw_objresp_headers(&p, &o, NULL, &h), 0);
    cr_assert(strstr(h.p, "Content-Type: text/plain;\tcharset=utf-8\r\n") != NULL, "%s", h.p);
    cr_assert(strstr(h.p, "Cache-Control: max-age=5\r\n") != NULL, "%s", h.p);
    for (const char *p2 = h.p; *p2; p2++) {
        if (*p2 == '\r')
            cr_assert_eq(p2[1], '\n');
        else if (*p2 == '\n')
            cr_assert_eq(p2[-1], '\r');
    }
    cm_sbuf_free(&h);
    cr_assert(gw_field_value_ok("text/plain; charset=\"x\""));
    cr_assert(!gw_field_value_ok("a\nb"));
    cr_assert(!gw_field_value_ok("a\rb"));
    cr_assert(!gw_field_value_ok("\x1b[31m"));
}
