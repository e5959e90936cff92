/* Volume store (issue 10, after Haystack, Beaver et al., OSDI 2010): object bytes live in a few
 * large append-only files per node ("volumes", DIR/NNNNNNNN.vol), written once; the key-value
 * store underneath (RocksDB) keeps only small records, among them a 21-byte pointer per chunk.
 * It wraps that store behind the same seam (store/store.h), so the layers above write and read
 * chunk records ('u' upload offset) as before:
 *
 *   write: a batch's chunk puts are appended to the active volume (one pwrite each, no sync;
 *          a big one's writeback started at once with sync_file_range),
 *          the batch goes to the inner store with pointers in their place;
 *   sync:  a write with sync, and nd_store_sync, are a group commit: one
 *          fdatasync of every volume written since the last one, then the inner store's sync
 *          (its WAL: a few hundred bytes), shared by every caller that arrived meanwhile;
 *   read:  nd_store_chunk_read preads straight into the caller's buffer; a partial read checks
 *          the chunk's own crc32c first;
 *   full:  appends stop (CM_ENOSPC) while less than a reserve is free (0.5 % of the filesystem,
 *          8..64 MiB), every write while less than half of it is, so the index (RocksDB
 *          does not survive a full disk) and the raft log never meet one;
 *   space: deletes and overwrites only drop pointers; a background thread reclaims sealed
 *          volumes: one with no live record is unlinked at once; one that is still mostly
 *          garbage 30 s after it was sealed (live video deletes its segments within seconds,
 *          so most volumes die whole) has its live records copied to the active volume at a
 *          bounded rate; the reclaimed volume is then unlinked, or kept as a spare;
 *   reuse: up to ND_VOL_SPARES_MAX spares (DIR/NNNNNNNN.spr, while they are at most 1 % of a
 *          file system with four reserves free) are reused by the next new volumes, renamed to
 *          their new id: overwriting a file the kernel still caches costs it no new pages and
 *          the fdatasync no journal commit for new blocks (half the system time and fsync
 *          latency of writing new files here). Ids are never reused, so no pointer names what
 *          a reused file held before; appends after a reopen go past the file's old end.
 *
 * Record: header (40 bytes: "HWV1", payload length u32, payload crc32c u32, header crc32c
 * u32, upload id 16, offset u64; big-endian) + payload. Pointer: 'V', volume u32, payload
 * position u64, length u32, crc32c u32. Durability: a chunk is durable once a sync covered it
 * (the volume's fdatasync, and the directory's fsync once a volume was created or renamed, before
 * the pointer's WAL sync, so no durable pointer names bytes or a file name that are not); a torn
 * tail after a crash is never named by a durable pointer. */
#ifndef ND_STORE_VOL_H
#define ND_STORE_VOL_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "store/volopts.h"

void nd_vol_opts_default(struct nd_vol_opts *o);
/* Wrap inner (adopted: closed with s, also on error) with volumes in dir (created). A store of
 * the earlier format (object bytes inside the inner store) is migrated into volumes first. */
int nd_store_vol_open(struct nd_store *s, struct nd_store *inner, const char *dir,
                      const struct nd_vol_opts *o, char *errmsg, size_t errlen);
/* Is s a volume store? (stats and compaction apply only then) */
int nd_store_is_vol(const struct nd_store *s);
void nd_store_vol_stats(struct nd_store *s, struct nd_vol_stats *out);
/* One compaction pass on the caller's thread (tests; the background thread does the same):
 * every sealed volume at or past the garbage threshold (all of them with force); returns the
 * number of volumes reclaimed, or an error. */
int nd_store_vol_compact(struct nd_store *s, int force);

#endif
