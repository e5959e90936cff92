#include "object/ctx.h"

#include "access/authz.h"
#include "object/shared.h"

const struct gw_keys *gw_ctx_keys(struct gw_ctx *ctx)
{
    uint64_t gen = gw_shared_keys_gen(ctx->shared);
    if (ctx->keys == NULL || gen != ctx->keys_gen) {
        struct gw_keyset *ks = gw_shared_keys_get(ctx->shared);
        gw_keyset_unref(ctx->keys);
        ctx->keys = ks;
        ctx->keys_gen = gen;
    }
    return ctx->keys->keys;
}

int gw_ctx_authorize(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                     enum gw_access need, const char *path, enum gw_committed committed)
{
    return gw_authorize(gw_ctx_keys(ctx), c, req, need, path, committed);
}
