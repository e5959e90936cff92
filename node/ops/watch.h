/* Commit watch and gateway leases of a shard (proto: WATCH family).
 *
 * Stream: a gateway sends WATCH {session, from_index} on a connection of its own; every entry
 * the shard's FSM applies that changes a key is kept in a bounded ring (ND_WATCH_RING events)
 * and sent to every subscriber, in index order, as WATCH_EVENT. A subscriber asking for events
 * the ring no longer holds first gets WATCH_RESET {index}: the stream continues after index,
 * and the gateway drops what it knows of the shard. A subscriber whose write queue is over its
 * high-water mark is resumed on drain. The gateway answers the stream with WATCH_ACK {seq,
 * applied}; every ack gets a WATCH_GRANT: raft term and leader as this node sees them and, when
 * it leads, the lease granted and the safe index (shard/lease.h).
 *
 * Holds: a leader-side answer to a write applied at index i (COMMIT_OK, DELETE_OK) waits in
 * nd_watch_hold until i is safe; it is released by acks, by leases running out (a timer), or
 * failed with LEADERSHIP_LOST when this node stops leading (the outcome is then unknown to the
 * client: a retried COMMIT of the same upload is answered by the new leader).
 *
 * Loop thread only. */
#ifndef ND_OPS_WATCH_H
#define ND_OPS_WATCH_H

#include <stdint.h>
#include <uv.h>

#include "headwater.pb-c.h"
#include "host/host.h"
#include "rpc/call.h"
#include "shard/lease.h"

#define ND_WATCH_RING 8192u
#define ND_WATCH_TICK_MS 20u
#define ND_LEASE_MS_DEFAULT 200u

struct nd_watch_ev;
struct nd_watch_sub;
struct nd_watch_hold;

/* A held answer: done(arg, ok) runs exactly once; ok = 1: the index is safe, answer the client;
 * 0: leadership was lost or the node stops (answer LEADERSHIP_LOST / UNAVAILABLE). */
typedef void (*nd_watch_done_cb)(void *arg, int ok);

struct nd_watch {
    struct nd_host *h;
    struct nd_shard *sh;
    struct nd_lease lease;
    struct nd_watch_ev *ring; /* ND_WATCH_RING slots */
    uint64_t start, count;    /* logical position of the oldest event; events held */
    uint64_t floor;           /* every event with a larger index is in the ring */
    uint64_t pushed_safe;     /* the safe index last sent to every subscriber */
    struct nd_watch_sub *subs;
    struct nd_watch_hold *holds, *holds_tail; /* in index order */
    uv_timer_t timer;
    struct raft_barrier barrier; /* the term's barrier (shard/lease.h nd_lease_floor) */
    uint64_t barrier_term;       /* the term it was proposed in, 0 = none in flight */
    /* the term's lease query (shard/lease.h): answers so far and what they named */
    uint64_t query_term;
    unsigned query_answers;
    struct nd_lease_pending *qp; /* owned */
    size_t nqp;
    struct nd_call *qcalls[ND_HOST_MAX_PEERS];
    int open, closing;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

/* floor: the shard's applied index now (events up to it will never be in the ring). */
int nd_watch_init(struct nd_watch *w, struct nd_host *h, struct nd_shard *sh, unsigned lease_ms,
                  uint64_t floor);
/* Answer every hold UNAVAILABLE, end the subscriptions' bookkeeping, close the timer; on_closed
 * runs after. */
void nd_watch_close(struct nd_watch *w, void (*on_closed)(void *arg), void *arg);
/* The FSM applied index (fsm.h on_event). */
void nd_watch_publish(struct nd_watch *w, uint64_t index, int kind, const Hw__ObjectMeta *meta);
/* The index of the newest change published (events up to it), or the floor when none is held. */
uint64_t nd_watch_newest(struct nd_watch *w);
/* A snapshot replaced the state up to index: every stream still before it gets WATCH_RESET. */
void nd_watch_restored(struct nd_watch *w, uint64_t index);
/* Hold an answer until index is safe: 1 = safe now (answer at once, done never runs), 0 =
 * held, -1 = out of memory (answer at once: the write is applied, only its coherence wait was
 * skipped; logged). */
int nd_watch_hold(struct nd_watch *w, uint64_t index, nd_watch_done_cb done, void *arg);
/* RPC handlers (ctx = the host; the host's watch is found by shard) and the connection hook. */
void nd_op_watch(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                 const struct cm_slice *pl);
void nd_op_watch_ack(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                     const struct cm_slice *pl);
void nd_op_lease_query(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                       const struct cm_slice *pl);
void nd_watch_conn_closed(struct nd_sconn *sc);

#endif
