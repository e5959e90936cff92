/* The gateway context: one loop's listeners, node pool and cluster view. Handlers (put, get,
 * delete, admin) receive it; nothing here is a process global, so a test can host several. */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "authkeys.h"
#include "gwconfig.h"
#include "http.h"
#include "metrics.h"

struct gw_upstream;
struct gw_cluster;
struct gw_server;
struct gw_cache_port;
struct gw_shared;
struct gw_keyset;
struct gw_keys;
struct gw_conn;

struct gw_ctx {
    uv_loop_t *loop;
    const struct gw_config *cfg; /* borrowed, immutable */
    struct gw_upstream *up;
    struct gw_cluster *cluster;
    struct gw_server *data;
    struct gw_server *admin;
    struct gw_server *tls;      /* --tls-listen */
    struct gw_shared *shared;   /* ref: process-wide state (shared.h): TLS, keys, cache, ... */
    struct gw_metrics *metrics; /* this loop's counters: GW_METRIC_ADD(ctx->metrics, f, n) */
    struct gw_keyset *keys;     /* ref: this loop's keys snapshot */
    uint64_t keys_gen;
    int stopping;
    struct gw_cache_port *cport; /* this loop's wakeups from the shared cache (cache.h) */
};

#define GW_CTX_ADMIN 1u     /* also serve the admin port */
#define GW_CTX_REUSEPORT 2u /* data port shared with other loops (SO_REUSEPORT) */

/* Listen (data port, admin port with GW_CTX_ADMIN) and start polling the cluster. On failure
 * everything started is closed again (run the loop to let close callbacks finish). */
int gw_ctx_start(struct gw_ctx *ctx, uv_loop_t *loop, const struct gw_config *cfg, unsigned flags,
                 char *errmsg, size_t errlen);
/* The same with the gateway-wide shared state (workers: one struct for every loop; takes a ref).
 * gw_ctx_start makes a private one from cfg (rules, cache, TLS certificate, keys file). */
int gw_ctx_start_shared(struct gw_ctx *ctx, uv_loop_t *loop, const struct gw_config *cfg,
                        struct gw_shared *sh, unsigned flags, char *errmsg, size_t errlen);
/* The current access keys (NULL = no keys file: everything open). Borrowed until the next call
 * on this loop. */
const struct gw_keys *gw_ctx_keys(struct gw_ctx *ctx);
/* Access control for one request (token from Authorization: Bearer or ?token=): 0 = go ahead,
 * else the 401 (missing key, with WWW-Authenticate: Bearer) / 403 answer has been given. */
int gw_ctx_authorize(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                     enum gw_access need, const char *path, enum gw_committed committed);
/* Stop listening, abort in-flight requests, close node connections. Idempotent. The loop then
 * ends by itself once every handle is closed. */
void gw_ctx_stop(struct gw_ctx *ctx);

#endif
