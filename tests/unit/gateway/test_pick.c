#include <criterion/criterion.h>

#include "cluster/pick.h"

/* Order c[0..3) and require ids a, b, d in that order. */
static void order_is(struct gw_pick *c, uint32_t a, uint32_t b, uint32_t d)
{
    gw_pick_order(c, 3);
    cr_assert(c[0].id == a && c[1].id == b && c[2].id == d, "got %u %u %u", c[0].id, c[1].id,
              c[2].id);
}

Test(pick, same_zone_first_even_when_slower)
{
    struct gw_pick c[] = {{1, 0, 300, 0}, {2, 1, 5000, 0}, {3, 0, 100, 0}};
    order_is(c, 2, 3, 1);
}

Test(pick, lowest_recent_latency_first)
{
    struct gw_pick c[] = {{1, 0, 900, 0}, {2, 0, 400, 0}, {3, 0, 650, 0}};
    order_is(c, 2, 3, 1);
}

/* Equal replicas: the one already serving reads waits its turn. */
Test(pick, busy_replica_yields_to_an_idle_equal)
{
    struct gw_pick c[] = {{1, 0, 500, 2}, {2, 0, 500, 0}, {3, 0, 500, 1}};
    order_is(c, 2, 3, 1);
}

/* Much faster still wins over a little busier: (100+200)*3 = 900 < (2000+200)*1. */
Test(pick, fast_replica_keeps_some_load)
{
    struct gw_pick c[] = {{1, 0, 2000, 0}, {2, 0, 100, 2}};
    gw_pick_order(c, 2);
    cr_assert_eq(c[0].id, 2);
}

Test(pick, never_measured_is_probed_and_ties_keep_order)
{
    struct gw_pick c[] = {{1, 0, 50, 0}, {2, 0, 0, 0}, {3, 0, 0, 0}};
    order_is(c, 2, 3, 1);
}

/* An estimate fades without new samples: a replica priced out by a bad spell is tried again. */
Test(pick, estimates_decay_without_samples)
{
    cr_assert_float_eq(gw_pick_decayed(100000.0, 0), 100000.0, 0.001);
    cr_assert_float_eq(gw_pick_decayed(100000.0, GW_PICK_HALF_LIFE_MS - 1), 100000.0, 0.001);
    cr_assert_float_eq(gw_pick_decayed(100000.0, GW_PICK_HALF_LIFE_MS), 50000.0, 0.001);
    cr_assert_float_eq(gw_pick_decayed(100000.0, 3 * GW_PICK_HALF_LIFE_MS), 12500.0, 0.001);
    cr_assert_eq(gw_pick_decayed(0.0, 60000), 0.0, "never measured stays unmeasured");
    struct gw_pick c[] = {{1, 0, gw_pick_decayed(GW_PICK_FAIL_US, 40000), 0}, {2, 0, 2000, 0}};
    gw_pick_order(c, 2);
    cr_assert_eq(c[0].id, 1, "a failure 40 s ago no longer outweighs a 2 ms replica");
}
