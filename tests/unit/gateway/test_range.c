#include <criterion/criterion.h>
#include <string.h>

#include "http/range.h"

static enum gw_range_kind parse(const char *v, uint64_t size, uint64_t *a, uint64_t *b)
{
    *a = *b = 12345;
    return gw_range_parse(v, strlen(v), size, a, b);
}

Test(range, single_ranges)
{
    uint64_t a, b;
    cr_assert_eq(parse("bytes=0-99", 1000, &a, &b), GW_RANGE_ONE);
    cr_assert(a == 0 && b == 99);
    cr_assert_eq(parse("bytes=500-", 1000, &a, &b), GW_RANGE_ONE);
    cr_assert(a == 500 && b == 999);
    cr_assert_eq(parse("bytes=-100", 1000, &a, &b), GW_RANGE_ONE);
    cr_assert(a == 900 && b == 999);
    cr_assert_eq(parse("bytes=-5000", 1000, &a, &b), GW_RANGE_ONE, "suffix longer than body");
    cr_assert(a == 0 && b == 999);
    cr_assert_eq(parse("bytes=900-5000", 1000, &a, &b), GW_RANGE_ONE, "last clamped");
    cr_assert(a == 900 && b == 999);
    cr_assert_eq(parse(" Bytes=1-1 ", 10, &a, &b), GW_RANGE_ONE);
    cr_assert(a == 1 && b == 1);
}

Test(range, unsatisfiable)
{
    uint64_t a, b;
    cr_assert_eq(parse("bytes=1000-", 1000, &a, &b), GW_RANGE_UNSATISFIABLE);
    cr_assert_eq(parse("bytes=1000-2000", 1000, &a, &b), GW_RANGE_UNSATISFIABLE);
    cr_assert_eq(parse("bytes=-0", 1000, &a, &b), GW_RANGE_UNSATISFIABLE);
    cr_assert_eq(parse("bytes=0-", 0, &a, &b), GW_RANGE_UNSATISFIABLE);
    cr_assert_eq(parse("bytes=-10", 0, &a, &b), GW_RANGE_UNSATISFIABLE);
}

Test(range, ignored)
{
    uint64_t a, b;
    const char *bad[] = {"",          "bytes=",     "bytes=-",
                         "bytes=5-1", "items=0-1",  "bytes=0-1,5-9",
                         "bytes=a-b", "bytes=0-1x", "bytes=99999999999999999999999-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(parse(bad[i], 1000, &a, &b), GW_RANGE_NONE, "%s", bad[i]);
}
