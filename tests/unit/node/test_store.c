/* The store seam: the in-memory store behaves as RocksDB does for everything the node uses
 * (point reads, batches with range deletes, prefix scans, seek-for-prev), and its fault
 * countdowns and crash do what the tests above rely on. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "store/mem.h"
#include "store/rocks.h"

static char dir[] = "/tmp/hw-store-XXXXXX";
static struct nd_store mem, rocks;

static void setup(void)
{
    char err[256];
    strcpy(dir, "/tmp/hw-store-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(nd_store_rocks_open(&rocks, dir, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(nd_store_mem_open(&mem), 0);
}

static void teardown(void)
{
    char cmd[128];
    nd_store_close(&rocks);
    nd_store_close(&mem);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = setup, .fini = teardown);

static void key(struct nd_skey *k, const char *s)
{
    k->len = strlen(s);
    memcpy(k->b, s, k->len);
}

static void put(struct nd_batch *b, const char *k, const char *v)
{
    struct nd_skey sk;
    key(&sk, k);
    nd_batch_put(b, &sk, v, strlen(v));
}

/* Every record, "k=v;" in key order. */
static void dump(struct nd_store *s, char *out, size_t cap)
{
    struct nd_store_iter *it;
    size_t n = 0;
    out[0] = '\0';
    cr_assert_eq(nd_store_iter_new(s, 0, &it), 0);
    for (nd_store_iter_seek(it, "", 0); nd_store_iter_valid(it); nd_store_iter_next(it)) {
        size_t kl, vl;
        const char *k = nd_store_iter_key(it, &kl);
        const char *v = nd_store_iter_value(it, &vl);
        n += (size_t)snprintf(out + n, cap - n, "%.*s=%.*s;", (int)kl, k, (int)vl, v);
    }
    nd_store_iter_free(it);
}

static void both_write(struct nd_batch *b, int sync)
{
    cr_assert_eq(nd_store_write(&mem, b, sync), 0);
    cr_assert_eq(nd_store_write(&rocks, b, sync), 0);
    nd_batch_clear(b);
}

Test(store, memory_store_matches_rocksdb)
{
    struct nd_batch b;
    char dm[1024], dr[1024];
    struct nd_skey lo, hi;
    nd_batch_init(&b);
    put(&b, "b2", "x");
    put(&b, "a", "1");
    put(&b, "b1", "y");
    put(&b, "b3", "z");
    put(&b, "c", "3");
    put(&b, "a", "2"); /* later put in one batch wins */
    both_write(&b, 0);
    key(&lo, "b1");
    key(&hi, "b3");
    nd_batch_del_range(&b, &lo, &hi); /* b1, b2; not b3 */
    key(&lo, "c");
    nd_batch_del(&b, &lo);
    put(&b, "c", "4"); /* delete then put in one batch: the put stays */
    put(&b, "d", "");
    both_write(&b, 1);
    dump(&mem, dm, sizeof(dm));
    dump(&rocks, dr, sizeof(dr));
    cr_assert_str_eq(dm, "a=2;b3=z;c=4;d=;");
    cr_assert_str_eq(dm, dr);

    char *v;
    size_t vl;
    key(&lo, "b3");
    cr_assert_eq(nd_store_get(&mem, &lo, &v, &vl), 0);
    cr_assert_eq(vl, 1);
    cm_free(v);
    key(&lo, "b2");
    cr_assert_eq(nd_store_get(&mem, &lo, &v, &vl), CM_ENOTFOUND);
    cr_assert_eq(nd_store_get(&rocks, &lo, &v, &vl), CM_ENOTFOUND);

    /* seek_for_prev lands on the last key <= the target, on both */
    const char *targets[] = {"b", "b3", "bz", "zz", "0"};
    for (size_t i = 0; i < 5; i++) {
        struct nd_store_iter *im, *ir;
        cr_assert_eq(nd_store_iter_new(&mem, 0, &im), 0);
        cr_assert_eq(nd_store_iter_new(&rocks, ND_ITER_UNVERIFIED, &ir), 0);
        nd_store_iter_seek_for_prev(im, targets[i], strlen(targets[i]));
        nd_store_iter_seek_for_prev(ir, targets[i], strlen(targets[i]));
        cr_assert_eq(nd_store_iter_valid(im), nd_store_iter_valid(ir), "%s", targets[i]);
        if (nd_store_iter_valid(im)) {
            size_t a, c;
            const char *ka = nd_store_iter_key(im, &a), *kc = nd_store_iter_key(ir, &c);
            cr_assert(a == c && memcmp(ka, kc, a) == 0, "%s", targets[i]);
        }
        nd_store_iter_free(im);
        nd_store_iter_free(ir);
    }
    nd_batch_close(&b);
}

Test(store, an_iterator_reads_the_view_it_started_from)
{
    struct nd_batch b;
    struct nd_store_iter *it;
    nd_batch_init(&b);
    put(&b, "k1", "a");
    put(&b, "k2", "b");
    cr_assert_eq(nd_store_write(&mem, &b, 0), 0);
    nd_batch_clear(&b);
    cr_assert_eq(nd_store_iter_new(&mem, 0, &it), 0);
    nd_store_iter_seek(it, "k", 1);
    struct nd_skey k;
    key(&k, "k1");
    nd_batch_del(&b, &k);
    put(&b, "k3", "c");
    cr_assert_eq(nd_store_write(&mem, &b, 0), 0);
    size_t n = 0;
    for (; nd_store_iter_valid(it); nd_store_iter_next(it))
        n++;
    cr_assert_eq(n, 2, "the iterator saw a later write");
    nd_store_iter_free(it);
    nd_batch_close(&b);
}

Test(store, fault_countdowns_and_crash)
{
    struct nd_batch b;
    char d[256];
    nd_batch_init(&b);
    put(&b, "a", "1");
    cr_assert_eq(nd_store_write(&mem, &b, 1), 0); /* durable */
    nd_batch_clear(&b);

    nd_store_mem_fault(&mem, ND_MEM_FAIL_WRITE, 2);
    put(&b, "b", "2");
    cr_assert_eq(nd_store_write(&mem, &b, 0), 0);
    cr_assert_eq(nd_store_write(&mem, &b, 0), CM_ESTORE, "the 2nd write fails");
    cr_assert_eq(nd_store_write(&mem, &b, 0), 0, "once");

    nd_store_mem_fault(&mem, ND_MEM_FAIL_SYNC, 1);
    cr_assert_eq(nd_store_sync(&mem), CM_ESTORE);
    unsigned syncs = nd_store_mem_syncs(&mem);
    nd_store_mem_fault(&mem, ND_MEM_FAIL_SYNC, 1);
    nd_batch_clear(&b);
    put(&b, "c", "3");
    cr_assert_eq(nd_store_write(&mem, &b, 1), CM_ESTORE, "a sync write whose sync fails");
    dump(&mem, d, sizeof(d));
    cr_assert_str_eq(d, "a=1;b=2;", "...leaves nothing behind");
    cr_assert_eq(nd_store_mem_syncs(&mem), syncs);

    nd_store_mem_fault(&mem, ND_MEM_NOSPC, 1);
    cr_assert_eq(nd_store_write(&mem, &b, 0), CM_ENOSPC);
    cr_assert_eq(nd_store_write(&mem, &b, 1), CM_ENOSPC);
    nd_store_mem_fault(&mem, ND_MEM_NOSPC, 0);
    cr_assert_eq(nd_store_write(&mem, &b, 0), 0);
    dump(&mem, d, sizeof(d));
    cr_assert_str_eq(d, "a=1;b=2;c=3;");

    nd_store_mem_crash(&mem); /* b and c were never synced */
    dump(&mem, d, sizeof(d));
    cr_assert_str_eq(d, "a=1;");
    nd_batch_close(&b);
}

/* An allocation failure while building a batch is remembered: the write refuses it whole. */
Test(store, a_batch_that_ran_out_of_memory_is_not_written)
{
    struct nd_batch b;
    char d[256];
    nd_batch_init(&b);
    put(&b, "a", "1");
    cm_alloc_fail_after(0);
    put(&b, "b", "2");
    cm_alloc_fail_after(-1);
    put(&b, "c", "3");
    cr_assert_eq(nd_store_write(&mem, &b, 0), CM_ENOMEM);
    cr_assert_eq(nd_store_write(&rocks, &b, 0), CM_ENOMEM);
    dump(&mem, d, sizeof(d));
    cr_assert_str_eq(d, "");
    nd_batch_close(&b);
}
