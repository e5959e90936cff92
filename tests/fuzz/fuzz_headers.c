/* HTTP header value parsers: Range, conditional headers and dates, entity-tag lists,
 * per-prefix rules and the keys file. The first byte picks the parser. */
#include <stdlib.h>
#include <string.h>

#include "access/authkeys.h"
#include "http/cond.h"
#include "etag.h"
#include "fuzz.h"
#include "http/httpdate.h"
#include "http/range.h"
#include "object/rules.h"

const struct hw_fuzz_seed hw_fuzz_seeds[] = {
    HW_SEED("\x00bytes=0-99"),
    HW_SEED("\x00bytes=-500"),
    HW_SEED("\x00bytes=10-,20-30"),
    HW_SEED("\x01Sun, 06 Nov 1994 08:49:37 GMT"),
    HW_SEED("\x01Sunday, 06-Nov-94 08:49:37 GMT"),
    HW_SEED("\x01Sun Nov  6 08:49:37 1994"),
    HW_SEED("\x02W/\"a\", \"2a\", *"),
    HW_SEED("\x03/live/=max-age=2,/live/ch1/=300"),
    HW_SEED("\x04write /live/ k1\nread /p/ k2 # c\nprivate /p/\nadmin / k3\n"),
    {NULL, 0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    char *z = malloc(n + 1); /* NUL-terminated copy for the C-string APIs */
    if (z == NULL)
        return 0;
    memcpy(z, s, n);
    z[n] = '\0';
    switch (data[0] % 5) {
    case 0: {
        uint64_t a, b;
        uint64_t len = n ? (uint64_t)data[size - 1] * 977 : 0;
        if (gw_range_parse(s, n, len, &a, &b) == GW_RANGE_ONE && (a > b || b >= len))
            abort(); /* a range must lie inside the representation */
        break;
    }
    case 1: {
        int64_t t;
        char out[GW_HTTPDATE_LEN];
        if (gw_httpdate_parse(s, n, &t) == 0) {
            gw_httpdate_format(t, out);
        }
        struct gw_cond c = {s, n, s, n, s, n, s, n};
        gw_cond_eval(&c, 1, "\"2a\"", 784111777);
        gw_cond_eval(&c, 0, NULL, -1);
        break;
    }
    case 2:
        cm_etag_list_match(s, n, "\"2a\"", 0);
        cm_etag_list_match(s, n, "\"2a\"", 1);
        cm_etag_list_match(s, n, NULL, 1);
        cm_precond_write_ok(z, z, "\"2a\"");
        cm_precond_write_ok(z, NULL, NULL);
        break;
    case 3: {
        struct gw_rules r;
        char err[128];
        gw_rules_init(&r);
        gw_rules_parse(&r, z, err, sizeof(err));
        gw_cache_control(&r, "/live/ch1/a.ts", "");
        gw_lifecycle_ttl(&r, "/live/ch1/a.ts");
        gw_rules_free(&r);
        break;
    }
    default: {
        struct gw_keys *k;
        char err[256];
        if (gw_keys_parse(s, n, &k, err, sizeof(err)) == 0) {
            gw_keys_check(k, GW_ACCESS_WRITE, "/live/a.ts", "k1", 2);
            gw_keys_check(k, GW_ACCESS_READ, "/p/a.ts", NULL, 0);
            gw_keys_free(k);
        }
        break;
    }
    }
    free(z);
    return 0;
}
