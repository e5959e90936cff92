/* LL-HLS origin rules, the pure part (issue 11; draft-pantos-hls-rfc8216bis §4.4 and §6.2.5):
 * what a media playlist an encoder wrote says (media sequence, complete segments, the parts of
 * the segment in progress, ENDLIST, server control), the blocking-reload directives of a
 * playlist request (_HLS_msn, _HLS_part, _HLS_skip), and whether a playlist satisfies them now,
 * later, or never (400). No allocation; every number read is bounded. */
#ifndef GW_HLS_LLHLS_H
#define GW_HLS_LLHLS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define GW_HLS_MAX_NUMBER 1000000000000000ull /* media sequence, part index: 10^15 at most */
#define GW_HLS_RECENT 16u /* the part counts kept, of the newest complete segments */

struct gw_hls_playlist {
    uint64_t media_sequence;        /* EXT-X-MEDIA-SEQUENCE (0 when absent) */
    uint64_t segments;              /* complete media segments listed (and skipped: EXT-X-SKIP) */
    uint32_t target_ms;             /* EXT-X-TARGETDURATION, in ms */
    uint32_t part_target_ms;        /* EXT-X-PART-INF PART-TARGET, in ms; 0: no parts */
    uint32_t parts_open;            /* EXT-X-PART tags after the last segment: of the next one */
    uint32_t recent[GW_HLS_RECENT]; /* parts listed for the newest complete segments, newest
                                       last (recent[GW_HLS_RECENT - 1] = the last segment's) */
    int endlist;
    int can_block_reload;
    uint32_t can_skip_until_ms; /* EXT-X-SERVER-CONTROL CAN-SKIP-UNTIL; 0: none */
    int can_skip_dateranges;
    uint32_t part_hold_back_ms;
    int preload_hint;
};

/* 0 and *out, or CM_EINVAL: not a playlist (no #EXTM3U first line) or a malformed number. */
int gw_hls_parse(const char *text, size_t len, struct gw_hls_playlist *out);

struct gw_hls_directives {
    int has_msn, has_part;
    uint64_t msn, part;
    int skip; /* 0: none, 1: _HLS_skip=YES, 2: _HLS_skip=v2 */
};

/* The directives of a query string (without '?'; other parameters are not ours and ignored).
 * CM_EINVAL (answer 400): _HLS_part without _HLS_msn, a value that is not a decimal number up
 * to GW_HLS_MAX_NUMBER, a directive given twice, or an _HLS_skip other than YES / v2. */
int gw_hls_directives_parse(const char *query, size_t len, struct gw_hls_directives *out);

enum gw_hls_ready {
    GW_HLS_NOW,  /* answer with this playlist */
    GW_HLS_HOLD, /* hold the request until a newer playlist (at most gw_hls_hold_ms) */
    GW_HLS_BAD,  /* 400 at once: too far ahead (§6.2.5.2) */
};

/* Whether p satisfies d: no _HLS_msn, or an ENDLIST, answers at once; a request for media
 * sequence M (part N) is held until p holds M (part N of M; a part index past M's last part
 * means part 0 of M + 1); M more than two past p's last segment, or a part more than the
 * Advance Part Limit (3 / part target when that is under 1 s, else 3) past p's last part, is
 * refused. */
enum gw_hls_ready gw_hls_ready(const struct gw_hls_playlist *p, const struct gw_hls_directives *d);
/* How long a request may be held before 503: three target durations. */
uint64_t gw_hls_hold_ms(const struct gw_hls_playlist *p);

/* A Playlist Delta Update of a full media playlist (§6.2.5.1): the leading complete segments that
 * end at least CAN-SKIP-UNTIL before the playlist's end become one EXT-X-SKIP; their tags go
 * with them, except the EXT-X-KEY and EXT-X-MAP in force for the first segment kept (placed
 * after the EXT-X-SKIP) and, unless v2 (_HLS_skip=v2, which skips date ranges too), their
 * EXT-X-DATERANGE tags. Playlist tags stay where they are. Appends to out and returns the count
 * of segments skipped; 0 (out untouched) when nothing can be skipped or the playlist allows no
 * skipping, has ENDLIST or is already a delta; CM_EINVAL for a malformed playlist. */
int gw_hls_delta(const char *text, size_t len, int v2, struct cm_sbuf *out);

#endif
