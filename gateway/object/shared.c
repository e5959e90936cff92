/* Process-wide gateway state (shared.h). Locks: keys_lock guards the keys snapshot pointer,
 * tables_lock the two key tables; the cache has its own (cache.c). None is held while taking
 * another. */
#include "object/shared.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "alloc.h"
#include "object/cache.h"
#include "object/wake.h"
#include "crc32c.h"
#include "err.h"
#include "timeutil.h"

#define GW_METRIC_SLOTS 260
#define KEY_SLOTS 1024u

/* Keys marked until a monotonic time, by crc32c (a lookup may say yes for another key with the
 * same hash; a later mark in the same slot forgets the earlier key). Under tables_lock. */
struct key_table {
    uint32_t hash[KEY_SLOTS];
    uint64_t until[KEY_SLOTS]; /* 0 = empty */
};

struct gw_shared {
    atomic_ulong refs;
    const struct gw_config *cfg;
    struct gw_coh coh; /* the read lease and commit-watch position (cluster/watch.h) */
    /* connections */
    struct gw_tls_ctx *tls;
    struct cm_auth *auth; /* cluster secret and node-connection refusal counters */
    struct gw_cors cors;
    struct gw_cors cors_write; /* --cors-write-origins */
    atomic_uint_fast64_t open_conns;
    struct gw_config admin_cfg; /* cfg with the admin listener's own connection limit */
    atomic_uint_fast64_t admin_conns;
    struct gw_budget budget;
    atomic_uint slots_used;
    struct gw_metrics *metrics; /* GW_METRIC_SLOTS */
    uv_mutex_t keys_lock;
    struct gw_keyset *keys; /* ref; guarded by keys_lock */
    atomic_uint_fast64_t keys_gen;
    /* reads and writes */
    struct gw_rules cache_rules;
    struct gw_rules lifecycle;
    struct gw_cache *cache; /* NULL with --cache-size 0 */
    struct gw_wake_bus *wakes;
    uv_mutex_t tables_lock;
    struct key_table uncacheable; /* too large or not cacheable */
};

/* ---- key tables ---- */

static uint32_t key_hash(const char *key)
{
    return cm_crc32c(0, key, strlen(key));
}

static void table_mark(struct key_table *t, uint32_t h, uint64_t until)
{
    t->hash[h % KEY_SLOTS] = h;
    t->until[h % KEY_SLOTS] = until;
}

/* Is key marked in t at now_ms? Takes tables_lock. */
static int table_lookup(struct gw_shared *sh, const struct key_table *t, const char *key,
                        uint64_t now_ms)
{
    uint32_t h = key_hash(key);
    uv_mutex_lock(&sh->tables_lock);
    int yes = t->until[h % KEY_SLOTS] != 0 && t->hash[h % KEY_SLOTS] == h &&
              now_ms < t->until[h % KEY_SLOTS];
    uv_mutex_unlock(&sh->tables_lock);
    return yes;
}

static void table_forget(struct key_table *t, uint32_t h)
{
    if (t->hash[h % KEY_SLOTS] == h)
        t->until[h % KEY_SLOTS] = 0;
}

/* ---- lifetime ---- */

static struct gw_keyset *keyset_new(struct gw_keys *k)
{
    struct gw_keyset *ks = cm_calloc(1, sizeof(*ks));
    if (ks == NULL)
        return NULL;
    atomic_init(&ks->refs, 1);
    ks->keys = k;
    return ks;
}

void gw_keyset_unref(struct gw_keyset *ks)
{
    if (ks == NULL || atomic_fetch_sub(&ks->refs, 1) != 1)
        return;
    gw_keys_free(ks->keys);
    cm_free(ks);
}

/* --cache-rules, --lifecycle and the cache. */
static int reads_init(struct gw_shared *sh, char *errmsg, size_t errlen)
{
    const struct gw_config *cfg = sh->cfg;
    char err[256] = "";
    gw_budget_init(&sh->budget, cfg->max_buffered_bytes);
    int rv = gw_rules_parse(&sh->cache_rules, cfg->cache_rules ? cfg->cache_rules : "", err,
                            sizeof(err));
    if (rv != 0) {
        snprintf(errmsg, errlen, "--cache-rules: %s", err);
        return rv;
    }
    rv = gw_rules_parse(&sh->lifecycle, cfg->lifecycle ? cfg->lifecycle : "", err, sizeof(err));
    if (rv != 0) {
        snprintf(errmsg, errlen, "--lifecycle: %s", err);
        return rv;
    }
    if (cfg->cache_size > 0) {
        rv = gw_cache_new(cfg->cache_size, &sh->cache);
        if (rv != 0) {
            snprintf(errmsg, errlen, "cache: %s", cm_strerror(rv));
            return rv;
        }
    }
    rv = gw_wake_bus_new(&sh->wakes);
    if (rv != 0)
        snprintf(errmsg, errlen, "wakeups: %s", cm_strerror(rv));
    return rv;
}

/* CORS rules, the keys file and the TLS certificate. */
static int conns_init(struct gw_shared *sh, char *errmsg, size_t errlen)
{
    const struct gw_config *cfg = sh->cfg;
    struct gw_keys *k = NULL;
    int rv = gw_cors_parse(cfg->cors_origins, &sh->cors, errmsg, errlen);
    if (rv == 0)
        rv = gw_cors_parse(cfg->cors_write_origins ? cfg->cors_write_origins : "", &sh->cors_write,
                           errmsg, errlen);
    if (rv != 0)
        return rv;
    sh->admin_cfg = *cfg;
    sh->admin_cfg.max_connections = cfg->admin_max_connections ? cfg->admin_max_connections : 32;
    if (cfg->keys != NULL) {
        rv = gw_keys_load(cfg->keys, &k, errmsg, errlen);
        if (rv != 0)
            return rv;
    }
    sh->keys = keyset_new(k);
    if (sh->keys == NULL) {
        gw_keys_free(k);
        snprintf(errmsg, errlen, "out of memory");
        return CM_ENOMEM;
    }
    rv = cm_auth_new(cfg->cluster_secret_file, cfg->insecure, CM_AUTH_ROLE_GATEWAY, 0, &sh->auth,
                     errmsg, errlen);
    if (rv != 0)
        return rv;
    if (cfg->tls_listen != NULL)
        return gw_tls_ctx_new(cfg->tls_cert, cfg->tls_key, &sh->tls, errmsg, errlen);
    return 0;
}

/* Everything but refs and the mutexes; safe on a partly initialised struct. */
static void shared_free(struct gw_shared *sh)
{
    gw_tls_ctx_free(sh->tls);
    cm_auth_free(sh->auth);
    gw_keyset_unref(sh->keys);
    gw_cache_free(sh->cache);
    gw_wake_bus_free(sh->wakes);
    gw_rules_free(&sh->cache_rules);
    gw_rules_free(&sh->lifecycle);
    cm_free(sh->metrics);
    cm_free(sh);
}

int gw_shared_new(const struct gw_config *cfg, struct gw_shared **out, char *errmsg, size_t errlen)
{
    struct gw_shared *sh = cm_calloc(1, sizeof(*sh));
    if (sh == NULL)
        return CM_ENOMEM;
    atomic_init(&sh->refs, 1);
    sh->cfg = cfg;
    gw_rules_init(&sh->cache_rules);
    gw_rules_init(&sh->lifecycle);
    int rv = CM_ENOMEM;
    sh->metrics = cm_calloc(GW_METRIC_SLOTS, sizeof(struct gw_metrics));
    if (sh->metrics == NULL) {
        snprintf(errmsg, errlen, "out of memory");
        goto err_free;
    }
    rv = reads_init(sh, errmsg, errlen);
    if (rv == 0)
        rv = conns_init(sh, errmsg, errlen);
    if (rv != 0)
        goto err_free;
    rv = CM_EIO;
    if (uv_mutex_init(&sh->keys_lock) != 0) {
        snprintf(errmsg, errlen, "cannot create a mutex");
        goto err_free;
    }
    if (uv_mutex_init(&sh->tables_lock) != 0) {
        snprintf(errmsg, errlen, "cannot create a mutex");
        goto err_after_keys_lock;
    }
    *out = sh;
    return 0;

err_after_keys_lock:
    uv_mutex_destroy(&sh->keys_lock);
err_free:
    shared_free(sh);
    return rv;
}

struct gw_shared *gw_shared_ref(struct gw_shared *sh)
{
    atomic_fetch_add(&sh->refs, 1);
    return sh;
}

void gw_shared_unref(struct gw_shared *sh)
{
    if (sh == NULL || atomic_fetch_sub(&sh->refs, 1) != 1)
        return;
    uv_mutex_destroy(&sh->keys_lock);
    uv_mutex_destroy(&sh->tables_lock);
    shared_free(sh);
}

/* ---- connections ---- */

struct gw_tls_ctx *gw_shared_tls(struct gw_shared *sh)
{
    return sh->tls;
}

const struct gw_cors *gw_shared_cors(const struct gw_shared *sh)
{
    return &sh->cors;
}

atomic_uint_fast64_t *gw_shared_open_conns(struct gw_shared *sh)
{
    return &sh->open_conns;
}

const struct gw_cors *gw_shared_cors_write(const struct gw_shared *sh)
{
    return &sh->cors_write;
}

const struct gw_config *gw_shared_admin_cfg(const struct gw_shared *sh)
{
    return &sh->admin_cfg;
}

atomic_uint_fast64_t *gw_shared_admin_conns(struct gw_shared *sh)
{
    return &sh->admin_conns;
}

struct gw_budget *gw_shared_budget(struct gw_shared *sh)
{
    return &sh->budget;
}

struct gw_metrics *gw_shared_metrics(struct gw_shared *sh)
{
    unsigned i = atomic_fetch_add(&sh->slots_used, 1);
    return &sh->metrics[i < GW_METRIC_SLOTS ? i : GW_METRIC_SLOTS - 1];
}

static size_t slots_in_use(struct gw_shared *sh)
{
    unsigned n = atomic_load(&sh->slots_used);
    return n < GW_METRIC_SLOTS ? n : GW_METRIC_SLOTS;
}

void gw_shared_metrics_render(struct gw_shared *sh, struct cm_sbuf *out)
{
    gw_metrics_render(sh->metrics, slots_in_use(sh), atomic_load(&sh->open_conns), out);
    cm_sbuf_printf(out, "# TYPE headwater_gateway_cluster_auth_refusals_total counter\n");
    for (int r = 0; r < CM_AUTH_R_COUNT; r++)
        cm_sbuf_printf(out, "headwater_gateway_cluster_auth_refusals_total{reason=\"%s\"} %llu\n",
                       cm_auth_reason_name((enum cm_auth_reason)r),
                       (unsigned long long)cm_auth_refused(sh->auth, (enum cm_auth_reason)r));
    gw_metrics_render_gauge(out, "headwater_gateway_buffered_bytes",
                            "bytes queued toward clients now (--max-buffered-bytes budget)",
                            gw_budget_used(&sh->budget));
}

struct cm_auth *gw_shared_auth(struct gw_shared *sh)
{
    return sh->auth;
}

void gw_shared_reads_json(struct gw_shared *sh, struct cm_sbuf *out)
{
    const struct gw_metrics *m = sh->metrics;
    size_t n = slots_in_use(sh);
    struct gw_cache_stats cs;
    memset(&cs, 0, sizeof(cs));
    if (sh->cache != NULL)
        gw_cache_stats(sh->cache, &cs);
    cm_sbuf_printf(out,
                   ",\"reads\":{\"cache_hits\":%llu,\"cache_misses\":%llu,\"coalesced\":%llu,"
                   "\"node_reads\":%llu,\"cache_bytes\":%llu,\"cache_entries\":%llu,"
                   "\"cache_capacity\":%llu,\"cache_evictions\":%llu}",
                   (unsigned long long)GW_METRIC_SUM(m, n, cache_hits),
                   (unsigned long long)GW_METRIC_SUM(m, n, cache_misses),
                   (unsigned long long)GW_METRIC_SUM(m, n, coalesced),
                   (unsigned long long)GW_METRIC_SUM(m, n, node_reads), (unsigned long long)cs.used,
                   (unsigned long long)cs.entries, (unsigned long long)cs.capacity,
                   (unsigned long long)cs.evictions);
    struct gw_coh *co = &sh->coh;
    uint64_t until = atomic_load(&co->lease_until), now = cm_mono_ms();
    cm_sbuf_printf(
        out,
        ",\"coherence\":{\"lease\":%s,\"lease_left_ms\":%llu,\"term\":%llu,"
        "\"applied\":%llu,\"safe\":%llu,\"events\":%llu,\"resets\":%llu,"
        "\"lease_waits\":%llu,\"coherence_waits\":%llu}",
        until > now ? "true" : "false", (unsigned long long)(until > now ? until - now : 0),
        (unsigned long long)atomic_load(&co->term), (unsigned long long)atomic_load(&co->applied),
        (unsigned long long)atomic_load(&co->safe), (unsigned long long)atomic_load(&co->events),
        (unsigned long long)atomic_load(&co->resets),
        (unsigned long long)GW_METRIC_SUM(m, n, lease_waits),
        (unsigned long long)GW_METRIC_SUM(m, n, coherence_waits));
}

uint64_t gw_shared_keys_gen(struct gw_shared *sh)
{
    return atomic_load_explicit(&sh->keys_gen, memory_order_acquire);
}

struct gw_keyset *gw_shared_keys_get(struct gw_shared *sh)
{
    uv_mutex_lock(&sh->keys_lock);
    struct gw_keyset *ks = sh->keys;
    atomic_fetch_add(&ks->refs, 1);
    uv_mutex_unlock(&sh->keys_lock);
    return ks;
}

int gw_shared_keys_reload(struct gw_shared *sh, char *errmsg, size_t errlen)
{
    struct gw_keys *k = NULL;
    if (sh->cfg->keys == NULL) {
        snprintf(errmsg, errlen, "no --keys file to reload");
        return CM_EINVAL;
    }
    int rv = gw_keys_load(sh->cfg->keys, &k, errmsg, errlen);
    if (rv != 0)
        return rv;
    struct gw_keyset *ks = keyset_new(k);
    if (ks == NULL) {
        gw_keys_free(k);
        snprintf(errmsg, errlen, "out of memory");
        return CM_ENOMEM;
    }
    uv_mutex_lock(&sh->keys_lock);
    struct gw_keyset *old = sh->keys;
    sh->keys = ks;
    atomic_fetch_add_explicit(&sh->keys_gen, 1, memory_order_release);
    uv_mutex_unlock(&sh->keys_lock);
    gw_keyset_unref(old);
    return 0;
}

/* ---- reads and writes ---- */

struct gw_coh *gw_shared_coh(struct gw_shared *sh)
{
    return &sh->coh;
}

struct gw_cache *gw_shared_cache(struct gw_shared *sh)
{
    return sh->cache;
}

struct gw_wake_bus *gw_shared_wakes(struct gw_shared *sh)
{
    return sh->wakes;
}

const struct gw_rules *gw_shared_cache_rules(const struct gw_shared *sh)
{
    return &sh->cache_rules;
}

const struct gw_rules *gw_shared_lifecycle(const struct gw_shared *sh)
{
    return &sh->lifecycle;
}

void gw_shared_note_write(struct gw_shared *sh, const char *key)
{
    uint32_t h = key_hash(key);
    uv_mutex_lock(&sh->tables_lock);
    table_forget(&sh->uncacheable, h);
    uv_mutex_unlock(&sh->tables_lock);
    if (sh->cache != NULL)
        gw_cache_invalidate(sh->cache, key);
}

void gw_shared_note_uncacheable(struct gw_shared *sh, const char *key, uint64_t now_ms)
{
    uint32_t h = key_hash(key);
    uv_mutex_lock(&sh->tables_lock);
    table_mark(&sh->uncacheable, h, now_ms + GW_UNCACHEABLE_MS);
    uv_mutex_unlock(&sh->tables_lock);
}

int gw_shared_uncacheable(struct gw_shared *sh, const char *key, uint64_t now_ms)
{
    return table_lookup(sh, &sh->uncacheable, key, now_ms);
}
