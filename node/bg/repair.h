/* Repair of one shard replica: pull the bytes of committed versions that are not local
 * (repair markers 'r') from a holder, verify them and adopt them (see repair.c). */
#ifndef ND_BG_REPAIR_H
#define ND_BG_REPAIR_H

#include <stdint.h>

#include "host/host.h"

#define REPAIR_RETRY_MS 500 /* after a pass that left items behind */

struct nd_repair {
    struct nd_host *h;   /* borrowed */
    struct nd_shard *sh; /* borrowed */
    int running;         /* a pass is in flight */
    char *cursor;        /* owned: last key repaired or skipped */
    uint64_t not_before; /* mono ms: a tick starts no pass before this */
};

void nd_repair_init(struct nd_repair *rp, struct nd_host *h, struct nd_shard *sh);
void nd_repair_close(struct nd_repair *rp); /* no pass may be running */
/* Start a pass now unless one runs or nothing is missing. */
void nd_repair_kick(struct nd_repair *rp);
/* Periodic: a kick, paced after a pass that could not repair everything. */
void nd_repair_tick(struct nd_repair *rp);

#endif
