/* Store key encoding (see skey.h). */
#include "store/skey.h"

#include <string.h>

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

int nd_skey_has_prefix(const char *k, size_t klen, const struct nd_skey *p)
{
    return klen >= p->len && memcmp(k, p->b, p->len) == 0;
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
    k->len = ND_SKEY_CHUNK_LEN;
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

void nd_skey_bootstrapped(struct nd_skey *k)
{
    k->b[0] = 'b';
    k->len = 1;
}

int nd_key_valid(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    return n > 0 && n <= 1024 && key[0] == '/';
}
