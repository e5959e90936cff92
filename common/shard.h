/* The one shard function: which shard a key belongs to. Pure. */
#ifndef CM_SHARD_H
#define CM_SHARD_H

#include <stdint.h>

/* crc32c of the key's stream directory (everything before its last '/'; "" when it has none)
 * mod shard_count; 0 when shard_count is 0. */
uint32_t cm_shard_of(const char *key, uint32_t shard_count);

#endif
