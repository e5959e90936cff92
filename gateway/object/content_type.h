/* Content type of a stored object (pure): the PUT's Content-Type when given, else by the key's
 * extension (HLS/DASH/CMAF media types), else application/octet-stream. */
#ifndef GW_CONTENT_TYPE_H
#define GW_CONTENT_TYPE_H

#include <stddef.h>

/* header may be NULL or empty. Returns header itself or a static string; never NULL. */
const char *gw_ctype_for(const char *key, size_t keylen, const char *header);

#endif
