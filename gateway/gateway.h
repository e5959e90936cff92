/* Starting and stopping one loop's gateway context (object/ctx.h): listeners, node pool, cluster
 * poller, and the routing of data-port requests to the handlers. */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/gwconfig.h"
#include "object/ctx.h"

#define GW_CTX_ADMIN 1u     /* also serve the admin port */
#define GW_CTX_REUSEPORT 2u /* data port shared with other loops (SO_REUSEPORT) */
#define GW_CTX_WATCH 4u     /* run the process's commit watch here (also implied by ADMIN) */

/* Listen (data port, admin port with GW_CTX_ADMIN) and start polling the cluster. On failure
 * everything started is closed again (run the loop to let close callbacks finish). */
int gw_ctx_start(struct gw_ctx *ctx, uv_loop_t *loop, const struct gw_config *cfg, unsigned flags,
                 char *errmsg, size_t errlen);
/* The same with the gateway-wide shared state (workers: one struct for every loop; takes a ref).
 * gw_ctx_start makes a private one from cfg (rules, cache, TLS certificate, keys file). */
int gw_ctx_start_shared(struct gw_ctx *ctx, uv_loop_t *loop, const struct gw_config *cfg,
                        struct gw_shared *sh, unsigned flags, char *errmsg, size_t errlen);
/* Stop listening, abort in-flight requests, close node connections. Idempotent. The loop then
 * ends by itself once every handle is closed. */
void gw_ctx_stop(struct gw_ctx *ctx);

#endif
