#ifndef CM_TIMEUTIL_H
#define CM_TIMEUTIL_H

#include <stdint.h>

int64_t cm_wall_ms(void);  /* unix time in ms */
uint64_t cm_mono_ms(void); /* monotonic ms */

#endif
