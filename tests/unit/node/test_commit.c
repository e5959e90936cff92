/* COMMIT / DELETE / READ_INDEX handlers (node/ops/write.c) behind the real RPC server, on a
 * shard whose raft is canonical raft's raft_fixture with our FSM on every server: answers after
 * apply, a retried commit answering the first version, NOT_LEADER from a follower, and
 * allocation failure at every point of a commit (an answer, an error or a clean close). */
#include <criterion/criterion.h>
#include <raft/fixture.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "host/host.h"
#include "nodetest.h"
#include "ops/write.h"
#include "rpc/call.h"
#include "rpc/server.h"
#include "store/mem.h"
#include "timeutil.h"

#define N 3

static long fail_in_handler = -1;

ND_TEST_WRAP(commit, fail_in_handler)
ND_TEST_WRAP(delete, fail_in_handler)
ND_TEST_WRAP(read_index, fail_in_handler)

static const struct nd_rpc_route routes[] = {
    {HW__MSG_TYPE__MSG_COMMIT, wrap_commit, 0},
    {HW__MSG_TYPE__MSG_DELETE, wrap_delete, 0},
    {HW__MSG_TYPE__MSG_READ_INDEX, wrap_read_index, 0},
};

static struct raft_fixture fx;
static struct nd_store stores[N];
static struct nd_shard shards[N];
static uv_loop_t loop;
static struct nd_workq work;
static struct nd_fake_clock clk;
static struct nd_host host;
static struct nd_rpc_server_cfg cfg;
static struct nd_rpc_server *server;
static char addr[64];

static struct {
    int done, status;
    Hw__MsgType type;
    Hw__Code code;
    uint64_t version, index;
    int created, found;
    uint32_t leader_id;
    char leader_address[64];
} ans;

static int hosts(void *ctx, uint32_t shard)
{
    return nd_host_shard(ctx, shard) != NULL;
}

static int stopping(void *ctx)
{
    return 0;
}

/* The cluster, and an RPC server whose host is server `self` of it. */
static void start(unsigned self)
{
    struct raft_configuration conf;
    struct nd_host_cfg hc = {.id = self + 1,
                             .listen = "",
                             .raft_listen = "",
                             .zone = "",
                             .shard_count = 1,
                             .replicas = 3,
                             .staged_ttl_s = 60};
    char err[128];
    memset(&fx, 0, sizeof(fx));
    cr_assert_eq(raft_fixture_initialize(&fx), 0);
    for (unsigned i = 0; i < N; i++) {
        cr_assert_eq(nd_store_mem_open(&stores[i]), 0);
        cr_assert_eq(nd_shard_attach(&shards[i], &stores[i], 0), 0);
        cr_assert_eq(raft_fixture_grow(&fx, &shards[i].fsm.raft), 0);
        nd_shard_attach_raft(&shards[i], raft_fixture_get(&fx, i));
    }
    cr_assert_eq(raft_fixture_configuration(&fx, N, &conf), 0);
    int brv = raft_fixture_bootstrap(&fx, &conf);
    cr_assert_eq(brv, 0, "bootstrap: %s", raft_strerror(brv));
    raft_configuration_close(&conf);
    cr_assert_eq(raft_fixture_start(&fx), 0);
    raft_fixture_elect(&fx, 0);

    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(nd_workq_manual_init(&work), 0);
    nd_fake_clock_init(&clk, 1700000000000ll, 5);
    nd_host_init(&host, &loop, &hc, &stores[self], &work, &clk.clock);
    cr_assert_eq(nd_host_add_shard(&host, &shards[self]), 0);
    cr_assert_eq(nd_host_add_peer(&host, 1, "leader.example:7001"), 0);
    cr_assert_eq(nd_host_add_peer(&host, 2, "two.example:7002"), 0); /* holders are members */
    cr_assert_eq(nd_host_add_peer(&host, 3, "three.example:7003"), 0);
    cfg = (struct nd_rpc_server_cfg){self + 1, addr,     "",   routes, 3, &host,
                                     hosts,    stopping, NULL, NULL,   0, 0};
    for (int port = 23000 + (getpid() % 20000); port < 65000; port += 17) {
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
        if (nd_rpc_server_start(&loop, &cfg, &server, err, sizeof(err)) == 0)
            return;
    }
    cr_assert_fail("no free port");
}

static void stop(void)
{
    nd_rpc_server_close(server);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left open");
    raft_fixture_close(&fx);
    nd_workq_close(&work);
    for (unsigned i = 0; i < N; i++)
        nd_store_close(&stores[i]);
}

static int on_answer(struct nd_call *c, int status, const Hw__Envelope *env,
                     const struct cm_slice *payload, void *arg)
{
    ans.done = 1;
    ans.status = status;
    if (status != 0)
        return 1;
    ans.type = env->type;
    ans.code = env->code;
    if (env->commit_ok != NULL) {
        ans.version = env->commit_ok->version;
        ans.created = env->commit_ok->created;
    }
    if (env->delete_ok != NULL)
        ans.found = env->delete_ok->found;
    if (env->read_index_ok != NULL)
        ans.index = env->read_index_ok->index;
    ans.leader_id = env->leader_id;
    snprintf(ans.leader_address, sizeof(ans.leader_address), "%s",
             env->leader_address ? env->leader_address : "");
    return 1;
}

/* Send req; drive the loop, the work queue and the raft cluster until the answer arrives. */
static void request(const Hw__Envelope *req)
{
    memset(&ans, 0, sizeof(ans));
    cr_assert_eq(nd_call_start(&loop, NULL, addr, 9, "", req, 60000, on_answer, NULL, NULL), 0);
    uint64_t deadline = cm_mono_ms() + 10000;
    while (!ans.done && cm_mono_ms() < deadline) {
        uv_run(&loop, UV_RUN_NOWAIT);
        nd_workq_manual_run(&work);
        raft_fixture_step(&fx);
    }
    cr_assert(ans.done, "no answer, error or close before the deadline: the request was dropped");
}

static void commit(const uint8_t *up, const char *key)
{
    Hw__Envelope req;
    Hw__Commit c = HW__COMMIT__INIT;
    uint32_t holders[] = {1, 2, 3};
    cm_env_init(&req, HW__MSG_TYPE__MSG_COMMIT, 1, 0);
    c.key = (char *)key;
    c.upload_id.data = (uint8_t *)up;
    c.upload_id.len = 16;
    c.size = 5;
    c.checksum = 42;
    c.n_holders = 3;
    c.holders = holders;
    req.commit = &c;
    request(&req);
}

static void del(const char *key)
{
    Hw__Envelope req;
    Hw__Delete d = HW__DELETE__INIT;
    cm_env_init(&req, HW__MSG_TYPE__MSG_DELETE, 2, 0);
    d.key = (char *)key;
    req.delete_ = &d;
    request(&req);
}

static const uint8_t up[16] = {0x42};

Test(commit, commit_retry_delete_and_read_index_through_the_leader)
{
    start(0);
    for (unsigned i = 0; i < N; i++)
        t_stage(&stores[i], up, "/c/seg.ts", "12345", 1);
    commit(up, "/c/seg.ts");
    cr_assert_eq(ans.type, HW__MSG_TYPE__MSG_COMMIT_OK);
    cr_assert(ans.created);
    uint64_t v = ans.version;
    cr_assert_eq(t_version_of(&stores[0], "/c/seg.ts"), v, "answered after apply on the leader");
    commit(up, "/c/seg.ts");
    cr_assert_eq(ans.type, HW__MSG_TYPE__MSG_COMMIT_OK);
    cr_assert_eq(ans.version, v, "a retried commit answers the first version");
    cr_assert(ans.created, "and created as the first did: 201, not 204");

    Hw__Envelope req;
    cm_env_init(&req, HW__MSG_TYPE__MSG_READ_INDEX, 3, 0);
    request(&req);
    cr_assert_eq(ans.type, HW__MSG_TYPE__MSG_READ_INDEX_OK);
    cr_assert_geq(ans.index, v + 1);

    del("/c/seg.ts");
    cr_assert_eq(ans.type, HW__MSG_TYPE__MSG_DELETE_OK);
    cr_assert(ans.found);
    cr_assert_eq(t_version_of(&stores[0], "/c/seg.ts"), 0);
    del("/c/seg.ts");
    cr_assert(!ans.found);
    stop();
}

static int (*real_append)(struct raft_io *, struct raft_io_append *, const struct raft_entry[],
                          unsigned, raft_io_append_cb);
static int appends_to_fail;

/* The next appends_to_fail raft log writes fail as a full disk does. */
static int full_append(struct raft_io *io, struct raft_io_append *req,
                       const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    if (appends_to_fail > 0) {
        appends_to_fail--;
        return RAFT_NOSPACE;
    }
    return real_append(io, req, entries, n, cb);
}

static bool leader_is_not_0(struct raft_fixture *f, void *arg)
{
    unsigned l = raft_fixture_leader_index(f);
    return l < N && l != 0;
}

/* The leader's raft log write fails (its disk is full): the commit is answered "outcome
 * unknown" (the gateway retries it), the node does not stop, and it hands leadership to another
 * voter, where the retried commit succeeds. */
Test(commit, a_failed_raft_log_write_steps_the_leader_down)
{
    start(0);
    for (unsigned i = 0; i < N; i++)
        t_stage(&stores[i], up, "/c/full.ts", "12345", 1);
    struct raft_io *io = raft_fixture_get(&fx, 0)->io;
    real_append = io->append;
    io->append = full_append;
    appends_to_fail = 1;
    commit(up, "/c/full.ts");
    cr_assert_eq(appends_to_fail, 0, "the leader's log write was refused");
    cr_assert_eq(ans.type, HW__MSG_TYPE__MSG_ERROR, "type %d code %d", ans.type, ans.code);
    cr_assert_eq(ans.code, HW__CODE__CODE_LEADERSHIP_LOST, "outcome unknown: retry (code %d)",
                 ans.code);
    cr_assert(shards[0].transferring || raft_state(raft_fixture_get(&fx, 0)) != RAFT_LEADER,
              "the leader hands over");
    cr_assert(raft_fixture_step_until(&fx, leader_is_not_0, NULL, 20000));
    stop();
}

Test(commit, a_follower_answers_not_leader_with_the_leader)
{
    start(1);
    commit(up, "/c/seg.ts");
    cr_assert_eq(ans.type, HW__MSG_TYPE__MSG_ERROR);
    cr_assert_eq(ans.code, HW__CODE__CODE_NOT_LEADER);
    cr_assert_eq(ans.leader_id, 1);
    cr_assert_str_eq(ans.leader_address, "leader.example:7001");
    del("/c/seg.ts");
    cr_assert_eq(ans.code, HW__CODE__CODE_NOT_LEADER);
    stop();
}

static void sweep(const char *what, long *knob)
{
    for (long fail = 0; fail < 1000; fail++) {
        start(0);
        for (unsigned i = 0; i < N; i++)
            t_stage(&stores[i], up, "/c/seg.ts", "12345", 1);
        *knob = fail;
        commit(up, "/c/seg.ts");
        *knob = -1;
        int ok = ans.status == 0 && ans.type == HW__MSG_TYPE__MSG_COMMIT_OK;
        stop();
        if (ok) {
            cr_assert_gt(fail, 0, "%s: the sweep never reached the server's allocations", what);
            cr_log_info("%s: went through once %ld allocations were allowed", what, fail);
            return;
        }
    }
    cr_assert_fail("%s never succeeded", what);
}

Test(commit, allocation_failures_never_crash_or_leak)
{
    /* Failures inside apply itself are not swept here: a replica whose apply cannot allocate
     * stops the node by design (raft 0.15 cannot skip the entry), see test_fsm.c's sweeps of
     * nd_fsm_apply_at for the error path. */
    sweep("COMMIT handler", &fail_in_handler);
}
