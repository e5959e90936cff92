/* TTL cleanup: the shard leader finds objects past their expiry through the expiry index
 * ('x' shard expires key) and proposes an EXPIRE entry for each, so every replica deletes the
 * same versions at the same log position; a PUT that replaced the object meanwhile wins (the
 * entry names the version it expires). Reads never serve an expired object even before this
 * runs. One sweep at a time, at most EXPIRE_BATCH proposals each. */
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "server.h"
#include "timeutil.h"

#define EXPIRE_BATCH 256
#define EXPIRE_EVERY_MS 1000

struct expire_sweep {
    struct nd_node *n;
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
    sw->n->expire_running = 0;
    cm_free(sw);
}

static void scan_fn(void *arg)
{
    struct expire_sweep *sw = arg;
    struct nd_node *n = sw->n;
    struct nd_skey pre;
    int64_t now = cm_wall_ms();
    nd_skey_prefix(&pre, 'x', n->shard);
    rocksdb_iterator_t *it = rocksdb_create_iterator(n->store.db, n->store.ro);
    for (rocksdb_iter_seek(it, pre.b, pre.len); rocksdb_iter_valid(it) && sw->nkeys < EXPIRE_BATCH;
         rocksdb_iter_next(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < pre.len + 8 || memcmp(k, pre.b, pre.len) != 0)
            break;
        if ((int64_t)nd_get_u64(k + pre.len) > now)
            break; /* sorted by expiry: the rest is in the future */
        struct nd_skey mk;
        char *v;
        size_t vlen;
        const char *key = k + pre.len + 8;
        size_t keylen = klen - pre.len - 8;
        nd_skey_meta(&mk, n->shard, key, keylen);
        if (nd_store_get(&n->store, &mk, &v, &vlen) != 0)
            continue;
        Hw__ObjectMeta *m = nd_meta_unpack(v, vlen);
        rocksdb_free(v);
        if (m != NULL && m->expires_ms > 0 && m->expires_ms <= now) {
            sw->keys[sw->nkeys] = cm_strndup(key, keylen);
            sw->versions[sw->nkeys] = m->version;
            if (sw->keys[sw->nkeys] != NULL)
                sw->nkeys++;
        }
        if (m != NULL)
            hw__object_meta__free_unpacked(m, NULL);
    }
    rocksdb_iter_destroy(it);
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
    struct nd_node *n = sw->n;
    sw->pending = 1; /* held until every proposal is made */
    for (size_t i = 0; i < sw->nkeys && status == 0 && nd_node_is_leader(n); i++) {
        Hw__RaftEntry e = HW__RAFT_ENTRY__INIT;
        Hw__ObjectMeta m = HW__OBJECT_META__INIT;
        struct raft_buffer buf;
        e.kind = HW__RAFT_ENTRY__KIND__KIND_EXPIRE;
        e.shard = n->shard;
        e.meta = &m;
        m.key = sw->keys[i];
        m.version = sw->versions[i];
        struct expire_apply *a = cm_calloc(1, sizeof(*a));
        if (a == NULL || nd_fsm_encode(&e, &buf) != 0) {
            cm_free(a);
            break;
        }
        a->sw = sw;
        a->req.data = a;
        if (raft_apply(&n->raft, &a->req, &buf, 1, on_expired) != 0) {
            raft_free(buf.base);
            cm_free(a);
            break;
        }
        sw->pending++;
    }
    if (sw->nkeys > 0)
        CM_INFO("expiring objects count=%zu shard=%u", sw->nkeys, n->shard);
    if (--sw->pending == 0)
        sweep_free(sw);
}

void nd_expire_tick(struct nd_node *n)
{
    uint64_t now = cm_mono_ms();
    if (n->expire_running || n->stopping || !nd_node_is_leader(n) ||
        now - n->last_expire_ms < EXPIRE_EVERY_MS)
        return;
    n->last_expire_ms = now;
    struct expire_sweep *sw = cm_calloc(1, sizeof(*sw));
    if (sw == NULL)
        return;
    sw->n = n;
    n->expire_running = 1;
    if (nd_work(n, scan_fn, scan_done, sw) != 0)
        sweep_free(sw);
}
