/* Request-target helpers (http/http.c): gw_query_param, gw_http_query_param, gw_http_bearer,
 * gw_http_log_target. The first byte picks the parameter name, the rest is the target (and the
 * Authorization value). Properties: results point inside the input; a decoded value fits its
 * buffer and is never longer than the raw one; a bearer token is trimmed and non-empty; a log
 * target is bounded, has no byte that could break a log line, and never shows a token. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/http.h"

static void check_log(const char *target)
{
    char out[128];
    size_t tlen = strlen(target), full_cap = 3 * tlen + 2;
    char *full = malloc(full_cap); /* room for every byte escaped: never cut */
    HW_FUZZ_ASSERT(full != NULL);
    gw_http_log_target(target, full, full_cap);
    gw_http_log_target(target, out, sizeof(out));
    size_t n = strlen(out);
    HW_FUZZ_ASSERT(n < sizeof(out) && strncmp(full, out, n) == 0); /* a cut is a prefix */
    for (size_t i = 0; full[i]; i++) {
        unsigned char c = (unsigned char)full[i];
        HW_FUZZ_ASSERT(c > 0x20 && c < 0x7f && c != '"' && c != '\\');
    }
    const char *q = strchr(full, '?');
    if (q != NULL && strchr(target, '?') != NULL) {
        for (const char *p = q; p != NULL; p = strchr(p + 1, '&'))
            HW_FUZZ_ASSERT(strncmp(p + 1, "token=", 6) != 0 && strcmp(p + 1, "token") != 0 &&
                           strncmp(p + 1, "token&", 6) != 0);
    }
    free(full);
    char tiny[1] = {'x'};
    gw_http_log_target(target, tiny, sizeof(tiny));
    HW_FUZZ_ASSERT(tiny[0] == '\0');
}

static void check_bearer(const char *a)
{
    const char *tok;
    size_t n;
    if (!gw_http_bearer(a, &tok, &n))
        return;
    HW_FUZZ_ASSERT(n > 0 && tok >= a && tok + n <= a + strlen(a));
    HW_FUZZ_ASSERT(tok[0] != ' ' && tok[0] != '\t' && tok[n - 1] != ' ' && tok[n - 1] != '\t');
    HW_FUZZ_ASSERT(strncasecmp(a, "bearer", 6) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"token", "list", "prefix", "x", "a=b", ""};
    if (size == 0)
        return 0;
    const char *name = names[data[0] % (sizeof(names) / sizeof(names[0]))];
    char *t = malloc(size); /* NUL-terminated copy of data[1..] (C-string APIs) */
    if (t == NULL)
        return 0;
    memcpy(t, data + 1, size - 1);
    t[size - 1] = '\0';
    size_t tlen = strlen(t);
    const char *val;
    size_t vlen;
    char out[64];
    if (gw_http_query_param(t, name, &val, &vlen)) {
        HW_FUZZ_ASSERT(val > t && val + vlen <= t + tlen && val[-1] == '=');
        HW_FUZZ_ASSERT(val[vlen] == '\0' || val[vlen] == '&' || val[vlen] == '#');
    }
    int rv = gw_query_param(t, name, out, sizeof(out));
    HW_FUZZ_ASSERT(rv == -1 || rv == 0 || rv == 1);
    if (rv == 1) {
        HW_FUZZ_ASSERT(strlen(out) < sizeof(out) && strchr(t, '?') != NULL);
        HW_FUZZ_ASSERT(strlen(out) <= tlen);
    }
    if (rv != 0 && name[0] != '\0')
        HW_FUZZ_ASSERT(strstr(t, name) != NULL);
    check_log(t);
    check_bearer(t);
    free(t);
    return 0;
}
