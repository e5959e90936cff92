/* Entity-tags and write preconditions: the one implementation the gateway (ETag headers) and the
 * node FSM (conditional COMMIT at apply) share. */
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

Test(precond, absent_headers_always_proceed)
{
    cr_assert(cm_precond_write_ok(NULL, NULL, NULL));
    cr_assert(cm_precond_write_ok(NULL, NULL, "\"2a\""));
}

Test(precond, if_match_is_strong)
{
    cr_assert(cm_precond_write_ok("\"2a\"", NULL, "\"2a\""));
    cr_assert(cm_precond_write_ok("\"1\", \"2a\"", NULL, "\"2a\""));
    cr_assert(!cm_precond_write_ok("\"2b\"", NULL, "\"2a\""), "another version");
    cr_assert(!cm_precond_write_ok("W/\"2a\"", NULL, "\"2a\""), "weak tag never matches");
    cr_assert(!cm_precond_write_ok("\"2a\"", NULL, NULL), "no current object");
    cr_assert(cm_precond_write_ok("*", NULL, "\"2a\""));
    cr_assert(!cm_precond_write_ok("*", NULL, NULL), "If-Match: * needs an object");
    cr_assert(!cm_precond_write_ok("", NULL, "\"2a\""), "an empty If-Match matches nothing");
}

Test(precond, if_none_match_is_weak)
{
    cr_assert(cm_precond_write_ok(NULL, "*", NULL), "create-only on a fresh key");
    cr_assert(!cm_precond_write_ok(NULL, "*", "\"2a\""), "create-only on an existing key");
    cr_assert(!cm_precond_write_ok(NULL, "\"2a\"", "\"2a\""));
    cr_assert(!cm_precond_write_ok(NULL, "W/\"2a\"", "\"2a\""), "weak comparison");
    cr_assert(cm_precond_write_ok(NULL, "\"2b\"", "\"2a\""));
    cr_assert(cm_precond_write_ok(NULL, "\"2a\"", NULL));
}

Test(precond, both_must_hold)
{
    cr_assert(cm_precond_write_ok("\"2a\"", "\"1\"", "\"2a\""));
    cr_assert(!cm_precond_write_ok("\"2a\"", "\"2a\"", "\"2a\""));
    cr_assert(!cm_precond_write_ok("\"1\"", "\"2a\"", "\"2a\""));
}

/* If-Unmodified-Since has one-second resolution, yields to If-Match, needs an object. */
Test(precond, if_unmodified_since)
{
    cr_assert(cm_precond_unmodified_ok(0, 1000, 1000999), "modified within that second");
    cr_assert(cm_precond_unmodified_ok(0, 1000, 999000), "modified before");
    cr_assert(!cm_precond_unmodified_ok(0, 1000, 1001000), "modified after");
    cr_assert(cm_precond_unmodified_ok(1, 1000, 1001000), "If-Match decides instead");
    cr_assert(cm_precond_unmodified_ok(0, 1000, -1), "no object: nothing to compare");
}
