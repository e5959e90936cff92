/* RPC handlers (node/ops) behind the real RPC server on loopback, over the in-memory store and
 * the manual work queue: STAGE/FINISH/GET/LIST answers, a store fault answered as an error that
 * changed nothing, and allocation failure at every point of a request (never a crash or a
 * leak: an answer, an error answer or a clean close). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "crc32c.h"
#include "err.h"
#include "host/host.h"
#include "nodetest.h"
#include "ops/list.h"
#include "ops/read.h"
#include "ops/upload.h"
#include "rpc/call.h"
#include "rpc/server.h"
#include "store/mem.h"
#include "store/meta.h"
#include "timeutil.h"

#define T0 1700000000000ll

/* Allocation failure injected into the server side only (-1: none): while a handler runs, or
 * while queued work (store reads and writes and their completions) runs. The client's own
 * allocations never fail, so a request the server drops shows as silence. */
static long fail_in_handler = -1, fail_in_work = -1;

ND_TEST_WRAP(stage, fail_in_handler)
ND_TEST_WRAP(finish, fail_in_handler)
ND_TEST_WRAP(get, fail_in_handler)
ND_TEST_WRAP(list, fail_in_handler)

static const struct nd_rpc_route routes[] = {
    {HW__MSG_TYPE__MSG_STAGE, wrap_stage, 1},
    {HW__MSG_TYPE__MSG_FINISH, wrap_finish, 1},
    {HW__MSG_TYPE__MSG_GET, wrap_get, 0},
    {HW__MSG_TYPE__MSG_LIST, wrap_list, 0},
};

struct harness {
    uv_loop_t loop;
    struct nd_store store;
    struct nd_workq work;
    struct nd_fake_clock clk;
    struct nd_host host;
    struct nd_shard shard;
    struct nd_rpc_server_cfg cfg;
    struct nd_rpc_server *server;
    char addr[64];
    /* the answer to the request in flight */
    int done;
    int status;
    Hw__MsgType type;
    Hw__Code code;
    uint64_t value;
    size_t frames, bytes;
};

static int hosts(void *ctx, uint32_t shard)
{
    return nd_host_shard(ctx, shard) != NULL;
}

static int stopping(void *ctx)
{
    return 0;
}

static int harness_start(struct harness *x)
{
    struct nd_host_cfg hc = {.id = 1,
                             .listen = "",
                             .raft_listen = "",
                             .zone = "",
                             .shard_count = 1,
                             .replicas = 3,
                             .staged_ttl_s = 60};
    char err[128];
    memset(x, 0, sizeof(*x));
    cr_assert_eq(uv_loop_init(&x->loop), 0);
    cr_assert_eq(nd_store_mem_open(&x->store), 0);
    cr_assert_eq(nd_workq_manual_init(&x->work), 0);
    nd_fake_clock_init(&x->clk, T0, 3);
    nd_host_init(&x->host, &x->loop, &hc, &x->store, &x->work, &x->clk.clock);
    cr_assert_eq(nd_shard_attach(&x->shard, &x->store, 0), 0);
    x->shard.started = 1; /* no raft: never the leader */
    cr_assert_eq(nd_host_add_shard(&x->host, &x->shard), 0);
    x->cfg = (struct nd_rpc_server_cfg){1,     x->addr,  "127.0.0.1:1",     routes, 4, &x->host,
                                        hosts, stopping, nd_op_conn_closed, NULL,   0, 0};
    for (int port = 21000 + (getpid() % 20000); port < 65000; port += 13) {
        snprintf(x->addr, sizeof(x->addr), "127.0.0.1:%d", port);
        int rv = nd_rpc_server_start(&x->loop, &x->cfg, &x->server, err, sizeof(err));
        if (rv == 0)
            return 0;
        if (rv == CM_ENOMEM)
            return rv;
    }
    cr_assert_fail("no free port");
    return -1;
}

static void harness_stop(struct harness *x)
{
    if (x->server != NULL)
        nd_rpc_server_close(x->server);
    for (int i = 0; i < 1000 && uv_run(&x->loop, UV_RUN_NOWAIT) != 0; i++)
        nd_workq_manual_run(&x->work);
    nd_workq_manual_run(&x->work);
    cr_assert_eq(uv_run(&x->loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&x->loop), 0, "a handle was left open");
    nd_uploads_free(&x->host.uploads);
    nd_workq_close(&x->work);
    nd_store_close(&x->store);
}

static int on_answer(struct nd_call *c, int status, const Hw__Envelope *env,
                     const struct cm_slice *payload, void *arg)
{
    struct harness *x = arg;
    x->status = status;
    if (status != 0) {
        x->done = 1;
        return 1;
    }
    x->type = env->type;
    x->code = env->code;
    x->frames++;
    x->bytes += payload->len;
    if (env->type == HW__MSG_TYPE__MSG_STAGE_OK)
        x->value = env->stage_ok->received;
    else if (env->type == HW__MSG_TYPE__MSG_FINISH_OK)
        x->value = env->finish_ok->checksum;
    else if (env->type == HW__MSG_TYPE__MSG_LIST_OK)
        x->value = env->list_ok->n_objects;
    int last = env->type != HW__MSG_TYPE__MSG_DATA || env->data->eof;
    x->done = last;
    return last;
}

/* Send req and drive the loop and the work queue until the answer (or a 10 s deadline). */
static int request(struct harness *x, const Hw__Envelope *req)
{
    x->done = 0;
    x->frames = x->bytes = 0;
    x->type = 0;
    /* the call's own idle timeout is far past the deadline: a dropped request shows here */
    int rv = nd_call_start(&x->loop, NULL, x->addr, 9, "", req, 60000, on_answer, x, NULL);
    if (rv != 0)
        return rv;
    uint64_t deadline = cm_mono_ms() + 10000;
    while (!x->done && cm_mono_ms() < deadline) {
        uv_run(&x->loop, UV_RUN_ONCE);
        cm_alloc_fail_after(fail_in_work);
        nd_workq_manual_run(&x->work);
        cm_alloc_fail_after(-1);
    }
    cr_assert(x->done, "no answer, error or close before the deadline: the request was dropped");
    return 0;
}

static const uint8_t up[16] = {0x99};

/* A committed local object, as FINISH + apply leave it. */
static void put_object(struct harness *x, uint64_t index, const uint8_t *id, const char *key,
                       const char *bytes)
{
    Hw__ObjectMeta m = HW__OBJECT_META__INIT;
    Hw__RaftEntry e = HW__RAFT_ENTRY__INIT;
    struct nd_skey k;
    struct nd_batch b;
    struct raft_buffer rb;
    uint32_t holders[] = {1, 2};
    nd_batch_init(&b);
    nd_skey_chunk(&k, id, 0);
    nd_batch_put(&b, &k, bytes, strlen(bytes));
    m.key = (char *)key;
    m.upload_id.data = (uint8_t *)id;
    m.upload_id.len = ND_UPLOAD_ID_LEN;
    m.size = strlen(bytes);
    m.checksum = cm_crc32c(0, bytes, strlen(bytes));
    m.local = 1;
    nd_skey_staged(&k, id);
    cr_assert_eq(nd_meta_put(&b, &k, &m), 0);
    cr_assert_eq(nd_store_write(&x->store, &b, 1), 0);
    nd_batch_close(&b);
    m.local = 0;
    m.n_holders = 2;
    m.holders = holders;
    e.kind = HW__RAFT_ENTRY__KIND__KIND_PUT;
    e.meta = &m;
    cr_assert_eq(nd_fsm_encode(&e, &rb), 0);
    cr_assert_eq(nd_fsm_apply_at(&x->shard.fsm, index, rb.base, rb.len), 0);
    raft_free(rb.base);
}

static int stage(struct harness *x, const char *key, uint64_t off, const char *bytes)
{
    Hw__Envelope req;
    Hw__Stage st = HW__STAGE__INIT;
    cm_env_init(&req, HW__MSG_TYPE__MSG_STAGE, 1, 0);
    st.upload_id.data = (uint8_t *)up;
    st.upload_id.len = 16;
    st.key = (char *)key;
    st.offset = off;
    req.stage = &st;
    (void)bytes; /* nd_call sends no payload: an empty chunk */
    return request(x, &req);
}

static int finish(struct harness *x, const char *key, uint64_t size, uint32_t crc)
{
    Hw__Envelope req;
    Hw__Finish f = HW__FINISH__INIT;
    cm_env_init(&req, HW__MSG_TYPE__MSG_FINISH, 2, 0);
    f.upload_id.data = (uint8_t *)up;
    f.upload_id.len = 16;
    f.key = (char *)key;
    f.size = size;
    f.checksum = crc;
    req.finish = &f;
    return request(x, &req);
}

static int get(struct harness *x, const char *key)
{
    Hw__Envelope req;
    Hw__Get g = HW__GET__INIT;
    cm_env_init(&req, HW__MSG_TYPE__MSG_GET, 3, 0);
    g.key = (char *)key;
    req.get = &g;
    return request(x, &req);
}

static int list(struct harness *x, const char *prefix)
{
    Hw__Envelope req;
    Hw__List l = HW__LIST__INIT;
    cm_env_init(&req, HW__MSG_TYPE__MSG_LIST, 4, 0);
    l.prefix = (char *)prefix;
    req.list = &l;
    return request(x, &req);
}

Test(ops, empty_upload_get_and_list_through_the_rpc_server)
{
    struct harness x;
    cr_assert_eq(harness_start(&x), 0);
    cr_assert_eq(finish(&x, "/o/empty.ts", 0, 0), 0);
    cr_assert_eq(x.type, HW__MSG_TYPE__MSG_FINISH_OK);
    cr_assert(t_staged_exists(&x.store, up));
    struct nd_skey k;
    nd_skey_staged(&k, up);
    Hw__ObjectMeta *st = NULL;
    cr_assert_eq(nd_meta_get(&x.store, &k, &st), 0);
    cr_assert(st->local, "finished");
    cr_assert_eq(st->created_ms, T0, "stamped by the clock seam");
    hw__object_meta__free_unpacked(st, NULL);

    /* a committed object, as apply leaves it, is served and listed */
    put_object(&x, 1, (const uint8_t[16]){1}, "/o/a.ts", "hello");
    cr_assert_eq(get(&x, "/o/a.ts"), 0);
    cr_assert_eq(x.status, 0);
    cr_assert_eq(x.type, HW__MSG_TYPE__MSG_DATA);
    cr_assert_eq(x.bytes, 5);
    cr_assert_eq(list(&x, "/o/"), 0);
    cr_assert_eq(x.type, HW__MSG_TYPE__MSG_LIST_OK);
    cr_assert_eq(x.value, 1);
    harness_stop(&x);
}

Test(ops, a_store_fault_is_answered_and_changes_nothing)
{
    struct harness x;
    cr_assert_eq(harness_start(&x), 0);
    unsigned long long before = nd_store_mem_digest(&x.store);
    nd_store_mem_fault(&x.store, ND_MEM_NOSPC, 1);
    cr_assert_eq(stage(&x, "/o/b.ts", 0, ""), 0);
    cr_assert_neq(x.type, HW__MSG_TYPE__MSG_STAGE_OK, "a refused write is not acknowledged");
    cr_assert_eq(nd_store_mem_digest(&x.store), before);
    cr_assert_eq(x.host.uploads.n, 0, "the upload was dropped");
    nd_store_mem_fault(&x.store, ND_MEM_NOSPC, 0);
    cr_assert_eq(finish(&x, "/o/b.ts", 0, 0), 0);
    cr_assert_eq(x.type, HW__MSG_TYPE__MSG_FINISH_OK, "the disk has room again");
    harness_stop(&x);
}

/* Every allocation from the nth after the request reached its handler fails, for every n until
 * the request goes through: the caller promptly gets an answer, an error or a closed connection
 * (never a silence until its timeout), and ASan sees no leak. */
static void alloc_sweep(const char *what, int (*req)(struct harness *x), long *knob)
{
    for (long fail = 0; fail < 2000; fail++) {
        struct harness x;
        cr_assert_eq(harness_start(&x), 0);
        put_object(&x, 1, (const uint8_t[16]){1}, "/o/a.ts", "hello");
        *knob = fail;
        int rv = req(&x);
        *knob = -1;
        int ok = rv == 0 && x.status == 0 && x.type != HW__MSG_TYPE__MSG_ERROR;
        harness_stop(&x);
        if (ok) {
            cr_assert_gt(fail, 0, "%s: the sweep never reached the server's allocations", what);
            cr_log_info("%s: went through once %ld allocations were allowed", what, fail);
            return;
        }
    }
    cr_assert_fail("%s never succeeded", what);
}

static int req_finish(struct harness *x)
{
    return finish(x, "/o/e.ts", 0, 0);
}

static int req_get(struct harness *x)
{
    return get(x, "/o/a.ts");
}

static int req_list(struct harness *x)
{
    return list(x, "/o/");
}

Test(ops, allocation_failures_never_crash_or_leak)
{
    alloc_sweep("FINISH handler", req_finish, &fail_in_handler);
    alloc_sweep("GET handler", req_get, &fail_in_handler);
    alloc_sweep("LIST handler", req_list, &fail_in_handler);
    alloc_sweep("FINISH work", req_finish, &fail_in_work);
    alloc_sweep("GET work", req_get, &fail_in_work);
    alloc_sweep("LIST work", req_list, &fail_in_work);
}

/* ---- a raw client: STAGE frames carry payload bytes, which nd_call does not send ---- */

/* What raw_on_connect sends after HELLO (all pipelined). */
enum raw_mode {
    RAW_TWO_STAGES,   /* STAGE "hello ", STAGE "world", FINISH */
    RAW_WHOLE_FINISH, /* FINISH carrying "hello world" */
    RAW_STAGE_FINISH, /* STAGE "hello ", FINISH carrying "world" */
    RAW_BAD_CRC,      /* FINISH carrying "hello world", checksum of something else */
    RAW_BAD_OFFSET,   /* STAGE "hello ", FINISH carrying "world" but size 5 */
};

struct raw {
    struct harness *x;
    struct cm_rpc_conn *conn;
    enum raw_mode mode;
    Hw__Code code; /* of an ERROR answer */
    int answers, closed, done;
    Hw__MsgType last;
    uint64_t received;
    uint32_t checksum;
};

static void raw_on_frame(struct cm_rpc_conn *c, const Hw__Envelope *env,
                         const struct cm_slice *payload)
{
    struct raw *r = cm_rpc_data(c);
    if (env->type == HW__MSG_TYPE__MSG_HELLO_OK)
        return;
    r->answers++;
    r->last = env->type;
    if (env->stage_ok != NULL)
        r->received = env->stage_ok->received;
    if (env->finish_ok != NULL)
        r->checksum = env->finish_ok->checksum;
    if (env->type == HW__MSG_TYPE__MSG_ERROR)
        r->code = env->code;
    if (env->type != HW__MSG_TYPE__MSG_STAGE_OK) {
        r->done = 1;
        cm_rpc_close(c);
    }
}

static void raw_on_close(struct cm_rpc_conn *c, int status)
{
    struct raw *r = cm_rpc_data(c);
    r->closed = r->done = 1;
}

static const struct cm_rpc_handlers raw_handlers = {raw_on_frame, NULL, raw_on_close};

static void send_stage(struct cm_rpc_conn *c, uint64_t off, const char *bytes)
{
    Hw__Envelope env;
    Hw__Stage st = HW__STAGE__INIT;
    struct cm_buf *b = cm_buf_copy(bytes, strlen(bytes));
    cr_assert_not_null(b);
    struct cm_slice s = cm_slice_take(b, 0, strlen(bytes));
    cm_env_init(&env, HW__MSG_TYPE__MSG_STAGE, 10 + off, 0);
    st.upload_id.data = (uint8_t *)up;
    st.upload_id.len = 16;
    st.key = "/o/w.ts";
    st.offset = off;
    env.stage = &st;
    cm_rpc_send(c, &env, &s, 1);
    cm_slice_release(&s);
}

static void raw_on_connect(struct cm_rpc_conn *c, int status, void *arg)
{
    struct raw *r = arg;
    cr_assert_eq(status, 0);
    r->conn = c;
    cm_rpc_set_data(c, r);
    Hw__Envelope env;
    Hw__Hello h = HW__HELLO__INIT;
    cm_env_init(&env, HW__MSG_TYPE__MSG_HELLO, 1, 0);
    h.proto_version = CM_PROTO_VERSION;
    env.hello = &h;
    cm_rpc_send(c, &env, NULL, 0);
    /* pipelined: the server handles them one after another */
    const char *last = NULL; /* the bytes the FINISH carries */
    if (r->mode != RAW_WHOLE_FINISH && r->mode != RAW_BAD_CRC)
        send_stage(c, 0, "hello ");
    if (r->mode == RAW_TWO_STAGES)
        send_stage(c, 6, "world");
    else
        last = r->mode == RAW_STAGE_FINISH || r->mode == RAW_BAD_OFFSET ? "world" : "hello world";
    Hw__Finish f = HW__FINISH__INIT;
    cm_env_init(&env, HW__MSG_TYPE__MSG_FINISH, 99, 0);
    f.upload_id.data = (uint8_t *)up;
    f.upload_id.len = 16;
    f.key = "/o/w.ts";
    f.size = r->mode == RAW_BAD_OFFSET ? 5 : 11;
    f.checksum = cm_crc32c(0, r->mode == RAW_BAD_CRC ? "hello worle" : "hello world", 11);
    env.finish = &f;
    struct cm_slice s = {0};
    if (last != NULL)
        s = cm_slice_take(cm_buf_copy(last, strlen(last)), 0, strlen(last));
    cm_rpc_send(c, &env, last != NULL ? &s : NULL, last != NULL ? 1 : 0);
    cm_slice_release(&s);
}

static void upload_as(struct harness *x, struct raw *r, enum raw_mode mode)
{
    memset(r, 0, sizeof(*r));
    r->x = x;
    r->mode = mode;
    cr_assert_eq(cm_rpc_connect(&x->loop, x->addr, NULL, 2000, &raw_handlers, raw_on_connect, r),
                 0);
    uint64_t deadline = cm_mono_ms() + 10000;
    while (!r->done && cm_mono_ms() < deadline) {
        uv_run(&x->loop, UV_RUN_ONCE);
        cm_alloc_fail_after(fail_in_work);
        nd_workq_manual_run(&x->work);
        cm_alloc_fail_after(-1);
    }
    cr_assert(r->done, "no answer, error or close before the deadline: the upload was dropped");
}

static void upload(struct harness *x, struct raw *r)
{
    upload_as(x, r, RAW_TWO_STAGES);
}

/* "hello world" staged and finished, as the FINISH_OK said. */
static void assert_hello_world_staged(struct harness *x, const struct raw *r)
{
    cr_assert_eq(r->last, HW__MSG_TYPE__MSG_FINISH_OK);
    cr_assert_eq(r->checksum, cm_crc32c(0, "hello world", 11));
    struct nd_skey k;
    Hw__ObjectMeta *st;
    nd_skey_staged(&k, up);
    cr_assert_eq(nd_meta_get(&x->store, &k, &st), 0);
    cr_assert(st->local && st->size == 11 && st->checksum == cm_crc32c(0, "hello world", 11));
    hw__object_meta__free_unpacked(st, NULL);
    cr_assert_eq(x->host.uploads.n, 0, "finished: no longer in memory");
}

Test(ops, pipelined_stage_frames_then_finish)
{
    struct harness x;
    struct raw r;
    cr_assert_eq(harness_start(&x), 0);
    upload(&x, &r);
    cr_assert_eq(r.last, HW__MSG_TYPE__MSG_FINISH_OK);
    cr_assert_eq(r.answers, 3);
    cr_assert_eq(r.received, 11);
    cr_assert_eq(r.checksum, cm_crc32c(0, "hello world", 11));
    struct nd_skey k;
    char *v;
    size_t n;
    nd_skey_chunk(&k, up, 6);
    cr_assert_eq(nd_store_get(&x.store, &k, &v, &n), 0);
    cr_assert(n == 5 && memcmp(v, "world", 5) == 0, "the chunk at offset 6");
    cm_free(v);
    nd_skey_staged(&k, up);
    Hw__ObjectMeta *st;
    cr_assert_eq(nd_meta_get(&x.store, &k, &st), 0);
    cr_assert(st->local && st->size == 11);
    hw__object_meta__free_unpacked(st, NULL);
    cr_assert_eq(x.host.uploads.n, 0, "finished: no longer in memory");
    harness_stop(&x);
}

/* Allocation failures in the stage/finish work: never a FINISH_OK for bytes that did not all
 * reach the store. */
Test(ops, stage_work_allocation_failures_never_acknowledge_a_lost_chunk)
{
    for (long fail = 0; fail < 2000; fail++) {
        struct harness x;
        struct raw r;
        cr_assert_eq(harness_start(&x), 0);
        fail_in_work = fail;
        upload(&x, &r);
        fail_in_work = -1;
        int ok = r.last == HW__MSG_TYPE__MSG_FINISH_OK;
        if (ok) {
            struct nd_skey k;
            nd_skey_chunk(&k, up, 0);
            cr_assert(t_exists(&x.store, &k), "fail=%ld: acknowledged without chunk 0", fail);
            nd_skey_chunk(&k, up, 6);
            cr_assert(t_exists(&x.store, &k), "fail=%ld: acknowledged without chunk 6", fail);
        }
        harness_stop(&x);
        if (ok) {
            cr_assert_gt(fail, 0);
            return;
        }
    }
    cr_assert_fail("the upload never went through");
}

/* A FINISH may carry the last bytes (the gateway sends small bodies so: one store write, one
 * answer): the whole object, or the tail after STAGEs. */
Test(ops, finish_carrying_the_bytes)
{
    struct harness x;
    struct raw r;
    struct nd_skey k;
    char *v;
    size_t n;
    cr_assert_eq(harness_start(&x), 0);
    upload_as(&x, &r, RAW_WHOLE_FINISH);
    cr_assert_eq(r.answers, 1, "one answer: the FINISH_OK");
    assert_hello_world_staged(&x, &r);
    nd_skey_chunk(&k, up, 0);
    cr_assert_eq(nd_store_get(&x.store, &k, &v, &n), 0);
    cr_assert(n == 11 && memcmp(v, "hello world", 11) == 0, "one chunk at offset 0");
    cm_free(v);
    harness_stop(&x);

    cr_assert_eq(harness_start(&x), 0);
    upload_as(&x, &r, RAW_STAGE_FINISH);
    cr_assert_eq(r.answers, 2, "STAGE_OK, FINISH_OK");
    assert_hello_world_staged(&x, &r);
    nd_skey_chunk(&k, up, 6);
    cr_assert_eq(nd_store_get(&x.store, &k, &v, &n), 0);
    cr_assert(n == 5 && memcmp(v, "world", 5) == 0, "the FINISH's bytes at offset 6");
    cm_free(v);
    harness_stop(&x);
}

/* A FINISH whose bytes do not make the named checksum, or do not end at the named size,
 * is refused and writes nothing: no chunk, no finished record. */
Test(ops, finish_with_bad_bytes_writes_nothing)
{
    struct harness x;
    struct raw r;
    struct nd_skey k;
    cr_assert_eq(harness_start(&x), 0);
    unsigned long long before = nd_store_mem_digest(&x.store);
    upload_as(&x, &r, RAW_BAD_CRC);
    cr_assert_eq(r.last, HW__MSG_TYPE__MSG_ERROR);
    cr_assert_eq(r.code, HW__CODE__CODE_CHECKSUM);
    cr_assert_eq(nd_store_mem_digest(&x.store), before, "nothing written");
    cr_assert_eq(x.host.uploads.n, 0);
    harness_stop(&x);

    cr_assert_eq(harness_start(&x), 0);
    upload_as(&x, &r, RAW_BAD_OFFSET);
    cr_assert_eq(r.last, HW__MSG_TYPE__MSG_ERROR);
    cr_assert_eq(r.code, HW__CODE__CODE_BAD_REQUEST);
    nd_skey_staged(&k, up);
    Hw__ObjectMeta *st = NULL;
    if (nd_meta_get(&x.store, &k, &st) == 0) {
        cr_assert(!st->local, "the upload must not be finished");
        hw__object_meta__free_unpacked(st, NULL);
    }
    nd_skey_chunk(&k, up, 6);
    cr_assert(!t_exists(&x.store, &k), "no chunk past the staged bytes");
    cr_assert_eq(x.host.uploads.n, 0);
    harness_stop(&x);
}
