/* Key normalisation (access/key.c). Properties of an accepted key: it starts with '/', is at
 * most GW_KEY_MAX bytes, has no "//", no "." or ".." segment, no NUL or other control byte, and
 * is a fixed point: normalising it again (percent-encoded where needed) gives the same key. */
#include <string.h>

#include "access/key.h"
#include "fuzz.h"
#include "shard.h"

/* The key as a request target that names it: bytes the target syntax would cut or decode
 * ('%', '?', '#', and anything outside printable ASCII) percent-encoded. */
static size_t encode(const char *key, size_t len, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == '%' || c == '?' || c == '#' || c <= 0x20 || c >= 0x7f) {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

static void check_shape(const char *k, size_t n)
{
    HW_FUZZ_ASSERT(n >= 2 && n <= GW_KEY_MAX && k[0] == '/' && strlen(k) == n);
    HW_FUZZ_ASSERT(strstr(k, "//") == NULL);
    HW_FUZZ_ASSERT(strstr(k, "/./") == NULL && strstr(k, "/../") == NULL);
    HW_FUZZ_ASSERT(!(n >= 2 && strcmp(k + n - 2, "/.") == 0));
    HW_FUZZ_ASSERT(!(n >= 3 && strcmp(k + n - 3, "/..") == 0));
    for (size_t i = 0; i < n; i++)
        HW_FUZZ_ASSERT((unsigned char)k[i] >= 0x20 && k[i] != 0x7f);
    HW_FUZZ_ASSERT(gw_key_dir_len(k, n) < n);
    HW_FUZZ_ASSERT(cm_shard_of(k, 7) < 7);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[GW_KEY_MAX + 2], again[GW_KEY_MAX + 2], enc[3 * GW_KEY_MAX + 1];
    const char *why;
    size_t n, m;
    /* a small output buffer must be refused, never overrun */
    char tiny[4];
    if (gw_key_normalize((const char *)data, size, tiny, sizeof(tiny), &n, &why) == 0)
        HW_FUZZ_ASSERT(n < sizeof(tiny) && tiny[n] == '\0');
    if (gw_key_normalize((const char *)data, size, out, sizeof(out), &n, &why) != 0) {
        HW_FUZZ_ASSERT(why != NULL && why[0] != '\0');
        return 0;
    }
    check_shape(out, n);
    size_t elen = encode(out, n, enc);
    HW_FUZZ_ASSERT(gw_key_normalize(enc, elen, again, sizeof(again), &m, &why) == 0);
    HW_FUZZ_ASSERT(m == n && memcmp(again, out, n) == 0);
    if (strpbrk(out, "%?#") == NULL) { /* nothing to re-decode: the key itself is a fixed point */
        HW_FUZZ_ASSERT(gw_key_normalize(out, n, again, sizeof(again), &m, &why) == 0);
        HW_FUZZ_ASSERT(m == n && memcmp(again, out, n) == 0);
    }
    return 0;
}
