/* Node unit-test helpers (see nodetest.h). */
#include "nodetest.h"

#include <criterion/criterion.h>
#include <string.h>

#include "alloc.h"
#include "shard/fsm.h"
#include "store/meta.h"

void t_stage_at(struct nd_store *s, const uint8_t *up, const char *key, const char *bytes,
                int finished, int64_t created_ms)
{
    Hw__ObjectMeta m = HW__OBJECT_META__INIT;
    struct nd_skey k;
    struct nd_batch b;
    nd_batch_init(&b);
    nd_skey_chunk(&k, up, 0);
    nd_batch_put(&b, &k, bytes, strlen(bytes));
    m.key = (char *)key;
    m.upload_id.data = (uint8_t *)up;
    m.upload_id.len = ND_UPLOAD_ID_LEN;
    m.size = strlen(bytes);
    m.checksum = 42;
    m.local = finished;
    m.created_ms = created_ms;
    nd_skey_staged(&k, up);
    cr_assert_eq(nd_meta_put(&b, &k, &m), 0);
    cr_assert_eq(nd_store_write(s, &b, 0), 0);
    nd_batch_close(&b);
}

void t_stage(struct nd_store *s, const uint8_t *up, const char *key, const char *bytes,
             int finished)
{
    t_stage_at(s, up, key, bytes, finished, 0);
}

size_t t_entry_full(int kind, const uint8_t *up, const char *key, uint64_t size,
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
    cr_assert_leq(rb.len, 512);
    memcpy(out, rb.base, rb.len);
    cr_assert_eq(rb.len % 8, 0);
    raft_free(rb.base);
    return rb.len;
}

size_t t_entry(int kind, const uint8_t *up, const char *key, uint64_t size, uint8_t *out)
{
    return t_entry_full(kind, up, key, size, NULL, 0, 0, out);
}

size_t t_cond_put(const uint8_t *up, const char *key, const char *im, const char *inm,
                  int64_t created_ms, uint8_t *out)
{
    Hw__Precondition pc = HW__PRECONDITION__INIT;
    pc.has_if_match = im != NULL;
    pc.if_match = (char *)(im ? im : "");
    pc.has_if_none_match = inm != NULL;
    pc.if_none_match = (char *)(inm ? inm : "");
    return t_entry_full(HW__RAFT_ENTRY__KIND__KIND_PUT, up, key, 5, &pc, created_ms, 0, out);
}

Hw__ObjectMeta *t_meta_of(struct nd_store *s, uint32_t shard, const char *key)
{
    struct nd_skey k;
    Hw__ObjectMeta *m;
    nd_skey_meta(&k, shard, key, strlen(key));
    return nd_meta_get(s, &k, &m) == 0 ? m : NULL;
}

uint64_t t_version_of(struct nd_store *s, const char *key)
{
    Hw__ObjectMeta *m = t_meta_of(s, 0, key);
    uint64_t v = m ? m->version : 0;
    if (m != NULL)
        hw__object_meta__free_unpacked(m, NULL);
    return v;
}

int t_exists(struct nd_store *s, const struct nd_skey *k)
{
    char *v;
    size_t n;
    if (nd_store_get(s, k, &v, &n) != 0)
        return 0;
    cm_free(v);
    return 1;
}

int t_staged_exists(struct nd_store *s, const uint8_t *up)
{
    struct nd_skey k;
    nd_skey_staged(&k, up);
    return t_exists(s, &k);
}

int t_chunk_exists(struct nd_store *s, const uint8_t *up)
{
    struct nd_skey k;
    nd_skey_chunk(&k, up, 0);
    return t_exists(s, &k);
}

int t_marker_exists(struct nd_store *s, const char *key)
{
    struct nd_skey k;
    nd_skey_repair(&k, 0, key, strlen(key));
    return t_exists(s, &k);
}
