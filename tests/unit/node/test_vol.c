/* The volume store (store/vol.h) on its seam, over a real RocksDB index in a temp dir:
 * chunks round-trip through volumes, a torn tail is survived, the live-byte index is rebuilt on
 * open, compaction reclaims space while readers read, the earlier format is migrated, and a
 * flipped byte is caught. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <uv.h>

#include "alloc.h"
#include "err.h"
#include "store/rocks.h"
#include "store/vol.h"

static char dir[64];
static struct nd_store st;

static void rm_rf(const char *path)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    cr_assert_eq(system(cmd), 0);
}

static void open_store(uint64_t volume_size, uint64_t rate)
{
    char db[128], vols[128], err[256];
    struct nd_store inner;
    snprintf(db, sizeof(db), "%s/db", dir);
    snprintf(vols, sizeof(vols), "%s/volumes", dir);
    mkdir(db, 0700);
    cr_assert_eq(nd_store_rocks_open(&inner, db, err, sizeof(err)), 0, "%s", err);
    struct nd_vol_opts o;
    nd_vol_opts_default(&o);
    o.volume_size = volume_size;
    o.compact_rate = rate;
    cr_assert_eq(nd_store_vol_open(&st, &inner, vols, &o, err, sizeof(err)), 0, "%s", err);
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/hw-vol-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    open_store(1 << 20, 0);
}

static void teardown(void)
{
    nd_store_close(&st);
    rm_rf(dir);
}

/* Where the record after one of len payload bytes starts (records are padded to 4 KiB). */
static off_t span(size_t len)
{
    return (off_t)((40 + len + 4095) / 4096 * 4096);
}

static void upload_id(uint8_t id[ND_UPLOAD_ID_LEN], unsigned n)
{
    memset(id, 0, ND_UPLOAD_ID_LEN);
    memcpy(id, &n, sizeof(n));
}

static void fill(char *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (char)((i * 131 + seed * 7) >> 3);
}

static void put_chunk(unsigned n, size_t len, int sync)
{
    uint8_t id[ND_UPLOAD_ID_LEN];
    struct nd_skey k;
    char *p = cm_malloc(len);
    fill(p, len, n);
    upload_id(id, n);
    nd_skey_chunk(&k, id, 0);
    struct nd_batch b;
    nd_batch_init(&b);
    nd_batch_put_ref(&b, &k, p, len);
    cr_assert_eq(nd_store_write(&st, &b, sync), 0);
    nd_batch_close(&b);
    cm_free(p);
}

static void del_chunks(unsigned n)
{
    uint8_t id[ND_UPLOAD_ID_LEN];
    upload_id(id, n);
    struct nd_batch b;
    nd_batch_init(&b);
    nd_batch_del_chunks(&b, id);
    cr_assert_eq(nd_store_write(&st, &b, 0), 0);
    nd_batch_close(&b);
}

/* Read chunk n back ([skip, skip + len), verify as asked): 0 and byte-exact, or the error. */
static int read_chunk(unsigned n, size_t want_len, uint64_t skip, size_t len, int verify)
{
    uint8_t id[ND_UPLOAD_ID_LEN];
    struct nd_skey k;
    upload_id(id, n);
    nd_skey_chunk(&k, id, 0);
    char *v;
    size_t vlen;
    int rv = nd_store_get(&st, &k, &v, &vlen);
    if (rv != 0)
        return rv;
    uint64_t clen;
    cr_assert_eq(nd_store_chunk_len(&st, v, vlen, &clen), 0);
    cr_assert_eq(clen, want_len);
    char *got = cm_malloc(len ? len : 1), *exp = cm_malloc(want_len ? want_len : 1);
    rv = nd_store_chunk_read(&st, v, vlen, skip, len, got, verify);
    fill(exp, want_len, n);
    if (rv == 0)
        cr_assert(memcmp(got, exp + skip, len) == 0, "chunk %u differs", n);
    cm_free(got);
    cm_free(exp);
    cm_free(v);
    return rv;
}

static size_t count_files(const char *ext)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "ls %s/volumes | grep -c '\\.%s$'", dir, ext);
    FILE *f = popen(cmd, "r");
    int n = 0;
    cr_assert_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    return (size_t)n;
}

static size_t count_volumes(void)
{
    return count_files("vol");
}

TestSuite(vol, .init = setup, .fini = teardown);

Test(vol, chunks_round_trip_and_survive_a_reopen)
{
    cr_assert(nd_store_is_vol(&st));
    for (unsigned i = 1; i <= 20; i++)
        put_chunk(i, 100000 + i, i == 20);
    for (unsigned i = 1; i <= 20; i++) {
        cr_assert_eq(read_chunk(i, 100000 + i, 0, 100000 + i, 0), 0);
        cr_assert_eq(read_chunk(i, 100000 + i, 777, 5000, 1), 0); /* partial: checked */
    }
    cr_assert_gt(count_volumes(), 1, "1 MiB volumes roll over");
    struct nd_vol_stats s0, s1;
    nd_store_vol_stats(&st, &s0);
    nd_store_close(&st);
    open_store(1 << 20, 0);
    nd_store_vol_stats(&st, &s1);
    cr_assert_eq(s1.live_bytes, s0.live_bytes, "live bytes rebuilt from the index on open");
    cr_assert_eq(s1.volumes, s0.volumes);
    for (unsigned i = 1; i <= 20; i++)
        cr_assert_eq(read_chunk(i, 100000 + i, 0, 100000 + i, 1), 0);
}

/* FINISH writes only the finished staged record, with sync: the chunks staged before it must
 * be made durable by that sync too (each volume written since its last sync gets one). */
Test(vol, a_sync_write_makes_earlier_chunks_durable)
{
    put_chunk(1, 20000, 0);
    put_chunk(2, 20000, 0);
    struct nd_vol_stats s0, s1;
    nd_store_vol_stats(&st, &s0);
    struct nd_batch b;
    struct nd_skey k;
    uint8_t id[ND_UPLOAD_ID_LEN];
    upload_id(id, 1);
    nd_skey_staged(&k, id);
    nd_batch_init(&b);
    nd_batch_put(&b, &k, "finished", 8);
    cr_assert_eq(nd_store_write(&st, &b, 1), 0);
    nd_batch_close(&b);
    nd_store_vol_stats(&st, &s1);
    cr_assert_eq(s1.syncs, s0.syncs + 1, "the volume holding the chunks was not synced");
    cr_assert_eq(nd_store_sync(&st), 0);
    nd_store_vol_stats(&st, &s0);
    cr_assert_eq(s0.syncs, s1.syncs, "nothing written since: no volume sync");
}

Test(vol, a_torn_tail_is_survived)
{
    put_chunk(1, 50000, 1);
    put_chunk(2, 50000, 0);
    nd_store_close(&st);
    char path[128];
    snprintf(path, sizeof(path), "%s/volumes/00000001.vol", dir);
    cr_assert_eq(truncate(path, span(50000) + 40 + 20000), 0); /* chunk 2 torn mid-payload */
    open_store(1 << 20, 0);
    cr_assert_eq(read_chunk(1, 50000, 0, 50000, 1), 0);
    cr_assert_neq(read_chunk(2, 50000, 0, 50000, 0), 0, "a torn chunk reads as an error");
    put_chunk(3, 70000, 1); /* appends go on after the tail */
    cr_assert_eq(read_chunk(3, 70000, 0, 70000, 1), 0);
    cr_assert_eq(read_chunk(1, 50000, 0, 50000, 1), 0);
}

Test(vol, a_flipped_byte_fails_the_check)
{
    put_chunk(1, 30000, 1);
    char path[128];
    snprintf(path, sizeof(path), "%s/volumes/00000001.vol", dir);
    int fd = open(path, O_RDWR);
    char c;
    cr_assert_eq(pread(fd, &c, 1, 40 + 1000), 1);
    c ^= 0x40;
    cr_assert_eq(pwrite(fd, &c, 1, 40 + 1000), 1);
    close(fd);
    cr_assert_eq(read_chunk(1, 30000, 0, 30000, 1), CM_ECHECKSUM);
    cr_assert_eq(read_chunk(1, 30000, 10, 100, 1), CM_ECHECKSUM, "partial reads check too");
}

/* An append that failed (or was not yet written when a later one's sync ran, before a crash)
 * leaves a hole of unreadable bytes with named records after it: compaction must still move
 * them, not stop at the hole and unlink the volume under them. */
Test(vol, compaction_moves_the_records_after_a_hole)
{
    put_chunk(1, 30000, 0);
    put_chunk(2, 30000, 0);
    put_chunk(3, 30000, 1);
    char path[128];
    snprintf(path, sizeof(path), "%s/volumes/00000001.vol", dir);
    int fd = open(path, O_RDWR);
    char zero[40] = {0};
    cr_assert_eq(pwrite(fd, zero, sizeof(zero), span(30000)), 40); /* chunk 2's header */
    close(fd);
    del_chunks(1);
    put_chunk(4, 1000000, 1); /* seals volume 1: the next one takes over */
    cr_assert_gt(nd_store_vol_compact(&st, 1), 0, "the volume was reclaimed");
    cr_assert_eq(access(path, F_OK), -1, "the old volume is gone");
    cr_assert_eq(read_chunk(1, 30000, 0, 30000, 1), CM_ENOTFOUND);
    cr_assert_eq(read_chunk(3, 30000, 0, 30000, 1), 0, "the record after the hole survived");
    cr_assert_eq(read_chunk(2, 30000, 0, 30000, 1), 0, "its payload was intact: moved too");
    nd_store_close(&st);
    open_store(1 << 20, 0);
    cr_assert_eq(read_chunk(3, 30000, 0, 30000, 1), 0);
}

/* A reclaimed volume's file is kept as a spare and the next volume reuses it (overwriting pages
 * the kernel has cached and blocks already allocated, instead of a new file): no new file, and
 * what the file held before is never read as the new volume's (new ids, so no pointer names
 * it), also after a reopen, when appends go past the reused file's old end. */
Test(vol, a_reclaimed_volume_is_reused_and_its_old_records_stay_dead)
{
    for (unsigned i = 1; i <= 40; i++)
        put_chunk(i, 60000, 0);
    for (unsigned i = 1; i <= 40; i++)
        del_chunks(i);
    put_chunk(100, 60000, 1);
    size_t files = count_volumes();
    cr_assert_gt(nd_store_vol_compact(&st, 1), 0);
    struct nd_vol_stats s;
    nd_store_vol_stats(&st, &s);
    cr_assert_gt(s.spares, 0, "reclaimed volumes kept as spares");
    cr_assert_eq(count_files("spr"), s.spares);
    cr_assert_eq(count_volumes() + count_files("spr"), files, "renamed, none unlinked");
    for (unsigned i = 41; i <= 60; i++)
        put_chunk(i, 50000 + i, i == 60);
    nd_store_vol_stats(&st, &s);
    cr_assert_gt(s.reused_volumes, 0, "new volumes reused the spares");
    cr_assert_leq(count_volumes() + count_files("spr"), files, "no file was created");
    for (unsigned i = 1; i <= 40; i++)
        cr_assert_eq(read_chunk(i, 60000, 0, 60000, 1), CM_ENOTFOUND);
    for (unsigned i = 41; i <= 60; i++)
        cr_assert_eq(read_chunk(i, 50000 + i, 0, 50000 + i, 1), 0);
    nd_store_close(&st);
    open_store(1 << 20, 0);
    nd_store_vol_stats(&st, &s);
    cr_assert_eq(s.spares, count_files("spr"), "spares found again on open");
    put_chunk(61, 70000, 1); /* past the reused file's old end */
    for (unsigned i = 41; i <= 61; i += 2)
        del_chunks(i);
    cr_assert_gt(nd_store_vol_compact(&st, 1), 0,
                 "a reused volume (stale bytes past its "
                 "records) is compacted too");
    for (unsigned i = 42; i <= 60; i += 2)
        cr_assert_eq(read_chunk(i, 50000 + i, 0, 50000 + i, 1), 0);
    cr_assert_eq(read_chunk(100, 60000, 0, 60000, 1), 0);
    nd_store_close(&st);
    open_store(1 << 20, 0);
    for (unsigned i = 42; i <= 60; i += 2)
        cr_assert_eq(read_chunk(i, 50000 + i, 0, 50000 + i, 1), 0);
}

/* Pages of the volume file in the page cache (mincore over a mapping of it). */
static size_t resident_pages(const char *path)
{
    int fd = open(path, O_RDONLY);
    struct stat sb;
    cr_assert(fd >= 0 && fstat(fd, &sb) == 0);
    size_t pages = ((size_t)sb.st_size + 4095) / 4096, n = 0;
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    cr_assert_neq(m, MAP_FAILED);
    unsigned char *vec = cm_malloc(pages);
    cr_assert_eq(mincore(m, (size_t)sb.st_size, vec), 0);
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    cm_free(vec);
    munmap(m, (size_t)sb.st_size);
    close(fd);
    return n;
}

/* Appends are O_DIRECT where the file system allows it: what a node writes takes no page cache
 * (in a VM every new page-cache page is a fresh page to fault in, and a growing page cache
 * stalled the node while its load grew: docs/internals.md, "Direct appends"). */
Test(vol, appends_leave_nothing_in_the_page_cache)
{
    struct statfs fs;
    cr_assert_eq(statfs(dir, &fs), 0);
    if (fs.f_type == 0x01021994) /* TMPFS_MAGIC: no direct I/O, the next test covers it */
        cr_skip_test("%s is tmpfs", dir);
    for (unsigned i = 1; i <= 4; i++)
        put_chunk(i, 200000 + i, i == 4);
    char path[128];
    snprintf(path, sizeof(path), "%s/volumes/00000001.vol", dir);
    cr_assert_eq(resident_pages(path), 0, "appended records were left in the page cache");
    for (unsigned i = 1; i <= 4; i++)
        cr_assert_eq(read_chunk(i, 200000 + i, 0, 200000 + i, 1), 0);
}

/* A record takes whole 4 KiB blocks: its padding is live with it, else a volume of small live
 * records (playlists, manifests, init segments) would look three-quarters garbage and be copied
 * around by compaction every time it settled, forever. */
Test(vol, small_records_count_their_padding_as_live)
{
    for (unsigned i = 1; i <= 300; i++)
        put_chunk(i, 1000, i == 300);
    struct nd_vol_stats s;
    nd_store_vol_stats(&st, &s);
    cr_assert_geq(s.live_bytes * 100, s.bytes * 95, "live %llu of %llu bytes",
                  (unsigned long long)s.live_bytes, (unsigned long long)s.bytes);
    nd_store_close(&st);
    open_store(1 << 20, 0);
    nd_store_vol_stats(&st, &s);
    cr_assert_geq(s.live_bytes * 100, s.bytes * 95, "after a reopen: live %llu of %llu bytes",
                  (unsigned long long)s.live_bytes, (unsigned long long)s.bytes);
}

/* tmpfs refuses O_DIRECT: appends are buffered there, same records, same reads. */
Test(vol, a_file_system_without_direct_io_gets_buffered_appends)
{
    nd_store_close(&st);
    rm_rf(dir);
    cr_assert_not_null(mkdtemp(strcpy(dir, "/dev/shm/hw-vol-XXXXXX")));
    open_store(1 << 20, 0);
    for (unsigned i = 1; i <= 30; i++)
        put_chunk(i, 70000 + i, i == 30);
    for (unsigned i = 1; i <= 30; i++)
        cr_assert_eq(read_chunk(i, 70000 + i, 0, 70000 + i, 1), 0);
    for (unsigned i = 1; i <= 30; i += 2)
        del_chunks(i);
    cr_assert_gt(nd_store_vol_compact(&st, 1), 0);
    nd_store_close(&st);
    open_store(1 << 20, 0);
    for (unsigned i = 2; i <= 30; i += 2)
        cr_assert_eq(read_chunk(i, 70000 + i, 0, 70000 + i, 1), 0);
}

static atomic_int stop_readers;
static void reader(void *arg)
{
    unsigned *errors = arg;
    while (!atomic_load(&stop_readers)) {
        for (unsigned i = 2; i <= 60; i += 2)
            if (read_chunk(i, 40000 + i, 0, 40000 + i, 1) != 0)
                (*errors)++;
    }
}

Test(vol, compaction_reclaims_space_while_readers_read)
{
    for (unsigned i = 1; i <= 60; i++)
        put_chunk(i, 40000 + i, 0);
    for (unsigned i = 1; i <= 60; i += 2)
        del_chunks(i); /* half of every volume is garbage */
    for (unsigned i = 61; i <= 80; i++) {
        put_chunk(i, 40000, 0);
        del_chunks(i); /* volumes of garbage only */
    }
    cr_assert_eq(nd_store_sync(&st), 0);
    size_t before = count_volumes();
    struct nd_vol_stats s0, s1;
    nd_store_vol_stats(&st, &s0);
    unsigned errors = 0;
    uv_thread_t t;
    atomic_store(&stop_readers, 0);
    uv_thread_create(&t, reader, &errors);
    int n = nd_store_vol_compact(&st, 1); /* now, not 30 s after the volumes were sealed */
    atomic_store(&stop_readers, 1);
    uv_thread_join(&t);
    cr_assert_gt(n, 0, "volumes reclaimed");
    cr_assert_eq(errors, 0, "reads during compaction failed");
    nd_store_vol_stats(&st, &s1);
    cr_assert_lt(count_volumes(), before);
    cr_assert_lt(s1.bytes, s0.bytes);
    cr_assert_eq(s1.live_bytes, s0.live_bytes, "live bytes moved, not lost");
    cr_assert_gt(s1.compacted_bytes, 0);
    for (unsigned i = 1; i <= 60; i++)
        cr_assert_eq(read_chunk(i, 40000 + i, 0, 40000 + i, 1), i % 2 ? CM_ENOTFOUND : 0);
    nd_store_close(&st); /* the moves are durable */
    open_store(1 << 20, 0);
    for (unsigned i = 2; i <= 60; i += 2)
        cr_assert_eq(read_chunk(i, 40000 + i, 0, 40000 + i, 1), 0);
}

Test(vol, the_background_thread_drops_dead_volumes)
{
    nd_store_close(&st);
    open_store(1 << 20, 64 << 20);
    for (unsigned i = 1; i <= 40; i++)
        put_chunk(i, 60000, 0);
    for (unsigned i = 1; i <= 40; i++)
        del_chunks(i);
    size_t before = count_volumes();
    for (int i = 0; i < 100 && count_volumes() > 1; i++)
        usleep(50 * 1000); /* polled, with a deadline: the thread runs every second */
    cr_assert_lt(count_volumes(), before);
}

Test(vol, a_store_of_the_earlier_format_is_migrated)
{
    nd_store_close(&st);
    rm_rf(dir);
    cr_assert_not_null(mkdtemp(strcpy(dir, "/tmp/hw-vol-XXXXXX")));
    char db[128], err[256];
    snprintf(db, sizeof(db), "%s/db", dir);
    mkdir(db, 0700);
    cr_assert_eq(nd_store_rocks_open(&st, db, err, sizeof(err)), 0, "%s", err);
    for (unsigned i = 1; i <= 150; i++) /* chunk bytes inline, as before volumes */
        put_chunk(i, 3000 + i, i == 150);
    nd_store_close(&st);
    open_store(1 << 20, 0);
    for (unsigned i = 1; i <= 150; i++)
        cr_assert_eq(read_chunk(i, 3000 + i, 0, 3000 + i, 1), 0);
    nd_store_close(&st);
    open_store(1 << 20, 0); /* once: the marker says every chunk is a pointer now */
    for (unsigned i = 1; i <= 150; i++)
        cr_assert_eq(read_chunk(i, 3000 + i, 0, 3000 + i, 1), 0);
}
