/* LL-HLS playlist and directive parsers (gateway/hls/llhls.c). The first byte splits the input:
 * a query string (its length, up to the byte's value) then the playlist text. Properties: the
 * parsers read only what they are given (the sanitizers see the rest); what a parse returns
 * stays in its bounds; a request without _HLS_msn, or against a playlist with ENDLIST, is
 * answered at once; one for a segment already complete is never held; one more than two past
 * the last segment is refused; a request satisfied by a playlist stays satisfied when one more
 * segment is appended; a delta update is a playlist with the same media sequence, segment count,
 * open parts and server control, one EXT-X-SKIP, and no longer than the playlist plus that tag. */
#include <string.h>

#include "fuzz.h"
#include "hls/llhls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t qlen = data[0] < size - 1 ? data[0] : size - 1;
    const char *q = (const char *)data + 1, *text = q + qlen;
    size_t tlen = size - 1 - qlen;
    struct gw_hls_directives d;
    int drv = gw_hls_directives_parse(q, qlen, &d);
    if (drv == 0) {
        HW_FUZZ_ASSERT(!d.has_part || d.has_msn);
        HW_FUZZ_ASSERT(d.msn <= GW_HLS_MAX_NUMBER && d.part <= GW_HLS_MAX_NUMBER);
        HW_FUZZ_ASSERT(d.skip >= 0 && d.skip <= 2);
    }
    struct gw_hls_playlist p;
    if (gw_hls_parse(text, tlen, &p) != 0 || drv != 0)
        return 0;
    HW_FUZZ_ASSERT(p.target_ms <= 86400000u && p.part_target_ms <= 86400999u);
    enum gw_hls_ready r = gw_hls_ready(&p, &d);
    uint64_t next = p.media_sequence + p.segments;
    if (!d.has_msn || p.endlist)
        HW_FUZZ_ASSERT(r == GW_HLS_NOW);
    else if (d.msn > next + 1)
        HW_FUZZ_ASSERT(r == GW_HLS_BAD);
    else if (d.msn < next && !d.has_part)
        HW_FUZZ_ASSERT(r == GW_HLS_NOW);
    if (r == GW_HLS_NOW) {
        struct gw_hls_playlist more = p;
        more.segments++;
        memmove(more.recent, more.recent + 1, (GW_HLS_RECENT - 1) * sizeof(more.recent[0]));
        more.recent[GW_HLS_RECENT - 1] = more.parts_open;
        more.parts_open = 0;
        HW_FUZZ_ASSERT(gw_hls_ready(&more, &d) == GW_HLS_NOW);
    }
    HW_FUZZ_ASSERT(gw_hls_hold_ms(&p) >= 3000 || p.target_ms < 1000);
    struct cm_sbuf out;
    cm_sbuf_init(&out);
    int k = gw_hls_delta(text, tlen, d.skip == 2, &out);
    if (k > 0) {
        struct gw_hls_playlist dp;
        HW_FUZZ_ASSERT(gw_hls_parse(out.p, out.len, &dp) == 0);
        HW_FUZZ_ASSERT(dp.media_sequence == p.media_sequence && dp.segments == p.segments);
        HW_FUZZ_ASSERT(dp.parts_open == p.parts_open && dp.endlist == 0);
        HW_FUZZ_ASSERT(dp.can_skip_until_ms == p.can_skip_until_ms);
        HW_FUZZ_ASSERT((uint64_t)k <= p.segments);
        HW_FUZZ_ASSERT(out.len <= tlen + 1 + 96);
        const char *first = memmem(out.p, out.len, "#EXT-X-SKIP:", 12);
        HW_FUZZ_ASSERT(first != NULL);
        HW_FUZZ_ASSERT(
            memmem(first + 1, out.len - (size_t)(first + 1 - out.p), "#EXT-X-SKIP:", 12) == NULL);
    } else {
        HW_FUZZ_ASSERT(out.len == 0);
    }
    cm_sbuf_free(&out);
    return 0;
}
