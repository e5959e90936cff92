/* Shard state machine (see fsm.h).
 *
 * PUT at index i:  committed upload again -> no-op (same version, precondition not evaluated:
 *                  a retry answers what the first attempt did); else a precondition that does
 *                  not hold against the key's current version -> no-op, result says so (the
 *                  staged upload stays for a retry or GC); else the key's meta gets
 *                  version i; the staged upload is promoted (local) when this node holds it
 *                  finished with the right size and checksum, else a repair marker is set.
 *                  The replaced version's bytes are dropped.
 * DELETE at i:     a retried one (its op id has a 'c' record) -> no-op, answered as the first;
 *                  else meta, bytes and repair marker of the key go.
 * Every batch also stores 'a' shard = i. The 'c' record of a committed upload holds its
 * version with the top bit set when that commit created the key (older records lack the bit:
 * read as "replaced"), so a retried commit answers what the first application did.
 *
 * Disk full: a batch the store refuses (CM_ENOSPC, or any write error) is not skipped and
 * does not stop the node: the entry and every later one wait, in order, in a bounded queue
 * (f->pending) while raft moves on; nd_fsm_retry (the node's tick) and every later apply try
 * the queue again, so the replica resumes by itself when space returns. While entries wait,
 * snapshots are refused (RAFT_BUSY: raft retries later) since the store lags raft's index. */
#include "shard/fsm.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "alloc.h"
#include "err.h"
#include "etag.h"
#include "log.h"
#include "store/meta.h"

/* The meta under k, NULL when absent (or undecodable: every replica reads it alike). A store
 * failure is remembered in f->read_err: the apply then fails whole instead of deciding on a
 * read it did not get. */
static Hw__ObjectMeta *get_meta(struct nd_fsm *f, const struct nd_skey *k)
{
    Hw__ObjectMeta *m;
    int rv = nd_meta_get(f->store, k, &m);
    if (rv != 0 && rv != CM_ENOTFOUND && rv != CM_EPROTO)
        f->read_err = rv;
    return rv == 0 ? m : NULL;
}

/* Keep the expiry index in step with a key's meta: drop the old entry, add the new one. */
static void expiry_update(struct nd_fsm *f, struct nd_batch *b, const Hw__ObjectMeta *old,
                          const Hw__ObjectMeta *cur)
{
    struct nd_skey k;
    if (old != NULL && old->expires_ms > 0) {
        nd_skey_expiry(&k, f->shard, (uint64_t)old->expires_ms, old->key, strlen(old->key));
        nd_batch_del(b, &k);
    }
    if (cur != NULL && cur->expires_ms > 0) {
        nd_skey_expiry(&k, f->shard, (uint64_t)cur->expires_ms, cur->key, strlen(cur->key));
        nd_batch_put(b, &k, "", 0);
    }
}

static void put_applied(struct nd_fsm *f, struct nd_batch *b, uint64_t index)
{
    struct nd_skey k;
    char v[8];
    nd_skey_applied(&k, f->shard);
    nd_put_u64(v, index);
    nd_batch_put(b, &k, v, sizeof(v));
}

/* Does this node hold the finished staged bytes of meta's upload? Drops a staged record that
 * cannot be promoted (unfinished or wrong size/checksum) together with its chunks. */
static int take_staged(struct nd_fsm *f, struct nd_batch *b, const Hw__ObjectMeta *meta)
{
    struct nd_skey k;
    nd_skey_staged(&k, meta->upload_id.data);
    Hw__ObjectMeta *st = get_meta(f, &k);
    if (st == NULL)
        return 0;
    int ok = st->local && st->size == meta->size && st->checksum == meta->checksum;
    nd_batch_del(b, &k);
    if (!ok)
        nd_batch_del_chunks(b, meta->upload_id.data);
    hw__object_meta__free_unpacked(st, NULL);
    return ok;
}

/* Does the entry's precondition hold against old, the key's committed meta (NULL = none)? Only
 * inputs every replica shares: the stored version, and expiry judged at the entry's created_ms
 * (the leader's clock when it proposed), never this node's clock. */
static int precondition_holds(const Hw__Precondition *pc, const Hw__ObjectMeta *old,
                              const Hw__ObjectMeta *meta)
{
    int live = old != NULL && !(old->expires_ms > 0 && meta->created_ms >= old->expires_ms);
    return cm_precond_commit_ok(pc, live, live ? old->version : 0, live ? old->created_ms : 0);
}

/* An entry whose id (upload id, DELETE op id) has a 'c' record within the retry window is a
 * retry: 1, result.version = the first application's, *flag its top bit (created / found); 0
 * when new, or an error. The window is checked here, so every replica decides alike whether or
 * not it dropped the record yet. */
static int retry_of(struct nd_fsm *f, const struct nd_skey *ck, uint64_t index, int *flag)
{
    uint64_t first;
    int rv = nd_store_get_u64(f->store, ck, &first);
    if (rv == CM_ENOTFOUND ||
        (rv == 0 && (first & ~ND_FSM_CREATED_BIT) + ND_FSM_RETRY_WINDOW < index))
        return 0;
    if (rv != 0)
        return rv;
    f->result.version = first & ~ND_FSM_CREATED_BIT;
    *flag = (first & ND_FSM_CREATED_BIT) != 0;
    return 1;
}

/* The 'c' record of an entry applied at index (flag: created / found). */
static void committed_put(struct nd_batch *b, const struct nd_skey *ck, uint64_t index, int flag)
{
    char v[8];
    nd_put_u64(v, index | (flag ? ND_FSM_CREATED_BIT : 0));
    nd_batch_put(b, ck, v, sizeof(v));
}

static int apply_put(struct nd_fsm *f, struct nd_batch *b, uint64_t index, Hw__ObjectMeta *meta,
                     const Hw__Precondition *pc)
{
    struct nd_skey ck, mk, rk;

    if (meta->upload_id.len != ND_UPLOAD_ID_LEN || meta->key == NULL ||
        strlen(meta->key) > ND_KEY_MAX)
        return CM_EINVAL;
    nd_skey_committed(&ck, f->shard, meta->upload_id.data);
    int retry = retry_of(f, &ck, index, &f->result.created);
    if (retry != 0) /* a retried commit: no second version; created as the first decided */
        return retry == 1 ? 0 : retry;
    size_t keylen = strlen(meta->key);
    nd_skey_meta(&mk, f->shard, meta->key, keylen);
    nd_skey_repair(&rk, f->shard, meta->key, keylen);
    Hw__ObjectMeta *old = get_meta(f, &mk);
    if (!precondition_holds(pc, old, meta)) {
        f->result.precondition_failed = 1;
        if (old != NULL)
            hw__object_meta__free_unpacked(old, NULL);
        return 0;
    }
    if (old != NULL) {
        if (old->local)
            nd_batch_del_chunks(b, old->upload_id.data);
        else if (f->repair_backlog > 0)
            f->repair_backlog--;
    }
    meta->version = index;
    meta->local = take_staged(f, b, meta);
    if (meta->local) {
        nd_batch_del(b, &rk);
    } else {
        nd_batch_put(b, &rk, meta->upload_id.data, ND_UPLOAD_ID_LEN);
        f->repair_backlog++;
    }
    expiry_update(f, b, old, meta);
    int rv = nd_meta_put(b, &mk, meta);
    committed_put(b, &ck, index, old == NULL);
    f->result.version = index;
    f->result.created = old == NULL;
    f->result.changed = 1;
    f->result.created_ms = meta->created_ms;
    f->result.expires_ms = meta->expires_ms;
    if (old != NULL)
        hw__object_meta__free_unpacked(old, NULL);
    return rv;
}

/* DELETE, or EXPIRE when only_version != 0: remove the key only if it still has that
 * version (a PUT after the expiry was decided wins). */
/* A DELETE entry's op id (the gateway's, the same in each of its attempts) is remembered like
 * a committed upload id ('c' record: the delete's index, the top bit set when it found the key):
 * an attempt the log holds twice (its answer was lost, the gateway tried again) is answered as
 * the first application was and deletes nothing, not a version written in between. */
static int apply_delete(struct nd_fsm *f, struct nd_batch *b, uint64_t index,
                        const Hw__ObjectMeta *meta, uint64_t only_version)
{
    struct nd_skey mk, rk, ck;
    if (meta->key == NULL || strlen(meta->key) > ND_KEY_MAX)
        return CM_EINVAL;
    int op = only_version == 0 && meta->upload_id.len == ND_UPLOAD_ID_LEN;
    if (op) {
        nd_skey_committed(&ck, f->shard, meta->upload_id.data);
        int retry = retry_of(f, &ck, index, &f->result.found);
        if (retry != 0)
            return retry == 1 ? 0 : retry;
    }
    size_t keylen = strlen(meta->key);
    nd_skey_meta(&mk, f->shard, meta->key, keylen);
    nd_skey_repair(&rk, f->shard, meta->key, keylen);
    Hw__ObjectMeta *old = get_meta(f, &mk);
    if (old != NULL && only_version != 0 && old->version != only_version) {
        hw__object_meta__free_unpacked(old, NULL);
        old = NULL;
    }
    f->result.version = index;
    f->result.found = old != NULL;
    f->result.changed = old != NULL;
    if (op)
        committed_put(b, &ck, index, old != NULL);
    if (old == NULL)
        return 0;
    expiry_update(f, b, old, NULL);
    if (old->local)
        nd_batch_del_chunks(b, old->upload_id.data);
    else if (f->repair_backlog > 0)
        f->repair_backlog--;
    nd_batch_del(b, &mk);
    nd_batch_del(b, &rk);
    hw__object_meta__free_unpacked(old, NULL);
    return 0;
}

static Hw__RaftEntry *entry_decode(const void *data, size_t len);

/* *out: the decoded entry (the caller frees it), NULL when it was not decodable. */
static int apply_entry(struct nd_fsm *f, struct nd_batch *b, uint64_t index, const void *data,
                       size_t len, Hw__RaftEntry **out)
{
    Hw__RaftEntry *e = entry_decode(data, len);
    int rv = CM_EINVAL;
    *out = e;
    if (e != NULL && e->meta != NULL && e->shard == f->shard) {
        if (e->kind == HW__RAFT_ENTRY__KIND__KIND_PUT)
            rv = apply_put(f, b, index, e->meta, e->precondition);
        else if (e->kind == HW__RAFT_ENTRY__KIND__KIND_DELETE)
            rv = apply_delete(f, b, index, e->meta, 0);
        else if (e->kind == HW__RAFT_ENTRY__KIND__KIND_EXPIRE && e->meta->version > 0)
            rv = apply_delete(f, b, index, e->meta, e->meta->version);
    }
    return f->read_err != 0 ? f->read_err : rv;
}

int nd_fsm_apply_at(struct nd_fsm *f, uint64_t index, const void *data, size_t len)
{
    uint64_t backlog_before = f->repair_backlog;
    struct nd_batch b;
    memset(&f->result, 0, sizeof(f->result));
    if (index <= f->applied)
        return 0; /* already in the store: replay after a restart */
    nd_batch_init(&b);
    f->read_err = 0;
    Hw__RaftEntry *e = NULL;
    int rv = apply_entry(f, &b, index, data, len, &e);
    if (rv == CM_EINVAL) {
        /* Skip the entry but still record the index: every replica skips it alike. */
        CM_WARN("fsm skipped a malformed entry shard=%u index=%llu", f->shard,
                (unsigned long long)index);
        nd_batch_clear(&b);
        f->repair_backlog = backlog_before;
        memset(&f->result, 0, sizeof(f->result));
    }
    put_applied(f, &b, index);
    int wrv = rv != 0 && rv != CM_EINVAL ? rv : nd_store_write(f->store, &b, 0);
    nd_batch_close(&b);
    if (wrv != 0) {
        /* Nothing was written: the entry is not applied here, in the store or in memory. */
        f->repair_backlog = backlog_before;
        memset(&f->result, 0, sizeof(f->result));
        if (e != NULL)
            hw__raft_entry__free_unpacked(e, NULL);
        return wrv;
    }
    f->applied = index;
    f->result.index = index;
    if (f->repair_backlog > backlog_before && f->on_missing != NULL)
        f->on_missing(f, f->data);
    if (rv == 0 && f->result.changed && f->on_event != NULL)
        f->on_event(f, index, e->kind, e->meta, f->data);
    if (e != NULL)
        hw__raft_entry__free_unpacked(e, NULL);
    return rv == 0 ? 0 : RAFT_MALFORMED;
}

struct nd_fsm_pending {
    struct nd_fsm_pending *next;
    uint64_t index;
    size_t len;
    unsigned char data[];
};

static void pending_pop(struct nd_fsm *f)
{
    struct nd_fsm_pending *p = f->pending_head;
    f->pending_head = p->next;
    if (f->pending_head == NULL)
        f->pending_tail = NULL;
    f->pending_n--;
    f->pending_bytes -= p->len;
    cm_free(p);
}

int nd_fsm_retry(struct nd_fsm *f)
{
    size_t n = f->pending_n;
    while (f->pending_head != NULL) {
        struct nd_fsm_pending *p = f->pending_head;
        int rv = nd_fsm_apply_at(f, p->index, p->data, p->len);
        if (rv != 0 && rv != RAFT_MALFORMED) {
            f->pending_err = rv;
            return rv;
        }
        pending_pop(f);
    }
    if (n > 0) {
        CM_INFO("fsm: the store takes writes again; waiting entries applied shard=%u n=%zu "
                "applied=%llu",
                f->shard, n, (unsigned long long)f->applied);
        f->pending_err = 0;
    }
    return 0;
}

/* The store refused the batch of a committed entry: it waits, with every later one. */
static void defer(struct nd_fsm *f, uint64_t index, const void *data, size_t len, int err)
{
    f->store_refusals++;
    if (f->pending_head == NULL)
        CM_WARN("fsm: the store refused an apply; entries wait until it takes writes again "
                "shard=%u index=%llu err=%s",
                f->shard, (unsigned long long)index, cm_strerror(err));
    f->pending_err = err;
    struct nd_fsm_pending *p = NULL;
    if (f->pending_n < ND_FSM_PENDING_MAX && f->pending_bytes + len <= ND_FSM_PENDING_BYTES_MAX)
        p = cm_malloc(sizeof(*p) + len);
    if (p == NULL) {
        /* Skipping the entry would let this replica diverge; raft cannot be told to wait. */
        CM_ERROR("fsm cannot keep more entries waiting for the store; stopping shard=%u "
                 "index=%llu waiting=%zu err=%s",
                 f->shard, (unsigned long long)index, f->pending_n, cm_strerror(err));
        abort();
    }
    p->next = NULL;
    p->index = index;
    p->len = len;
    memcpy(p->data, data, len);
    if (f->pending_tail != NULL)
        f->pending_tail->next = p;
    else
        f->pending_head = p;
    f->pending_tail = p;
    f->pending_n++;
    f->pending_bytes += len;
    memset(&f->result, 0, sizeof(f->result));
    f->result.deferred = 1;
    f->result.index = index;
}

static int fsm_apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    struct nd_fsm *f = rf->data;
    /* raft sets last_applied after apply returns: the entry being applied is the next one. */
    uint64_t index = raft_last_applied(f->r) + 1;
    /* Never a non-zero return: raft 0.15 would stall its apply loop on the entry, or (on a
     * follower) turn the whole replica unavailable for good. */
    int rv = nd_fsm_retry(f);
    if (rv == 0)
        rv = nd_fsm_apply_at(f, index, buf->base, buf->len);
    if (rv != 0 && rv != RAFT_MALFORMED)
        defer(f, index, buf->base, buf->len, rv);
    *result = &f->result;
    return 0;
}

uint64_t nd_fsm_applied(const struct nd_fsm *f)
{
    return f->applied;
}

void nd_fsm_close(struct nd_fsm *f)
{
    while (f->pending_head != NULL)
        pending_pop(f);
}

int nd_fsm_encode(const Hw__RaftEntry *e, struct raft_buffer *out)
{
    /* raft_uv's segment format needs entry lengths that are multiples of 8 (a shorter tail
     * makes the closed segment unreadable on restart): u32 BE protobuf length, protobuf,
     * zero padding. */
    size_t len = hw__raft_entry__get_packed_size(e);
    out->len = (4 + len + 7) & ~(size_t)7;
    out->base = raft_calloc(1, out->len);
    if (out->base == NULL)
        return CM_ENOMEM;
    uint8_t *p = out->base;
    p[0] = (uint8_t)(len >> 24);
    p[1] = (uint8_t)(len >> 16);
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
    hw__raft_entry__pack(e, p + 4);
    return 0;
}

static Hw__RaftEntry *entry_decode(const void *data, size_t len)
{
    const uint8_t *p = data;
    if (len < 4)
        return NULL;
    size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    if (n > len - 4)
        return NULL;
    return hw__raft_entry__unpack(NULL, n, p + 4);
}

/* Iterate over every record with a given tag+shard prefix. */
static int each_prefix(struct nd_store *s, char tag, uint32_t shard, nd_store_each_cb cb, void *arg)
{
    struct nd_skey p;
    nd_skey_prefix(&p, tag, shard);
    return nd_store_each(s, &p, NULL, cb, arg);
}

static int count_cb(const char *k, size_t klen, const char *v, size_t vlen, void *arg)
{
    (*(uint64_t *)arg)++;
    return 0;
}

struct snap_build {
    Hw__ObjectMeta **objs;
    size_t n, cap;
    ProtobufCBinaryData *ups;
    size_t nups, capups;
    uint64_t applied;     /* 'c' records older than the retry window are not carried, */
    struct nd_batch drop; /* but dropped from the store */
    size_t dropped;
    int oom;
};

static int snap_meta_cb(const char *k, size_t klen, const char *v, size_t vlen, void *arg)
{
    struct snap_build *sb = arg;
    if (sb->n == sb->cap) {
        size_t cap = sb->cap ? sb->cap * 2 : 64;
        void *p = cm_realloc(sb->objs, cap * sizeof(*sb->objs));
        if (p == NULL)
            return sb->oom = CM_ENOMEM;
        sb->objs = p;
        sb->cap = cap;
    }
    Hw__ObjectMeta *m = nd_meta_unpack(v, vlen);
    if (m == NULL)
        return 0;
    m->local = 0; /* receiver-relative */
    sb->objs[sb->n++] = m;
    return 0;
}

static int snap_committed_cb(const char *k, size_t klen, const char *v, size_t vlen, void *arg)
{
    struct snap_build *sb = arg;
    if (klen != 5 + ND_UPLOAD_ID_LEN || vlen != 8)
        return 0;
    if ((nd_get_u64(v) & ~ND_FSM_CREATED_BIT) + ND_FSM_RETRY_WINDOW < sb->applied) {
        nd_batch_del_raw(&sb->drop, k, klen);
        sb->dropped++;
        return 0;
    }
    if (sb->nups == sb->capups) {
        size_t cap = sb->capups ? sb->capups * 2 : 64;
        void *p = cm_realloc(sb->ups, cap * sizeof(*sb->ups));
        if (p == NULL)
            return sb->oom = CM_ENOMEM;
        sb->ups = p;
        sb->capups = cap;
    }
    uint8_t *d = cm_malloc(ND_UPLOAD_ID_LEN + 8);
    if (d == NULL)
        return sb->oom = CM_ENOMEM;
    memcpy(d, k + 5, ND_UPLOAD_ID_LEN);
    memcpy(d + ND_UPLOAD_ID_LEN, v, 8);
    sb->ups[sb->nups].data = d;
    sb->ups[sb->nups++].len = ND_UPLOAD_ID_LEN + 8;
    return 0;
}

static void snap_build_free(struct snap_build *sb)
{
    for (size_t i = 0; i < sb->n; i++)
        hw__object_meta__free_unpacked(sb->objs[i], NULL);
    for (size_t i = 0; i < sb->nups; i++)
        cm_free(sb->ups[i].data);
    cm_free(sb->objs);
    cm_free(sb->ups);
    nd_batch_close(&sb->drop);
}

static int fsm_snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct nd_fsm *f = rf->data;
    struct snap_build sb = {0};
    Hw__Snapshot snap = HW__SNAPSHOT__INIT;
    int rv = CM_ENOMEM;
    uint64_t t0 = uv_hrtime();

    /* Entries before this snapshot leave the raft log: the store must hold them all, durably.
     * RAFT_BUSY: raft tries again later (any other error would stop a follower for good). */
    if (f->pending_head != NULL || nd_store_sync(f->store) != 0)
        return RAFT_BUSY;
    nd_batch_init(&sb.drop);
    sb.applied = f->applied;
    each_prefix(f->store, 'm', f->shard, snap_meta_cb, &sb);
    each_prefix(f->store, 'c', f->shard, snap_committed_cb, &sb);
    if (sb.oom || sb.drop.oom)
        goto out;
    /* Unsynced: a record that comes back after a crash is dropped by the next snapshot, and
     * past the window it answers nothing anyway (committed_get). */
    if (sb.dropped > 0 && nd_store_write(f->store, &sb.drop, 0) != 0)
        CM_WARN("msg=\"could not drop old committed-upload records\" count=%zu", sb.dropped);
    snap.shard = f->shard;
    snap.applied_index = f->applied;
    snap.n_objects = sb.n;
    snap.objects = sb.objs;
    snap.n_committed_uploads = sb.nups;
    snap.committed_uploads = sb.ups;
    *bufs = raft_malloc(sizeof(**bufs));
    if (*bufs == NULL)
        goto out;
    (*bufs)[0].len = hw__snapshot__get_packed_size(&snap);
    (*bufs)[0].base = raft_malloc((*bufs)[0].len ? (*bufs)[0].len : 1);
    if ((*bufs)[0].base == NULL) {
        raft_free(*bufs);
        goto out;
    }
    hw__snapshot__pack(&snap, (*bufs)[0].base);
    *n_bufs = 1;
    rv = 0;
    CM_INFO("snapshot taken shard=%u applied=%llu objects=%zu committed_uploads=%zu dropped=%zu "
            "bytes=%zu ms=%.1f",
            f->shard, (unsigned long long)f->applied, sb.n, sb.nups, sb.dropped,
            (size_t)(*bufs)[0].len, (double)(uv_hrtime() - t0) / 1e6);
out:
    snap_build_free(&sb);
    return rv == 0 ? 0 : RAFT_NOMEM;
}

/* Upload ids whose local bytes survive a snapshot restore, sorted for bsearch. */
struct kept {
    uint8_t (*ids)[ND_UPLOAD_ID_LEN];
    size_t n;
    struct nd_batch *drop;
};

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, ND_UPLOAD_ID_LEN);
}

/* Drop the local state of the shard that a newer snapshot replaces; an old local version
 * that is not kept loses its bytes. */
static int drop_old_cb(const char *k, size_t klen, const char *v, size_t vlen, void *arg)
{
    struct kept *kp = arg;
    nd_batch_del_raw(kp->drop, k, klen);
    if (k[0] != 'm')
        return 0;
    Hw__ObjectMeta *m = nd_meta_unpack(v, vlen);
    if (m != NULL && m->local && m->upload_id.len == ND_UPLOAD_ID_LEN &&
        (kp->n == 0 ||
         bsearch(m->upload_id.data, kp->ids, kp->n, ND_UPLOAD_ID_LEN, cmp_id) == NULL))
        nd_batch_del_chunks(kp->drop, m->upload_id.data);
    if (m != NULL)
        hw__object_meta__free_unpacked(m, NULL);
    return 0;
}

static void restore_object(struct nd_fsm *f, struct nd_batch *b, Hw__ObjectMeta *m, struct kept *kp,
                           uint64_t *backlog)
{
    struct nd_skey mk, rk;
    if (m->key == NULL || strlen(m->key) > ND_KEY_MAX || m->upload_id.len != ND_UPLOAD_ID_LEN)
        return;
    nd_skey_meta(&mk, f->shard, m->key, strlen(m->key));
    nd_skey_repair(&rk, f->shard, m->key, strlen(m->key));
    Hw__ObjectMeta *old = get_meta(f, &mk);
    int keep = old != NULL && old->local && old->upload_id.len == ND_UPLOAD_ID_LEN &&
               memcmp(old->upload_id.data, m->upload_id.data, ND_UPLOAD_ID_LEN) == 0;
    if (old != NULL)
        hw__object_meta__free_unpacked(old, NULL);
    m->local = keep || take_staged(f, b, m);
    if (keep)
        memcpy(kp->ids[kp->n++], m->upload_id.data, ND_UPLOAD_ID_LEN);
    if (!m->local) {
        nd_batch_put(b, &rk, m->upload_id.data, ND_UPLOAD_ID_LEN);
        (*backlog)++;
    }
    expiry_update(f, b, NULL, m);
    nd_meta_put(b, &mk, m);
}

static void restore_committed(struct nd_fsm *f, struct nd_batch *b, const Hw__Snapshot *snap)
{
    for (size_t i = 0; i < snap->n_committed_uploads; i++) {
        const ProtobufCBinaryData *u = &snap->committed_uploads[i];
        if (u->len != ND_UPLOAD_ID_LEN + 8)
            continue;
        struct nd_skey ck;
        nd_skey_committed(&ck, f->shard, u->data);
        nd_batch_put(b, &ck, u->data + ND_UPLOAD_ID_LEN, 8);
    }
}

static int fsm_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
    struct nd_fsm *f = rf->data;
    Hw__Snapshot *snap = hw__snapshot__unpack(NULL, buf->len, buf->base);
    if (snap == NULL || snap->shard != f->shard) {
        if (snap != NULL)
            hw__snapshot__free_unpacked(snap, NULL);
        CM_ERROR("snapshot restore: undecodable snapshot shard=%u", f->shard);
        return RAFT_MALFORMED;
    }
    if (snap->applied_index <= f->applied) {
        CM_INFO("snapshot restore skipped: store is newer shard=%u snapshot=%llu applied=%llu",
                f->shard, (unsigned long long)snap->applied_index, (unsigned long long)f->applied);
        hw__snapshot__free_unpacked(snap, NULL);
        raft_free(buf->base);
        return 0;
    }
    struct kept kp = {0};
    kp.ids = cm_malloc((snap->n_objects + 1) * ND_UPLOAD_ID_LEN);
    if (kp.ids == NULL) {
        hw__snapshot__free_unpacked(snap, NULL);
        return RAFT_NOMEM;
    }
    struct nd_batch batch, drop, *b = &batch;
    nd_batch_init(&batch);
    nd_batch_init(&drop);
    kp.drop = &drop;
    uint64_t backlog = 0;
    /* Objects whose local bytes stay valid keep them: decide before dropping anything. */
    for (size_t i = 0; i < snap->n_objects; i++)
        restore_object(f, b, snap->objects[i], &kp, &backlog);
    qsort(kp.ids, kp.n, ND_UPLOAD_ID_LEN, cmp_id);
    each_prefix(f->store, 'm', f->shard, drop_old_cb, &kp);
    each_prefix(f->store, 'r', f->shard, drop_old_cb, &kp);
    each_prefix(f->store, 'c', f->shard, drop_old_cb, &kp);
    each_prefix(f->store, 'x', f->shard, drop_old_cb, &kp);
    restore_committed(f, b, snap);
    put_applied(f, b, snap->applied_index);
    int rv = nd_store_write(f->store, kp.drop, 1);
    if (rv == 0)
        rv = nd_store_write(f->store, b, 1);
    nd_batch_close(&drop);
    nd_batch_close(&batch);
    cm_free(kp.ids);
    if (rv != 0) {
        /* raft rejects the install and the leader sends it again later; the applied index is
         * in the second batch, so a half-done restore is redone whole. */
        CM_WARN("snapshot restore cannot write to the store shard=%u err=%s", f->shard,
                cm_strerror(rv));
        f->store_refusals++;
        hw__snapshot__free_unpacked(snap, NULL);
        return RAFT_IOERR;
    }
    while (f->pending_head != NULL && f->pending_head->index <= snap->applied_index)
        pending_pop(f); /* the snapshot holds their effect */
    CM_INFO("snapshot restored shard=%u applied=%llu objects=%zu missing=%llu", f->shard,
            (unsigned long long)snap->applied_index, snap->n_objects, (unsigned long long)backlog);
    f->applied = snap->applied_index;
    f->repair_backlog = backlog;
    hw__snapshot__free_unpacked(snap, NULL);
    raft_free(buf->base);
    if (backlog > 0 && f->on_missing != NULL)
        f->on_missing(f, f->data);
    if (f->on_restored != NULL)
        f->on_restored(f, f->applied, f->data);
    return 0;
}

int nd_fsm_init(struct nd_fsm *f, struct nd_store *store, uint32_t shard, struct raft *r)
{
    struct nd_skey k;
    memset(f, 0, sizeof(*f));
    f->store = store;
    f->shard = shard;
    f->r = r;
    f->raft.version = 1;
    f->raft.data = f;
    f->raft.apply = fsm_apply;
    f->raft.snapshot = fsm_snapshot;
    f->raft.restore = fsm_restore;
    nd_skey_applied(&k, shard);
    int rv = nd_store_get_u64(store, &k, &f->applied);
    if (rv != 0 && rv != CM_ENOTFOUND)
        return rv;
    return each_prefix(store, 'r', shard, count_cb, &f->repair_backlog);
}
