#include "cluster/pick.h"

double gw_pick_cost(const struct gw_pick *p)
{
    return (p->ewma_us + GW_PICK_BASE_US) * (double)(p->inflight + 1);
}

double gw_pick_decayed(double ewma_us, uint64_t age_ms)
{
    for (uint64_t t = GW_PICK_HALF_LIFE_MS; t <= age_ms && ewma_us > 1.0; t += GW_PICK_HALF_LIFE_MS)
        ewma_us /= 2.0;
    return ewma_us;
}

/* Is a strictly better than b? */
static int better(const struct gw_pick *a, const struct gw_pick *b)
{
    if (a->same_zone != b->same_zone)
        return a->same_zone > b->same_zone;
    return gw_pick_cost(a) < gw_pick_cost(b);
}

void gw_pick_order(struct gw_pick *c, size_t n)
{
    for (size_t i = 1; i < n; i++) { /* insertion sort: a handful of replicas, stable */
        struct gw_pick x = c[i];
        size_t j = i;
        while (j > 0 && better(&x, &c[j - 1])) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = x;
    }
}
