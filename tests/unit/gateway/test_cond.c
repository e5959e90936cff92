#include <criterion/criterion.h>
#include <string.h>

#include "http/cond.h"
#include "http/httpdate.h"

#define S(x) x, strlen(x)

Test(httpdate, roundtrip_and_obsolete_forms)
{
    char buf[GW_HTTPDATE_LEN];
    int64_t t;
    gw_httpdate_format(784111777, buf);
    cr_assert_str_eq(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    cr_assert_eq(gw_httpdate_parse(S("Sun, 06 Nov 1994 08:49:37 GMT"), &t), 0);
    cr_assert_eq(t, 784111777);
    cr_assert_eq(gw_httpdate_parse(S("Sunday, 06-Nov-94 08:49:37 GMT"), &t), 0);
    cr_assert_eq(t, 784111777);
    cr_assert_eq(gw_httpdate_parse(S("Sun Nov  6 08:49:37 1994"), &t), 0);
    cr_assert_eq(t, 784111777);
    cr_assert_eq(gw_httpdate_parse(S("yesterday"), &t), -1);
    cr_assert_eq(gw_httpdate_parse(S("Sun, 06 Foo 1994 08:49:37 GMT"), &t), -1);
    /* found by fuzz_httpdate: signs, spaces and impossible days used to pass */
    cr_assert_eq(gw_httpdate_parse(S("Sun, 06 Nov 1994 -1:49:37 GMT"), &t), -1);
    cr_assert_eq(gw_httpdate_parse(S("Mon, \r9 Feb 2016 12: 0:00 GMT"), &t), -1);
    cr_assert_eq(gw_httpdate_parse(S("Sun, +6 Nov 1994 08:49:37 GMT"), &t), -1);
    cr_assert_eq(gw_httpdate_parse(S("Mon, 31 Feb 2016 12:00:00 GMT"), &t), -1);
    cr_assert_eq(gw_httpdate_parse(S("Mon, 29 Feb 2016 12:00:00 GMT"), &t), 0);
    cr_assert_eq(gw_httpdate_parse(S("Sat, 31 Dec 2016 23:59:60 GMT"), &t), 0, "leap second");
}

Test(cond, rfc9110_order)
{
    struct gw_cond c;
    const char *etag = "\"2a\"";
    int64_t lm = 784111777;
    memset(&c, 0, sizeof(c));
    cr_assert_eq(gw_cond_eval(&c, 1, etag, lm), GW_COND_PROCEED);
    c.if_none_match = "\"2a\"";
    c.if_none_match_len = 4;
    cr_assert_eq(gw_cond_eval(&c, 1, etag, lm), GW_COND_NOT_MODIFIED);
    cr_assert_eq(gw_cond_eval(&c, 0, etag, lm), GW_COND_FAILED, "PUT If-None-Match matching");
    /* If-None-Match present: If-Modified-Since is ignored. */
    c.if_none_match = "\"zz\"";
    c.if_modified_since = "Sun, 06 Nov 1994 08:49:37 GMT";
    c.if_modified_since_len = strlen(c.if_modified_since);
    cr_assert_eq(gw_cond_eval(&c, 1, etag, lm), GW_COND_PROCEED);
    c.if_none_match = NULL;
    cr_assert_eq(gw_cond_eval(&c, 1, etag, lm), GW_COND_NOT_MODIFIED);
    cr_assert_eq(gw_cond_eval(&c, 1, etag, lm + 1), GW_COND_PROCEED);
    memset(&c, 0, sizeof(c));
    c.if_match = "\"nope\"";
    c.if_match_len = 6;
    cr_assert_eq(gw_cond_eval(&c, 1, etag, lm), GW_COND_FAILED);
    c.if_match = "*";
    c.if_match_len = 1;
    cr_assert_eq(gw_cond_eval(&c, 1, NULL, -1), GW_COND_FAILED, "If-Match: * on a missing object");
    memset(&c, 0, sizeof(c));
    c.if_unmodified_since = "Sun, 06 Nov 1994 08:49:36 GMT";
    c.if_unmodified_since_len = strlen(c.if_unmodified_since);
    cr_assert_eq(gw_cond_eval(&c, 1, etag, lm), GW_COND_FAILED);
}
