#include <criterion/criterion.h>
#include <string.h>

#include "err.h"
#include "object/rules.h"

Test(rules, longest_prefix_wins)
{
    struct gw_rules r;
    char err[128];
    gw_rules_init(&r);
    cr_assert_eq(gw_rules_parse(&r, "/live/=max-age=2,/live/ch1/=no-store", err, sizeof(err)), 0);
    cr_assert_str_eq(gw_rules_match(&r, "/live/ch1/a.ts"), "no-store");
    cr_assert_str_eq(gw_rules_match(&r, "/live/ch2/a.ts"), "max-age=2");
    cr_assert_null(gw_rules_match(&r, "/vod/a.ts"));
    cr_assert_eq(gw_rules_parse(&r, "live=1", err, sizeof(err)), CM_EINVAL);
    cr_assert_eq(gw_rules_parse(&r, "/live/=", err, sizeof(err)), CM_EINVAL);
    gw_rules_free(&r);
}

Test(rules, cache_control_defaults_by_kind)
{
    struct gw_rules r;
    char err[128];
    gw_rules_init(&r);
    cr_assert_str_eq(gw_cache_control(&r, "/l/index.m3u8", ""), "max-age=1");
    cr_assert_str_eq(gw_cache_control(&r, "/l/manifest.MPD", NULL), "max-age=1");
    cr_assert_str_eq(gw_cache_control(&r, "/l/seg1.m4s", ""), "max-age=31536000, immutable");
    cr_assert_str_eq(gw_cache_control(&r, "/l/init.mp4", ""), "max-age=31536000, immutable");
    cr_assert_str_eq(gw_cache_control(&r, "/l/seg1.m4s", "no-cache"), "no-cache", "object wins");
    cr_assert_eq(gw_rules_parse(&r, "/l/=max-age=5", err, sizeof(err)), 0);
    cr_assert_str_eq(gw_cache_control(&r, "/l/seg1.m4s", ""), "max-age=5", "prefix rule");
    gw_rules_free(&r);
}

Test(rules, lifecycle_ttl)
{
    struct gw_rules r;
    char err[128];
    gw_rules_init(&r);
    cr_assert_eq(gw_rules_parse(&r, "/live/=300,/live/x/=junk", err, sizeof(err)), 0);
    cr_assert_eq(gw_lifecycle_ttl(&r, "/live/a/seg.ts"), 300);
    cr_assert_eq(gw_lifecycle_ttl(&r, "/live/x/seg.ts"), 0, "a bad value means no TTL");
    cr_assert_eq(gw_lifecycle_ttl(&r, "/vod/seg.ts"), 0);
    gw_rules_free(&r);
}
