/* GET /prefix/?list[&cursor=KEY][&limit=N]: JSON listing of the objects whose key starts with
 * the normalised path (trailing slash kept), in key order, at most `limit` (default 100, at
 * most 1000) per page; next_cursor continues after the last key, null at the end. Expired
 * objects are left out by the node. The LIST goes to the shard leader (leader.c retries), so a
 * listing includes every write this gateway acknowledged.
 *
 * Shards: shard_count is 1 today, so one LIST to shard 0's leader answers everything. With
 * more shards a prefix that spans stream directories lives on several shards: the plan is to
 * send the LIST to every shard's leader and merge the pages by key (the cursor is a key, so it
 * stays valid across shards). */
#ifndef GW_LIST_H
#define GW_LIST_H

#include <stddef.h>

#include "buf.h"
#include "object/ctx.h"
#include "headwater.pb-c.h"
#include "http/http.h"
#include "http/server.h"

#define GW_LIST_DEFAULT 100u
#define GW_LIST_MAX 1000u
#define GW_LIST_DEADLINE_MS 3000u

void gw_list_start(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                   const char *prefix, size_t prefixlen);

/* ---- pure helpers ---- */

/* The listing document. */
void gw_list_json(struct cm_sbuf *o, const char *prefix, Hw__ObjectMeta *const *objs, size_t n,
                  const char *next_cursor);

#endif
