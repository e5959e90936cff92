/* DELETE /key: remove an object through its shard leader; 204, or 404 when absent. */
#ifndef GW_DELETE_H
#define GW_DELETE_H

#include <stddef.h>

#include "object/ctx.h"

#define GW_DELETE_DEADLINE_MS 3000u

struct gw_conn;

void gw_delete_start(struct gw_ctx *ctx, struct gw_conn *c, const char *key, size_t keylen);

#endif
