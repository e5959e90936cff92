/* RocksDB store: key encoding and thin, error-translating wrappers (see store.h). */
#include "store.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"

void nd_put_u64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

uint64_t nd_get_u64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (uint8_t)p[i];
    return v;
}

static void put_u32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

void nd_skey_prefix(struct nd_skey *k, char tag, uint32_t shard)
{
    k->b[0] = tag;
    put_u32(k->b + 1, shard);
    k->len = 5;
}

static void skey_shard_key(struct nd_skey *k, char tag, uint32_t shard, const char *key,
                           size_t keylen)
{
    nd_skey_prefix(k, tag, shard);
    if (keylen > ND_KEY_MAX)
        keylen = ND_KEY_MAX; /* callers validate; never overflow */
    memcpy(k->b + 5, key, keylen);
    k->len += keylen;
}

void nd_skey_meta(struct nd_skey *k, uint32_t shard, const char *key, size_t keylen)
{
    skey_shard_key(k, 'm', shard, key, keylen);
}

void nd_skey_repair(struct nd_skey *k, uint32_t shard, const char *key, size_t keylen)
{
    skey_shard_key(k, 'r', shard, key, keylen);
}

void nd_skey_chunk(struct nd_skey *k, const uint8_t *upload, uint64_t offset)
{
    k->b[0] = 'u';
    memcpy(k->b + 1, upload, ND_UPLOAD_ID_LEN);
    nd_put_u64(k->b + 1 + ND_UPLOAD_ID_LEN, offset);
    k->len = 1 + ND_UPLOAD_ID_LEN + 8;
}

void nd_skey_staged(struct nd_skey *k, const uint8_t *upload)
{
    k->b[0] = 's';
    memcpy(k->b + 1, upload, ND_UPLOAD_ID_LEN);
    k->len = 1 + ND_UPLOAD_ID_LEN;
}

void nd_skey_committed(struct nd_skey *k, uint32_t shard, const uint8_t *upload)
{
    nd_skey_prefix(k, 'c', shard);
    memcpy(k->b + 5, upload, ND_UPLOAD_ID_LEN);
    k->len += ND_UPLOAD_ID_LEN;
}

void nd_skey_expiry(struct nd_skey *k, uint32_t shard, uint64_t expires_ms, const char *key,
                    size_t keylen)
{
    nd_skey_prefix(k, 'x', shard);
    nd_put_u64(k->b + 5, expires_ms);
    if (keylen > ND_KEY_MAX)
        keylen = ND_KEY_MAX;
    memcpy(k->b + 13, key, keylen);
    k->len = 13 + keylen;
}

void nd_skey_applied(struct nd_skey *k, uint32_t shard)
{
    nd_skey_prefix(k, 'a', shard);
}

int nd_store_open(const char *dir, struct nd_store *s, char *errmsg, size_t errlen)
{
    char *err = NULL;
    memset(s, 0, sizeof(*s));
    s->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->opts, 1);
    rocksdb_options_increase_parallelism(s->opts, 2);
    /* Object bytes go to blob files: the LSM tree then holds only small records. */
    rocksdb_options_set_enable_blob_files(s->opts, 1);
    rocksdb_options_set_min_blob_size(s->opts, 4096);
    s->db = rocksdb_open(s->opts, dir, &err);
    if (err != NULL) {
        snprintf(errmsg, errlen, "rocksdb open %s: %s", dir, err);
        rocksdb_free(err);
        rocksdb_options_destroy(s->opts);
        s->opts = NULL;
        return CM_ESTORE;
    }
    s->wo_nosync = rocksdb_writeoptions_create();
    s->wo_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wo_sync, 1);
    s->ro = rocksdb_readoptions_create();
    s->ro_unverified = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(s->ro_unverified, 0);
    /* unchecked blocks must not land in the block cache, where checked reads would trust them */
    rocksdb_readoptions_set_fill_cache(s->ro_unverified, 0);
    return 0;
}

void nd_store_close(struct nd_store *s)
{
    if (s->db == NULL)
        return;
    rocksdb_close(s->db);
    rocksdb_writeoptions_destroy(s->wo_nosync);
    rocksdb_writeoptions_destroy(s->wo_sync);
    rocksdb_readoptions_destroy(s->ro);
    rocksdb_readoptions_destroy(s->ro_unverified);
    rocksdb_options_destroy(s->opts);
    s->db = NULL;
}

int nd_store_get(struct nd_store *s, const struct nd_skey *k, char **val, size_t *vlen)
{
    char *err = NULL;
    *val = rocksdb_get(s->db, s->ro, k->b, k->len, vlen, &err);
    if (err != NULL) {
        CM_ERROR("store get failed err=\"%s\"", err);
        rocksdb_free(err);
        return CM_ESTORE;
    }
    return *val == NULL ? CM_ENOTFOUND : 0;
}

int nd_store_get_u64(struct nd_store *s, const struct nd_skey *k, uint64_t *out)
{
    char *v;
    size_t n;
    int rv = nd_store_get(s, k, &v, &n);
    if (rv != 0)
        return rv;
    *out = n == 8 ? nd_get_u64(v) : 0;
    rocksdb_free(v);
    return n == 8 ? 0 : CM_ESTORE;
}

int nd_store_write(struct nd_store *s, rocksdb_writebatch_t *b, int sync)
{
    char *err = NULL;
    rocksdb_write(s->db, sync ? s->wo_sync : s->wo_nosync, b, &err);
    if (err != NULL) {
        CM_ERROR("store write failed err=\"%s\"", err);
        rocksdb_free(err);
        return CM_ESTORE;
    }
    return 0;
}

int nd_store_sync(struct nd_store *s)
{
    char *err = NULL;
    rocksdb_flush_wal(s->db, 1, &err);
    if (err != NULL) {
        CM_ERROR("store wal sync failed err=\"%s\"", err);
        rocksdb_free(err);
        return CM_ESTORE;
    }
    return 0;
}

void nd_batch_del_chunks(rocksdb_writebatch_t *b, const uint8_t *upload)
{
    struct nd_skey lo, hi;
    nd_skey_chunk(&lo, upload, 0);
    nd_skey_chunk(&hi, upload, UINT64_MAX);
    rocksdb_writebatch_delete_range(b, lo.b, lo.len, hi.b, hi.len);
    rocksdb_writebatch_delete(b, hi.b, hi.len);
}

void nd_batch_put(rocksdb_writebatch_t *b, const struct nd_skey *k, const void *v, size_t vlen)
{
    rocksdb_writebatch_put(b, k->b, k->len, v, vlen);
}

void nd_batch_del(rocksdb_writebatch_t *b, const struct nd_skey *k)
{
    rocksdb_writebatch_delete(b, k->b, k->len);
}
