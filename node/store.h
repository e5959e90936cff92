/* RocksDB-backed store of one node: every key carries its shard id, so more Raft groups
 * can be added without a format change.
 *
 *   'm' shard(4) key          -> ObjectMeta (protobuf)         current version of an object
 *   'u' upload(16) offset(8)  -> raw bytes                     object bytes (blob files)
 *   's' upload(16)            -> ObjectMeta (local = finished)  a staged upload
 *   'c' shard(4) upload(16)   -> version(8)                    committed uploads (idempotence)
 *   'r' shard(4) key          -> upload(16)                    repair marker: bytes missing
 *   'a' shard(4)              -> index(8)                      applied index of the shard FSM
 *   'x' shard(4) expires(8) key -> ""                          expiry index (TTL cleanup)
 *   'b'                       -> "1"                           the raft group was bootstrapped
 *
 * Integers are big-endian so keys sort by them. All functions are thread-safe (RocksDB
 * handles are); callers keep blocking calls off loop threads except where noted. */
#ifndef ND_STORE_H
#define ND_STORE_H

#include <rocksdb/c.h>
#include <stddef.h>
#include <stdint.h>

#define ND_UPLOAD_ID_LEN 16
#define ND_KEY_MAX 2048

struct nd_store {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wo_nosync;
    rocksdb_writeoptions_t *wo_sync;
    rocksdb_readoptions_t *ro;
    /* Whole-object chunk reads, which the reader checks against the object's crc32c itself:
     * RocksDB's own blob checksum is a table-driven CRC in Debian's portable build (~1 GB/s,
     * half a cold read's CPU), ours uses SSE4.2. */
    rocksdb_readoptions_t *ro_unverified;
};

/* A store key in caller storage. */
struct nd_skey {
    size_t len;
    char b[1 + 4 + 8 + ND_KEY_MAX + 16];
};

void nd_skey_meta(struct nd_skey *k, uint32_t shard, const char *key, size_t keylen);
void nd_skey_chunk(struct nd_skey *k, const uint8_t *upload, uint64_t offset);
void nd_skey_staged(struct nd_skey *k, const uint8_t *upload);
void nd_skey_committed(struct nd_skey *k, uint32_t shard, const uint8_t *upload);
void nd_skey_repair(struct nd_skey *k, uint32_t shard, const char *key, size_t keylen);
void nd_skey_applied(struct nd_skey *k, uint32_t shard);
void nd_skey_expiry(struct nd_skey *k, uint32_t shard, uint64_t expires_ms, const char *key,
                    size_t keylen);
void nd_skey_prefix(struct nd_skey *k, char tag, uint32_t shard); /* tag + shard */

void nd_put_u64(char *p, uint64_t v);
uint64_t nd_get_u64(const char *p);

int nd_store_open(const char *dir, struct nd_store *s, char *errmsg, size_t errlen);
void nd_store_close(struct nd_store *s);

/* 0 with *val (rocksdb_free it) or CM_ENOTFOUND / CM_ESTORE. */
int nd_store_get(struct nd_store *s, const struct nd_skey *k, char **val, size_t *vlen);
int nd_store_get_u64(struct nd_store *s, const struct nd_skey *k, uint64_t *out);
int nd_store_write(struct nd_store *s, rocksdb_writebatch_t *b, int sync);
/* Delete every chunk of an upload (a range delete). */
void nd_batch_del_chunks(rocksdb_writebatch_t *b, const uint8_t *upload);
void nd_batch_put(rocksdb_writebatch_t *b, const struct nd_skey *k, const void *v, size_t vlen);
void nd_batch_del(rocksdb_writebatch_t *b, const struct nd_skey *k);
/* Make every earlier write durable (sync the WAL). */
int nd_store_sync(struct nd_store *s);

#endif
