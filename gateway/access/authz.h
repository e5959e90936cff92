/* Authorization of one request against the access keys (authkeys.h): the request's key comes
 * from "Authorization: Bearer <key>", else from the `token` query parameter. */
#ifndef GW_AUTHZ_H
#define GW_AUTHZ_H

#include "access/authkeys.h"
#include "http/http.h"

struct gw_conn;

/* 0 = go ahead (also when keys is NULL: no keys file); else the 401 (no key) / 403 answer has
 * been given on c. */
int gw_authorize(const struct gw_keys *keys, struct gw_conn *c, const struct gw_http_req *req,
                 enum gw_access need, const char *path, enum gw_committed committed);

#endif
