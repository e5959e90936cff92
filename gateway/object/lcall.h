/* A client request answered by one leader request (DELETE, LIST): the leader request's outcome
 * goes to ops->answer with the connection; an abort of the connection cancels it and calls
 * ops->gone. */
#ifndef GW_LCALL_H
#define GW_LCALL_H

#include <stdint.h>

#include "cluster/leader.h"
#include "headwater.pb-c.h"
#include "object/ctx.h"

struct gw_conn;

struct gw_lcall_ops {
    gw_lreq_build_fn build; /* called with the caller's arg */
    /* The leader request ended: answer c, then release arg. */
    void (*answer)(void *arg, struct gw_conn *c, enum gw_lreq_outcome outcome,
                   const Hw__Envelope *env);
    /* The client went away first (the leader request was cancelled): release arg. */
    void (*gone)(void *arg);
};

/* Caller storage, e.g. inside arg; private fields. */
struct gw_lcall {
    struct gw_conn *conn;
    struct gw_lreq *lreq;
    const struct gw_lcall_ops *ops;
    void *arg;
};

/* Start the leader request for c's request (its body, if any, is ignored) and become c's
 * handler. 0: exactly one of ops->answer / ops->gone runs, once, later. Else CM_ENOMEM, nothing
 * started: the caller answers c. */
int gw_lcall_start(struct gw_lcall *lc, struct gw_ctx *ctx, struct gw_conn *c, Hw__MsgType type,
                   uint32_t shard, uint64_t deadline_ms, const struct gw_lcall_ops *ops, void *arg);

#endif
