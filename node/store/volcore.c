/* Volume store, its core (see vol.h, volcore.h).
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
 * Compaction: volcompact.c. */
#include "store/volcore.h"

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

#define ND_VOL_SPACE_MS 50u
#define ND_VOL_RESERVE_MIN (8ull << 20)
#define ND_VOL_RESERVE_MAX (64ull << 20) /* how old the free-space figure may be */
#define MIGRATE_BATCH 64
#define ND_VOL_WRITEBACK_MIN (64u << 10) /* records this big start their writeback at once */

/* ---- the volume table (under mu) ---- */

struct volume *nd_vol_find(struct vstore *vs, uint32_t id)
{
    for (size_t i = vs->nv; i-- > 0;)
        if (vs->v[i]->id == id)
            return vs->v[i];
    return NULL;
}

/* Under mu: out of the table (closed by the caller, outside mu). */
static void vol_drop(struct vstore *vs, struct volume *v)
{
    for (size_t i = 0; i < vs->nv; i++) {
        if (vs->v[i] == v) {
            memmove(&vs->v[i], &vs->v[i + 1], (vs->nv - i - 1) * sizeof(*vs->v));
            vs->nv--;
            break;
        }
    }
}

/* A spare not kept: closed and unlinked. */
static void spare_discard(const struct vstore *vs, uint32_t id, int fd)
{
    char path[PATH_MAX];
    nd_vol_spare_path(vs, id, path, sizeof(path));
    close(fd);
    unlink(path);
}

void nd_vol_unref(struct vstore *vs, struct volume *v)
{
    uv_mutex_lock(&vs->mu);
    int drop = --v->refs == 0 && v->dead, pooled = 0;
    if (drop) {
        vol_drop(vs, v);
        if (v->spare) {
            vs->spares_pending--;
            if (vs->nspares < ND_VOL_SPARES_MAX) {
                vs->spares[vs->nspares++] = (struct vspare){v->id, v->fd};
                pooled = 1;
            }
        }
    }
    uv_mutex_unlock(&vs->mu);
    if (drop) {
        if (v->dfd >= 0)
            close(v->dfd);
        /* The last close of an unlinked volume frees its page cache: 64 MiB took 10-60 ms,
         * which under mu had stalled every write and sync of the node. */
        if (v->spare && !pooled)
            spare_discard(vs, v->id, v->fd);
        else if (!pooled)
            close(v->fd);
        cm_free(v);
    }
}

void nd_vol_path(const struct vstore *vs, uint32_t id, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%08u.vol", vs->dir, id);
}

void nd_vol_spare_path(const struct vstore *vs, uint32_t id, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%08u.spr", vs->dir, id);
}

/* Under mu: spares only while they are a small part of a roomy file system (1 %, and the
 * free space four reserves or more), so a full disk never has space held in them. */
static int spares_allowed(const struct vstore *vs)
{
    return vs->free_bytes >= 4 * vs->reserve_bytes;
}

int nd_vol_keep_spare(struct vstore *vs)
{
    if (vs->nspares + vs->spares_pending >= vs->spare_cap || !spares_allowed(vs))
        return 0;
    vs->spares_pending++;
    return 1;
}

void nd_vol_trim_spares(struct vstore *vs)
{
    struct vspare drop[ND_VOL_SPARES_MAX];
    size_t n = 0;
    uv_mutex_lock(&vs->mu);
    size_t keep = spares_allowed(vs) ? vs->spare_cap : 0;
    while (vs->nspares > keep)
        drop[n++] = vs->spares[--vs->nspares];
    uv_mutex_unlock(&vs->mu);
    for (size_t i = 0; i < n; i++)
        spare_discard(vs, drop[i].id, drop[i].fd);
}

int nd_vol_add(struct vstore *vs, uint32_t id, int fd, uint64_t size)
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
    v->dfd = -2;
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

/* Under mu: a spare's file renamed to the volume id (its pages are likely still cached, its
 * blocks allocated: overwriting them costs the kernel no new page and the fdatasync no journal
 * commit for new blocks); -1 when there is none or it cannot be renamed. */
static int vol_reuse(struct vstore *vs, uint32_t id, const char *path)
{
    while (vs->nspares > 0) {
        struct vspare sp = vs->spares[--vs->nspares];
        char from[PATH_MAX];
        nd_vol_spare_path(vs, sp.id, from, sizeof(from));
        if (rename(from, path) == 0) {
            vs->st.reused_volumes++;
            return sp.fd;
        }
        CM_WARN("msg=\"cannot reuse a spare volume\" path=%s err=\"%s\"", from, strerror(errno));
        spare_discard(vs, sp.id, sp.fd);
    }
    return -1;
}

/* A new active volume after the last one. Its directory entry is made durable by the next group
 * commit's directory fsync, before any pointer naming it is (nd_vol_sync_volumes). */
static int vol_create(struct vstore *vs)
{
    uint32_t id = vs->next_id;
    char path[PATH_MAX];
    nd_vol_path(vs, id, path, sizeof(path));
    int fd = vol_reuse(vs, id, path);
    if (fd < 0)
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        CM_ERROR("msg=\"cannot create a volume\" path=%s err=\"%s\"", path, strerror(errno));
        return nd_volrec_errno(errno);
    }
    int rv = nd_vol_add(vs, id, fd, 0);
    if (rv != 0) {
        close(fd);
        unlink(path);
        return rv;
    }
    vs->next_id = id + 1;
    vs->dir_dirty = 1;
    return 0;
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
        uint64_t cap = total / 100 / (vs->o.volume_size ? vs->o.volume_size : 1);
        vs->spare_cap = cap < ND_VOL_SPARES_MAX ? (unsigned)cap : ND_VOL_SPARES_MAX;
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

/* Under mu: the active volume's O_DIRECT descriptor, opened on its first append (-1 when the
 * file system refuses direct I/O, as tmpfs does: appends are then buffered). */
static void vol_open_direct(struct vstore *vs, struct volume *a)
{
    if (a->dfd != -2)
        return;
    char path[PATH_MAX];
    nd_vol_path(vs, a->id, path, sizeof(path));
    a->dfd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (a->dfd < 0) {
        CM_INFO("msg=\"volume appends are buffered: no direct I/O here\" path=%s err=\"%s\"", path,
                strerror(errno));
        a->dfd = -1;
    }
}

/* Reserve room for a record taking span bytes (nd_volrec_span: starts stay aligned); the
 * volume comes back referenced. */
static int vol_reserve(struct vstore *vs, uint64_t span, struct volume **out, uint64_t *pos)
{
    if (!space_ok(vs, span, 1))
        return CM_ENOSPC;
    struct volume *a = vs->nv > 0 ? vs->v[vs->nv - 1] : NULL;
    if (a == NULL || a->dead || (a->size > 0 && a->size + span > vs->o.volume_size)) {
        int rv = vol_create(vs);
        if (rv != 0)
            return rv;
        if (a != NULL)
            a->sealed_ms = uv_hrtime() / 1000000u;
        a = vs->v[vs->nv - 1];
    }
    vol_open_direct(vs, a);
    *pos = a->size;
    a->size += span;
    a->refs++;
    a->writers++;
    *out = a;
    return 0;
}

/* ---- bounce buffers for direct appends (kept: their pages stay mapped and warm) ---- */

static char *bounce_get(struct vstore *vs, uint64_t span)
{
    if (span > ND_VOL_BOUNCE_LEN)
        return cm_aligned_alloc(ND_VOL_ALIGN, span);
    uv_mutex_lock(&vs->bmu);
    char *b = vs->nbounce > 0 ? vs->bounce[--vs->nbounce] : NULL;
    uv_mutex_unlock(&vs->bmu);
    return b != NULL ? b : cm_aligned_alloc(ND_VOL_ALIGN, ND_VOL_BOUNCE_LEN);
}

static void bounce_put(struct vstore *vs, char *b, uint64_t span)
{
    if (span <= ND_VOL_BOUNCE_LEN) {
        uv_mutex_lock(&vs->bmu);
        int kept = vs->nbounce < ND_VOL_BOUNCE_MAX;
        if (kept)
            vs->bounce[vs->nbounce++] = b;
        uv_mutex_unlock(&vs->bmu);
        if (kept)
            return;
    }
    cm_free(b);
}

void nd_vol_bounce_free(struct vstore *vs)
{
    while (vs->nbounce > 0)
        cm_free(vs->bounce[--vs->nbounce]);
}

/* The record (header, payload, zero padding to span) with one O_DIRECT write through an
 * aligned copy: no page cache page is allocated or dirtied, so no writeback follows and the
 * node's memory footprint does not grow with what it writes. 1 when the file system refused
 * it (EINVAL): write it buffered. */
static int append_direct(struct vstore *vs, struct volume *v, const char *h, const void *bytes,
                         uint32_t len, uint64_t span, uint64_t pos, int *rv)
{
    char *b = bounce_get(vs, span);
    if (b == NULL) {
        *rv = CM_ENOMEM;
        return 0;
    }
    memcpy(b, h, ND_VOL_HEADER);
    if (len > 0)
        memcpy(b + ND_VOL_HEADER, bytes, len);
    memset(b + ND_VOL_HEADER + len, 0, span - ND_VOL_HEADER - len);
    ssize_t w;
    do {
        w = pwrite(v->dfd, b, span, (off_t)pos);
    } while (w < 0 && errno == EINTR);
    int e = w < 0 ? errno : 0;
    bounce_put(vs, b, span);
    if (e == EINVAL) {
        uv_mutex_lock(&vs->mu);
        if (!v->no_direct)
            CM_WARN("msg=\"direct volume append refused; buffered from now on\" volume=%u", v->id);
        v->no_direct = 1;
        uv_mutex_unlock(&vs->mu);
        return 1;
    }
    *rv = w == (ssize_t)span ? 0 : nd_volrec_errno(w < 0 ? e : ENOSPC);
    return 0;
}

static const char zero_pad[ND_VOL_ALIGN];

/* The record buffered: header, payload and padding with one pwritev. */
static int append_buffered(struct volume *v, char *h, const void *bytes, uint32_t len,
                           uint64_t span, uint64_t pos)
{
    struct iovec iov[3] = {{h, ND_VOL_HEADER}, {(void *)bytes, len}, {(void *)zero_pad, 0}};
    iov[2].iov_len = span - ND_VOL_HEADER - len;
    int rv = nd_volrec_pwrite(v->fd, iov, 3, pos);
    /* Start writing it out now (no wait): while the rest of a big body still arrives, so the
     * FINISH's fdatasync has only the tail left (a 2 MB PUT took 2 ms less). */
    if (rv == 0 && len >= ND_VOL_WRITEBACK_MIN)
        (void)sync_file_range(v->fd, (off_t)pos, (off_t)span, SYNC_FILE_RANGE_WRITE);
    return rv;
}

/* ---- append and read ---- */

/* The pointers of appends to v are written (or never will be). */
void nd_vol_written(struct vstore *vs, struct volume *v)
{
    uv_mutex_lock(&vs->mu);
    v->writers--;
    uv_mutex_unlock(&vs->mu);
    nd_vol_unref(vs, v);
}

/* Append one chunk record (key: a chunk key; known_crc: the bytes' crc32c when the caller has
 * it, else computed here); its pointer into ptr, and its volume held as a
 * writer until vol_written (so compaction leaves it alone until the pointer is in the index). */
int nd_vol_append(struct vstore *vs, const char *key, const void *bytes, uint32_t len,
                  const uint32_t *known_crc, char ptr[ND_VOL_PTR_LEN], struct volume **held)
{
    struct volume *v;
    uint64_t pos, span = nd_volrec_span(len);
    uv_mutex_lock(&vs->mu);
    int rv = vol_reserve(vs, span, &v, &pos);
    int direct = rv == 0 && v->dfd >= 0 && !v->no_direct;
    uv_mutex_unlock(&vs->mu);
    if (rv != 0)
        return rv;
    char h[ND_VOL_HEADER];
    uint32_t crc = known_crc != NULL ? *known_crc : cm_crc32c(0, bytes, len);
    nd_volrec_header_encode(h, key, len, crc);
    if (!direct || append_direct(vs, v, h, bytes, len, span, pos, &rv))
        rv = append_buffered(v, h, bytes, len, span, pos);
    uv_mutex_lock(&vs->mu);
    v->dirty = 1;
    vs->st.appends++;
    if (rv == CM_ENOSPC)
        vs->st.nospc++;
    uv_mutex_unlock(&vs->mu);
    if (rv != 0) {
        nd_vol_written(vs, v);
        return rv;
    }
    struct nd_vptr p = {v->id, pos + ND_VOL_HEADER, len, crc};
    nd_vptr_encode(&p, ptr);
    *held = v;
    return 0;
}

int nd_vol_read_ptr(struct vstore *vs, const struct nd_vptr *p, uint64_t skip, size_t len,
                    void *dst, int verify)
{
    if (skip > p->len || len > p->len - skip)
        return CM_EIO;
    uv_mutex_lock(&vs->mu);
    struct volume *v = nd_vol_find(vs, p->vol);
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
    nd_vol_unref(vs, v);
    return rv;
}

int nd_vol_chunk_len(struct nd_store *s, const char *v, size_t vlen, uint64_t *len)
{
    struct nd_vptr p;
    int rv = nd_vptr_decode(v, vlen, &p);
    *len = rv == 0 ? p.len : 0;
    return rv;
}

int nd_vol_chunk_read(struct nd_store *s, const char *v, size_t vlen, uint64_t skip, size_t len,
                      void *dst, int verify)
{
    struct nd_vptr p;
    int rv = nd_vptr_decode(v, vlen, &p);
    return rv != 0 ? rv : nd_vol_read_ptr(s->impl, &p, skip, len, dst, verify);
}

/* ---- group commit ---- */

int nd_vol_sync_volumes(struct vstore *vs)
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
    int dir = todo != NULL && vs->dir_dirty;
    vs->dir_dirty = vs->dir_dirty && !dir;
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
        nd_vol_unref(vs, todo[i]);
    }
    cm_free(todo);
    if (dir && nd_volrec_dir_sync(vs->dir) != 0) {
        CM_ERROR("msg=\"volume directory sync failed\" dir=%s", vs->dir);
        rv = rv != 0 ? rv : CM_EIO;
        uv_mutex_lock(&vs->mu);
        vs->dir_dirty = 1;
        uv_mutex_unlock(&vs->mu);
    }
    return rv;
}

int nd_vol_group_sync(struct vstore *vs)
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
    int rv = nd_vol_sync_volumes(vs); /* bytes first: no durable pointer may name lost bytes */
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

int nd_vol_sync(struct nd_store *s)
{
    return nd_vol_group_sync(s->impl);
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
        struct volume *v = nd_vol_find(vs, p.vol);
        if (v != NULL)
            nd_vol_uncount(v, &p);
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
    if (!is_chunk_range(it) || nd_store_iter_new_below(&vs->inner, 0, it->val, it->vlen, &i) != 0) {
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
        struct volume *vol = nd_vptr_decode(v, vlen, &p) == 0 ? nd_vol_find(vs, p.vol) : NULL;
        if (vol != NULL)
            nd_vol_uncount(vol, &p);
        nd_batch_del_raw(b, k, klen);
    }
    nd_store_iter_free(i);
}

void nd_vol_uncount(struct volume *v, const struct nd_vptr *p)
{
    uint64_t span = nd_volrec_span(p->len);
    v->live -= v->live < span ? v->live : span;
}

void nd_vol_count_ptr(struct vstore *vs, const char *ptr)
{
    struct nd_vptr p;
    struct volume *v;
    if (nd_vptr_decode(ptr, ND_VOL_PTR_LEN, &p) == 0 && (v = nd_vol_find(vs, p.vol)) != NULL)
        v->live += nd_volrec_span(p.len);
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
        else if (nd_volrec_is_chunk(it->key, it->klen) && !(it->op == ND_BATCH_PUT && it->fresh))
            uncount_key(vs, it->key, it->klen);
    }
    int rv = b->oom ? CM_ENOMEM : nd_store_write(&vs->inner, b, sync);
    for (size_t i = 0; rv == 0 && i < b->n; i++) {
        const struct nd_batch_item *it = &b->items[i];
        if (it->op == ND_BATCH_PUT && nd_volrec_is_chunk(it->key, it->klen))
            nd_vol_count_ptr(vs, it->val);
    }
    uv_mutex_unlock(&vs->mu);
    return rv;
}

int nd_vol_write(struct nd_store *s, const struct nd_batch *orig, int sync)
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
            rv = nd_vol_append(vs, it->key, it->val, (uint32_t)it->vlen,
                               it->has_crc ? &it->crc : NULL, ptr, &held[i]);
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
            nd_vol_written(vs, held[i]);
    if (rv == 0 && sync)
        rv = nd_vol_group_sync(vs);
    nd_batch_close(&b);
    cm_free(held);
    cm_free(ptrs);
    return rv;
}

/* ---- reads of records: the inner store's ---- */

int nd_vol_get(struct nd_store *s, const char *k, size_t klen, char **val, size_t *vlen)
{
    struct vstore *vs = s->impl;
    return vs->inner.ops->get(&vs->inner, k, klen, val, vlen);
}

int nd_vol_iter_new(struct nd_store *s, int flags, const char *hi, size_t hilen,
                    struct nd_store_iter **out)
{
    struct vstore *vs = s->impl;
    /* its iterator carries its own ops */
    return nd_store_iter_new_below(&vs->inner, flags, hi, hilen, out);
}
