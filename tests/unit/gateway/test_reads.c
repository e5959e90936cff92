/* Process-wide read state: --cache-rules / --lifecycle validation and parsing, --cache-size 0
 * turning the cache off, and the recent-writes table that sends reads to the leader. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "gwconfig.h"
#include "reads.h"

static void base(struct gw_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen = "127.0.0.1:1";
    cfg->admin_listen = "127.0.0.1:2";
    cfg->nodes = "127.0.0.1:3";
    cfg->threads = 1;
    cfg->max_object_size = 1;
    cfg->log_level = "info";
}

Test(reads, validate_rules)
{
    struct gw_config cfg;
    char err[256];
    base(&cfg);
    cfg.cache_rules = "/live/=max-age=2,/vod/=max-age=600";
    cfg.lifecycle = "/live/=300";
    cr_assert_eq(gw_config_validate(&cfg, err, sizeof(err)), 0, "%s", err);
    base(&cfg);
    cfg.cache_rules = "live=max-age=2";
    cr_assert_eq(gw_config_validate(&cfg, err, sizeof(err)), CM_EINVAL);
    cr_assert(strstr(err, "--cache-rules") != NULL, "%s", err);
    base(&cfg);
    cfg.lifecycle = "/live/=soon";
    cr_assert_eq(gw_config_validate(&cfg, err, sizeof(err)), CM_EINVAL);
    cr_assert(strstr(err, "--lifecycle") != NULL, "%s", err);
    base(&cfg);
    cfg.lifecycle = "/live/=-5";
    cr_assert_eq(gw_config_validate(&cfg, err, sizeof(err)), CM_EINVAL);
}

Test(reads, new_and_recent_writes)
{
    struct gw_config cfg;
    struct gw_reads *r = NULL;
    char err[256];
    base(&cfg);
    cfg.cache_rules = "/live/=max-age=2";
    cfg.lifecycle = "/live/=300";
    cfg.cache_size = 0;
    cr_assert_eq(gw_reads_new(&cfg, &r, err, sizeof(err)), 0, "%s", err);
    cr_assert_null(r->cache, "--cache-size 0: no cache");
    cr_assert_str_eq(gw_cache_control(&r->cache_rules, "/live/a.ts", ""), "max-age=2");
    cr_assert_eq(gw_lifecycle_ttl(&r->lifecycle, "/live/a.ts"), 300);
    cr_assert(!gw_reads_recent_write(r, "/live/a.ts", 1000));
    gw_reads_note_write(r, "/live/a.ts", 1000);
    cr_assert(gw_reads_recent_write(r, "/live/a.ts", 1000 + GW_RECENT_MS - 1));
    cr_assert(!gw_reads_recent_write(r, "/live/a.ts", 1000 + GW_RECENT_MS));
    cr_assert(!gw_reads_recent_write(r, "/live/b.ts", 1001));
    gw_reads_free(r);
    cfg.cache_size = 1 << 20;
    cr_assert_eq(gw_reads_new(&cfg, &r, err, sizeof(err)), 0, "%s", err);
    cr_assert_not_null(r->cache);
    gw_reads_free(r);
}
