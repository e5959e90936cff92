#include <criterion/criterion.h>
#include <string.h>

#include "err.h"
#include "shard/commit_check.h"

static const uint32_t members[] = {1, 2, 3};
static uint8_t upload[16] = {1};

static void good(Hw__Commit *c, uint32_t *holders)
{
    hw__commit__init(c);
    c->key = "/live/a.ts";
    c->upload_id.data = upload;
    c->upload_id.len = sizeof(upload);
    c->size = 100;
    c->content_type = "video/mp2t";
    c->cache_control = "max-age=2";
    holders[0] = 1;
    holders[1] = 2;
    holders[2] = 3;
    c->holders = holders;
    c->n_holders = 3;
}

static void expect_refused(const Hw__Commit *c, const char *what)
{
    char why[160] = "";
    cr_assert_eq(nd_commit_check(c, members, 3, 3, why, sizeof(why)), CM_EINVAL, "%s accepted",
                 what);
    cr_assert_neq(why[0], '\0', "%s: no reason given", what);
}

Test(commit_check, a_gateway_commit_passes)
{
    Hw__Commit c;
    uint32_t h[8];
    char why[160] = "";
    good(&c, h);
    cr_assert_eq(nd_commit_check(&c, members, 3, 3, why, sizeof(why)), 0, "%s", why);
    c.n_holders = 2; /* a quorum of 3 */
    c.ttl_seconds = 3600;
    c.cache_control = "";
    cr_assert_eq(nd_commit_check(&c, members, 3, 3, why, sizeof(why)), 0, "%s", why);
    c.key = "/caf\xc3\xa9/x"; /* UTF-8 keys are fine */
    cr_assert_eq(nd_commit_check(&c, members, 3, 3, why, sizeof(why)), 0, "%s", why);
}

Test(commit_check, holders_must_be_few_distinct_members_and_a_quorum)
{
    Hw__Commit c;
    uint32_t h[40];
    good(&c, h);
    h[2] = 99;
    expect_refused(&c, "a holder that is not a member");
    h[2] = 1;
    expect_refused(&c, "a holder listed twice");
    c.n_holders = 1;
    expect_refused(&c, "one holder of three replicas");
    c.n_holders = 0;
    expect_refused(&c, "no holders");
    for (int i = 0; i < 40; i++)
        h[i] = 1 + (uint32_t)i % 3;
    c.n_holders = 40;
    expect_refused(&c, "40 holders");
    expect_refused(NULL, "no commit body");
}

Test(commit_check, text_fields_are_bounded_and_printable)
{
    Hw__Commit c;
    uint32_t h[3];
    char long_text[2048];
    good(&c, h);
    c.content_type = "text/html\r\nSet-Cookie: x=1";
    expect_refused(&c, "a content type with CRLF");
    c.content_type = "video/mp2t\x7f";
    expect_refused(&c, "a content type with DEL");
    c.content_type = "text/plain;\tq=1";
    char why[160] = "";
    cr_assert_eq(nd_commit_check(&c, members, 3, 3, why, sizeof(why)), 0,
                 "HTAB is a field-value byte: %s", why);
    memset(long_text, 'a', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    c.content_type = long_text;
    expect_refused(&c, "a 2 KiB content type");
    good(&c, h);
    c.cache_control = "max-age=1\nX: y";
    expect_refused(&c, "a cache control with LF");
    c.cache_control = long_text;
    expect_refused(&c, "a 2 KiB cache control");
}

Test(commit_check, key_ttl_size_and_upload_id)
{
    Hw__Commit c;
    uint32_t h[3];
    char long_key[1100];
    good(&c, h);
    c.key = "no-slash";
    expect_refused(&c, "a key without '/'");
    c.key = "/a\tb";
    expect_refused(&c, "a key with a tab");
    c.key = "";
    expect_refused(&c, "an empty key");
    long_key[0] = '/';
    memset(long_key + 1, 'k', sizeof(long_key) - 2);
    long_key[sizeof(long_key) - 1] = '\0';
    c.key = long_key;
    expect_refused(&c, "a 1100-byte key");
    good(&c, h);
    c.ttl_seconds = -1;
    expect_refused(&c, "a negative TTL");
    c.ttl_seconds = INT64_MAX;
    expect_refused(&c, "a TTL that overflows expires_ms");
    good(&c, h);
    c.size = UINT64_MAX;
    expect_refused(&c, "an absurd size");
    good(&c, h);
    c.upload_id.len = 3;
    expect_refused(&c, "a 3-byte upload id");
    cr_assert(nd_commit_key_ok("/a/b"));
    cr_assert_not(nd_commit_key_ok(NULL));
}
