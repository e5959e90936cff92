/* Conditional headers (http/cond.c) and entity-tag lists (common/etag.c). The input is split
 * at '\n' into If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since ("-" = absent).
 * Properties: the result is one of the three; no header means proceed; a strong match implies a
 * weak one; "*" matches exactly when the object exists; If-Match on a missing object fails. */
#include <string.h>

#include "etag.h"
#include "fuzz.h"
#include "http/cond.h"

static void field(const char **p, const char *end, const char **v, size_t *n)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl ? nl : end;
    *v = *p;
    *n = (size_t)(stop - *p);
    *p = nl ? nl + 1 : end;
    if (*n == 1 && **v == '-')
        *v = NULL, *n = 0;
}

static void check_list(const char *s, size_t n)
{
    static const char *const tags[] = {"\"2a\"", "\"1\"", "\"\"", NULL};
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
        int strong = cm_etag_list_match(s, n, tags[i], 0);
        int weak = cm_etag_list_match(s, n, tags[i], 1);
        HW_FUZZ_ASSERT(!strong || weak);
        if (tags[i] == NULL)
            HW_FUZZ_ASSERT(!strong && !weak);
    }
    if (n == 1 && s[0] == '*')
        HW_FUZZ_ASSERT(cm_etag_list_match(s, n, "\"2a\"", 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    struct gw_cond c;
    field(&p, end, &c.if_match, &c.if_match_len);
    field(&p, end, &c.if_none_match, &c.if_none_match_len);
    field(&p, end, &c.if_modified_since, &c.if_modified_since_len);
    field(&p, end, &c.if_unmodified_since, &c.if_unmodified_since_len);
    if (c.if_match)
        check_list(c.if_match, c.if_match_len);
    if (c.if_none_match)
        check_list(c.if_none_match, c.if_none_match_len);
    for (int gh = 0; gh < 2; gh++) {
        enum gw_cond_result r = gw_cond_eval(&c, gh, "\"2a\"", 784111777);
        HW_FUZZ_ASSERT(r == GW_COND_PROCEED || r == GW_COND_NOT_MODIFIED || r == GW_COND_FAILED);
        HW_FUZZ_ASSERT(gh || r != GW_COND_NOT_MODIFIED); /* 304 only for GET/HEAD */
        r = gw_cond_eval(&c, gh, NULL, -1);
        if (c.if_match != NULL)
            HW_FUZZ_ASSERT(r == GW_COND_FAILED);
        else
            HW_FUZZ_ASSERT(r == GW_COND_PROCEED); /* nothing else matches a missing object */
    }
    struct gw_cond none = {0};
    HW_FUZZ_ASSERT(gw_cond_eval(&none, 1, "\"2a\"", 784111777) == GW_COND_PROCEED);
    return 0;
}
