/* The process-wide buffered-bytes budget: marks shrink as the process nears the budget, every
 * change is charged once, and past the budget the member holding the most for the longest is
 * picked (and stops counting), from its own list only; threads charging one budget agree. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "http/budget.h"

#define MiB (1024u * 1024u)

Test(budget, mark_shrinks_toward_the_budget)
{
    size_t high = 8 * MiB;
    cr_assert_eq(gw_budget_mark_for(0, 0, high), high, "no budget");
    cr_assert_eq(gw_budget_mark_for(100 * MiB, 0, high), high, "no budget");
    cr_assert_eq(gw_budget_mark_for(0, 64 * MiB, high), high);
    cr_assert_eq(gw_budget_mark_for(32 * MiB, 64 * MiB, high), high, "half: still full");
    cr_assert_eq(gw_budget_mark_for(48 * MiB, 64 * MiB, high), 4 * MiB, "3/4: half the mark");
    cr_assert_eq(gw_budget_mark_for(64 * MiB, 64 * MiB, high), GW_BUDGET_MARK_FLOOR);
    cr_assert_eq(gw_budget_mark_for(99 * MiB, 64 * MiB, high), GW_BUDGET_MARK_FLOOR);
    cr_assert_eq(gw_budget_mark_for(63 * MiB + 1000000, 64 * MiB, high), GW_BUDGET_MARK_FLOOR);
    size_t prev = high;
    for (uint64_t u = 0; u <= 70 * MiB; u += MiB / 3) {
        size_t m = gw_budget_mark_for(u, 64 * MiB, high);
        cr_assert_leq(m, prev, "never grows as use grows (%llu)", (unsigned long long)u);
        cr_assert_geq(m, GW_BUDGET_MARK_FLOOR);
        prev = m;
    }
    struct gw_budget b;
    gw_budget_init(&b, 64 * MiB);
    cr_assert_eq(gw_budget_mark(&b, high), high);
    cr_assert_eq(gw_budget_mark(NULL, high), high);
}

Test(budget, charges_add_up_and_leave_uncharges)
{
    struct gw_budget b;
    gw_budget_init(&b, 100 * MiB);
    struct gw_budget_list l;
    gw_budget_list_init(&l, &b);
    struct gw_budget_member m1, m2;
    gw_budget_join(&l, &m1);
    gw_budget_join(&l, &m2);
    cr_assert_null(gw_budget_set(&m1, 5 * MiB, 10));
    cr_assert_null(gw_budget_set(&m2, 3 * MiB, 10));
    cr_assert_eq(gw_budget_used(&b), 8 * MiB);
    cr_assert_null(gw_budget_set(&m1, 1 * MiB, 20)); /* progress */
    cr_assert_eq(gw_budget_used(&b), 4 * MiB);
    gw_budget_leave(&m2);
    gw_budget_leave(&m2); /* idempotent */
    cr_assert_eq(gw_budget_used(&b), 1 * MiB);
    cr_assert_null(gw_budget_set(&m2, 7 * MiB, 30), "not a member: ignored");
    cr_assert_eq(gw_budget_used(&b), 1 * MiB);
    gw_budget_leave(&m1);
    cr_assert_eq(gw_budget_used(&b), 0);
    cr_assert_null(l.head);

    /* no budget at all: members never charge anything */
    struct gw_budget_list none;
    gw_budget_list_init(&none, NULL);
    gw_budget_join(&none, &m1);
    cr_assert_null(gw_budget_set(&m1, 1ull << 40, 1));
    gw_budget_leave(&m1);
}

Test(budget, over_the_budget_the_slowest_biggest_is_picked_once)
{
    struct gw_budget b;
    gw_budget_init(&b, 16 * MiB);
    struct gw_budget_list l, other;
    gw_budget_list_init(&l, &b);
    gw_budget_list_init(&other, &b);
    struct gw_budget_member stalled, fresh, small, elsewhere;
    gw_budget_join(&l, &stalled);
    gw_budget_join(&l, &fresh);
    gw_budget_join(&l, &small);
    gw_budget_join(&other, &elsewhere);
    cr_assert_null(gw_budget_set(&elsewhere, 6 * MiB, 0)); /* another loop: never picked here */
    cr_assert_null(gw_budget_set(&stalled, 6 * MiB, 1000));
    cr_assert_null(gw_budget_set(&small, 1 * MiB, 1000));
    /* 13 MiB used; a reader making progress stays young */
    cr_assert_null(gw_budget_set(&fresh, 2 * MiB, 1500));
    cr_assert_null(gw_budget_set(&fresh, 1 * MiB, 4000));
    /* over: the stalled one (6 MiB for 3 s) goes, not the one that just queued more */
    struct gw_budget_member *v = gw_budget_set(&fresh, 4 * MiB, 4000);
    cr_assert_eq(v, &stalled);
    cr_assert_null(stalled.list, "picked: left the list");
    cr_assert_eq(gw_budget_used(&b), 11 * MiB, "its bytes stop counting at once");
    cr_assert_null(gw_budget_set(&stalled, 0, 4001), "its late changes are ignored");
    cr_assert_eq(gw_budget_used(&b), 11 * MiB);
    /* over again, and only members of this list are candidates */
    v = gw_budget_set(&small, 7 * MiB, 4100);
    cr_assert(v == &small || v == &fresh);
    cr_assert_neq(v, &elsewhere);
    gw_budget_leave(&fresh);
    gw_budget_leave(&small);
    gw_budget_leave(&elsewhere);
    cr_assert_eq(gw_budget_used(&b), 0);
}

struct churn {
    struct gw_budget *b;
    int id;
};

static void *churn_run(void *arg)
{
    struct churn *c = arg;
    struct gw_budget_list l;
    gw_budget_list_init(&l, c->b);
    struct gw_budget_member m[8];
    for (int i = 0; i < 8; i++)
        gw_budget_join(&l, &m[i]);
    for (uint64_t t = 0; t < 20000; t++) {
        struct gw_budget_member *x = &m[(t * 7 + (uint64_t)c->id) % 8];
        if (x->list == NULL)
            gw_budget_join(&l, x);
        gw_budget_set(x, (t * 2654435761u) % (3 * MiB), t);
    }
    for (int i = 0; i < 8; i++)
        gw_budget_leave(&m[i]);
    return NULL;
}

Test(budget, threads_charging_one_budget_end_at_zero)
{
    struct gw_budget b;
    gw_budget_init(&b, 8 * MiB);
    pthread_t th[4];
    struct churn c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (struct churn){&b, i};
        cr_assert_eq(pthread_create(&th[i], NULL, churn_run, &c[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(gw_budget_used(&b), 0);
}
