/* Background jobs on the seams: GC of staged uploads and repair pacing, with a fake clock and
 * the manual work queue (no threads, no sleeps). */
#include <criterion/criterion.h>
#include <string.h>

#include "bg/gc.h"
#include "bg/repair.h"
#include "host/host.h"
#include "nodetest.h"
#include "store/mem.h"
#include "store/meta.h"

#define T0 1700000000000ll

static struct nd_store store;
static struct nd_workq work;
static struct nd_fake_clock clk;
static struct nd_host host;

static void setup(void)
{
    struct nd_host_cfg hc = {.id = 3,
                             .listen = "127.0.0.1:1",
                             .raft_listen = "127.0.0.1:2",
                             .zone = "",
                             .shard_count = 1,
                             .replicas = 3,
                             .staged_ttl_s = 60};
    cr_assert_eq(nd_store_mem_open(&store), 0);
    cr_assert_eq(nd_workq_manual_init(&work), 0);
    nd_fake_clock_init(&clk, T0, 7);
    nd_host_init(&host, NULL, &hc, &store, &work, &clk.clock);
}

static void teardown(void)
{
    nd_uploads_free(&host.uploads);
    nd_workq_close(&work);
    nd_store_close(&store);
}

TestSuite(bg, .init = setup, .fini = teardown);

static const uint8_t ua[16] = {0xa}, ub[16] = {0xb}, uc[16] = {0xc}, ud[16] = {0xd};

Test(bg, gc_drops_old_uncommitted_staged_uploads_on_the_fake_clock)
{
    struct nd_gc gc;
    nd_gc_init(&gc, &host);
    t_stage_at(&store, ua, "/g/a.ts", "aaaa", 0, T0 - 120000); /* old, never committed */
    t_stage_at(&store, ub, "/g/b.ts", "bbbb", 1, T0 - 120000); /* old, committed */
    t_stage_at(&store, uc, "/g/c.ts", "cccc", 1, T0 - 10000);  /* young */
    t_stage_at(&store, ud, "/g/d.ts", "dddd", 0, T0 - 120000); /* old, still receiving */
    struct nd_skey ck;
    struct nd_batch b;
    char v[8] = {0, 0, 0, 0, 0, 0, 0, 9};
    nd_batch_init(&b);
    nd_skey_committed(&ck, 0, ub);
    nd_batch_put(&b, &ck, v, 8);
    cr_assert_eq(nd_store_write(&store, &b, 0), 0);
    nd_batch_close(&b);
    cr_assert_not_null(nd_uploads_add(&host.uploads, &host, ud, "/g/d.ts", T0 - 120000));

    nd_gc_tick(&gc);
    cr_assert(gc.running);
    nd_gc_tick(&gc); /* one sweep at a time */
    cr_assert_eq(nd_workq_manual_run(&work), 1);
    cr_assert(!gc.running);
    cr_assert(!t_staged_exists(&store, ua));
    cr_assert(!t_chunk_exists(&store, ua), "never committed: the bytes go too");
    cr_assert(!t_staged_exists(&store, ub));
    cr_assert(t_chunk_exists(&store, ub), "committed: the bytes stay");
    cr_assert(t_staged_exists(&store, uc), "younger than --staged-ttl");
    cr_assert(t_staged_exists(&store, ud), "a connection is still filling it");

    nd_fake_clock_advance(&clk, 20000);
    nd_gc_tick(&gc);
    cr_assert_eq(nd_workq_manual_run(&work), 0, "not due yet");
    nd_fake_clock_advance(&clk, 60000);
    nd_gc_tick(&gc);
    cr_assert_eq(nd_workq_manual_run(&work), 1);
    cr_assert(!t_staged_exists(&store, uc), "old now");
    cr_assert(t_staged_exists(&store, ud));
}

/* The committed-upload record is dropped once its entry is past the retry window
 * (ND_FSM_RETRY_WINDOW): a replica's leftover staged record of the key's current version (it
 * missed the commit; repair writes the bytes under the same id) must keep its bytes without it. */
Test(bg, gc_keeps_the_bytes_of_the_current_version_without_its_committed_record)
{
    static const uint8_t ue[16] = {0xe};
    struct nd_gc gc;
    nd_gc_init(&gc, &host);
    t_stage_at(&store, ue, "/g/e.ts", "eeee", 1, T0 - 120000);
    Hw__ObjectMeta m = HW__OBJECT_META__INIT;
    m.key = "/g/e.ts";
    m.upload_id.data = (uint8_t *)ue;
    m.upload_id.len = sizeof(ue);
    m.version = 7;
    struct nd_skey mk;
    struct nd_batch b;
    nd_skey_meta(&mk, 0, m.key, strlen(m.key));
    nd_batch_init(&b);
    cr_assert_eq(nd_meta_put(&b, &mk, &m), 0);
    cr_assert_eq(nd_store_write(&store, &b, 0), 0);
    nd_batch_close(&b);
    nd_gc_tick(&gc);
    cr_assert_eq(nd_workq_manual_run(&work), 1);
    cr_assert(!t_staged_exists(&store, ue));
    cr_assert(t_chunk_exists(&store, ue), "the key's current version lost its bytes");
}

Test(bg, a_gc_write_that_fails_changes_nothing)
{
    struct nd_gc gc;
    nd_gc_init(&gc, &host);
    t_stage_at(&store, ua, "/g/a.ts", "aaaa", 0, T0 - 120000);
    unsigned long long before = nd_store_mem_digest(&store);
    nd_store_mem_fault(&store, ND_MEM_NOSPC, 1);
    nd_gc_tick(&gc);
    cr_assert_eq(nd_workq_manual_run(&work), 1);
    cr_assert_eq(nd_store_mem_digest(&store), before);
    nd_store_mem_fault(&store, ND_MEM_NOSPC, 0);
    nd_fake_clock_advance(&clk, 30000);
    nd_gc_tick(&gc);
    cr_assert_eq(nd_workq_manual_run(&work), 1);
    cr_assert(!t_staged_exists(&store, ua), "the next sweep collects it");
}

/* A pass that could not repair (no holder reachable) paces the next periodic pass on the
 * clock seam; a kick (a new marker, a read waiting on a holder) does not wait. */
Test(bg, repair_passes_are_paced_after_a_failure)
{
    struct nd_shard sh;
    struct nd_repair rp;
    uint8_t buf[512];
    cr_assert_eq(nd_shard_attach(&sh, &store, 0), 0);
    sh.started = 1;
    cr_assert_eq(nd_host_add_shard(&host, &sh), 0);
    size_t n = t_entry(HW__RAFT_ENTRY__KIND__KIND_PUT, ua, "/r/a.ts", 4, buf);
    cr_assert_eq(nd_fsm_apply_at(&sh.fsm, 1, buf, n), 0);
    cr_assert_eq(sh.fsm.repair_backlog, 1);
    nd_repair_init(&rp, &host, &sh);

    nd_repair_tick(&rp);
    cr_assert(rp.running);
    cr_assert_eq(nd_workq_manual_run(&work), 1); /* scan; no holder known: retried later */
    cr_assert(!rp.running);
    cr_assert_gt(rp.not_before, nd_mono_ms(&clk.clock));
    cr_assert(t_marker_exists(&store, "/r/a.ts"));

    nd_repair_tick(&rp);
    cr_assert_eq(nd_workq_manual_run(&work), 0, "paced");
    nd_fake_clock_advance(&clk, REPAIR_RETRY_MS * 2);
    nd_repair_tick(&rp);
    cr_assert_eq(nd_workq_manual_run(&work), 1, "due again");
    nd_repair_kick(&rp);
    cr_assert_eq(nd_workq_manual_run(&work), 1, "a kick is not paced");
    nd_repair_close(&rp);
}

/* A work queue that refuses a job: the job's state is released at once (no sweep left
 * "running" forever), nothing ran, and the next due tick starts one. */
Test(bg, a_refused_job_leaves_nothing_running)
{
    struct nd_gc gc;
    nd_gc_init(&gc, &host);
    t_stage_at(&store, ua, "/g/a.ts", "aaaa", 0, T0 - 120000);
    nd_workq_manual_fail(&work, 1);
    nd_gc_tick(&gc);
    cr_assert(!gc.running);
    cr_assert_eq(work.pending, 0);
    cr_assert_eq(nd_workq_manual_run(&work), 0);
    cr_assert(t_staged_exists(&store, ua));
    nd_fake_clock_advance(&clk, 30000);
    nd_gc_tick(&gc);
    cr_assert(gc.running);
    cr_assert_eq(work.pending, 1, "queued, not run inside the tick");
    cr_assert(t_staged_exists(&store, ua));
    cr_assert_eq(nd_workq_manual_run(&work), 1);
    cr_assert_eq(work.pending, 0);
    cr_assert(!t_staged_exists(&store, ua));
}
