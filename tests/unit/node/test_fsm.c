/* Shard state machine over a real RocksDB store in a temp dir: apply idempotence, retried
 * commits, promotion of staged uploads, repair markers, snapshot round trip. */
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

static size_t entry(int kind, const uint8_t *up, const char *key, uint64_t size, uint8_t *out)
{
    Hw__RaftEntry e = HW__RAFT_ENTRY__INIT;
    Hw__ObjectMeta m = HW__OBJECT_META__INIT;
    uint32_t holders[] = {1, 2};
    e.kind = kind;
    e.meta = &m;
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
