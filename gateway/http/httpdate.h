/* HTTP dates (RFC 9110 §5.6.7), pure: format IMF-fixdate; parse IMF-fixdate and the two
 * obsolete forms (RFC 850, asctime). */
#ifndef GW_HTTPDATE_H
#define GW_HTTPDATE_H

#include <stddef.h>
#include <stdint.h>

#define GW_HTTPDATE_LEN 30 /* "Sun, 06 Nov 1994 08:49:37 GMT" + NUL */

void gw_httpdate_format(int64_t unix_s, char out[GW_HTTPDATE_LEN]);
/* 0 and *unix_s, or -1 when the text is not an HTTP date. */
int gw_httpdate_parse(const char *s, size_t len, int64_t *unix_s);

#endif
