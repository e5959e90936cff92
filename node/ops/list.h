/* LIST handler (see list.c). */
#ifndef ND_OPS_LIST_H
#define ND_OPS_LIST_H

#include "host/host.h"
#include "rpc/server.h"

void nd_op_list(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env, const struct cm_slice *pl);

#endif
