/* RocksDB store: thin, error-translating wrappers behind the store ops (see rocks.h). A
 * RocksDB error text naming a full disk becomes CM_ENOSPC, every other one CM_ESTORE. */
#include "store/rocks.h"

#include <rocksdb/c.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "log.h"

struct rocks {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wo_nosync;
    rocksdb_writeoptions_t *wo_sync;
    rocksdb_readoptions_t *ro;
    /* Whole-object chunk reads, which the reader checks against the object's crc32c itself:
     * RocksDB's own blob checksum is a table-driven CRC in Debian's portable build (~1 GB/s,
     * half a cold read's CPU), ours uses SSE4.2. */
    rocksdb_readoptions_t *ro_unverified;
    rocksdb_block_based_table_options_t *bbto;
};

struct rocks_iter {
    struct nd_store_iter base;
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ro; /* own, when bounded (the bound must outlive the iterator) */
    size_t hilen;
    char hi[]; /* the upper bound's bytes */
};

static int translate(const char *what, char *err)
{
    int rv = strstr(err, "No space left") != NULL ? CM_ENOSPC : CM_ESTORE;
    CM_ERROR("store %s failed err=\"%s\"", what, err);
    rocksdb_free(err);
    return rv;
}

static int rocks_get(struct nd_store *s, const char *k, size_t klen, char **val, size_t *vlen)
{
    struct rocks *r = s->impl;
    char *err = NULL;
    size_t n = 0;
    char *v = rocksdb_get(r->db, r->ro, k, klen, &n, &err);
    if (err != NULL)
        return translate("get", err);
    if (v == NULL)
        return CM_ENOTFOUND;
    *val = cm_malloc(n ? n : 1);
    if (*val == NULL) {
        rocksdb_free(v);
        return CM_ENOMEM;
    }
    memcpy(*val, v, n);
    *vlen = n;
    rocksdb_free(v);
    return 0;
}

static int rocks_write(struct nd_store *s, const struct nd_batch *b, int sync)
{
    struct rocks *r = s->impl;
    char *err = NULL;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    for (size_t i = 0; i < b->n; i++) {
        const struct nd_batch_item *it = &b->items[i];
        if (it->op == ND_BATCH_PUT)
            rocksdb_writebatch_put(wb, it->key, it->klen, it->val, it->vlen);
        else if (it->op == ND_BATCH_DEL)
            rocksdb_writebatch_delete(wb, it->key, it->klen);
        else
            rocksdb_writebatch_delete_range(wb, it->key, it->klen, it->val, it->vlen);
    }
    rocksdb_write(r->db, sync ? r->wo_sync : r->wo_nosync, wb, &err);
    rocksdb_writebatch_destroy(wb);
    return err != NULL ? translate("write", err) : 0;
}

static int rocks_sync(struct nd_store *s)
{
    struct rocks *r = s->impl;
    char *err = NULL;
    rocksdb_flush_wal(r->db, 1, &err);
    return err != NULL ? translate("wal sync", err) : 0;
}

static const struct nd_store_ops rocks_ops;

static int rocks_iter_new(struct nd_store *s, int flags, const char *hi, size_t hilen,
                          struct nd_store_iter **out)
{
    struct rocks *r = s->impl;
    struct rocks_iter *it = cm_calloc(1, sizeof(*it) + (hi != NULL ? hilen : 0));
    if (it == NULL)
        return CM_ENOMEM;
    it->base.ops = &rocks_ops;
    rocksdb_readoptions_t *ro = flags & ND_ITER_UNVERIFIED ? r->ro_unverified : r->ro;
    if (hi != NULL) {
        it->ro = rocksdb_readoptions_create();
        if (flags & ND_ITER_UNVERIFIED) {
            rocksdb_readoptions_set_verify_checksums(it->ro, 0);
            rocksdb_readoptions_set_fill_cache(it->ro, 0);
        }
        memcpy(it->hi, hi, hilen);
        it->hilen = hilen;
        rocksdb_readoptions_set_iterate_upper_bound(it->ro, it->hi, it->hilen);
        ro = it->ro;
    }
    it->it = rocksdb_create_iterator(r->db, ro);
    *out = &it->base;
    return 0;
}

static void rocks_iter_seek(struct nd_store_iter *i, const char *k, size_t klen)
{
    rocksdb_iter_seek(((struct rocks_iter *)i)->it, k, klen);
}

static void rocks_iter_seek_for_prev(struct nd_store_iter *i, const char *k, size_t klen)
{
    rocksdb_iter_seek_for_prev(((struct rocks_iter *)i)->it, k, klen);
}

static int rocks_iter_valid(struct nd_store_iter *i)
{
    return rocksdb_iter_valid(((struct rocks_iter *)i)->it);
}

static void rocks_iter_next(struct nd_store_iter *i)
{
    rocksdb_iter_next(((struct rocks_iter *)i)->it);
}

static const char *rocks_iter_key(struct nd_store_iter *i, size_t *len)
{
    return rocksdb_iter_key(((struct rocks_iter *)i)->it, len);
}

static const char *rocks_iter_value(struct nd_store_iter *i, size_t *len)
{
    return rocksdb_iter_value(((struct rocks_iter *)i)->it, len);
}

static void rocks_iter_free(struct nd_store_iter *i)
{
    struct rocks_iter *it = (struct rocks_iter *)i;
    rocksdb_iter_destroy(it->it);
    if (it->ro != NULL)
        rocksdb_readoptions_destroy(it->ro);
    cm_free(i);
}

static void rocks_close(struct nd_store *s)
{
    struct rocks *r = s->impl;
    rocksdb_close(r->db);
    rocksdb_writeoptions_destroy(r->wo_nosync);
    rocksdb_writeoptions_destroy(r->wo_sync);
    rocksdb_readoptions_destroy(r->ro);
    rocksdb_readoptions_destroy(r->ro_unverified);
    rocksdb_options_destroy(r->opts);
    rocksdb_block_based_options_destroy(r->bbto);
    cm_free(r);
}

static const struct nd_store_ops rocks_ops = {
    rocks_get,
    rocks_write,
    rocks_sync,
    rocks_iter_new,
    rocks_iter_seek,
    rocks_iter_seek_for_prev,
    rocks_iter_valid,
    rocks_iter_next,
    rocks_iter_key,
    rocks_iter_value,
    rocks_iter_free,
    rocks_close,
    NULL,
    NULL,
};

int nd_store_rocks_open(struct nd_store *s, const char *dir, char *errmsg, size_t errlen)
{
    char *err = NULL;
    memset(s, 0, sizeof(*s));
    struct rocks *r = cm_calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(errmsg, errlen, "rocksdb open %s: out of memory", dir);
        return CM_ENOMEM;
    }
    r->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(r->opts, 1);
    rocksdb_options_increase_parallelism(r->opts, 2);
    /* Object bytes go to blob files: the LSM tree then holds only small records. */
    rocksdb_options_set_enable_blob_files(r->opts, 1);
    rocksdb_options_set_min_blob_size(r->opts, 4096);
    /* Its info log only at its header level: Debian's build asserts when a log write fails
     * (a full disk), and our own log says what matters. */
    rocksdb_options_set_info_log_level(r->opts, 5);
    /* Writers from the work queue and the loop meet in RocksDB's write group: by default the
     * ones that wait spin (adaptive yield, up to 100 us) and insert into the memtable in
     * parallel. With 2 cores shared by a node's threads and its peers, the spinning was CPU
     * taken from the work itself: the 16-writer benchmark gained 7 %. */
    /* Most point reads miss (a new upload's committed record, a key never written): a bloom
     * filter per table answers those without reading each table's index. */
    r->bbto = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_filter_policy(r->bbto, rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_set_block_based_table_factory(r->opts, r->bbto);
    rocksdb_options_set_enable_write_thread_adaptive_yield(r->opts, 0);
    rocksdb_options_set_allow_concurrent_memtable_write(r->opts, 0);
    r->db = rocksdb_open(r->opts, dir, &err);
    if (err != NULL) {
        snprintf(errmsg, errlen, "rocksdb open %s: %s", dir, err);
        rocksdb_free(err);
        rocksdb_options_destroy(r->opts);
        rocksdb_block_based_options_destroy(r->bbto);
        cm_free(r);
        return CM_ESTORE;
    }
    r->wo_nosync = rocksdb_writeoptions_create();
    r->wo_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(r->wo_sync, 1);
    r->ro = rocksdb_readoptions_create();
    r->ro_unverified = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(r->ro_unverified, 0);
    /* unchecked blocks must not land in the block cache, where checked reads would trust them */
    rocksdb_readoptions_set_fill_cache(r->ro_unverified, 0);
    s->ops = &rocks_ops;
    s->impl = r;
    return 0;
}
