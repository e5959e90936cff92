/* COMMIT / DELETE / READ_INDEX handlers: leader-side requests through the shard's Raft log
 * (see write.c). */
#ifndef ND_OPS_WRITE_H
#define ND_OPS_WRITE_H

#include "host/host.h"
#include "rpc/server.h"

void nd_op_commit(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                  const struct cm_slice *pl);
void nd_op_delete(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                  const struct cm_slice *pl);
void nd_op_read_index(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                      const struct cm_slice *pl);

#endif
