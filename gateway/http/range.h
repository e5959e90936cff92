/* Range requests (RFC 9110 §14), pure: a single byte range (first-last, first-, -suffix)
 * becomes a 206; an unsatisfiable one a 416 with `Content-Range: bytes * /len`; anything else
 * (absent, malformed, another unit, several ranges) is ignored and the whole body goes out
 * with 200. */
#ifndef GW_RANGE_H
#define GW_RANGE_H

#include <stddef.h>
#include <stdint.h>

enum gw_range_kind {
    GW_RANGE_NONE,          /* serve the whole representation */
    GW_RANGE_ONE,           /* serve [first, last] with 206 */
    GW_RANGE_UNSATISFIABLE, /* 416 */
};

/* value: the Range header's value (not NUL-terminated), size: the representation's length. */
enum gw_range_kind gw_range_parse(const char *value, size_t len, uint64_t size, uint64_t *first,
                                  uint64_t *last);

#endif
