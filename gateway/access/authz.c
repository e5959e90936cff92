#include "access/authz.h"

#include <stddef.h>

#include "http/server.h"

void gw_authz_token(const struct gw_http_req *req, struct gw_authz_token *out)
{
    out->p = NULL;
    out->len = 0;
    out->from_query = 0;
    if (gw_http_bearer(gw_http_header_str(req, GW_H_AUTHORIZATION), &out->p, &out->len))
        return;
    if (req->url.p != NULL && gw_http_query_param(req->url.p, "token", &out->p, &out->len))
        out->from_query = 1;
}

static int query_write_key(const struct gw_keys *k, const struct gw_authz_token *t)
{
    return t->from_query && gw_keys_is_write(k, t->p, t->len);
}

enum gw_auth gw_authz_check(const struct gw_keys *k, enum gw_access need, const char *path,
                            const struct gw_authz_token *t)
{
    if (k == NULL)
        return GW_AUTH_OK;
    if (query_write_key(k, t))
        return GW_AUTH_FORBIDDEN;
    return gw_keys_check(k, need, path, t->p, t->len);
}

int gw_authorize(const struct gw_keys *k, struct gw_conn *c, const struct gw_http_req *req,
                 enum gw_access need, const char *path, enum gw_committed committed)
{
    if (k == NULL)
        return 0;
    struct gw_authz_token t;
    gw_authz_token(req, &t);
    if (query_write_key(k, &t)) {
        gw_conn_error(c, 403, "forbidden",
                      "write keys are not accepted in ?token= (URLs end up in logs and caches): "
                      "send Authorization: Bearer",
                      committed);
        return -1;
    }
    enum gw_auth a = gw_keys_check(k, need, path, t.p, t.len);
    if (a == GW_AUTH_MISSING)
        gw_conn_error(c, 401, "unauthorized", "an access key is required", committed);
    else if (a == GW_AUTH_FORBIDDEN)
        gw_conn_error(c, 403, "forbidden", "this key does not allow that here", committed);
    return a == GW_AUTH_OK ? 0 : -1;
}
