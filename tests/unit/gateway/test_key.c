/* Key normalisation and shard mapping. */
#include <criterion/criterion.h>
#include <string.h>

#include "crc32c.h"
#include "access/key.h"
#include "shard.h"

static int norm(const char *in, char *out, const char **why)
{
    size_t n = 0;
    return gw_key_normalize(in, strlen(in), out, GW_KEY_MAX + 1, &n, why);
}

static void expect_key(const char *in, const char *want)
{
    char out[GW_KEY_MAX + 1];
    const char *why;
    cr_assert_eq(norm(in, out, &why), 0, "'%s' rejected: %s", in, why);
    cr_assert_str_eq(out, want, "'%s' -> '%s', want '%s'", in, out, want);
}

static void expect_bad(const char *in)
{
    char out[GW_KEY_MAX + 1];
    const char *why;
    cr_assert_neq(norm(in, out, &why), 0, "'%s' accepted", in);
    cr_assert_str_neq(why, "");
}

Test(key, plain_paths_unchanged)
{
    expect_key("/live/ch1/720p/seg_00042.m4s", "/live/ch1/720p/seg_00042.m4s");
    expect_key("/a", "/a");
    expect_key("/live/ch1/", "/live/ch1/");
}

Test(key, query_and_fragment_are_not_part_of_the_key)
{
    expect_key("/live/x.m3u8?_HLS_msn=5&_HLS_part=1", "/live/x.m3u8");
    expect_key("/live/x.m3u8#frag", "/live/x.m3u8");
    expect_key("/a%3Fb?c", "/a?b");
}

Test(key, percent_decoding)
{
    expect_key("/live/ch%201/seg%5F1.ts", "/live/ch 1/seg_1.ts");
    expect_key("/%41%62", "/Ab");
    expect_bad("/bad%2");
    expect_bad("/bad%zz");
    expect_bad("/bad%");
}

Test(key, dotdot_rejected_plain_and_encoded)
{
    expect_bad("/../etc/passwd");
    expect_bad("/live/../x");
    expect_bad("/live/..");
    expect_bad("/live/%2e%2e/x");
    expect_bad("/live/%2E%2E");
    expect_bad("/live/.%2e/x");
    expect_bad("/live%2f..%2fx");
    /* ".." inside a name is fine */
    expect_key("/live/a..b", "/live/a..b");
    expect_key("/live/...", "/live/...");
}

Test(key, nul_rejected)
{
    expect_bad("/live/a%00b");
    expect_bad("/%00");
}

Test(key, control_bytes_rejected)
{
    /* found by fuzz_key: a decoded LF or DEL would reach headers, listings and log lines */
    expect_bad("/live/a%0ab.ts");
    expect_bad("/live/a%0Db.ts");
    expect_bad("/live/a%7f");
    expect_bad("/live/a\x7f");
    expect_bad("/live/\x01");
    expect_key("/live/%C3%A9.ts", "/live/\xc3\xa9.ts"); /* UTF-8 stays */
}

Test(key, empty_rejected)
{
    expect_bad("");
    expect_bad("/");
    expect_bad("//");
    expect_bad("/?x=1");
    expect_bad("/./");
    expect_bad("relative/path");
}

Test(key, slashes_collapse_and_dot_segments_drop)
{
    expect_key("//live///ch1//a.ts", "/live/ch1/a.ts");
    expect_key("/live/./ch1/a.ts", "/live/ch1/a.ts");
    expect_key("/live/ch1/.", "/live/ch1/");
}

Test(key, absolute_form_target)
{
    expect_key("http://origin.example:8080/live/a.ts?x", "/live/a.ts");
}

Test(key, length_limit)
{
    char in[1100], out[GW_KEY_MAX + 1];
    const char *why;
    size_t n;
    in[0] = '/';
    memset(in + 1, 'a', 1023);
    in[1024] = '\0';
    cr_assert_eq(gw_key_normalize(in, 1024, out, sizeof(out), &n, &why), 0);
    cr_assert_eq(n, 1024);
    memset(in + 1, 'a', 1024);
    in[1025] = '\0';
    cr_assert_neq(gw_key_normalize(in, 1025, out, sizeof(out), &n, &why), 0);
    /* encoded bytes count after decoding: 1023 x "%61" is 1024 bytes decoded */
    char enc[4000];
    enc[0] = '/';
    for (int i = 0; i < 1023; i++)
        memcpy(enc + 1 + 3 * i, "%61", 3);
    cr_assert_eq(gw_key_normalize(enc, 1 + 3 * 1023, out, sizeof(out), &n, &why), 0);
    cr_assert_eq(n, 1024);
    memcpy(enc + 1 + 3 * 1023, "%61", 3);
    cr_assert_neq(gw_key_normalize(enc, 1 + 3 * 1024, out, sizeof(out), &n, &why), 0);
}

Test(key, stream_directory_and_shard)
{
    const char *k = "/live/ch1/720p/seg_1.m4s";
    cr_assert_eq(gw_key_dir_len(k, strlen(k)), strlen("/live/ch1/720p"));
    cr_assert_eq(gw_key_dir_len("/a.ts", 5), 0);
    cr_assert_eq(cm_shard_of(k, 1), 0);
    cr_assert_eq(cm_shard_of(k, 7), cm_crc32c(0, "/live/ch1/720p", 14) % 7);
    /* every object of one stream directory lands on one shard */
    const char *k2 = "/live/ch1/720p/index.m3u8";
    cr_assert_eq(cm_shard_of(k, 16), cm_shard_of(k2, 16));
    cr_assert_eq(cm_shard_of(k, 0), 0);
}
