/* Admin port routes: GET /healthz, /readyz, /metrics (Prometheus text), /status (JSON as in
 * docs/internals.md). With --keys, all but /healthz and /readyz need an admin key. */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include "object/ctx.h"
#include "http/http.h"
#include "http/server.h"

void gw_admin_route(void *ctx, struct gw_conn *c, struct gw_http_req *req);

#endif
