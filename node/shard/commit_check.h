/* What a COMMIT from the RPC port must satisfy before it becomes a Raft entry (pure).
 *
 * A COMMIT is the one request whose fields end up in every replica's state machine and are
 * served back to clients, so the node checks every field itself instead of trusting the
 * gateway: key (ND_COMMIT_KEY_MAX bytes, starts with '/', no control characters), a 16-byte
 * upload id, size (at most ND_COMMIT_SIZE_MAX), holders (a quorum of the replica count, at most
 * ND_COMMIT_HOLDERS_MAX, each a member, no repeats), content type and cache control (bounded,
 * printable ASCII only: they become HTTP header values), TTL (0 = none, else at most
 * ND_COMMIT_TTL_MAX seconds). */
#ifndef ND_SHARD_COMMIT_CHECK_H
#define ND_SHARD_COMMIT_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "headwater.pb-c.h"
#include "timeutil.h"

#define ND_COMMIT_KEY_MAX 1024u
#define ND_COMMIT_CTYPE_MAX 1024u
#define ND_COMMIT_CC_MAX 1024u
#define ND_COMMIT_TTL_MAX CM_TTL_MAX_S /* ten years, as the gateway (timeutil.h) */
#define ND_COMMIT_SIZE_MAX (1ull << 40)
#define ND_COMMIT_HOLDERS_MAX 16u
#define ND_COMMIT_UPLOAD_ID_LEN 16u

/* A key as stored: 1..ND_COMMIT_KEY_MAX bytes, a leading '/', no control characters. */
int nd_commit_key_ok(const char *key);

/* 0 when c may be proposed; else CM_EINVAL with why (for the error answer) filled in.
 * members: the group's server ids (nmembers of them); replicas: the shard's replica count. */
int nd_commit_check(const Hw__Commit *c, const uint32_t *members, size_t nmembers,
                    unsigned replicas, char *why, size_t whylen);

#endif
