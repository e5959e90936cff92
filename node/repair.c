/* Repair and garbage collection.
 *
 * Repair: a pass scans up to REPAIR_BATCH repair markers ('r') after a cursor (thread pool),
 * then repairs them one at a time: FETCH the bytes of the committed upload from a holder,
 * verify size and crc32c, write them as chunks with a WAL sync (thread pool), then, on the
 * loop thread where apply also runs, flip the meta to local and drop the marker if the key
 * still names that upload (else the fetched bytes are dropped). A holder failing moves to the
 * next; an object no holder serves is retried on a later pass.
 * GC: every GC_EVERY_MS, staged records older than --staged-ttl that no connection is
 * filling are dropped (the decision and the batch run on the loop thread, so a concurrent
 * commit either promoted the upload first or finds it gone and repairs). */
#include <string.h>

#include "alloc.h"
#include "call.h"
#include "crc32c.h"
#include "err.h"
#include "log.h"
#include "server.h"
#include "timeutil.h"

#define REPAIR_BATCH 32
#define GC_EVERY_MS 30000 /* or half of --staged-ttl when that is shorter */

struct repair_pass {
    struct nd_node *n;
    Hw__ObjectMeta *items[REPAIR_BATCH];
    size_t nitems, cur;
    char *cursor; /* owned copy of the scan start */
    int wrapped;
    /* current item */
    size_t holder;
    struct nd_call *call;
    struct cm_slice *parts;
    uint64_t *part_off;
    size_t nparts, capparts;
    uint64_t got;
    int rv;
};

static void repair_next(struct repair_pass *p);

static void pass_clear_parts(struct repair_pass *p)
{
    for (size_t i = 0; i < p->nparts; i++)
        cm_slice_release(&p->parts[i]);
    p->nparts = 0;
    p->got = 0;
}

static void pass_free(struct repair_pass *p)
{
    pass_clear_parts(p);
    for (size_t i = 0; i < p->nitems; i++)
        hw__object_meta__free_unpacked(p->items[i], NULL);
    cm_free(p->parts);
    cm_free(p->part_off);
    cm_free(p->cursor);
    p->n->repair_running = 0;
    cm_free(p);
}

static void scan_fn(void *arg)
{
    struct repair_pass *p = arg;
    struct nd_node *n = p->n;
    struct nd_skey pre, k;
    nd_skey_prefix(&pre, 'r', n->shard);
    rocksdb_iterator_t *it = rocksdb_create_iterator(n->store.db, n->store.ro);
    if (p->cursor != NULL) {
        nd_skey_repair(&k, n->shard, p->cursor, strlen(p->cursor));
        rocksdb_iter_seek(it, k.b, k.len);
        if (rocksdb_iter_valid(it)) {
            size_t klen;
            const char *kk = rocksdb_iter_key(it, &klen);
            if (klen == k.len && memcmp(kk, k.b, klen) == 0)
                rocksdb_iter_next(it);
        }
    } else {
        rocksdb_iter_seek(it, pre.b, pre.len);
    }
    while (p->nitems < REPAIR_BATCH && rocksdb_iter_valid(it)) {
        size_t klen;
        const char *kk = rocksdb_iter_key(it, &klen);
        if (klen < pre.len || memcmp(kk, pre.b, pre.len) != 0)
            break;
        struct nd_skey mk;
        char *v;
        size_t vlen;
        nd_skey_meta(&mk, n->shard, kk + pre.len, klen - pre.len);
        if (nd_store_get(&n->store, &mk, &v, &vlen) == 0) {
            Hw__ObjectMeta *m = nd_meta_unpack(v, vlen);
            rocksdb_free(v);
            if (m != NULL && !m->local)
                p->items[p->nitems++] = m;
            else if (m != NULL)
                hw__object_meta__free_unpacked(m, NULL);
        }
        rocksdb_iter_next(it);
    }
    p->wrapped = p->nitems < REPAIR_BATCH;
    rocksdb_iter_destroy(it);
}

static void scan_done(void *arg, int status)
{
    struct repair_pass *p = arg;
    struct nd_node *n = p->n;
    cm_free(n->repair_cursor);
    n->repair_cursor = NULL;
    if (!p->wrapped && p->nitems > 0)
        n->repair_cursor = cm_strdup(p->items[p->nitems - 1]->key);
    p->cur = 0;
    repair_next(p);
}

/* Loop thread: adopt the fetched version if the key still names it. */
static void finalize(struct repair_pass *p, const Hw__ObjectMeta *want)
{
    struct nd_node *n = p->n;
    struct nd_skey mk, rk;
    char *v;
    size_t vlen;
    nd_skey_meta(&mk, n->shard, want->key, strlen(want->key));
    nd_skey_repair(&rk, n->shard, want->key, strlen(want->key));
    Hw__ObjectMeta *cur = NULL;
    if (nd_store_get(&n->store, &mk, &v, &vlen) == 0) {
        cur = nd_meta_unpack(v, vlen);
        rocksdb_free(v);
    }
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    if (cur != NULL && !cur->local && cur->upload_id.len == ND_UPLOAD_ID_LEN &&
        memcmp(cur->upload_id.data, want->upload_id.data, ND_UPLOAD_ID_LEN) == 0) {
        char *mv;
        size_t mlen;
        cur->local = 1;
        if (nd_meta_pack(cur, &mv, &mlen) == 0) {
            nd_batch_put(b, &mk, mv, mlen);
            nd_batch_del(b, &rk);
            cm_free(mv);
            if (nd_store_write(&n->store, b, 0) == 0 && n->fsm.repair_backlog > 0)
                n->fsm.repair_backlog--;
            CM_INFO("repaired key=%s version=%llu size=%llu", want->key,
                    (unsigned long long)want->version, (unsigned long long)want->size);
        }
    } else {
        nd_batch_del_chunks(b, want->upload_id.data); /* superseded meanwhile */
        nd_store_write(&n->store, b, 0);
    }
    rocksdb_writebatch_destroy(b);
    if (cur != NULL)
        hw__object_meta__free_unpacked(cur, NULL);
}

static void write_fn(void *arg)
{
    struct repair_pass *p = arg;
    const Hw__ObjectMeta *m = p->items[p->cur];
    uint32_t crc = 0;
    uint64_t expect = 0;
    for (size_t i = 0; i < p->nparts; i++) {
        if (p->part_off[i] != expect) {
            p->rv = CM_EPROTO;
            return;
        }
        crc = cm_crc32c(crc, cm_slice_ptr(&p->parts[i]), p->parts[i].len);
        expect += p->parts[i].len;
    }
    if (expect != m->size || crc != m->checksum) {
        p->rv = CM_ECHECKSUM;
        return;
    }
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    for (size_t i = 0; i < p->nparts; i++) {
        struct nd_skey k;
        nd_skey_chunk(&k, m->upload_id.data, p->part_off[i]);
        nd_batch_put(b, &k, cm_slice_ptr(&p->parts[i]), p->parts[i].len);
    }
    p->rv = nd_store_write(&p->n->store, b, 1);
    rocksdb_writebatch_destroy(b);
}

static void try_holder(struct repair_pass *p);

static void write_done(void *arg, int status)
{
    struct repair_pass *p = arg;
    const Hw__ObjectMeta *m = p->items[p->cur];
    pass_clear_parts(p);
    if (status == 0 && p->rv == 0) {
        finalize(p, m);
        p->cur++;
        repair_next(p);
        return;
    }
    CM_WARN("repair: bad bytes from holder key=%s err=%s", m->key, cm_strerror(p->rv));
    p->holder++;
    try_holder(p);
}

static int add_part(struct repair_pass *p, const struct cm_slice *pl, uint64_t off)
{
    if (p->nparts == p->capparts) {
        size_t cap = p->capparts ? p->capparts * 2 : 16;
        struct cm_slice *np = cm_realloc(p->parts, cap * sizeof(*np));
        if (np == NULL)
            return CM_ENOMEM;
        p->parts = np;
        uint64_t *no = cm_realloc(p->part_off, cap * sizeof(*no));
        if (no == NULL)
            return CM_ENOMEM;
        p->part_off = no;
        p->capparts = cap;
    }
    p->parts[p->nparts] = cm_slice_dup(pl);
    p->part_off[p->nparts++] = off;
    p->got += pl->len;
    return 0;
}

static int on_fetch(struct nd_call *c, int status, const Hw__Envelope *env,
                    const struct cm_slice *payload, void *arg)
{
    struct repair_pass *p = arg;
    const Hw__ObjectMeta *m = p->items[p->cur];
    int bad = status != 0 || env->type != HW__MSG_TYPE__MSG_DATA || env->data == NULL ||
              p->got + payload->len > m->size || p->n->stopping;
    if (!bad && payload->len > 0 && add_part(p, payload, env->data->offset) != 0)
        bad = 1;
    if (bad) {
        p->call = NULL;
        if (status == 0)
            nd_call_cancel(c);
        pass_clear_parts(p);
        p->holder++;
        try_holder(p);
        return 1;
    }
    if (!env->data->eof)
        return 0;
    p->call = NULL;
    p->rv = 0;
    if (nd_work(p->n, write_fn, write_done, p) != 0) {
        pass_clear_parts(p);
        p->cur++;
        repair_next(p);
    }
    return 1;
}

static void try_holder(struct repair_pass *p)
{
    struct nd_node *n = p->n;
    const Hw__ObjectMeta *m = p->items[p->cur];
    while (!n->stopping && p->holder < m->n_holders) {
        uint32_t h = m->holders[p->holder];
        const char *rpc = nd_node_rpc_of(n, h);
        if (h != n->id && rpc != NULL) {
            Hw__Envelope req;
            Hw__Fetch f = HW__FETCH__INIT;
            cm_env_init(&req, HW__MSG_TYPE__MSG_FETCH, ++n->next_req_id, n->shard);
            f.key = m->key;
            f.upload_id = m->upload_id;
            req.fetch = &f;
            if (nd_call_start(n->loop, n->auth, rpc, n->id, n->cfg->listen, &req, 3000, on_fetch, p,
                              &p->call) == 0)
                return;
        }
        p->holder++;
    }
    if (!n->stopping)
        CM_WARN("repair: no holder served key=%s version=%llu; retrying later", m->key,
                (unsigned long long)m->version);
    p->cur++;
    repair_next(p);
}

static void repair_next(struct repair_pass *p)
{
    if (p->cur >= p->nitems || p->n->stopping) {
        pass_free(p);
        return;
    }
    p->holder = 0;
    try_holder(p);
}

void nd_repair_kick(struct nd_node *n)
{
    if (n->repair_running || n->stopping || !n->raft_started || n->fsm.repair_backlog == 0)
        return;
    struct repair_pass *p = cm_calloc(1, sizeof(*p));
    if (p == NULL)
        return;
    p->n = n;
    if (n->repair_cursor != NULL && (p->cursor = cm_strdup(n->repair_cursor)) == NULL) {
        cm_free(p);
        return;
    }
    n->repair_running = 1;
    if (nd_work(n, scan_fn, scan_done, p) != 0)
        pass_free(p);
}

/* ---- GC of staged uploads that never committed ---- */

struct gc_pass {
    struct nd_node *n;
    int64_t before_ms;
    uint8_t (*ids)[ND_UPLOAD_ID_LEN];
    char **keys;
    size_t nids, cap;
};

static void gc_pass_free(struct gc_pass *g)
{
    for (size_t i = 0; i < g->nids; i++)
        cm_free(g->keys[i]);
    cm_free(g->ids);
    cm_free(g->keys);
    g->n->gc_running = 0;
    cm_free(g);
}

static void gc_scan_fn(void *arg)
{
    struct gc_pass *g = arg;
    rocksdb_iterator_t *it = rocksdb_create_iterator(g->n->store.db, g->n->store.ro);
    for (rocksdb_iter_seek(it, "s", 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen == 0 || k[0] != 's')
            break;
        if (klen != 1 + ND_UPLOAD_ID_LEN)
            continue;
        const char *v = rocksdb_iter_value(it, &vlen);
        Hw__ObjectMeta *m = nd_meta_unpack(v, vlen);
        if (m != NULL && m->created_ms < g->before_ms && m->key != NULL && g->nids < 4096) {
            if (g->nids == g->cap) {
                size_t cap = g->cap ? g->cap * 2 : 64;
                void *ni = cm_realloc(g->ids, cap * ND_UPLOAD_ID_LEN);
                if (ni != NULL)
                    g->ids = ni;
                void *nk = cm_realloc(g->keys, cap * sizeof(char *));
                if (nk != NULL)
                    g->keys = nk;
                if (ni == NULL || nk == NULL) {
                    hw__object_meta__free_unpacked(m, NULL);
                    break;
                }
                g->cap = cap;
            }
            memcpy(g->ids[g->nids], k + 1, ND_UPLOAD_ID_LEN);
            g->keys[g->nids] = cm_strdup(m->key);
            if (g->keys[g->nids] != NULL)
                g->nids++;
        }
        if (m != NULL)
            hw__object_meta__free_unpacked(m, NULL);
    }
    rocksdb_iter_destroy(it);
}

static void gc_scan_done(void *arg, int status)
{
    struct gc_pass *g = arg;
    struct nd_node *n = g->n;
    size_t dropped = 0;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    for (size_t i = 0; i < g->nids && status == 0; i++) {
        if (nd_upload_active(n, g->ids[i]))
            continue;
        struct nd_skey sk, ck;
        uint64_t version;
        nd_skey_staged(&sk, g->ids[i]);
        nd_batch_del(b, &sk);
        nd_skey_committed(&ck, nd_shard_of(g->keys[i], (uint32_t)n->cfg->shards), g->ids[i]);
        if (nd_store_get_u64(&n->store, &ck, &version) != 0)
            nd_batch_del_chunks(b, g->ids[i]); /* never committed: the bytes go too */
        dropped++;
    }
    if (dropped > 0) {
        nd_store_write(&n->store, b, 0);
        CM_INFO("gc dropped staged uploads count=%zu", dropped);
    }
    rocksdb_writebatch_destroy(b);
    gc_pass_free(g);
}

void nd_repair_tick(struct nd_node *n)
{
    nd_repair_kick(n);
    uint64_t now = cm_mono_ms();
    uint64_t every =
        n->cfg->staged_ttl * 500 < GC_EVERY_MS ? n->cfg->staged_ttl * 500 : GC_EVERY_MS;
    if (n->gc_running || n->stopping || now - n->last_gc_ms < every)
        return;
    n->last_gc_ms = now;
    struct gc_pass *g = cm_calloc(1, sizeof(*g));
    if (g == NULL)
        return;
    g->n = n;
    g->before_ms = cm_wall_ms() - (int64_t)n->cfg->staged_ttl * 1000;
    n->gc_running = 1;
    if (nd_work(n, gc_scan_fn, gc_scan_done, g) != 0)
        gc_pass_free(g);
}
