#include "access/authz.h"

#include <stddef.h>

#include "http/server.h"

/* The request's key: Authorization: Bearer, else ?token=. */
static void request_token(const struct gw_http_req *req, const char **tok, size_t *len)
{
    *tok = NULL;
    *len = 0;
    if (gw_http_bearer(gw_http_header_str(req, GW_H_AUTHORIZATION), tok, len))
        return;
    if (req->url.p != NULL)
        gw_http_query_param(req->url.p, "token", tok, len);
}

int gw_authorize(const struct gw_keys *k, struct gw_conn *c, const struct gw_http_req *req,
                 enum gw_access need, const char *path, enum gw_committed committed)
{
    if (k == NULL)
        return 0;
    const char *tok;
    size_t toklen;
    request_token(req, &tok, &toklen);
    enum gw_auth a = gw_keys_check(k, need, path, tok, toklen);
    if (a == GW_AUTH_MISSING)
        gw_conn_error(c, 401, "unauthorized", "an access key is required", committed);
    else if (a == GW_AUTH_FORBIDDEN)
        gw_conn_error(c, 403, "forbidden", "this key does not allow that here", committed);
    return a == GW_AUTH_OK ? 0 : -1;
}
