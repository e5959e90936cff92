#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "access/authkeys.h"
#include "access/authz.h"
#include "test_req.h"
#include "err.h"

static const char *FILE_TEXT = "# keys\n"
                               "write /live/ 7f3cwrite\n"
                               "read /private/ readkey   # a reader\n"
                               "admin / adminkey\r\n"
                               "\n"
                               "private /private/\n";

#define T(s) s, strlen(s)

Test(authkeys, scopes_and_prefixes)
{
    struct gw_keys *k;
    char err[256];
    cr_assert_eq(gw_keys_parse(FILE_TEXT, strlen(FILE_TEXT), &k, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_keys_count(k), 3);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_WRITE, "/live/a.ts", NULL, 0), GW_AUTH_MISSING);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_WRITE, "/live/a.ts", T("7f3cwrite")), GW_AUTH_OK);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_WRITE, "/vod/a.ts", T("7f3cwrite")), GW_AUTH_FORBIDDEN,
                 "wrong prefix");
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_WRITE, "/private/a.ts", T("readkey")),
                 GW_AUTH_FORBIDDEN, "read scope cannot write");
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_READ, "/live/a.ts", NULL, 0), GW_AUTH_OK, "open");
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_READ, "/private/a.ts", NULL, 0), GW_AUTH_MISSING);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_READ, "/private/a.ts", T("readkey")), GW_AUTH_OK);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_READ, "/private/a.ts", T("7f3cwrite")),
                 GW_AUTH_FORBIDDEN, "write key for another prefix");
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_ADMIN, "/status", T("adminkey")), GW_AUTH_OK);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_ADMIN, "/status", T("7f3cwrite")), GW_AUTH_FORBIDDEN);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_WRITE, "/live/a.ts", T("7f3cwrit")), GW_AUTH_FORBIDDEN);
    gw_keys_free(k);
    cr_assert_eq(gw_keys_check(NULL, GW_ACCESS_WRITE, "/x", NULL, 0), GW_AUTH_OK, "no keys file");
}

Test(authkeys, errors_name_the_line_not_the_key)
{
    struct gw_keys *k;
    char err[256];
    const char *bad = "write /live/ secretvalue\nwrite live/ othersecret\n";
    cr_assert_eq(gw_keys_parse(bad, strlen(bad), &k, err, sizeof(err)), CM_EINVAL);
    cr_assert(strstr(err, "line 2") != NULL, "%s", err);
    cr_assert(strstr(err, "secret") == NULL);
    const char *bad2 = "superuser / k\n";
    cr_assert_eq(gw_keys_parse(bad2, strlen(bad2), &k, err, sizeof(err)), CM_EINVAL);
    cr_assert_eq(gw_keys_load("/nonexistent/keys", &k, err, sizeof(err)), CM_EIO);
}

/* Issue 8 §5: a prefix is a path, not a string: "/live" covers "/live" and "/live/...", never
 * "/livex" or "/live2/..."; a trailing slash in the file changes nothing about that. */
Test(authkeys, prefixes_match_whole_path_segments)
{
    static const char *text = "write /live K1\n"
                              "write /vod/ K2\n"
                              "private /secret/\n"
                              "read /secret K3\n"
                              "write / K4\n";
    struct gw_keys *k;
    char err[256];
    cr_assert_eq(gw_keys_parse(text, strlen(text), &k, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_WRITE, "/live", T("K1")), GW_AUTH_OK);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_WRITE, "/live/a.ts", T("K1")), GW_AUTH_OK);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_WRITE, "/live/x/y/a.ts", T("K1")), GW_AUTH_OK);
    static const char *outside[] = {"/livex/a.ts", "/live2/a.ts", "/liveadmin/a",    "/livex",
                                    "/liv",        "/",           "/other/live/a.ts"};
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++)
        cr_assert_eq(gw_keys_check(k, GW_ACCESS_WRITE, outside[i], T("K1")), GW_AUTH_FORBIDDEN,
                     "write /live must not cover %s", outside[i]);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_WRITE, "/vod/a.ts", T("K2")), GW_AUTH_OK);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_WRITE, "/vod", T("K2")), GW_AUTH_OK);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_WRITE, "/vodx/a.ts", T("K2")), GW_AUTH_FORBIDDEN);
    /* private /secret/ makes /secret and everything under it private, not /secrets */
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_READ, "/secret", NULL, 0), GW_AUTH_MISSING);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_READ, "/secret/a.ts", NULL, 0), GW_AUTH_MISSING);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_READ, "/secrets/a.ts", NULL, 0), GW_AUTH_OK);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_READ, "/secret/a.ts", T("K3")), GW_AUTH_OK);
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_READ, "/secret/a.ts", T("K1")), GW_AUTH_FORBIDDEN);
    /* "/" is the whole key space */
    cr_assert_eq(gw_keys_check(k, GW_ACCESS_WRITE, "/anything/at/all", T("K4")), GW_AUTH_OK);
    gw_keys_free(k);
}

/* Write keys are refused in ?token= (URLs end up in logs, caches and Referer headers). */
Test(authkeys, write_keys_are_known_as_such)
{
    static const char *text = "write /live K1\nread /p K3\nprivate /p\nadmin / K5\n";
    struct gw_keys *k;
    char err[256];
    cr_assert_eq(gw_keys_parse(text, strlen(text), &k, err, sizeof(err)), 0, "%s", err);
    cr_assert(gw_keys_is_write(k, T("K1")));
    cr_assert(!gw_keys_is_write(k, T("K3")));
    cr_assert(!gw_keys_is_write(k, T("K5")));
    cr_assert(!gw_keys_is_write(k, T("nope")));
    cr_assert(!gw_keys_is_write(k, NULL, 0));
    cr_assert(!gw_keys_is_write(NULL, T("K1")));
    gw_keys_free(k);
}

/* The decision for ?token=: a write key there is refused whatever the request needs. */
Test(authkeys, write_key_in_the_query_is_refused)
{
    static const char *text = "write /live K1\nread /p K3\nprivate /p\nwrite /p K4\n";
    struct gw_keys *k;
    char err[256];
    cr_assert_eq(gw_keys_parse(text, strlen(text), &k, err, sizeof(err)), 0, "%s", err);
    struct gw_authz_token hdr = {"K1", 2, 0}, query = {"K1", 2, 1};
    cr_assert_eq(gw_authz_check(k, GW_ACCESS_WRITE, "/live/a.ts", &hdr), GW_AUTH_OK);
    cr_assert_eq(gw_authz_check(k, GW_ACCESS_WRITE, "/live/a.ts", &query), GW_AUTH_FORBIDDEN);
    cr_assert_eq(gw_authz_check(k, GW_ACCESS_READ, "/live/a.ts", &query), GW_AUTH_FORBIDDEN,
                 "a write key in a URL is refused for reads as well");
    struct gw_authz_token rq = {"K3", 2, 1}, wq = {"K4", 2, 1}, wh = {"K4", 2, 0};
    cr_assert_eq(gw_authz_check(k, GW_ACCESS_READ, "/p/a.ts", &rq), GW_AUTH_OK);
    cr_assert_eq(gw_authz_check(k, GW_ACCESS_READ, "/p/a.ts", &wq), GW_AUTH_FORBIDDEN);
    cr_assert_eq(gw_authz_check(k, GW_ACCESS_READ, "/p/a.ts", &wh), GW_AUTH_OK);
    gw_keys_free(k);

    struct gw_http_req req = gw_test_req_text("GET /live/a.ts?x=1&token=K1 HTTP/1.1\r\n\r\n");
    struct gw_authz_token t;
    gw_authz_token(&req, &t);
    cr_assert(t.from_query && t.len == 2 && memcmp(t.p, "K1", 2) == 0);
    req = gw_test_req_text(
        "GET /live/a.ts?x=1&token=K1 HTTP/1.1\r\nAuthorization: Bearer K9\r\n\r\n");
    gw_authz_token(&req, &t);
    cr_assert(!t.from_query && t.len == 2 && memcmp(t.p, "K9", 2) == 0, "the header wins");
}
