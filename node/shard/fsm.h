/* The state machine of one shard's Raft group: object metadata in the node's RocksDB store.
 *
 * Apply writes one RocksDB batch per entry that also records the shard's applied index, so
 * re-applying an entry after a crash (raft replays its log from the last snapshot) is a
 * no-op: the FSM is persistent, and a snapshot older than what the store already holds is
 * ignored on restore. Snapshots carry metadata only; bytes are repaired.
 *
 * canonical/raft 0.15 applies synchronously on the loop thread, so apply does its few small
 * point reads and one unsynced batch write there (memtable appends; the Raft log itself is
 * the durable record until the next snapshot, before which the WAL is synced). */
#ifndef ND_SHARD_FSM_H
#define ND_SHARD_FSM_H

#include <raft.h>
#include <stdint.h>

#include "headwater.pb-c.h"
#include "store/store.h"

/* A committed upload's 'c' record: its version, this bit set when its commit created the key. */
#define ND_FSM_CREATED_BIT (1ull << 63)
/* A 'c' record (committed upload, or a DELETE's op id) answers a retry only while its entry is
 * fewer than this many entries old: a gateway retries for 3 s, far fewer entries than this.
 * Checked at apply, so every replica decides alike whether or not it dropped the record yet;
 * snapshots carry only those this young, and drop the older ones from the store. */
#define ND_FSM_RETRY_WINDOW 16384u

/* Entries the store refused while its disk is full wait here at most (count, bytes); past
 * either bound the replica cannot keep its place in the log and the node stops. */
#define ND_FSM_PENDING_MAX 65536u
#define ND_FSM_PENDING_BYTES_MAX (64u * 1024 * 1024)

struct nd_fsm_pending; /* one entry waiting to be applied (fsm.c) */

/* What the last applied entry did; read by the raft_apply callback right after apply. */
struct nd_apply_result {
    uint64_t version;        /* PUT: version of the key; DELETE: index of the delete */
    int created;             /* PUT: the key did not exist before */
    int found;               /* DELETE: the key existed */
    int precondition_failed; /* PUT: its precondition did not hold; nothing was written */
    int changed;             /* the entry changed the key (a new version, or a removal) */
    int deferred;   /* the store refused the write (disk full): the entry is committed and waits
                       in f->pending; nothing else in this result is known yet */
    uint64_t index; /* raft index of the entry */
    int64_t created_ms, expires_ms; /* PUT: the new version's (0: not known, a retried commit) */
};

struct nd_fsm {
    struct raft_fsm raft; /* raft.data = this */
    struct raft *r;       /* borrowed: for the index being applied */
    struct nd_store *store;
    uint32_t shard;
    uint64_t applied;        /* persisted applied index */
    uint64_t repair_backlog; /* committed versions whose bytes are not local */
    struct nd_apply_result result;
    int read_err; /* a store read failed during the apply in progress */
    struct nd_fsm_pending *pending_head, *pending_tail; /* owned: committed, not yet applied */
    size_t pending_n, pending_bytes;
    int pending_err;         /* the store error that stopped the queue (CM_ENOSPC, ...) */
    uint64_t store_refusals; /* apply batches the store refused (metrics) */
    void (*on_missing)(struct nd_fsm *f, void *data); /* a new repair marker exists */
    /* An applied entry changed a key (the commit watch): kind PUT (meta = the new version),
     * DELETE or EXPIRE (meta->key). meta is borrowed for the call. */
    void (*on_event)(struct nd_fsm *f, uint64_t index, int kind, const Hw__ObjectMeta *meta,
                     void *data);
    /* A snapshot replaced the state up to index: the changes in it were never applied here one
     * by one (the commit watch cannot stream them). */
    void (*on_restored)(struct nd_fsm *f, uint64_t index, void *data);
    void *data;
};

/* Load the applied index and repair backlog from the store (blocking: call before the loop
 * runs). */
int nd_fsm_init(struct nd_fsm *f, struct nd_store *store, uint32_t shard, struct raft *r);

/* Apply what waits in f->pending, in order, as far as the store takes it: 0 when nothing waits
 * any more, else the store's error. Cheap when nothing waits (the node's tick calls it). */
int nd_fsm_retry(struct nd_fsm *f);

/* The index up to which the store holds applied state (raft's own applied index may be ahead
 * while entries wait). */
uint64_t nd_fsm_applied(const struct nd_fsm *f);

/* Free what waits (the shard is closing; raft replays those entries on the next start). */
void nd_fsm_close(struct nd_fsm *f);

/* Encode a raft entry into a raft_malloc'd buffer (length-prefixed, padded to a multiple
 * of 8 bytes as raft_uv requires), ready for raft_apply. */
int nd_fsm_encode(const Hw__RaftEntry *e, struct raft_buffer *out);

/* Apply an encoded entry as if at `index` (raft's apply callback and unit tests). Returns 0,
 * RAFT_MALFORMED for an entry that was skipped as malformed (the index is recorded either
 * way), or a store error (CM_ESTORE, CM_ENOSPC, CM_ENOMEM) when the batch could not be
 * written: then nothing changed, in the store or in f, and the entry may be applied again. */
int nd_fsm_apply_at(struct nd_fsm *f, uint64_t index, const void *data, size_t len);

#endif
