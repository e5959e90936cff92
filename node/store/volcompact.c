/* Volume compaction (see vol.h, "space"): the background thread, every ND_VOL_TICK_MS, or
 * nd_store_vol_compact: scan a sealed volume's headers; each record the index still names is
 * copied to the active volume and its pointer swapped under mu if unchanged; then one group
 * commit makes the new pointers durable, and the volume is renamed a spare (reused by the next
 * new volume once the last reader lets go) or unlinked (its fd closes then). Copies are paced
 * to o.compact_rate bytes/s. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "store/skey.h"
#include "store/volcompact.h"

/* Copy one record the index still names to the active volume and swap its pointer if it is
 * unchanged meanwhile; *moved = its length when swapped. */
static int move_record(struct vstore *vs, const char *key, const struct nd_vptr *old,
                       uint64_t *moved)
{
    *moved = 0;
    char *bytes = cm_malloc(old->len ? old->len : 1);
    if (bytes == NULL)
        return CM_ENOMEM;
    int rv = nd_vol_read_ptr(vs, old, 0, old->len, bytes, 1);
    char ptr[ND_VOL_PTR_LEN], was[ND_VOL_PTR_LEN];
    struct volume *held = NULL;
    if (rv == 0)
        rv = nd_vol_append(vs, key, bytes, old->len, &old->crc, ptr, &held); /* read verified it */
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
            struct volume *ov = nd_vol_find(vs, old->vol);
            if (ov != NULL)
                nd_vol_uncount(ov, old);
            nd_vol_count_ptr(vs, ptr);
            *moved = old->len;
        }
        cm_free(cur);
    }
    uv_mutex_unlock(&vs->mu);
    nd_vol_written(vs, held);
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

/* Move one record named at `here` and pace the copy; VOL_STOPPED when asked to stop. */
static int move_paced(struct vstore *vs, const char *key, const struct nd_vptr *here,
                      uint64_t *copied)
{
    uint64_t moved;
    int rv = move_record(vs, key, here, &moved);
    if (rv != 0)
        return rv;
    *copied += moved;
    return compact_pace(vs, moved) ? VOL_STOPPED : 0;
}

/* The slow way, when v's records cannot be walked to its end: every chunk pointer of the index
 * that names v is moved. */
static int compact_by_index(struct vstore *vs, struct volume *v, uint64_t *copied)
{
    struct nd_store_iter *it;
    const char lo[1] = {'u'}, hi[1] = {'u' + 1};
    int rv = nd_store_iter_new_below(&vs->inner, 0, hi, sizeof(hi), &it);
    if (rv != 0)
        return rv;
    for (nd_store_iter_seek(it, lo, sizeof(lo)); rv == 0 && nd_store_iter_valid(it);
         nd_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = nd_store_iter_key(it, &klen);
        const char *val = nd_store_iter_value(it, &vlen);
        struct nd_vptr p;
        if (nd_volrec_is_chunk(k, klen) && nd_vptr_decode(val, vlen, &p) == 0 && p.vol == v->id)
            rv = move_paced(vs, k, &p, copied);
    }
    nd_store_iter_free(it);
    return rv;
}

/* Move every record of v the index still names; then v is garbage. */
static int compact_scan(struct vstore *vs, struct volume *v, uint64_t size, uint64_t *copied)
{
    uint64_t pos = 0;
    while (pos + ND_VOL_HEADER <= size) {
        char h[ND_VOL_HEADER], key[ND_SKEY_CHUNK_LEN];
        uint32_t len, crc;
        uint64_t span;
        if (nd_volrec_pread(v->fd, h, sizeof(h), pos) != 0 ||
            nd_volrec_header_decode(h, key, &len, &crc, &span) != 0) {
            /* A torn or failed append. Records after it may still be named (an append that
             * failed, or one not yet written when a later one's sync ran, before a crash):
             * the index says which. */
            CM_WARN("msg=\"volume has an unreadable record; compacting it by the index\" "
                    "volume=%u pos=%llu size=%llu",
                    v->id, (unsigned long long)pos, (unsigned long long)size);
            return compact_by_index(vs, v, copied);
        }
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
            int rv = move_paced(vs, key, &here, copied);
            if (rv != 0)
                return rv;
        }
        pos += span;
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
        rv = nd_vol_group_sync(vs); /* the new pointers durable before the old bytes go */
    if (rv != 0)
        return rv;
    /* Renamed a spare (reused by a later volume once no read holds it) or unlinked. Neither
     * needs its directory entry durable now: if a crash undoes it, the volume comes back with
     * nothing named in it and is reclaimed again; the next group commit syncs the directory. */
    char path[PATH_MAX], spare[PATH_MAX];
    nd_vol_path(vs, v->id, path, sizeof(path));
    nd_vol_spare_path(vs, v->id, spare, sizeof(spare));
    uv_mutex_lock(&vs->mu);
    int keep = nd_vol_keep_spare(vs);
    uv_mutex_unlock(&vs->mu);
    int e = (keep ? rename(path, spare) : unlink(path)) == 0 ? 0 : errno;
    uv_mutex_lock(&vs->mu);
    if (keep && e != 0)
        vs->spares_pending--; /* not renamed: nothing goes to the pool */
    if (e != 0 && e != ENOENT) {
        uv_mutex_unlock(&vs->mu);
        return nd_volrec_errno(e);
    }
    v->dead = 1;
    v->spare = keep && e == 0;
    vs->dir_dirty = 1;
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

int nd_vol_compact_pass(struct vstore *vs, int force)
{
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
        nd_vol_unref(vs, v);
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

void nd_vol_compact_thread(void *arg)
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
        nd_vol_compact_pass(vs, 0);
        nd_vol_trim_spares(vs);
    }
}
