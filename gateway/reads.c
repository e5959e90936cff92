#include "reads.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "cache.h"
#include "crc32c.h"
#include "err.h"

int gw_reads_new(const struct gw_config *cfg, struct gw_reads **out, char *errmsg, size_t errlen)
{
    char err[256] = "";
    struct gw_reads *r = cm_calloc(1, sizeof(*r));
    if (r == NULL)
        return CM_ENOMEM;
    gw_rules_init(&r->cache_rules);
    gw_rules_init(&r->lifecycle);
    int rv =
        gw_rules_parse(&r->cache_rules, cfg->cache_rules ? cfg->cache_rules : "", err, sizeof(err));
    if (rv != 0) {
        snprintf(errmsg, errlen, "--cache-rules: %s", err);
        goto err_free;
    }
    rv = gw_rules_parse(&r->lifecycle, cfg->lifecycle ? cfg->lifecycle : "", err, sizeof(err));
    if (rv != 0) {
        snprintf(errmsg, errlen, "--lifecycle: %s", err);
        goto err_free;
    }
    if (cfg->cache_size > 0) {
        rv = gw_cache_new(cfg->cache_size, &r->cache);
        if (rv != 0) {
            snprintf(errmsg, errlen, "cache: %s", cm_strerror(rv));
            goto err_free;
        }
    }
    if (uv_mutex_init(&r->recent_mu) != 0) {
        rv = CM_EIO;
        snprintf(errmsg, errlen, "cannot create a mutex");
        goto err_after_cache;
    }
    *out = r;
    return 0;

err_after_cache:
    gw_cache_free(r->cache);
err_free:
    gw_rules_free(&r->cache_rules);
    gw_rules_free(&r->lifecycle);
    cm_free(r);
    return rv;
}

void gw_reads_free(struct gw_reads *r)
{
    if (r == NULL)
        return;
    gw_cache_free(r->cache);
    gw_rules_free(&r->cache_rules);
    gw_rules_free(&r->lifecycle);
    uv_mutex_destroy(&r->recent_mu);
    cm_free(r);
}

void gw_reads_counters(const struct gw_reads *r, struct gw_read_counters *out)
{
    out->cache_hits = __atomic_load_n(&r->n.cache_hits, __ATOMIC_RELAXED);
    out->cache_misses = __atomic_load_n(&r->n.cache_misses, __ATOMIC_RELAXED);
    out->coalesced = __atomic_load_n(&r->n.coalesced, __ATOMIC_RELAXED);
    out->node_reads = __atomic_load_n(&r->n.node_reads, __ATOMIC_RELAXED);
}

void gw_reads_note_write(struct gw_reads *r, const char *key, uint64_t now_ms)
{
    uint32_t h = cm_crc32c(0, key, strlen(key));
    uv_mutex_lock(&r->recent_mu);
    r->recent_hash[h % GW_RECENT_SLOTS] = h;
    r->recent_ms[h % GW_RECENT_SLOTS] = now_ms;
    uv_mutex_unlock(&r->recent_mu);
}

int gw_reads_recent_write(struct gw_reads *r, const char *key, uint64_t now_ms)
{
    uint32_t h = cm_crc32c(0, key, strlen(key));
    uv_mutex_lock(&r->recent_mu);
    int recent = r->recent_ms[h % GW_RECENT_SLOTS] != 0 &&
                 r->recent_hash[h % GW_RECENT_SLOTS] == h &&
                 now_ms < r->recent_ms[h % GW_RECENT_SLOTS] + GW_RECENT_MS;
    uv_mutex_unlock(&r->recent_mu);
    return recent;
}
