/* Options and figures of the volume store (store/vol.h). */
#ifndef ND_STORE_VOLOPTS_H
#define ND_STORE_VOLOPTS_H

#include <stdint.h>

#define ND_VOL_SIZE_DEFAULT (64ull << 20)
#define ND_VOL_COMPACT_RATE_DEFAULT (32ull << 20)

struct nd_vol_opts {
    uint64_t volume_size;  /* a volume is sealed once the next record would pass this */
    uint64_t compact_rate; /* bytes/s compaction may copy; 0 = no background thread */
    unsigned garbage_pct;  /* compact a sealed volume once this much of it is garbage */
};

struct nd_vol_stats {
    uint64_t volumes, bytes, live_bytes;
    uint64_t appends, syncs, nospc;
    uint64_t compacted_bytes, reclaimed_bytes, reclaimed_volumes;
    uint64_t spares, reused_volumes; /* spare files kept; new volumes that reused one */
};

#endif
