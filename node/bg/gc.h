/* GC of staged uploads that never committed: records older than --staged-ttl that no
 * connection is filling are dropped, with their bytes unless a commit adopted them. */
#ifndef ND_BG_GC_H
#define ND_BG_GC_H

#include <stdint.h>

#include "host/host.h"

#define GC_EVERY_MS 30000 /* or half of --staged-ttl when that is shorter */

struct nd_gc {
    struct nd_host *h; /* borrowed */
    int running;
    uint64_t last_ms; /* mono ms of the last sweep's start */
};

void nd_gc_init(struct nd_gc *g, struct nd_host *h);
/* Periodic: start a sweep when one is due (clock seam) and none runs. */
void nd_gc_tick(struct nd_gc *g);

#endif
