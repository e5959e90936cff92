/* Volume store (see vol.h).
 *
 * Locks: `mu` guards the volume table (sizes, live bytes, refs, the active volume) and makes
 *   "read a chunk's old pointer, write the batch, count" one step, so the live-byte accounting
 *   and compaction's pointer swaps never interleave with a write. Payload pwrites and preads
 *   run outside it on a reference (refs) to their volume. `smu` guards the group commit.
 * Append: reserve [size, size + header + len) of the active volume under mu (sealing it and
 *   opening the next one when full), pwrite header and payload outside, mark it dirty.
 * Group commit: callers take a ticket; one of them syncs (every dirty volume's fdatasync, then
 *   the inner store's sync) for every ticket taken before it started; the others wait for a
 *   sync that started after their ticket.
 * Compaction (thread, every ND_VOL_TICK_MS, or nd_store_vol_compact): scan a sealed volume's
 *   headers; each record the index still names is copied to the active volume and its pointer
 *   swapped under mu if unchanged; then one group commit makes the new pointers durable, and
 *   the volume is unlinked (its fd closes when the last reader lets go). */
#include "store/vol.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "alloc.h"
#include "crc32c.h"
#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "store/skey.h"
#include "store/volrec.h"

#define ND_VOL_TICK_MS 1000u
#define ND_VOL_SPACE_MS 50u
#define ND_VOL_RESERVE_MIN (8ull << 20)
#define ND_VOL_RESERVE_MAX (64ull << 20) /* how old the free-space figure may be */
#define ND_VOL_SETTLE_MS 30000u /* a sealed volume's garbage is copied around only after this */
#define MIGRATE_BATCH 64
#define VOL_STOPPED 1 /* compaction asked to stop (not an error) */

struct volume {
    uint32_t id;
    int fd;
    uint64_t size; /* reserved end */
    uint64_t live; /* payload bytes named by pointers (an estimate; compaction checks) */
    unsigned refs;
    unsigned writers;   /* appends whose pointer is not written yet: not compactable */
    int dirty;          /* written since its last fdatasync */
    uint64_t sealed_ms; /* when the next volume took over (0: active) */
    int dead;           /* unlinked: closed and dropped at refs 0 */
};

struct vstore {
    struct nd_store inner;
    char dir[PATH_MAX - 32];
    struct nd_vol_opts o;
    uv_mutex_t mu;
    struct volume **v; /* by id, ascending; the last one is active */
    size_t nv, cap;
    uv_mutex_t smu;
    uv_cond_t scv;
    uint64_t ticket, done;
    int syncing, done_rv;
    uv_thread_t thr;
    uv_mutex_t tmu;
    uv_cond_t tcv;
    int stop, thr_on;
    struct nd_vol_stats st;                       /* counters under mu */
    uint64_t space_ms, free_bytes, reserve_bytes; /* statvfs of dir, under mu */
};

static const struct nd_store_ops vol_ops;

/* ---- the volume table (under mu) ---- */

static struct volume *vol_find(struct vstore *vs, uint32_t id)
{
    for (size_t i = vs->nv; i-- > 0;)
        if (vs->v[i]->id == id)
            return vs->v[i];
    return NULL;
}

static void vol_drop(struct vstore *vs, struct volume *v)
{
    for (size_t i = 0; i < vs->nv; i++) {
        if (vs->v[i] == v) {
            memmove(&vs->v[i], &vs->v[i + 1], (vs->nv - i - 1) * sizeof(*vs->v));
            vs->nv--;
            break;
        }
    }
    close(v->fd);
    cm_free(v);
}

static void vol_unref(struct vstore *vs, struct volume *v)
{
    uv_mutex_lock(&vs->mu);
    if (--v->refs == 0 && v->dead)
        vol_drop(vs, v);
    uv_mutex_unlock(&vs->mu);
}

static void vol_path(const struct vstore *vs, uint32_t id, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%08u.vol", vs->dir, id);
}

static int vol_add(struct vstore *vs, uint32_t id, int fd, uint64_t size)
{
    if (vs->nv == vs->cap) {
        size_t cap = vs->cap ? vs->cap * 2 : 16;
        struct volume **p = cm_realloc(vs->v, cap * sizeof(*p));
        if (p == NULL)
            return CM_ENOMEM;
        vs->v = p;
        vs->cap = cap;
    }
    struct volume *v = cm_calloc(1, sizeof(*v));
    if (v == NULL)
        return CM_ENOMEM;
    v->id = id;
    v->fd = fd;
    v->size = size;
    size_t i = vs->nv;
    while (i > 0 && vs->v[i - 1]->id > id) {
        vs->v[i] = vs->v[i - 1];
        i--;
    }
    vs->v[i] = v;
    vs->nv++;
    return 0;
}

/* A new active volume after the last one (its directory entry made durable). */
static int vol_create(struct vstore *vs)
{
    uint32_t id = vs->nv > 0 ? vs->v[vs->nv - 1]->id + 1 : 1;
    char path[PATH_MAX];
    vol_path(vs, id, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        CM_ERROR("msg=\"cannot create a volume\" path=%s err=\"%s\"", path, strerror(errno));
        return nd_volrec_errno(errno);
    }
    int rv = nd_volrec_dir_sync(vs->dir);
    if (rv == 0)
        rv = vol_add(vs, id, fd, 0);
    if (rv != 0) {
        close(fd);
        unlink(path);
    }
    return rv;
}

/* Under mu: is there room for need more bytes? Appends stop while less than the reserve is
 * free (0.5 % of the filesystem, 8..64 MiB), every write while less than half of it is: so
 * RocksDB (the index) and the raft log never meet a full disk, which RocksDB does not survive
 * (Debian's build asserts on a failed write; it reuses a failed WAL writer after recovering). */
static int space_ok(struct vstore *vs, uint64_t need, int volume)
{
    uint64_t now = uv_hrtime() / 1000000u;
    struct statvfs sv;
    if (vs->space_ms == 0 || now - vs->space_ms >= ND_VOL_SPACE_MS) {
        if (statvfs(vs->dir, &sv) != 0)
            return 1; /* no figure: let the write find out */
        uint64_t total = (uint64_t)sv.f_blocks * sv.f_frsize;
        vs->free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
        vs->reserve_bytes = total / 200;
        if (vs->reserve_bytes < ND_VOL_RESERVE_MIN)
            vs->reserve_bytes = ND_VOL_RESERVE_MIN;
        if (vs->reserve_bytes > ND_VOL_RESERVE_MAX)
            vs->reserve_bytes = ND_VOL_RESERVE_MAX;
        vs->space_ms = now;
    }
    uint64_t floor = volume ? vs->reserve_bytes : vs->reserve_bytes / 2;
    if (vs->free_bytes < floor + need) {
        vs->st.nospc++;
        return 0;
    }
    vs->free_bytes -= need;
    return 1;
}

/* Reserve room for a record of len payload bytes; the volume comes back referenced. */
static int vol_reserve(struct vstore *vs, uint32_t len, struct volume **out, uint64_t *pos)
{
    uint64_t need = ND_VOL_HEADER + (uint64_t)len;
    if (!space_ok(vs, need, 1))
        return CM_ENOSPC;
    struct volume *a = vs->nv > 0 ? vs->v[vs->nv - 1] : NULL;
    if (a == NULL || a->dead || (a->size > 0 && a->size + need > vs->o.volume_size)) {
        int rv = vol_create(vs);
        if (rv != 0)
            return rv;
        if (a != NULL)
            a->sealed_ms = uv_hrtime() / 1000000u;
        a = vs->v[vs->nv - 1];
    }
    *pos = a->size;
    a->size += need;
    a->refs++;
    a->writers++;
    *out = a;
    return 0;
}

/* ---- append and read ---- */

/* The pointers of appends to v are written (or never will be). */
static void vol_written(struct vstore *vs, struct volume *v)
{
    uv_mutex_lock(&vs->mu);
    v->writers--;
    uv_mutex_unlock(&vs->mu);
    vol_unref(vs, v);
}

/* Append one chunk record (key: a chunk key); its pointer into ptr, and its volume held as a
 * writer until vol_written (so compaction leaves it alone until the pointer is in the index). */
static int vol_append(struct vstore *vs, const char *key, const void *bytes, uint32_t len,
                      char ptr[ND_VOL_PTR_LEN], struct volume **held)
{
    struct volume *v;
    uint64_t pos;
    uv_mutex_lock(&vs->mu);
    int rv = vol_reserve(vs, len, &v, &pos);
    uv_mutex_unlock(&vs->mu);
    if (rv != 0)
        return rv;
    char h[ND_VOL_HEADER];
    uint32_t crc = cm_crc32c(0, bytes, len);
    nd_volrec_header_encode(h, key, len, crc);
    struct iovec iov[2] = {{h, sizeof(h)}, {(void *)bytes, len}};
    rv = nd_volrec_pwrite(v->fd, iov, len > 0 ? 2 : 1, pos);
    uv_mutex_lock(&vs->mu);
    v->dirty = 1;
    vs->st.appends++;
    if (rv == CM_ENOSPC)
        vs->st.nospc++;
    uv_mutex_unlock(&vs->mu);
    if (rv != 0) {
        vol_written(vs, v);
        return rv;
    }
    struct nd_vptr p = {v->id, pos + ND_VOL_HEADER, len, crc};
    nd_vptr_encode(&p, ptr);
    *held = v;
    return 0;
}

static int read_ptr(struct vstore *vs, const struct nd_vptr *p, uint64_t skip, size_t len,
                    void *dst, int verify)
{
    if (skip > p->len || len > p->len - skip)
        return CM_EIO;
    uv_mutex_lock(&vs->mu);
    struct volume *v = vol_find(vs, p->vol);
    if (v != NULL)
        v->refs++;
    uv_mutex_unlock(&vs->mu);
    if (v == NULL)
        return CM_EIO;
    int rv;
    if (verify && (skip > 0 || len < p->len)) {
        char *all = cm_malloc(p->len ? p->len : 1);
        rv = all == NULL ? CM_ENOMEM : nd_volrec_pread(v->fd, all, p->len, p->pos);
        if (rv == 0 && cm_crc32c(0, all, p->len) != p->crc)
            rv = CM_ECHECKSUM;
        if (rv == 0)
            memcpy(dst, all + skip, len);
        cm_free(all);
    } else {
        rv = nd_volrec_pread(v->fd, dst, len, p->pos + skip);
        if (rv == 0 && verify && cm_crc32c(0, dst, len) != p->crc)
            rv = CM_ECHECKSUM;
    }
    vol_unref(vs, v);
    return rv;
}

static int vol_chunk_len(struct nd_store *s, const char *v, size_t vlen, uint64_t *len)
{
    struct nd_vptr p;
    int rv = nd_vptr_decode(v, vlen, &p);
    *len = rv == 0 ? p.len : 0;
    return rv;
}

static int vol_chunk_read(struct nd_store *s, const char *v, size_t vlen, uint64_t skip, size_t len,
                          void *dst, int verify)
{
    struct nd_vptr p;
    int rv = nd_vptr_decode(v, vlen, &p);
    return rv != 0 ? rv : read_ptr(s->impl, &p, skip, len, dst, verify);
}

/* ---- group commit ---- */

/* fdatasync every volume written since its last one. */
static int sync_volumes(struct vstore *vs)
{
    uv_mutex_lock(&vs->mu);
    size_t n = 0;
    struct volume **todo = cm_malloc((vs->nv ? vs->nv : 1) * sizeof(*todo));
    for (size_t i = 0; todo != NULL && i < vs->nv; i++) {
        struct volume *v = vs->v[i];
        if (v->dirty) {
            v->dirty = 0;
            v->refs++;
            todo[n++] = v;
        }
    }
    vs->st.syncs += n;
    uv_mutex_unlock(&vs->mu);
    if (todo == NULL)
        return CM_ENOMEM;
    int rv = 0;
    for (size_t i = 0; i < n; i++) {
        if (fdatasync(todo[i]->fd) != 0) {
            CM_ERROR("msg=\"volume sync failed\" volume=%u err=\"%s\"", todo[i]->id,
                     strerror(errno));
            rv = nd_volrec_errno(errno);
            uv_mutex_lock(&vs->mu);
            todo[i]->dirty = 1;
            uv_mutex_unlock(&vs->mu);
        }
        vol_unref(vs, todo[i]);
    }
    cm_free(todo);
    return rv;
}

static int group_sync(struct vstore *vs)
{
    uv_mutex_lock(&vs->smu);
    uint64_t t = ++vs->ticket;
    while (vs->syncing)
        uv_cond_wait(&vs->scv, &vs->smu);
    if (vs->done >= t) {
        int rv = vs->done_rv;
        uv_mutex_unlock(&vs->smu);
        return rv;
    }
    vs->syncing = 1;
    uint64_t upto = vs->ticket;
    uv_mutex_unlock(&vs->smu);
    int rv = sync_volumes(vs); /* bytes first: no durable pointer may name lost bytes */
    if (rv == 0)
        rv = nd_store_sync(&vs->inner);
    uv_mutex_lock(&vs->smu);
    vs->done = upto;
    vs->done_rv = rv;
    vs->syncing = 0;
    uv_cond_broadcast(&vs->scv);
    uv_mutex_unlock(&vs->smu);
    return rv;
}

static int vol_sync(struct nd_store *s)
{
    return group_sync(s->impl);
}

/* ---- writes ---- */

/* Under mu: the live bytes a chunk key's current pointer counts go (it is replaced or
 * deleted). */
static void uncount_key(struct vstore *vs, const char *k, size_t klen)
{
    char *old;
    size_t olen;
    struct nd_vptr p;
    if (vs->inner.ops->get(&vs->inner, k, klen, &old, &olen) != 0)
        return;
    if (nd_vptr_decode(old, olen, &p) == 0) {
        struct volume *v = vol_find(vs, p.vol);
        if (v != NULL)
            v->live -= v->live < p.len ? v->live : p.len;
    }
    cm_free(old);
}

/* A range delete of chunk records becomes point deletes of the records it covers (into b):
 * RocksDB's range tombstones make every later iterator, so every read, pay for all of them
 * (MemTableIterator was the node's top user function under live load). */
static int is_chunk_range(const struct nd_batch_item *it)
{
    return it->op == ND_BATCH_DEL_RANGE && it->klen > 0 && it->key[0] == 'u';
}

static void uncount_range(struct vstore *vs, const struct nd_batch_item *it, struct nd_batch *b)
{
    struct nd_store_iter *i;
    if (!is_chunk_range(it) || nd_store_iter_new(&vs->inner, 0, &i) != 0) {
        if (is_chunk_range(it))
            b->oom = 1;
        return;
    }
    for (nd_store_iter_seek(i, it->key, it->klen); nd_store_iter_valid(i); nd_store_iter_next(i)) {
        size_t klen, vlen;
        const char *k = nd_store_iter_key(i, &klen);
        size_t n = klen < it->vlen ? klen : it->vlen;
        int c = memcmp(k, it->val, n);
        if (c > 0 || (c == 0 && klen >= it->vlen))
            break;
        struct nd_vptr p;
        const char *v = nd_store_iter_value(i, &vlen);
        struct volume *vol = nd_vptr_decode(v, vlen, &p) == 0 ? vol_find(vs, p.vol) : NULL;
        if (vol != NULL)
            vol->live -= vol->live < p.len ? vol->live : p.len;
        nd_batch_del_raw(b, k, klen);
    }
    nd_store_iter_free(i);
}

static void count_ptr(struct vstore *vs, const char *ptr)
{
    struct nd_vptr p;
    struct volume *v;
    if (nd_vptr_decode(ptr, ND_VOL_PTR_LEN, &p) == 0 && (v = vol_find(vs, p.vol)) != NULL)
        v->live += p.len;
}

static void batch_add_ref(struct nd_batch *b, const struct nd_batch_item *it, const char *val,
                          size_t vlen)
{
    struct nd_skey k;
    if (it->klen > sizeof(k.b)) {
        b->oom = 1;
        return;
    }
    memcpy(k.b, it->key, it->klen);
    k.len = it->klen;
    if (it->op == ND_BATCH_PUT) {
        nd_batch_put_ref(b, &k, val, vlen);
    } else if (it->op == ND_BATCH_DEL) {
        nd_batch_del(b, &k);
    } else {
        struct nd_skey hi;
        if (it->vlen > sizeof(hi.b)) {
            b->oom = 1;
            return;
        }
        memcpy(hi.b, it->val, it->vlen);
        hi.len = it->vlen;
        nd_batch_del_range(b, &k, &hi);
    }
}

/* Under mu: uncount what the batch replaces or deletes, write it, count its new pointers. */
static int write_counted(struct vstore *vs, const struct nd_batch *orig, struct nd_batch *b,
                         int sync)
{
    uv_mutex_lock(&vs->mu);
    for (size_t i = 0; i < orig->n; i++) {
        const struct nd_batch_item *it = &orig->items[i];
        if (it->op == ND_BATCH_DEL_RANGE)
            uncount_range(vs, it, b);
        else if (nd_volrec_is_chunk(it->key, it->klen))
            uncount_key(vs, it->key, it->klen);
    }
    int rv = b->oom ? CM_ENOMEM : nd_store_write(&vs->inner, b, sync);
    for (size_t i = 0; rv == 0 && i < b->n; i++) {
        const struct nd_batch_item *it = &b->items[i];
        if (it->op == ND_BATCH_PUT && nd_volrec_is_chunk(it->key, it->klen))
            count_ptr(vs, it->val);
    }
    uv_mutex_unlock(&vs->mu);
    return rv;
}

static int vol_write(struct nd_store *s, const struct nd_batch *orig, int sync)
{
    struct vstore *vs = s->impl;
    uv_mutex_lock(&vs->mu);
    int room = space_ok(vs, 0, 0);
    uv_mutex_unlock(&vs->mu);
    if (!room)
        return CM_ENOSPC; /* nothing written: the caller waits or refuses (full disk) */
    struct nd_batch b;
    nd_batch_init(&b);
    char *ptrs = cm_malloc(orig->n ? orig->n * ND_VOL_PTR_LEN : 1);
    struct volume **held = cm_calloc(orig->n ? orig->n : 1, sizeof(*held));
    int rv = ptrs == NULL || held == NULL ? CM_ENOMEM : 0;
    for (size_t i = 0; rv == 0 && i < orig->n; i++) {
        const struct nd_batch_item *it = &orig->items[i];
        if (it->op == ND_BATCH_PUT && nd_volrec_is_chunk(it->key, it->klen)) {
            if (it->vlen > UINT32_MAX - ND_VOL_HEADER) {
                rv = CM_ESTORE;
                break;
            }
            char *ptr = ptrs + i * ND_VOL_PTR_LEN;
            rv = vol_append(vs, it->key, it->val, (uint32_t)it->vlen, ptr, &held[i]);
            batch_add_ref(&b, it, ptr, ND_VOL_PTR_LEN);
        } else if (!is_chunk_range(it)) { /* those become point deletes under mu */
            batch_add_ref(&b, it, it->val, it->vlen);
        }
    }
    if (rv == 0 && b.oom)
        rv = CM_ENOMEM;
    /* A sync makes every earlier write durable (store.h), the chunks staged before a FINISH
     * among them: one group commit, volumes first. */
    if (rv == 0)
        rv = write_counted(vs, orig, &b, 0);
    for (size_t i = 0; held != NULL && i < orig->n; i++)
        if (held[i] != NULL)
            vol_written(vs, held[i]);
    if (rv == 0 && sync)
        rv = group_sync(vs);
    nd_batch_close(&b);
    cm_free(held);
    cm_free(ptrs);
    return rv;
}

/* ---- reads of records: the inner store's ---- */

static int vol_get(struct nd_store *s, const char *k, size_t klen, char **val, size_t *vlen)
{
    struct vstore *vs = s->impl;
    return vs->inner.ops->get(&vs->inner, k, klen, val, vlen);
}

static int vol_iter_new(struct nd_store *s, int flags, struct nd_store_iter **out)
{
    struct vstore *vs = s->impl;
    return nd_store_iter_new(&vs->inner, flags, out); /* its iterator carries its own ops */
}

/* ---- compaction ---- */

/* Copy one record the index still names to the active volume and swap its pointer if it is
 * unchanged meanwhile; *moved = its length when swapped. */
static int move_record(struct vstore *vs, const char *key, const struct nd_vptr *old,
                       uint64_t *moved)
{
    *moved = 0;
    char *bytes = cm_malloc(old->len ? old->len : 1);
    if (bytes == NULL)
        return CM_ENOMEM;
    int rv = read_ptr(vs, old, 0, old->len, bytes, 1);
    char ptr[ND_VOL_PTR_LEN], was[ND_VOL_PTR_LEN];
    struct volume *held = NULL;
    if (rv == 0)
        rv = vol_append(vs, key, bytes, old->len, ptr, &held);
    cm_free(bytes);
    if (rv != 0)
        return rv;
    nd_vptr_encode(old, was);
    struct nd_batch b;
    nd_batch_init(&b);
    nd_batch_put_raw(&b, key, ND_SKEY_CHUNK_LEN, ptr, ND_VOL_PTR_LEN);
    uv_mutex_lock(&vs->mu);
    char *cur;
    size_t clen;
    if (vs->inner.ops->get(&vs->inner, key, ND_SKEY_CHUNK_LEN, &cur, &clen) == 0) {
        if (clen == ND_VOL_PTR_LEN && memcmp(cur, was, clen) == 0 &&
            (rv = nd_store_write(&vs->inner, &b, 0)) == 0) {
            struct volume *ov = vol_find(vs, old->vol);
            if (ov != NULL)
                ov->live -= ov->live < old->len ? ov->live : old->len;
            count_ptr(vs, ptr);
            *moved = old->len;
        }
        cm_free(cur);
    }
    uv_mutex_unlock(&vs->mu);
    vol_written(vs, held);
    nd_batch_close(&b);
    return rv;
}

/* Sleep off what the bytes copied cost at the rate; 1 when asked to stop. */
static int compact_pace(struct vstore *vs, uint64_t bytes)
{
    if (vs->o.compact_rate == 0 || !vs->thr_on)
        return 0;
    uint64_t ns = bytes * 1000000000ull / vs->o.compact_rate;
    uv_mutex_lock(&vs->tmu);
    if (!vs->stop && ns > 0)
        uv_cond_timedwait(&vs->tcv, &vs->tmu, ns);
    int stop = vs->stop;
    uv_mutex_unlock(&vs->tmu);
    return stop;
}

/* Move every record of v the index still names; then v is garbage. */
static int compact_scan(struct vstore *vs, struct volume *v, uint64_t size, uint64_t *copied)
{
    uint64_t pos = 0;
    while (pos + ND_VOL_HEADER <= size) {
        char h[ND_VOL_HEADER], key[ND_SKEY_CHUNK_LEN];
        uint32_t len, crc;
        if (nd_volrec_pread(v->fd, h, sizeof(h), pos) != 0 ||
            nd_volrec_header_decode(h, key, &len, &crc) != 0)
            break; /* a torn or failed append: nothing durable names what follows */
        struct nd_vptr here = {v->id, pos + ND_VOL_HEADER, len, crc};
        char *cur;
        size_t clen;
        struct nd_vptr p;
        int named = 0;
        uv_mutex_lock(&vs->mu);
        if (vs->inner.ops->get(&vs->inner, key, sizeof(key), &cur, &clen) == 0) {
            named = nd_vptr_decode(cur, clen, &p) == 0 && p.vol == here.vol && p.pos == here.pos;
            cm_free(cur);
        }
        uv_mutex_unlock(&vs->mu);
        if (named) {
            uint64_t moved;
            int rv = move_record(vs, key, &here, &moved);
            if (rv != 0)
                return rv;
            *copied += moved;
            if (compact_pace(vs, moved))
                return VOL_STOPPED;
        }
        pos += ND_VOL_HEADER + (uint64_t)len;
    }
    return 0;
}

/* Reclaim sealed volume v (referenced by the caller). */
static int compact_one(struct vstore *vs, struct volume *v)
{
    uv_mutex_lock(&vs->mu);
    uint64_t size = v->size;
    uv_mutex_unlock(&vs->mu);
    uint64_t copied = 0;
    int rv = compact_scan(vs, v, size, &copied);
    if (rv == 0 && copied > 0)
        rv = group_sync(vs); /* the new pointers durable before the old bytes go */
    if (rv != 0)
        return rv;
    char path[PATH_MAX];
    vol_path(vs, v->id, path, sizeof(path));
    if (unlink(path) != 0 && errno != ENOENT)
        return nd_volrec_errno(errno);
    nd_volrec_dir_sync(vs->dir);
    uv_mutex_lock(&vs->mu);
    v->dead = 1;
    vs->st.compacted_bytes += copied;
    vs->st.reclaimed_bytes += size;
    vs->st.reclaimed_volumes++;
    uv_mutex_unlock(&vs->mu);
    CM_INFO("msg=\"volume reclaimed\" volume=%u size=%llu copied=%llu", v->id,
            (unsigned long long)size, (unsigned long long)copied);
    return 0;
}

/* The next sealed volume due for compaction after id `after`, referenced; NULL when none. */
static struct volume *compact_next(struct vstore *vs, uint32_t after, uint32_t before, int force)
{
    struct volume *pick = NULL;
    uint64_t now = uv_hrtime() / 1000000u;
    uv_mutex_lock(&vs->mu);
    for (size_t i = 0; i + 1 < vs->nv && pick == NULL; i++) { /* the last one is active */
        struct volume *v = vs->v[i];
        uint64_t garbage = v->size > v->live ? v->size - v->live : 0;
        /* Live video deletes every segment a few seconds after writing it: a volume that is
         * part garbage now is all garbage soon, and unlinked without copying a byte. */
        int settled = v->sealed_ms > 0 && now - v->sealed_ms >= ND_VOL_SETTLE_MS;
        if (v->id > after && v->id < before && !v->dead && v->writers == 0 &&
            (force || v->live == 0 || (settled && garbage * 100 >= v->size * vs->o.garbage_pct)))
            pick = v;
    }
    if (pick != NULL)
        pick->refs++;
    uv_mutex_unlock(&vs->mu);
    return pick;
}

int nd_store_vol_compact(struct nd_store *s, int force)
{
    struct vstore *vs = s->impl;
    int n = 0;
    uint32_t after = 0;
    struct volume *v;
    /* only volumes sealed before this pass: not the ones its own copies fill */
    uv_mutex_lock(&vs->mu);
    uint32_t before = vs->nv > 0 ? vs->v[vs->nv - 1]->id : 0;
    uv_mutex_unlock(&vs->mu);
    while ((v = compact_next(vs, after, before, force)) != NULL) {
        after = v->id;
        int rv = compact_one(vs, v);
        vol_unref(vs, v);
        if (rv == VOL_STOPPED)
            break;
        if (rv != 0) {
            CM_WARN("msg=\"volume compaction failed\" volume=%u err=\"%s\"", after,
                    cm_strerror(rv));
            return rv;
        }
        n++;
    }
    return n;
}

static void compact_thread(void *arg)
{
    struct vstore *vs = arg;
    for (;;) {
        uv_mutex_lock(&vs->tmu);
        if (!vs->stop)
            uv_cond_timedwait(&vs->tcv, &vs->tmu, ND_VOL_TICK_MS * 1000000ull);
        int stop = vs->stop;
        uv_mutex_unlock(&vs->tmu);
        if (stop)
            return;
        nd_store_vol_compact(&(struct nd_store){&vol_ops, vs}, 0);
    }
}

/* ---- open, migration, close ---- */

static int scan_dir(struct vstore *vs, char *errmsg, size_t errlen)
{
    DIR *d = opendir(vs->dir);
    if (d == NULL) {
        snprintf(errmsg, errlen, "volumes %s: %s", vs->dir, strerror(errno));
        return CM_EIO;
    }
    int rv = 0;
    struct dirent *e;
    while (rv == 0 && (e = readdir(d)) != NULL) {
        unsigned id;
        char tail;
        if (sscanf(e->d_name, "%8u.vo%c", &id, &tail) != 2 || tail != 'l' || id == 0 ||
            strlen(e->d_name) != 12)
            continue;
        char path[PATH_MAX];
        vol_path(vs, id, path, sizeof(path));
        int fd = open(path, O_RDWR | O_CLOEXEC);
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) != 0) {
            snprintf(errmsg, errlen, "volume %s: %s", path, strerror(errno));
            rv = CM_EIO;
            if (fd >= 0)
                close(fd);
            break;
        }
        rv = vol_add(vs, id, fd, (uint64_t)sb.st_size); /* appends go past a torn tail */
        if (rv != 0)
            close(fd);
    }
    closedir(d);
    for (size_t i = 0; i < vs->nv; i++)
        vs->v[i]->sealed_ms = uv_hrtime() / 1000000u;
    return rv;
}

/* The store-format record: absent in a store of the earlier format (chunk bytes inline);
 * "v1" once every chunk record is a pointer; "m" + key while migrating (chunk records up to
 * that key are pointers). */
static const char fmt_key[] = "Fvolumes";

static int migrate_step(struct vstore *vs, const char *from, size_t fromlen, size_t *moved,
                        char *last, size_t *lastlen)
{
    struct nd_store_iter *it;
    int rv = nd_store_iter_new(&vs->inner, 0, &it);
    if (rv != 0)
        return rv;
    struct nd_batch b;
    nd_batch_init(&b);
    size_t n = 0;
    struct volume *held[MIGRATE_BATCH] = {0};
    nd_store_iter_seek(it, from, fromlen);
    for (; rv == 0 && nd_store_iter_valid(it) && n < MIGRATE_BATCH; nd_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = nd_store_iter_key(it, &klen);
        if (klen == 0 || k[0] != 'u')
            break;
        if ((fromlen == klen && memcmp(k, from, klen) == 0) || !nd_volrec_is_chunk(k, klen))
            continue;
        const char *v = nd_store_iter_value(it, &vlen);
        char ptr[ND_VOL_PTR_LEN];
        rv = vlen > UINT32_MAX - ND_VOL_HEADER
                 ? CM_ESTORE
                 : vol_append(vs, k, v, (uint32_t)vlen, ptr, &held[n]);
        if (rv == 0)
            nd_batch_put_raw(&b, k, klen, ptr, sizeof(ptr));
        memcpy(last, k, klen);
        *lastlen = klen;
        n++;
    }
    *moved = n;
    nd_store_iter_free(it);
    if (rv == 0 && n > 0) {
        char mark[1 + ND_SKEY_CHUNK_LEN] = {'m'};
        memcpy(mark + 1, last, *lastlen);
        nd_batch_put_raw(&b, fmt_key, sizeof(fmt_key) - 1, mark, 1 + *lastlen);
        rv = sync_volumes(vs); /* the copies durable before the pointers that name them */
        if (rv == 0)
            rv = nd_store_write(&vs->inner, &b, 1);
    }
    for (size_t i = 0; i < n; i++)
        if (held[i] != NULL)
            vol_written(vs, held[i]);
    nd_batch_close(&b);
    return rv;
}

/* Move chunk bytes of the earlier format into volumes (resuming after a crash). */
static int migrate(struct vstore *vs, const char *mark, size_t marklen)
{
    char from[ND_SKEY_CHUNK_LEN] = {'u'};
    size_t fromlen = 1;
    if (marklen == 1 + ND_SKEY_CHUNK_LEN && mark[0] == 'm') {
        memcpy(from, mark + 1, ND_SKEY_CHUNK_LEN);
        fromlen = ND_SKEY_CHUNK_LEN;
    }
    int rv = 0;
    size_t step = MIGRATE_BATCH, moved = 0;
    while (rv == 0 && step == MIGRATE_BATCH) { /* a short batch was the last */
        rv = migrate_step(vs, from, fromlen, &step, from, &fromlen);
        moved += step;
    }
    if (rv != 0)
        return rv;
    struct nd_batch b;
    nd_batch_init(&b);
    nd_batch_put_raw(&b, fmt_key, sizeof(fmt_key) - 1, "v1", 2);
    rv = nd_store_write(&vs->inner, &b, 1);
    nd_batch_close(&b);
    if (rv == 0 && moved > 0)
        CM_INFO("msg=\"object bytes moved into volumes\" dir=%s chunks=%zu", vs->dir, moved);
    return rv;
}

/* Count every pointer's bytes against its volume (after the format check). */
static int count_live(struct vstore *vs, char *errmsg, size_t errlen)
{
    struct nd_store_iter *it;
    int rv = nd_store_iter_new(&vs->inner, 0, &it);
    if (rv != 0)
        return rv;
    uint64_t dangling = 0;
    for (nd_store_iter_seek(it, "u", 1); nd_store_iter_valid(it); nd_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = nd_store_iter_key(it, &klen);
        if (klen == 0 || k[0] != 'u')
            break;
        struct nd_vptr p;
        const char *v = nd_store_iter_value(it, &vlen);
        if (nd_vptr_decode(v, vlen, &p) != 0) {
            snprintf(errmsg, errlen, "volumes %s: a chunk record is not a pointer", vs->dir);
            rv = CM_ESTORE;
            break;
        }
        struct volume *vol = vol_find(vs, p.vol);
        if (vol == NULL || p.pos + p.len > vol->size)
            dangling++;
        else
            vol->live += p.len;
    }
    nd_store_iter_free(it);
    if (dangling > 0) /* bytes of unfinished uploads lost in a crash: never acknowledged */
        CM_WARN("msg=\"chunk records name missing volume bytes\" count=%llu",
                (unsigned long long)dangling);
    return rv;
}

static int vol_load(struct vstore *vs, char *errmsg, size_t errlen)
{
    int rv = scan_dir(vs, errmsg, errlen);
    char *fmt = NULL;
    size_t flen = 0;
    int frv =
        rv == 0 ? vs->inner.ops->get(&vs->inner, fmt_key, sizeof(fmt_key) - 1, &fmt, &flen) : rv;
    if (frv == CM_ENOTFOUND || (frv == 0 && !(flen == 2 && memcmp(fmt, "v1", 2) == 0))) {
        rv = migrate(vs, fmt, flen);
        if (rv != 0)
            snprintf(errmsg, errlen, "moving object bytes into volumes: %s", cm_strerror(rv));
    } else if (frv != 0) {
        rv = frv;
        snprintf(errmsg, errlen, "volumes: cannot read the store format: %s", cm_strerror(rv));
    }
    cm_free(fmt);
    if (rv == 0)
        rv = count_live(vs, errmsg, errlen);
    return rv;
}

static void vol_free(struct vstore *vs)
{
    for (size_t i = 0; i < vs->nv; i++) {
        close(vs->v[i]->fd);
        cm_free(vs->v[i]);
    }
    cm_free(vs->v);
    nd_store_close(&vs->inner);
    uv_mutex_destroy(&vs->mu);
    uv_mutex_destroy(&vs->smu);
    uv_cond_destroy(&vs->scv);
    uv_mutex_destroy(&vs->tmu);
    uv_cond_destroy(&vs->tcv);
    cm_free(vs);
}

static void vol_close(struct nd_store *s)
{
    struct vstore *vs = s->impl;
    if (vs->thr_on) {
        uv_mutex_lock(&vs->tmu);
        vs->stop = 1;
        uv_cond_signal(&vs->tcv);
        uv_mutex_unlock(&vs->tmu);
        uv_thread_join(&vs->thr);
    }
    group_sync(vs); /* a clean stop leaves nothing to lose */
    vol_free(vs);
}

static const struct nd_store_ops vol_ops = {
    .get = vol_get,
    .write = vol_write,
    .sync = vol_sync,
    .iter_new = vol_iter_new,
    .close = vol_close,
    .chunk_len = vol_chunk_len,
    .chunk_read = vol_chunk_read,
};

void nd_vol_opts_default(struct nd_vol_opts *o)
{
    o->volume_size = ND_VOL_SIZE_DEFAULT;
    o->compact_rate = ND_VOL_COMPACT_RATE_DEFAULT;
    o->garbage_pct = 50;
}

int nd_store_vol_open(struct nd_store *s, struct nd_store *inner, const char *dir,
                      const struct nd_vol_opts *o, char *errmsg, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    struct vstore *vs = cm_calloc(1, sizeof(*vs));
    if (vs == NULL || strlen(dir) >= sizeof(vs->dir) || cm_mkdir_p(dir) != 0) {
        snprintf(errmsg, errlen, "volumes %s: %s", dir,
                 vs == NULL ? "out of memory" : "cannot create the directory");
        cm_free(vs);
        nd_store_close(inner);
        return vs == NULL ? CM_ENOMEM : CM_EIO;
    }
    vs->inner = *inner;
    memset(inner, 0, sizeof(*inner));
    snprintf(vs->dir, sizeof(vs->dir), "%s", dir);
    vs->o = *o;
    if (vs->o.volume_size < ND_VOL_HEADER)
        vs->o.volume_size = ND_VOL_SIZE_DEFAULT;
    uv_mutex_init(&vs->mu);
    uv_mutex_init(&vs->smu);
    uv_cond_init(&vs->scv);
    uv_mutex_init(&vs->tmu);
    uv_cond_init(&vs->tcv);
    int rv = vol_load(vs, errmsg, errlen);
    if (rv == 0 && o->compact_rate > 0) {
        rv = uv_thread_create(&vs->thr, compact_thread, vs) == 0 ? 0 : CM_ENOMEM;
        vs->thr_on = rv == 0;
        if (rv != 0)
            snprintf(errmsg, errlen, "volumes: cannot start the compaction thread");
    }
    if (rv != 0) {
        vol_free(vs);
        return rv;
    }
    s->ops = &vol_ops;
    s->impl = vs;
    return 0;
}

int nd_store_is_vol(const struct nd_store *s)
{
    return s->ops == &vol_ops;
}

void nd_store_vol_stats(struct nd_store *s, struct nd_vol_stats *out)
{
    struct vstore *vs = s->impl;
    uv_mutex_lock(&vs->mu);
    *out = vs->st;
    out->volumes = out->bytes = out->live_bytes = 0;
    for (size_t i = 0; i < vs->nv; i++) {
        if (vs->v[i]->dead)
            continue;
        out->volumes++;
        out->bytes += vs->v[i]->size;
        out->live_bytes += vs->v[i]->live;
    }
    uv_mutex_unlock(&vs->mu);
}
