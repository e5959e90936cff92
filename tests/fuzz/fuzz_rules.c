/* Per-prefix rules (object/rules.c). Properties: an accepted list has one rule per
 * comma-separated item, each prefix starting with '/' and a non-empty value without ','; the
 * match for a key is the longest prefix of it; a refused list says why. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "object/rules.h"

static void check_match(const struct gw_rules *r, const char *key)
{
    const char *v = gw_rules_match(r, key);
    size_t best = 0;
    int found = 0;
    for (size_t i = 0; i < r->n; i++) {
        size_t n = strlen(r->v[i].prefix);
        if (strncmp(key, r->v[i].prefix, n) == 0 && (!found || n >= best))
            best = n, found = 1;
    }
    HW_FUZZ_ASSERT(found == (v != NULL));
    gw_lifecycle_ttl(r, key);
    HW_FUZZ_ASSERT(gw_cache_control(r, key, "") != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *z = malloc(size + 1);
    if (z == NULL)
        return 0;
    memcpy(z, data, size);
    z[size] = '\0';
    struct gw_rules r;
    char err[128] = "";
    gw_rules_init(&r);
    int rv = gw_rules_parse(&r, z, err, sizeof(err));
    HW_FUZZ_ASSERT(rv == 0 || rv == CM_EINVAL);
    if (rv != 0) {
        HW_FUZZ_ASSERT(err[0] != '\0');
    } else {
        size_t items = z[0] ? 1 : 0;
        for (const char *p = z; (p = strchr(p, ',')) != NULL; p++)
            items++;
        if (z[0] != '\0' && z[strlen(z) - 1] == ',')
            items--; /* a trailing comma ends the list */
        HW_FUZZ_ASSERT(r.n == items);
        for (size_t i = 0; i < r.n; i++) {
            HW_FUZZ_ASSERT(r.v[i].prefix[0] == '/' && r.v[i].value[0] != '\0');
            HW_FUZZ_ASSERT(strchr(r.v[i].value, ',') == NULL);
            check_match(&r, r.v[i].prefix);
        }
    }
    check_match(&r, "/live/ch1/a.ts");
    check_match(&r, "/");
    gw_rules_free(&r);
    free(z);
    return 0;
}
