/* A streaming check of raft_uv's message format (pure), run over every byte an authenticated
 * inbound Raft connection sends before raft reads it (node/shard/transport.c).
 *
 *   preamble: u64 LE type | u64 LE header length
 *   header:   per type (RequestVote 32/40 bytes, its result 16/24, AppendEntries result and
 *             TimeoutNow 24, AppendEntries 48 + 16 per entry, InstallSnapshot 56 + config;
 *             raft 0.15 sizes both of these one u64 larger than it writes: 8 unused bytes)
 *   payload:  AppendEntries: the entries' data; InstallSnapshot: the snapshot data
 *
 * Refused: an unknown type, a header length that does not fit its type or exceeds
 * ND_RAFT_HEADER_MAX, an AppendEntries whose entry count disagrees with its header length, an
 * entry of a type raft does not know (the audit's crash packet), entry data past
 * ND_RAFT_ENTRIES_MAX, a snapshot past ND_RAFT_SNAPSHOT_MAX, an InstallSnapshot whose
 * configuration length disagrees with its header length. Raft decodes a header only once it
 * has all of it, so a header that fails here is never decoded. */
#ifndef ND_SHARD_RAFT_GUARD_H
#define ND_SHARD_RAFT_GUARD_H

#include <stddef.h>
#include <stdint.h>

#define ND_RAFT_HEADER_MAX (1u << 20)
#define ND_RAFT_ENTRIES_MAX (64ull << 20)
#define ND_RAFT_SNAPSHOT_MAX (4ull << 30)

struct nd_raft_guard {
    int state;
    uint8_t acc[16]; /* the field being assembled */
    size_t acc_have, acc_need;
    uint64_t type;
    uint64_t hlen;     /* header bytes of the current message */
    uint64_t hdone;    /* header bytes consumed */
    uint64_t nentries; /* AppendEntries: entries announced */
    uint64_t entry;    /* AppendEntries: entries checked */
    uint64_t payload;  /* payload bytes still to pass */
    uint64_t skip;     /* bytes passed unchecked (fields we do not look at) */
    const char *why;   /* set when refused */
};

void nd_raft_guard_init(struct nd_raft_guard *g);
/* Check the next n bytes of the stream. 0 = fine so far, CM_EPROTO = refuse the connection
 * (g->why says why; the stream stays refused). */
int nd_raft_guard_feed(struct nd_raft_guard *g, const uint8_t *p, size_t n);

#endif
