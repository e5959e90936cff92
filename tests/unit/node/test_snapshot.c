/* Snapshot and restore of the shard FSM between two replicas' stores: metadata only, local
 * bytes that stay valid are kept, missing ones become repair markers, an older snapshot than
 * the store is ignored, and a snapshot whose store sync fails is refused. */
#include <criterion/criterion.h>
#include <string.h>

#include "err.h"
#include "nodetest.h"
#include "shard/fsm.h"
#include "store/mem.h"

static struct nd_store sa, sb;
static struct nd_fsm fa, fb;
static const uint8_t up1[16] = {1}, up2[16] = {2}, up3[16] = {3}, up4[16] = {4};

static void setup(void)
{
    cr_assert_eq(nd_store_mem_open(&sa), 0);
    cr_assert_eq(nd_store_mem_open(&sb), 0);
    cr_assert_eq(nd_fsm_init(&fa, &sa, 0, NULL), 0);
    cr_assert_eq(nd_fsm_init(&fb, &sb, 0, NULL), 0);
}

static void teardown(void)
{
    nd_store_close(&sa);
    nd_store_close(&sb);
}

TestSuite(snapshot, .init = setup, .fini = teardown);

static void apply(struct nd_fsm *f, uint64_t index, int kind, const uint8_t *up, const char *key)
{
    uint8_t buf[512];
    size_t n = t_entry(kind, up, key, 5, buf);
    cr_assert_eq(nd_fsm_apply_at(f, index, buf, n), 0);
}

static void take(struct nd_fsm *f, struct raft_buffer *out)
{
    struct raft_buffer *bufs;
    unsigned n;
    cr_assert_eq(f->raft.snapshot(&f->raft, &bufs, &n), 0);
    cr_assert_eq(n, 1);
    *out = bufs[0];
    raft_free(bufs);
}

Test(snapshot, restore_keeps_valid_local_bytes_and_marks_the_rest)
{
    /* Replica A: a.ts and b.ts local, c.ts deleted, d.ts with bytes elsewhere. */
    t_stage(&sa, up1, "/s/a.ts", "aaaaa", 1);
    t_stage(&sa, up2, "/s/b.ts", "bbbbb", 1);
    apply(&fa, 1, HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/s/a.ts");
    apply(&fa, 2, HW__RAFT_ENTRY__KIND__KIND_PUT, up2, "/s/b.ts");
    apply(&fa, 3, HW__RAFT_ENTRY__KIND__KIND_PUT, up3, "/s/c.ts");
    apply(&fa, 4, HW__RAFT_ENTRY__KIND__KIND_DELETE, NULL, "/s/c.ts");
    apply(&fa, 5, HW__RAFT_ENTRY__KIND__KIND_PUT, up4, "/s/d.ts");
    unsigned syncs = nd_store_mem_syncs(&sa);
    struct raft_buffer snap;
    take(&fa, &snap);
    cr_assert_gt(nd_store_mem_syncs(&sa), syncs, "a snapshot makes the store durable first");

    /* Replica B had a.ts (same upload) locally, an old x.ts that the snapshot does not know,
     * and b.ts's bytes staged but never committed here. */
    t_stage(&sb, up1, "/s/a.ts", "aaaaa", 1);
    apply(&fb, 1, HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/s/a.ts");
    static const uint8_t upx[16] = {9};
    t_stage(&sb, upx, "/s/x.ts", "xxxxx", 1);
    apply(&fb, 2, HW__RAFT_ENTRY__KIND__KIND_PUT, upx, "/s/x.ts");
    t_stage(&sb, up2, "/s/b.ts", "bbbbb", 1);

    cr_assert_eq(fb.raft.restore(&fb.raft, &snap), 0);
    cr_assert_eq(fb.applied, 5);
    Hw__ObjectMeta *m = t_meta_of(&sb, 0, "/s/a.ts");
    cr_assert(m != NULL && m->local, "a.ts kept its local bytes");
    hw__object_meta__free_unpacked(m, NULL);
    cr_assert(t_chunk_exists(&sb, up1));
    m = t_meta_of(&sb, 0, "/s/b.ts");
    cr_assert(m != NULL && m->local, "b.ts promoted from its staged upload");
    hw__object_meta__free_unpacked(m, NULL);
    cr_assert_null(t_meta_of(&sb, 0, "/s/x.ts"), "x.ts is not in the snapshot");
    cr_assert(!t_chunk_exists(&sb, upx), "...and its bytes went with it");
    cr_assert_null(t_meta_of(&sb, 0, "/s/c.ts"));
    m = t_meta_of(&sb, 0, "/s/d.ts");
    cr_assert(m != NULL && !m->local);
    hw__object_meta__free_unpacked(m, NULL);
    cr_assert(t_marker_exists(&sb, "/s/d.ts"));
    cr_assert_eq(fb.repair_backlog, 1);
    /* The committed-uploads table came along: a retried commit of b.ts is a no-op on B, and
     * still answers created (the flag travels in the snapshot). */
    uint8_t buf[512];
    size_t n = t_entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up2, "/s/b.ts", 5, buf);
    cr_assert_eq(nd_fsm_apply_at(&fb, 6, buf, n), 0);
    cr_assert_eq(fb.result.version, 2);
    cr_assert_eq(fb.result.created, 1);
    /* Reopening B counts the same state. */
    struct nd_fsm again;
    cr_assert_eq(nd_fsm_init(&again, &sb, 0, NULL), 0);
    cr_assert_eq(again.applied, 6);
    cr_assert_eq(again.repair_backlog, 1);
}

Test(snapshot, an_older_snapshot_than_the_store_is_ignored)
{
    t_stage(&sa, up1, "/s/a.ts", "aaaaa", 1);
    apply(&fa, 1, HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/s/a.ts");
    struct raft_buffer snap;
    take(&fa, &snap);
    apply(&fb, 1, HW__RAFT_ENTRY__KIND__KIND_PUT, up2, "/s/z.ts");
    apply(&fb, 2, HW__RAFT_ENTRY__KIND__KIND_PUT, up3, "/s/y.ts");
    unsigned long long before = nd_store_mem_digest(&sb);
    cr_assert_eq(fb.raft.restore(&fb.raft, &snap), 0);
    cr_assert_eq(nd_store_mem_digest(&sb), before);
    cr_assert_eq(fb.applied, 2);
}

Test(snapshot, a_failed_sync_refuses_the_snapshot)
{
    apply(&fa, 1, HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/s/a.ts");
    struct raft_buffer *bufs;
    unsigned n;
    nd_store_mem_fault(&sa, ND_MEM_FAIL_SYNC, 1);
    /* RAFT_BUSY: raft retries later (any other error would stop a follower for good) */
    cr_assert_eq(fa.raft.snapshot(&fa.raft, &bufs, &n), RAFT_BUSY);
    cr_assert_eq(fa.raft.snapshot(&fa.raft, &bufs, &n), 0, "the next one works");
    raft_free(bufs[0].base);
    raft_free(bufs);
}

Test(snapshot, garbage_is_refused)
{
    uint8_t junk[] = {0xff, 0xff, 0xff, 0x01};
    struct raft_buffer b = {junk, sizeof(junk)};
    unsigned long long before = nd_store_mem_digest(&sb);
    cr_assert_eq(fb.raft.restore(&fb.raft, &b), RAFT_MALFORMED);
    cr_assert_eq(nd_store_mem_digest(&sb), before);
}

/* A committed upload's record answers a retried COMMIT only within ND_FSM_RETRY_WINDOW entries
 * (a gateway retries for seconds): a snapshot carries only those, and drops the older ones from
 * the store, so snapshots no longer grow with every upload ever made (25-50 ms on the loop at
 * 35,000 records). Past the window the same upload id commits as new, on every replica alike. */
Test(snapshot, committed_records_older_than_the_retry_window_are_dropped)
{
    uint64_t late = 2 + ND_FSM_RETRY_WINDOW;
    apply(&fa, 1, HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/s/a.ts");
    apply(&fa, late, HW__RAFT_ENTRY__KIND__KIND_PUT, up2, "/s/b.ts");
    struct raft_buffer snap;
    take(&fa, &snap);
    Hw__Snapshot *s = hw__snapshot__unpack(NULL, snap.len, snap.base);
    cr_assert_not_null(s);
    cr_assert_eq(s->n_committed_uploads, 1, "only the young record is carried");
    cr_assert(memcmp(s->committed_uploads[0].data, up2, 16) == 0);
    cr_assert_eq(s->n_objects, 2, "both objects are");
    hw__snapshot__free_unpacked(s, NULL);
    raft_free(snap.base);
    struct nd_skey ck;
    uint64_t v;
    nd_skey_committed(&ck, 0, up1);
    cr_assert_eq(nd_store_get_u64(&sa, &ck, &v), CM_ENOTFOUND, "the old record was dropped");
    apply(&fa, late + 1, HW__RAFT_ENTRY__KIND__KIND_PUT, up2, "/s/b.ts");
    cr_assert_eq(fa.result.version, late, "a retry within the window is answered as the first");
    /* Replica B never dropped up1's record: past the window it answers the same as A. */
    apply(&fb, 1, HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/s/a.ts");
    apply(&fb, late + 2, HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/s/a.ts");
    apply(&fa, late + 2, HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/s/a.ts");
    cr_assert_eq(fb.result.version, late + 2);
    cr_assert_eq(fa.result.version, late + 2, "replicas decide alike, dropped or not");
}
