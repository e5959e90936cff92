/* GET / HEAD: read an object from a replica of its shard (healthy first; the node does the
 * read-index itself) and stream it to the client without copying the bytes. DELETE: through the
 * shard leader (leader.c). */
#ifndef GW_GET_H
#define GW_GET_H

#include <stddef.h>

#include "gateway.h"
#include "http.h"
#include "server.h"

#define GW_GET_FIRST_MS 3000u /* wait for the first answer frame from one replica */
#define GW_GET_IDLE_MS 10000u /* then at most this between frames (not counting back-pressure) */
#define GW_DELETE_DEADLINE_MS 3000u

void gw_get_start(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                  const char *key, size_t keylen);
void gw_delete_start(struct gw_ctx *ctx, struct gw_conn *c, const char *key, size_t keylen);

#endif
