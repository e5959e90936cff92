/* Shard of a key (see shard.h). */
#include "shard.h"

#include <string.h>

#include "crc32c.h"

uint32_t cm_shard_of(const char *key, uint32_t shard_count)
{
    const char *slash = strrchr(key, '/');
    size_t n = slash ? (size_t)(slash - key) : 0;
    return shard_count ? cm_crc32c(0, key, n) % shard_count : 0;
}
