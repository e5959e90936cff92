/* TTL cleanup: the shard leader finds objects past their expiry through the expiry index
 * ('x' shard expires key) and proposes an EXPIRE entry for each, so every replica deletes the
 * same versions at the same log position; a PUT that replaced the object meanwhile wins (the
 * entry names the version it expires). Reads never serve an expired object even before this
 * runs. One sweep at a time, at most EXPIRE_BATCH proposals each. */
#include "bg/expire.h"

#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "store/meta.h"

#define EXPIRE_BATCH 256

struct expire_sweep {
    struct nd_expire *ex;
    int64_t now_ms; /* taken on the loop thread */
    char *keys[EXPIRE_BATCH];
    uint64_t versions[EXPIRE_BATCH];
    size_t nkeys;
    unsigned pending; /* proposals awaiting their callback */
};

struct expire_apply {
    struct raft_apply req;
    struct expire_sweep *sw;
};

static void sweep_free(struct expire_sweep *sw)
{
    for (size_t i = 0; i < sw->nkeys; i++)
        cm_free(sw->keys[i]);
    sw->ex->running = 0;
    cm_free(sw);
}

static void scan_fn(void *arg)
{
    struct expire_sweep *sw = arg;
    struct nd_store *s = sw->ex->h->store;
    uint32_t shard = sw->ex->sh->id;
    struct nd_store_iter *it;
    struct nd_skey pre;
    int64_t now = sw->now_ms;
    nd_skey_prefix(&pre, 'x', shard);
    if (nd_store_iter_new(s, 0, &it) != 0)
        return;
    for (nd_store_iter_seek(it, pre.b, pre.len);
         nd_store_iter_valid(it) && sw->nkeys < EXPIRE_BATCH; nd_store_iter_next(it)) {
        size_t klen;
        const char *k = nd_store_iter_key(it, &klen);
        if (klen < pre.len + 8 || !nd_skey_has_prefix(k, klen, &pre))
            break;
        if ((int64_t)nd_get_u64(k + pre.len) > now)
            break; /* sorted by expiry: the rest is in the future */
        struct nd_skey mk;
        Hw__ObjectMeta *m;
        const char *key = k + pre.len + 8;
        size_t keylen = klen - pre.len - 8;
        nd_skey_meta(&mk, shard, key, keylen);
        if (nd_meta_get(s, &mk, &m) != 0)
            continue;
        if (m->expires_ms > 0 && m->expires_ms <= now) {
            sw->keys[sw->nkeys] = cm_strndup(key, keylen);
            sw->versions[sw->nkeys] = m->version;
            if (sw->keys[sw->nkeys] != NULL)
                sw->nkeys++;
        }
        hw__object_meta__free_unpacked(m, NULL);
    }
    nd_store_iter_free(it);
}

static void on_expired(struct raft_apply *req, int status, void *result)
{
    struct expire_apply *a = req->data;
    struct expire_sweep *sw = a->sw;
    cm_free(a);
    if (--sw->pending == 0)
        sweep_free(sw);
}

static void scan_done(void *arg, int status)
{
    struct expire_sweep *sw = arg;
    struct nd_shard *sh = sw->ex->sh;
    sw->pending = 1; /* held until every proposal is made */
    for (size_t i = 0; i < sw->nkeys && status == 0 && nd_shard_is_leader(sh); i++) {
        Hw__RaftEntry e = HW__RAFT_ENTRY__INIT;
        Hw__ObjectMeta m = HW__OBJECT_META__INIT;
        e.kind = HW__RAFT_ENTRY__KIND__KIND_EXPIRE;
        e.shard = sh->id;
        e.meta = &m;
        m.key = sw->keys[i];
        m.version = sw->versions[i];
        struct expire_apply *a = cm_calloc(1, sizeof(*a));
        if (a == NULL)
            break;
        a->sw = sw;
        a->req.data = a;
        if (nd_shard_apply(sh, &e, &a->req, on_expired) != 0) {
            cm_free(a);
            break;
        }
        sw->pending++;
    }
    if (sw->nkeys > 0)
        CM_INFO("expiring objects count=%zu shard=%u", sw->nkeys, sh->id);
    if (--sw->pending == 0)
        sweep_free(sw);
}

void nd_expire_init(struct nd_expire *ex, struct nd_host *h, struct nd_shard *sh)
{
    memset(ex, 0, sizeof(*ex));
    ex->h = h;
    ex->sh = sh;
}

void nd_expire_tick(struct nd_expire *ex)
{
    struct nd_host *h = ex->h;
    uint64_t now = nd_mono_ms(h->clock);
    if (ex->running || h->stopping || !nd_shard_is_leader(ex->sh) ||
        now - ex->last_ms < EXPIRE_EVERY_MS)
        return;
    ex->last_ms = now;
    struct expire_sweep *sw = cm_calloc(1, sizeof(*sw));
    if (sw == NULL)
        return;
    sw->ex = ex;
    sw->now_ms = nd_now_ms(h->clock);
    ex->running = 1;
    if (nd_work(h->work, scan_fn, scan_done, sw) != 0)
        sweep_free(sw);
}
