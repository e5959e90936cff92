/* Authorization of one request against the access keys (authkeys.h): the request's key comes
 * from "Authorization: Bearer <key>", else from the `token` query parameter. A write key is
 * refused in `?token=` (for reads as well): a URL ends up in access logs, proxy caches and
 * Referer headers, and encoders can send headers (ffmpeg -headers). Read and admin keys are
 * still accepted there (players and scrapers that cannot set headers). */
#ifndef GW_AUTHZ_H
#define GW_AUTHZ_H

#include "access/authkeys.h"
#include "http/http.h"

struct gw_conn;

/* The credential a request presents (borrowed from the request). */
struct gw_authz_token {
    const char *p; /* NULL = none */
    size_t len;
    int from_query; /* from ?token= rather than Authorization: Bearer */
};

void gw_authz_token(const struct gw_http_req *req, struct gw_authz_token *out);
/* gw_keys_check plus the query rule: a write key from ?token= is GW_AUTH_FORBIDDEN. Pure. */
enum gw_auth gw_authz_check(const struct gw_keys *k, enum gw_access need, const char *path,
                            const struct gw_authz_token *t);

/* 0 = go ahead (also when keys is NULL: no keys file); else the 401 (no key) / 403 answer has
 * been given on c. */
int gw_authorize(const struct gw_keys *keys, struct gw_conn *c, const struct gw_http_req *req,
                 enum gw_access need, const char *path, enum gw_committed committed);

#endif
