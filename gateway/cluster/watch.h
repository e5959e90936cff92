/* Commit watch client and read lease of a gateway process (node side: node/ops/watch.h).
 *
 * One watch per process, run on one loop: a connection of its own to every node of the shard
 * (WATCH {session, from_index}), all of them streaming the entries their FSM applies. Events are
 * merged by raft index (every replica applies the same log): an event above what was processed
 * invalidates its key (on_invalidate, i.e. the hot-object cache) and then advances `applied`;
 * WATCH_RESET past `applied` drops everything (on_reset) and jumps to it.
 *
 * Every GW_WATCH_ACK_MS the watch acknowledges `applied` on every stream (WATCH_ACK {seq}); each
 * node answers WATCH_GRANT {seq, term, leader, ...}. The process holds a read lease until
 * send(seq) + lease_ms - GW_LEASE_MARGIN_MS when, for that seq, the shard leader granted a lease
 * and a majority of the replicas (the leader included) named the same term and leader: a replica
 * that voted for a newer term names it, so no lease of a deposed leader outlives the new leader's
 * first wait (node/shard/lease.h). While the lease holds, every write acknowledged to any client
 * has been processed here (the leader waits for it), so:
 *   - a cached object is current: serve it;
 *   - a miss reads any replica with min_index = applied;
 *   - an answer carrying version (or, for a miss, the replica's applied index) v is returned only
 *     once safe >= v: every lease holder knows v, so no later read anywhere returns older.
 * Losing any stream ends the lease at once: the leader may see the close first, and a replica
 * forgets what it named to a closed stream's session.
 *
 * State readers (every loop): gw_watch_coh, lock-free atomics. Start/stop on the watch's loop. */
#ifndef GW_CLUSTER_WATCH_H
#define GW_CLUSTER_WATCH_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/cluster.h"
#include "cluster/upstream.h"

#define GW_WATCH_ACK_MS 50u
#define GW_LEASE_MARGIN_MS 20u

/* What the read path asks (any thread). */
struct gw_coh {
    atomic_uint_fast64_t applied;     /* every event up to here processed */
    atomic_uint_fast64_t safe;        /* every write up to here known to every lease holder */
    atomic_uint_fast64_t lease_until; /* monotonic ms */
    atomic_uint_fast64_t resets;      /* WATCH_RESETs that dropped the cache */
    atomic_uint_fast64_t events;      /* events processed */
    atomic_uint_fast64_t term;        /* of the last lease */
    struct gw_live live;              /* who answers, and the freshest leader (cluster.h) */
};

static inline int gw_coh_lease_ok(struct gw_coh *c, uint64_t now_ms)
{
    return atomic_load(&c->lease_until) > now_ms;
}
static inline uint64_t gw_coh_applied(struct gw_coh *c)
{
    return atomic_load(&c->applied);
}
static inline uint64_t gw_coh_safe(struct gw_coh *c)
{
    return atomic_load(&c->safe);
}

/* A leader acknowledged a write at v: it did so only once v was safe (node/shard/lease.h). */
static inline void gw_coh_note_safe(struct gw_coh *c, uint64_t v)
{
    uint_fast64_t cur = atomic_load(&c->safe);
    while (cur < v && !atomic_compare_exchange_weak(&c->safe, &cur, v))
        ;
}

struct gw_watch_hooks {
    void (*on_invalidate)(void *arg, const char *key, uint64_t index); /* its raft index */
    void (*on_reset)(void *arg, uint64_t index);                       /* jumped to index */
    /* After `applied` reached index: key changed (NULL: anything may have, a reset). Whoever
     * reads gw_coh_applied after this sees index, so a reader that registered interest in key
     * before this call is woken, and one that did not reads at or past index. */
    void (*on_applied)(void *arg, const char *key, uint64_t index);
    void *arg;
};

struct gw_watch;

/* coh (borrowed, outlives the watch) is what the watch keeps current. */
int gw_watch_start(uv_loop_t *loop, struct gw_upstream *up, struct gw_cluster *cl,
                   struct gw_coh *coh, const struct gw_watch_hooks *hooks, struct gw_watch **out);
/* Release its connections (before the pool closes); frees itself after its timer closed. */
void gw_watch_stop(struct gw_watch *w);

#endif
