/* LL-HLS origin rules, the pure part (hls/llhls.h): what an encoder's playlist says, and the
 * blocking-reload decisions of draft-pantos-hls-rfc8216bis §6.2.5.2 against it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "hls/llhls.h"

/* 1 s segments of five 200 ms parts; segments 10 and 11 complete (11 with its parts listed),
 * segment 12 in progress with two parts and a preload hint for the third. */
static const char LL[] = "#EXTM3U\n"
                         "#EXT-X-TARGETDURATION:1\n"
                         "#EXT-X-VERSION:9\n"
                         "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6,"
                         "CAN-SKIP-UNTIL=6.0\n"
                         "#EXT-X-PART-INF:PART-TARGET=0.2\n"
                         "#EXT-X-MEDIA-SEQUENCE:10\n"
                         "#EXTINF:1.0,\n"
                         "seg10.m4s\n"
                         "#EXT-X-PART:DURATION=0.2,URI=\"seg11.0.m4s\",INDEPENDENT=YES\n"
                         "#EXT-X-PART:DURATION=0.2,URI=\"seg11.1.m4s\"\n"
                         "#EXT-X-PART:DURATION=0.2,URI=\"seg11.2.m4s\"\n"
                         "#EXT-X-PART:DURATION=0.2,URI=\"seg11.3.m4s\"\n"
                         "#EXT-X-PART:DURATION=0.2,URI=\"seg11.4.m4s\"\n"
                         "#EXTINF:1.0,\n"
                         "seg11.m4s\n"
                         "#EXT-X-PART:DURATION=0.2,URI=\"seg12.0.m4s\",INDEPENDENT=YES\n"
                         "#EXT-X-PART:DURATION=0.2,URI=\"seg12.1.m4s\"\n"
                         "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg12.2.m4s\"\n";

static struct gw_hls_playlist pl(const char *text)
{
    struct gw_hls_playlist p;
    cr_assert_eq(gw_hls_parse(text, strlen(text), &p), 0, "%s", text);
    return p;
}

static enum gw_hls_ready ready(const struct gw_hls_playlist *p, const char *query)
{
    struct gw_hls_directives d;
    cr_assert_eq(gw_hls_directives_parse(query, strlen(query), &d), 0, "%s", query);
    return gw_hls_ready(p, &d);
}

Test(llhls, a_low_latency_playlist_is_read)
{
    struct gw_hls_playlist p = pl(LL);
    cr_assert_eq(p.media_sequence, 10);
    cr_assert_eq(p.segments, 2);
    cr_assert_eq(p.target_ms, 1000);
    cr_assert_eq(p.part_target_ms, 200);
    cr_assert_eq(p.parts_open, 2, "parts of segment 12, in progress");
    cr_assert_eq(p.recent[GW_HLS_RECENT - 1], 5, "segment 11 had five parts");
    cr_assert_eq(p.recent[GW_HLS_RECENT - 2], 0, "segment 10 listed none");
    cr_assert(p.can_block_reload && p.preload_hint && !p.endlist);
    cr_assert_eq(p.can_skip_until_ms, 6000);
    cr_assert_eq(p.part_hold_back_ms, 600);
    cr_assert_eq(gw_hls_hold_ms(&p), 3000, "503 after three target durations");
}

Test(llhls, crlf_skip_and_endlist)
{
    struct gw_hls_playlist p = pl("#EXTM3U\r\n#EXT-X-TARGETDURATION:6\r\n#EXT-X-MEDIA-SEQUENCE:"
                                  "100\r\n#EXT-X-SKIP:SKIPPED-SEGMENTS=4\r\n#EXTINF:6,\r\nx.ts\r\n"
                                  "#EXT-X-ENDLIST\r\n");
    cr_assert_eq(p.segments, 5);
    cr_assert(p.endlist);
    cr_assert_eq(p.target_ms, 6000);
}

Test(llhls, what_is_not_a_playlist_is_refused)
{
    struct gw_hls_playlist p;
    const char *bad[] = {"",
                         "EXTM3U\n",
                         "#EXTM3U x\n",
                         "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-1\n",
                         "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:99999999999999999999\n",
                         "#EXTM3U\n#EXT-X-TARGETDURATION:1.5\n",
                         "#EXTM3U\n#EXT-X-PART-INF:PART-TARGET=0.\n",
                         "#EXTM3U\n#EXT-X-SKIP:SKIPPED=3\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(gw_hls_parse(bad[i], strlen(bad[i]), &p), CM_EINVAL, "[%zu] %s", i, bad[i]);
}

Test(llhls, directives_are_read_and_bad_ones_refused)
{
    struct gw_hls_directives d;
    const char *q = "token=abc&_HLS_msn=12&_HLS_part=3&_HLS_skip=YES";
    cr_assert_eq(gw_hls_directives_parse(q, strlen(q), &d), 0);
    cr_assert(d.has_msn && d.has_part && d.msn == 12 && d.part == 3 && d.skip == 1);
    const char *bad[] = {"_HLS_part=1",
                         "_HLS_msn=",
                         "_HLS_msn=1x",
                         "_HLS_msn=-1",
                         "_HLS_msn=1&_HLS_msn=2",
                         "_HLS_skip=yes",
                         "_HLS_msn=99999999999999999",
                         "_HLS_msn=1&_HLS_part=1&_HLS_part=2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(gw_hls_directives_parse(bad[i], strlen(bad[i]), &d), CM_EINVAL, "%s", bad[i]);
    cr_assert_eq(gw_hls_directives_parse("", 0, &d), 0);
    cr_assert(!d.has_msn);
}

Test(llhls, blocking_reload_holds_until_the_part_or_segment_is_there)
{
    struct gw_hls_playlist p = pl(LL);
    cr_assert_eq(ready(&p, ""), GW_HLS_NOW, "no directives: at once, never held");
    cr_assert_eq(ready(&p, "_HLS_msn=11"), GW_HLS_NOW);
    cr_assert_eq(ready(&p, "_HLS_msn=3"), GW_HLS_NOW, "long gone: at once");
    cr_assert_eq(ready(&p, "_HLS_msn=12"), GW_HLS_HOLD, "segment 12 is not complete");
    cr_assert_eq(ready(&p, "_HLS_msn=12&_HLS_part=1"), GW_HLS_NOW);
    cr_assert_eq(ready(&p, "_HLS_msn=12&_HLS_part=2"), GW_HLS_HOLD, "the hinted part");
    cr_assert_eq(ready(&p, "_HLS_msn=11&_HLS_part=4"), GW_HLS_NOW);
    cr_assert_eq(ready(&p, "_HLS_msn=11&_HLS_part=5"), GW_HLS_NOW,
                 "past 11's last part: part 0 of 12, which is there");
    cr_assert_eq(ready(&p, "_HLS_msn=13"), GW_HLS_HOLD, "two past the last segment: held");
    cr_assert_eq(ready(&p, "_HLS_msn=14"), GW_HLS_BAD, "more than two past: 400");
}

Test(llhls, the_advance_part_limit_refuses_parts_too_far_ahead)
{
    struct gw_hls_playlist p = pl(LL); /* 200 ms parts: limit 3 / 0.2 = 15 parts */
    cr_assert_eq(ready(&p, "_HLS_msn=12&_HLS_part=16"), GW_HLS_HOLD, "15 parts ahead");
    cr_assert_eq(ready(&p, "_HLS_msn=12&_HLS_part=17"), GW_HLS_BAD, "16 parts ahead");
    /* 13: three parts left of 12 (five like 11), then part n of 13 */
    cr_assert_eq(ready(&p, "_HLS_msn=13&_HLS_part=11"), GW_HLS_HOLD);
    cr_assert_eq(ready(&p, "_HLS_msn=13&_HLS_part=12"), GW_HLS_BAD);
}

Test(llhls, endlist_ignores_directives)
{
    struct gw_hls_playlist p = pl("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\na.ts\n"
                                  "#EXT-X-ENDLIST\n");
    cr_assert_eq(ready(&p, "_HLS_msn=7&_HLS_part=2"), GW_HLS_NOW);
}

Test(llhls, a_completed_segment_satisfies_what_its_parts_did)
{
    struct gw_hls_playlist p = pl(LL);
    struct gw_hls_directives d;
    cr_assert_eq(gw_hls_directives_parse("_HLS_msn=12&_HLS_part=4", 23, &d), 0);
    cr_assert_eq(gw_hls_ready(&p, &d), GW_HLS_HOLD);
    char more[sizeof(LL) + 256];
    snprintf(more, sizeof(more),
             "%s#EXT-X-PART:DURATION=0.2,URI=\"seg12.2.m4s\"\n"
             "#EXT-X-PART:DURATION=0.2,URI=\"seg12.3.m4s\"\n"
             "#EXT-X-PART:DURATION=0.2,URI=\"seg12.4.m4s\"\n#EXTINF:1.0,\nseg12.m4s\n",
             LL);
    p = pl(more);
    cr_assert_eq(p.segments, 3);
    cr_assert_eq(gw_hls_ready(&p, &d), GW_HLS_NOW);
    cr_assert_eq(ready(&p, "_HLS_msn=12&_HLS_part=9"), GW_HLS_HOLD,
                 "past 12's five parts: part 0 of 13, not there yet");
}

/* Eight 2 s segments (16 s), skippable 6 s before the end: the five ending by 10 s go. */
#define SKIPPABLE                                                                                  \
    "#EXTM3U\n#EXT-X-VERSION:10\n#EXT-X-TARGETDURATION:2\n"                                        \
    "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0,CAN-SKIP-DATERANGES=YES\n"      \
    "#EXT-X-MEDIA-SEQUENCE:40\n#EXT-X-MAP:URI=\"init0.mp4\"\n"                                     \
    "#EXT-X-DATERANGE:ID=\"ad1\",START-DATE=\"2026-12-01T00:00:00Z\"\n"                            \
    "#EXTINF:2.0,\na40.m4s\n#EXT-X-PROGRAM-DATE-TIME:2026-12-01T00:00:02Z\n#EXTINF:2.0,\na41."     \
    "m4s\n"                                                                                        \
    "#EXT-X-KEY:METHOD=AES-128,URI=\"k1\"\n#EXTINF:2.0,\na42.m4s\n"                                \
    "#EXT-X-MAP:URI=\"init1.mp4\"\n#EXTINF:2.0,\na43.m4s\n#EXTINF:2.0,\na44.m4s\n"                 \
    "#EXT-X-DISCONTINUITY\n#EXTINF:2.0,\na45.m4s\n#EXTINF:2.0,\na46.m4s\n#EXTINF:2.0,\na47.m4s\n"  \
    "#EXT-X-PART:DURATION=0.5,URI=\"a48.0.m4s\"\n"                                                 \
    "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a48.1.m4s\"\n"

Test(llhls, a_delta_update_skips_the_segments_before_the_skip_boundary)
{
    struct cm_sbuf out;
    cm_sbuf_init(&out);
    cr_assert_eq(gw_hls_delta(SKIPPABLE, strlen(SKIPPABLE), 0, &out), 5);
    cr_assert_str_eq(out.p,
                     "#EXTM3U\n#EXT-X-VERSION:10\n#EXT-X-TARGETDURATION:2\n"
                     "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0,"
                     "CAN-SKIP-DATERANGES=YES\n#EXT-X-MEDIA-SEQUENCE:40\n"
                     "#EXT-X-DATERANGE:ID=\"ad1\",START-DATE=\"2026-12-01T00:00:00Z\"\n"
                     "#EXT-X-SKIP:SKIPPED-SEGMENTS=5\n"
                     "#EXT-X-KEY:METHOD=AES-128,URI=\"k1\"\n#EXT-X-MAP:URI=\"init1.mp4\"\n"
                     "#EXT-X-DISCONTINUITY\n#EXTINF:2.0,\na45.m4s\n#EXTINF:2.0,\na46.m4s\n"
                     "#EXTINF:2.0,\na47.m4s\n#EXT-X-PART:DURATION=0.5,URI=\"a48.0.m4s\"\n"
                     "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a48.1.m4s\"\n",
                     "got:\n%s", out.p);
    struct gw_hls_playlist full = pl(SKIPPABLE), delta = pl(out.p);
    cr_assert_eq(delta.segments, full.segments);
    cr_assert_eq(delta.media_sequence, 40);
    cm_sbuf_free(&out);
}

Test(llhls, a_v2_delta_update_skips_date_ranges_too)
{
    struct cm_sbuf out;
    cm_sbuf_init(&out);
    cr_assert_eq(gw_hls_delta(SKIPPABLE, strlen(SKIPPABLE), 1, &out), 5);
    cr_assert_null(strstr(out.p, "#EXT-X-DATERANGE"), "got:\n%s", out.p);
    cr_assert_not_null(
        strstr(out.p, "#EXT-X-SKIP:SKIPPED-SEGMENTS=5,RECENTLY-REMOVED-DATERANGES="));
    cm_sbuf_free(&out);
}

Test(llhls, nothing_is_skipped_without_can_skip_until_or_enough_segments)
{
    struct cm_sbuf out;
    cm_sbuf_init(&out);
    cr_assert_eq(gw_hls_delta(LL, strlen(LL), 0, &out), 0);
    const char *short_pl = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n"
                           "#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=12.0\n"
                           "#EXTINF:2.0,\na.m4s\n#EXTINF:2.0,\nb.m4s\n";
    cr_assert_eq(gw_hls_delta(short_pl, strlen(short_pl), 0, &out), 0);
    const char *bad = "#EXTM3U\n#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=1.0\n#EXTINF:x,\na.m4s\n";
    cr_assert_eq(gw_hls_delta(bad, strlen(bad), 0, &out), CM_EINVAL);
    cr_assert_eq(out.len, 0);
    cm_sbuf_free(&out);
}
