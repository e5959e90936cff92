/* Inside the volume store (store/vol.h): its core (volcore.c: the volume table, appends,
 * reads, the group commit, writes), for vol.c (open, close, ops) and volcompact.c. Nothing
 * outside the volume store includes this. Locks: volcore.c; the record format: vol.h. */
#ifndef ND_STORE_VOLCORE_H
#define ND_STORE_VOLCORE_H

#include <limits.h>
#include <stdint.h>
#include <uv.h>

#include "store/store.h"
#include "store/volopts.h"
#include "store/volrec.h"

#define ND_VOL_TICK_MS 1000u
#define ND_VOL_SETTLE_MS 30000u /* a sealed volume's garbage is copied around only after this */
#define VOL_STOPPED 1           /* compaction asked to stop (not an error) */
#define ND_VOL_SPARES_MAX 8     /* reclaimed volume files kept for reuse (see vol.h, "reuse") */
#define ND_VOL_BOUNCE_MAX 4     /* aligned buffers kept for direct appends */
#define ND_VOL_BOUNCE_LEN ((1u << 20) + 2 * ND_VOL_ALIGN) /* one 1 MiB chunk's record fits */

struct volume {
    uint32_t id;
    int fd;        /* reads, fdatasync; appends when dfd cannot be used */
    int dfd;       /* O_DIRECT appends: -2 not opened yet, -1 none (the fs refused it) */
    int no_direct; /* a direct append failed with EINVAL: buffered from then on */
    uint64_t size; /* reserved end */
    uint64_t
        live; /* bytes of the records pointers name, padding in (an estimate; compaction checks) */
    unsigned refs;
    unsigned writers;   /* appends whose pointer is not written yet: not compactable */
    int dirty;          /* written since its last fdatasync */
    uint64_t sealed_ms; /* when the next volume took over (0: active) */
    int dead;           /* unlinked (or renamed a spare): closed and dropped at refs 0 */
    int spare;          /* dead and renamed a spare: its file goes to the pool at refs 0 */
};

/* A reclaimed volume's file, kept open for reuse: DIR/NNNNNNNN.spr (its last id). */
struct vspare {
    uint32_t id;
    int fd;
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
    uint32_t next_id; /* of the next volume: past every id a volume or spare had */
    int dir_dirty;    /* a volume was created or renamed since the last dir fsync */
    struct vspare spares[ND_VOL_SPARES_MAX]; /* reuse the last one first (its pages cached) */
    size_t nspares;
    unsigned spares_pending;         /* renamed spares still read (refs > 0): going to the pool */
    unsigned spare_cap;              /* how many spares the file system's size allows */
    uv_mutex_t bmu;                  /* the bounce buffers */
    void *bounce[ND_VOL_BOUNCE_MAX]; /* ND_VOL_BOUNCE_LEN each, ND_VOL_ALIGN aligned */
    size_t nbounce;
    struct nd_vol_stats st;                       /* counters under mu */
    uint64_t space_ms, free_bytes, reserve_bytes; /* statvfs of dir, under mu */
};

/* Under mu: the volume with this id, NULL when none. */
struct volume *nd_vol_find(struct vstore *vs, uint32_t id);
/* Drop a reference (takes mu); a dead volume closes with its last one. */
void nd_vol_unref(struct vstore *vs, struct volume *v);
void nd_vol_path(const struct vstore *vs, uint32_t id, char *out, size_t outlen);
void nd_vol_spare_path(const struct vstore *vs, uint32_t id, char *out, size_t outlen);
/* Under mu: may one more reclaimed volume be kept as a spare? (counts it pending when so) */
int nd_vol_keep_spare(struct vstore *vs);
/* Close and unlink spares past the cap, all of them while space is short (outside mu). */
void nd_vol_trim_spares(struct vstore *vs);
/* Append one chunk record (key: a chunk key; known_crc: the bytes' crc32c when the caller has
 * it, else computed here); its pointer into ptr, and its volume held as a writer until
 * nd_vol_written (so compaction leaves it alone until the pointer is in the index). */
int nd_vol_append(struct vstore *vs, const char *key, const void *bytes, uint32_t len,
                  const uint32_t *known_crc, char ptr[ND_VOL_PTR_LEN], struct volume **held);
/* The pointers of appends to v are written (or never will be). */
void nd_vol_written(struct vstore *vs, struct volume *v);
/* [skip, skip + len) of the chunk p names into dst; verify: only once its crc32c held. */
int nd_vol_read_ptr(struct vstore *vs, const struct nd_vptr *p, uint64_t skip, size_t len,
                    void *dst, int verify);
/* Under mu: the record p names no longer counts as live in v (its span: padding included, so a
 * volume of small live records does not look like garbage). */
void nd_vol_uncount(struct volume *v, const struct nd_vptr *p);
/* Under mu: count a new pointer's bytes as live in its volume. */
void nd_vol_count_ptr(struct vstore *vs, const char *ptr);
/* fdatasync every volume written since its last one, then the directory when a volume was
 * created or renamed since its last fsync (no index sync). */
int nd_vol_sync_volumes(struct vstore *vs);
/* The group commit: every volume written so far fdatasync'ed, then the index's WAL. */
int nd_vol_group_sync(struct vstore *vs);
int nd_vol_add(struct vstore *vs, uint32_t id, int fd, uint64_t size);
/* Free the kept bounce buffers (at close). */
void nd_vol_bounce_free(struct vstore *vs);
/* The store ops (vs = s->impl). */
int nd_vol_get(struct nd_store *s, const char *k, size_t klen, char **val, size_t *vlen);
int nd_vol_write(struct nd_store *s, const struct nd_batch *orig, int sync);
int nd_vol_sync(struct nd_store *s);
int nd_vol_iter_new(struct nd_store *s, int flags, const char *hi, size_t hilen,
                    struct nd_store_iter **out);
int nd_vol_chunk_len(struct nd_store *s, const char *v, size_t vlen, uint64_t *len);
int nd_vol_chunk_read(struct nd_store *s, const char *v, size_t vlen, uint64_t skip, size_t len,
                      void *dst, int verify);

#endif
