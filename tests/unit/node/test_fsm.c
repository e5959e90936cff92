/* Shard state machine over the in-memory store: apply idempotence, retried commits, promotion
 * of staged uploads, repair markers, preconditions decided at apply, crash replay and store
 * faults. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "nodetest.h"
#include "shard/fsm.h"
#include "store/mem.h"

static struct nd_store store;
static struct nd_fsm fsm;

static void setup(void)
{
    cr_assert_eq(nd_store_mem_open(&store), 0);
    cr_assert_eq(nd_fsm_init(&fsm, &store, 0, NULL), 0);
}

static void teardown(void)
{
    nd_store_close(&store);
}

TestSuite(fsm, .init = setup, .fini = teardown);

#define stage(up, key, bytes, fin) t_stage(&store, up, key, bytes, fin)
#define entry t_entry
#define entry_full t_entry_full
#define cond_put t_cond_put
#define meta_of(key) t_meta_of(&store, 0, key)
#define version_of(key) t_version_of(&store, key)
#define staged_exists(up) t_staged_exists(&store, up)

static const uint8_t up1[16] = {1}, up2[16] = {2}, up3[16] = {3};

Test(fsm, put_promotes_staged_and_replay_is_a_noop)
{
    uint8_t buf[512];
    stage(up1, "/live/a.ts", "hello", 1);
    size_t n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/live/a.ts", 5, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 5, buf, n), 0);
    cr_assert_eq(fsm.result.version, 5);
    cr_assert_eq(fsm.result.created, 1);
    Hw__ObjectMeta *m = meta_of("/live/a.ts");
    cr_assert_not_null(m);
    cr_assert(m->local);
    cr_assert_eq(m->version, 5);
    hw__object_meta__free_unpacked(m, NULL);
    cr_assert_eq(fsm.repair_backlog, 0);
    /* Replay after a crash: index 5 again changes nothing. */
    cr_assert_eq(nd_fsm_apply_at(&fsm, 5, buf, n), 0);
    cr_assert_eq(fsm.applied, 5);
    /* A retried commit of the same upload at a later index: same version, and created as the
     * first application decided (a brand-new key is 201 also when the commit was retried). */
    cr_assert_eq(nd_fsm_apply_at(&fsm, 6, buf, n), 0);
    cr_assert_eq(fsm.result.version, 5);
    cr_assert_eq(fsm.result.created, 1);
    m = meta_of("/live/a.ts");
    cr_assert_eq(m->version, 5);
    hw__object_meta__free_unpacked(m, NULL);
    cr_assert_eq(fsm.applied, 6);
}

/* A retried commit answers created as its first application decided: 201 for the key it
 * created, 204 for the one it replaced; a committed-upload record written before the flag
 * existed (version only) still answers its version, as replaced. */
Test(fsm, retried_commit_answers_created_as_first_applied)
{
    uint8_t buf[512];
    stage(up1, "/r/a.ts", "hello", 1);
    size_t n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/r/a.ts", 5, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 3, buf, n), 0);
    cr_assert(fsm.result.created);
    stage(up2, "/r/a.ts", "world", 1);
    size_t n2 = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up2, "/r/a.ts", 5, buf + 256);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 4, buf + 256, n2), 0);
    cr_assert(!fsm.result.created);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 7, buf, n), 0, "the first upload's commit, retried");
    cr_assert_eq(fsm.result.version, 3);
    cr_assert(fsm.result.created, "it created the key");
    cr_assert_eq(version_of("/r/a.ts"), 4, "the retry changed nothing");
    cr_assert_eq(nd_fsm_apply_at(&fsm, 8, buf + 256, n2), 0);
    cr_assert_eq(fsm.result.version, 4);
    cr_assert(!fsm.result.created, "it replaced the key");

    struct nd_skey ck;
    struct nd_batch b;
    char v[8];
    nd_skey_committed(&ck, 0, up3);
    nd_put_u64(v, 2); /* the old format */
    nd_batch_init(&b);
    nd_batch_put(&b, &ck, v, sizeof(v));
    cr_assert_eq(nd_store_write(&store, &b, 0), 0);
    nd_batch_close(&b);
    n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up3, "/r/b.ts", 5, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 9, buf, n), 0);
    cr_assert_eq(fsm.result.version, 2);
    cr_assert(!fsm.result.created);
}

Test(fsm, missing_bytes_set_a_repair_marker_and_overwrite_clears_it)
{
    uint8_t buf[512];
    size_t n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up2, "/live/b.ts", 5, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 3, buf, n), 0);
    Hw__ObjectMeta *m = meta_of("/live/b.ts");
    cr_assert(!m->local);
    hw__object_meta__free_unpacked(m, NULL);
    cr_assert_eq(fsm.repair_backlog, 1);
    stage(up3, "/live/b.ts", "world", 1);
    n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up3, "/live/b.ts", 5, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 4, buf, n), 0);
    cr_assert_eq(fsm.result.created, 0);
    cr_assert_eq(fsm.repair_backlog, 0);
    /* An unfinished staged upload is not promoted. */
    stage(up1, "/live/c.ts", "abc", 0);
    n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/live/c.ts", 3, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 5, buf, n), 0);
    cr_assert_eq(fsm.repair_backlog, 1);
    /* Reloading counts markers from the store. */
    struct nd_fsm again;
    cr_assert_eq(nd_fsm_init(&again, &store, 0, NULL), 0);
    cr_assert_eq(again.applied, 5);
    cr_assert_eq(again.repair_backlog, 1);
}

Test(fsm, delete_and_garbage)
{
    uint8_t buf[512];
    stage(up1, "/v/a.m4s", "xyzzy", 1);
    size_t n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/v/a.m4s", 5, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 1, buf, n), 0);
    n = entry(HW__RAFT_ENTRY__KIND__KIND_DELETE, NULL, "/v/a.m4s", 0, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 2, buf, n), 0);
    cr_assert(fsm.result.found);
    cr_assert_null(meta_of("/v/a.m4s"));
    cr_assert_eq(nd_fsm_apply_at(&fsm, 3, buf, n), 0);
    cr_assert(!fsm.result.found);
    /* Garbage is skipped, but the index still advances on every replica alike. */
    cr_assert_neq(nd_fsm_apply_at(&fsm, 4, "\xff\xff\xff", 3), 0);
    cr_assert_eq(fsm.applied, 4);
}

Test(fsm, expire_removes_only_the_version_it_names)
{
    uint8_t buf[512];
    stage(up1, "/live/e.ts", "short", 1);
    size_t n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/live/e.ts", 5, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 1, buf, n), 0);
    /* An EXPIRE naming an older version loses against the current one. */
    Hw__RaftEntry e = HW__RAFT_ENTRY__INIT;
    Hw__ObjectMeta m = HW__OBJECT_META__INIT;
    struct raft_buffer rb;
    e.kind = HW__RAFT_ENTRY__KIND__KIND_EXPIRE;
    e.meta = &m;
    m.key = "/live/e.ts";
    m.version = 7;
    cr_assert_eq(nd_fsm_encode(&e, &rb), 0);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 2, rb.base, rb.len), 0);
    raft_free(rb.base);
    cr_assert(!fsm.result.found);
    Hw__ObjectMeta *cur = meta_of("/live/e.ts");
    cr_assert_not_null(cur);
    hw__object_meta__free_unpacked(cur, NULL);
    m.version = 1;
    cr_assert_eq(nd_fsm_encode(&e, &rb), 0);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 3, rb.base, rb.len), 0);
    raft_free(rb.base);
    cr_assert(fsm.result.found);
    cr_assert_null(meta_of("/live/e.ts"));
}

/* Compare-and-set at apply: a failed precondition writes nothing (but the index advances), the
 * staged upload survives for a retry, and a retry of a commit that succeeded answers its version
 * even though the key now carries that very version (its own If-Match no longer holds). */
Test(fsm, precondition_decided_at_apply)
{
    uint8_t buf[512];
    const char *key = "/live/p/index.m3u8";
    stage(up1, key, "first", 1);
    size_t n = cond_put(up1, key, NULL, "*", 0, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 10, buf, n), 0);
    cr_assert(!fsm.result.precondition_failed);
    cr_assert(fsm.result.created);
    cr_assert_eq(version_of(key), 10);

    stage(up2, key, "secnd", 1);
    n = cond_put(up2, key, NULL, "*", 0, buf); /* create-only, but it exists */
    cr_assert_eq(nd_fsm_apply_at(&fsm, 11, buf, n), 0);
    cr_assert(fsm.result.precondition_failed);
    cr_assert_eq(fsm.applied, 11);
    cr_assert_eq(version_of(key), 10, "a failed precondition changed the object");
    cr_assert(staged_exists(up2), "the staged upload stays for a retry");
    n = cond_put(up2, key, "\"b\"", NULL, 0, buf); /* version 11 never was the key's */
    cr_assert_eq(nd_fsm_apply_at(&fsm, 12, buf, n), 0);
    cr_assert(fsm.result.precondition_failed);
    n = cond_put(up2, key, "W/\"a\"", NULL, 0, buf); /* If-Match compares strongly */
    cr_assert_eq(nd_fsm_apply_at(&fsm, 13, buf, n), 0);
    cr_assert(fsm.result.precondition_failed);

    n = cond_put(up2, key, "\"a\"", NULL, 0, buf); /* ETag of version 10 */
    cr_assert_eq(nd_fsm_apply_at(&fsm, 14, buf, n), 0);
    cr_assert(!fsm.result.precondition_failed);
    cr_assert_eq(fsm.result.version, 14);
    cr_assert(!fsm.result.created);
    Hw__ObjectMeta *m = meta_of(key);
    cr_assert(m->local, "promoted after the earlier failed attempts");
    hw__object_meta__free_unpacked(m, NULL);
    /* The same commit again (a gateway retry): the original success, not a 412. */
    cr_assert_eq(nd_fsm_apply_at(&fsm, 15, buf, n), 0);
    cr_assert(!fsm.result.precondition_failed);
    cr_assert_eq(fsm.result.version, 14);
    cr_assert_eq(version_of(key), 14);

    n = cond_put(up3, "/live/p/absent.m3u8", "*", NULL, 0, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 16, buf, n), 0);
    cr_assert(fsm.result.precondition_failed, "If-Match: * on a missing key");
    cr_assert_null(meta_of("/live/p/absent.m3u8"));
}

/* Expiry judged by the entry's created_ms (the proposing leader's clock), never the applying
 * replica's: every replica answers alike. */
Test(fsm, precondition_sees_an_expired_object_as_absent)
{
    uint8_t buf[512];
    const char *key = "/live/x/seg.ts";
    stage(up1, key, "short", 1);
    size_t n = entry_full(HW__RAFT_ENTRY__KIND__KIND_PUT, up1, key, 5, NULL, 1000, 5000, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 1, buf, n), 0);
    n = cond_put(up2, key, NULL, "*", 4999, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 2, buf, n), 0);
    cr_assert(fsm.result.precondition_failed, "not expired yet at 4999");
    n = cond_put(up2, key, "\"1\"", NULL, 5000, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 3, buf, n), 0);
    cr_assert(fsm.result.precondition_failed, "expired at 5000: nothing to match");
    n = cond_put(up2, key, NULL, "*", 5000, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 4, buf, n), 0);
    cr_assert(!fsm.result.precondition_failed);
    cr_assert_eq(version_of(key), 4);
}

/* A log of entries as raft would hold it: index i+1 is log[i]. */
struct tlog {
    uint8_t buf[8][512];
    size_t len[8];
    size_t n;
};

static void build_log(struct tlog *l)
{
    static const uint8_t u4[16] = {4}, u5[16] = {5}, u6[16] = {6};
    memset(l, 0, sizeof(*l));
    stage(up1, "/d/a.ts", "aaaaa", 1);
    stage(up2, "/d/b.ts", "bbbbb", 1);
    stage(u4, "/d/c.ts", "ccccc", 1);
    stage(u6, "/d/a.ts", "AAAAA", 1);
#define ADD(expr) (l->len[l->n] = (expr), l->n++)
    ADD(entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/d/a.ts", 5, l->buf[l->n]));
    ADD(entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up2, "/d/b.ts", 5, l->buf[l->n]));
    /* bytes elsewhere: a repair marker */
    ADD(entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up3, "/d/m.ts", 5, l->buf[l->n]));
    /* create-only while a.ts exists: fails here, and must keep failing on any replay */
    ADD(cond_put(u6, "/d/a.ts", NULL, "*", 0, l->buf[l->n]));
    ADD(entry(HW__RAFT_ENTRY__KIND__KIND_DELETE, NULL, "/d/a.ts", 0, l->buf[l->n]));
    /* overwrite: b's first version's bytes go */
    ADD(entry(HW__RAFT_ENTRY__KIND__KIND_PUT, u4, "/d/b.ts", 5, l->buf[l->n]));
    ADD(entry(HW__RAFT_ENTRY__KIND__KIND_PUT, u5, "/d/n.ts", 5, l->buf[l->n]));
#undef ADD
}

static void replay(struct nd_fsm *f, const struct tlog *l, size_t from)
{
    for (size_t i = from; i < l->n; i++)
        cr_assert_eq(nd_fsm_apply_at(f, i + 1, l->buf[i], l->len[i]), 0, "entry %zu", i + 1);
}

/* Apply a log, crash at every point (losing what was not synced), reopen the FSM over what
 * survived and replay the whole log as raft would: the store ends byte for byte where a run
 * without a crash ended, and so do the applied index and the repair backlog. */
Test(fsm, crash_anywhere_then_replay_reaches_the_same_state)
{
    struct tlog l;
    build_log(&l);
    cr_assert_eq(nd_store_sync(&store), 0); /* the staged uploads were made durable (FINISH) */
    replay(&fsm, &l, 0);
    unsigned long long want = nd_store_mem_digest(&store);
    uint64_t backlog = fsm.repair_backlog;
    cr_assert_eq(backlog, 2, "m.ts and n.ts have no local bytes");
    cr_assert_eq(version_of("/d/a.ts"), 0, "the create-only PUT never applied");

    for (size_t crash_after = 0; crash_after <= l.n; crash_after++) {
        struct nd_store s2;
        struct nd_fsm f2;
        cr_assert_eq(nd_store_mem_open(&s2), 0);
        t_stage(&s2, up1, "/d/a.ts", "aaaaa", 1);
        t_stage(&s2, up2, "/d/b.ts", "bbbbb", 1);
        t_stage(&s2, (const uint8_t[16]){4}, "/d/c.ts", "ccccc", 1);
        t_stage(&s2, (const uint8_t[16]){6}, "/d/a.ts", "AAAAA", 1);
        cr_assert_eq(nd_store_sync(&s2), 0);
        cr_assert_eq(nd_fsm_init(&f2, &s2, 0, NULL), 0);
        for (size_t i = 0; i < crash_after; i++) {
            cr_assert_eq(nd_fsm_apply_at(&f2, i + 1, l.buf[i], l.len[i]), 0);
            if (i == 1)
                cr_assert_eq(nd_store_sync(&s2), 0); /* a snapshot point */
        }
        nd_store_mem_crash(&s2);
        cr_assert_eq(nd_fsm_init(&f2, &s2, 0, NULL), 0);
        cr_assert_leq(f2.applied, crash_after);
        replay(&f2, &l, 0); /* raft replays from its last snapshot: every entry again */
        /* and a second replay after a clean restart is a no-op */
        cr_assert_eq(nd_fsm_init(&f2, &s2, 0, NULL), 0);
        replay(&f2, &l, 0);
        cr_assert_eq(nd_store_mem_digest(&s2), want, "crash after %zu entries", crash_after);
        cr_assert_eq(f2.applied, l.n);
        cr_assert_eq(f2.repair_backlog, backlog);
        nd_store_close(&s2);
    }
}

/* A store that refuses a write (failed write, ENOSPC) makes apply fail with that error and
 * change nothing: not the store, not the applied index, not the backlog; once the store
 * takes writes again the same entry applies normally. */
Test(fsm, store_faults_surface_and_change_nothing)
{
    uint8_t buf[512];
    stage(up1, "/f/a.ts", "aaaaa", 1);
    size_t n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up2, "/f/m.ts", 5, buf);
    unsigned long long before = nd_store_mem_digest(&store);

    nd_store_mem_fault(&store, ND_MEM_FAIL_WRITE, 1);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 1, buf, n), CM_ESTORE);
    cr_assert_eq(nd_store_mem_digest(&store), before);
    cr_assert_eq(fsm.applied, 0);
    cr_assert_eq(fsm.repair_backlog, 0);
    cr_assert_eq(fsm.result.version, 0);

    nd_store_mem_fault(&store, ND_MEM_NOSPC, 1);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 1, buf, n), CM_ENOSPC);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 1, buf, n), CM_ENOSPC, "a full disk stays full");
    cr_assert_eq(nd_store_mem_digest(&store), before);
    cr_assert_eq(fsm.applied, 0);
    cr_assert_eq(fsm.repair_backlog, 0);

    nd_store_mem_fault(&store, ND_MEM_NOSPC, 0);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 1, buf, n), 0);
    cr_assert_eq(fsm.applied, 1);
    cr_assert_eq(fsm.repair_backlog, 1);
    cr_assert_eq(version_of("/f/m.ts"), 1);

    /* The third write from now fails: two entries apply, the third does not. */
    nd_store_mem_fault(&store, ND_MEM_FAIL_WRITE, 3);
    n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/f/a.ts", 5, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 2, buf, n), 0);
    n = entry(HW__RAFT_ENTRY__KIND__KIND_DELETE, NULL, "/f/m.ts", 0, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 3, buf, n), 0);
    cr_assert_eq(fsm.repair_backlog, 0);
    n = entry(HW__RAFT_ENTRY__KIND__KIND_DELETE, NULL, "/f/a.ts", 0, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 4, buf, n), CM_ESTORE);
    cr_assert_eq(version_of("/f/a.ts"), 2, "the failed delete deleted nothing");
    cr_assert(t_chunk_exists(&store, up1));
    cr_assert_eq(fsm.applied, 3);
}

/* A repair marker exists exactly while a committed version's bytes are missing here: set by a
 * PUT without local bytes, gone with an overwrite that has them, with a DELETE, with an EXPIRE;
 * counted again from the store on restart. */
Test(fsm, repair_marker_lifecycle)
{
    uint8_t buf[512];
    size_t n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/r/a.ts", 5, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 1, buf, n), 0);
    n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up2, "/r/b.ts", 5, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 2, buf, n), 0);
    cr_assert(t_marker_exists(&store, "/r/a.ts"));
    cr_assert(t_marker_exists(&store, "/r/b.ts"));
    cr_assert_eq(fsm.repair_backlog, 2);
    struct nd_fsm again;
    cr_assert_eq(nd_fsm_init(&again, &store, 0, NULL), 0);
    cr_assert_eq(again.repair_backlog, 2);

    stage(up3, "/r/a.ts", "fresh", 1);
    n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up3, "/r/a.ts", 5, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 3, buf, n), 0);
    cr_assert(!t_marker_exists(&store, "/r/a.ts"), "overwritten with local bytes");
    cr_assert_eq(fsm.repair_backlog, 1);

    n = entry(HW__RAFT_ENTRY__KIND__KIND_DELETE, NULL, "/r/b.ts", 0, buf);
    cr_assert_eq(nd_fsm_apply_at(&fsm, 4, buf, n), 0);
    cr_assert(!t_marker_exists(&store, "/r/b.ts"), "deleted");
    cr_assert_eq(fsm.repair_backlog, 0);
    cr_assert_eq(nd_fsm_init(&again, &store, 0, NULL), 0);
    cr_assert_eq(again.repair_backlog, 0);
}

/* Allocation failure (or a failed store read) at every point of an apply: the apply fails
 * with CM_ENOMEM (CM_ESTORE) and changes nothing, or succeeds with exactly the state an unfailing
 * apply reaches. Never a crash, never a half-applied entry (run under ASan: never a leak either).
 */
static void sweep(const char *what, void (*prepare)(struct nd_store *s), int kind,
                  const uint8_t *up, const char *key, int reads)
{
    uint8_t buf[512];
    size_t n = entry(kind, up, key, 5, buf);
    struct nd_store ref;
    struct nd_fsm rf;
    cr_assert_eq(nd_store_mem_open(&ref), 0);
    prepare(&ref);
    cr_assert_eq(nd_fsm_init(&rf, &ref, 0, NULL), 0);
    cr_assert_eq(nd_fsm_apply_at(&rf, 10, buf, n), 0);
    unsigned long long want = nd_store_mem_digest(&ref);
    nd_store_close(&ref);
    for (long fail = 0;; fail++) {
        struct nd_store s;
        struct nd_fsm f;
        cr_assert_eq(nd_store_mem_open(&s), 0);
        prepare(&s);
        cr_assert_eq(nd_fsm_init(&f, &s, 0, NULL), 0);
        unsigned long long before = nd_store_mem_digest(&s);
        uint64_t backlog = f.repair_backlog, applied = f.applied;
        if (reads)
            nd_store_mem_fault(&s, ND_MEM_FAIL_READ, (unsigned)fail + 1);
        else
            cm_alloc_fail_after(fail);
        int rv = nd_fsm_apply_at(&f, 10, buf, n);
        cm_alloc_fail_after(-1);
        nd_store_mem_fault(&s, ND_MEM_FAIL_READ, 0);
        if (rv == 0) {
            cr_assert_eq(nd_store_mem_digest(&s), want, "%s: fail=%ld", what, fail);
            cr_assert_eq(f.repair_backlog, rf.repair_backlog, "%s: fail=%ld", what, fail);
            nd_store_close(&s);
            break;
        }
        cr_assert_eq(rv, reads ? CM_ESTORE : CM_ENOMEM, "%s: fail=%ld rv=%d", what, fail, rv);
        cr_assert_eq(nd_store_mem_digest(&s), before, "%s: fail=%ld", what, fail);
        cr_assert_eq(f.applied, applied);
        cr_assert_eq(f.repair_backlog, backlog);
        cr_assert_eq(nd_fsm_apply_at(&f, 10, buf, n), 0, "%s: the retry applies", what);
        cr_assert_eq(nd_store_mem_digest(&s), want, "%s: retry after fail=%ld", what, fail);
        nd_store_close(&s);
        cr_assert_lt(fail, 1000);
    }
}

static void prep_overwrite(struct nd_store *s)
{
    uint8_t buf[512];
    struct nd_fsm f;
    t_stage(s, up1, "/a/k.ts", "11111", 1);
    t_stage(s, up2, "/a/k.ts", "22222", 1);
    t_stage(s, up3, "/a/e.ts", "33333", 1);
    cr_assert_eq(nd_fsm_init(&f, s, 0, NULL), 0);
    size_t n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/a/k.ts", 5, buf);
    cr_assert_eq(nd_fsm_apply_at(&f, 1, buf, n), 0);
    n = entry(HW__RAFT_ENTRY__KIND__KIND_PUT, up3, "/a/m.ts", 5, buf);
    cr_assert_eq(nd_fsm_apply_at(&f, 2, buf, n), 0);
}

static void sweep_all(int reads)
{
    static const uint8_t up8[16] = {8};
    sweep("overwrite", prep_overwrite, HW__RAFT_ENTRY__KIND__KIND_PUT, up2, "/a/k.ts", reads);
    sweep("retried commit", prep_overwrite, HW__RAFT_ENTRY__KIND__KIND_PUT, up1, "/a/k.ts", reads);
    sweep("repair", prep_overwrite, HW__RAFT_ENTRY__KIND__KIND_PUT, up8, "/a/n.ts", reads);
    sweep("delete", prep_overwrite, HW__RAFT_ENTRY__KIND__KIND_DELETE, NULL, "/a/k.ts", reads);
    sweep("delete missing", prep_overwrite, HW__RAFT_ENTRY__KIND__KIND_DELETE, NULL, "/a/m.ts",
          reads);
}

Test(fsm, allocation_failures_at_every_point_of_an_apply)
{
    sweep_all(0);
}

/* A store read that fails (the nth point read, once) fails the apply whole: deciding on a read
 * it did not get ("no committed record", "no current version") would let this replica diverge. */
Test(fsm, a_failed_read_at_any_point_fails_the_apply_whole)
{
    sweep_all(1);
}
