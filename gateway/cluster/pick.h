/* Which replica a read goes to first (pure; get.c gathers the facts from cluster.c).
 *
 * Reachable replicas only. This gateway's --zone first, then the lowest expected wait:
 * (ewma_us + GW_PICK_BASE_US) * (inflight + 1), i.e. the replica's recent time to first byte,
 * scaled by how many of this loop's reads it is already serving. So a fast replica gets the
 * reads while it stays fast, and concurrent reads spread over equal replicas instead of piling
 * onto whichever measured a microsecond faster. A replica never measured (ewma 0) looks cheap
 * and gets probed. Ties keep their input order. */
#ifndef GW_PICK_H
#define GW_PICK_H

#include <stddef.h>
#include <stdint.h>

#define GW_PICK_BASE_US 200.0
/* A failed read (error, lost connection, no first frame in time) counts as a sample this slow. */
#define GW_PICK_FAIL_US 100000u
/* An estimate halves every this many ms without a new sample, so a replica priced out by a bad
 * spell gets tried again instead of being avoided forever. */
#define GW_PICK_HALF_LIFE_MS 5000u

struct gw_pick {
    uint32_t id;
    int same_zone;
    double ewma_us;    /* recent time to first answer frame; 0 = never measured */
    unsigned inflight; /* reads of this loop it is serving now */
};

double gw_pick_cost(const struct gw_pick *p);
/* ewma_us as it stands age_ms after its last sample. */
double gw_pick_decayed(double ewma_us, uint64_t age_ms);
/* Sort c[0..n) best first (stable). */
void gw_pick_order(struct gw_pick *c, size_t n);

#endif
