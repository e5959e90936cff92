/* GET / HEAD: read an object from a replica of its shard (healthy first; the node does the
 * read-index itself) and stream it to the client without copying the bytes. */
#ifndef GW_GET_H
#define GW_GET_H

#include <stddef.h>

#include "object/cache.h"
#include "object/ctx.h"
#include "object/objresp.h"
#include "http/http.h"
#include "http/server.h"

#define GW_GET_FIRST_MS 3000u /* wait for the first answer frame from the last candidate */
/* ... from one with others left: above a replica's min_index wait (node/ops/read.c, 500 ms) */
#define GW_GET_TRY_MS 700u
#define GW_GET_CHECK_MS 50u   /* how often a waiting attempt checks its replica still answers */
#define GW_GET_IDLE_MS 10000u /* then at most this between frames (not counting back-pressure) */

struct gw_get;

/* A fetch: the whole object in memory for a handler that must look at it (a playlist), read
 * through the cache like any miss (coalesced, coherent: cluster/watch.h). at_least: every node
 * read asks min_index at least this (an index the commit watch announced). fn runs once, on this
 * loop, never inside gw_get_fetch: GW_CWAIT_OBJ with obj (borrowed for the call), NOT_FOUND, or
 * FAILED with why (no replica, larger than max_size, out of memory). NULL: out of memory. */
typedef void (*gw_fetch_fn)(void *arg, enum gw_cwait_result r, struct gw_cobj *obj,
                            const char *why);
struct gw_get *gw_get_fetch(struct gw_ctx *ctx, const char *key, uint64_t at_least,
                            uint64_t max_size, gw_fetch_fn fn, void *arg);
/* Withdraw a fetch whose fn has not run: it never will. */
void gw_get_fetch_cancel(struct gw_get *g);

/* Answer c's GET/HEAD with o and its bytes (body: o->size bytes, borrowed; the writes take their
 * own refs): 200/206/304/412/416 as the request's headers ask (objresp.h), then done. */
void gw_get_serve(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req, int head,
                  const struct gw_objinfo *o, struct cm_buf *body, const struct gw_rules *rules);
/* The metadata of a cached object as an answer describes it (the key points into c). */
void gw_objinfo_of_cobj(struct gw_objinfo *o, const struct gw_cobj *c);

void gw_get_start(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                  const char *key, size_t keylen);

#endif
