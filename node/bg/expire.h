/* TTL cleanup of one shard, on its leader: objects past their expiry are deleted through
 * EXPIRE entries in the shard's log (see expire.c). */
#ifndef ND_BG_EXPIRE_H
#define ND_BG_EXPIRE_H

#include <stdint.h>

#include "host/host.h"

#define EXPIRE_EVERY_MS 1000

struct nd_expire {
    struct nd_host *h;   /* borrowed */
    struct nd_shard *sh; /* borrowed */
    int running;         /* a sweep is in flight (scan or proposals) */
    uint64_t last_ms;    /* mono ms of the last sweep's start */
};

void nd_expire_init(struct nd_expire *ex, struct nd_host *h, struct nd_shard *sh);
/* Periodic: on the leader, start a sweep when one is due (clock seam) and none runs. */
void nd_expire_tick(struct nd_expire *ex);

#endif
