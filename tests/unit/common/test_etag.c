/* Entity-tags: derivation from the version and list comparison (common/etag.h). */
#include <criterion/criterion.h>
#include <string.h>

#include "etag.h"

#define S(x) x, strlen(x)

Test(etag, format_is_quoted_hex_version)
{
    char t[CM_ETAG_MAX];
    cm_etag_format(42, t);
    cr_assert_str_eq(t, "\"2a\"");
    cm_etag_format(UINT64_MAX, t);
    cr_assert_str_eq(t, "\"ffffffffffffffff\"");
}

Test(etag, lists)
{
    cr_assert(cm_etag_list_match(S("\"a\""), "\"a\"", 0));
    cr_assert(cm_etag_list_match(S("\"x\", \"a\""), "\"a\"", 0));
    cr_assert(cm_etag_list_match(S("*"), "\"a\"", 0));
    cr_assert(cm_etag_list_match(S(" * "), "\"a\"", 0));
    cr_assert(!cm_etag_list_match(S("*"), NULL, 0));
    cr_assert(!cm_etag_list_match(S("\"a\""), NULL, 1));
    cr_assert(!cm_etag_list_match(S("W/\"a\""), "\"a\"", 0), "strong comparison");
    cr_assert(cm_etag_list_match(S("W/\"a\""), "\"a\"", 1), "weak comparison");
    cr_assert(!cm_etag_list_match(S("\"a"), "\"a\"", 1));
    cr_assert(!cm_etag_list_match(S("\"ab\""), "\"a\"", 1));
    cr_assert(!cm_etag_list_match(S(""), "\"a\"", 1), "an empty list matches nothing");
}
