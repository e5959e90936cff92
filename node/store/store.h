/* The node's key-value store behind an ops table (the shape of raft_io): RocksDB in
 * production (store/rocks.h), an in-memory sorted store with fault countdowns in tests
 * (store/mem.h). Key layout: store/skey.h.
 *
 * Every function is thread-safe; callers keep blocking calls (every one but the in-memory
 * store's) off loop threads except where a module says why not. Errors: CM_ENOTFOUND,
 * CM_ESTORE, CM_ENOSPC, CM_ENOMEM; a failed write changes nothing. */
#ifndef ND_STORE_STORE_H
#define ND_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/skey.h"

/* A write batch: puts, deletes and range deletes applied atomically by nd_store_write. Values
 * put with nd_batch_put are copied; nd_batch_put_ref borrows them until the write returns
 * (media bytes). An allocation failure is remembered and fails the write. */
enum nd_batch_op { ND_BATCH_PUT, ND_BATCH_DEL, ND_BATCH_DEL_RANGE };

struct nd_batch_item {
    enum nd_batch_op op;
    char *key; /* owned */
    size_t klen;
    const char *val; /* PUT: owned when own_val; DEL_RANGE: the exclusive end key, owned */
    size_t vlen;
    int own_val;
    int has_crc; /* PUT of a chunk: crc is the crc32c of val (nd_batch_put_chunk) */
    uint32_t crc;
    int fresh; /* nd_batch_put_chunk: a new upload's chunk, no record under its key yet */
};

struct nd_batch {
    struct nd_batch_item *items;
    size_t n, cap;
    int oom;
};

void nd_batch_init(struct nd_batch *b);
void nd_batch_clear(struct nd_batch *b);
void nd_batch_close(struct nd_batch *b);
void nd_batch_put(struct nd_batch *b, const struct nd_skey *k, const void *v, size_t vlen);
void nd_batch_put_ref(struct nd_batch *b, const struct nd_skey *k, const void *v, size_t vlen);
/* nd_batch_put_ref of a chunk whose crc32c the caller computed, of an upload being staged (so
 * no record exists under its key yet): a store that keeps a crc per chunk (the volume store)
 * takes it instead of reading the bytes again, and does not look for an old record to replace
 * (its live-byte count; were one there after all, the count errs high, which delays nothing
 * but the reclaiming of that volume: compaction checks every record against the index). */
void nd_batch_put_chunk(struct nd_batch *b, const struct nd_skey *k, const void *v, size_t vlen,
                        uint32_t crc);
void nd_batch_put_raw(struct nd_batch *b, const char *k, size_t klen, const void *v, size_t vlen);
void nd_batch_del(struct nd_batch *b, const struct nd_skey *k);
void nd_batch_del_raw(struct nd_batch *b, const char *k, size_t klen);
/* Delete every key in [lo, hi). */
void nd_batch_del_range(struct nd_batch *b, const struct nd_skey *lo, const struct nd_skey *hi);
/* Delete every chunk of an upload. */
void nd_batch_del_chunks(struct nd_batch *b, const uint8_t *upload);

enum nd_iter_flags {
    ND_ITER_UNVERIFIED = 1, /* skip the store's own checksums; the reader checks (bulk reads) */
};

struct nd_store;
/* Implementations embed this first in their iterator. */
struct nd_store_iter {
    const struct nd_store_ops *ops;
};

/* An implementation. Iterators see a consistent view taken at iter_new. */
struct nd_store_ops {
    /* 0 with *val (cm_malloc'd, caller frees) or CM_ENOTFOUND / CM_ESTORE / CM_ENOMEM. */
    int (*get)(struct nd_store *s, const char *k, size_t klen, char **val, size_t *vlen);
    int (*write)(struct nd_store *s, const struct nd_batch *b, int sync);
    int (*sync)(struct nd_store *s); /* make every earlier write durable */
    /* hi (NULL: none): the caller reads no key >= hi, so the iterator may end there instead
     * of stepping over deleted keys past the caller's range (RocksDB's iterate_upper_bound). */
    int (*iter_new)(struct nd_store *s, int flags, const char *hi, size_t hilen,
                    struct nd_store_iter **out);
    void (*iter_seek)(struct nd_store_iter *it, const char *k, size_t klen);
    void (*iter_seek_for_prev)(struct nd_store_iter *it, const char *k, size_t klen);
    int (*iter_valid)(struct nd_store_iter *it);
    void (*iter_next)(struct nd_store_iter *it);
    const char *(*iter_key)(struct nd_store_iter *it, size_t *len);
    const char *(*iter_value)(struct nd_store_iter *it, size_t *len);
    void (*iter_free)(struct nd_store_iter *it);
    void (*close)(struct nd_store *s);
    /* Object bytes of a chunk record ('u' key) whose stored value is v: their length, and
     * [skip, skip + len) of them into dst (with verify, only once the chunk's own checksum
     * held). NULL: the value is the bytes (RocksDB alone, the in-memory store). */
    int (*chunk_len)(struct nd_store *s, const char *v, size_t vlen, uint64_t *len);
    int (*chunk_read)(struct nd_store *s, const char *v, size_t vlen, uint64_t skip, size_t len,
                      void *dst, int verify);
};

struct nd_store {
    const struct nd_store_ops *ops; /* NULL when closed */
    void *impl;
};

int nd_store_get(struct nd_store *s, const struct nd_skey *k, char **val, size_t *vlen);
/* An 8-byte big-endian value; CM_ESTORE when the record has another length. */
int nd_store_get_u64(struct nd_store *s, const struct nd_skey *k, uint64_t *out);
int nd_store_write(struct nd_store *s, const struct nd_batch *b, int sync);
int nd_store_sync(struct nd_store *s);
void nd_store_close(struct nd_store *s);
/* A chunk record's object bytes (store ops chunk_len / chunk_read). CM_EIO: the record is not
 * a chunk of this store or its bytes are unreadable; CM_ECHECKSUM: they fail their checksum. */
int nd_store_chunk_len(struct nd_store *s, const char *v, size_t vlen, uint64_t *len);
int nd_store_chunk_read(struct nd_store *s, const char *v, size_t vlen, uint64_t skip, size_t len,
                        void *dst, int verify);

int nd_store_iter_new(struct nd_store *s, int flags, struct nd_store_iter **out);
/* An iterator over keys < hi only (see iter_new). */
int nd_store_iter_new_below(struct nd_store *s, int flags, const char *hi, size_t hilen,
                            struct nd_store_iter **out);
void nd_store_iter_seek(struct nd_store_iter *it, const char *k, size_t klen);
/* Position at the last key <= k. */
void nd_store_iter_seek_for_prev(struct nd_store_iter *it, const char *k, size_t klen);
int nd_store_iter_valid(struct nd_store_iter *it);
void nd_store_iter_next(struct nd_store_iter *it);
const char *nd_store_iter_key(struct nd_store_iter *it, size_t *len);
const char *nd_store_iter_value(struct nd_store_iter *it, size_t *len);
void nd_store_iter_free(struct nd_store_iter *it); /* NULL is fine */

/* Call cb for every record whose key starts with prefix, from `from` (NULL = the prefix) on,
 * in key order, until cb returns non-zero (returned). CM_ENOMEM when no iterator. */
typedef int (*nd_store_each_cb)(const char *k, size_t klen, const char *v, size_t vlen, void *arg);
int nd_store_each(struct nd_store *s, const struct nd_skey *prefix, const struct nd_skey *from,
                  nd_store_each_cb cb, void *arg);

#endif
