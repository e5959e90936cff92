/* PUT/POST: stream the request body to every replica of the key's shard (STAGE), FINISH on a
 * quorum, COMMIT at the shard leader, answer 201/204 after COMMIT_OK (DESIGN.md "Write path"). */
#ifndef GW_PUT_H
#define GW_PUT_H

#include "object/ctx.h"
#include "http/http.h"
#include "timeutil.h"
#include "object/rules.h"
#include "http/server.h"

#define GW_STAGE_MAX (1024u * 1024u)            /* payload per STAGE frame */
#define GW_PUT_UNACKED_MAX (8u * 1024u * 1024u) /* stop reading the client past this */
#define GW_PUT_DEADLINE_MS 3000u                /* after the body ended */
#define GW_PUT_GRACE_MS 200u                    /* wait for more FINISH_OKs after a quorum */
#define GW_PUT_STALL_MS 2000u /* a replica with no progress this long is dropped */
/* Body pieces under GW_PUT_COPY_BELOW bytes are copied into a per-upload staging buffer of
 * GW_PUT_STAGING bytes (coalesced), bigger ones stay zero-copy slices of the read buffer. What
 * an upload holds counts each chunk as its payload + GW_PUT_CHUNK_COST + GW_PUT_FRAME_COST per
 * replica (the STAGE frame's header, write request and buffer list). */
#define GW_PUT_COPY_BELOW 4096u
#define GW_PUT_STAGING (64u * 1024u)
#define GW_PUT_CHUNK_COST 2048u
#define GW_PUT_FRAME_COST 512u

#define GW_TTL_MAX CM_TTL_MAX_S /* ten years */

/* TTL of a write: ?ttl_seconds=N wins over X-Headwater-TTL: N; either one present (0 = never
 * expires) wins over the --lifecycle rule for key. Returns 0 with *ttl (0 = none) or -1 with
 * *why (static text) for a value that is not a decimal number of seconds <= GW_TTL_MAX. Pure. */
int gw_put_ttl(const struct gw_http_req *req, const struct gw_rules *lifecycle, const char *key,
               int64_t *ttl, const char **why);

/* Takes over the request on c (answers it eventually). key is the normalised key. */
void gw_put_start(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                  const char *key, size_t keylen);

#endif
