/* GET / HEAD: read an object from a replica of its shard (healthy first; the node does the
 * read-index itself) and stream it to the client without copying the bytes. */
#ifndef GW_GET_H
#define GW_GET_H

#include <stddef.h>

#include "object/ctx.h"
#include "http/http.h"
#include "http/server.h"

#define GW_GET_FIRST_MS 3000u /* wait for the first answer frame from the last candidate */
/* ... from one with others left: above a replica's min_index wait (node/ops/read.c, 500 ms) */
#define GW_GET_TRY_MS 700u
#define GW_GET_CHECK_MS 50u   /* how often a waiting attempt checks its replica still answers */
#define GW_GET_IDLE_MS 10000u /* then at most this between frames (not counting back-pressure) */

void gw_get_start(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                  const char *key, size_t keylen);

#endif
