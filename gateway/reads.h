/* Process-wide read state of a gateway, shared by every loop (thread): the hot-object cache,
 * the parsed --cache-rules and --lifecycle rules, read counters and the keys this gateway wrote
 * or deleted recently (read from the shard leader for a while, see get.c). Created by main.c
 * before any loop starts (gw_config.reads), freed after every loop ended. Rules are immutable
 * after creation; the cache, the counters and the recent-writes table are thread-safe. */
#ifndef GW_READS_H
#define GW_READS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "gwconfig.h"
#include "rules.h"

struct gw_cache;

struct gw_read_counters {
    uint64_t cache_hits;   /* answered from the cache without a node read */
    uint64_t cache_misses; /* needed a node read (own or coalesced) */
    uint64_t coalesced;    /* misses that waited for another request's node read */
    uint64_t node_reads;   /* GET/HEAD requests sent to nodes */
};

#define GW_RECENT_SLOTS 1024u
#define GW_RECENT_MS 3000u /* a key written/deleted here is read from the leader this long */

struct gw_reads {
    struct gw_rules cache_rules;
    struct gw_rules lifecycle;
    struct gw_cache *cache;    /* NULL with --cache-size 0 */
    struct gw_read_counters n; /* atomic: bump with gw_count */
    uv_mutex_t recent_mu;
    uint32_t recent_hash[GW_RECENT_SLOTS];
    uint64_t recent_ms[GW_RECENT_SLOTS];
};

int gw_reads_new(const struct gw_config *cfg, struct gw_reads **out, char *errmsg, size_t errlen);
void gw_reads_free(struct gw_reads *r);

static inline void gw_count(uint64_t *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}
/* Each counter read atomically. */
void gw_reads_counters(const struct gw_reads *r, struct gw_read_counters *out);

/* This gateway wrote or deleted key (now, monotonic ms). */
void gw_reads_note_write(struct gw_reads *r, const char *key, uint64_t now_ms);
/* Was key written or deleted here within GW_RECENT_MS? (May say yes for another key.) */
int gw_reads_recent_write(struct gw_reads *r, const char *key, uint64_t now_ms);

#endif
