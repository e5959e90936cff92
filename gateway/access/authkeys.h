/* Access keys (`--keys FILE`), pure apart from loading the file. One rule a line:
 *
 *   <scope> <path-prefix> <key>     scope: read | write | admin (write implies read)
 *   private <path-prefix>           reads under it need a read or write key for it
 *   # comment
 *
 * Keys are kept only as SHA-256 digests and compared in constant time; they never appear in
 * an error message or a log line. */
#ifndef GW_AUTHKEYS_H
#define GW_AUTHKEYS_H

#include <stddef.h>

enum gw_access { GW_ACCESS_READ, GW_ACCESS_WRITE, GW_ACCESS_ADMIN };
enum gw_auth { GW_AUTH_OK = 0, GW_AUTH_MISSING = 401, GW_AUTH_FORBIDDEN = 403 };

struct gw_keys;

/* Parse a keys file's text. Errors name the line, never the key. */
int gw_keys_parse(const char *text, size_t len, struct gw_keys **out, char *errmsg, size_t errlen);
int gw_keys_load(const char *path, struct gw_keys **out, char *errmsg, size_t errlen);
void gw_keys_free(struct gw_keys *k);
size_t gw_keys_count(const struct gw_keys *k);

/* May a request needing `need` on `path` go ahead with this token (NULL/0 = none presented)?
 * k == NULL means no keys file: everything is open. A rule's prefix covers whole path segments:
 * "/live" (or "/live/") covers "/live" and "/live/...", never "/livex"; "/" covers every key. */
enum gw_auth gw_keys_check(const struct gw_keys *k, enum gw_access need, const char *path,
                           const char *token, size_t toklen);
/* Is this token a write key (for any prefix)? Write keys are refused in `?token=`: a URL ends up
 * in access logs, proxy caches and Referer headers. Constant time over the rules. */
int gw_keys_is_write(const struct gw_keys *k, const char *token, size_t toklen);

#endif
