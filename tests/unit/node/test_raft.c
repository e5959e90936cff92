/* Consensus-level tests of a shard on canonical raft's own raft_fixture (in-memory raft_io,
 * simulated network and time), with our real FSM (struct nd_fsm over the in-memory store) as
 * every server's FSM: a leader change mid-commit, a follower restored from a snapshot, entries
 * applied twice, and the expiry sweep proposing through the shard leader on a fake clock. */
#include <criterion/criterion.h>
#include <raft/fixture.h>
#include <string.h>

#include "bg/expire.h"
#include "err.h"
#include "host/host.h"
#include "nodetest.h"
#include "shard/shard.h"
#include "store/mem.h"

#define N 3
#define T0 1700000000000ll

static struct raft_fixture fx;
static struct nd_store stores[N];
static struct nd_shard shards[N];

/* Every entry the FSMs were handed, per server, to replay them. */
struct rec {
    uint64_t index;
    uint8_t buf[512];
    size_t len;
};
static struct rec applied[N][64];
static size_t napplied[N];
static unsigned restores[N];
static int (*real_apply)(struct raft_fsm *, const struct raft_buffer *, void **);
static int (*real_restore)(struct raft_fsm *, struct raft_buffer *);

static unsigned server_of(struct raft_fsm *rf)
{
    for (unsigned i = 0; i < N; i++)
        if (&shards[i].fsm.raft == rf)
            return i;
    cr_assert_fail("unknown fsm");
    return 0;
}

static int recording_apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    unsigned i = server_of(rf);
    struct rec *r = &applied[i][napplied[i]++];
    cr_assert_leq(napplied[i], 64);
    cr_assert_leq(buf->len, sizeof(r->buf));
    r->index = raft_last_applied(shards[i].fsm.r) + 1;
    memcpy(r->buf, buf->base, buf->len);
    r->len = buf->len;
    return real_apply(rf, buf, result);
}

static int counting_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
    restores[server_of(rf)]++;
    return real_restore(rf, buf);
}

static void setup(void)
{
    struct raft_configuration conf;
    memset(applied, 0, sizeof(applied));
    memset(napplied, 0, sizeof(napplied));
    memset(restores, 0, sizeof(restores));
    cr_assert_eq(raft_fixture_initialize(&fx), 0);
    for (unsigned i = 0; i < N; i++) {
        cr_assert_eq(nd_store_mem_open(&stores[i]), 0);
        cr_assert_eq(nd_shard_attach(&shards[i], &stores[i], 0), 0);
        real_apply = shards[i].fsm.raft.apply;
        real_restore = shards[i].fsm.raft.restore;
        shards[i].fsm.raft.apply = recording_apply;
        shards[i].fsm.raft.restore = counting_restore;
        cr_assert_eq(raft_fixture_grow(&fx, &shards[i].fsm.raft), 0);
        nd_shard_attach_raft(&shards[i], raft_fixture_get(&fx, i));
    }
    cr_assert_eq(raft_fixture_configuration(&fx, N, &conf), 0);
    cr_assert_eq(raft_fixture_bootstrap(&fx, &conf), 0);
    raft_configuration_close(&conf);
    cr_assert_eq(raft_fixture_start(&fx), 0);
    raft_fixture_elect(&fx, 0);
}

static void teardown(void)
{
    raft_fixture_close(&fx);
    for (unsigned i = 0; i < N; i++) {
        nd_fsm_close(&shards[i].fsm);
        nd_store_close(&stores[i]);
    }
}

TestSuite(raft, .init = setup, .fini = teardown);

struct commit {
    struct raft_apply req;
    int done, status;
    struct nd_apply_result res;
};

static void on_commit(struct raft_apply *req, int status, void *result)
{
    struct commit *c = req->data;
    c->done++;
    c->status = status;
    if (status == 0)
        c->res = *(struct nd_apply_result *)result;
}

static void propose(unsigned leader, struct commit *c, int kind, const uint8_t *up, const char *key)
{
    Hw__RaftEntry e = HW__RAFT_ENTRY__INIT;
    Hw__ObjectMeta m = HW__OBJECT_META__INIT;
    uint32_t holders[] = {1, 2, 3};
    memset(c, 0, sizeof(*c));
    c->req.data = c;
    e.kind = kind;
    e.meta = &m;
    m.key = (char *)key;
    if (up != NULL) {
        m.upload_id.data = (uint8_t *)up;
        m.upload_id.len = ND_UPLOAD_ID_LEN;
    }
    m.size = 5;
    m.checksum = 42;
    m.n_holders = 3;
    m.holders = holders;
    cr_assert_eq(nd_shard_apply(&shards[leader], &e, &c->req, on_commit), 0);
}

static void stage_all(const uint8_t *up, const char *key)
{
    for (unsigned i = 0; i < N; i++)
        t_stage(&stores[i], up, key, "12345", 1);
}

static bool is_leader_other_than_0(struct raft_fixture *f, void *arg)
{
    unsigned l = raft_fixture_leader_index(f);
    return l < N && l != 0;
}

static void all_equal(void)
{
    unsigned long long d = nd_store_mem_digest(&stores[0]);
    for (unsigned i = 1; i < N; i++)
        cr_assert_eq(nd_store_mem_digest(&stores[i]), d, "replica %u differs", i);
}

/* The leader appends a commit, replicates it to a follower, and dies before answering; the
 * gateway retries the same upload on the new leader. The retry answers the version the first
 * attempt got (not a second version), and every replica ends with identical state. */
Test(raft, leader_change_mid_commit_then_retry_keeps_one_version)
{
    static const uint8_t up[16] = {0x51};
    static struct commit first, retry;
    stage_all(up, "/l/seg.ts");
    propose(0, &first, HW__RAFT_ENTRY__KIND__KIND_PUT, up, "/l/seg.ts");
    raft_index idx = raft_last_index(raft_fixture_get(&fx, 0));
    /* deliver the entry to follower 1 only, then lose the leader */
    raft_fixture_saturate(&fx, 0, 2);
    for (int i = 0; i < 1000 && raft_last_index(raft_fixture_get(&fx, 1)) < idx; i++)
        raft_fixture_step(&fx);
    cr_assert_geq(raft_last_index(raft_fixture_get(&fx, 1)), idx);
    cr_assert_eq(first.done, 0, "not answered yet");
    raft_fixture_kill(&fx, 0);
    cr_assert(raft_fixture_step_until(&fx, is_leader_other_than_0, NULL, 20000));
    unsigned leader = raft_fixture_leader_index(&fx);

    propose(leader, &retry, HW__RAFT_ENTRY__KIND__KIND_PUT, up, "/l/seg.ts");
    cr_assert(raft_fixture_step_until_applied(
        &fx, leader, raft_last_index(raft_fixture_get(&fx, leader)), 5000));
    cr_assert_eq(retry.done, 1);
    cr_assert_eq(retry.status, 0);
    cr_assert_eq(retry.res.version, idx, "the first attempt's version");
    cr_assert_eq(retry.res.created, 1, "the first attempt created the key: 201, not 204");

    raft_fixture_desaturate(&fx, 0, 2);
    raft_fixture_revive(&fx, 0);
    raft_index last = raft_last_index(raft_fixture_get(&fx, leader));
    cr_assert(raft_fixture_step_until_applied(&fx, N, last, 10000));
    cr_assert_eq(first.done, 1, "the old leader's request was answered once");
    for (unsigned i = 0; i < N; i++)
        cr_assert_eq(t_version_of(&stores[i], "/l/seg.ts"), idx, "replica %u", i);
    all_equal();
}

/* A follower misses entries the leader has already snapshotted away: it is brought up to date
 * by InstallSnapshot into our FSM's restore, bytes it holds stay local, the rest are marked for
 * repair. */
Test(raft, a_follower_restored_from_a_snapshot)
{
    static struct commit c[12];
    char key[32];
    for (unsigned i = 0; i < N; i++) {
        raft_set_snapshot_threshold(raft_fixture_get(&fx, i), 4);
        raft_set_snapshot_trailing(raft_fixture_get(&fx, i), 1);
    }
    raft_fixture_kill(&fx, 2);
    for (unsigned k = 0; k < 12; k++) {
        uint8_t up[16] = {0x60, (uint8_t)k};
        snprintf(key, sizeof(key), "/s/seg%u.ts", k);
        t_stage(&stores[0], up, key, "12345", 1);
        t_stage(&stores[1], up, key, "12345", 1);
        if (k % 2 == 0)
            t_stage(&stores[2], up, key, "12345", 1); /* the follower got half the fan-out */
        propose(0, &c[k], HW__RAFT_ENTRY__KIND__KIND_PUT, up, key);
        cr_assert(raft_fixture_step_until_applied(&fx, 0, raft_last_index(raft_fixture_get(&fx, 0)),
                                                  5000));
        cr_assert_eq(c[k].status, 0);
    }
    raft_fixture_revive(&fx, 2);
    raft_index last = raft_last_index(raft_fixture_get(&fx, 0));
    cr_assert(raft_fixture_step_until_applied(&fx, 2, last, 20000));
    cr_assert_geq(restores[2], 1, "installed a snapshot");
    cr_assert_eq(shards[2].fsm.applied, shards[0].fsm.applied);
    for (unsigned k = 0; k < 12; k++) {
        snprintf(key, sizeof(key), "/s/seg%u.ts", k);
        Hw__ObjectMeta *m = t_meta_of(&stores[2], 0, key);
        cr_assert_not_null(m, "%s", key);
        cr_assert_eq(m->version, t_version_of(&stores[0], key));
        cr_assert_eq(m->local, k % 2 == 0, "%s", key);
        cr_assert_eq(t_marker_exists(&stores[2], key), k % 2 != 0, "%s", key);
        hw__object_meta__free_unpacked(m, NULL);
    }
    cr_assert_eq(shards[2].fsm.repair_backlog, 6);
}

/* The same upload committed twice (a gateway retry after a timeout) gives one version on every
 * replica, and handing a replica every entry it applied once more (a restart replaying the log
 * over the persistent FSM) changes nothing. */
Test(raft, entries_applied_twice_change_nothing)
{
    static const uint8_t up[16] = {0x71}, up2[16] = {0x72};
    static struct commit a, b, c;
    stage_all(up, "/t/a.ts");
    stage_all(up2, "/t/b.ts");
    propose(0, &a, HW__RAFT_ENTRY__KIND__KIND_PUT, up, "/t/a.ts");
    propose(0, &b, HW__RAFT_ENTRY__KIND__KIND_PUT, up, "/t/a.ts");
    propose(0, &c, HW__RAFT_ENTRY__KIND__KIND_PUT, up2, "/t/b.ts");
    raft_index last = raft_last_index(raft_fixture_get(&fx, 0));
    cr_assert(raft_fixture_step_until_applied(&fx, N, last, 5000));
    cr_assert_eq(a.status, 0);
    cr_assert_eq(b.status, 0);
    cr_assert_eq(b.res.version, a.res.version);
    cr_assert(a.res.created && b.res.created, "a retry answers what the first commit did");
    all_equal();
    for (unsigned i = 0; i < N; i++) {
        unsigned long long before = nd_store_mem_digest(&stores[i]);
        cr_assert_geq(napplied[i], 3);
        for (size_t k = 0; k < napplied[i]; k++)
            cr_assert_eq(nd_fsm_apply_at(&shards[i].fsm, applied[i][k].index, applied[i][k].buf,
                                         applied[i][k].len),
                         0);
        cr_assert_eq(nd_store_mem_digest(&stores[i]), before, "replica %u", i);
    }
}

/* The expiry sweep runs on the shard leader on a fake clock: due objects are deleted through
 * EXPIRE entries on every replica; one not yet due stays until the clock passes it. */
Test(raft, expiry_sweep_deletes_through_the_log)
{
    static const uint8_t u1[16] = {0x81}, u2[16] = {0x82};
    struct nd_fake_clock clk;
    struct nd_workq work;
    struct nd_host host;
    struct nd_expire ex;
    struct nd_host_cfg hc = {.id = 1,
                             .listen = "",
                             .raft_listen = "",
                             .zone = "",
                             .shard_count = 1,
                             .replicas = 3,
                             .staged_ttl_s = 60};
    uint8_t buf[512];
    nd_fake_clock_init(&clk, T0, 1);
    cr_assert_eq(nd_workq_manual_init(&work), 0);
    nd_host_init(&host, NULL, &hc, &stores[0], &work, &clk.clock);
    cr_assert_eq(nd_host_add_shard(&host, &shards[0]), 0);
    nd_expire_init(&ex, &host, &shards[0]);

    /* Two objects with TTLs, committed through raft like COMMIT does. */
    stage_all(u1, "/x/a.ts");
    stage_all(u2, "/x/b.ts");
    for (int k = 0; k < 2; k++) {
        size_t n =
            t_entry_full(HW__RAFT_ENTRY__KIND__KIND_PUT, k ? u2 : u1, k ? "/x/b.ts" : "/x/a.ts", 5,
                         NULL, T0, T0 + (k ? 60000 : 5000), buf);
        struct raft_buffer rb = {raft_malloc(n), n};
        static struct raft_apply req[2];
        memcpy(rb.base, buf, n);
        cr_assert_eq(raft_apply(raft_fixture_get(&fx, 0), &req[k], &rb, 1, NULL), 0);
    }
    cr_assert(
        raft_fixture_step_until_applied(&fx, N, raft_last_index(raft_fixture_get(&fx, 0)), 5000));
    nd_expire_tick(&ex);
    cr_assert_eq(nd_workq_manual_run(&work), 1);
    cr_assert(!ex.running, "nothing due: the sweep ended");
    cr_assert_neq(t_version_of(&stores[1], "/x/a.ts"), 0);

    nd_fake_clock_advance(&clk, 10000);
    nd_expire_tick(&ex);
    cr_assert_eq(nd_workq_manual_run(&work), 1);
    cr_assert(ex.running, "a proposal in flight");
    cr_assert(
        raft_fixture_step_until_applied(&fx, N, raft_last_index(raft_fixture_get(&fx, 0)), 5000));
    cr_assert(!ex.running);
    for (unsigned i = 0; i < N; i++) {
        cr_assert_eq(t_version_of(&stores[i], "/x/a.ts"), 0, "expired on replica %u", i);
        cr_assert_neq(t_version_of(&stores[i], "/x/b.ts"), 0, "not due on replica %u", i);
    }
    nd_fake_clock_advance(&clk, 60000);
    nd_expire_tick(&ex);
    nd_workq_manual_run(&work);
    cr_assert(
        raft_fixture_step_until_applied(&fx, N, raft_last_index(raft_fixture_get(&fx, 0)), 5000));
    for (unsigned i = 0; i < N; i++)
        cr_assert_eq(t_version_of(&stores[i], "/x/b.ts"), 0);
    all_equal();
    nd_workq_close(&work);
}

static bool leader_moved_off_0(struct raft_fixture *f, void *arg)
{
    unsigned l = raft_fixture_leader_index(f);
    return l < N && l != 0 && raft_state(raft_fixture_get(f, 0)) == RAFT_FOLLOWER;
}

/* A follower whose disk is full (every store write refused) keeps its place: the writes commit
 * and apply on the others, its committed entries wait in order (it answers what it holds, not
 * raft's index), nothing aborts; once space returns the node's tick applies them and it ends
 * identical to the others, with no restart. */
Test(raft, a_full_follower_waits_then_catches_up_by_itself)
{
    static struct commit c[3];
    char key[32];
    for (unsigned k = 0; k < 3; k++) {
        uint8_t up[16] = {0x80, (uint8_t)k};
        snprintf(key, sizeof(key), "/full/seg%u.ts", k);
        stage_all(up, key);
    }
    nd_store_mem_fault(&stores[2], ND_MEM_NOSPC, 1);
    for (unsigned k = 0; k < 3; k++) {
        uint8_t up[16] = {0x80, (uint8_t)k};
        snprintf(key, sizeof(key), "/full/seg%u.ts", k);
        propose(0, &c[k], HW__RAFT_ENTRY__KIND__KIND_PUT, up, key);
    }
    raft_index last = raft_last_index(raft_fixture_get(&fx, 0));
    cr_assert(raft_fixture_step_until_applied(&fx, N, last, 5000));
    for (unsigned k = 0; k < 3; k++) {
        cr_assert_eq(c[k].status, 0);
        cr_assert(!c[k].res.deferred && c[k].res.created, "seg%u committed on the others", k);
    }
    cr_assert_eq(shards[2].fsm.pending_n, 3, "the full follower's entries wait");
    cr_assert_lt(nd_shard_applied(&shards[2]), last, "it answers what its store holds");
    cr_assert_eq(t_version_of(&stores[2], "/full/seg0.ts"), 0);
    cr_assert_eq(nd_fsm_retry(&shards[2].fsm), CM_ENOSPC, "still full: still waiting");
    cr_assert_eq(shards[2].fsm.pending_n, 3);
    struct raft_buffer *bufs;
    unsigned nbufs;
    cr_assert_eq(shards[2].fsm.raft.snapshot(&shards[2].fsm.raft, &bufs, &nbufs), RAFT_BUSY,
                 "no snapshot while the store lags raft");

    nd_store_mem_fault(&stores[2], ND_MEM_NOSPC, 0); /* space returns */
    cr_assert_eq(nd_fsm_retry(&shards[2].fsm), 0);
    cr_assert_eq(shards[2].fsm.pending_n, 0);
    cr_assert_eq(nd_shard_applied(&shards[2]), last);
    all_equal();
}

/* The leader's disk is full: its commit is committed by the followers but cannot be applied on
 * the leader; the answer says so (deferred), the leader steps down, the gateway's retry on the
 * new leader answers the first application's version and created (201), and the old leader
 * catches up once space returns. */
Test(raft, a_full_leader_steps_down_and_the_retry_answers_created)
{
    static const uint8_t up[16] = {0x90};
    static struct commit first, retry;
    stage_all(up, "/full/lead.ts");
    nd_store_mem_fault(&stores[0], ND_MEM_NOSPC, 1);
    propose(0, &first, HW__RAFT_ENTRY__KIND__KIND_PUT, up, "/full/lead.ts");
    raft_index idx = raft_last_index(raft_fixture_get(&fx, 0));
    cr_assert(raft_fixture_step_until_applied(&fx, N, idx, 5000));
    cr_assert_eq(first.done, 1);
    cr_assert_eq(first.status, 0);
    cr_assert(first.res.deferred, "the full leader could not apply it");
    nd_shard_step_down(&shards[0], "test");
    cr_assert(raft_fixture_step_until(&fx, leader_moved_off_0, NULL, 20000));
    unsigned leader = raft_fixture_leader_index(&fx);

    propose(leader, &retry, HW__RAFT_ENTRY__KIND__KIND_PUT, up, "/full/lead.ts");
    cr_assert(raft_fixture_step_until_applied(
        &fx, leader, raft_last_index(raft_fixture_get(&fx, leader)), 5000));
    cr_assert_eq(retry.status, 0);
    cr_assert_eq(retry.res.version, idx);
    cr_assert_eq(retry.res.created, 1);

    nd_store_mem_fault(&stores[0], ND_MEM_NOSPC, 0);
    raft_index last = raft_last_index(raft_fixture_get(&fx, leader));
    cr_assert(raft_fixture_step_until_applied(&fx, N, last, 10000));
    cr_assert_eq(nd_fsm_retry(&shards[0].fsm), 0);
    cr_assert_eq(t_version_of(&stores[0], "/full/lead.ts"), idx);
    all_equal();
}
