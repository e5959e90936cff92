/* Store keys of one node: every key carries its shard id, so more Raft groups can be added
 * without a format change. Pure functions into caller storage.
 *
 *   'm' shard(4) key          -> ObjectMeta (protobuf)         current version of an object
 *   'u' upload(16) offset(8)  -> raw bytes                     object bytes (blob files)
 *   's' upload(16)            -> ObjectMeta (local = finished)  a staged upload
 *   'c' shard(4) upload(16)   -> version(8)                    committed uploads (idempotence)
 *   'r' shard(4) key          -> upload(16)                    repair marker: bytes missing
 *   'a' shard(4)              -> index(8)                      applied index of the shard FSM
 *   'x' shard(4) expires(8) key -> ""                          expiry index (TTL cleanup)
 *   'b'                       -> "1"                           shard 0's group was bootstrapped
 *
 * Integers are big-endian so keys sort by them. */
#ifndef ND_STORE_SKEY_H
#define ND_STORE_SKEY_H

#include <stddef.h>
#include <stdint.h>

#define ND_UPLOAD_ID_LEN 16
#define ND_KEY_MAX 2048
#define ND_SKEY_CHUNK_LEN (1 + ND_UPLOAD_ID_LEN + 8)

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
void nd_skey_bootstrapped(struct nd_skey *k);
void nd_skey_prefix(struct nd_skey *k, char tag, uint32_t shard); /* tag + shard */
/* Does stored key k (klen bytes) start with prefix p? */
int nd_skey_has_prefix(const char *k, size_t klen, const struct nd_skey *p);

void nd_put_u64(char *p, uint64_t v);
uint64_t nd_get_u64(const char *p);

/* An object key as the RPC accepts it: non-empty, <= 1024 bytes, starting with '/'. */
int nd_key_valid(const char *key);

#endif
