/* cm_shard_of: a key's shard is decided by its stream directory alone. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "crc32c.h"
#include "shard.h"

Test(shard, keys_of_one_stream_directory_share_a_shard)
{
    for (uint32_t count = 1; count <= 64; count++) {
        uint32_t s = cm_shard_of("/live/ch1/720p/seg_00001.m4s", count);
        cr_assert_lt(s, count);
        cr_assert_eq(cm_shard_of("/live/ch1/720p/seg_00002.m4s", count), s);
        cr_assert_eq(cm_shard_of("/live/ch1/720p/index.m3u8", count), s);
    }
}

Test(shard, is_crc32c_of_the_directory_mod_count)
{
    const char *dir = "/live/ch1/720p";
    uint32_t crc = cm_crc32c(0, dir, strlen(dir));
    cr_assert_eq(cm_shard_of("/live/ch1/720p/seg.ts", 7), crc % 7);
    cr_assert_eq(cm_shard_of("/live/ch1/720p/seg.ts", 1000), crc % 1000);
    /* the directory only: a different leaf never moves a key */
    cr_assert_eq(cm_shard_of("/live/ch1/720p/x", 1000), crc % 1000);
}

Test(shard, directories_spread_and_edge_cases_are_defined)
{
    unsigned seen[8] = {0};
    char key[64];
    for (int i = 0; i < 256; i++) {
        snprintf(key, sizeof(key), "/live/ch%d/seg.ts", i);
        seen[cm_shard_of(key, 8)]++;
    }
    for (int i = 0; i < 8; i++)
        cr_assert_gt(seen[i], 0, "shard %d never chosen", i);
    cr_assert_eq(cm_shard_of("/top.ts", 5), cm_crc32c(0, "", 0) % 5);
    cr_assert_eq(cm_shard_of("noslash", 5), 0);
    cr_assert_eq(cm_shard_of("/a/b", 0), 0);
}
