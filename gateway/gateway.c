/* Context: data + admin listeners, node pool, cluster poller; request routing on the data
 * port. Stop order: listeners (aborting requests, which release node connections) -> cluster
 * poller -> pool. */
#include "gateway.h"

#include <string.h>

#include "admin/admin.h"
#include "object/cache.h"
#include "cluster/cluster.h"
#include "http/cors.h"
#include "err.h"
#include "object/ctx.h"
#include "object/delete.h"
#include "object/get.h"
#include "live/hold.h"
#include "object/list.h"
#include "access/key.h"
#include "log.h"
#include "object/put.h"
#include "http/server.h"
#include "object/shared.h"
#include "cluster/upstream.h"
#include "cluster/watch.h"
#include "object/wake.h"

/* OPTIONS: a CORS preflight (Origin + Access-Control-Request-Method) or a plain Allow answer. */
static void route_options(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req)
{
    struct cm_sbuf h;
    cm_sbuf_init(&h);
    cm_sbuf_puts(&h, "Allow: " GW_CORS_METHODS "\r\n");
    size_t olen, mlen;
    const char *origin = gw_http_header(req, GW_H_ORIGIN, &olen);
    gw_http_header(req, GW_H_ACR_METHOD, &mlen);
    if (olen > 0 && mlen > 0) /* values are NUL-terminated in place */
        gw_cors_preflight(gw_shared_cors(ctx->shared), origin,
                          gw_http_header_str(req, GW_H_ACR_HEADERS),
                          gw_cors_write_ok(gw_shared_cors_write(ctx->shared), origin), &h);
    if (h.oom)
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_OMIT);
    else
        gw_conn_respond(c, 204, NULL, h.p, NULL, 0);
    cm_sbuf_free(&h);
}

/* GET /prefix/?list is a listing, not a read of the key. */
static int is_listing(const struct gw_http_req *req)
{
    char flag[8];
    return gw_query_param(req->url.p ? req->url.p : "", "list", flag, sizeof(flag)) != 0;
}

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
    if (req->method == HTTP_OPTIONS) {
        route_options(ctx, c, req);
        return;
    }
    if (gw_key_normalize(req->url.p ? req->url.p : "", req->url.len, key, sizeof(key), &keylen,
                         &why) != 0) {
        gw_conn_error(c, 400, "bad_key", why, committed);
        return;
    }
    int read = req->method == HTTP_GET || req->method == HTTP_HEAD;
    /* a page of another origin may not write (a CORS "simple" POST needs no preflight) */
    if ((is_write || req->method == HTTP_DELETE) &&
        !gw_cors_write_ok(gw_shared_cors_write(ctx->shared),
                          gw_http_header_str(req, GW_H_ORIGIN))) {
        gw_conn_error(c, 403, "forbidden",
                      "cross-origin writes from this Origin are not allowed (--cors-write-origins)",
                      committed);
        return;
    }
    if ((read || is_write || req->method == HTTP_DELETE) &&
        gw_ctx_authorize(ctx, c, req, read ? GW_ACCESS_READ : GW_ACCESS_WRITE, key, committed) != 0)
        return;
    switch (req->method) {
    case HTTP_PUT:
    case HTTP_POST:
        gw_put_start(ctx, c, req, key, keylen);
        return;
    case HTTP_GET:
        if (is_listing(req)) {
            gw_list_start(ctx, c, req, key, keylen);
            return;
        }
        /* fallthrough */
    case HTTP_HEAD:
        if (gw_key_is_playlist(key) && gw_hold_wanted(req))
            gw_hold_start(ctx, c, req, key, keylen); /* LL-HLS delivery directives */
        else
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
    struct gw_shared *sh;
    int rv = gw_shared_new(cfg, &sh, errmsg, errlen);
    if (rv != 0) {
        memset(ctx, 0, sizeof(*ctx));
        ctx->stopping = 1;
        return rv;
    }
    /* A private shared state is a gateway of its own: it keeps its own lease. */
    rv = gw_ctx_start_shared(ctx, loop, cfg, sh, flags | GW_CTX_WATCH, errmsg, errlen);
    gw_shared_unref(sh);
    return rv;
}

static void release_shared(void *arg)
{
    gw_shared_unref(arg);
}

/* A server borrows from the shared state until it has freed itself: it holds a ref. */
static int listen_one(struct gw_ctx *ctx, const char *addr, struct gw_server_opts *o,
                      gw_route_fn route, struct gw_server **out, char *errmsg, size_t errlen)
{
    o->on_free = release_shared;
    o->on_free_arg = gw_shared_ref(ctx->shared);
    int rv = gw_server_listen(ctx->loop, addr, o, route, ctx, out, errmsg, errlen);
    if (rv == CM_EINVAL || rv == CM_ENOMEM) /* failed before the server existed */
        gw_shared_unref(ctx->shared);
    return rv;
}

static int listen_data(struct gw_ctx *ctx, unsigned flags, char *errmsg, size_t errlen)
{
    const struct gw_config *cfg = ctx->cfg;
    struct gw_server_opts o = {
        .name = "data",
        .reuseport = (flags & GW_CTX_REUSEPORT) != 0,
        .cfg = cfg,
        .cors = gw_shared_cors(ctx->shared),
        .metrics = ctx->metrics,
        .open_conns = gw_shared_open_conns(ctx->shared),
        .budget = gw_shared_budget(ctx->shared),
        .access_log = cfg->access_log,
        .nosniff = 1,
    };
    int rv = listen_one(ctx, cfg->listen, &o, route_data, &ctx->data, errmsg, errlen);
    if (rv != 0 || cfg->tls_listen == NULL)
        return rv;
    o.name = "https";
    o.tls = gw_shared_tls(ctx->shared);
    rv = listen_one(ctx, cfg->tls_listen, &o, route_data, &ctx->tls, errmsg, errlen);
    if (rv != 0) {
        gw_server_close(ctx->data);
        ctx->data = NULL;
    }
    return rv;
}

/* Commit watch hooks: an applied write drops the key from the hot-object cache; missed events
 * drop everything. */
static void watch_invalidate(void *arg, const char *key, uint64_t index)
{
    struct gw_cache *c = gw_shared_cache(arg);
    if (c != NULL)
        gw_cache_invalidate_at(c, key, index);
}

static void watch_reset(void *arg, uint64_t index)
{
    struct gw_cache *c = gw_shared_cache(arg);
    if (c != NULL)
        gw_cache_clear_at(c, index);
}

static void watch_applied(void *arg, const char *key, uint64_t index)
{
    gw_wake_bus_post(gw_shared_wakes(arg), key, index);
}

int gw_ctx_start_shared(struct gw_ctx *ctx, uv_loop_t *loop, const struct gw_config *cfg,
                        struct gw_shared *sh, unsigned flags, char *errmsg, size_t errlen)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->loop = loop;
    ctx->cfg = cfg;
    ctx->shared = gw_shared_ref(sh);
    ctx->metrics = gw_shared_metrics(sh);
    int rv = gw_upstream_new(loop, gw_shared_auth(sh), &ctx->up);
    if (rv != 0) {
        snprintf(errmsg, errlen, "node pool: %s", cm_strerror(rv));
        goto err_after_shared;
    }
    rv = gw_cluster_new(loop, ctx->up, cfg, &ctx->cluster);
    if (rv != 0) {
        snprintf(errmsg, errlen, "cluster view: %s", cm_strerror(rv));
        goto err_after_upstream;
    }
    gw_cluster_set_live(ctx->cluster, &gw_shared_coh(sh)->live);
    if (flags & (GW_CTX_ADMIN | GW_CTX_WATCH)) {
        struct gw_watch_hooks hooks = {watch_invalidate, watch_reset, watch_applied, ctx->shared};
        rv = gw_watch_start(loop, ctx->up, ctx->cluster, gw_shared_coh(sh), &hooks, &ctx->watch);
        if (rv != 0) {
            snprintf(errmsg, errlen, "commit watch: %s", cm_strerror(rv));
            goto err_after_cluster;
        }
    }
    rv = listen_data(ctx, flags, errmsg, errlen);
    if (rv != 0)
        goto err_after_cluster;
    if (flags & GW_CTX_ADMIN) {
        struct gw_server_opts o = {.name = "admin",
                                   .cfg = gw_shared_admin_cfg(ctx->shared),
                                   .open_conns = gw_shared_admin_conns(ctx->shared)};
        rv = listen_one(ctx, cfg->admin_listen, &o, gw_admin_route, &ctx->admin, errmsg, errlen);
        if (rv != 0)
            goto err_after_data;
        CM_INFO("msg=\"gateway listening\" data=%s https=%s admin=%s nodes=%s keys=%s", cfg->listen,
                cfg->tls_listen ? cfg->tls_listen : "-", cfg->admin_listen, cfg->nodes,
                cfg->keys ? cfg->keys : "-");
    }
    return 0;

err_after_data:
    gw_server_close(ctx->data);
    ctx->data = NULL;
    if (ctx->tls != NULL)
        gw_server_close(ctx->tls);
    ctx->tls = NULL;
err_after_cluster:
    gw_watch_stop(ctx->watch);
    ctx->watch = NULL;
    gw_cluster_close(ctx->cluster);
    ctx->cluster = NULL;
err_after_upstream:
    gw_upstream_close(ctx->up);
    ctx->up = NULL;
err_after_shared:
    gw_shared_unref(ctx->shared);
    ctx->shared = NULL;
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
    if (ctx->tls != NULL)
        gw_server_close(ctx->tls);
    gw_holds_close(ctx->holds); /* after the servers: every parked request was aborted */
    ctx->holds = NULL;
    gw_cache_port_close(ctx->cport); /* after the servers: their reads cancelled their waits */
    ctx->cport = NULL;
    gw_watch_stop(ctx->watch); /* before the pool: it owns pooled connections */
    ctx->watch = NULL;
    if (ctx->cluster != NULL)
        gw_cluster_close(ctx->cluster);
    if (ctx->up != NULL)
        gw_upstream_close(ctx->up);
    ctx->admin = ctx->data = ctx->tls = NULL;
    gw_keyset_unref(ctx->keys);
    ctx->keys = NULL;
    gw_shared_unref(ctx->shared); /* the servers hold their own refs until they are freed */
    ctx->shared = NULL;
    ctx->cluster = NULL;
    ctx->up = NULL;
}
