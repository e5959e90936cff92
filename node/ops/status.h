/* STATUS handler: the cluster map as this node knows it and its shards' Raft state. */
#ifndef ND_OPS_STATUS_H
#define ND_OPS_STATUS_H

#include "host/host.h"
#include "rpc/server.h"

void nd_op_status(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                  const struct cm_slice *pl);

#endif
