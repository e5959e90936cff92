/* Repair of one shard replica's missing bytes.
 *
 * Repair: a pass scans up to REPAIR_BATCH repair markers ('r') after a cursor (thread pool),
 * then repairs them one at a time: FETCH the bytes of the committed upload from a holder,
 * verify size and crc32c, write them as chunks with a WAL sync (thread pool), then, on the
 * loop thread where apply also runs, flip the meta to local and drop the marker if the key
 * still names that upload (else the fetched bytes are dropped). A holder failing moves to the
 * next; an object no holder serves is retried on a later pass. A pass that repaired nothing
 * waits REPAIR_RETRY_MS (+ up to 50% jitter, from the clock seam) before the next. */
#include "bg/repair.h"

#include <string.h>

#include "alloc.h"
#include "crc32c.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "rpc/call.h"
#include "store/meta.h"

#define REPAIR_BATCH 32

struct repair_pass {
    struct nd_repair *rp;
    Hw__ObjectMeta *items[REPAIR_BATCH];
    size_t nitems, cur;
    size_t failed; /* items left for a later pass */
    char *cursor;  /* owned copy of the scan start */
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
    p->rp->running = 0;
    if (p->failed > 0)
        p->rp->not_before = nd_mono_ms(p->rp->h->clock) + REPAIR_RETRY_MS +
                            nd_random(p->rp->h->clock) % (REPAIR_RETRY_MS / 2 + 1);
    cm_free(p);
}

static void scan_fn(void *arg)
{
    struct repair_pass *p = arg;
    struct nd_repair *rp = p->rp;
    struct nd_store *s = rp->h->store;
    struct nd_store_iter *it;
    struct nd_skey pre, k;
    nd_skey_prefix(&pre, 'r', rp->sh->id);
    if (nd_store_iter_new(s, 0, &it) != 0)
        return; /* an empty pass: retried later */
    if (p->cursor != NULL) {
        nd_skey_repair(&k, rp->sh->id, p->cursor, strlen(p->cursor));
        nd_store_iter_seek(it, k.b, k.len);
        if (nd_store_iter_valid(it)) {
            size_t klen;
            const char *kk = nd_store_iter_key(it, &klen);
            if (klen == k.len && memcmp(kk, k.b, klen) == 0)
                nd_store_iter_next(it);
        }
    } else {
        nd_store_iter_seek(it, pre.b, pre.len);
    }
    while (p->nitems < REPAIR_BATCH && nd_store_iter_valid(it)) {
        size_t klen;
        const char *kk = nd_store_iter_key(it, &klen);
        if (!nd_skey_has_prefix(kk, klen, &pre))
            break;
        struct nd_skey mk;
        Hw__ObjectMeta *m;
        nd_skey_meta(&mk, rp->sh->id, kk + pre.len, klen - pre.len);
        if (nd_meta_get(s, &mk, &m) == 0) {
            if (!m->local)
                p->items[p->nitems++] = m;
            else
                hw__object_meta__free_unpacked(m, NULL);
        }
        nd_store_iter_next(it);
    }
    p->wrapped = p->nitems < REPAIR_BATCH;
    nd_store_iter_free(it);
}

static void scan_done(void *arg, int status)
{
    struct repair_pass *p = arg;
    struct nd_repair *rp = p->rp;
    cm_free(rp->cursor);
    rp->cursor = NULL;
    if (!p->wrapped && p->nitems > 0)
        rp->cursor = cm_strdup(p->items[p->nitems - 1]->key);
    p->cur = 0;
    repair_next(p);
}

/* Loop thread: adopt the fetched version if the key still names it. */
static void finalize(struct repair_pass *p, const Hw__ObjectMeta *want)
{
    struct nd_repair *rp = p->rp;
    struct nd_store *s = rp->h->store;
    struct nd_skey mk, rk;
    struct nd_batch b;
    Hw__ObjectMeta *cur = NULL;
    nd_skey_meta(&mk, rp->sh->id, want->key, strlen(want->key));
    nd_skey_repair(&rk, rp->sh->id, want->key, strlen(want->key));
    nd_meta_get(s, &mk, &cur);
    nd_batch_init(&b);
    if (cur != NULL && !cur->local && cur->upload_id.len == ND_UPLOAD_ID_LEN &&
        memcmp(cur->upload_id.data, want->upload_id.data, ND_UPLOAD_ID_LEN) == 0) {
        cur->local = 1;
        if (nd_meta_put(&b, &mk, cur) == 0) {
            nd_batch_del(&b, &rk);
            if (nd_store_write(s, &b, 0) == 0 && rp->sh->fsm.repair_backlog > 0)
                rp->sh->fsm.repair_backlog--;
            CM_INFO("repaired key=%s version=%llu size=%llu", want->key,
                    (unsigned long long)want->version, (unsigned long long)want->size);
        }
    } else {
        nd_batch_del_chunks(&b, want->upload_id.data); /* superseded meanwhile */
        nd_store_write(s, &b, 0);
    }
    nd_batch_close(&b);
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
    struct nd_batch b;
    nd_batch_init(&b);
    for (size_t i = 0; i < p->nparts; i++) {
        struct nd_skey k;
        nd_skey_chunk(&k, m->upload_id.data, p->part_off[i]);
        nd_batch_put_ref(&b, &k, cm_slice_ptr(&p->parts[i]), p->parts[i].len);
    }
    p->rv = nd_store_write(p->rp->h->store, &b, 1);
    nd_batch_close(&b);
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
              p->got + payload->len > m->size || p->rp->h->stopping;
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
    if (nd_work(p->rp->h->work, write_fn, write_done, p) != 0) {
        pass_clear_parts(p);
        p->failed++;
        p->cur++;
        repair_next(p);
    }
    return 1;
}

static void try_holder(struct repair_pass *p)
{
    struct nd_host *h = p->rp->h;
    const Hw__ObjectMeta *m = p->items[p->cur];
    while (!h->stopping && p->holder < m->n_holders) {
        uint32_t holder = m->holders[p->holder];
        const char *rpc = nd_host_rpc_of(h, holder);
        if (holder != h->cfg.id && rpc != NULL) {
            Hw__Envelope req;
            Hw__Fetch f = HW__FETCH__INIT;
            cm_env_init(&req, HW__MSG_TYPE__MSG_FETCH, ++h->next_req_id, p->rp->sh->id);
            f.key = m->key;
            f.upload_id = m->upload_id;
            req.fetch = &f;
            if (nd_call_start(h->loop, h->auth, rpc, h->cfg.id, h->cfg.listen, &req, 3000, on_fetch,
                              p, &p->call) == 0)
                return;
        }
        p->holder++;
    }
    if (!h->stopping)
        CM_WARN("repair: no holder served key=%s version=%llu; retrying later", m->key,
                (unsigned long long)m->version);
    p->failed++;
    p->cur++;
    repair_next(p);
}

static void repair_next(struct repair_pass *p)
{
    if (p->cur >= p->nitems || p->rp->h->stopping) {
        pass_free(p);
        return;
    }
    p->holder = 0;
    try_holder(p);
}

void nd_repair_init(struct nd_repair *rp, struct nd_host *h, struct nd_shard *sh)
{
    memset(rp, 0, sizeof(*rp));
    rp->h = h;
    rp->sh = sh;
}

void nd_repair_close(struct nd_repair *rp)
{
    cm_free(rp->cursor);
    rp->cursor = NULL;
}

void nd_repair_kick(struct nd_repair *rp)
{
    struct nd_host *h = rp->h;
    if (rp->running || h->stopping || !rp->sh->started || rp->sh->fsm.repair_backlog == 0)
        return;
    struct repair_pass *p = cm_calloc(1, sizeof(*p));
    if (p == NULL)
        return;
    p->rp = rp;
    if (rp->cursor != NULL && (p->cursor = cm_strdup(rp->cursor)) == NULL) {
        cm_free(p);
        return;
    }
    rp->running = 1;
    if (nd_work(h->work, scan_fn, scan_done, p) != 0)
        pass_free(p);
}

void nd_repair_tick(struct nd_repair *rp)
{
    if (nd_mono_ms(rp->h->clock) >= rp->not_before)
        nd_repair_kick(rp);
}
