/* Listing JSON, query parameters and TTL parsing (pure helpers of list.c and put.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "object/list.h"
#include "object/put.h"
#include "test_req.h"

Test(list, query_param)
{
    char v[64];
    cr_assert_eq(gw_query_param("/a/?list", "list", v, sizeof(v)), 1);
    cr_assert_str_eq(v, "");
    cr_assert_eq(gw_query_param("/a/?list&cursor=%2Fa%2Fb.ts&limit=5", "cursor", v, sizeof(v)), 1);
    cr_assert_str_eq(v, "/a/b.ts");
    cr_assert_eq(gw_query_param("/a/?list&limit=5#frag", "limit", v, sizeof(v)), 1);
    cr_assert_str_eq(v, "5");
    cr_assert_eq(gw_query_param("/a/?listing=1", "list", v, sizeof(v)), 0);
    cr_assert_eq(gw_query_param("/a/b.ts", "list", v, sizeof(v)), 0);
    cr_assert_eq(gw_query_param("/a/?cursor=%zz", "cursor", v, sizeof(v)), -1);
    cr_assert_eq(gw_query_param("/a/?cursor=%00", "cursor", v, sizeof(v)), -1);
    cr_assert_eq(gw_query_param("/a/?cursor=%2", "cursor", v, sizeof(v)), -1);
    cr_assert_eq(gw_query_param("/a/?cursor=0123456789", "cursor", v, 5), -1, "too long");
}

Test(list, json)
{
    Hw__ObjectMeta a = HW__OBJECT_META__INIT, b = HW__OBJECT_META__INIT;
    a.key = (char *)"/l/a\"q.ts";
    a.size = 3;
    a.content_type = (char *)"video/mp2t";
    a.version = 0x1f;
    a.created_ms = 784111777000LL;
    b.key = (char *)"/l/b.ts";
    b.content_type = (char *)"";
    b.version = 2;
    Hw__ObjectMeta *objs[] = {&a, &b};
    struct cm_sbuf s;
    cm_sbuf_init(&s);
    gw_list_json(&s, "/l/", objs, 2, "/l/b.ts");
    cr_assert_str_eq(s.p, "{\"prefix\":\"/l/\",\"objects\":[{\"key\":\"/l/a\\\"q.ts\",\"size\":3,"
                          "\"content_type\":\"video/mp2t\",\"etag\":\"\\\"1f\\\"\","
                          "\"last_modified\":\"Sun, 06 Nov 1994 08:49:37 GMT\"},"
                          "{\"key\":\"/l/b.ts\",\"size\":0,\"content_type\":"
                          "\"application/octet-stream\",\"etag\":\"\\\"2\\\"\","
                          "\"last_modified\":\"Thu, 01 Jan 1970 00:00:00 GMT\"}],"
                          "\"next_cursor\":\"/l/b.ts\"}\n");
    cm_sbuf_reset(&s);
    gw_list_json(&s, "/e/", NULL, 0, "");
    cr_assert_str_eq(s.p, "{\"prefix\":\"/e/\",\"objects\":[],\"next_cursor\":null}\n");
    cm_sbuf_free(&s);
}

static int ttl_of(const char *url, const char *hdr, const struct gw_rules *rules, int64_t *ttl)
{
    const char *why = NULL;
    char text[1024];
    snprintf(text, sizeof(text), "PUT %s HTTP/1.1\r\n%s%s%s\r\n", url,
             hdr ? "X-Headwater-TTL: " : "", hdr ? hdr : "", hdr ? "\r\n" : "");
    struct gw_http_req r = gw_test_req_text(text);
    int rv = gw_put_ttl(&r, rules, "/live/a.ts", ttl, &why);
    cr_assert(rv == 0 || why != NULL);
    return rv;
}

Test(list, ttl_parsing)
{
    struct gw_rules rules;
    char err[64];
    int64_t ttl = -1;
    gw_rules_init(&rules);
    cr_assert_eq(gw_rules_parse(&rules, "/live/=300", err, sizeof(err)), 0);
    cr_assert_eq(ttl_of("/live/a.ts?ttl_seconds=5", NULL, &rules, &ttl), 0);
    cr_assert_eq(ttl, 5);
    cr_assert_eq(ttl_of("/live/a.ts?ttl_seconds=5", "7", &rules, &ttl), 0);
    cr_assert_eq(ttl, 5, "the query wins");
    cr_assert_eq(ttl_of("/live/a.ts", " 7 ", &rules, &ttl), 0);
    cr_assert_eq(ttl, 7);
    cr_assert_eq(ttl_of("/live/a.ts", NULL, &rules, &ttl), 0);
    cr_assert_eq(ttl, 300, "lifecycle rule");
    cr_assert_eq(ttl_of("/live/a.ts?ttl_seconds=0", NULL, &rules, &ttl), 0);
    cr_assert_eq(ttl, 0, "explicit 0: never expires");
    cr_assert_eq(ttl_of("/live/a.ts", NULL, NULL, &ttl), 0);
    cr_assert_eq(ttl, 0);
    cr_assert_eq(ttl_of("/live/a.ts?ttl_seconds=-1", NULL, &rules, &ttl), -1);
    cr_assert_eq(ttl_of("/live/a.ts?ttl_seconds=", NULL, &rules, &ttl), -1);
    cr_assert_eq(ttl_of("/live/a.ts?ttl_seconds=1e3", NULL, &rules, &ttl), -1);
    cr_assert_eq(ttl_of("/live/a.ts", "abc", &rules, &ttl), -1);
    cr_assert_eq(ttl_of("/live/a.ts", "", &rules, &ttl), -1);
    cr_assert_eq(ttl_of("/live/a.ts", "315360001", &rules, &ttl), -1);
    cr_assert_eq(ttl_of("/live/a.ts", "99999999999999999999999", &rules, &ttl), -1);
    gw_rules_free(&rules);
}
