#include "shared.h"

#include <stdio.h>
#include <uv.h>

#include "alloc.h"
#include "err.h"

#define GW_METRIC_SLOTS 260

struct gw_shared {
    atomic_ulong refs;
    const struct gw_config *cfg;
    struct gw_tls_ctx *tls;
    struct gw_cors cors;
    atomic_uint_fast64_t open_conns;
    atomic_uint slots_used;
    struct gw_metrics *metrics; /* GW_METRIC_SLOTS */
    uv_mutex_t keys_lock;
    struct gw_keyset *keys; /* ref; guarded by keys_lock */
    atomic_uint_fast64_t keys_gen;
};

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

int gw_shared_new(const struct gw_config *cfg, struct gw_shared **out, char *errmsg, size_t errlen)
{
    struct gw_shared *sh = cm_calloc(1, sizeof(*sh));
    struct gw_keys *k = NULL;
    int rv = CM_ENOMEM;
    if (sh == NULL)
        return CM_ENOMEM;
    atomic_init(&sh->refs, 1);
    sh->cfg = cfg;
    sh->metrics = cm_calloc(GW_METRIC_SLOTS, sizeof(struct gw_metrics));
    if (sh->metrics == NULL)
        goto err_after_alloc;
    rv = gw_cors_parse(cfg->cors_origins, &sh->cors, errmsg, errlen);
    if (rv != 0)
        goto err_after_metrics;
    if (cfg->keys != NULL) {
        rv = gw_keys_load(cfg->keys, &k, errmsg, errlen);
        if (rv != 0)
            goto err_after_metrics;
    }
    rv = CM_ENOMEM;
    sh->keys = keyset_new(k);
    if (sh->keys == NULL) {
        gw_keys_free(k);
        goto err_after_metrics;
    }
    if (cfg->tls_listen != NULL) {
        rv = gw_tls_ctx_new(cfg->tls_cert, cfg->tls_key, &sh->tls, errmsg, errlen);
        if (rv != 0)
            goto err_after_keys;
    }
    uv_mutex_init(&sh->keys_lock);
    *out = sh;
    return 0;

err_after_keys:
    gw_keyset_unref(sh->keys);
err_after_metrics:
    cm_free(sh->metrics);
err_after_alloc:
    cm_free(sh);
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
    gw_keyset_unref(sh->keys);
    gw_tls_ctx_free(sh->tls);
    uv_mutex_destroy(&sh->keys_lock);
    cm_free(sh->metrics);
    cm_free(sh);
}

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

struct gw_metrics *gw_shared_metrics(struct gw_shared *sh)
{
    unsigned i = atomic_fetch_add(&sh->slots_used, 1);
    return &sh->metrics[i < GW_METRIC_SLOTS ? i : GW_METRIC_SLOTS - 1];
}

void gw_shared_metrics_render(struct gw_shared *sh, struct cm_sbuf *out)
{
    unsigned n = atomic_load(&sh->slots_used);
    gw_metrics_render(sh->metrics, n < GW_METRIC_SLOTS ? n : GW_METRIC_SLOTS,
                      atomic_load(&sh->open_conns), out);
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
