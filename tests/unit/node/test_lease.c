/* Gateway read leases at the shard leader (node/shard/lease.h): when a write may be
 * acknowledged (the safe index), and what a new term does. Time is passed in. */
#include <criterion/criterion.h>

#include "alloc.h"
#include "shard/lease.h"

#define D 500u

static uint64_t safe_at(struct nd_lease *l, uint64_t applied, uint64_t now)
{
    uint64_t next;
    return nd_lease_safe(l, applied, now, &next);
}

/* A new leader acknowledges nothing for the lease time: leases its predecessor granted may still
 * run; after it, with no holder, everything applied is safe. */
Test(lease, a_new_term_waits_out_the_longest_lease)
{
    struct nd_lease l;
    uint64_t next;
    nd_lease_init(&l, D);
    nd_lease_observe(&l, 1, 7, 1000);
    nd_lease_floor(&l, 7, 0);
    cr_assert_eq(nd_lease_safe(&l, 40, 1000, &next), 0);
    cr_assert_eq(next, 1000 + D + ND_LEASE_MARGIN_MS, "it knows when to look again");
    cr_assert_eq(safe_at(&l, 40, 1000 + D), 0, "still inside the wait (margin)");
    cr_assert_eq(safe_at(&l, 40, 1000 + D + ND_LEASE_MARGIN_MS), 40);
    nd_lease_free(&l);
}

/* A write is safe only once every holder of an unexpired lease acknowledged it; a holder that
 * stops acknowledging holds writes back until its lease runs out, not longer. */
Test(lease, a_write_waits_for_every_lease_holder_or_its_lease_end)
{
    struct nd_lease l;
    uint64_t next;
    nd_lease_init(&l, D);
    nd_lease_observe(&l, 1, 3, 0);
    nd_lease_floor(&l, 3, 0);
    uint64_t t = D + ND_LEASE_MARGIN_MS;
    struct nd_lease_holder *a = nd_lease_attach(&l, 0xa);
    struct nd_lease_holder *b = nd_lease_attach(&l, 0xb);
    cr_assert_eq(nd_lease_ack(&l, a, 10, t), D);
    cr_assert_eq(nd_lease_ack(&l, b, 10, t), D);
    cr_assert_eq(safe_at(&l, 10, t), 10);
    /* entry 11 applied; a knows it, b is silent (paused) */
    cr_assert_eq(nd_lease_ack(&l, a, 11, t + 10), D);
    cr_assert_eq(nd_lease_safe(&l, 11, t + 10, &next), 10, "b may still serve the old version");
    cr_assert_eq(next, t + D, "b's lease end");
    cr_assert_eq(safe_at(&l, 11, t + D - 1), 10);
    cr_assert_eq(safe_at(&l, 11, t + D), 11, "b's lease ran out");
    /* b comes back behind the safe index: no lease until it caught up */
    cr_assert_eq(nd_lease_ack(&l, b, 10, t + D + 5), 0);
    cr_assert_eq(nd_lease_ack(&l, b, 11, t + D + 6), D);
    nd_lease_free(&l);
}

/* The safe index never goes back, and losing the leadership or a new term drops every lease. */
Test(lease, safe_is_monotonic_and_a_term_change_ends_leases)
{
    struct nd_lease l;
    nd_lease_init(&l, D);
    nd_lease_observe(&l, 1, 1, 0);
    nd_lease_floor(&l, 1, 0);
    uint64_t t = D + ND_LEASE_MARGIN_MS;
    struct nd_lease_holder *a = nd_lease_attach(&l, 1);
    nd_lease_ack(&l, a, 20, t);
    cr_assert_eq(safe_at(&l, 20, t), 20);
    struct nd_lease_holder *b = nd_lease_attach(&l, 2);
    cr_assert_eq(nd_lease_ack(&l, b, 5, t), 0, "behind the safe index: no lease");
    cr_assert_eq(safe_at(&l, 25, t + 1), 20, "a new holder behind it does not pull it back");
    nd_lease_observe(&l, 0, 1, t + 2);
    cr_assert_eq(nd_lease_ack(&l, a, 25, t + 3), 0, "a follower grants no lease");
    nd_lease_observe(&l, 1, 2, t + 4);
    nd_lease_floor(&l, 2, 0);
    cr_assert_eq(safe_at(&l, 30, t + 5), 0, "a new term waits again");
    cr_assert_eq(a->expires, 0);
    nd_lease_free(&l);
}

/* A stream the gateway closed (or whose process died) ends its lease at once; one this node
 * closed lets the lease run out (the gateway may still be using it). The holder goes with its
 * last connection and lease. */
Test(lease, a_closed_stream_ends_the_lease)
{
    struct nd_lease l;
    nd_lease_init(&l, D);
    nd_lease_observe(&l, 1, 1, 0);
    nd_lease_floor(&l, 1, 0);
    uint64_t t = D + ND_LEASE_MARGIN_MS;
    struct nd_lease_holder *a = nd_lease_attach(&l, 1);
    cr_assert_eq(nd_lease_attach(&l, 1), a, "one holder per session");
    nd_lease_ack(&l, a, 3, t);
    cr_assert_eq(safe_at(&l, 4, t), 3);
    nd_lease_detach(&l, a, 1);
    cr_assert_eq(safe_at(&l, 4, t), 4, "its lease ended with the stream");
    nd_lease_detach(&l, a, 1);
    nd_lease_gc(&l, t);
    cr_assert_null(l.holders, "no stream, no lease, never named");
    struct nd_lease_holder *b = nd_lease_attach(&l, 2);
    nd_lease_ack(&l, b, 4, t);
    nd_lease_detach(&l, b, 0);
    cr_assert_eq(safe_at(&l, 5, t + 1), 4, "closed by this node: its lease still runs");
    cr_assert_eq(safe_at(&l, 5, t + D), 5);
    nd_lease_gc(&l, t + D);
    cr_assert_null(l.holders, "and then it is gone");
    nd_lease_free(&l);
}

/* A new leader grants nothing before its term's barrier is applied, and then only to sessions
 * that acknowledged the barrier's index: entries of the old term it applied late may already
 * have been shown to readers or acknowledged by the old leader. */
Test(lease, no_lease_before_the_barrier_of_the_term)
{
    struct nd_lease l;
    nd_lease_init(&l, D);
    nd_lease_observe(&l, 1, 4, 0);
    struct nd_lease_holder *a = nd_lease_attach(&l, 1);
    cr_assert_eq(nd_lease_ack(&l, a, 50, 1), 0, "barrier not applied yet");
    nd_lease_floor(&l, 3, 60);
    cr_assert_eq(nd_lease_ack(&l, a, 50, 2), 0, "a barrier of another term counts for nothing");
    nd_lease_floor(&l, 4, 60);
    cr_assert_eq(nd_lease_ack(&l, a, 59, 3), 0, "behind the barrier");
    cr_assert_eq(nd_lease_ack(&l, a, 60, 4), D);
    uint64_t t = D + ND_LEASE_MARGIN_MS;
    cr_assert_eq(nd_lease_ack(&l, a, 60, t), D);
    cr_assert_eq(safe_at(&l, 61, t), 60, "61 waits for the holder");
    nd_lease_free(&l);
}

/* A new leader's wait ends as soon as every session the replicas named an older leader to within
 * a lease time holds a lease of the new term, or its old lease ran out; before a majority answered
 * it is the whole lease time. What a replica reports: namings of older terms, recent ones only. */
Test(lease, the_query_ends_the_wait_early)
{
    struct nd_lease l;
    struct nd_lease_naming *p = NULL;
    nd_lease_init(&l, D);
    struct nd_lease_holder *a = nd_lease_attach(&l, 0xa);
    struct nd_lease_holder *b = nd_lease_attach(&l, 0xb);
    nd_lease_named(a, 6, 1000);
    nd_lease_named(b, 7, 1000);
    cr_assert_eq(nd_lease_named_before(&l, 7, 1100, &p), 1, "b was named the new term already");
    cr_assert_eq(p[0].session, 0xa);
    cr_assert_eq(p[0].ms_ago, 100, "100 ms ago");
    cm_free(p);
    cr_assert_eq(nd_lease_named_before(&l, 7, 1000 + D + ND_LEASE_MARGIN_MS, &p), 0, "too old");
    nd_lease_observe(&l, 1, 7, 1100);
    nd_lease_floor(&l, 7, 10);
    cr_assert_eq(safe_at(&l, 12, 1110), 0, "no answers yet: the whole wait");
    struct nd_lease_pending q[] = {{0xa, 1100 + D}};
    cr_assert_eq(nd_lease_query(&l, 7, q, 1), 0);
    cr_assert_eq(safe_at(&l, 12, 1120), 0, "a may still hold its old lease");
    cr_assert_eq(nd_lease_ack(&l, a, 12, 1130), D, "a caught up: a lease of this term");
    cr_assert_eq(safe_at(&l, 12, 1131), 12, "every possible old holder is a new one");
    nd_lease_free(&l);
}

Test(lease, a_silent_old_holder_holds_the_wait_until_its_lease_ran_out)
{
    struct nd_lease l;
    nd_lease_init(&l, D);
    nd_lease_observe(&l, 1, 2, 0);
    nd_lease_floor(&l, 2, 1);
    struct nd_lease_pending q[] = {{0x77, 300}};
    nd_lease_query(&l, 2, q, 1);
    uint64_t next;
    cr_assert_eq(nd_lease_safe(&l, 5, 100, &next), 0);
    cr_assert_eq(next, 300, "when its old lease runs out");
    cr_assert_eq(safe_at(&l, 5, 300), 5, "before the plain wait would have ended");
    nd_lease_free(&l);
}
