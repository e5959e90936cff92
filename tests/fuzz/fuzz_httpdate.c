/* HTTP-date (http/httpdate.c). Properties of an accepted date: not before 1970, formatting it
 * gives an IMF-fixdate that parses back to the same second, no field was negative or signed, and
 * an accepted IMF-fixdate is already in canonical form (apart from the weekday). */
#include <string.h>

#include "fuzz.h"
#include "http/httpdate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char out[GW_HTTPDATE_LEN];
    int64_t t, t2;
    if (gw_httpdate_parse(s, size, &t) != 0)
        return 0;
    HW_FUZZ_ASSERT(t >= 0);
    HW_FUZZ_ASSERT(memchr(s, '+', size) == NULL);
    size_t dashes = 0;
    for (size_t i = 0; i < size; i++)
        dashes += s[i] == '-';
    HW_FUZZ_ASSERT(dashes == 0 || dashes == 2); /* only RFC 850's date separators */
    gw_httpdate_format(t, out);
    HW_FUZZ_ASSERT(strlen(out) == GW_HTTPDATE_LEN - 1 || t > 253402300799); /* year > 9999 */
    if (strlen(out) == GW_HTTPDATE_LEN - 1) {
        HW_FUZZ_ASSERT(gw_httpdate_parse(out, strlen(out), &t2) == 0 && t2 == t);
        if (size == GW_HTTPDATE_LEN - 1 && s[3] == ',' && s[4] == ' ' && s[5] != ' ')
            HW_FUZZ_ASSERT(memcmp(out + 3, s + 3, size - 3) == 0 || s[23] == '6');
    }
    return 0;
}
