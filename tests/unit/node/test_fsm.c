/* Shard state machine over a real RocksDB store in a temp dir: apply idempotence, retried
 * commits, promotion of staged uploads, repair markers, snapshot round trip, preconditions
 * decided at apply. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsm.h"
#include "store.h"

static char dir[] = "/tmp/hw-fsm-XXXXXX";
static struct nd_store store;
static struct nd_fsm fsm;

static void setup(void)
{
    char err[256];
    strcpy(dir, "/tmp/hw-fsm-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(nd_store_open(dir, &store, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(nd_fsm_init(&fsm, &store, 0, NULL), 0);
}

static void teardown(void)
{
    char cmd[128];
    nd_store_close(&store);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(fsm, .init = setup, .fini = teardown);

static void stage(const uint8_t *up, const char *key, const char *bytes, int finished)
{
    Hw__ObjectMeta m = HW__OBJECT_META__INIT;
    struct nd_skey k;
    char *v;
    size_t n;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    nd_skey_chunk(&k, up, 0);
    nd_batch_put(b, &k, bytes, strlen(bytes));
    m.key = (char *)key;
    m.upload_id.data = (uint8_t *)up;
    m.upload_id.len = ND_UPLOAD_ID_LEN;
    m.size = strlen(bytes);
    m.checksum = 42;
    m.local = finished;
    cr_assert_eq(nd_meta_pack(&m, &v, &n), 0);
    nd_skey_staged(&k, up);
    nd_batch_put(b, &k, v, n);
    free(v);
    cr_assert_eq(nd_store_write(&store, b, 0), 0);
    rocksdb_writebatch_destroy(b);
}

/* A PUT/DELETE entry; pc: the PUT's precondition (NULL = none); created_ms / expires_ms as the
 * leader would set them. */
static size_t entry_full(int kind, const uint8_t *up, const char *key, uint64_t size,
                         Hw__Precondition *pc, int64_t created_ms, int64_t expires_ms, uint8_t *out)
{
    Hw__RaftEntry e = HW__RAFT_ENTRY__INIT;
    Hw__ObjectMeta m = HW__OBJECT_META__INIT;
    uint32_t holders[] = {1, 2};
    e.kind = kind;
    e.meta = &m;
    e.precondition = pc;
    m.created_ms = created_ms;
    m.expires_ms = expires_ms;
    m.key = (char *)key;
    if (up != NULL) {
        m.upload_id.data = (uint8_t *)up;
        m.upload_id.len = ND_UPLOAD_ID_LEN;
    }
    m.size = size;
    m.checksum = 42;
    m.n_holders = 2;
    m.holders = holders;
    struct raft_buffer rb;
    cr_assert_eq(nd_fsm_encode(&e, &rb), 0);
    memcpy(out, rb.base, rb.len);
    cr_assert_eq(rb.len % 8, 0);
    raft_free(rb.base);
    return rb.len;
}

static size_t entry(int kind, const uint8_t *up, const char *key, uint64_t size, uint8_t *out)
{
    return entry_full(kind, up, key, size, NULL, 0, 0, out);
}

/* A PUT whose precondition carries If-Match im / If-None-Match inm (NULL = header absent). */
static size_t cond_put(const uint8_t *up, const char *key, const char *im, const char *inm,
                       int64_t created_ms, uint8_t *out)
{
    Hw__Precondition pc = HW__PRECONDITION__INIT;
    pc.has_if_match = im != NULL;
    pc.if_match = (char *)(im ? im : "");
    pc.has_if_none_match = inm != NULL;
    pc.if_none_match = (char *)(inm ? inm : "");
    return entry_full(HW__RAFT_ENTRY__KIND__KIND_PUT, up, key, 5, &pc, created_ms, 0, out);
}

static Hw__ObjectMeta *meta_of(const char *key)
{
    struct nd_skey k;
    char *v;
    size_t n;
    nd_skey_meta(&k, 0, key, strlen(key));
    if (nd_store_get(&store, &k, &v, &n) != 0)
        return NULL;
    Hw__ObjectMeta *m = nd_meta_unpack(v, n);
    rocksdb_free(v);
    return m;
}

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
    /* A retried commit of the same upload at a later index: same version, not created. */
    cr_assert_eq(nd_fsm_apply_at(&fsm, 6, buf, n), 0);
    cr_assert_eq(fsm.result.version, 5);
    cr_assert_eq(fsm.result.created, 0);
    m = meta_of("/live/a.ts");
    cr_assert_eq(m->version, 5);
    hw__object_meta__free_unpacked(m, NULL);
    cr_assert_eq(fsm.applied, 6);
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

static uint64_t version_of(const char *key)
{
    Hw__ObjectMeta *m = meta_of(key);
    uint64_t v = m ? m->version : 0;
    if (m != NULL)
        hw__object_meta__free_unpacked(m, NULL);
    return v;
}

static int staged_exists(const uint8_t *up)
{
    struct nd_skey k;
    char *v;
    size_t n;
    nd_skey_staged(&k, up);
    if (nd_store_get(&store, &k, &v, &n) != 0)
        return 0;
    rocksdb_free(v);
    return 1;
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
