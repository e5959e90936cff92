#ifndef CM_TIMEUTIL_H
#define CM_TIMEUTIL_H

#include <stdint.h>

int64_t cm_wall_ms(void);  /* unix time in ms */
uint64_t cm_mono_ms(void); /* monotonic ms */

/* The longest object TTL anywhere (ten years): a ?ttl_seconds / X-Headwater-TTL / --lifecycle
 * value, or a COMMIT's ttl_seconds at a node. Keeps expiry arithmetic in ms far from overflow. */
#define CM_TTL_MAX_S 315360000

#endif
