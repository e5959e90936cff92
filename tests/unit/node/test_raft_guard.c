#include <criterion/criterion.h>
#include <string.h>

#include "err.h"
#include "shard/raft_guard.h"

struct wire {
    uint8_t b[4096];
    size_t n;
};

static void u64(struct wire *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        w->b[w->n++] = (uint8_t)(v >> (8 * i));
}

static void bytes(struct wire *w, const char *s, size_t n)
{
    memcpy(w->b + w->n, s, n);
    w->n += n;
}

static void pre(struct wire *w, uint64_t type, uint64_t hlen)
{
    u64(w, type);
    u64(w, hlen);
}

/* AppendEntries with entries of the given types and 8-byte payloads. */
static void append_entries(struct wire *w, const uint8_t *types, size_t n)
{
    pre(w, 1, 48 + 16 * n);
    for (int i = 0; i < 4; i++)
        u64(w, 7);
    u64(w, n);
    for (size_t i = 0; i < n; i++) {
        u64(w, 3);
        uint8_t e[8] = {types[i], 0, 0, 0, 8, 0, 0, 0};
        bytes(w, (const char *)e, 8);
    }
    u64(w, 0); /* the unused tail */
    for (size_t i = 0; i < n; i++)
        bytes(w, "payload!", 8);
}

static void good_stream(struct wire *w)
{
    static const uint8_t types[] = {1, 2, 3};
    memset(w, 0, sizeof(*w));
    append_entries(w, types, 0); /* heartbeat */
    append_entries(w, types, 3);
    pre(w, 3, 40); /* RequestVote */
    for (int i = 0; i < 5; i++)
        u64(w, 1);
    pre(w, 4, 24);
    for (int i = 0; i < 3; i++)
        u64(w, 1);
    pre(w, 2, 24);
    for (int i = 0; i < 3; i++)
        u64(w, 1);
    pre(w, 6, 24);
    for (int i = 0; i < 3; i++)
        u64(w, 1);
    pre(w, 5, 56 + 16); /* InstallSnapshot: 16 bytes of configuration, 5 bytes of data */
    for (int i = 0; i < 4; i++)
        u64(w, 9);
    u64(w, 16);
    bytes(w, "0123456789abcdef", 16);
    u64(w, 5);
    u64(w, 0);
    bytes(w, "snap!", 5);
}

static int feed(const struct wire *w, size_t chunk, const char **why)
{
    struct nd_raft_guard g;
    nd_raft_guard_init(&g);
    int rv = 0;
    for (size_t off = 0; off < w->n && rv == 0; off += chunk)
        rv = nd_raft_guard_feed(&g, w->b + off, off + chunk < w->n ? chunk : w->n - off);
    *why = g.why;
    return rv;
}

Test(raft_guard, what_raft_sends_passes_in_any_fragmentation)
{
    struct wire w;
    const char *why;
    good_stream(&w);
    for (size_t chunk = 1; chunk <= w.n; chunk += chunk < 20 ? 1 : 97)
        cr_assert_eq(feed(&w, chunk, &why), 0, "chunk %zu: %s", chunk, why ? why : "");
}

static void expect_refused(struct wire *w, const char *what)
{
    const char *why;
    cr_assert_eq(feed(w, 1, &why), CM_EPROTO, "%s passed (byte by byte)", what);
    cr_assert_eq(feed(w, w->n, &why), CM_EPROTO, "%s passed (whole)", what);
    cr_assert_not_null(why);
}

Test(raft_guard, the_audit_packets_are_refused)
{
    struct wire w;
    static const uint8_t bad[] = {1, 255};
    memset(&w, 0, sizeof(w));
    append_entries(&w, bad, 2);
    expect_refused(&w, "an entry of type 255");
    memset(&w, 0, sizeof(w));
    pre(&w, 3, 1ull << 60);
    expect_refused(&w, "a RequestVote header of 2^60 bytes");
    memset(&w, 0, sizeof(w));
    pre(&w, 1, 48ull + 16ull * (1ull << 30));
    expect_refused(&w, "an AppendEntries header of 16 GiB");
    memset(&w, 0, sizeof(w));
    pre(&w, 9, 24);
    expect_refused(&w, "an unknown message type");
}

Test(raft_guard, lengths_must_agree)
{
    struct wire w;
    memset(&w, 0, sizeof(w));
    pre(&w, 1, 48 + 16);
    for (int i = 0; i < 4; i++)
        u64(&w, 1);
    u64(&w, 5); /* five entries announced, room for one */
    expect_refused(&w, "an entry count that disagrees with the header length");
    memset(&w, 0, sizeof(w));
    pre(&w, 1, 48 + 16);
    for (int i = 0; i < 4; i++)
        u64(&w, 1);
    u64(&w, 1);
    u64(&w, 1);
    uint8_t e[8] = {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    bytes(&w, (const char *)e, 8);
    expect_refused(&w, "4 GiB of entry data");
    memset(&w, 0, sizeof(w));
    pre(&w, 5, 56 + 16);
    for (int i = 0; i < 4; i++)
        u64(&w, 1);
    u64(&w, 1000);
    expect_refused(&w, "a configuration length past the header");
    memset(&w, 0, sizeof(w));
    pre(&w, 5, 56);
    for (int i = 0; i < 4; i++)
        u64(&w, 1);
    u64(&w, 0);
    u64(&w, 1ull << 40);
    expect_refused(&w, "a 1 TiB snapshot");
}
