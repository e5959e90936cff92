/* Client-bound leader requests.
 *
 * Happy path: gw_lcall_start -> leader request (cluster/leader.h) -> lcall_done -> handler
 *   cleared -> ops->answer answers the connection.
 * Failures: the leader request's timeouts reach ops->answer as outcomes.
 * Close: the connection aborting first cancels the leader request and calls ops->gone. */
#include "object/lcall.h"

#include "http/server.h"

static void lcall_build(void *arg, Hw__Envelope *env)
{
    struct gw_lcall *lc = arg;
    lc->ops->build(lc->arg, env);
}

static void lcall_done(void *arg, enum gw_lreq_outcome outcome, const Hw__Envelope *env)
{
    struct gw_lcall *lc = arg;
    lc->lreq = NULL;
    /* answering may fail and close the connection: its abort must not free lc a second time */
    gw_conn_set_handler(lc->conn, NULL, NULL);
    lc->ops->answer(lc->arg, lc->conn, outcome, env); /* may free lc */
}

static void lcall_body(void *h, const struct cm_slice *piece)
{
}

static void lcall_nop(void *h)
{
}

static void lcall_abort(void *h)
{
    struct gw_lcall *lc = h;
    gw_lreq_cancel(lc->lreq);
    lc->lreq = NULL;
    lc->ops->gone(lc->arg); /* may free lc */
}

static const struct gw_handler_ops lcall_handler = {lcall_body, lcall_nop, lcall_nop, lcall_nop,
                                                    lcall_abort};

int gw_lcall_start(struct gw_lcall *lc, struct gw_ctx *ctx, struct gw_conn *c, Hw__MsgType type,
                   uint32_t shard, uint64_t deadline_ms, const struct gw_lcall_ops *ops, void *arg)
{
    lc->conn = c;
    lc->ops = ops;
    lc->arg = arg;
    struct gw_lreq_via via = {ctx->loop, ctx->up, ctx->cluster};
    int rv = gw_lreq_start(&via, type, shard, deadline_ms, lcall_build, lcall_done, lc, &lc->lreq);
    if (rv != 0)
        return rv;
    gw_conn_set_handler(c, &lcall_handler, lc);
    return 0;
}
