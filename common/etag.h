/* Entity-tags (RFC 9110 §8.8.3), pure: how an object's ETag is derived from its metadata and how
 * entity-tag lists compare, in common/ so the gateway and the node share one implementation.
 *
 * An object's ETag is its version (the Raft index of its commit) in hex, quoted: "\"2a\"". */
#ifndef CM_ETAG_H
#define CM_ETAG_H

#include <stddef.h>
#include <stdint.h>

#define CM_ETAG_MAX 24

/* "\"<version in hex>\"" */
void cm_etag_format(uint64_t version, char out[CM_ETAG_MAX]);

/* Does an entity-tag list ("*", or comma separated tags, W/ allowed) match etag (quoted; NULL =
 * no current representation)? weak: weak comparison (W/ tags match), else strong. "*" matches
 * any existing representation; a malformed list matches nothing. */
int cm_etag_list_match(const char *list, size_t len, const char *etag, int weak);

#endif
