/* The gateway context: one loop's listeners, node pool and cluster view. Handlers (put, get,
 * delete, admin) receive it; nothing here is a process global, so a test can host several. */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "gwconfig.h"

struct gw_upstream;
struct gw_cluster;
struct gw_server;

struct gw_ctx {
    uv_loop_t *loop;
    const struct gw_config *cfg; /* borrowed, immutable */
    struct gw_upstream *up;
    struct gw_cluster *cluster;
    struct gw_server *data;
    struct gw_server *admin;
    int stopping;
};

#define GW_CTX_ADMIN 1u     /* also serve the admin port */
#define GW_CTX_REUSEPORT 2u /* data port shared with other loops (SO_REUSEPORT) */

/* Listen (data port, admin port with GW_CTX_ADMIN) and start polling the cluster. On failure
 * everything started is closed again (run the loop to let close callbacks finish). */
int gw_ctx_start(struct gw_ctx *ctx, uv_loop_t *loop, const struct gw_config *cfg, unsigned flags,
                 char *errmsg, size_t errlen);
/* Stop listening, abort in-flight requests, close node connections. Idempotent. The loop then
 * ends by itself once every handle is closed. */
void gw_ctx_stop(struct gw_ctx *ctx);

#endif
