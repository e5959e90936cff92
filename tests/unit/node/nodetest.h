/* Helpers shared by the node unit tests: staged uploads, raft entries and lookups over any
 * store (usually the in-memory one). */
#ifndef ND_TEST_NODETEST_H
#define ND_TEST_NODETEST_H

#include <stddef.h>
#include <stdint.h>

#include "alloc.h"
#include "headwater.pb-c.h"
#include "rpc/req.h"
#include "store/store.h"

/* A route handler wrap_<op> that runs nd_op_<op> with allocations failing after `fail`
 * (a long the test sets; -1 = none), and never the test's own allocations. */
#define ND_TEST_WRAP(op, fail)                                                                     \
    static void wrap_##op(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,                 \
                          const struct cm_slice *pl)                                               \
    {                                                                                              \
        cm_alloc_fail_after(fail);                                                                 \
        nd_op_##op(ctx, sc, env, pl);                                                              \
        cm_alloc_fail_after(-1);                                                                   \
    }

/* Stage bytes as upload up of key (finished: as FINISH leaves it), checksum 42. */
void t_stage(struct nd_store *s, const uint8_t *up, const char *key, const char *bytes,
             int finished);
/* Stage with an explicit created_ms (GC tests). */
void t_stage_at(struct nd_store *s, const uint8_t *up, const char *key, const char *bytes,
                int finished, int64_t created_ms);
/* Encode an entry into out (>= 512 bytes); pc: a PUT's precondition (NULL = none). */
size_t t_entry_full(int kind, const uint8_t *up, const char *key, uint64_t size,
                    Hw__Precondition *pc, int64_t created_ms, int64_t expires_ms, uint8_t *out);
size_t t_entry(int kind, const uint8_t *up, const char *key, uint64_t size, uint8_t *out);
/* A PUT whose precondition carries If-Match im / If-None-Match inm (NULL = header absent). */
size_t t_cond_put(const uint8_t *up, const char *key, const char *im, const char *inm,
                  int64_t created_ms, uint8_t *out);
Hw__ObjectMeta *t_meta_of(struct nd_store *s, uint32_t shard, const char *key);
uint64_t t_version_of(struct nd_store *s, const char *key); /* 0: absent */
int t_exists(struct nd_store *s, const struct nd_skey *k);
int t_staged_exists(struct nd_store *s, const uint8_t *up);
int t_chunk_exists(struct nd_store *s, const uint8_t *up);
int t_marker_exists(struct nd_store *s, const char *key);

#endif
