/* Object keys: URL request-target -> normalised key (pure, no I/O).
 *
 * Rules (gw_key_normalize):
 *  - the request target may be origin-form ("/a/b") or absolute-form ("http://h/a/b"); the query
 *    string ("?...") and fragment ("#...") are not part of the key;
 *  - percent-escapes are decoded ("%41" -> "A"); a malformed escape is rejected;
 *  - a decoded NUL byte is rejected, and so is any other control byte (0x01-0x1f, 0x7f), raw or
 *    decoded;
 *  - runs of '/' collapse to one and "." segments are dropped ("/a//./b" -> "/a/b"), so one
 *    object has one key;
 *  - a ".." segment (also "%2e%2e") is rejected, never resolved;
 *  - the result starts with '/', has at least one byte after it and at most GW_KEY_MAX bytes. */
#ifndef GW_KEY_H
#define GW_KEY_H

#include <stddef.h>
#include <stdint.h>

#define GW_KEY_MAX 1024

/* Normalise target[0..len) into out (capacity outcap, NUL-terminated; outcap > GW_KEY_MAX is
 * always enough). Returns 0 or CM_EINVAL with a short reason in *why (static text). */
int gw_key_normalize(const char *target, size_t len, char *out, size_t outcap, size_t *outlen,
                     const char **why);

/* Length of the key's stream directory: the bytes before its last '/'. */
size_t gw_key_dir_len(const char *key, size_t len);

#endif
