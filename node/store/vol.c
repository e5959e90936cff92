/* Volume store: open (migration from the older format, the live-byte count), close, the ops
 * table and the public calls (see vol.h). The core is volcore.c, compaction volcompact.c. */
#include "store/vol.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "alloc.h"
#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "store/skey.h"
#include "store/volcompact.h"
#include "store/volcore.h"
#include "store/volrec.h"

#define MIGRATE_BATCH 64

/* ---- open, migration, close ---- */

/* A spare found at open: into the pool, or unlinked past its size. */
static void scan_spare(struct vstore *vs, uint32_t id)
{
    char path[PATH_MAX];
    nd_vol_spare_path(vs, id, path, sizeof(path));
    int fd = vs->nspares < ND_VOL_SPARES_MAX ? open(path, O_RDWR | O_CLOEXEC) : -1;
    if (fd < 0) {
        unlink(path);
        return;
    }
    vs->spares[vs->nspares++] = (struct vspare){id, fd};
}

static int scan_dir(struct vstore *vs, char *errmsg, size_t errlen)
{
    DIR *d = opendir(vs->dir);
    if (d == NULL) {
        snprintf(errmsg, errlen, "volumes %s: %s", vs->dir, strerror(errno));
        return CM_EIO;
    }
    int rv = 0;
    struct dirent *e;
    vs->next_id = 1;
    while (rv == 0 && (e = readdir(d)) != NULL) {
        unsigned id;
        char ext[4];
        if (sscanf(e->d_name, "%8u.%3[a-z]", &id, ext) != 2 || id == 0 || strlen(e->d_name) != 12 ||
            (strcmp(ext, "vol") != 0 && strcmp(ext, "spr") != 0))
            continue;
        if (id >= vs->next_id)
            vs->next_id = id + 1; /* ids are never reused: no stale pointer names a new volume */
        if (ext[0] == 's') {
            scan_spare(vs, id);
            continue;
        }
        char path[PATH_MAX];
        nd_vol_path(vs, id, path, sizeof(path));
        int fd = open(path, O_RDWR | O_CLOEXEC);
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) != 0) {
            snprintf(errmsg, errlen, "volume %s: %s", path, strerror(errno));
            rv = CM_EIO;
            if (fd >= 0)
                close(fd);
            break;
        }
        /* Appends go past the end of the file: past a torn tail, and past what a reused volume
         * held before (a record is found only through the pointer its append wrote). */
        rv = nd_vol_add(vs, id, fd, nd_volrec_align_up((uint64_t)sb.st_size));
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
                 : nd_vol_append(vs, k, v, (uint32_t)vlen, NULL, ptr, &held[n]);
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
        rv = nd_vol_sync_volumes(vs); /* the copies durable before the pointers that name them */
        if (rv == 0)
            rv = nd_store_write(&vs->inner, &b, 1);
    }
    for (size_t i = 0; i < n; i++)
        if (held[i] != NULL)
            nd_vol_written(vs, held[i]);
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
        struct volume *vol = nd_vol_find(vs, p.vol);
        if (vol == NULL || p.pos + p.len > vol->size)
            dangling++;
        else
            vol->live += nd_volrec_span(p.len);
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
        if (vs->v[i]->dfd >= 0)
            close(vs->v[i]->dfd);
        cm_free(vs->v[i]);
    }
    nd_vol_bounce_free(vs);
    for (size_t i = 0; i < vs->nspares; i++)
        close(vs->spares[i].fd);
    cm_free(vs->v);
    nd_store_close(&vs->inner);
    uv_mutex_destroy(&vs->mu);
    uv_mutex_destroy(&vs->smu);
    uv_mutex_destroy(&vs->bmu);
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
    nd_vol_group_sync(vs); /* a clean stop leaves nothing to lose */
    vol_free(vs);
}

static const struct nd_store_ops vol_ops = {
    .get = nd_vol_get,
    .write = nd_vol_write,
    .sync = nd_vol_sync,
    .iter_new = nd_vol_iter_new,
    .close = vol_close,
    .chunk_len = nd_vol_chunk_len,
    .chunk_read = nd_vol_chunk_read,
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
    uv_mutex_init(&vs->bmu);
    uv_cond_init(&vs->scv);
    uv_mutex_init(&vs->tmu);
    uv_cond_init(&vs->tcv);
    int rv = vol_load(vs, errmsg, errlen);
    if (rv == 0 && o->compact_rate > 0) {
        rv = uv_thread_create(&vs->thr, nd_vol_compact_thread, vs) == 0 ? 0 : CM_ENOMEM;
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

int nd_store_vol_compact(struct nd_store *s, int force)
{
    return nd_vol_compact_pass(s->impl, force);
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
    out->spares = vs->nspares;
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
