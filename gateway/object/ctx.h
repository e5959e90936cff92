/* The gateway context of one event loop: its listeners, node pool and cluster view, the
 * process-wide shared state and this loop's counters. Handlers (put, get, delete, list, admin)
 * receive it; nothing here is a process global, so a test can host several. Started and
 * stopped by gateway.h. */
#ifndef GW_CTX_H
#define GW_CTX_H

#include <stdint.h>
#include <uv.h>

#include "access/authkeys.h"
#include "core/gwconfig.h"
#include "core/metrics.h"
#include "http/http.h"

struct gw_upstream;
struct gw_cluster;
struct gw_watch;
struct gw_server;
struct gw_cache_port;
struct gw_shared;
struct gw_keyset;
struct gw_keys;
struct gw_conn;
struct gw_holds;

#define GW_FULL_NODES_MAX 16      /* nodes remembered as full per loop */
#define GW_FULL_REMEMBER_MS 1000u /* how long an upload leaves a full node out */

struct gw_ctx {
    uv_loop_t *loop;
    const struct gw_config *cfg; /* borrowed, immutable */
    struct gw_upstream *up;
    struct gw_cluster *cluster;
    struct gw_watch *watch; /* the process's commit watch, on the loop with the admin port */
    struct gw_server *data;
    struct gw_server *admin;
    struct gw_server *tls;      /* --tls-listen */
    struct gw_shared *shared;   /* ref: process-wide state (shared.h): TLS, keys, cache, ... */
    struct gw_metrics *metrics; /* this loop's counters: GW_METRIC_ADD(ctx->metrics, f, n) */
    struct gw_keyset *keys;     /* ref: this loop's keys snapshot */
    uint64_t keys_gen;
    int stopping;
    struct gw_cache_port *cport; /* this loop's wakeups from the shared cache (cache.h) */
    struct gw_holds *holds;      /* this loop's parked playlist requests (live/hold.h) */
    uint64_t meta_warn_ms;       /* last "stored metadata not printable" line (get.c) */
    uint64_t meta_warned;        /* answers with replaced metadata since then */
    /* Nodes that answered a STAGE/FINISH with NO_SPACE lately: uploads on this loop leave
     * them out until until_ms (put.c), then try them again. */
    struct gw_full_node {
        uint32_t id;
        uint64_t until_ms; /* cm_mono_ms(); 0 = free slot */
    } full_nodes[GW_FULL_NODES_MAX];
};

#define GW_META_WARN_MS 10000u

/* The current access keys (NULL = no keys file: everything open). Borrowed until the next call
 * on this loop. */
const struct gw_keys *gw_ctx_keys(struct gw_ctx *ctx);
/* Access control for one request (access/authz.h) with this loop's keys: 0 = go ahead, else
 * the 401 / 403 answer has been given. */
int gw_ctx_authorize(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                     enum gw_access need, const char *path, enum gw_committed committed);

#endif
