/* The uploads' store write queue (host/commitq.h) on its real threads: every write runs once,
 * in submission order; a durable one is answered only after a store sync that began after it
 * ran, with that sync's error; the others are not held up by syncs; closing leaves nothing. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>

#include "timeutil.h"
#include "host/commitq.h"
#include "store/mem.h"

#define N 200

struct item {
    int idx;
    int durable;
    atomic_uint ran_after_syncs; /* successful syncs when fn ran */
    int done, status;
    unsigned syncs_at_done;
};

static struct nd_store store;
static struct item items[N];
static int order[N], ndone, idle_calls;
static atomic_int ran_count;

static void fn(void *arg)
{
    struct item *it = arg;
    it->ran_after_syncs = nd_store_mem_syncs(&store);
    order[atomic_fetch_add(&ran_count, 1)] = it->idx;
}

static void done(void *arg, int status)
{
    struct item *it = arg;
    it->done++;
    it->status = status;
    it->syncs_at_done = nd_store_mem_syncs(&store);
    ndone++;
}

static void on_idle(void *data)
{
    idle_calls++;
}

static void run_until(uv_loop_t *loop, int want)
{
    uint64_t deadline = cm_mono_ms() + 10000;
    while (ndone < want && cm_mono_ms() < deadline)
        uv_run(loop, UV_RUN_NOWAIT);
    cr_assert_eq(ndone, want, "every write answered before the deadline");
}

static void reset(void)
{
    memset(items, 0, sizeof(items));
    memset(order, 0, sizeof(order));
    ndone = idle_calls = 0;
    atomic_store(&ran_count, 0);
}

Test(commitq, writes_in_order_durable_ones_after_a_later_sync)
{
    uv_loop_t loop;
    struct nd_commitq *q;
    reset();
    uv_loop_init(&loop);
    cr_assert_eq(nd_store_mem_open(&store), 0);
    cr_assert_eq(nd_commitq_open(&q, &loop, &store, on_idle, NULL), 0);
    for (int i = 0; i < N; i++) {
        items[i].idx = i;
        items[i].durable = i % 3 == 0;
        cr_assert_eq(nd_commitq_submit(q, fn, done, &items[i], items[i].durable), 0);
    }
    cr_assert_eq(nd_commitq_pending(q), N);
    run_until(&loop, N);
    cr_assert_eq(nd_commitq_pending(q), 0);
    cr_assert_geq(idle_calls, 1, "idle once the last write was answered");
    for (int i = 0; i < N; i++) {
        cr_assert_eq(order[i], i, "writes run in submission order");
        cr_assert_eq(items[i].done, 1, "answered exactly once");
        cr_assert_eq(items[i].status, 0);
        if (items[i].durable)
            cr_assert_gt(items[i].syncs_at_done, items[i].ran_after_syncs,
                         "write %d answered without a sync after it", i);
    }
    cr_assert_lt(nd_store_mem_syncs(&store), (unsigned)N / 3 + 1, "one sync per write at most");
    nd_commitq_close(q, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "no handle left behind");
    nd_store_close(&store);
}

Test(commitq, a_failed_sync_fails_the_durable_writes_it_covered_only)
{
    uv_loop_t loop;
    struct nd_commitq *q;
    reset();
    uv_loop_init(&loop);
    cr_assert_eq(nd_store_mem_open(&store), 0);
    nd_store_mem_fault(&store, ND_MEM_FAIL_SYNC, 1);
    cr_assert_eq(nd_commitq_open(&q, &loop, &store, NULL, NULL), 0);
    items[0].idx = 0;
    items[0].durable = 1;
    cr_assert_eq(nd_commitq_submit(q, fn, done, &items[0], 1), 0);
    run_until(&loop, 1);
    cr_assert_neq(items[0].status, 0, "the sync failed: the write is not durable");
    items[1].idx = 1;
    items[2].idx = 2;
    items[2].durable = 1;
    cr_assert_eq(nd_commitq_submit(q, fn, done, &items[1], 0), 0);
    cr_assert_eq(nd_commitq_submit(q, fn, done, &items[2], 1), 0);
    run_until(&loop, 3);
    cr_assert_eq(items[1].status, 0);
    cr_assert_eq(items[2].status, 0, "the next sync worked");
    nd_commitq_close(q, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    nd_store_close(&store);
}
