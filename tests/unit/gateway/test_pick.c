#include <criterion/criterion.h>

#include "pick.h"

static void order_ids(struct gw_pick *c, size_t n, uint32_t *out)
{
    gw_pick_order(c, n);
    for (size_t i = 0; i < n; i++)
        out[i] = c[i].id;
}

Test(pick, same_zone_first_even_when_slower)
{
    struct gw_pick c[] = {{1, 0, 300, 0}, {2, 1, 5000, 0}, {3, 0, 100, 0}};
    uint32_t ids[3];
    order_ids(c, 3, ids);
    cr_assert_eq(ids[0], 2);
    cr_assert_eq(ids[1], 3);
    cr_assert_eq(ids[2], 1);
}

Test(pick, lowest_recent_latency_first)
{
    struct gw_pick c[] = {{1, 0, 900, 0}, {2, 0, 400, 0}, {3, 0, 650, 0}};
    uint32_t ids[3];
    order_ids(c, 3, ids);
    cr_assert_eq(ids[0], 2);
    cr_assert_eq(ids[1], 3);
    cr_assert_eq(ids[2], 1);
}

/* Equal replicas: the one already serving reads waits its turn. */
Test(pick, busy_replica_yields_to_an_idle_equal)
{
    struct gw_pick c[] = {{1, 0, 500, 2}, {2, 0, 500, 0}, {3, 0, 500, 1}};
    uint32_t ids[3];
    order_ids(c, 3, ids);
    cr_assert_eq(ids[0], 2);
    cr_assert_eq(ids[1], 3);
    cr_assert_eq(ids[2], 1);
}

/* Much faster still wins over a little busier: (100+200)*3 = 900 < (2000+200)*1. */
Test(pick, fast_replica_keeps_some_load)
{
    struct gw_pick c[] = {{1, 0, 2000, 0}, {2, 0, 100, 2}};
    uint32_t ids[2];
    order_ids(c, 2, ids);
    cr_assert_eq(ids[0], 2);
}

Test(pick, never_measured_is_probed_and_ties_keep_order)
{
    struct gw_pick c[] = {{1, 0, 50, 0}, {2, 0, 0, 0}, {3, 0, 0, 0}};
    uint32_t ids[3];
    order_ids(c, 3, ids);
    cr_assert_eq(ids[0], 2);
    cr_assert_eq(ids[1], 3);
    cr_assert_eq(ids[2], 1);
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
