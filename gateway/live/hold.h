/* Playlist requests with LL-HLS delivery directives (issue 11; draft-pantos-hls-rfc8216bis
 * §6.2.5): blocking playlist reload (_HLS_msn / _HLS_part) and delta updates (_HLS_skip).
 *
 * A request is parked on its loop in the group of its key. Each group keeps the newest playlist
 * it read (a fetch through the cache: object/get.h) and the wakeup generation it read it at
 * (object/wake.h): while the generation stands, the playlist is current and a new request is
 * decided at once against it (hls/llhls.h): answered, refused (400), or parked. A commit of the
 * key posts a wakeup to every loop with a group for it; the group reads the playlist again (one
 * read for all its requests, at or past the commit's raft index) and answers every request the
 * new playlist satisfies. No polling: one timer per loop only for the 503 deadlines (three
 * target durations from a request's first look) and to drop groups idle for GW_HOLD_IDLE_MS.
 *
 * An encoder restart (the media sequence goes backwards) answers every parked request with the
 * new playlist. A playlist with EXT-X-ENDLIST answers every request. Answers to requests with
 * _HLS_msn carry Cache-Control max-age of six target durations (Appendix B: the same URL always
 * gets the same answer once it exists); delta updates their own entity-tag.
 *
 * Memory: a parked request costs its connection and one struct gw_park; the playlist bytes are
 * shared (one ref per group). */
#ifndef GW_LIVE_HOLD_H
#define GW_LIVE_HOLD_H

#include <stddef.h>
#include <stdint.h>

#include "object/ctx.h"

#define GW_HOLD_MAX_PLAYLIST (16u * 1024u * 1024u) /* larger: 503, never buffered */
#define GW_HOLD_IDLE_MS 5000u /* a group with nothing parked keeps its playlist this long */

struct gw_holds;

/* Does this request carry delivery directives (_HLS_msn, _HLS_part, _HLS_skip)? */
int gw_hold_wanted(const struct gw_http_req *req);
/* GET / HEAD of a playlist key with directives (gw_hold_wanted). */
void gw_hold_start(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                   const char *key, size_t keylen);
/* The loop's groups: closed after the servers closed (every parked request was aborted). */
void gw_holds_close(struct gw_holds *hs);

struct gw_holds_stats {
    uint64_t parked; /* requests parked now */
    uint64_t groups;
};
void gw_holds_stats(const struct gw_holds *hs, struct gw_holds_stats *st);

#endif
