/* GC of staged uploads (see gc.h).
 *
 * A sweep scans the staged records ('s') on the work queue, then decides and writes its batch
 * on the loop thread, where apply also runs: a concurrent commit either promoted the upload
 * first (its committed record keeps the bytes) or finds it gone and repairs. */
#include "bg/gc.h"

#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "shard.h"
#include "store/meta.h"

#define GC_MAX_PER_SWEEP 4096

struct gc_pass {
    struct nd_gc *g;
    int64_t before_ms;
    uint8_t (*ids)[ND_UPLOAD_ID_LEN];
    char **keys;
    size_t nids, cap;
};

static void gc_pass_free(struct gc_pass *p)
{
    for (size_t i = 0; i < p->nids; i++)
        cm_free(p->keys[i]);
    cm_free(p->ids);
    cm_free(p->keys);
    p->g->running = 0;
    cm_free(p);
}

static int grow(struct gc_pass *p)
{
    size_t cap = p->cap ? p->cap * 2 : 64;
    void *ni = cm_realloc(p->ids, cap * ND_UPLOAD_ID_LEN);
    if (ni != NULL)
        p->ids = ni;
    void *nk = cm_realloc(p->keys, cap * sizeof(char *));
    if (nk != NULL)
        p->keys = nk;
    if (ni == NULL || nk == NULL)
        return -1;
    p->cap = cap;
    return 0;
}

/* Remember a staged record that is old enough; non-zero stops the scan. */
static int scan_cb(const char *k, size_t klen, const char *v, size_t vlen, void *arg)
{
    struct gc_pass *p = arg;
    if (klen != 1 + ND_UPLOAD_ID_LEN)
        return 0;
    Hw__ObjectMeta *m = nd_meta_unpack(v, vlen);
    int rv = 0;
    if (m != NULL && m->created_ms < p->before_ms && m->key != NULL) {
        if (p->nids == GC_MAX_PER_SWEEP || (p->nids == p->cap && grow(p) != 0)) {
            rv = 1;
        } else {
            memcpy(p->ids[p->nids], k + 1, ND_UPLOAD_ID_LEN);
            p->keys[p->nids] = cm_strdup(m->key);
            if (p->keys[p->nids] != NULL)
                p->nids++;
        }
    }
    if (m != NULL)
        hw__object_meta__free_unpacked(m, NULL);
    return rv;
}

static void gc_scan_fn(void *arg)
{
    struct gc_pass *p = arg;
    struct nd_skey pre = {.len = 1, .b = {'s'}};
    nd_store_each(p->g->h->store, &pre, NULL, scan_cb, p);
}

/* Is upload id the key's current version, or was it committed within the retry window? Its
 * bytes stay then (a replica that staged it but missed the commit, or repairs it, holds them
 * under that id). The 'c' record alone is not enough: past the window it is dropped. */
static int upload_kept(struct nd_host *h, const char *key, const uint8_t *id)
{
    uint32_t shard = cm_shard_of(key, h->cfg.shard_count);
    struct nd_skey ck, mk;
    uint64_t version;
    nd_skey_committed(&ck, shard, id);
    if (nd_store_get_u64(h->store, &ck, &version) == 0)
        return 1;
    nd_skey_meta(&mk, shard, key, strlen(key));
    char *v;
    size_t vlen;
    if (nd_store_get(h->store, &mk, &v, &vlen) != 0)
        return 0;
    Hw__ObjectMeta *m = nd_meta_unpack(v, vlen);
    int named = m != NULL && m->upload_id.len == ND_UPLOAD_ID_LEN &&
                memcmp(m->upload_id.data, id, ND_UPLOAD_ID_LEN) == 0;
    if (m != NULL)
        hw__object_meta__free_unpacked(m, NULL);
    cm_free(v);
    return named;
}

static void gc_scan_done(void *arg, int status)
{
    struct gc_pass *p = arg;
    struct nd_host *h = p->g->h;
    size_t dropped = 0;
    struct nd_batch b;
    nd_batch_init(&b);
    for (size_t i = 0; i < p->nids && status == 0; i++) {
        if (nd_uploads_active(&h->uploads, p->ids[i]))
            continue;
        struct nd_skey sk;
        nd_skey_staged(&sk, p->ids[i]);
        nd_batch_del(&b, &sk);
        if (!upload_kept(h, p->keys[i], p->ids[i]))
            nd_batch_del_chunks(&b, p->ids[i]); /* never committed, or replaced: bytes go too */
        dropped++;
    }
    if (dropped > 0) {
        int rv = nd_store_write(h->store, &b, 0);
        if (rv == 0)
            CM_INFO("gc dropped staged uploads count=%zu", dropped);
        else
            CM_WARN("gc could not drop staged uploads count=%zu err=%s", dropped, cm_strerror(rv));
    }
    nd_batch_close(&b);
    gc_pass_free(p);
}

void nd_gc_init(struct nd_gc *g, struct nd_host *h)
{
    memset(g, 0, sizeof(*g));
    g->h = h;
}

void nd_gc_tick(struct nd_gc *g)
{
    struct nd_host *h = g->h;
    uint64_t now = nd_mono_ms(h->clock);
    uint64_t every =
        h->cfg.staged_ttl_s * 500 < GC_EVERY_MS ? h->cfg.staged_ttl_s * 500 : GC_EVERY_MS;
    if (g->running || h->stopping || now - g->last_ms < every)
        return;
    g->last_ms = now;
    struct gc_pass *p = cm_calloc(1, sizeof(*p));
    if (p == NULL)
        return;
    p->g = g;
    p->before_ms = nd_now_ms(h->clock) - (int64_t)h->cfg.staged_ttl_s * 1000;
    g->running = 1;
    if (nd_work(h->work, gc_scan_fn, gc_scan_done, p) != 0)
        gc_pass_free(p);
}
