/* The store write queue of uploads (STAGE and FINISH writes), a pipelined group commit on two
 * threads of its own instead of the shared thread pool:
 *
 *   writer: runs the queued writes in order, each without a sync, as soon as they come; a
 *           durable one then goes to the syncer, the others are done;
 *   syncer: one store sync (nd_store_sync: the volumes' fdatasync, then the index's WAL) for
 *           every durable write the writer finished before it started; then they are done.
 *
 * So a sync never holds up the writes behind it, one sync covers every FINISH that came
 * meanwhile, and a thread wakes once per batch, not per write: on the pool, each FINISH cost a
 * hand-off to a pool thread, a wait on the group commit's condition and a hand-back, and the
 * node's CPU went to switching threads (the 16-writer benchmark, docs/benchmarks.md).
 *
 * done runs on the loop thread, after fn, exactly once, never from inside submit; its status
 * is 0 or, for a durable write, the sync's error. Tests without threads leave a host's commit
 * queue NULL: uploads then go to the work queue and sync in their own write. */
#ifndef ND_HOST_COMMITQ_H
#define ND_HOST_COMMITQ_H

#include <uv.h>

#include "host/work.h"
#include "store/store.h"

struct nd_commitq;

/* on_idle (may be NULL): on the loop, whenever the last pending write is done. */
int nd_commitq_open(struct nd_commitq **out, uv_loop_t *loop, struct nd_store *store,
                    void (*on_idle)(void *data), void *idle_data);
int nd_commitq_submit(struct nd_commitq *q, nd_work_fn fn, nd_work_done_cb done, void *arg,
                      int durable);
unsigned nd_commitq_pending(const struct nd_commitq *q); /* submitted, done not yet run */
/* Nothing may be pending; on_closed (may be NULL) runs once the loop let go of it. */
void nd_commitq_close(struct nd_commitq *q, void (*on_closed)(void *data), void *data);

#endif
