/* Entity-tags and write preconditions (RFC 9110 §8.8.3, §13.1.1, §13.1.2), pure. One
 * implementation for the gateway (ETag headers, GET/HEAD conditionals) and the node's shard FSM
 * (a conditional COMMIT is evaluated at apply), so both derive and compare tags alike.
 *
 * An object's ETag is its version (the Raft index of its commit) in hex, quoted: "\"2a\"". */
#ifndef CM_ETAG_H
#define CM_ETAG_H

#include <stddef.h>
#include <stdint.h>

#include "headwater.pb-c.h"

#define CM_ETAG_MAX 24
/* Longest If-Match / If-None-Match value a COMMIT may carry. */
#define CM_PRECOND_VALUE_MAX 1024

/* "\"<version in hex>\"" */
void cm_etag_format(uint64_t version, char out[CM_ETAG_MAX]);

/* Does an entity-tag list ("*", or comma separated tags, W/ allowed) match etag (quoted; NULL =
 * no current representation)? weak: weak comparison (W/ tags match), else strong. "*" matches
 * any existing representation; a malformed list matches nothing. */
int cm_etag_list_match(const char *list, size_t len, const char *etag, int weak);

/* The preconditions of a write (PUT/POST) against the target's current ETag (NULL = it does not
 * exist): If-Match by strong comparison, then If-None-Match by weak comparison. NULL if_match /
 * if_none_match = header absent. 1 = proceed, 0 = 412. */
int cm_precond_write_ok(const char *if_match, const char *if_none_match, const char *etag);

/* If-Unmodified-Since of a write (§13.1.4, evaluated per §13.2.2 only without If-Match): does
 * the target, last modified at last_modified_ms (unix ms; < 0 = it does not exist), satisfy
 * "not modified after since_s" (unix s)? HTTP dates have one-second resolution. 1 = proceed. */
int cm_precond_unmodified_ok(int has_if_match, int64_t since_s, int64_t last_modified_ms);

/* A COMMIT's Precondition (NULL = none) against the key's live object: its version and
 * created_ms, or exists = 0. Every rule above, in RFC 9110 §13.2.2 order. 1 = proceed. */
int cm_precond_commit_ok(const Hw__Precondition *pc, int exists, uint64_t version,
                         int64_t created_ms);

#endif
