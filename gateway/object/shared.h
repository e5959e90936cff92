/* Process-wide state of one gateway, shared by every event loop (thread) and refcounted. The
 * config itself stays a separate immutable struct; this is what is built from it once and then
 * used by every loop:
 *
 *   connections  TLS context, access keys snapshot (swapped on SIGHUP), CORS rules, open
 *                connection count, one metrics slot per loop (also the read counters: cache
 *                hits / misses / coalesced waits / node reads)
 *   reads/writes hot-object cache (cache.h; NULL with --cache-size 0), parsed --cache-rules and
 *                --lifecycle, keys lately found too large or not cacheable (read directly,
 *                not coalesced, for GW_UNCACHEABLE_MS), the read lease and commit-watch
 *                position (cluster/watch.h)
 *
 * main.c makes one for all loops before any starts; gw_ctx_start makes a private one. Rules, TLS
 * context and CORS rules are immutable after creation; keys, counters, the cache and the key
 * tables are thread-safe. Freed with its last ref (servers hold refs until they are freed). */
#ifndef GW_SHARED_H
#define GW_SHARED_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "access/authkeys.h"
#include "auth.h"
#include "buf.h"
#include "http/budget.h"
#include "http/cors.h"
#include "core/gwconfig.h"
#include "cluster/watch.h"
#include "core/metrics.h"
#include "object/rules.h"
#include "http/tls.h"

#define GW_UNCACHEABLE_MS 10000u /* a key found not cacheable is read directly this long */

struct gw_shared;
struct gw_cache;
struct gw_wake_bus;

/* An immutable keys snapshot, refcounted across threads (NULL keys = no keys file). */
struct gw_keyset {
    atomic_ulong refs;
    struct gw_keys *keys; /* owned */
};

/* Parses the rules, creates the cache, loads the TLS certificate and the keys file named in cfg
 * (borrowed; must outlive it). errmsg names the failing option. */
int gw_shared_new(const struct gw_config *cfg, struct gw_shared **out, char *errmsg, size_t errlen);
struct gw_shared *gw_shared_ref(struct gw_shared *sh);
void gw_shared_unref(struct gw_shared *sh);

/* ---- connections ---- */

struct gw_tls_ctx *gw_shared_tls(struct gw_shared *sh); /* NULL without --tls-listen */
const struct gw_cors *gw_shared_cors(const struct gw_shared *sh);
atomic_uint_fast64_t *gw_shared_open_conns(struct gw_shared *sh);
/* --cors-write-origins: who may write cross-origin (cors.h gw_cors_write_ok). */
const struct gw_cors *gw_shared_cors_write(const struct gw_shared *sh);
/* The admin listener's settings: cfg with max_connections = --admin-max-connections (the same
 * header / idle timeouts), and its own open-connection counter. */
const struct gw_config *gw_shared_admin_cfg(const struct gw_shared *sh);
atomic_uint_fast64_t *gw_shared_admin_conns(struct gw_shared *sh);
/* --max-buffered-bytes: every loop's connections charge it. */
struct gw_budget *gw_shared_budget(struct gw_shared *sh);
/* A metrics struct of its own for one loop (never NULL: past the slots, loops share the last). */
struct gw_metrics *gw_shared_metrics(struct gw_shared *sh);
/* The cluster secret for node connections and their refusal counters (thread-safe). */
struct cm_auth *gw_shared_auth(struct gw_shared *sh);
/* /metrics: every loop's counters summed. */
void gw_shared_metrics_render(struct gw_shared *sh, struct cm_sbuf *out);
/* The /status "reads" member (`,"reads":{...}`): read counters of every loop, cache figures. */
void gw_shared_reads_json(struct gw_shared *sh, struct cm_sbuf *out);

/* Keys: the generation changes on every successful reload; a loop keeps a ref to its snapshot
 * and takes the new one (gw_shared_keys_get, a short lock) only when the generation moved. */
uint64_t gw_shared_keys_gen(struct gw_shared *sh);
struct gw_keyset *gw_shared_keys_get(struct gw_shared *sh);
void gw_keyset_unref(struct gw_keyset *ks);
/* Re-read the keys file (blocking: call off the loop). On error the old keys stay. */
int gw_shared_keys_reload(struct gw_shared *sh, char *errmsg, size_t errlen);

/* ---- reads and writes ---- */

struct gw_cache *gw_shared_cache(struct gw_shared *sh); /* NULL with --cache-size 0 */
/* Key-change wakeups for parked requests (wake.h), fed by the commit watch. */
struct gw_wake_bus *gw_shared_wakes(struct gw_shared *sh);
/* The process's read lease and commit-watch position (cluster/watch.h), kept by the watch that
 * the loop with the admin port runs. */
struct gw_coh *gw_shared_coh(struct gw_shared *sh);
const struct gw_rules *gw_shared_cache_rules(const struct gw_shared *sh);
const struct gw_rules *gw_shared_lifecycle(const struct gw_shared *sh);

/* This gateway wrote or deleted key: the cached copy and a read in flight for it are dropped,
 * and it counts as cacheable again. */
void gw_shared_note_write(struct gw_shared *sh, const char *key);
/* A read found key too large for the cache or not cacheable (its Cache-Control). */
void gw_shared_note_uncacheable(struct gw_shared *sh, const char *key, uint64_t now_ms);
/* Was key found not cacheable within GW_UNCACHEABLE_MS (and not written here since)? */
int gw_shared_uncacheable(struct gw_shared *sh, const char *key, uint64_t now_ms);

#endif
