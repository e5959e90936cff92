/* Process-wide gateway state: --cache-rules / --lifecycle validation and parsing, --cache-size 0
 * turning the cache off, the recent-writes table that sends reads to the leader, the table of
 * keys found not cacheable, and the read counters summed over every loop's metrics slot. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "options.h"
#include "object/cache.h"
#include "object/shared.h"

static void base(struct gw_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen = "127.0.0.1:1";
    cfg->admin_listen = "127.0.0.1:2";
    cfg->nodes = "127.0.0.1:3";
    cfg->threads = 1;
    cfg->max_object_size = 1;
    cfg->log_level = "info";
    cfg->insecure = 1;
}

/* Shared state with a 1 MiB cache (cfg: the caller's, it must outlive the state). */
static struct gw_shared *with_cache(struct gw_config *cfg)
{
    struct gw_shared *sh = NULL;
    char err[256];
    base(cfg);
    cfg->cache_size = 1 << 20;
    cr_assert_eq(gw_shared_new(cfg, &sh, err, sizeof(err)), 0, "%s", err);
    return sh;
}

Test(shared, validate_rules)
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

Test(shared, rules_and_the_cache_switch)
{
    struct gw_config cfg;
    struct gw_shared *sh = NULL;
    char err[256];
    base(&cfg);
    cfg.cache_rules = "/live/=max-age=2";
    cfg.lifecycle = "/live/=300";
    cfg.cache_size = 0;
    cr_assert_eq(gw_shared_new(&cfg, &sh, err, sizeof(err)), 0, "%s", err);
    cr_assert_null(gw_shared_cache(sh), "--cache-size 0: no cache");
    cr_assert_str_eq(gw_cache_control(gw_shared_cache_rules(sh), "/live/a.ts", ""), "max-age=2");
    cr_assert_eq(gw_lifecycle_ttl(gw_shared_lifecycle(sh), "/live/a.ts"), 300);
    gw_shared_note_write(sh, "/live/a.ts"); /* no cache: nothing to drop */
    gw_shared_unref(sh);
    cfg.cache_size = 1 << 20;
    cr_assert_eq(gw_shared_new(&cfg, &sh, err, sizeof(err)), 0, "%s", err);
    cr_assert_not_null(gw_shared_cache(sh));
    gw_shared_unref(sh);
}

Test(shared, bad_rules_name_the_option)
{
    struct gw_config cfg;
    struct gw_shared *sh = NULL;
    char err[256] = "";
    base(&cfg);
    cfg.lifecycle = "live=300";
    cr_assert_eq(gw_shared_new(&cfg, &sh, err, sizeof(err)), CM_EINVAL);
    cr_assert(strstr(err, "--lifecycle") != NULL, "%s", err);
    cr_assert_null(sh);
}

/* A key found too large or not cacheable is read directly for GW_UNCACHEABLE_MS, unless this
 * gateway writes it meanwhile (the new version may be cacheable). */
Test(shared, uncacheable_keys)
{
    struct gw_config cfg;
    struct gw_shared *sh = with_cache(&cfg);
    cr_assert(!gw_shared_uncacheable(sh, "/vod/big.mp4", 5000));
    gw_shared_note_uncacheable(sh, "/vod/big.mp4", 5000);
    cr_assert(gw_shared_uncacheable(sh, "/vod/big.mp4", 5000 + GW_UNCACHEABLE_MS - 1));
    cr_assert(!gw_shared_uncacheable(sh, "/vod/big.mp4", 5000 + GW_UNCACHEABLE_MS));
    cr_assert(!gw_shared_uncacheable(sh, "/vod/other.mp4", 5001));
    gw_shared_note_write(sh, "/vod/big.mp4");
    cr_assert(!gw_shared_uncacheable(sh, "/vod/big.mp4", 6001), "a write here forgets it");
    gw_shared_unref(sh);
}

/* /status "reads" sums every loop's counters; a write here drops the cached copy. */
Test(shared, reads_json_sums_loops_and_writes_invalidate)
{
    struct gw_config cfg;
    struct gw_shared *sh = with_cache(&cfg);
    struct gw_metrics *m1 = gw_shared_metrics(sh), *m2 = gw_shared_metrics(sh);
    cr_assert_neq(m1, m2);
    GW_METRIC_ADD(m1, cache_hits, 2);
    GW_METRIC_ADD(m2, cache_hits, 3);
    GW_METRIC_ADD(m1, cache_misses, 4);
    GW_METRIC_ADD(m2, coalesced, 3);
    GW_METRIC_ADD(m2, node_reads, 1);
    struct gw_cache *c = gw_shared_cache(sh);
    struct gw_cobj *o = gw_cobj_new("/a.ts", 1, 0, "video/mp2t", "", 0, 0);
    struct gw_cfill *f = NULL;
    struct gw_cwait w = {0};
    struct gw_cobj *hit = NULL;
    cr_assert_eq(gw_cache_get(c, "/a.ts", 10, 0, NULL, &w, &hit, &f), GW_CACHE_FILL);
    gw_cache_fill_end(c, f, o, UINT64_MAX, 10, GW_CWAIT_OBJ);
    gw_cobj_unref(o);
    struct cm_sbuf s;
    cm_sbuf_init(&s);
    gw_shared_reads_json(sh, &s);
    cr_assert(strstr(s.p, ",\"reads\":{\"cache_hits\":5,\"cache_misses\":4,\"coalesced\":3,"
                          "\"node_reads\":1,\"cache_bytes\":") == s.p,
              "%s", s.p);
    cr_assert(strstr(s.p, "\"cache_entries\":1,") != NULL, "%s", s.p);
    cm_sbuf_free(&s);
    gw_shared_note_write(sh, "/a.ts");
    cr_assert_eq(gw_cache_get(c, "/a.ts", 21, 0, NULL, NULL, &hit, NULL), GW_CACHE_MISS);
    gw_shared_unref(sh);
}
