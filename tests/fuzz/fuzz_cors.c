/* CORS origins (http/cors.c). Properties: an accepted list holds 1..GW_CORS_MAX_ORIGINS origins
 * of the form scheme://host[:port] (no path, space, comma or control byte); a listed origin is
 * echoed and an unlisted one never is; the preflight echoes only plain header lists. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "http/cors.h"

static void check_origin(const char *o)
{
    size_t skip = strncmp(o, "https://", 8) == 0 ? 8 : 7;
    HW_FUZZ_ASSERT(strncmp(o, "http://", 7) == 0 || skip == 8);
    HW_FUZZ_ASSERT(o[skip] != '\0');
    for (const char *p = o + skip; *p; p++)
        HW_FUZZ_ASSERT(*p != '/' && *p != ' ' && *p != ',' && (unsigned char)*p > 0x20 &&
                       *p != 0x7f);
}

static void check_headers(const struct gw_cors *c, const char *origin, const char *acrh)
{
    struct cm_sbuf s;
    cm_sbuf_init(&s);
    gw_cors_headers(c, origin, &s);
    int allowed = s.p != NULL && strstr(s.p, "Access-Control-Allow-Origin:") != NULL;
    int listed = 0;
    for (size_t i = 0; i < c->n; i++)
        listed |= strcmp(c->origin[i], origin) == 0;
    if (c->mode == GW_CORS_LIST)
        HW_FUZZ_ASSERT(allowed == (listed && origin[0] != '\0'));
    cm_sbuf_reset(&s);
    gw_cors_preflight(c, origin, acrh, (int)(strlen(acrh) & 1), &s);
    if (s.p != NULL && strstr(s.p, "\nAccess-Control-Allow-Headers: ") != NULL)
        HW_FUZZ_ASSERT(strpbrk(acrh, "\r\n:;\"") == NULL);
    cm_sbuf_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *z = malloc(size + 1);
    if (z == NULL)
        return 0;
    memcpy(z, data, size);
    z[size] = '\0';
    struct gw_cors *c = malloc(sizeof(*c));
    char err[256] = "";
    if (c == NULL)
        goto out;
    int rv = gw_cors_parse(z, c, err, sizeof(err));
    HW_FUZZ_ASSERT(rv == 0 || rv == CM_EINVAL);
    if (rv != 0) {
        HW_FUZZ_ASSERT(err[0] != '\0');
        goto out;
    }
    if (c->mode == GW_CORS_LIST) {
        HW_FUZZ_ASSERT(c->n >= 1 && c->n <= GW_CORS_MAX_ORIGINS);
        for (size_t i = 0; i < c->n; i++) {
            check_origin(c->origin[i]);
            check_headers(c, c->origin[i], "x-a, b");
        }
    }
    check_headers(c, "", "");
    check_headers(c, z, z); /* the input itself as Origin / Access-Control-Request-Headers */
out:
    free(c);
    free(z);
    return 0;
}
