#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "json.h"

static struct ctl_json *ok(const char *text)
{
    struct ctl_json *v = NULL;
    char err[128] = "";
    int rc = ctl_json_parse(text, strlen(text), &v, err, sizeof(err));
    cr_assert_eq(rc, 0, "parse '%s': %s", text, err);
    cr_assert_not_null(v);
    return v;
}

static void bad(const char *text)
{
    struct ctl_json *v = (struct ctl_json *)1;
    char err[128] = "";
    int rc = ctl_json_parse(text, strlen(text), &v, err, sizeof(err));
    cr_assert_eq(rc, CM_EPROTO, "'%s' should be rejected", text);
    cr_assert_null(v);
    cr_assert(strncmp(err, "offset ", 7) == 0, "errmsg '%s'", err);
}

Test(json, scalars)
{
    struct ctl_json *v = ok(" true ");
    cr_assert_eq(v->type, CTL_JSON_BOOL);
    cr_assert_eq(v->boolean, 1);
    ctl_json_free(v);
    v = ok("null");
    cr_assert_eq(v->type, CTL_JSON_NULL);
    ctl_json_free(v);
    v = ok("-12");
    int64_t i = 0;
    cr_assert_eq(ctl_json_int(v, &i), 0);
    cr_assert_eq(i, -12);
    ctl_json_free(v);
    v = ok("9223372036854775807");
    cr_assert_eq(ctl_json_int(v, &i), 0);
    cr_assert_eq(i, INT64_MAX);
    ctl_json_free(v);
    v = ok("99999999999999999999"); /* not an exact int64: only a double */
    cr_assert_neq(ctl_json_int(v, &i), 0);
    cr_assert_float_eq(v->number, 1e20, 1e6);
    ctl_json_free(v);
    v = ok("1.5e3");
    cr_assert_float_eq(v->number, 1500.0, 1e-9);
    cr_assert_neq(ctl_json_int(v, &i), 0);
    ctl_json_free(v);
    v = ok("0");
    cr_assert_eq(ctl_json_int(v, &i), 0);
    cr_assert_eq(i, 0);
    ctl_json_free(v);
}

Test(json, strings_and_escapes)
{
    struct ctl_json *v = ok("\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\u20ac\\ud83d\\ude00\"");
    cr_assert_eq(v->type, CTL_JSON_STRING);
    cr_assert_str_eq(v->str, "a\"b\\c/d\n\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    ctl_json_free(v);
    v = ok("\"x\\u0000y\"");
    cr_assert_eq(v->len, 3);
    cr_assert_eq(memcmp(v->str, "x\0y", 3), 0);
    ctl_json_free(v);
    v = ok("\"\"");
    cr_assert_eq(v->len, 0);
    cr_assert_str_eq(ctl_json_str(v), "");
    ctl_json_free(v);
}

Test(json, objects_and_arrays)
{
    struct ctl_json *v =
        ok("{\"a\":1,\"b\":[true,false,null,{\"c\":\"d\"}],\"a\":2,\"e\":{}, \"f\":[]}");
    int64_t i = 0;
    cr_assert_eq(ctl_json_count(v), 5);
    cr_assert_eq(ctl_json_int(ctl_json_get(v, "a"), &i), 0);
    cr_assert_eq(i, 1, "duplicate keys answer the first");
    const struct ctl_json *b = ctl_json_get(v, "b");
    cr_assert_eq(ctl_json_count(b), 4);
    cr_assert_str_eq(ctl_json_str(ctl_json_get(ctl_json_at(b, 3), "c")), "d");
    cr_assert_null(ctl_json_at(b, 4));
    cr_assert_null(ctl_json_get(b, "c"), "get on an array");
    cr_assert_null(ctl_json_get(v, "zz"));
    cr_assert_eq(ctl_json_count(ctl_json_get(v, "e")), 0);
    cr_assert_eq(ctl_json_count(ctl_json_get(v, "f")), 0);
    int flag = 7;
    cr_assert_neq(ctl_json_bool(ctl_json_get(v, "a"), &flag), 0);
    cr_assert_eq(flag, 7, "untouched on a type mismatch");
    ctl_json_free(v);
}

Test(json, rejects_malformed)
{
    static const char *cases[] = {
        "",
        " ",
        "{",
        "}",
        "[",
        "[1,]",
        "[,1]",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{a:1}",
        "{'a':1}",
        "tru",
        "nul",
        "falsey",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "1e+",
        "+1",
        "\"abc",
        "\"a\\\"",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"a\nb\"",
        "1 2",
        "[1] x",
        "{\"a\":1}}",
        "NaN",
        "Infinity",
        "1e400", /* would be inf (found by fuzz_json) */
        "-1.5e5678901234567890",
        "[1 2]",
        "{\"a\" 1}",
        "{\"a\":1 \"b\":2}",
        "\"\\",
        "[\"a\\u",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        bad(cases[i]);
}

Test(json, embedded_nul_byte_outside_strings_is_an_error)
{
    struct ctl_json *v = NULL;
    char err[64];
    cr_assert_eq(ctl_json_parse("[1]\0", 4, &v, err, sizeof(err)), CM_EPROTO);
    cr_assert_eq(ctl_json_parse("\"a\0b\"", 5, &v, err, sizeof(err)), CM_EPROTO);
    cr_assert_eq(ctl_json_parse(NULL, 0, &v, err, sizeof(err)), CM_EPROTO);
    cr_assert_null(v);
}

Test(json, depth_is_bounded)
{
    char deep[4096];
    size_t n = 0;
    for (int i = 0; i < 2000; i++)
        deep[n++] = '[';
    struct ctl_json *v = NULL;
    char err[64];
    cr_assert_eq(ctl_json_parse(deep, n, &v, err, sizeof(err)), CM_EPROTO);
    cr_assert(strstr(err, "deep") != NULL, "%s", err);
    /* exactly at the limit is fine */
    n = 0;
    for (int i = 0; i < CTL_JSON_MAX_DEPTH; i++)
        deep[n++] = '[';
    for (int i = 0; i < CTL_JSON_MAX_DEPTH; i++)
        deep[n++] = ']';
    cr_assert_eq(ctl_json_parse(deep, n, &v, err, sizeof(err)), 0, "%s", err);
    ctl_json_free(v);
}

static const char sample[] =
    "{\"quorum\":true,\"leader\":1,\"shards\":1,\"epoch\":1,\"nodes\":[{\"id\":1,"
    "\"address\":\"127.0.0.1:7001\",\"zone\":\"\",\"role\":\"leader\",\"term\":2,"
    "\"commit_index\":42,\"applied_index\":42,\"last_index\":42,\"lag\":0,"
    "\"repair_backlog\":0,\"reachable\":true},{\"id\":2,\"lag\":null,\"s\":\"\\u00e9\\n\"}]}";

Test(json, every_truncation_is_rejected_without_crash)
{
    size_t len = strlen(sample);
    for (size_t cut = 0; cut < len; cut++) {
        struct ctl_json *v = NULL;
        char err[64];
        int rc = ctl_json_parse(sample, cut, &v, err, sizeof(err));
        /* A prefix can itself be valid only if it is a bare number; not the case here. */
        cr_assert_eq(rc, CM_EPROTO, "prefix of %zu bytes accepted", cut);
        cr_assert_null(v);
    }
    struct ctl_json *v = ok(sample);
    ctl_json_free(v);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

Test(json, random_garbage_and_mutations_never_crash)
{
    static const char alphabet[] = "{}[]\":,\\u0123456789abcdefEe+-.tnrl \n\t\x01\xff";
    char buf[256];
    for (int round = 0; round < 20000; round++) {
        size_t n = rnd() % sizeof(buf);
        if (round % 2 == 0) {
            for (size_t i = 0; i < n; i++)
                buf[i] = alphabet[rnd() % (sizeof(alphabet) - 1)];
        } else {
            /* mutate the sample: flip, delete or duplicate a few bytes */
            n = strlen(sample) < sizeof(buf) ? strlen(sample) : sizeof(buf);
            memcpy(buf, sample, n);
            for (int k = 0; k < 3; k++)
                buf[rnd() % n] = alphabet[rnd() % (sizeof(alphabet) - 1)];
        }
        struct ctl_json *v = NULL;
        char err[64];
        int rc = ctl_json_parse(buf, n, &v, err, sizeof(err));
        cr_assert(rc == 0 || rc == CM_EPROTO);
        cr_assert((rc == 0) == (v != NULL));
        ctl_json_free(v);
    }
}

Test(json, out_of_memory_is_reported_and_leaks_nothing)
{
    int saw_oom = 0;
    for (long n = 0; n < 200; n++) {
        struct ctl_json *v = NULL;
        char err[64];
        cm_alloc_fail_after(n);
        int rc = ctl_json_parse(sample, strlen(sample), &v, err, sizeof(err));
        cm_alloc_fail_after(-1);
        if (rc == 0) {
            ctl_json_free(v);
            break;
        }
        cr_assert_eq(rc, CM_ENOMEM, "countdown %ld: rc %d (%s)", n, rc, err);
        cr_assert_null(v);
        saw_oom = 1;
    }
    cr_assert(saw_oom);
}
