/* Range header (http/range.c). The first two bytes give the representation's size, the rest is
 * the header value. Properties: a 206 range lies inside the representation; a plain
 * "bytes=A-B" / "bytes=A-" / "bytes=-N" agrees with a simple reference reading. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "http/range.h"

/* Reference for the plain forms (digits only, no spaces): 1 when it applies. */
static int reference(const char *v, size_t n, uint64_t size, enum gw_range_kind *kind,
                     uint64_t *first, uint64_t *last)
{
    char z[64];
    uint64_t a, b;
    int end = 0;
    if (n >= sizeof(z) || n < 7)
        return 0;
    memcpy(z, v, n);
    z[n] = '\0';
    if (strspn(z + 6, "0123456789-") != n - 6 || strncmp(z, "bytes=", 6) != 0 ||
        strchr(z, '-') != strrchr(z, '-') || strlen(z) > 6 + 19 + 1 + 19)
        return 0; /* at most 19 digits each: no overflow in sscanf */
    if (sscanf(z, "bytes=%19" SCNu64 "-%19" SCNu64 "%n", &a, &b, &end) == 2 && (size_t)end == n) {
        if (b < a)
            *kind = GW_RANGE_NONE;
        else if (a >= size)
            *kind = GW_RANGE_UNSATISFIABLE;
        else
            *kind = GW_RANGE_ONE, *first = a, *last = b < size - 1 ? b : size - 1;
        return 1;
    }
    end = 0;
    if (sscanf(z, "bytes=%19" SCNu64 "-%n", &a, &end) == 1 && (size_t)end == n) {
        *kind = a >= size ? GW_RANGE_UNSATISFIABLE : GW_RANGE_ONE;
        *first = a, *last = size - 1;
        return 1;
    }
    end = 0;
    if (z[6] == '-' && sscanf(z + 7, "%19" SCNu64 "%n", &b, &end) == 1 && (size_t)end == n - 7 &&
        z[7] != '-' && z[7] != '+') {
        *kind = b == 0 || size == 0 ? GW_RANGE_UNSATISFIABLE : GW_RANGE_ONE;
        *first = b >= size ? 0 : size - b, *last = size - 1;
        return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint64_t len = (uint64_t)data[0] << 8 | data[1];
    if (data[0] == 0xff)
        len = UINT64_MAX - data[1]; /* near the top of the range too */
    const char *v = (const char *)data + 2;
    size_t n = size - 2;
    uint64_t a = 0, b = 0, ra = 0, rb = 0;
    enum gw_range_kind k = gw_range_parse(v, n, len, &a, &b), rk;
    HW_FUZZ_ASSERT(k == GW_RANGE_NONE || k == GW_RANGE_ONE || k == GW_RANGE_UNSATISFIABLE);
    if (k == GW_RANGE_ONE)
        HW_FUZZ_ASSERT(a <= b && b < len);
    if (reference(v, n, len, &rk, &ra, &rb)) {
        HW_FUZZ_ASSERT(k == rk);
        if (k == GW_RANGE_ONE)
            HW_FUZZ_ASSERT(a == ra && b == rb);
    }
    return 0;
}
