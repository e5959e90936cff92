/* Gateway read leases of one shard, as its leader keeps them (pure logic: time is passed in).
 *
 * Every gateway session acknowledges on its commit-watch stream the index up to which it has
 * processed the shard's applied entries. The leader grants the session a lease of lease_ms from
 * each acknowledgement it receives, provided the session has caught up with the safe index.
 * While its lease runs, a gateway answers reads from what it knows (its cache, invalidated by
 * the watch); so the leader acknowledges a write at index i to its client only once i is safe:
 * every session holding an unexpired lease acknowledged an index >= i.
 *
 * A new leader does not know which leases its predecessor granted. A gateway counts a lease as
 * valid only when the leader and a majority of the shard's replicas granted it for the same
 * term and leader (gateway/cluster/watch.c); a replica that voted for a newer term grants no
 * more for the old one, so every lease of an older term was granted before this leader was
 * elected, and has run out lease_ms after it. The safe index therefore does not move during the
 * first lease_ms (+ ND_LEASE_MARGIN_MS) of a term: no write is acknowledged before then.
 *
 * The wait ends earlier when the replicas tell: each replica remembers when it last named a
 * leader to each session (nd_lease_named). Once a majority answered the new leader's query
 * (nd_lease_query), only the sessions they named an older term's leader to within a lease time
 * can hold such a lease (any majority intersects the one behind that lease), and the wait is over
 * when each of them holds a lease of this term (it caught up here) or its old lease ran out.
 *
 * A new leader also grants nothing before the barrier it proposes at the start of its term is
 * applied (nd_lease_floor): entries of earlier terms may have been applied, shown to readers
 * and acknowledged by the old leader without being applied here yet. A lease then needs an
 * acknowledgement at or above the barrier, so every lease holder of the new term has seen them.
 *
 * Loop thread only. */
#ifndef ND_SHARD_LEASE_H
#define ND_SHARD_LEASE_H

#include <stddef.h>
#include <stdint.h>

#define ND_LEASE_MARGIN_MS 25u

struct nd_lease_holder {
    uint64_t session;
    uint64_t acked;      /* highest index the session acknowledged */
    uint64_t expires;    /* monotonic ms; 0 = holds no lease */
    unsigned conns;      /* watch connections of this session to this node */
    uint64_t named_ms;   /* monotonic ms this node last named a leader to it, 0 = never */
    uint64_t named_term; /* the term it named then */
    struct nd_lease_holder *next;
};

/* A session this replica named an older term's leader to, ms_ago milliseconds ago. */
struct nd_lease_naming {
    uint64_t session, ms_ago;
};

/* A session that may hold an older term's lease until `until` (monotonic ms, this node's). */
struct nd_lease_pending {
    uint64_t session, until;
};

struct nd_lease {
    unsigned lease_ms;
    int leading;
    uint64_t term;       /* the term last observed */
    uint64_t term_start; /* monotonic ms when this node was first seen leading term */
    uint64_t safe;       /* safe index of this term (0 until the first wait is over) */
    uint64_t floor;      /* the term's barrier index: no lease below it */
    int floor_ready;     /* the barrier was applied */
    int query_done;      /* a majority answered this term's query: pending is complete */
    struct nd_lease_pending *pending; /* owned */
    size_t npending;
    struct nd_lease_holder *holders;
};

void nd_lease_init(struct nd_lease *l, unsigned lease_ms);
void nd_lease_free(struct nd_lease *l);
/* Raft's view now. A term this node leads anew resets every lease and starts the wait; losing
 * leadership drops the leases too (a follower grants none). */
void nd_lease_observe(struct nd_lease *l, int leading, uint64_t term, uint64_t now);
/* The barrier this leader proposed in term applied at index (ignored for another term). */
void nd_lease_floor(struct nd_lease *l, uint64_t term, uint64_t index);
/* This node named a leader of term to the session at now (a grant with a leader in it). */
void nd_lease_named(struct nd_lease_holder *hd, uint64_t term, uint64_t now);
/* What this node answers a leader of `term` (its own query too): the sessions it named a leader
 * of an older term to within a lease time (+ margin), each with how long ago. *out is cm_malloc'd
 * (NULL when none); returns the count, or -1 when out of memory. */
long nd_lease_named_before(const struct nd_lease *l, uint64_t term, uint64_t now,
                           struct nd_lease_naming **out);
/* A majority answered this term's query: the sessions that may hold an older term's lease and
 * until when (copied). Ignored for another term; CM_ENOMEM leaves the plain wait. */
int nd_lease_query(struct nd_lease *l, uint64_t term, const struct nd_lease_pending *p, size_t n);
/* The session's holder (conns + 1), created when absent; NULL: out of memory. */
struct nd_lease_holder *nd_lease_attach(struct nd_lease *l, uint64_t session);
/* One watch connection of the holder closed. peer_gone (the gateway closed it, or its process
 * died): the lease ends now (a gateway stops using its lease before it closes any stream).
 * Else (this node closed it) the lease runs out on its own: the gateway may not know yet. */
void nd_lease_detach(struct nd_lease *l, struct nd_lease_holder *hd, int peer_gone);
/* Free the holders with no connection, no lease and no naming within a lease time. */
void nd_lease_gc(struct nd_lease *l, uint64_t now);
/* An acknowledgement received at now: the lease granted (lease_ms), or 0 (not leading, the
 * term's barrier not applied yet, or the session has not caught up with the safe index and the
 * barrier). */
unsigned nd_lease_ack(struct nd_lease *l, struct nd_lease_holder *hd, uint64_t acked, uint64_t now);
/* Advance and return the safe index, applied being the highest applied index. *next_ms: the
 * monotonic time at which it may advance without any acknowledgement (a lease running out or
 * the term's wait ending), 0 = none. */
uint64_t nd_lease_safe(struct nd_lease *l, uint64_t applied, uint64_t now, uint64_t *next_ms);

#endif
