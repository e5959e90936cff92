#include <criterion/criterion.h>
#include <string.h>

#include "access/authkeys.h"
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
