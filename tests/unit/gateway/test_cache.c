/* Hot-object cache: LRU order and eviction, byte accounting, the per-object cap, freshness and
 * expiry, invalidation, and coalescing (one filler, waiters called back on their own loop,
 * also across threads; cancelled waiters never called). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "object/cache.h"
#include "timeutil.h"

static struct gw_cobj *obj(const char *key, uint64_t version, size_t size)
{
    struct gw_cobj *o = gw_cobj_new(key, version, size, "video/mp4", "", 1000, 0);
    cr_assert_not_null(o);
    if (size > 0) {
        memset(o->body->data, 'a' + (int)(version % 26), size);
        o->body->len = size;
    }
    return o;
}

/* Fill key through the coalescing API with no waiters. */
static void put(struct gw_cache *c, struct gw_cobj *o, uint64_t fresh_until, uint64_t now)
{
    struct gw_cwait w;
    memset(&w, 0, sizeof(w));
    struct gw_cobj *hit = NULL;
    struct gw_cfill *f = NULL;
    cr_assert_eq(gw_cache_get(c, o->key, now, 0, NULL, &w, &hit, &f), GW_CACHE_FILL);
    gw_cache_fill_end(c, f, o, fresh_until, now, GW_CWAIT_OBJ);
    gw_cobj_unref(o);
}

static int has(struct gw_cache *c, const char *key, uint64_t now, int64_t wall)
{
    struct gw_cobj *hit = NULL;
    if (gw_cache_get(c, key, now, wall, NULL, NULL, &hit, NULL) != GW_CACHE_HIT)
        return 0;
    gw_cobj_unref(hit);
    return 1;
}

Test(cache, lru_eviction_and_accounting)
{
    struct gw_cache *c;
    /* room for nine 10 KB objects (each charged 10 KB + a little) */
    cr_assert_eq(gw_cache_new(8 * 12 * 1024, &c), 0);
    cr_assert_eq(gw_cache_max_object(c), 12 * 1024);
    put(c, obj("/a", 1, 10000), UINT64_MAX, 1);
    put(c, obj("/b", 1, 10000), UINT64_MAX, 1);
    put(c, obj("/c", 1, 10000), UINT64_MAX, 1);
    struct gw_cache_stats st;
    gw_cache_stats(c, &st);
    cr_assert_eq(st.entries, 3);
    cr_assert_geq(st.used, 30000);
    cr_assert(has(c, "/a", 2, 0)); /* /a becomes most recent: /b is the LRU now */
    for (int i = 0; i < 10; i++) {
        char k[8];
        snprintf(k, sizeof(k), "/x%d", i);
        put(c, obj(k, 1, 10000), UINT64_MAX, 3);
        cr_assert(has(c, "/a", 3, 0), "recently used entry kept");
    }
    cr_assert(!has(c, "/b", 3, 0));
    gw_cache_stats(c, &st);
    cr_assert_leq(st.used, st.capacity);
    cr_assert_gt(st.evictions, 0);
    /* over the per-object cap: never cached */
    put(c, obj("/big", 1, 13000), UINT64_MAX, 4);
    cr_assert(!has(c, "/big", 4, 0));
    gw_cache_free(c);
}

Test(cache, hit_slice_survives_eviction)
{
    struct gw_cache *c;
    cr_assert_eq(gw_cache_new(8 * 1024 * 1024, &c), 0);
    put(c, obj("/seg", 7, 1000), UINT64_MAX, 1);
    struct gw_cobj *hit = NULL;
    cr_assert_eq(gw_cache_get(c, "/seg", 1, 0, NULL, NULL, &hit, NULL), GW_CACHE_HIT);
    cr_assert_eq(hit->version, 7);
    gw_cache_invalidate(c, "/seg");
    cr_assert(!has(c, "/seg", 1, 0));
    cr_assert_eq(hit->body->data[999], 'h', "a reader's ref keeps the bytes");
    gw_cobj_unref(hit);
    struct gw_cache_stats st;
    gw_cache_stats(c, &st);
    cr_assert_eq(st.used, 0);
    cr_assert_eq(st.entries, 0);
    gw_cache_free(c);
}

Test(cache, freshness_expiry_and_replacement)
{
    struct gw_cache *c;
    cr_assert_eq(gw_cache_new(1 << 20, &c), 0);
    put(c, obj("/p.m3u8", 1, 10), 1000 + 1000, 1000); /* playlist: fresh for 1 s */
    cr_assert(has(c, "/p.m3u8", 1999, 0));
    cr_assert(!has(c, "/p.m3u8", 2000, 0), "never served past its freshness");
    struct gw_cobj *o = gw_cobj_new("/t.ts", 3, 0, "video/mp2t", "", 1, 5000);
    put(c, o, UINT64_MAX, 1);
    cr_assert(has(c, "/t.ts", 10, 4999));
    cr_assert(!has(c, "/t.ts", 10, 5000), "expired objects are misses");
    put(c, obj("/s.ts", 1, 10), 5, 1);
    put(c, obj("/s.ts", 2, 20), UINT64_MAX, 10); /* read again once stale: replaces */
    struct gw_cobj *hit = NULL;
    cr_assert_eq(gw_cache_get(c, "/s.ts", 10, 0, NULL, NULL, &hit, NULL), GW_CACHE_HIT);
    cr_assert_eq(hit->version, 2);
    gw_cobj_unref(hit);
    put(c, obj("/stale.ts", 1, 10), 5, 10); /* already stale when it ends: not inserted */
    cr_assert(!has(c, "/stale.ts", 10, 0));
    gw_cache_free(c);
}

static uint64_t cached_version(struct gw_cache *c, const char *key)
{
    struct gw_cobj *hit = NULL;
    if (gw_cache_get(c, key, 10, 0, NULL, NULL, &hit, NULL) != GW_CACHE_HIT)
        return 0;
    uint64_t v = hit->version;
    gw_cobj_unref(hit);
    return v;
}

/* Write-through: a gateway's own committed object goes in, unless the commit watch already
 * applied a later write of its key or jumped past it; nothing older replaces something newer. */
Test(cache, write_through_never_puts_an_older_version)
{
    struct gw_cache *c;
    cr_assert_eq(gw_cache_new(1 << 20, &c), 0);
    struct gw_cobj *o = obj("/a.ts", 5, 10);
    gw_cache_invalidate_at(c, "/a.ts", 5); /* the watch saw the write itself: fine */
    cr_assert_eq(gw_cache_put(c, o, UINT64_MAX, 1), 1);
    gw_cobj_unref(o);
    cr_assert_eq(cached_version(c, "/a.ts"), 5);

    gw_cache_invalidate_at(c, "/a.ts", 9); /* a later write (another gateway) was applied */
    cr_assert_eq(cached_version(c, "/a.ts"), 0);
    o = obj("/a.ts", 7, 10); /* this gateway's older commit arrives late */
    cr_assert_eq(gw_cache_put(c, o, UINT64_MAX, 1), 0, "older than an applied write");
    gw_cobj_unref(o);
    cr_assert_eq(cached_version(c, "/a.ts"), 0);

    struct gw_cwait w;
    memset(&w, 0, sizeof(w));
    struct gw_cobj *hit = NULL;
    struct gw_cfill *f = NULL;
    cr_assert_eq(gw_cache_get(c, "/b.ts", 1, 0, NULL, &w, &hit, &f), GW_CACHE_FILL);
    o = obj("/b.ts", 12, 10);
    cr_assert_eq(gw_cache_put(c, o, UINT64_MAX, 1), 1);
    gw_cobj_unref(o);
    o = obj("/b.ts", 11, 10); /* a slow fill of the older version ends */
    gw_cache_fill_end(c, f, o, UINT64_MAX, 1, GW_CWAIT_OBJ);
    gw_cobj_unref(o);
    cr_assert_eq(cached_version(c, "/b.ts"), 12, "an older fill does not replace it");

    gw_cache_clear_at(c, 20); /* events missed up to 20 */
    o = obj("/c.ts", 15, 10);
    cr_assert_eq(gw_cache_put(c, o, UINT64_MAX, 1), 0, "older than the reset");
    gw_cobj_unref(o);
    o = obj("/c.ts", 21, 10);
    cr_assert_eq(gw_cache_put(c, o, UINT64_MAX, 1), 1);
    gw_cobj_unref(o);
    o = gw_cobj_new("/d.ts", 30, 10, "video/mp2t", "", 1, 0); /* body not filled */
    cr_assert_eq(gw_cache_put(c, o, UINT64_MAX, 1), 0, "an incomplete body never goes in");
    gw_cobj_unref(o);
    gw_cache_free(c);
}

/* ---- coalescing ---- */

struct waiter {
    struct gw_cwait w;
    int called;
    enum gw_cwait_result result;
    uint64_t version;
};

static int total_called;

static void on_wait(struct gw_cwait *w)
{
    struct waiter *x = w->arg;
    x->called++;
    total_called++;
    x->result = w->result;
    x->version = w->obj ? w->obj->version : 0;
    gw_cobj_unref(w->obj);
    w->obj = NULL;
}

static void run_until_called(uv_loop_t *loop, int want)
{
    uint64_t end = cm_mono_ms() + 5000;
    while (total_called < want) {
        cr_assert_lt(cm_mono_ms(), end, "waiters not called back");
        uv_run(loop, UV_RUN_ONCE);
    }
}

Test(cache, coalescing_waiters_and_cancel)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct gw_cache *c;
    struct gw_cache_port *port;
    cr_assert_eq(gw_cache_new(1 << 20, &c), 0);
    cr_assert_eq(gw_cache_port_new(&loop, &port), 0);
    total_called = 0;
    struct waiter filler, w[4];
    memset(&filler, 0, sizeof(filler));
    memset(w, 0, sizeof(w));
    struct gw_cfill *f = NULL;
    struct gw_cobj *hit = NULL;
    filler.w.cb = on_wait;
    filler.w.arg = &filler;
    cr_assert_eq(gw_cache_get(c, "/k.m4s", 1, 0, port, &filler.w, &hit, &f), GW_CACHE_FILL);
    for (int i = 0; i < 4; i++) {
        w[i].w.cb = on_wait;
        w[i].w.arg = &w[i];
        struct gw_cfill *f2 = NULL;
        cr_assert_eq(gw_cache_get(c, "/k.m4s", 1, 0, port, &w[i].w, &hit, &f2), GW_CACHE_WAIT);
    }
    gw_cache_cancel(c, &w[1].w); /* gone before the outcome */
    struct gw_cobj *o = obj("/k.m4s", 9, 100);
    gw_cache_fill_end(c, f, o, UINT64_MAX, 1, GW_CWAIT_OBJ);
    gw_cobj_unref(o);
    gw_cache_cancel(c, &w[2].w); /* gone after delivery, before its loop ran */
    cr_assert_eq(total_called, 0, "never called back from inside fill_end");
    run_until_called(&loop, 2);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(w[0].called, 1);
    cr_assert_eq(w[3].called, 1);
    cr_assert_eq(w[1].called + w[2].called, 0);
    cr_assert_eq(w[0].result, GW_CWAIT_OBJ);
    cr_assert_eq(w[3].version, 9);
    cr_assert(has(c, "/k.m4s", 2, 0));
    /* a failed read: waiters learn it, nothing is cached */
    cr_assert_eq(gw_cache_get(c, "/n.m4s", 1, 0, port, &filler.w, &hit, &f), GW_CACHE_FILL);
    cr_assert_eq(gw_cache_get(c, "/n.m4s", 1, 0, port, &w[0].w, &hit, NULL), GW_CACHE_WAIT);
    gw_cache_fill_end(c, f, NULL, 0, 1, GW_CWAIT_NOT_FOUND);
    run_until_called(&loop, 3);
    cr_assert_eq(w[0].result, GW_CWAIT_NOT_FOUND);
    /* invalidated while in flight: waiters still get it, the cache does not keep it */
    cr_assert_eq(gw_cache_get(c, "/i.m4s", 1, 0, port, &filler.w, &hit, &f), GW_CACHE_FILL);
    gw_cache_invalidate(c, "/i.m4s");
    struct gw_cfill *f3 = NULL;
    cr_assert_eq(gw_cache_get(c, "/i.m4s", 1, 0, port, &w[3].w, &hit, &f3), GW_CACHE_FILL,
                 "a request after the invalidation reads again");
    o = obj("/i.m4s", 1, 10);
    gw_cache_fill_end(c, f, o, UINT64_MAX, 1, GW_CWAIT_OBJ);
    gw_cobj_unref(o);
    cr_assert(!has(c, "/i.m4s", 2, 0));
    gw_cache_fill_end(c, f3, NULL, 0, 1, GW_CWAIT_FAILED);
    gw_cache_port_close(port);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    gw_cache_free(c);
}

/* Waiters on other threads' loops are called back on their own loop. */
struct thr {
    uv_thread_t t;
    uv_loop_t loop;
    struct gw_cache *c;
    struct gw_cache_port *port;
    struct waiter w[16];
    uv_sem_t joined;
    int done;
};

static void on_thr_wait(struct gw_cwait *w)
{
    struct waiter *x = w->arg;
    x->called = 1;
    x->version = w->obj ? w->obj->version : 0;
    gw_cobj_unref(w->obj);
    w->obj = NULL;
}

static void thr_main(void *arg)
{
    struct thr *t = arg;
    uv_loop_init(&t->loop);
    cr_assert_eq(gw_cache_port_new(&t->loop, &t->port), 0);
    for (int i = 0; i < 16; i++) {
        struct gw_cobj *hit = NULL;
        struct gw_cfill *f = NULL;
        t->w[i].w.cb = on_thr_wait;
        t->w[i].w.arg = &t->w[i];
        cr_assert_eq(gw_cache_get(t->c, "/x.m4s", 1, 0, t->port, &t->w[i].w, &hit, &f),
                     GW_CACHE_WAIT);
    }
    uv_sem_post(&t->joined);
    uint64_t end = cm_mono_ms() + 5000;
    for (;;) {
        int all = 1;
        for (int i = 0; i < 16; i++)
            all &= t->w[i].called;
        if (all || cm_mono_ms() > end)
            break;
        uv_run(&t->loop, UV_RUN_ONCE);
    }
    gw_cache_port_close(t->port);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    t->done = uv_loop_close(&t->loop) == 0;
}

Test(cache, coalescing_across_threads)
{
    struct gw_cache *c;
    cr_assert_eq(gw_cache_new(1 << 20, &c), 0);
    struct gw_cwait fw;
    memset(&fw, 0, sizeof(fw));
    struct gw_cfill *f = NULL;
    struct gw_cobj *hit = NULL;
    cr_assert_eq(gw_cache_get(c, "/x.m4s", 1, 0, NULL, &fw, &hit, &f), GW_CACHE_FILL);
    static struct thr t[4];
    memset(t, 0, sizeof(t));
    for (int i = 0; i < 4; i++) {
        t[i].c = c;
        uv_sem_init(&t[i].joined, 0);
        uv_thread_create(&t[i].t, thr_main, &t[i]);
    }
    for (int i = 0; i < 4; i++)
        uv_sem_wait(&t[i].joined);
    struct gw_cobj *o = obj("/x.m4s", 5, 4096);
    gw_cache_fill_end(c, f, o, UINT64_MAX, 1, GW_CWAIT_OBJ);
    gw_cobj_unref(o);
    for (int i = 0; i < 4; i++) {
        uv_thread_join(&t[i].t);
        uv_sem_destroy(&t[i].joined);
        cr_assert(t[i].done);
        for (int k = 0; k < 16; k++) {
            cr_assert_eq(t[i].w[k].called, 1);
            cr_assert_eq(t[i].w[k].version, 5);
        }
    }
    gw_cache_free(c);
}
