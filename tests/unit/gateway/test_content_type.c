/* Content type: header first, else by extension. */
#include <criterion/criterion.h>
#include <string.h>

#include "object/content_type.h"

static const char *ct(const char *key, const char *hdr)
{
    return gw_ctype_for(key, strlen(key), hdr);
}

Test(content_type, header_wins)
{
    cr_assert_str_eq(ct("/a/seg.ts", "video/custom"), "video/custom");
    cr_assert_str_eq(ct("/a/seg.ts", ""), "video/mp2t");
    cr_assert_str_eq(ct("/a/seg.ts", NULL), "video/mp2t");
}

Test(content_type, by_extension)
{
    cr_assert_str_eq(ct("/l/index.m3u8", NULL), "application/vnd.apple.mpegurl");
    cr_assert_str_eq(ct("/l/manifest.mpd", NULL), "application/dash+xml");
    cr_assert_str_eq(ct("/l/s.ts", NULL), "video/mp2t");
    cr_assert_str_eq(ct("/l/s.m4s", NULL), "video/mp4");
    cr_assert_str_eq(ct("/l/init.mp4", NULL), "video/mp4");
    cr_assert_str_eq(ct("/l/s.cmfv", NULL), "video/mp4");
    cr_assert_str_eq(ct("/l/s.cmfa", NULL), "audio/mp4");
    cr_assert_str_eq(ct("/l/s.m4a", NULL), "audio/mp4");
    cr_assert_str_eq(ct("/l/s.aac", NULL), "audio/aac");
    cr_assert_str_eq(ct("/l/sub.vtt", NULL), "text/vtt");
    cr_assert_str_eq(ct("/l/k.key", NULL), "application/octet-stream");
    cr_assert_str_eq(ct("/l/INDEX.M3U8", NULL), "application/vnd.apple.mpegurl");
}

Test(content_type, unknown_is_octet_stream)
{
    cr_assert_str_eq(ct("/l/file.bin", NULL), "application/octet-stream");
    cr_assert_str_eq(ct("/l/noext", NULL), "application/octet-stream");
    cr_assert_str_eq(ct("/l.m3u8/noext", NULL), "application/octet-stream");
    cr_assert_str_eq(ct("/l/dot.", NULL), "application/octet-stream");
    cr_assert_str_eq(ct("/l/x.tsx", NULL), "application/octet-stream");
}
