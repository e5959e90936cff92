/* GET / HEAD / FETCH handlers (see read.c). */
#ifndef ND_OPS_READ_H
#define ND_OPS_READ_H

#include "host/host.h"
#include "rpc/server.h"

void nd_op_get(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env, const struct cm_slice *pl);
void nd_op_head(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env, const struct cm_slice *pl);
void nd_op_fetch(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                 const struct cm_slice *pl);

#endif
