#include "http/range.h"

#include <string.h>

static size_t skip_ows(const char *s, size_t i, size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* Parse digits at s[*i]; 0 = none or overflow. */
static int digits(const char *s, size_t *i, size_t len, uint64_t *out)
{
    size_t start = *i;
    uint64_t v = 0;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        uint64_t d = (uint64_t)(s[*i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
        (*i)++;
    }
    *out = v;
    return *i > start;
}

enum gw_range_kind gw_range_parse(const char *value, size_t len, uint64_t size, uint64_t *first,
                                  uint64_t *last)
{
    size_t i = skip_ows(value, 0, len);
    uint64_t a = 0, b = 0;
    int has_a, has_b;

    if (len - i < 6 || strncasecmp(value + i, "bytes=", 6) != 0)
        return GW_RANGE_NONE;
    i = skip_ows(value, i + 6, len);
    has_a = digits(value, &i, len, &a);
    if (i >= len || value[i] != '-')
        return GW_RANGE_NONE;
    i++;
    has_b = digits(value, &i, len, &b);
    i = skip_ows(value, i, len);
    if (i != len || (!has_a && !has_b))
        return GW_RANGE_NONE; /* several ranges, trailing junk, or "bytes=-" */
    if (has_a) {
        if (has_b && b < a)
            return GW_RANGE_NONE; /* invalid range-spec: ignore the header */
        if (a >= size)
            return GW_RANGE_UNSATISFIABLE;
        *first = a;
        *last = has_b && b < size - 1 ? b : size - 1;
        return GW_RANGE_ONE;
    }
    if (b == 0 || size == 0) /* suffix: the last b bytes */
        return GW_RANGE_UNSATISFIABLE;
    *first = b >= size ? 0 : size - b;
    *last = size - 1;
    return GW_RANGE_ONE;
}
