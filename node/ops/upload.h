/* STAGE / FINISH handlers: the fan-out target of the write path (see upload.c). */
#ifndef ND_OPS_UPLOAD_H
#define ND_OPS_UPLOAD_H

#include "host/host.h"
#include "rpc/server.h"

void nd_op_stage(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                 const struct cm_slice *pl);
void nd_op_finish(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                  const struct cm_slice *pl);
/* The RPC server's on_conn_closed hook: the connection's unfinished uploads are dropped. */
void nd_op_conn_closed(void *ctx, struct nd_sconn *sc);

#endif
