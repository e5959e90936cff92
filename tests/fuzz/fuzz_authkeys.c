/* Access keys file (access/authkeys.c). Properties: a refused file names a line and never
 * echoes its bytes; in an accepted file every "read|write|admin /prefix KEY" line grants that
 * key its scope under the prefix; a write or admin check without a key is always 401. */
#include <stdlib.h>
#include <string.h>

#include "access/authkeys.h"
#include "err.h"
#include "fuzz.h"

static int is_sp(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Split a line (up to '#') into at most 4 words, as the keys file format says. */
static size_t words(const char *p, const char *end, const char **w, size_t *wl)
{
    size_t nw = 0;
    while (nw < 4) {
        while (p < end && is_sp(*p))
            p++;
        if (p == end)
            break;
        w[nw] = p;
        while (p < end && !is_sp(*p))
            p++;
        wl[nw] = (size_t)(p - w[nw]);
        nw++;
    }
    return nw;
}

static void check_line(const struct gw_keys *k, const char **w, const size_t *wl)
{
    static const char *const scopes[] = {"read", "write", "admin"};
    static const enum gw_access need[] = {GW_ACCESS_READ, GW_ACCESS_WRITE, GW_ACCESS_ADMIN};
    char path[256];
    if (wl[1] + 3 > sizeof(path) || memchr(w[1], '\0', wl[1]) != NULL)
        return;
    memcpy(path, w[1], wl[1]);
    memcpy(path + wl[1], "/x", 3); /* a key under the prefix: prefixes cover whole segments */
    for (int s = 0; s < 3; s++) {
        if (wl[0] == strlen(scopes[s]) && memcmp(w[0], scopes[s], wl[0]) == 0)
            HW_FUZZ_ASSERT(gw_keys_check(k, need[s], path, w[2], wl[2]) == GW_AUTH_OK);
    }
}

static void check_accepted(const struct gw_keys *k, const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    HW_FUZZ_ASSERT(gw_keys_check(k, GW_ACCESS_WRITE, "/a", NULL, 0) == GW_AUTH_MISSING);
    HW_FUZZ_ASSERT(gw_keys_check(k, GW_ACCESS_ADMIN, "/", "", 0) == GW_AUTH_MISSING);
    enum gw_auth a = gw_keys_check(k, GW_ACCESS_READ, "/p/a", "zz", 2);
    HW_FUZZ_ASSERT(a == GW_AUTH_OK || a == GW_AUTH_FORBIDDEN);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *lend = nl ? nl : end;
        const char *hash = memchr(p, '#', (size_t)(lend - p));
        const char *w[4];
        size_t wl[4];
        if (words(p, hash ? hash : lend, w, wl) == 3)
            check_line(k, w, wl);
        p = nl ? nl + 1 : end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct gw_keys *k = NULL;
    char err[256] = "";
    int rv = gw_keys_parse(text, size, &k, err, sizeof(err));
    HW_FUZZ_ASSERT(rv == 0 || rv == CM_EINVAL);
    if (rv != 0) {
        HW_FUZZ_ASSERT(strncmp(err, "keys file line ", 15) == 0 && k == NULL);
        return 0;
    }
    HW_FUZZ_ASSERT(k != NULL);
    check_accepted(k, text, size);
    gw_keys_free(k);
    return 0;
}
