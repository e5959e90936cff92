/* Context: data + admin listeners, node pool, cluster poller; request routing on the data
 * port. Stop order: listeners (aborting requests, which release node connections) -> cluster
 * poller -> pool. */
#include "gateway.h"

#include <string.h>

#include "admin.h"
#include "cluster.h"
#include "err.h"
#include "get.h"
#include "key.h"
#include "log.h"
#include "put.h"
#include "server.h"
#include "upstream.h"

static void route_data(void *arg, struct gw_conn *c, struct gw_http_req *req)
{
    struct gw_ctx *ctx = arg;
    char key[GW_KEY_MAX + 1];
    size_t keylen = 0;
    const char *why = "";
    int is_write = req->method == HTTP_PUT || req->method == HTTP_POST;
    enum gw_committed committed = is_write ? GW_COMMITTED_FALSE : GW_COMMITTED_OMIT;
    if (req->header_overflow) {
        gw_conn_error(c, 400, "bad_request", "header value too long", committed);
        return;
    }
    if (req->url_overflow) {
        gw_conn_error(c, 400, "bad_key", "key longer than 1024 bytes", committed);
        return;
    }
    if (gw_key_normalize(req->url.p ? req->url.p : "", req->url.len, key, sizeof(key), &keylen,
                         &why) != 0) {
        gw_conn_error(c, 400, "bad_key", why, committed);
        return;
    }
    switch (req->method) {
    case HTTP_PUT:
    case HTTP_POST:
        gw_put_start(ctx, c, req, key, keylen);
        return;
    case HTTP_GET:
    case HTTP_HEAD:
        gw_get_start(ctx, c, req, key, keylen);
        return;
    case HTTP_DELETE:
        gw_delete_start(ctx, c, key, keylen);
        return;
    default:
        gw_conn_error(c, 405, "bad_request", "method not allowed", GW_COMMITTED_OMIT);
        return;
    }
}

int gw_ctx_start(struct gw_ctx *ctx, uv_loop_t *loop, const struct gw_config *cfg, unsigned flags,
                 char *errmsg, size_t errlen)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->loop = loop;
    ctx->cfg = cfg;
    int rv = gw_upstream_new(loop, &ctx->up);
    if (rv != 0) {
        snprintf(errmsg, errlen, "node pool: %s", cm_strerror(rv));
        return rv;
    }
    rv = gw_cluster_new(loop, ctx->up, cfg, &ctx->cluster);
    if (rv != 0) {
        snprintf(errmsg, errlen, "cluster view: %s", cm_strerror(rv));
        goto err_after_upstream;
    }
    rv = gw_server_listen(loop, cfg->listen, "data", (flags & GW_CTX_REUSEPORT) != 0, route_data,
                          ctx, &ctx->data, errmsg, errlen);
    if (rv != 0)
        goto err_after_cluster;
    if (flags & GW_CTX_ADMIN) {
        rv = gw_server_listen(loop, cfg->admin_listen, "admin", 0, gw_admin_route, ctx, &ctx->admin,
                              errmsg, errlen);
        if (rv != 0)
            goto err_after_data;
        CM_INFO("msg=\"gateway listening\" data=%s admin=%s nodes=%s", cfg->listen,
                cfg->admin_listen, cfg->nodes);
    }
    return 0;

err_after_data:
    gw_server_close(ctx->data);
    ctx->data = NULL;
err_after_cluster:
    gw_cluster_close(ctx->cluster);
    ctx->cluster = NULL;
err_after_upstream:
    gw_upstream_close(ctx->up);
    ctx->up = NULL;
    ctx->stopping = 1;
    return rv;
}

void gw_ctx_stop(struct gw_ctx *ctx)
{
    if (ctx->stopping)
        return;
    ctx->stopping = 1;
    if (ctx->admin != NULL)
        gw_server_close(ctx->admin);
    if (ctx->data != NULL)
        gw_server_close(ctx->data);
    if (ctx->cluster != NULL)
        gw_cluster_close(ctx->cluster);
    if (ctx->up != NULL)
        gw_upstream_close(ctx->up);
    ctx->admin = ctx->data = NULL;
    ctx->cluster = NULL;
    ctx->up = NULL;
}
